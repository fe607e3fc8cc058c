/* Conformance: a signed frame's MIC is the same whether the mechanism computes it over the
 * protected header and the payload where they lie (Kerberos: gss_get_mic_iov and
 * gss_verify_mic_iov) or over the two joined in one buffer (gss_get_mic and gss_verify_mic, what
 * NTLM always uses and what PROTOCOL.md section 5 describes). Each side is switched between the
 * two forms independently (negio__gss_no_iov), in both directions, on every mechanism path, for
 * empty, small and multi-frame messages; a flipped payload bit is refused in either form. The
 * switch exists only in the test build of the library, which this test links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gss/gss.h"
#include "support/support.h"

#ifndef NEGIO_TEST_HOOKS
#error                                                                                             \
    "test_mic_forms needs negio__gss_no_iov, in the test build of the library (negio_hook_static)"
#endif

static const size_t sizes[] = {0, 1, 5000, 70000};

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)test_rand(&seed);
    return p;
}

/* FROM sends every size at sign with its form; TO receives them with the other form. */
static void send_across(test_side *from, test_side *to, int from_joins, int to_joins, int *received)
{
    negio__gss_no_iov = from_joins;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *m = pattern(sizes[i], (unsigned)i + 1);
        assert_int_equal(negio_conn_write(from->conn, m, sizes[i], NEGIO_LEVEL_SIGN), NEGIO_OK);
        free(m);
    }
    size_t len = 0;
    uint8_t *wire = test_take_output(from->conn, &len);
    negio__gss_no_iov = to_joins;
    assert_int_equal(negio_conn_feed(to->conn, wire, len), NEGIO_OK);
    free(wire);
    test_side_drain(to);
    negio__gss_no_iov = 0;
    if (to->err != 0)
        fprintf(stderr, "receiver: %s: %s\n", negio_err_name(to->err),
                negio_conn_error_detail(to->conn));
    assert_int_equal(to->err, 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        const test_event *e = test_side_message(to, (*received)++);
        assert_non_null(e);
        assert_int_equal(e->level, NEGIO_LEVEL_SIGN);
        assert_int_equal(e->len, sizes[i]);
        uint8_t *m = pattern(sizes[i], (unsigned)i + 1);
        if (sizes[i] > 0)
            assert_memory_equal(e->data, m, sizes[i]);
        free(m);
    }
}

static void establish(test_pair *p, test_path path)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_true(test_pair_establish(p));
}

static void mics_in_pieces_and_joined_are_interchangeable(void **state)
{
    (void)state;
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        establish(&p, (test_path)path);
        int to_server = 0, to_client = 0;
        for (int form = 0; form < 2; form++) {
            send_across(&p.client, &p.server, form, !form, &to_server);
            send_across(&p.server, &p.client, form, !form, &to_client);
        }
        test_pair_free(&p);
    }
}

static void a_flipped_payload_bit_fails_in_either_form(void **state)
{
    (void)state;
    for (int path = 0; path < test_path_count(); path++) {
        for (int joins = 0; joins < 2; joins++) {
            test_pair p;
            establish(&p, (test_path)path);
            assert_int_equal(
                negio_conn_write(p.client.conn, "signed payload", 14, NEGIO_LEVEL_SIGN), NEGIO_OK);
            size_t len = 0;
            uint8_t *wire = test_take_output(p.client.conn, &len);
            wire[len - 3] ^= 0x20; /* inside the payload, the frame's last bytes */
            negio__gss_no_iov = joins;
            assert_int_equal(negio_conn_feed(p.server.conn, wire, len), NEGIO_OK);
            test_side_drain(&p.server);
            negio__gss_no_iov = 0;
            free(wire);
            assert_int_equal(p.server.err, NEGIO_ERR_INTEGRITY);
            assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 0);
            test_pair_free(&p);
        }
    }
}

int main(void)
{
    if (test_transport_get() == TRANSPORT_TLS) {
        fprintf(stderr, "plain TLS has no signed frames\n");
        return 0;
    }
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mics_in_pieces_and_joined_are_interchangeable),
        cmocka_unit_test(a_flipped_payload_bit_fails_in_either_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
