/* Allocation failure at every allocation negio makes during a handshake plus a message exchange
 * (CHECKLIST "Resources"): for each mechanism path and N = 1, 2, ..., the Nth allocation fails
 * (src/base/alloc.h hook, this test links the test-only library negio_hook_static), until a run
 * makes fewer than N allocations. Every run must end either fully successful, with the same
 * authentication facts as a run where nothing fails and every byte echoed back, or with a fatal
 * NEGIO_ERR_NOMEM (and a detail) on the side that could not allocate and at most a consequence of
 * it on the other side (see consequence()); never a crash, a leak (ASan and valgrind passes) or a
 * message delivered wrong. Allocations inside GSS-API, the mechanisms and OpenSSL are not
 * counted: the hook covers negio's own (docs/FUZZING.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "wire/frame.h"
#include "negio/identity.h"
#include "support/alloc_run.h"
#include "support/support.h"

#ifndef NEGIO_ALLOC_HOOK
#error "test_alloc_failure needs the allocation hook (negio_hook_static)"
#endif

#define MAX_RUNS 100000

/* What the client sends; the server echoes each message back at its level. A pre-established
 * write exercises the queue, the 10,000-byte ones are split into 4096-byte frames. */
static const struct {
    negio_level level;
    size_t len;
} script[] = {
    {NEGIO_LEVEL_SEAL, 40}, /* written before establishment */
    {NEGIO_LEVEL_NONE, 0},     {NEGIO_LEVEL_SIGN, 1},     {NEGIO_LEVEL_SEAL, 300},
    {NEGIO_LEVEL_NONE, 10000}, {NEGIO_LEVEL_SIGN, 10000}, {NEGIO_LEVEL_SEAL, 10000},
};
#define NSCRIPT (sizeof(script) / sizeof(script[0]))

/* Entry I's level on this transport: plain TLS has level none only (NEGIO_TEST_TRANSPORT). */
static negio_level script_level(size_t i)
{
    return test_transport_get() == TRANSPORT_TLS ? NEGIO_LEVEL_NONE : script[i].level;
}

static uint8_t payload[10000];

typedef struct run {
    test_alloc_run pair; /* the connectors, their errors and events (tests/support/alloc_run.h) */
    size_t sent;         /* script entries the client has written */
    size_t echoed;       /* echoes the client received and checked */
    int wrong;           /* a message arrived with the wrong level or bytes */
    negio_auth_info client_info, server_info;
    char client_peer[256], server_peer[256], local_name[256];
} run;

static void set_limits(negio_config *cfg)
{
    negio_limits l = {0};
    l.max_frame = 4096; /* the peer splits long messages into several frames */
    assert_int_equal(negio_config_set_limits(cfg, &l), 0);
    assert_int_equal(negio_config_set_min_level(cfg, NEGIO_LEVEL_NONE), 0);
}

static void note_facts(run *r)
{
    if (negio_conn_auth_info(r->pair.client.conn, &r->client_info) == 0)
        snprintf(r->client_peer, sizeof(r->client_peer), "%s",
                 r->client_info.peer ? r->client_info.peer : "(null)");
    if (negio_conn_auth_info(r->pair.server.conn, &r->server_info) == 0) {
        snprintf(r->server_peer, sizeof(r->server_peer), "%s",
                 r->server_info.peer ? r->server_info.peer : "(null)");
        snprintf(r->local_name, sizeof(r->local_name), "%s",
                 r->server_info.local_name ? r->server_info.local_name : "(null)");
    }
}

/* A write that fails is fatal here: each write in the script is valid, so the only way for it to
 * fail is the injected allocation failure (NOMEM), which the connector also records. */
static void client_write_next(run *r)
{
    size_t i = r->sent;
    if (r->pair.client.err != 0 || i >= NSCRIPT)
        return;
    int rc = negio_conn_write(r->pair.client.conn, payload, script[i].len, script_level(i));
    if (rc < 0) {
        r->pair.client.err = rc;
        return;
    }
    r->sent++;
}

static void on_event(test_alloc_run *pair, test_alloc_side *s, const negio_event *ev)
{
    run *r = pair->user;
    if (ev->type == NEGIO_EV_ESTABLISHED) {
        if (s == &r->pair.client)
            while (r->sent < NSCRIPT && r->pair.client.err == 0)
                client_write_next(r);
        return;
    }
    if (ev->type == NEGIO_EV_CLOSED) /* the server answers the client's close by itself */
        return;
    if (s == &r->pair.server) {
        /* the echo goes back at the level the message came in */
        int rc = negio_conn_write(r->pair.server.conn, ev->data, ev->len, ev->level);
        if (rc < 0)
            r->pair.server.err = rc;
        return;
    }
    size_t i = r->echoed++;
    if (i >= NSCRIPT || ev->level != script_level(i) || ev->len != script[i].len ||
        (ev->len > 0 && memcmp(ev->data, payload, ev->len) != 0)) {
        r->wrong = 1;
        return;
    }
    if (r->echoed == NSCRIPT) {
        int rc = negio_conn_close(r->pair.client.conn, 0, "done");
        if (rc < 0)
            r->pair.client.err = rc;
    }
}

/* The client writes, the server echoes; the server's output reaches the client through the
 * zero-copy region, so that both input paths allocate. */
static const test_alloc_ops ops = {.on_event = on_event, .zero_copy_to_client = 1};

/* One handshake and exchange with the Nth allocation failing (0: none fails). */
static void run_once(run *r, const negio_config *cc, const negio_config *sc, long n)
{
    memset(r, 0, sizeof(*r));
    if (test_alloc_run_start(&r->pair, &ops, r, cc, sc, n) < 0)
        return;
    client_write_next(r); /* queued until established */
    test_alloc_run_pump(&r->pair);
    /* a side that failed in silence leaves its peer waiting: the application would close the
     * socket, which the peer sees as the end of the stream */
    if (r->pair.client.err != 0 || r->pair.server.err != 0) {
        if (r->pair.client.err == 0) {
            negio_conn_feed_eof(r->pair.client.conn);
            test_alloc_run_drain(&r->pair, &r->pair.client);
        }
        if (r->pair.server.err == 0) {
            negio_conn_feed_eof(r->pair.server.conn);
            test_alloc_run_drain(&r->pair, &r->pair.server);
        }
    }
    note_facts(r);
}

static void free_run(run *r)
{
    test_alloc_run_free(&r->pair);
}

static int fully_successful(const run *r)
{
    return r->pair.create_err == 0 && r->pair.client.err == 0 && r->pair.server.err == 0 &&
           r->pair.client.established == 1 && r->pair.server.established == 1 && !r->wrong &&
           r->echoed == NSCRIPT && r->pair.client.closed == 1 && r->pair.server.closed == 1;
}

/* What P, the peer of the side F that ran out of memory, must report: exactly what F told it
 * (PROTOCOL.md 6.7), never a symptom of a damaged stream. A half frame left in F's output (an
 * allocation failing half-way through a frame, with F's report appended after it) makes P wait
 * for the rest and end in NEGIO_ERR_TRUNCATED, or misread F's report: so TRUNCATED is accepted
 * only when F never put a byte on the wire (nobody was waiting to be told), and each report must
 * arrive with F's reason:
 *  - F's protected CLOSE: NEGIO_ERR_REJECTED, status 101 (the negated NEGIO_ERR_NOMEM) and its
 *    reason, "out of memory";
 *  - F's HANDSHAKE_ERROR: NEGIO_ERR_PEER with F's reason: "out of memory", or for a failure to
 *    set up the mechanism at F's first step, "server credentials unavailable" (F a server) or
 *    "client credentials unavailable" (F a client inside TLS);
 *  - that HANDSHAKE_ERROR reaching a P that is already established: NEGIO_ERR_PROTOCOL;
 *  - nothing, when P had ended cleanly (a verified close) or was never made. */
static int consequence(const test_alloc_side *p, const test_alloc_side *f, int f_is_server)
{
    const char *detail = negio_conn_error_detail(p->conn);
    char expect[160];
    switch (p->err) {
    case 0:
        return !p->created || p->closed == 1;
    case NEGIO_ERR_REJECTED:
        snprintf(expect, sizeof(expect), "peer closed with status %d: %s", -NEGIO_ERR_NOMEM,
                 negio_strerror(NEGIO_ERR_NOMEM));
        return strcmp(detail, expect) == 0;
    case NEGIO_ERR_PEER: {
        const char *reasons[] = {negio_strerror(NEGIO_ERR_NOMEM),
                                 f_is_server ? "server credentials unavailable"
                                             : "client credentials unavailable"};
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
            snprintf(expect, sizeof(expect), "peer reported: %s", reasons[i]);
            size_t n = strlen(expect);
            /* the reason, then nothing or "; " and what the mechanism made of F's token */
            if (strncmp(detail, expect, n) == 0 && (detail[n] == '\0' || detail[n] == ';'))
                return 1;
        }
        return 0;
    }
    case NEGIO_ERR_PROTOCOL: {
        /* an established P keeps what the unprotected frame said: F's reason */
        static const char head[] = "handshake error frame after establishment";
        snprintf(expect, sizeof(expect), "it said: %s)", negio_strerror(NEGIO_ERR_NOMEM));
        return p->established == 1 && strncmp(detail, head, sizeof(head) - 1) == 0 &&
               strstr(detail, expect) != NULL;
    }
    case NEGIO_ERR_TRUNCATED: {
        /* F never put a byte on the wire: nobody was waiting to be told. Inside TLS, also when
         * TLS could not carry F's report: F failed before its TLS handshake was done (the report
         * then waits, unencrypted, in F's output) or in the TLS layer itself (its detail says
         * so; after that nothing more can be encrypted, src/conn/conn.c tls_pump_out). */
        const char *why = negio_conn_error_detail(f->conn);
        return f->wire_out == 0 ||
               (test_transport_get() != TRANSPORT_PLAIN &&
                (negio_conn_pending_bytes(f->conn) > 0 || strstr(why, "TLS") != NULL ||
                 strstr(why, "certificate") != NULL));
    }
    default:
        return 0;
    }
}

static void describe(const char *path, long n, const run *r)
{
    fprintf(stderr,
            "%s, allocation %ld failed: create %s, client %s (%s), server %s (%s), established "
            "%d/%d, echoed %zu/%zu, closed %d/%d, wrong %d\n",
            path, n, negio_err_name(r->pair.create_err), negio_err_name(r->pair.client.err),
            negio_conn_error_detail(r->pair.client.conn), negio_err_name(r->pair.server.err),
            negio_conn_error_detail(r->pair.server.conn), r->pair.client.established,
            r->pair.server.established, r->echoed, NSCRIPT, r->pair.client.closed,
            r->pair.server.closed, r->wrong);
}

static void every_allocation_failure_ends_cleanly(test_path path)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    set_limits(cc);
    set_limits(sc);
    const char *name = test_path_name(path);

    /* the reference: nothing fails */
    run ref;
    run_once(&ref, cc, sc, 0);
    long total = negio__alloc_count();
    int ok = fully_successful(&ref);
    if (!ok)
        describe(name, 0, &ref);
    free_run(&ref);
    if (!ok) {
        negio_config_del(cc);
        negio_config_del(sc);
        fail_msg("the reference run failed");
    }

    long n;
    int failed_runs = 0, silent = 0, violations = 0;
    for (n = 1; n <= MAX_RUNS; n++) {
        run r;
        run_once(&r, cc, sc, n);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        if (injected == 0) {
            /* past the last allocation: this run is the reference again */
            if (!fully_successful(&r)) {
                describe(name, n, &r);
                violations++;
            }
            free_run(&r);
            break;
        }
        if (r.wrong) {
            describe(name, n, &r);
            fprintf(stderr, "%s, allocation %ld failed: a message was delivered wrong\n", name, n);
            violations++;
        }
        if (fully_successful(&r)) {
            /* the failure was absorbed: then nothing may differ from the reference */
            silent++;
            if (strcmp(r.client_peer, ref.client_peer) != 0 ||
                strcmp(r.server_peer, ref.server_peer) != 0 ||
                strcmp(r.local_name, ref.local_name) != 0 ||
                r.server_info.mech != ref.server_info.mech ||
                r.server_info.flags != ref.server_info.flags) {
                fprintf(stderr,
                        "%s, allocation %ld failed silently and changed the facts: peer "
                        "'%s'/'%s' (reference '%s'/'%s'), local name '%s' (reference '%s')\n",
                        name, n, r.client_peer, r.server_peer, ref.client_peer, ref.server_peer,
                        r.local_name, ref.local_name);
                violations++;
            }
        } else {
            failed_runs++;
            int nomem = r.pair.create_err == NEGIO_ERR_NOMEM ||
                        r.pair.client.err == NEGIO_ERR_NOMEM ||
                        r.pair.server.err == NEGIO_ERR_NOMEM;
            /* never reported established after its own failure */
            int still_up = (r.pair.client.err == NEGIO_ERR_NOMEM &&
                            negio_conn_is_established(r.pair.client.conn)) ||
                           (r.pair.server.err == NEGIO_ERR_NOMEM &&
                            negio_conn_is_established(r.pair.server.conn));
            /* the error names its cause */
            int no_detail = (r.pair.client.err == NEGIO_ERR_NOMEM &&
                             negio_conn_error_detail(r.pair.client.conn)[0] == '\0') ||
                            (r.pair.server.err == NEGIO_ERR_NOMEM &&
                             negio_conn_error_detail(r.pair.server.conn)[0] == '\0');
            /* the side that could not allocate, and what its peer must report */
            int bad_peer = 0;
            if (r.pair.client.err == NEGIO_ERR_NOMEM)
                bad_peer |= !consequence(&r.pair.server, &r.pair.client, 0);
            if (r.pair.server.err == NEGIO_ERR_NOMEM)
                bad_peer |= !consequence(&r.pair.client, &r.pair.server, 1);
            if (r.pair.create_err == NEGIO_ERR_NOMEM) /* a side never made: its peer never ran */
                bad_peer |= r.pair.client.err != 0 || r.pair.server.err != 0;
            if (!nomem || bad_peer || no_detail ||
                (r.pair.create_err != 0 && r.pair.create_err != NEGIO_ERR_NOMEM) || still_up) {
                describe(name, n, &r);
                violations++;
            }
        }
        free_run(&r);
    }
    if (n > MAX_RUNS)
        violations++;
    fprintf(stderr,
            "%s: %ld allocations in the reference run, %ld runs, %d failed cleanly, %d "
            "absorbed the failure, %d violations\n",
            name, total, n, failed_runs, silent, violations);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_int_equal(violations, 0);
}

static void kerberos(void **state)
{
    (void)state;
    every_allocation_failure_ends_cleanly(PATH_KERBEROS);
}

static void negotiate_kerberos(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("no mechanism: every path is the same one, run as kerberos");
    every_allocation_failure_ends_cleanly(PATH_NEG_KERBEROS);
}

static void negotiate_ntlm(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("no mechanism: every path is the same one, run as kerberos");
    every_allocation_failure_ends_cleanly(PATH_NEG_NTLM);
}

static void ntlm(void **state)
{
    (void)state;
    TEST_SKIP_UNDER_PLAIN_TLS("no mechanism: every path is the same one, run as kerberos");
    every_allocation_failure_ends_cleanly(PATH_NTLM);
}

/* A connector that fails sends its report whole or not at all: closing a server before
 * authentication puts a HANDSHAKE_ERROR with the reason in its output, and with the Nth
 * allocation failing the output must hold either nothing or that one frame, complete. Half a
 * frame would make the peer wait for bytes that never come (NEGIO_ERR_TRUNCATED, or the next
 * frame read as the rest of this one) instead of reading the reason. */
static void a_handshake_error_is_sent_whole_or_not_at_all(void **state)
{
    (void)state;
    char reason[256];
    memset(reason, 'r', sizeof(reason) - 1); /* longer than the output's first block */
    reason[sizeof(reason) - 1] = '\0';
    negio_config *sc;
    assert_int_equal(negio_config_new(&sc, NEGIO_ROLE_SERVER), NEGIO_OK);
    int whole = 0, empty = 0;
    for (long n = 1; n <= 100; n++) {
        negio_conn *c;
        assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK);
        negio__alloc_fail_after(n); /* counting from the close */
        assert_int_equal(negio_conn_close(c, 1, reason), NEGIO_OK);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        size_t len;
        const uint8_t *out = negio_conn_send_buf(c, &len);
        if (len == 0) {
            empty++;
        } else {
            negio__frame_hdr h;
            const char *why;
            assert_true(len >= NEGIO__HDR_LEN);
            assert_int_equal(negio__frame_decode(out, &h, &why, 0), 0);
            assert_int_equal(h.type, NEGIO__FT_HS_ERROR);
            if (h.length != len - NEGIO__HDR_LEN)
                fail_msg("allocation %ld failed: the output holds %zu bytes of a frame announcing "
                         "%u",
                         n, len - NEGIO__HDR_LEN, (unsigned)h.length);
            assert_int_equal(negio__get_u32(out + NEGIO__HDR_LEN), 0); /* no token */
            assert_memory_equal(out + NEGIO__HDR_LEN + 4, reason, strlen(reason));
            whole++;
        }
        negio_conn_del(c);
        if (injected == 0)
            break;
    }
    negio_config_del(sc);
    assert_true(whole > 0 && empty > 0); /* both outcomes were reached */
}

static int identity_fn_runs;

static int identity_fn(void *arg)
{
    (void)arg;
    identity_fn_runs++;
    return 0;
}

/* The identity layer allocates through negio's allocator like the rest (src/base/alloc.h), so its
 * failures are injected too: looking up an account fails at each of its allocations with
 * NEGIO_ERR_NOMEM and no result, and an impersonation that cannot save the thread's groups
 * returns NEGIO_ERR_NOMEM without running the function. ("root", allowed explicitly, is the one
 * account every test machine has; nothing here switches identities.) */
static void identity_calls_fail_cleanly_at_every_allocation(void **state)
{
    (void)state;
    negio_identity_policy root_allowed = {.allow_root = 1};
    long n;
    for (n = 1; n <= 1000; n++) {
        negio_user *u = NULL;
        negio__alloc_fail_after(n);
        int rc = negio_user_lookup(&u, "root", &root_allowed, NULL, 0);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        if (injected == 0) {
            assert_int_equal(rc, NEGIO_OK);
            assert_non_null(u);
            negio_user_del(u);
            break;
        }
        assert_int_equal(rc, NEGIO_ERR_NOMEM);
        assert_null(u);
    }
    if (n == 1)
        fail_msg("negio_user_lookup made no allocation through negio's allocator");

    negio_user *u;
    assert_int_equal(negio_user_lookup(&u, "root", &root_allowed, NULL, 0), NEGIO_OK);
    identity_fn_runs = 0;
    negio__alloc_fail_after(1);
    int rc = negio_impersonate(u, identity_fn, NULL, NULL);
    long injected = negio__alloc_injected();
    negio__alloc_fail_after(0);
    negio_user_del(u);
    assert_int_equal(injected, 1);
    assert_int_equal(rc, NEGIO_ERR_NOMEM);
    assert_int_equal(identity_fn_runs, 0);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kerberos),
        cmocka_unit_test(negotiate_kerberos),
        cmocka_unit_test(negotiate_ntlm),
        cmocka_unit_test(ntlm),
        cmocka_unit_test(a_handshake_error_is_sent_whole_or_not_at_all),
        cmocka_unit_test(identity_calls_fail_cleanly_at_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
