/* Conformance: the token a failing side puts in its HANDSHAKE_ERROR (PROTOCOL.md section 6.7):
 * the output token of a GSS call that failed goes to the peer; one from a call that succeeded,
 * whose result this side then refused, never does. The refusal after a successful call is made
 * with negio__gss_fast_fails (the Kerberos fast path failing to engage once the context is
 * complete), which exists only in the test build of the library, which this test links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gss/gss.h"
#include "support/bytes.h"
#include "support/support.h"

#ifndef NEGIO_TEST_HOOKS
#error "test_error_tokens needs negio__gss_fast_fails, in the test build (negio_hook_static)"
#endif

#define HDR 8
#define FT_HS_ERROR 2

typedef struct seen {
    int errors;
    uint32_t token_len;
} seen;

static void server_errors(test_frame *f, void *user)
{
    seen *s = user;
    if (f->dir == 1 && f->len >= HDR + 4 && f->data[1] == FT_HS_ERROR) {
        s->errors++;
        s->token_len = test_get_be32(f->data + HDR);
    }
}

/* A server whose gss_accept_sec_context completed, with the AP-REP to send, and which then fails
 * to take the context onto the Kerberos fast path: its HANDSHAKE_ERROR carries no token. */
static void a_token_from_a_call_that_succeeded_is_never_sent(void **state)
{
    (void)state;
    static const test_path paths[] = {PATH_KERBEROS, PATH_NEG_KERBEROS};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        negio_config *cc = test_client_config(paths[i]), *sc = test_server_config(paths[i]);
        assert_int_equal(negio_config_set_kerberos_fast_path(sc, 1), NEGIO_OK);
        test_pair p;
        test_pair_init(&p, cc, sc, SPLIT_WHOLE, 1);
        negio_config_del(cc);
        negio_config_del(sc);
        seen s = {0};
        negio__gss_fast_fails = 1;
        test_pair_run_frames(&p, server_errors, &s);
        negio__gss_fast_fails = 0;
        test_pair_report(&p, test_path_name(paths[i]));
        assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
        assert_int_equal(p.client.err, NEGIO_ERR_PEER);
        assert_int_equal(s.errors, 1);
        assert_int_equal(s.token_len, 0);
        test_pair_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_token_from_a_call_that_succeeded_is_never_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
