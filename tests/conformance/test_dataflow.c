/* Conformance: handshake and data flow over every mechanism path and every split of the byte
 * stream. Each test body runs for all paths; byte-split variants must give identical results. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static const char *split_name(test_split s)
{
    return s == SPLIT_WHOLE ? "whole" : s == SPLIT_BYTE ? "byte" : "random";
}

static void report(const test_pair *p, test_path path, test_split split)
{
    fprintf(stderr, "[%s/%s] client %s: %s | server %s: %s\n", test_path_name(path),
            split_name(split), negio_err_name(p->client.err),
            negio_conn_error_detail(p->client.conn), negio_err_name(p->server.err),
            negio_conn_error_detail(p->server.conn));
}

static void pair_for(test_pair *p, test_path path, test_split split, unsigned seed,
                     void (*adjust)(negio_config *client, negio_config *server))
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    if (adjust != NULL)
        adjust(cc, sc);
    test_pair_init(p, cc, sc, split, seed);
    negio_config_del(cc);
    negio_config_del(sc);
}

static void establish(test_pair *p, test_path path, test_split split)
{
    if (!test_pair_establish(p)) {
        report(p, path, split);
        fail_msg("handshake failed");
    }
}

static void expect_message(const test_side *s, int n, const void *data, size_t len,
                           negio_level level)
{
    const test_event *e = test_side_message(s, n);
    assert_non_null(e);
    assert_int_equal(e->level, level);
    assert_int_equal(e->len, len);
    if (len)
        assert_memory_equal(e->data, data, len);
}

/* The level a test means, as it exists on this transport: plain TLS has level none only (TLS
 * protects every byte and there is no GSS context to sign or seal with), so there the same
 * test runs with every message at none. */
static negio_level L(negio_level level)
{
    return test_transport_get() == TRANSPORT_TLS ? NEGIO_LEVEL_NONE : level;
}

/* Every level both ways, interleaved with per-message overrides, identical under every split. */
static void messages_at_every_level_arrive_intact_under_every_split(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS(
        "sign and seal do not exist there; test_tls runs its messages under every split");
    static const char *texts[] = {"", "x", "hello, world", "a somewhat longer message body"};
    for (int path = 0; path < test_path_count(); path++) {
        for (int split = 0; split < SPLIT_COUNT; split++) {
            for (unsigned seed = 1; seed <= (split == SPLIT_RANDOM ? 3u : 1u); seed++) {
                test_pair p;
                pair_for(&p, (test_path)path, (test_split)split, seed * 7919, NULL);
                establish(&p, (test_path)path, (test_split)split);
                /* default level (seal), then sign and seal overrides, both directions */
                int n = 0;
                for (int i = 0; i < 4; i++) {
                    for (int l = NEGIO_LEVEL_DEFAULT; l <= NEGIO_LEVEL_SEAL; l++) {
                        if (l == NEGIO_LEVEL_NONE)
                            continue; /* below the peer's minimum: see the level tests */
                        assert_int_equal(negio_conn_write(p.client.conn, texts[i], strlen(texts[i]),
                                                          (negio_level)l),
                                         0);
                        assert_int_equal(negio_conn_write(p.server.conn, texts[i], strlen(texts[i]),
                                                          (negio_level)l),
                                         0);
                        n++;
                    }
                }
                test_pair_run(&p);
                if (p.client.err || p.server.err)
                    report(&p, (test_path)path, (test_split)split);
                assert_int_equal(p.client.err, 0);
                assert_int_equal(p.server.err, 0);
                assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), n);
                assert_int_equal(test_side_count(&p.client, NEGIO_EV_MESSAGE), n);
                int k = 0;
                for (int i = 0; i < 4; i++) {
                    for (int l = NEGIO_LEVEL_DEFAULT; l <= NEGIO_LEVEL_SEAL; l++) {
                        if (l == NEGIO_LEVEL_NONE)
                            continue;
                        negio_level want =
                            l == NEGIO_LEVEL_DEFAULT ? NEGIO_LEVEL_SEAL : (negio_level)l;
                        expect_message(&p.server, k, texts[i], strlen(texts[i]), want);
                        expect_message(&p.client, k, texts[i], strlen(texts[i]), want);
                        k++;
                    }
                }
                test_pair_free(&p);
            }
        }
    }
}

static void min_none(negio_config *c, negio_config *s)
{
    negio_config_set_min_level(c, NEGIO_LEVEL_NONE);
    negio_config_set_min_level(s, NEGIO_LEVEL_NONE);
}

/* With both minimums at none, level none is usable and reported as none. */
static void level_none_is_delivered_when_the_minimum_allows_it(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("level none is all there is; nothing to contrast it with");
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_RANDOM, 5, min_none);
        establish(&p, (test_path)path, SPLIT_RANDOM);
        assert_int_equal(negio_conn_write(p.client.conn, "plain", 5, NEGIO_LEVEL_NONE), 0);
        assert_int_equal(negio_conn_write(p.client.conn, "", 0, NEGIO_LEVEL_NONE), 0);
        assert_int_equal(negio_conn_write(p.client.conn, "sealed", 6, NEGIO_LEVEL_DEFAULT), 0);
        test_pair_run(&p);
        assert_int_equal(p.server.err, 0);
        expect_message(&p.server, 0, "plain", 5, NEGIO_LEVEL_NONE);
        expect_message(&p.server, 1, "", 0, NEGIO_LEVEL_NONE);
        expect_message(&p.server, 2, "sealed", 6, NEGIO_LEVEL_SEAL);
        test_pair_free(&p);
    }
}

/* Output taken as blocks (negio_conn_send_take) instead of read and consumed: every block holds
 * the bytes negio_conn_send_buf would have given, in order, the connector goes on writing into
 * a new block, and a block stays valid after the connector is gone. Nothing pending: NULL. */
static void output_taken_in_blocks_arrives_intact(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 10, 5000, 70000, 3};
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, NULL);
        establish(&p, (test_path)path, SPLIT_WHOLE);
        const uint8_t *data = (const uint8_t *)"x";
        size_t len = 1;
        assert_null(negio_conn_send_take(p.client.conn, &data, &len));
        assert_null(data);
        assert_int_equal(len, 0);
        void *blocks[8];
        const uint8_t *at[8];
        size_t lens[8];
        int nb = 0;
        uint8_t *msg = malloc(70000);
        assert_non_null(msg);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            memset(msg, (int)('a' + i), sizes[i]);
            assert_int_equal(negio_conn_write(p.client.conn, msg, sizes[i], L(NEGIO_LEVEL_SEAL)),
                             NEGIO_OK);
            if (i % 2 == 0) { /* take after some writes only: blocks of one and of two messages */
                blocks[nb] = negio_conn_send_take(p.client.conn, &at[nb], &lens[nb]);
                assert_non_null(blocks[nb]);
                assert_true(lens[nb] > 0);
                nb++;
                size_t left;
                assert_null(negio_conn_send_buf(p.client.conn, &left));
                assert_int_equal(left, 0);
            }
        }
        /* the client goes first: its blocks must outlive it */
        negio_conn_del(p.client.conn);
        p.client.conn = NULL;
        for (int b = 0; b < nb; b++) {
            assert_int_equal(negio_conn_feed(p.server.conn, at[b], lens[b]), NEGIO_OK);
            negio_conn_send_release(blocks[b]);
        }
        test_side_drain(&p.server);
        assert_int_equal(p.server.err, 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 5);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            memset(msg, (int)('a' + i), sizes[i]);
            expect_message(&p.server, (int)i, msg, sizes[i], L(NEGIO_LEVEL_SEAL));
        }
        free(msg);
        test_pair_free(&p);
    }
}

/* Writes made before completion are held and go out, in order, once established. */
static void writes_before_completion_are_sent_after_it_in_order(void **state)
{
    (void)state;
    for (int path = 0; path < test_path_count(); path++) {
        for (int split = 0; split < SPLIT_COUNT; split++) {
            test_pair p;
            pair_for(&p, (test_path)path, (test_split)split, 11, NULL);
            assert_int_equal(negio_conn_write(p.client.conn, "early-1", 7, L(NEGIO_LEVEL_SIGN)), 0);
            assert_int_equal(negio_conn_write(p.client.conn, "", 0, L(NEGIO_LEVEL_SEAL)), 0);
            assert_int_equal(negio_conn_write(p.server.conn, "srv-early", 9, NEGIO_LEVEL_DEFAULT),
                             0);
            assert_true(negio_conn_pending_bytes(p.client.conn) > 0);
            establish(&p, (test_path)path, (test_split)split);
            if (p.client.err || p.server.err)
                report(&p, (test_path)path, (test_split)split);
            assert_int_equal(negio_conn_write(p.client.conn, "late", 4, NEGIO_LEVEL_DEFAULT), 0);
            test_pair_run(&p);
            assert_int_equal(p.server.err, 0);
            assert_int_equal(p.client.err, 0);
            /* ESTABLISHED comes before any message */
            assert_int_equal(p.server.events[0].type, NEGIO_EV_ESTABLISHED);
            expect_message(&p.server, 0, "early-1", 7, L(NEGIO_LEVEL_SIGN));
            expect_message(&p.server, 1, "", 0, L(NEGIO_LEVEL_SEAL));
            expect_message(&p.server, 2, "late", 4, L(NEGIO_LEVEL_SEAL));
            expect_message(&p.client, 0, "srv-early", 9, L(NEGIO_LEVEL_SEAL));
            test_pair_free(&p);
        }
    }
}

static void small_frames(negio_config *c, negio_config *s)
{
    negio_limits l = {.max_frame = 8192, .max_message = 100000};
    negio_config_set_limits(c, &l);
    negio_config_set_limits(s, &l);
}

/* A message larger than a frame is split and reassembled; exactly the limit passes, one byte
 * over is refused at the sender with a clear code and the connection goes on. */
static void large_messages_are_split_and_the_limit_is_exact(void **state)
{
    (void)state;
    uint8_t *big = malloc(100001);
    unsigned seed = 3;
    for (size_t i = 0; i < 100001; i++)
        big[i] = (uint8_t)test_rand(&seed);
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_RANDOM, 17, small_frames);
        establish(&p, (test_path)path, SPLIT_RANDOM);
        assert_int_equal(negio_conn_write(p.client.conn, big, 100000, L(NEGIO_LEVEL_SEAL)), 0);
        assert_int_equal(negio_conn_write(p.client.conn, big, 100001, L(NEGIO_LEVEL_SEAL)),
                         NEGIO_ERR_MSG_SIZE);
        assert_int_equal(negio_conn_write(p.client.conn, big + 1, 30000, L(NEGIO_LEVEL_SIGN)), 0);
        assert_int_equal(negio_conn_write(p.server.conn, big, 100000, L(NEGIO_LEVEL_SIGN)), 0);
        test_pair_run(&p);
        assert_int_equal(p.server.err, 0);
        assert_int_equal(p.client.err, 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 2);
        expect_message(&p.server, 0, big, 100000, L(NEGIO_LEVEL_SEAL));
        expect_message(&p.server, 1, big + 1, 30000, L(NEGIO_LEVEL_SIGN));
        expect_message(&p.client, 0, big, 100000, L(NEGIO_LEVEL_SIGN));
        test_pair_free(&p);
    }
    free(big);
}

/* The facts users rely on: mechanism, negotiation, who the peer is, server authentication. */
static void authentication_facts_name_the_winner_and_the_peer(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("no mechanism wins; test_tls checks the certificate facts");
    const test_realm *r = test_realm_get();
    char alice[128];
    snprintf(alice, sizeof(alice), "alice@%s", r->realm);
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, NULL);
        establish(&p, (test_path)path, SPLIT_WHOLE);
        negio_auth_info ci = {.size = sizeof(ci)}, si = {.size = sizeof(si)};
        assert_int_equal(negio_conn_auth_info(p.client.conn, &ci), 0);
        assert_int_equal(negio_conn_auth_info(p.server.conn, &si), 0);
        negio_mech want = test_path_mech((test_path)path);
        int via_spnego = path == PATH_NEG_KERBEROS || path == PATH_NEG_NTLM;
        assert_int_equal(ci.mech, want);
        assert_int_equal(si.mech, want);
        assert_int_equal(ci.negotiated, via_spnego);
        assert_int_equal(si.negotiated, via_spnego);
        unsigned need = NEGIO_FLAG_INTEG | NEGIO_FLAG_CONF;
        assert_int_equal(ci.flags & need, need);
        assert_int_equal(si.flags & need, need);
        assert_int_equal(ci.flags & NEGIO_FLAG_ANON, 0);
        assert_int_equal(ci.peer_min_level, NEGIO_LEVEL_SIGN);
        assert_int_equal(ci.peer_default_level, NEGIO_LEVEL_SEAL);
        if (want == NEGIO_MECH_KERBEROS) {
            assert_int_equal(ci.server_authenticated, 1);
            assert_int_equal(si.server_authenticated, 1);
            assert_string_equal(si.peer, alice);
            assert_non_null(si.local_name);
            assert_string_equal(si.local_name, "alice");
            char svc[128];
            snprintf(svc, sizeof(svc), "negio/localhost@%s", r->realm);
            assert_string_equal(ci.peer, svc);
            assert_true(ci.flags & NEGIO_FLAG_MUTUAL);
            assert_true(ci.lifetime > 0);
        } else {
            /* NTLM never authenticates the server, whatever the flags say; inside TLS, the
             * server's verified certificate does */
            assert_int_equal(ci.server_authenticated,
                             test_transport_get() == TRANSPORT_TLS_NEGOTIATE);
            assert_int_equal(si.server_authenticated, 0);
            assert_int_equal(ci.flags & NEGIO_FLAG_MUTUAL, 0);
            assert_string_equal(si.peer, "NEGIO\\alice");
        }
        test_pair_free(&p);
    }
}

/* A protected close is a clean close; EOF without it is truncation; a non-zero status is a
 * rejection the peer sees as an error. */
static void protected_close_is_clean_and_bare_eof_is_truncation(void **state)
{
    (void)state;
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_BYTE, 1, NULL);
        establish(&p, (test_path)path, SPLIT_BYTE);
        assert_int_equal(negio_conn_write(p.client.conn, "bye", 3, NEGIO_LEVEL_DEFAULT), 0);
        assert_int_equal(negio_conn_close(p.client.conn, 0, "done"), 0);
        assert_int_equal(negio_conn_write(p.client.conn, "x", 1, NEGIO_LEVEL_DEFAULT),
                         NEGIO_ERR_STATE);
        assert_int_equal(negio_conn_close(p.client.conn, 0, NULL), NEGIO_ERR_STATE);
        test_pair_run(&p);
        negio_conn_feed_eof(p.server.conn);
        test_side_drain(&p.server);
        assert_int_equal(p.server.err, 0);
        expect_message(&p.server, 0, "bye", 3, L(NEGIO_LEVEL_SEAL));
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_CLOSED), 1);
        assert_int_equal(p.server.events[p.server.nevents - 1].type, NEGIO_EV_CLOSED);
        assert_int_equal(p.server.events[p.server.nevents - 1].status, 0);
        test_pair_free(&p);

        /* bare EOF after establishment */
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, NULL);
        establish(&p, (test_path)path, SPLIT_WHOLE);
        negio_conn_feed_eof(p.server.conn);
        test_side_drain(&p.server);
        assert_int_equal(p.server.err, NEGIO_ERR_TRUNCATED);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_CLOSED), 0);
        test_pair_free(&p);

        /* the server rejects the authenticated client */
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, NULL);
        establish(&p, (test_path)path, SPLIT_WHOLE);
        assert_int_equal(negio_conn_close(p.server.conn, 403, "not allowed here"), 0);
        test_pair_run(&p);
        assert_int_equal(p.client.err, NEGIO_ERR_REJECTED);
        assert_non_null(strstr(negio_conn_error_detail(p.client.conn), "not allowed here"));
        test_pair_free(&p);
    }
}

static void server_min_seal(negio_config *c, negio_config *s)
{
    (void)c;
    negio_config_set_min_level(s, NEGIO_LEVEL_SEAL);
}

/* The sender knows the receiver's minimum from its policy and refuses a lower write locally;
 * the connection continues. */
static void writes_below_the_peer_minimum_are_refused_locally(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("every minimum is none");
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, server_min_seal);
        establish(&p, (test_path)path, SPLIT_WHOLE);
        assert_int_equal(negio_conn_write(p.client.conn, "s", 1, NEGIO_LEVEL_SIGN),
                         NEGIO_ERR_LEVEL);
        assert_int_equal(negio_conn_write(p.client.conn, "n", 1, NEGIO_LEVEL_NONE),
                         NEGIO_ERR_LEVEL);
        assert_int_equal(negio_conn_write(p.client.conn, "ok", 2, NEGIO_LEVEL_SEAL), 0);
        test_pair_run(&p);
        assert_int_equal(p.server.err, 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 1);
        expect_message(&p.server, 0, "ok", 2, NEGIO_LEVEL_SEAL);
        test_pair_free(&p);
    }
}

static void client_default_none(negio_config *c, negio_config *s)
{
    (void)s;
    negio_config_set_default_level(c, NEGIO_LEVEL_NONE);
}

/* A policy mismatch fails fast on both sides with a clear error, before any data. */
static void policy_mismatch_fails_on_both_sides(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("every level is none, so policies cannot disagree");
    for (int path = 0; path < test_path_count(); path++) {
        test_pair p;
        pair_for(&p, (test_path)path, SPLIT_WHOLE, 1, client_default_none);
        assert_int_equal(negio_conn_write(p.client.conn, "early", 5, NEGIO_LEVEL_DEFAULT), 0);
        test_pair_run(&p);
        assert_int_equal(p.client.err, NEGIO_ERR_POLICY);
        assert_int_equal(p.server.err, NEGIO_ERR_POLICY);
        assert_non_null(strstr(negio_conn_error_detail(p.client.conn), "policy mismatch"));
        assert_non_null(strstr(negio_conn_error_detail(p.server.conn), "policy mismatch"));
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 0);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 0);
        test_pair_free(&p);
    }
}

struct step_job {
    negio_conn *conn;
    int rc;
};

static void *step_thread(void *arg)
{
    struct step_job *j = arg;
    j->rc = negio_conn_step(j->conn);
    return NULL;
}

/* With deferred steps the owner runs each blocking GSS step itself, here on another thread,
 * and the result is the same as inline. */
static void deferred_steps_can_run_on_another_thread(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("there is no GSS step to defer");
    for (int path = 0; path < test_path_count(); path++) {
        negio_config *cc = test_client_config((test_path)path);
        negio_config *sc = test_server_config((test_path)path);
        negio_config_set_deferred_steps(cc, 1);
        negio_config_set_deferred_steps(sc, 1);
        test_pair p;
        test_pair_init(&p, cc, sc, SPLIT_RANDOM, 99);
        negio_config_del(cc);
        negio_config_del(sc);
        int steps = 0;
        for (int round = 0; round < 50; round++) {
            test_side *sides[2] = {&p.client, &p.server};
            for (int i = 0; i < 2; i++) {
                test_side_drain(sides[i]);
                if (negio_conn_want(sides[i]->conn) & NEGIO_WANT_STEP) {
                    struct step_job j = {sides[i]->conn, 0};
                    pthread_t t;
                    assert_int_equal(pthread_create(&t, NULL, step_thread, &j), 0);
                    pthread_join(t, NULL);
                    assert_int_equal(j.rc, 0);
                    steps++;
                    test_side_drain(sides[i]);
                }
            }
            while (test_pair_move(&p, &p.client, &p.server) > 0)
                test_side_drain(&p.server);
            while (test_pair_move(&p, &p.server, &p.client) > 0)
                test_side_drain(&p.client);
        }
        if (p.client.err || p.server.err)
            report(&p, (test_path)path, SPLIT_RANDOM);
        assert_int_equal(test_side_count(&p.client, NEGIO_EV_ESTABLISHED), 1);
        assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 1);
        assert_true(steps >= 2);
        test_pair_free(&p);
    }
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_at_every_level_arrive_intact_under_every_split),
        cmocka_unit_test(level_none_is_delivered_when_the_minimum_allows_it),
        cmocka_unit_test(writes_before_completion_are_sent_after_it_in_order),
        cmocka_unit_test(output_taken_in_blocks_arrives_intact),
        cmocka_unit_test(large_messages_are_split_and_the_limit_is_exact),
        cmocka_unit_test(authentication_facts_name_the_winner_and_the_peer),
        cmocka_unit_test(protected_close_is_clean_and_bare_eof_is_truncation),
        cmocka_unit_test(writes_below_the_peer_minimum_are_refused_locally),
        cmocka_unit_test(policy_mismatch_fails_on_both_sides),
        cmocka_unit_test(deferred_steps_can_run_on_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
