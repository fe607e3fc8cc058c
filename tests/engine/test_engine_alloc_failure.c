/* The engine when memory or threads run out (CHECKLIST "Resources": no abort() in library code,
 * every init call checked). This program links the engine and the connector built with the
 * allocation hook (src/base/alloc.h; negio_uv_hook_static in tests/CMakeLists.txt): the Nth of
 * negio's own allocations from now fails, on whatever thread it is made. Allocations inside
 * libuv, GSS-API and the mechanisms are not counted. For each N until a run makes fewer than N
 * allocations, the engine must answer with an error or close the connection concerned, never
 * abort, hang or leak (the ASan pass checks leaks), and must go on serving afterwards. */
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "engine/engine_support.h"
#include "support/net.h"

#ifndef NEGIO_ALLOC_HOOK
#error "test_engine_alloc_failure needs the allocation hook (negio_uv_hook_static)"
#endif

#define MAX_RUNS 5000
#define WAIT_MS 30000 /* a bound on a hang, generous for valgrind on a busy machine */

static int count_threads(void)
{
    return proc_entries("/proc/self/task", NULL, 0);
}

/* Waits until R has seen more messages than MESSAGES or more closes than CLOSED, or MS pass. */
static void recorder_wait_either(recorder *r, int messages, int closed, int ms)
{
    struct timespec ts = test_deadline_after_ms(ms);
    pthread_mutex_lock(&r->lock);
    while (r->messages <= messages && r->closed <= closed) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&r->lock);
}

/* Waits until engine E has no connection left or MS pass; returns how many are left. */
static unsigned wait_no_connections(negio_engine *e, int ms)
{
    TEST_POLL_EVERY(negio_engine_connections(e) == 0, ms, 2);
    return negio_engine_connections(e);
}

/* ---- engine creation ------------------------------------------------------------------------ */

/* negio_engine_new with each of its allocations failing in turn: NEGIO_ERR_NOMEM, nothing
 * returned, no thread left running (and nothing leaked). */
static void engine_creation_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    int threads0 = count_threads();
    long n;
    for (n = 1; n <= MAX_RUNS; n++) {
        negio_engine *e = NULL;
        negio_engine_options o = {.loops = 2, .workers = 2};
        negio__alloc_fail_after(n);
        int rc = negio_engine_new(&e, &o);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        if (injected == 0) {
            assert_int_equal(rc, NEGIO_OK);
            negio_engine_del(e);
            break;
        }
        assert_int_equal(rc, NEGIO_ERR_NOMEM);
        assert_null(e);
        assert_int_equal(count_threads(), threads0);
    }
    print_message("engine creation: %ld allocation(s), each failed once\n", n - 1);
    assert_true(n > 1);
}

/* ---- a connection's life ----------------------------------------------------------------------
 */

typedef struct pair {
    recorder srv, cli;
    uint16_t port;
    negio_config *cc;
} pair;

static void pair_start(pair *p)
{
    negio_engine_options so = {
        .loops = 2, .workers = 2, .handshake_timeout_ms = 3000, .shutdown_timeout_ms = 1000};
    negio_engine_options co = so;
    recorder_init(&p->srv, &so);
    p->srv.echo = 1;
    recorder_init(&p->cli, &co);
    negio_config *sc = test_server_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_listen(p->srv.e, "127.0.0.1:0", sc, &p->port), 0);
    negio_config_del(sc);
    p->cc = test_client_config(PATH_KERBEROS);
}

static void pair_stop(pair *p)
{
    negio_config_del(p->cc);
    recorder_free(&p->cli);
    recorder_free(&p->srv);
}

typedef struct outcome {
    int connected; /* negio_engine_connect's result */
    int written;   /* negio_engine_write's */
    int echoed;
    int closed; /* on_closed came on the client */
    negio_close_reason reason;
    int code;
} outcome;

/* Connects, writes "ping", waits for the echo or the end, closes, and waits until neither engine
 * holds a connection. Returns 0 if the exchange ended within its deadlines. */
static int exchange(pair *p, rec_conn *rc, outcome *out)
{
    memset(rc, 0, sizeof(*rc));
    memset(out, 0, sizeof(*out));
    int m0 = recorder_get(&p->cli, &p->cli.messages), c0 = recorder_get(&p->cli, &p->cli.closed);
    negio_econn *conn = NULL;
    out->connected = negio_engine_connect(p->cli.e, "127.0.0.1", p->port, p->cc, rc, &conn);
    if (out->connected == NEGIO_OK) {
        out->written = negio_engine_write(conn, "ping", 4);
        recorder_wait_either(&p->cli, m0, c0, WAIT_MS);
        out->echoed = recorder_get(&p->cli, &p->cli.messages) > m0;
        /* closing may fail for want of memory too: then again, as the application would */
        for (int tries = 0; tries < 3; tries++) {
            int rc_close = negio_engine_close(conn, 0);
            if (rc_close == NEGIO_OK || rc_close == NEGIO_ERR_CLOSED)
                break;
            assert_int_equal(rc_close, NEGIO_ERR_NOMEM);
        }
        int closed = recorder_wait(&p->cli, &p->cli.closed, c0 + 1, WAIT_MS) > c0;
        out->closed = closed;
        out->reason = rc->reason;
        out->code = rc->code;
        negio_econn_unref(conn);
    }
    unsigned left = wait_no_connections(p->cli.e, WAIT_MS) + wait_no_connections(p->srv.e, WAIT_MS);
    return out->connected == NEGIO_OK && !out->closed ? -1 : left == 0 ? 0 : -1;
}

/* A client and a server engine in this process exchange one message and close, with each of
 * the allocations made on the way (by the application's calls, the loops, the listener, the
 * step workers) failing in turn: each run ends within its deadline with both engines back to no
 * connection, and a run where nothing fails still works at the end. */
static void every_allocation_failure_in_a_connections_life_ends_cleanly(void **state)
{
    (void)state;
    static pair p;
    pair_start(&p);
    static rec_conn rc;
    outcome out;

    negio__alloc_fail_after(0);
    assert_int_equal(exchange(&p, &rc, &out), 0);
    long total = negio__alloc_count();
    assert_true(out.echoed);
    assert_int_equal(out.reason, NEGIO_CLOSE_CLEAN);

    long n;
    int failed = 0, absorbed = 0, stuck = 0;
    for (n = 1; n <= MAX_RUNS; n++) {
        negio__alloc_fail_after(n);
        int rc_ex = exchange(&p, &rc, &out);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        if (rc_ex != 0) {
            stuck++;
            print_message("allocation %ld: the exchange did not end (connect %s, write %s, "
                          "closed %d)\n",
                          n, negio_err_name(out.connected), negio_err_name(out.written),
                          out.closed);
        }
        if (injected == 0)
            break;
        if (out.echoed && out.reason == NEGIO_CLOSE_CLEAN)
            absorbed++;
        else
            failed++;
    }
    /* afterwards, nothing failing: served as before */
    assert_int_equal(exchange(&p, &rc, &out), 0);
    print_message("a connection's life: %ld allocations in the reference run, %ld failed in "
                  "turn: %d ended the exchange, %d were absorbed, %d left it hanging\n",
                  total, n - 1, failed, absorbed, stuck);
    pair_stop(&p);
    assert_int_equal(stuck, 0);
    assert_true(out.echoed);
    assert_int_equal(out.reason, NEGIO_CLOSE_CLEAN);
    assert_true(n > 1);
}

/* negio_engine_send from another thread whose command cannot be allocated: NEGIO_ERR_NOMEM, and
 * the bytes it had counted against the hard limit are given back. */
static void a_send_that_cannot_be_queued_fails_and_holds_nothing(void **state)
{
    (void)state;
    static pair p;
    pair_start(&p);
    static rec_conn rc;
    negio_econn *conn;
    assert_int_equal(negio_engine_connect(p.cli.e, "127.0.0.1", p.port, p.cc, &rc, &conn), 0);
    assert_int_equal(recorder_wait(&p.cli, &p.cli.authenticated, 1, WAIT_MS), 1);
    size_t before = negio_econn_queued(conn);
    negio__alloc_fail_after(1);
    int rc_send = negio_engine_send(p.cli.e, conn, "lost", 4, NEGIO_LEVEL_SEAL);
    negio__alloc_fail_after(0);
    size_t after = negio_econn_queued(conn);
    assert_int_equal(negio_engine_write(conn, "kept", 4), 0);
    assert_int_equal(recorder_wait(&p.cli, &p.cli.messages, 1, WAIT_MS), 1);
    assert_string_equal(rc.first, "kept");
    assert_int_equal(negio_engine_close(conn, 0), 0);
    assert_int_equal(recorder_wait(&p.cli, &p.cli.closed, 1, WAIT_MS), 1);
    negio_econn_unref(conn);
    pair_stop(&p);
    assert_int_equal(rc_send, NEGIO_ERR_NOMEM);
    assert_true(after <= before);
}

/* negio_engine_del (its shutdown: the signals to the loops, the protected closes) with each of
 * its allocations failing in turn, an established connection open: it returns, every thread
 * ends, nothing leaks. */
static void engine_shutdown_completes_at_every_allocation_failure(void **state)
{
    (void)state;
    int threads0 = count_threads();
    long n;
    for (n = 1; n <= MAX_RUNS; n++) {
        static pair p;
        pair_start(&p);
        static rec_conn rc;
        negio_econn *conn;
        assert_int_equal(negio_engine_connect(p.cli.e, "127.0.0.1", p.port, p.cc, &rc, &conn), 0);
        assert_int_equal(negio_engine_write(conn, "ping", 4), 0);
        assert_int_equal(recorder_wait(&p.cli, &p.cli.messages, 1, WAIT_MS), 1);
        negio_econn_unref(conn);
        negio__alloc_fail_after(n);
        negio_config_del(p.cc);
        recorder_free(&p.cli);
        recorder_free(&p.srv);
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        assert_int_equal(count_threads(), threads0);
        if (injected == 0)
            break;
    }
    print_message("shutdown: %ld allocation(s), each failed once\n", n - 1);
}

/* ---- relays --------------------------------------------------------------------------------- */

/* A relay (one end of a socketpair, the test holding the other) on an authenticated connection to
 * an echo server: from then on each allocation fails in turn while 32 KiB go through it and back
 * (the relay's socket has a small send buffer: the echo waits in the relay's own output), and the
 * test's end of the socket is closed. Whatever ends the connection, a relay's own
 * failure is reported as engine.h says, NEGIO_ERR_ADDRESS, NEGIO_ERR_SYSTEM or NEGIO_ERR_NOMEM
 * with a detail beginning "relay: "; and its allocations (the read buffer, a message held before
 * the connector takes it, output the socket has not taken) do fail so. */
static void a_relays_failures_are_reported_with_the_codes_engine_h_lists(void **state)
{
    (void)state;
    static pair p;
    pair_start(&p);
    static rec_conn rc;
    int relay_nomem = 0, other_relay_codes = 0;
    long n;
    for (n = 1; n <= MAX_RUNS; n++) {
        memset(&rc, 0, sizeof(rc));
        int a0 = recorder_get(&p.cli, &p.cli.authenticated);
        int c0 = recorder_get(&p.cli, &p.cli.closed);
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        int small = 4096;
        assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        negio_econn *conn;
        assert_int_equal(negio_engine_connect(p.cli.e, "127.0.0.1", p.port, p.cc, &rc, &conn), 0);
        assert_int_equal(negio_engine_relay(conn, sv[1], NULL), 0);
        assert_int_equal(recorder_wait(&p.cli, &p.cli.authenticated, a0 + 1, WAIT_MS), a0 + 1);
        negio__alloc_fail_after(n);
        static uint8_t data[32768];
        if (test_write_all(sv[0], data, sizeof(data)) == 0)
            (void)test_read_all(sv[0], data, sizeof(data), 2000);
        close(sv[0]);
        int closed = recorder_wait(&p.cli, &p.cli.closed, c0 + 1, WAIT_MS) > c0;
        long injected = negio__alloc_injected();
        negio__alloc_fail_after(0);
        negio_econn_unref(conn);
        assert_true(closed);
        assert_int_equal(wait_no_connections(p.cli.e, WAIT_MS), 0);
        assert_int_equal(wait_no_connections(p.srv.e, WAIT_MS), 0);
        if (strncmp(rc.detail, "relay: ", 7) == 0) {
            if (rc.code == NEGIO_ERR_NOMEM)
                relay_nomem++;
            else if (rc.code != NEGIO_ERR_ADDRESS && rc.code != NEGIO_ERR_SYSTEM)
                other_relay_codes++;
            assert_int_equal(rc.reason, NEGIO_CLOSE_ERROR);
        }
        if (injected == 0)
            break;
    }
    pair_stop(&p);
    print_message("relay: %ld allocation(s) failed in turn, %d reported as the relay's "
                  "NEGIO_ERR_NOMEM\n",
                  n - 1, relay_nomem);
    assert_int_equal(other_relay_codes, 0);
    assert_true(relay_nomem > 0);
}

/* ---- threads that cannot be created --------------------------------------------------------- */

/* Run as a child (this program again, NEGIO_TEST_AS_LIMIT_MB set): with the address space
 * limited to what the process uses plus that many MiB, thread stacks run out after a few
 * threads. Exits 0 if negio_engine_new succeeded (and the engine was deleted), 10 for
 * NEGIO_ERR_SYSTEM, 11 for NEGIO_ERR_NOMEM, 12 for anything else; an abort() is a signal. */
static int child_with_limited_address_space(const char *mb)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 12;
    char line[256];
    unsigned long vm_kb = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        sscanf(line, "VmSize: %lu kB", &vm_kb);
    fclose(f);
    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = (rlim_t)(vm_kb * 1024 + strtoul(mb, NULL, 10) * 1024 * 1024);
    if (vm_kb == 0 || setrlimit(RLIMIT_AS, &lim) != 0)
        return 12;
    negio_engine *e;
    negio_engine_options o = {.loops = 3, .workers = 3};
    int rc = negio_engine_new(&e, &o);
    if (rc == NEGIO_OK) {
        negio_engine_del(e);
        return 0;
    }
    return rc == NEGIO_ERR_SYSTEM ? 10 : rc == NEGIO_ERR_NOMEM ? 11 : 12;
}

/* Threads that cannot be created (their stacks do not fit in the address space left): engine
 * creation fails with NEGIO_ERR_SYSTEM (or NEGIO_ERR_NOMEM) and stops the threads it had
 * started, wherever it stopped; it never aborts. In a fresh process for each limit (this
 * program again), so that no stack is cached from earlier threads. Plain builds only: the
 * sanitizers' runtimes need address space of their own. */
static void a_thread_that_cannot_be_created_fails_engine_creation_cleanly(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip();
#endif
    int outcomes[4] = {0}; /* ok, system, nomem, other */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(len > 0);
    self[len] = '\0';
    /* each thread takes an 8 MiB stack (RLIMIT_STACK) and its guard page */
    for (int mb = 1; mb <= 64; mb += 9) {
        char env[64];
        snprintf(env, sizeof(env), "NEGIO_TEST_AS_LIMIT_MB=%d", mb);
        char *envp[] = {env, NULL};
        char *argv[] = {self, NULL};
        pid_t pid;
        assert_int_equal(posix_spawn(&pid, self, NULL, NULL, argv, envp), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status))
            fail_msg("with %d MiB of address space left, engine creation killed the process "
                     "(signal %d)",
                     mb, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        int code = WEXITSTATUS(status);
        assert_true(code == 0 || (code >= 10 && code <= 12));
        outcomes[code == 0 ? 0 : code - 9]++;
        print_message("%d MiB of address space left: %s\n", mb,
                      code == 0    ? "created"
                      : code == 10 ? "NEGIO_ERR_SYSTEM"
                      : code == 11 ? "NEGIO_ERR_NOMEM"
                                   : "another error");
    }
    assert_int_equal(outcomes[3], 0);
    assert_true(outcomes[1] > 0);
}

int main(void)
{
    const char *mb = getenv("NEGIO_TEST_AS_LIMIT_MB");
    if (mb != NULL)
        return child_with_limited_address_space(mb);
    test_realm_get();
    if (getenv("NEGIO_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("NEGIO_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_creation_fails_cleanly_at_every_allocation),
        cmocka_unit_test(a_thread_that_cannot_be_created_fails_engine_creation_cleanly),
        cmocka_unit_test(a_send_that_cannot_be_queued_fails_and_holds_nothing),
        cmocka_unit_test(every_allocation_failure_in_a_connections_life_ends_cleanly),
        cmocka_unit_test(engine_shutdown_completes_at_every_allocation_failure),
        cmocka_unit_test(a_relays_failures_are_reported_with_the_codes_engine_h_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
