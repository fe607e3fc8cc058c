/* Conformance: copies of an established connector (negio__conn_clone, src/conn/conn.h), on
 * which the fuzzing fixture of tests/fuzz/fuzz_established.c rests. On every mechanism path a
 * clone must behave exactly like the connector it was copied from: it accepts what the peer sends
 * after establishment, with the same sequence state (two clones accept the same frames, each
 * once), it protects what it sends so that the peer accepts it, and it refuses a frame that fails
 * its check. A connector that is not established and idle cannot be cloned, and the template,
 * whose context the first clone exported, fails closed instead of protecting anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conn/conn.h"
#include "support/support.h"

static void establish(test_pair *p, test_path path)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    if (!test_pair_establish(p)) {
        fprintf(stderr, "[%s] client %s (%s), server %s (%s)\n", test_path_name(path),
                negio_err_name(p->client.err), negio_conn_error_detail(p->client.conn),
                negio_err_name(p->server.err), negio_conn_error_detail(p->server.conn));
        fail_msg("handshake failed");
    }
}

static negio_conn *clone_of(negio_conn *src)
{
    negio_conn *c = NULL;
    char detail[NEGIO__DETAIL_MAX] = "";
    int rc = negio__conn_clone(&c, src, detail);
    if (rc != NEGIO_OK)
        fail_msg("clone: %s: %s", negio_err_name(rc), detail);
    assert_non_null(c);
    assert_true(negio_conn_is_established(c));
    return c;
}

static void feed(test_side *s, const uint8_t *data, size_t len)
{
    assert_int_equal(negio_conn_feed(s->conn, data, len), NEGIO_OK);
    test_side_drain(s);
}

static const char *texts[] = {"first, sealed", "second, signed", "third, at the default level"};
static const negio_level levels[] = {NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_DEFAULT};

static void expect_texts(const test_side *s)
{
    assert_int_equal(s->err, 0);
    assert_int_equal(test_side_count(s, NEGIO_EV_MESSAGE), 3);
    for (int i = 0; i < 3; i++) {
        const test_event *e = test_side_message(s, i);
        assert_int_equal(e->len, strlen(texts[i]));
        assert_memory_equal(e->data, texts[i], e->len);
        assert_int_equal(e->level, levels[i] == NEGIO_LEVEL_DEFAULT ? NEGIO_LEVEL_SEAL : levels[i]);
    }
}

static void clones_receive_and_send_like_the_original(void **state)
{
    (void)state;
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        establish(&p, (test_path)path);
        test_side a = {.conn = clone_of(p.server.conn)};
        test_side b = {.conn = clone_of(p.server.conn)};

        /* the client's messages reach both clones, intact and at their levels */
        for (int i = 0; i < 3; i++)
            assert_int_equal(negio_conn_write(p.client.conn, texts[i], strlen(texts[i]), levels[i]),
                             NEGIO_OK);
        size_t len = 0;
        uint8_t *wire = test_take_output(p.client.conn, &len);
        assert_true(len > 0);
        feed(&a, wire, len);
        feed(&b, wire, len);
        expect_texts(&a);
        expect_texts(&b);

        /* each clone has its own sequence state: a replay is refused by the one that saw it */
        feed(&a, wire, len);
        assert_int_equal(a.err, NEGIO_ERR_INTEGRITY);

        /* a flipped bit in a sealed frame is refused by a fresh clone */
        test_side c = {.conn = clone_of(p.server.conn)};
        wire[len / 4] ^= 0x01;
        feed(&c, wire, len);
        assert_true(c.err < 0);
        assert_int_equal(test_side_count(&c, NEGIO_EV_MESSAGE), 0);
        free(wire);

        /* what a clone sends, the client accepts */
        assert_int_equal(negio_conn_write(b.conn, "reply", 5, NEGIO_LEVEL_SEAL), NEGIO_OK);
        wire = test_take_output(b.conn, &len);
        assert_int_equal(negio_conn_feed(p.client.conn, wire, len), NEGIO_OK);
        free(wire);
        test_side_drain(&p.client);
        assert_int_equal(p.client.err, 0);
        const test_event *e = test_side_message(&p.client, 0);
        assert_non_null(e);
        assert_int_equal(e->len, 5);
        assert_memory_equal(e->data, "reply", 5);

        /* the template's context went to its clones: it fails closed, it does not send */
        assert_int_not_equal(negio_conn_write(p.server.conn, "x", 1, NEGIO_LEVEL_SEAL), NEGIO_OK);
        test_side_free(&a);
        test_side_free(&b);
        test_side_free(&c);
        test_pair_free(&p);
    }
}

static void only_an_established_idle_connector_can_be_cloned(void **state)
{
    (void)state;
    char detail[NEGIO__DETAIL_MAX] = "";
    negio_conn *c = NULL;
    negio_config *sc = test_server_config(PATH_KERBEROS);
    negio_conn *fresh = NULL;
    assert_int_equal(negio_conn_new(&fresh, sc), NEGIO_OK);
    assert_int_equal(negio__conn_clone(&c, fresh, detail), NEGIO_ERR_INVALID);
    assert_null(c);
    assert_true(strstr(detail, "established") != NULL);
    negio_conn_del(fresh);
    negio_config_del(sc);

    test_pair p;
    establish(&p, PATH_KERBEROS);
    /* output not yet taken: not idle */
    assert_int_equal(negio_conn_write(p.server.conn, "pending", 7, NEGIO_LEVEL_SIGN), NEGIO_OK);
    assert_int_equal(negio__conn_clone(&c, p.server.conn, detail), NEGIO_ERR_INVALID);
    size_t len = 0;
    free(test_take_output(p.server.conn, &len));
    /* input not yet parsed: not idle */
    assert_int_equal(negio_conn_feed(p.server.conn, "\x01", 1), NEGIO_OK);
    assert_int_equal(negio__conn_clone(&c, p.server.conn, detail), NEGIO_ERR_INVALID);
    assert_null(c);
    test_pair_free(&p);
}

int main(void)
{
    if (test_transport_get() != TRANSPORT_PLAIN) {
        fprintf(stderr, "clones exist on the bare stream only\n");
        return 0;
    }
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clones_receive_and_send_like_the_original),
        cmocka_unit_test(only_an_established_idle_connector_can_be_cloned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
