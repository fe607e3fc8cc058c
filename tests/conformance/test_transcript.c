/* Conformance: the handshake transcript (PROTOCOL.md section 4.3, issue 13). Each side hashes
 * every HANDSHAKE frame, header and body, both ways, and sends the hash in its POLICY, under the
 * first MIC of the new context; the peer compares it with its own. So any single byte of any
 * HANDSHAKE frame changed in transit, whether or not the mechanism would notice, must make both
 * sides fail before a message is delivered.
 *
 * The sweep: on each mechanism path, a client and a server connector (tests/support/pair.c),
 * each with a message written before the handshake (it goes out once established), run once
 * unchanged to learn the HANDSHAKE frames of the path; then once per HANDSHAKE frame, direction,
 * byte offset (header included) and change (the byte xor 0xff, and the byte + 1), with that one
 * byte changed on the way. Afterwards both streams end (negio_conn_feed_eof: what the peer's
 * TCP close would bring), so that a side left waiting reports it. Every run must end with an
 * error on both sides, no NEGIO_EV_ESTABLISHED on either and no message delivered to either.
 * (A frame's first half is counted from its start, the second from its end: see struct change.)
 * Every byte of every frame is changed, the Kerberos AP-REQ (about 750 bytes) included: the
 * whole sweep is about 6,000 handshakes, 6 s in a plain build (measured; a stride through the
 * longer frames was not needed). It does not run under valgrind (scripts/valgrind.sh skips it,
 * keeping the control). NEGIO_TEST_VERBOSE=1 prints every case's outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conn/conn_internal.h" /* the connectors' configuration and transcript */
#include "support/clock.h"
#include "support/support.h"

#define HDR 8
#define FT_HANDSHAKE 1
#define FT_POLICY 3
#define MAX_HS 16 /* HANDSHAKE frames per direction recorded; no path has more than 3 */

static const char client_msg[] = "written by the client before the handshake";
static const char server_msg[] = "written by the server before the handshake";

static int verbose;

/* The HANDSHAKE frames of a path, as an unchanged run sent them. */
typedef struct learned {
    int count[2];
    int index[2][MAX_HS]; /* the frame's number among all frames of its direction */
    size_t len[2][MAX_HS];
} learned;

static void learn(test_frame *f, void *user)
{
    learned *l = user;
    if (f->len >= HDR && f->data[1] == FT_HANDSHAKE && l->count[f->dir] < MAX_HS) {
        int k = l->count[f->dir]++;
        l->index[f->dir][k] = f->n;
        l->len[f->dir][k] = f->len;
    }
}

/* One change: a byte of frame N of direction DIR, xor 0xff or + 1. The byte is counted from the
 * start of the frame (FROM_END 0) or back from its end (FROM_END 1, OFF 0 the last byte): a
 * Kerberos AP-REQ is not always as long as the one learnt (the encodings of the authenticator's
 * sequence number and microseconds vary in length from run to run), so the first half of a frame
 * is counted from its start and the second from its end, and every change lands on a byte of
 * the same part of the token in every run. */
typedef struct change {
    int dir, n;
    size_t off;
    int from_end;
    int plus_one;
    int done;
} change;

static void apply(test_frame *f, void *user)
{
    change *c = user;
    if (f->dir != c->dir || f->n != c->n || c->off >= f->len)
        return;
    uint8_t *b = f->data + (c->from_end ? f->len - 1 - c->off : c->off);
    *b = c->plus_one ? (uint8_t)(*b + 1) : (uint8_t) ~*b;
    c->done = 1;
}

/* A pair of PATH whose sides each wrote a message before the handshake. */
static void pair_start(test_pair *p, test_path path)
{
    negio_config *cc = test_client_config(path);
    negio_config *sc = test_server_config(path);
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_int_equal(
        negio_conn_write(p->client.conn, client_msg, sizeof(client_msg) - 1, NEGIO_LEVEL_SEAL),
        NEGIO_OK);
    assert_int_equal(
        negio_conn_write(p->server.conn, server_msg, sizeof(server_msg) - 1, NEGIO_LEVEL_SEAL),
        NEGIO_OK);
}

/* Both streams end: a side still waiting learns that its peer is gone. */
static void pair_end_streams(test_pair *p)
{
    (void)negio_conn_feed_eof(p->client.conn);
    (void)negio_conn_feed_eof(p->server.conn);
    test_side_drain(&p->client);
    test_side_drain(&p->server);
}

/* The unchanged exchange establishes both sides and delivers both messages: the sweep's
 * control, and what teaches it the path's HANDSHAKE frames. */
static learned control(test_path path)
{
    learned l;
    memset(&l, 0, sizeof(l));
    test_pair p;
    pair_start(&p, path);
    test_pair_run_frames(&p, learn, &l);
    const test_event *cm = test_side_message(&p.client, 0);
    const test_event *sm = test_side_message(&p.server, 0);
    if (p.client.err != 0 || p.server.err != 0)
        fail_msg("[%s] unchanged exchange: client %s (%s), server %s (%s)", test_path_name(path),
                 negio_err_name(p.client.err), negio_conn_error_detail(p.client.conn),
                 negio_err_name(p.server.err), negio_conn_error_detail(p.server.conn));
    assert_int_equal(test_side_count(&p.client, NEGIO_EV_ESTABLISHED), 1);
    assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 1);
    assert_non_null(cm);
    assert_non_null(sm);
    assert_true(cm->len == sizeof(server_msg) - 1 && memcmp(cm->data, server_msg, cm->len) == 0);
    assert_true(sm->len == sizeof(client_msg) - 1 && memcmp(sm->data, client_msg, sm->len) == 0);
    negio_auth_info info = {.size = sizeof(info)};
    assert_int_equal(negio_conn_auth_info(p.server.conn, &info), NEGIO_OK);
    assert_int_equal(info.mech, test_path_mech(path));
    test_pair_free(&p);
    /* every path has a HANDSHAKE frame each way */
    assert_true(l.count[0] >= 1 && l.count[1] >= 1);
    return l;
}

static void unchanged_handshake_establishes_on_every_path(void **state)
{
    (void)state;
    for (int path = 0; path < PATH_COUNT; path++) {
        learned l = control((test_path)path);
        for (int d = 0; d < 2; d++) {
            for (int k = 0; k < l.count[d]; k++)
                print_message("%s: %s HANDSHAKE #%d is frame %d, %zu bytes\n",
                              test_path_name((test_path)path), d ? "server's" : "client's", k,
                              l.index[d][k], l.len[d][k]);
        }
    }
}

/* Outcomes of a path's sweep, by the client's and the server's error code. */
#define CODES 16 /* NEGIO_ERR_NOMEM (-101) .. -116 */
static int code_index(int rc)
{
    return rc <= -101 && rc > -101 - CODES ? -101 - rc : CODES - 1;
}

static void sweep_path(test_path path)
{
    learned l = control(path);
    size_t total = 0;
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < l.count[d]; k++)
            total += l.len[d][k];
    }
    static int outcomes[CODES][CODES];
    memset(outcomes, 0, sizeof(outcomes));
    int runs = 0;
    int64_t t0 = test_now_ms();
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < l.count[d]; k++) {
            size_t len = l.len[d][k];
            for (size_t off = 0; off < len; off++) {
                for (int plus_one = 0; plus_one <= 1; plus_one++) {
                    int from_end = off >= len / 2;
                    change c = {d,        l.index[d][k], from_end ? len - 1 - off : off,
                                from_end, plus_one,      0};
                    test_pair p;
                    pair_start(&p, path);
                    test_pair_run_frames(&p, apply, &c);
                    pair_end_streams(&p);
                    runs++;
                    int est = test_side_count(&p.client, NEGIO_EV_ESTABLISHED) +
                              test_side_count(&p.server, NEGIO_EV_ESTABLISHED);
                    int msgs = test_side_count(&p.client, NEGIO_EV_MESSAGE) +
                               test_side_count(&p.server, NEGIO_EV_MESSAGE);
                    int ok =
                        c.done && p.client.err < 0 && p.server.err < 0 && est == 0 && msgs == 0;
                    if (verbose || !ok)
                        print_message(
                            "[%s] %s HANDSHAKE #%d (%zu bytes), byte %s%zu %s: client %s "
                            "(%s) | server %s (%s)%s\n",
                            test_path_name(path), d ? "server's" : "client's", k, len,
                            c.from_end ? "end-1-" : "", c.off, plus_one ? "+ 1" : "xor 0xff",
                            negio_err_name(p.client.err), negio_conn_error_detail(p.client.conn),
                            negio_err_name(p.server.err), negio_conn_error_detail(p.server.conn),
                            est    ? ", ESTABLISHED"
                            : msgs ? ", MESSAGE DELIVERED"
                                   : "");
                    assert_true(c.done);
                    assert_int_equal(est, 0);
                    assert_int_equal(msgs, 0);
                    assert_true(p.client.err < 0 && p.server.err < 0);
                    outcomes[code_index(p.client.err)][code_index(p.server.err)]++;
                    test_pair_free(&p);
                }
            }
        }
    }
    print_message("%s: %d changed handshakes (%zu bytes of HANDSHAKE frames, each changed twice) "
                  "in %lld ms; both sides failed in every one:\n",
                  test_path_name(path), runs, total, (long long)(test_now_ms() - t0));
    for (int a = 0; a < CODES; a++) {
        for (int b = 0; b < CODES; b++) {
            if (outcomes[a][b] > 0)
                print_message("  %5d  client %s, server %s\n", outcomes[a][b],
                              negio_err_name(-101 - a), negio_err_name(-101 - b));
        }
    }
}

static void any_handshake_byte_changed_fails_both_sides_before_data(void **state)
{
    sweep_path(*(const test_path *)*state);
}

/* The server's record of the handshake changed as the client's POLICY passes (the server's
 * context is complete by then): what a changed HANDSHAKE byte no mechanism noticed leads to. */
static void alter_server_transcript(test_frame *f, void *user)
{
    test_pair *p = user;
    if (f->dir == 0 && f->len >= HDR && f->data[1] == FT_POLICY)
        p->server.conn->transcript[0] ^= 0xff;
}

/* A POLICY that names an unknown level, or a max_frame out of range, from a peer whose view of
 * the handshake differs: the transcript is compared first (section 4.3), so the server reports
 * the altered handshake (NEGIO_ERR_INTEGRITY), not the bad value (NEGIO_ERR_PROTOCOL), which it
 * reports when the handshake is intact. The client's POLICY is made to carry the value by
 * changing its connector's configuration. */
static void the_transcript_is_compared_before_the_policy_values(void **state)
{
    (void)state;
    for (int value = 0; value < 2; value++) {
        for (int altered = 0; altered < 2; altered++) {
            negio_config *cc = test_client_config(PATH_KERBEROS);
            negio_config *sc = test_server_config(PATH_KERBEROS);
            test_pair p;
            test_pair_init(&p, cc, sc, SPLIT_WHOLE, 1);
            negio_config_del(cc);
            negio_config_del(sc);
            if (value == 0)
                p.client.conn->cfg.min_level = (negio_level)3;
            else
                p.client.conn->cfg.limits.max_frame = 4095;
            if (altered)
                test_pair_run_frames(&p, alter_server_transcript, &p);
            else
                test_pair_run(&p);
            const char *d = negio_conn_error_detail(p.server.conn);
            print_message("%s%s: server %s: %s\n", value ? "max_frame 4095" : "level 3",
                          altered ? ", handshake altered" : "", negio_err_name(p.server.err), d);
            assert_int_equal(test_side_count(&p.server, NEGIO_EV_ESTABLISHED), 0);
            if (altered) {
                assert_int_equal(p.server.err, NEGIO_ERR_INTEGRITY);
                assert_non_null(strstr(d, "the handshake was altered in transit"));
            } else {
                assert_int_equal(p.server.err, NEGIO_ERR_PROTOCOL);
                assert_non_null(strstr(d, value ? "policy frame limit out of range"
                                                : "policy names an unknown level"));
            }
            test_pair_free(&p);
        }
    }
}

int main(void)
{
    test_realm_get();
    verbose = getenv("NEGIO_TEST_VERBOSE") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unchanged_handshake_establishes_on_every_path),
        cmocka_unit_test(the_transcript_is_compared_before_the_policy_values),
        TEST_PER_PATH(any_handshake_byte_changed_fails_both_sides_before_data, NULL, NULL),
    };
    if (getenv("NEGIO_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("NEGIO_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
