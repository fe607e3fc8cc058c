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

typedef struct side {
    negio_conn *conn;
    int err;
    int established;
    int closed;
    size_t wire_out;
    size_t got; /* bytes of messages received */
} side;

typedef struct run {
    side client, server;
    int create_err;
    size_t sent;
    int wrong;
    uint8_t *echo; /* what came back to the client */
} run;

static size_t script_total(void)
{
    size_t t = 0;
    for (size_t i = 0; i < NSCRIPT; i++)
        t += script[i];
    return t;
}

static void on_event(run *r, side *s, const negio_event *ev)
{
    if (ev->type == NEGIO_EV_ESTABLISHED) {
        s->established++;
        while (s == &r->client && r->sent < NSCRIPT && r->client.err == 0) {
            int rc =
                negio_conn_write(r->client.conn, payload, script[r->sent], NEGIO_LEVEL_DEFAULT);
            if (rc < 0)
                r->client.err = rc;
            else
                r->sent++;
        }
        return;
    }
    if (ev->type == NEGIO_EV_CLOSED) {
        s->closed++;
        return;
    }
    if (s == &r->server) {
        if (s->got + ev->len > script_total()) {
            r->wrong = 1;
            return;
        }
        s->got += ev->len;
        int rc = negio_conn_write(r->server.conn, ev->data, ev->len, NEGIO_LEVEL_DEFAULT);
        if (rc < 0)
            r->server.err = rc;
        return;
    }
    if (s->got + ev->len > script_total()) {
        r->wrong = 1;
        return;
    }
    memcpy(r->echo + s->got, ev->data, ev->len);
    s->got += ev->len;
    if (s->got == script_total()) {
        int rc = negio_conn_close(r->client.conn, 0, "done");
        if (rc < 0)
            r->client.err = rc;
    }
}

static int drain(run *r, side *s)
{
    int events = 0;
    while (s->err == 0) {
        negio_event ev;
        int rc = negio_conn_next_event(s->conn, &ev);
        if (rc < 0) {
            s->err = rc;
            break;
        }
        if (rc == 0)
            break;
        events++;
        on_event(r, s, &ev);
    }
    return events;
}

static size_t move(side *from, side *to)
{
    size_t n;
    const uint8_t *out;
    void *block = negio_conn_send_take(from->conn, &out, &n);
    if (block == NULL)
        out = negio_conn_send_buf(from->conn, &n);
    if (n == 0)
        return 0;
    from->wire_out += n;
    if (to->err == 0) {
        int rc = negio_conn_feed(to->conn, out, n);
        if (rc < 0)
            to->err = rc;
    }
    if (block != NULL)
        negio_conn_send_release(block);
    else
        negio_conn_send_done(from->conn, n);
    return n;
}

static void run_once(run *r, const negio_config *cc, const negio_config *sc, long n)
{
    memset(r, 0, sizeof(*r));
    r->echo = malloc(script_total());
    negio__alloc_fail_after(n);
    int rc = negio_conn_new(&r->client.conn, cc);
    if (rc == 0)
        rc = negio_conn_new(&r->server.conn, sc);
    if (rc < 0) {
        r->create_err = rc;
        return;
    }
    rc = negio_conn_write(r->client.conn, payload, script[0], NEGIO_LEVEL_DEFAULT);
    if (rc < 0)
        r->client.err = rc;
    else
        r->sent = 1;
    for (int guard = 0; guard < 10000; guard++) {
        int progress = drain(r, &r->client) + drain(r, &r->server);
        progress += move(&r->client, &r->server) > 0;
        progress += drain(r, &r->server);
        progress += move(&r->server, &r->client) > 0;
        if (progress == 0)
            break;
    }
    /* the stream ends: after the client's close (nothing on the wire in this profile), or after
     * a failure, when the application closes the socket */
    if (r->server.err == 0 && r->server.closed == 0) {
        negio_conn_feed_eof(r->server.conn);
        drain(r, &r->server);
    }
    if (r->client.err == 0 && r->client.closed == 0) {
        negio_conn_feed_eof(r->client.conn);
        drain(r, &r->client);
    }
}

static void free_run(run *r)
{
    negio_conn_del(r->client.conn);
    negio_conn_del(r->server.conn);
    free(r->echo);
    memset(r, 0, sizeof(*r));
}

static int fully_successful(const run *r)
{
    return r->create_err == 0 && r->client.err == 0 && r->server.err == 0 &&
           r->client.established == 1 && r->server.established == 1 && !r->wrong &&
           r->client.got == script_total() && r->client.closed == 1 && r->server.closed == 1;
}

/* What P, the peer of F that ran out of memory, may report: F's HandshakeError, or the end of
 * the stream (a normal end, or truncation inside a message), or nothing (P ended cleanly). */
static int consequence(const side *p)
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
            what, n, negio_err_name(r->create_err), negio_err_name(r->client.err),
            negio_conn_error_detail(r->client.conn), negio_err_name(r->server.err),
            negio_conn_error_detail(r->server.conn), r->client.established, r->server.established,
            r->client.got, r->client.closed, r->server.closed, r->wrong);
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
        if (r.wrong || (r.client.got > 0 && memcmp(r.echo, expected, r.client.got) != 0)) {
            describe(what, n, &r);
            violations++;
        }
        if (fully_successful(&r)) {
            absorbed++;
        } else {
            failed++;
            int nomem = r.create_err == NEGIO_ERR_NOMEM || r.client.err == NEGIO_ERR_NOMEM ||
                        r.server.err == NEGIO_ERR_NOMEM;
            int bad = !nomem || (r.create_err != 0 && r.create_err != NEGIO_ERR_NOMEM);
            if (r.client.err == NEGIO_ERR_NOMEM)
                bad |= !consequence(&r.server) ||
                       negio_conn_error_detail(r.client.conn)[0] == '\0' ||
                       negio_conn_is_established(r.client.conn);
            if (r.server.err == NEGIO_ERR_NOMEM)
                bad |= !consequence(&r.client) ||
                       negio_conn_error_detail(r.server.conn)[0] == '\0' ||
                       negio_conn_is_established(r.server.conn);
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
