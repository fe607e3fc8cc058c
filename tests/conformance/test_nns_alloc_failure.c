/* Allocation failure at every allocation negio makes during an [MS-NNS] handshake and exchange
 * (docs/PROTOCOL.md appendix C): for each mechanism path and stream level and N = 1, 2, ..., the
 * Nth allocation fails (src/base/alloc.h hook; this test links negio_hook_static), until a run
 * makes fewer than N allocations. Every run must end either fully successful, with every byte
 * echoed back, or with a fatal NEGIO_ERR_NOMEM (and a detail) on the side that could not allocate,
 * and at most what that side could tell its peer: a HandshakeError saying
 * SEC_E_INSUFFICIENT_MEMORY during the handshake, nothing after it (the peer then sees the end of
 * the stream: a normal end between messages, truncation inside one, never a message delivered
 * wrong). Never a crash or a leak (ASan and valgrind passes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "support/alloc_run.h"
#include "support/support.h"

#ifndef NEGIO_ALLOC_HOOK
#error "test_nns_alloc_failure needs the allocation hook (negio_hook_static)"
#endif

#define MAX_RUNS 100000

/* What the client writes, the first before establishment; the last is split in two messages. */
static const size_t script[] = {40, 1, 300, 70000};
#define NSCRIPT (sizeof(script) / sizeof(script[0]))
static uint8_t payload[70000];
static uint8_t expected[70341]; /* the script's writes one after the other: the stream */

typedef struct run {
    test_alloc_run pair; /* the connectors, their errors and events (tests/support/alloc_run.h) */
    size_t sent;
    int wrong;
    size_t client_got, server_got; /* bytes of messages received */
    uint8_t *echo;                 /* what came back to the client */
} run;

static size_t script_total(void)
{
    size_t t = 0;
    for (size_t i = 0; i < NSCRIPT; i++)
        t += script[i];
    return t;
}

static void on_event(test_alloc_run *pair, test_alloc_side *s, const negio_event *ev)
{
    run *r = pair->user;
    if (ev->type == NEGIO_EV_ESTABLISHED) {
        while (s == &r->pair.client && r->sent < NSCRIPT && r->pair.client.err == 0) {
            int rc = negio_conn_write(r->pair.client.conn, payload, script[r->sent],
                                      NEGIO_LEVEL_DEFAULT);
            if (rc < 0)
                r->pair.client.err = rc;
            else
                r->sent++;
        }
        return;
    }
    if (ev->type == NEGIO_EV_CLOSED)
        return;
    if (s == &r->pair.server) {
        if (r->server_got + ev->len > script_total()) {
            r->wrong = 1;
            return;
        }
        r->server_got += ev->len;
        int rc = negio_conn_write(r->pair.server.conn, ev->data, ev->len, NEGIO_LEVEL_DEFAULT);
        if (rc < 0)
            r->pair.server.err = rc;
        return;
    }
    if (r->client_got + ev->len > script_total()) {
        r->wrong = 1;
        return;
    }
    memcpy(r->echo + r->client_got, ev->data, ev->len);
    r->client_got += ev->len;
    if (r->client_got == script_total()) {
        int rc = negio_conn_close(r->pair.client.conn, 0, "done");
        if (rc < 0)
            r->pair.client.err = rc;
    }
}

/* Both sides' output reaches the peer through negio_conn_feed. */
static const test_alloc_ops ops = {.on_event = on_event, .zero_copy_to_client = 0};

static void run_once(run *r, const negio_config *cc, const negio_config *sc, long n)
{
    memset(r, 0, sizeof(*r));
    r->echo = malloc(script_total());
    if (test_alloc_run_start(&r->pair, &ops, r, cc, sc, n) < 0)
        return;
    int rc = negio_conn_write(r->pair.client.conn, payload, script[0], NEGIO_LEVEL_DEFAULT);
    if (rc < 0)
        r->pair.client.err = rc;
    else
        r->sent = 1;
    test_alloc_run_pump(&r->pair);
    /* the stream ends: after the client's close (nothing on the wire in this profile), or after
     * a failure, when the application closes the socket */
    if (r->pair.server.err == 0 && r->pair.server.closed == 0) {
        negio_conn_feed_eof(r->pair.server.conn);
        test_alloc_run_drain(&r->pair, &r->pair.server);
    }
    if (r->pair.client.err == 0 && r->pair.client.closed == 0) {
        negio_conn_feed_eof(r->pair.client.conn);
        test_alloc_run_drain(&r->pair, &r->pair.client);
    }
}

static void free_run(run *r)
{
    test_alloc_run_free(&r->pair);
    free(r->echo);
    memset(r, 0, sizeof(*r));
}

static int fully_successful(const run *r)
{
    return r->pair.create_err == 0 && r->pair.client.err == 0 && r->pair.server.err == 0 &&
           r->pair.client.established == 1 && r->pair.server.established == 1 && !r->wrong &&
           r->client_got == script_total() && r->pair.client.closed == 1 &&
           r->pair.server.closed == 1;
}

/* What P, the peer of F that ran out of memory, may report: F's HandshakeError, or the end of
 * the stream (a normal end, or truncation inside a message), or nothing (P ended cleanly). */
static int consequence(const test_alloc_side *p)
{
    switch (p->err) {
    case 0:
        return p->conn == NULL || p->closed == 1;
    case NEGIO_ERR_PEER:
        return strstr(negio_conn_error_detail(p->conn), "SEC_E_INSUFFICIENT_MEMORY") != NULL;
    case NEGIO_ERR_TRUNCATED:
        return 1;
    default:
        return 0;
    }
}

static void describe(const char *what, long n, const run *r)
{
    fprintf(stderr,
            "%s, allocation %ld failed: create %s, client %s (%s), server %s (%s), established "
            "%d/%d, echoed %zu, closed %d/%d, wrong %d\n",
            what, n, negio_err_name(r->pair.create_err), negio_err_name(r->pair.client.err),
            negio_conn_error_detail(r->pair.client.conn), negio_err_name(r->pair.server.err),
            negio_conn_error_detail(r->pair.server.conn), r->pair.client.established,
            r->pair.server.established, r->client_got, r->pair.client.closed, r->pair.server.closed,
            r->wrong);
}

static void every_allocation_failure_ends_cleanly(test_path path, negio_level level)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    negio_config *both[2] = {cc, sc};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(negio_config_set_profile(both[i], NEGIO_PROFILE_NNS), 0);
        assert_int_equal(negio_config_set_default_level(both[i], level), 0);
        assert_int_equal(negio_config_set_min_level(both[i], level), 0);
    }
    char what[64];
    snprintf(what, sizeof(what), "%s/%s", test_path_name(path), negio_level_name(level));
    run ref;
    run_once(&ref, cc, sc, 0);
    long total = negio__alloc_count();
    int ok = fully_successful(&ref) && memcmp(ref.echo, expected, script_total()) == 0;
    if (!ok)
        describe(what, 0, &ref);
    free_run(&ref);
    if (!ok) {
        negio_config_del(cc);
        negio_config_del(sc);
        fail_msg("the reference run failed");
    }
    long n;
    int failed = 0, absorbed = 0, violations = 0;
    for (n = 1; n <= MAX_RUNS; n++) {
        run r;
        run_once(&r, cc, sc, n);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        if (injected == 0) {
            if (!fully_successful(&r)) {
                describe(what, n, &r);
                violations++;
            }
            free_run(&r);
            break;
        }
        /* the bytes that arrived are the bytes written, in order, whatever failed */
        if (r.wrong || (r.client_got > 0 && memcmp(r.echo, expected, r.client_got) != 0)) {
            describe(what, n, &r);
            violations++;
        }
        if (fully_successful(&r)) {
            absorbed++;
        } else {
            failed++;
            int nomem = r.pair.create_err == NEGIO_ERR_NOMEM ||
                        r.pair.client.err == NEGIO_ERR_NOMEM ||
                        r.pair.server.err == NEGIO_ERR_NOMEM;
            int bad = !nomem || (r.pair.create_err != 0 && r.pair.create_err != NEGIO_ERR_NOMEM);
            if (r.pair.client.err == NEGIO_ERR_NOMEM)
                bad |= !consequence(&r.pair.server) ||
                       negio_conn_error_detail(r.pair.client.conn)[0] == '\0' ||
                       negio_conn_is_established(r.pair.client.conn);
            if (r.pair.server.err == NEGIO_ERR_NOMEM)
                bad |= !consequence(&r.pair.client) ||
                       negio_conn_error_detail(r.pair.server.conn)[0] == '\0' ||
                       negio_conn_is_established(r.pair.server.conn);
            if (bad) {
                describe(what, n, &r);
                violations++;
            }
        }
        free_run(&r);
    }
    if (n > MAX_RUNS)
        violations++;
    fprintf(stderr,
            "%s: %ld allocations in the reference run, %ld runs, %d failed cleanly, %d absorbed "
            "the failure, %d violations\n",
            what, total, n, failed, absorbed, violations);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_int_equal(violations, 0);
}

static void every_path_and_level(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(script_total(), sizeof(expected));
    for (size_t i = 0, at = 0; i < NSCRIPT; at += script[i], i++)
        memcpy(expected + at, payload, script[i]);
    static const negio_level levels[] = {NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_NONE};
    for (int path = 0; path < PATH_COUNT; path++)
        for (size_t l = 0; l < 3; l++)
            every_allocation_failure_ends_cleanly((test_path)path, levels[l]);
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_path_and_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
