/* Conformance: what the gss-sample profile (docs/PROTOCOL.md appendix A) refuses, and where: a
 * MIC shorter than any mechanism's never reaches GSS-API, a message too large for one token
 * fails locally, and a token header announcing more than the receiver accepts is refused on the
 * header, before its body is waited for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/bytes.h"
#include "support/support.h"

#define S_CONTEXT 0x02u
#define S_DATA 0x04u
#define S_MIC 0x08u
#define S_NOOP_CONTEXT_NEXT 0x11u
#define FRAME_OVERHEAD 1024 /* NEGIO__FRAME_OVERHEAD: the room a message leaves in a token */

static negio_config *sample_config(negio_config *cfg, const negio_limits *limits)
{
    assert_int_equal(negio_config_set_profile(cfg, NEGIO_PROFILE_GSS_SAMPLE), NEGIO_OK);
    assert_int_equal(negio_config_set_min_level(cfg, NEGIO_LEVEL_NONE), NEGIO_OK);
    if (limits != NULL)
        assert_int_equal(negio_config_set_limits(cfg, limits), NEGIO_OK);
    return cfg;
}

static void sample_pair(test_pair *p, test_path path, const negio_limits *limits)
{
    negio_config *cc = sample_config(test_client_config(path), limits),
                 *sc = sample_config(test_server_config(path), limits);
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_true(test_pair_establish(p));
}

/* The server's MIC over a client message cut to 0, 1 and 15 bytes: the client refuses it as too
 * short before gss_verify_mic (gss-ntlmssp would compare 16 bytes whatever its length: a read
 * past the token), not with the mechanism's own error. */
static void a_mic_answer_shorter_than_16_bytes_never_reaches_gss(void **state)
{
    (void)state;
    static const test_path paths[] = {PATH_KERBEROS, PATH_NTLM};
    static const uint32_t lens[] = {0, 1, 15};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            test_pair p;
            sample_pair(&p, paths[i], NULL);
            assert_int_equal(negio_conn_write(p.client.conn, "hello", 5, NEGIO_LEVEL_SIGN),
                             NEGIO_OK);
            while (test_pair_move(&p, &p.client, &p.server) > 0)
                ;
            test_side_drain(&p.server);
            assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 1);
            size_t n;
            uint8_t *answer = test_take_output(p.server.conn, &n);
            assert_true(n >= 5 + 16 && answer[0] == S_MIC);
            test_put_be32(answer + 1, lens[k]);
            assert_int_equal(negio_conn_feed(p.client.conn, answer, 5 + lens[k]), NEGIO_OK);
            free(answer);
            test_side_drain(&p.client);
            fprintf(stderr, "%s, %u-byte MIC: %s\n", test_path_name(paths[i]), (unsigned)lens[k],
                    negio_conn_error_detail(p.client.conn));
            assert_int_equal(p.client.err, NEGIO_ERR_INTEGRITY);
            assert_int_equal(test_side_count(&p.client, NEGIO_EV_ACKNOWLEDGED), 0);
            char text[64];
            snprintf(text, sizeof(text), "a MIC of %u bytes, refused before", (unsigned)lens[k]);
            assert_non_null(strstr(negio_conn_error_detail(p.client.conn), text));
            test_pair_free(&p);
        }
    }
}

/* No message is split into several tokens, and the receiver refuses a token over its max_frame:
 * a client write that could not fit one token with the mechanism's overhead fails locally
 * (NEGIO_ERR_MSG_SIZE) and the conversation goes on; the largest that fits arrives at every
 * level. */
static void a_message_too_large_for_one_token_fails_locally(void **state)
{
    (void)state;
    static const test_path paths[] = {PATH_KERBEROS, PATH_NTLM};
    static const negio_level levels[] = {NEGIO_LEVEL_NONE, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL};
    negio_limits l = {.size = sizeof(l), .max_frame = 4096};
    const size_t fits = l.max_frame - FRAME_OVERHEAD;
    uint8_t *m = calloc(1, l.max_frame);
    assert_non_null(m);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        /* before the handshake as well: refused at once, not queued to fail the connector when
         * it completes */
        negio_config *cc = sample_config(test_client_config(paths[i]), &l);
        negio_conn *early;
        assert_int_equal(negio_conn_new(&early, cc), NEGIO_OK);
        negio_config_del(cc);
        assert_int_equal(negio_conn_write(early, m, fits + 1, NEGIO_LEVEL_SEAL),
                         NEGIO_ERR_MSG_SIZE);
        assert_int_equal(negio_conn_write(early, m, fits, NEGIO_LEVEL_SEAL), NEGIO_OK);
        negio_conn_del(early);
        test_pair p;
        sample_pair(&p, paths[i], &l);
        for (size_t k = 0; k < sizeof(levels) / sizeof(levels[0]); k++) {
            assert_int_equal(negio_conn_write(p.client.conn, m, l.max_frame, levels[k]),
                             NEGIO_ERR_MSG_SIZE);
            assert_int_equal(negio_conn_write(p.client.conn, m, fits + 1, levels[k]),
                             NEGIO_ERR_MSG_SIZE);
            m[0] = (uint8_t)k;
            assert_int_equal(negio_conn_write(p.client.conn, m, fits, levels[k]), NEGIO_OK);
            test_pair_run(&p);
            assert_int_equal(p.client.err, 0);
            assert_int_equal(p.server.err, 0);
            const test_event *e = test_side_message(&p.server, (int)k);
            assert_non_null(e);
            assert_int_equal(e->len, fits);
            assert_int_equal(e->data[0], k);
            assert_int_equal(test_side_count(&p.client, NEGIO_EV_ACKNOWLEDGED), (int)k + 1);
        }
        test_pair_free(&p);
    }
    free(m);
}

/* A header announcing more than the receiver accepts counts as ready (NEGIO_WANT_EVENT), so
 * that an owner that asks for events only then is told at once, rather than reading on while the
 * connector waits for a body it will refuse: during the handshake (over max_token) and after it
 * (over max_frame). */
static void a_token_header_over_the_limit_is_ready_at_once(void **state)
{
    (void)state;
    negio_config *sc = sample_config(test_server_config(PATH_KERBEROS), NULL);
    negio_conn *s;
    assert_int_equal(negio_conn_new(&s, sc), NEGIO_OK);
    negio_config_del(sc);
    const uint8_t opening[5] = {S_NOOP_CONTEXT_NEXT, 0, 0, 0, 0};
    uint8_t context[5] = {S_CONTEXT};
    test_put_be32(context + 1, 65536 + 1);
    negio_event ev;
    assert_int_equal(negio_conn_feed(s, opening, sizeof(opening)), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(s, &ev), 0);
    assert_int_equal(negio_conn_feed(s, context, sizeof(context)), NEGIO_OK);
    assert_true(negio_conn_want(s) & NEGIO_WANT_EVENT);
    assert_int_equal(negio_conn_next_event(s, &ev), NEGIO_ERR_TOO_LARGE);
    negio_conn_del(s);

    test_pair p;
    sample_pair(&p, PATH_KERBEROS, NULL);
    uint8_t data[5] = {S_DATA};
    test_put_be32(data + 1, 0xffffffffu);
    assert_int_equal(negio_conn_feed(p.server.conn, data, sizeof(data)), NEGIO_OK);
    assert_true(negio_conn_want(p.server.conn) & NEGIO_WANT_EVENT);
    assert_int_equal(negio_conn_next_event(p.server.conn, &ev), NEGIO_ERR_TOO_LARGE);
    /* exactly the limit is a token like any other: its body is waited for */
    test_pair_free(&p);
    sample_pair(&p, PATH_KERBEROS, NULL);
    test_put_be32(data + 1, 1048576);
    assert_int_equal(negio_conn_feed(p.server.conn, data, sizeof(data)), NEGIO_OK);
    assert_false(negio_conn_want(p.server.conn) & NEGIO_WANT_EVENT);
    assert_int_equal(negio_conn_next_event(p.server.conn, &ev), 0);
    test_pair_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_mic_answer_shorter_than_16_bytes_never_reaches_gss),
        cmocka_unit_test(a_message_too_large_for_one_token_fails_locally),
        cmocka_unit_test(a_token_header_over_the_limit_is_ready_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
