/* Regression tests for connector bugs found while writing tests/unit/test_conn_framing.c; each
 * failed before its fix. No Kerberos realm needed (server connectors and deferred-step clients
 * only, as in test_conn_framing.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "negio/negio.h"
#include "support/bytes.h"
#include "support/support.h"

#define T_HANDSHAKE 1
#define T_HS_ERROR 2

static void drop_output(negio_conn *c)
{
    size_t n = 0;
    (void)negio_conn_send_buf(c, &n);
    assert_int_equal(negio_conn_send_done(c, n), NEGIO_OK);
}

/* The HANDSHAKE_ERROR size limit is computed as max_token + 4 + 256 in 32 bits. A max_token
 * near 4 GiB is accepted by negio_config_set_limits() and makes the sum wrap to a tiny value,
 * so an ordinary handshake error from the peer is reported as NEGIO_ERR_TOO_LARGE instead of
 * NEGIO_ERR_PEER. */
static void handshake_error_limit_does_not_wrap_with_the_largest_token_limit(void **state)
{
    (void)state;
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_SERVER), NEGIO_OK);
    negio_limits l = {.max_token = 0xffffffffu};
    if (negio_config_set_limits(cfg, &l) == NEGIO_ERR_INVALID) {
        negio_config_del(cfg); /* fixed by refusing such a limit */
        return;
    }
    negio_conn *c = NULL;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_OK);
    negio_config_del(cfg);
    uint8_t body[4 + 296];
    test_put_be32(body, 0);
    memset(body + 4, 'r', 296);
    uint8_t f[8 + sizeof(body)];
    size_t n = test_put_frame(f, T_HS_ERROR, 0, 0, body, sizeof(body));
    assert_int_equal(negio_conn_feed(c, f, n), NEGIO_OK);
    negio_event ev;
    int rc = negio_conn_next_event(c, &ev);
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", negio_conn_error_detail(c));
    negio_conn_del(c); /* before failing, so that the report shows no leak */
    if (rc != NEGIO_ERR_PEER)
        fail_msg("got %s (%s), expected NEGIO_ERR_PEER", negio_err_name(rc), detail);
}

/* A client never parses input while its first step is pending, so a HANDSHAKE frame that
 * arrives before the client's first token used to be taken as the reply to a token the server
 * never saw. It is refused before any GSS work. */
static void handshake_frame_reaching_a_client_before_its_first_token_is_refused(void **state)
{
    (void)state;
    negio_conn *c = test_deferred_client();
    uint8_t f[16];
    size_t n = test_put_frame(f, T_HANDSHAKE, 0, 0, "tok", 3);
    assert_int_equal(negio_conn_feed(c, f, n), NEGIO_OK);
    negio_event ev;
    /* the refusal may come from next_event or, at the latest, from the first step */
    int rc_event = negio_conn_next_event(c, &ev), rc_step = 0, rc = rc_event;
    if (rc == 0)
        rc = rc_step = negio_conn_step(c);
    if (rc != NEGIO_ERR_PROTOCOL) {
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", negio_conn_error_detail(c));
        negio_conn_del(c);
        fail_msg("deferred client with a premature HANDSHAKE frame: next_event %s, then step %s "
                 "(%s); expected NEGIO_ERR_PROTOCOL before any GSS work",
                 negio_err_name(rc_event), negio_err_name(rc_step), detail);
    }
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL); /* sticky */
    negio_conn_del(c);
}

/* negio_conn_want() used to keep NEGIO_WANT_EVENT set while a whole header but only part of the
 * body was buffered, although next_event returned 0: an owner that calls next_event while
 * WANT_EVENT is set would spin forever. */
static void want_event_is_clear_while_a_frame_body_is_incomplete(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    uint8_t body[100] = {0};
    uint8_t f[108];
    test_put_frame(f, T_HANDSHAKE, 0, 0, body, sizeof(body));
    assert_int_equal(negio_conn_feed(c, f, 8 + 10), NEGIO_OK);
    negio_event ev;
    int rc = negio_conn_next_event(c, &ev);
    unsigned want = negio_conn_want(c);
    negio_conn_del(c);
    assert_int_equal(rc, 0);
    assert_true(want & NEGIO_WANT_READ);
    if (want & NEGIO_WANT_EVENT)
        fail_msg("next_event returned 0 (waiting for the body) but want is 0x%x, with "
                 "NEGIO_WANT_EVENT set",
                 want);
}

/* negio_conn_close() before establishment sends a HANDSHAKE_ERROR; the handshake used to go on
 * (NEGIO_WANT_STEP stayed set and the step still ran GSS-API, possibly putting a HANDSHAKE frame
 * on the wire after the error). Now the connector ends with NEGIO_ERR_CLOSED. */
static void close_before_establishment_stops_the_handshake(void **state)
{
    (void)state;
    negio_conn *c = test_deferred_client();
    assert_int_equal(negio_conn_close(c, 0, "changed my mind"), NEGIO_OK);
    drop_output(c); /* the HANDSHAKE_ERROR */
    unsigned want = negio_conn_want(c);
    int rc = negio_conn_step(c);
    size_t more = 0;
    (void)negio_conn_send_buf(c, &more);
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", negio_conn_error_detail(c));
    negio_conn_del(c);
    if ((want & NEGIO_WANT_STEP) || rc != NEGIO_ERR_CLOSED || more > 0)
        fail_msg("after close: want 0x%x, step returned %s (%s), %zu more bytes of output", want,
                 negio_err_name(rc), detail, more);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_error_limit_does_not_wrap_with_the_largest_token_limit),
        cmocka_unit_test(handshake_frame_reaching_a_client_before_its_first_token_is_refused),
        cmocka_unit_test(want_event_is_clear_while_a_frame_body_is_incomplete),
        cmocka_unit_test(close_before_establishment_stops_the_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
