/* Engine tests over loopback against the real throwaway KDC. The deadlines (handshake, idle,
 * the end of a security context) are met on the test clock (negio__engine_advance_clock, in the
 * test build of the engine) rather than waited for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <krb5.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_internal.h" /* negio__engine_advance_clock */
#include "engine/engine_support.h"
#include "support/net.h"
#include "support/tokens.h"

#ifndef NEGIO_TEST_HOOKS
#error "test_engine needs the test clock (negio_uv_hook_static)"
#endif

static uint16_t start_server(recorder *srv, negio_engine_options *o, negio_level min)
{
    recorder_init(srv, o);
    negio_config *sc = test_server_config(PATH_KERBEROS);
    negio_config_set_min_level(sc, min);
    uint16_t port = 0;
    assert_int_equal(negio_engine_listen(srv->e, "127.0.0.1:0", sc, &port), 0);
    negio_config_del(sc);
    assert_true(port > 0);
    return port;
}

/* One client per mechanism path: authenticate, send at every level and the default, get each
 * echo back at the level it was sent, close cleanly. */
static void echo_over_every_mechanism_path(void **state)
{
    (void)state;
    recorder srv, cli;
    negio_engine_options so = {.loops = 2}, co = {.loops = 2};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_NONE);
    srv.echo = 1;
    negio_config *scfg = test_server_config(PATH_KERBEROS);
    negio_config_del(scfg);
    recorder_init(&cli, &co);
    cli.echo = 0;
    rec_conn rc[PATH_COUNT];
    memset(rc, 0, sizeof(rc));
    negio_econn *conns[PATH_COUNT];
    for (int p = 0; p < PATH_COUNT; p++) {
        negio_config *cc = test_client_config((test_path)p);
        negio_config_set_min_level(cc, NEGIO_LEVEL_NONE);
        assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &rc[p], &conns[p]), 0);
        negio_config_del(cc);
        /* written before authentication: must go out after it, in order */
        assert_int_equal(negio_engine_send(cli.e, conns[p], "none", 4, NEGIO_LEVEL_NONE), 0);
        assert_int_equal(negio_engine_send(cli.e, conns[p], "sign", 4, NEGIO_LEVEL_SIGN), 0);
        assert_int_equal(negio_engine_send(cli.e, conns[p], "seal", 4, NEGIO_LEVEL_SEAL), 0);
        assert_int_equal(negio_engine_write(conns[p], "dflt", 4), 0);
    }
    int got = recorder_wait(&cli, &cli.messages, 4 * PATH_COUNT, 20000);
    for (int p = 0; p < PATH_COUNT; p++) {
        if (rc[p].closed || rc[p].nmsgs != 4)
            fprintf(stderr, "%s: closed %d %s %s, %d messages\n", test_path_name((test_path)p),
                    rc[p].closed, negio_close_reason_name(rc[p].reason), rc[p].detail, rc[p].nmsgs);
    }
    assert_int_equal(got, 4 * PATH_COUNT);
    for (int p = 0; p < PATH_COUNT; p++) {
        assert_true(rc[p].authenticated);
        assert_int_equal(rc[p].mech, test_path_mech((test_path)p));
        /* Kerberos authenticates the server; inside TLS with certificates, so does TLS */
        assert_int_equal(rc[p].server_authenticated,
                         test_path_mech((test_path)p) == NEGIO_MECH_KERBEROS ||
                             test_transport_get() == TRANSPORT_TLS_NEGOTIATE);
        assert_string_equal(rc[p].first, "none");
        assert_int_equal(rc[p].levels[0], NEGIO_LEVEL_NONE);
        assert_int_equal(rc[p].levels[1], NEGIO_LEVEL_SIGN);
        assert_int_equal(rc[p].levels[2], NEGIO_LEVEL_SEAL);
        assert_int_equal(rc[p].levels[3], NEGIO_LEVEL_SEAL);
        assert_int_equal(negio_engine_close(conns[p], 0), 0);
    }
    assert_int_equal(recorder_wait(&cli, &cli.closed, PATH_COUNT, 10000), PATH_COUNT);
    assert_int_equal(recorder_wait(&srv, &srv.closed, PATH_COUNT, 10000), PATH_COUNT);
    for (int p = 0; p < PATH_COUNT; p++) {
        assert_int_equal(rc[p].reason, NEGIO_CLOSE_CLEAN);
        negio_econn_unref(conns[p]);
    }
    assert_int_equal(srv.closed_by_reason[NEGIO_CLOSE_CLEAN], PATH_COUNT);
    recorder_free(&cli);
    recorder_free(&srv);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && atoi(v) > 0 ? atoi(v) : dflt;
}

/* Deterministic message J of connection I: size and content depend on both. */
static size_t make_message(uint8_t *buf, int i, int j)
{
    size_t n = 40 + (size_t)((i * 131 + j * 977) % 3000);
    unsigned seed = (unsigned)(i * 7919 + j * 104729 + 1);
    int k = snprintf((char *)buf, n, "c%d-m%d:", i, j);
    for (size_t x = (size_t)k; x < n; x++)
        buf[x] = (uint8_t)test_rand(&seed);
    return n;
}

static negio_level level_of(int i, int j)
{
    return (i + j) % 2 ? NEGIO_LEVEL_SIGN : NEGIO_LEVEL_SEAL;
}

/* At least 1,000 connections authenticated at the same time over every mechanism path, each
 * exchanging messages at mixed levels; every byte, level and the order are checked. */
static void a_thousand_concurrent_connections_exchange_messages_intact(void **state)
{
    (void)state;
    const int n = env_int("NEGIO_TEST_CONNECTIONS", 1000), per = 4;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)(2 * n + 200)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    recorder srv, cli;
    negio_engine_options so = {.loops = 2, .max_connections = (unsigned)n + 10};
    negio_engine_options co = {.loops = 2, .handshake_timeout_ms = 60000};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn *rc = calloc((size_t)n, sizeof(*rc));
    negio_econn **conns = calloc((size_t)n, sizeof(*conns));
    double t0 = test_now_s();
    for (int i = 0; i < n; i++) {
        negio_config *cc = test_client_config((test_path)(i % PATH_COUNT));
        assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &rc[i], &conns[i]), 0);
        negio_config_del(cc);
    }
    int auth = recorder_wait(&cli, &cli.authenticated, n, 120000);
    double t1 = test_now_s();
    fprintf(stderr, "%d/%d authenticated in %.2f s; server holds %u connections\n", auth, n,
            t1 - t0, negio_engine_connections(srv.e));
    assert_int_equal(auth, n);
    /* all of them open at once */
    assert_int_equal(negio_engine_connections(srv.e), (unsigned)n);
    assert_int_equal(cli.closed, 0);
    uint8_t buf[4096];
    uint32_t *expect = calloc((size_t)n, sizeof(*expect));
    for (int j = 0; j < per; j++) {
        for (int i = 0; i < n; i++) {
            size_t len = make_message(buf, i, j);
            expect[i] = checksum_update(j == 0 ? 0 : expect[i], buf, len);
            assert_int_equal(negio_engine_send(cli.e, conns[i], buf, len, level_of(i, j)), 0);
        }
    }
    int got = recorder_wait(&cli, &cli.messages, n * per, 120000);
    fprintf(stderr, "%d/%d echoes in %.2f s\n", got, n * per, test_now_s() - t1);
    assert_int_equal(got, n * per);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rc[i].nmsgs, per);
        assert_int_equal(rc[i].checksum, expect[i]);
        for (int j = 0; j < per; j++)
            assert_int_equal(rc[i].levels[j], level_of(i, j));
        assert_int_equal(rc[i].mech, test_path_mech((test_path)(i % PATH_COUNT)));
        negio_engine_close(conns[i], 0);
    }
    assert_int_equal(recorder_wait(&cli, &cli.closed, n, 60000), n);
    assert_int_equal(recorder_wait(&srv, &srv.closed, n, 60000), n);
    assert_int_equal(srv.closed_by_reason[NEGIO_CLOSE_CLEAN], n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rc[i].reason, NEGIO_CLOSE_CLEAN);
        negio_econn_unref(conns[i]);
    }
    free(expect);
    free(conns);
    free(rc);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* A KDC that accepts connections and never answers: handshakes that need it wait on a worker and
 * time out (the test clock moved past the deadline), while connections already authenticated
 * carry on at full speed. */
static void a_stalled_kdc_does_not_slow_authenticated_connections(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    recorder srv, cli;
    negio_engine_options so = {.loops = 1}, co = {.loops = 1, .handshake_timeout_ms = 60000};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn a = {0}, b = {0}, c = {0};
    negio_econn *ca, *cb, *cc;
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cfg, &a, &ca), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 1, 10000), 1);

    pid_t kdc = test_realm_kdc_pid();
    assert_int_equal(kill(kdc, SIGSTOP), 0);
    negio_config *pw = test_client_config(PATH_KERBEROS);
    negio_config_set_ccache(pw, r->empty_ccache);
    assert_int_equal(negio_config_set_password(pw, "alice", r->alice_pw), 0);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, pw, &b, &cb), 0);
    /* B's first step is blocked on the KDC in a worker once its request waits, unread, in a
     * socket of the stopped KDC */
    int sockets;
    TEST_POLL_UNTIL(test_tcp_unread_at((uint16_t)r->kdc_port, &sockets) > 0, 10000);
    int b_waits = test_tcp_unread_at((uint16_t)r->kdc_port, &sockets) > 0;
    double t0 = test_now_s();
    for (int i = 1; i <= 200; i++) {
        char m[32];
        int len = snprintf(m, sizeof(m), "t0-%d", i);
        assert_int_equal(negio_engine_write(ca, m, (size_t)len), 0);
    }
    int echoed = recorder_wait(&cli, &cli.messages, 200, 10000);
    double took = test_now_s() - t0;
    int b_closed_early = __atomic_load_n(&b.closed, __ATOMIC_ACQUIRE);
    negio__engine_advance_clock(cli.e, 60000); /* B's handshake deadline passes */
    int b_closed = recorder_wait(&cli, &cli.closed, 1, 5000);
    kill(kdc, SIGCONT); /* before any assertion can end the test */
    fprintf(stderr, "200 echoes in %.3f s while the KDC was stalled; B: %s (%s)\n", took,
            negio_close_reason_name(b.reason), b.detail);
    assert_true(b_waits);
    assert_int_equal(echoed, 200);
    assert_int_equal(a.order_errors, 0);
    assert_false(b_closed_early); /* the echoes did not wait for B to give up */
    assert_true(took < 1.0);
    assert_int_equal(b_closed, 1);
    assert_int_equal(b.reason, NEGIO_CLOSE_TIMEOUT);
    assert_false(b.authenticated);

    /* with the KDC back, a new password handshake succeeds */
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, pw, &c, &cc), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 2, 20000), 2);
    assert_true(c.authenticated);
    negio_config_del(cfg);
    negio_config_del(pw);
    negio_econn_unref(ca);
    negio_econn_unref(cb);
    negio_econn_unref(cc);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* A fresh credential cache holding alice's TGT and no service ticket: its first connection needs
 * the KDC. */
static void fresh_tgt(const char *ccache)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "kinit -c '%s' alice < '%s/alice.password' >/dev/null 2>&1", ccache,
             test_realm_get()->dir);
    assert_int_equal(system(cmd), 0);
}

/* The KDC down (its port refusing connections): a handshake that needs it fails at once, with an
 * error that names the KDC, and connections already authenticated go on; when the KDC is back,
 * handshakes succeed again. */
static void a_kdc_that_is_down_is_named_and_established_connections_go_on(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    recorder srv, cli;
    negio_engine_options so = {.loops = 1}, co = {.loops = 1, .handshake_timeout_ms = 10000};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn a = {0}, b = {0}, c = {0};
    negio_econn *ca, *cb, *cc;
    negio_config *up = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, up, &a, &ca), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 1, 10000), 1);

    char ccache[400];
    snprintf(ccache, sizeof(ccache), "FILE:%s/cc-kdc-down", r->dir);
    fresh_tgt(ccache);
    negio_config *needs_kdc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_ccache(needs_kdc, ccache), 0);
    test_realm_stop_kdc();
    double t0 = test_now_s();
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, needs_kdc, &b, &cb), 0);
    int closed = recorder_wait(&cli, &cli.closed, 1, 10000);
    double took = test_now_s() - t0;
    assert_int_equal(negio_engine_write(ca, "still here", 10), 0);
    int echoed = recorder_wait(&cli, &cli.messages, 1, 5000);
    test_realm_restart_kdc(0); /* before any assertion can end the test */
    fprintf(stderr, "KDC down: failed in %.3f s: %s\n", took, b.detail);
    assert_int_equal(closed, 1);
    assert_int_equal(b.reason, NEGIO_CLOSE_ERROR);
    assert_int_equal(b.code, NEGIO_ERR_HANDSHAKE);
    assert_non_null(strstr(b.detail, "Cannot contact any KDC for realm"));
    assert_true(took < 5.0); /* refused at once, not the handshake deadline */
    assert_int_equal(echoed, 1);
    assert_false(__atomic_load_n(&a.closed, __ATOMIC_ACQUIRE));

    /* the KDC back: the same credentials authenticate */
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, needs_kdc, &c, &cc), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 2, 20000), 2);
    assert_true(c.authenticated);
    negio_config_del(up);
    negio_config_del(needs_kdc);
    negio_econn_unref(ca);
    negio_econn_unref(cb);
    negio_econn_unref(cc);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* A server refuses with a HANDSHAKE_ERROR whose explanation (a step on a worker: here the clock
 * probe of a clock-skew KRB-ERROR, with the KDC stopped) outlives the client's handshake deadline:
 * the client reports the refusal, NEGIO_ERR_PEER with the server's reason, not a timeout. */
static void a_refusal_whose_explanation_outlives_the_deadline_is_the_refusal(void **state)
{
    (void)state;
    if (test_transport_get() != TRANSPORT_PLAIN)
        skip(); /* the server here is raw bytes, no TLS */
    recorder cli;
    negio_engine_options co = {.loops = 1, .handshake_timeout_ms = 1000};
    recorder_init(&cli, &co);
    uint16_t port;
    int lfd = test_tcp_listen(&port);
    assert_true(lfd >= 0);
    rec_conn a = {0};
    negio_econn *ca;
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cfg, &a, &ca), 0);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    uint8_t hdr[8];
    assert_int_equal(test_read_all(fd, hdr, sizeof(hdr), 10000), 0); /* the AP-REQ's frame */
    size_t blen = (size_t)hdr[4] << 24 | (size_t)hdr[5] << 16 | (size_t)hdr[6] << 8 | hdr[7];
    uint8_t *body = malloc(blen);
    assert_non_null(body);
    assert_int_equal(test_read_all(fd, body, blen, 10000), 0);
    free(body);

    size_t tlen;
    uint8_t *tok = test_krb_error_token(KRB5KRB_AP_ERR_SKEW, (long)time(NULL) + 3600, &tlen);
    assert_non_null(tok);
    uint8_t *err = test_hs_error_body(tok, tlen, "clock skew", &blen);
    free(tok);
    const uint8_t eh[8] = {NEGIO_PROTOCOL_VERSION, 2, 0, 0, 0, 0, (uint8_t)(blen >> 8),
                           (uint8_t)blen};
    pid_t kdc = test_realm_kdc_pid();
    assert_int_equal(kill(kdc, SIGSTOP), 0); /* the explanation's clock probe waits */
    int sent = test_write_all(fd, eh, sizeof(eh)) == 0 && test_write_all(fd, err, blen) == 0;
    free(err);
    double t0 = test_now_s();
    int closed = recorder_wait(&cli, &cli.closed, 1, 10000);
    double took = test_now_s() - t0;
    kill(kdc, SIGCONT); /* before any assertion can end the test */
    fprintf(stderr, "refused, explanation pending at the deadline: closed after %.2f s: %s\n", took,
            a.detail);
    assert_true(sent);
    assert_int_equal(closed, 1);
    assert_int_equal(a.reason, NEGIO_CLOSE_ERROR);
    assert_int_equal(a.code, NEGIO_ERR_PEER);
    assert_non_null(strstr(a.detail, "peer reported: clock skew (not explained further"));
    close(fd);
    close(lfd);
    negio_config_del(cfg);
    negio_econn_unref(ca);
    recorder_free(&cli);
}

/* 200 handshakes waiting on a KDC that accepts and never answers (stopped): the loop they belong
 * to goes on serving an authenticated connection with round trips of milliseconds, every one of
 * them ends at the handshake deadline (on the test clock) saying a GSS-API step was still
 * running, and handshakes succeed once the KDC answers again. */
static void handshakes_waiting_on_a_dead_kdc_leave_the_loop_responsive(void **state)
{
    (void)state;
    if (test_transport_get() != TRANSPORT_PLAIN) {
        /* inside TLS the loop also runs the TLS handshakes of the 200 connections (seconds of
         * CPU under the sanitizers), which is not what this measures; the worker pool that keeps
         * the KDC off the loop is the same on every transport */
        skip();
    }
    const test_realm *r = test_realm_get();
    enum { PROBES = 50 };
    /* 200, fewer where NEGIO_TEST_CONNECTIONS is lowered for a slow run (TSan, valgrind) */
    int waiting = env_int("NEGIO_TEST_CONNECTIONS", 1000) / 2;
    const int WAITING = waiting < 200 ? waiting : 200;
    recorder srv, cli;
    negio_engine_options so = {.loops = 1}, co = {.loops = 1, .handshake_timeout_ms = 60000};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn probe = {0};
    negio_econn *cp;
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cfg, &probe, &cp), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 1, 10000), 1);

    negio_config *pw = test_client_config(PATH_KERBEROS);
    negio_config_set_ccache(pw, r->empty_ccache);
    assert_int_equal(negio_config_set_password(pw, "alice", r->alice_pw), 0);
    pid_t kdc = test_realm_kdc_pid();
    assert_int_equal(kill(kdc, SIGSTOP), 0);
    rec_conn *w = calloc(WAITING, sizeof(*w));
    negio_econn **wc = calloc(WAITING, sizeof(*wc));
    assert_true(w != NULL && wc != NULL);
    for (int i = 0; i < WAITING; i++)
        assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, pw, &w[i], &wc[i]), 0);
    double worst = 0, total = 0;
    int answered = 0;
    for (int i = 1; i <= PROBES; i++) {
        char m[32];
        int len = snprintf(m, sizeof(m), "t0-%d", i);
        double t0 = test_now_s();
        assert_int_equal(negio_engine_write(cp, m, (size_t)len), 0);
        if (recorder_wait(&cli, &cli.messages, i, UNDER_VALGRIND() ? 20000 : 5000) < i)
            break;
        double rtt = test_now_s() - t0;
        answered++;
        total += rtt;
        worst = rtt > worst ? rtt : worst;
    }
    /* the deadline passes; again for a connection whose deadline started after the clock moved
     * (its TCP connect had not completed) */
    int ended = 0;
    for (int i = 0; i < 20 && ended < WAITING; i++) {
        negio__engine_advance_clock(cli.e, 60000);
        ended = recorder_wait(&cli, &cli.closed, WAITING, 1000);
    }
    kill(kdc, SIGCONT); /* before any assertion can end the test */
    fprintf(stderr,
            "%d probes while %d handshakes waited on a stopped KDC: mean %.2f ms, worst "
            "%.2f ms; %d ended: %s\n",
            answered, WAITING, 1000 * total / (answered ? answered : 1), 1000 * worst, ended,
            w[0].detail);
    assert_int_equal(answered, PROBES);
    /* a loop blocked on the KDC would answer nothing until the KDC came back (every probe was
     * answered); the bound only says no probe waited long: the loop also runs the TLS handshakes
     * of the waiting connections in the TLS variant, slow under sanitizers, and under valgrind
     * for seconds (50 of them: 2.3 and 3.1 s seen), so there only the answers count */
    if (!UNDER_VALGRIND())
        assert_true(worst < 1.5);
    assert_int_equal(ended, WAITING);
    for (int i = 0; i < WAITING; i++) {
        assert_int_equal(w[i].reason, NEGIO_CLOSE_TIMEOUT);
        assert_non_null(strstr(w[i].detail, "a GSS-API step was still running"));
        negio_econn_unref(wc[i]);
    }
    assert_false(__atomic_load_n(&probe.closed, __ATOMIC_ACQUIRE));

    /* the KDC answering again: a password handshake succeeds */
    rec_conn d = {0};
    negio_econn *cd;
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, pw, &d, &cd), 0);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 2, 30000), 2);
    assert_true(d.authenticated);
    negio_econn_unref(cd);
    free(w);
    free(wc);
    negio_config_del(cfg);
    negio_config_del(pw);
    negio_econn_unref(cp);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* One established Kerberos connection between two engines (one loop each) that close at the
 * end of their own security context when asked: the client in run 1, the server in run 2. */
typedef struct expiry_run {
    recorder srv, cli;
    rec_conn a;
    negio_econn *ca;
} expiry_run;

static void expiry_start(expiry_run *x, int run, const char *ccache)
{
    negio_engine_options so = {.loops = 1, .close_at_context_expiry = run == 2},
                         co = {.loops = 1, .close_at_context_expiry = run == 1};
    uint16_t port = start_server(&x->srv, &so, NEGIO_LEVEL_SIGN);
    x->srv.echo = 1;
    recorder_init(&x->cli, &co);
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    if (ccache != NULL)
        assert_int_equal(negio_config_set_ccache(cfg, ccache), 0);
    memset(&x->a, 0, sizeof(x->a));
    assert_int_equal(negio_engine_connect(x->cli.e, "127.0.0.1", port, cfg, &x->a, &x->ca), 0);
    negio_config_del(cfg);
    assert_int_equal(recorder_wait(&x->cli, &x->cli.authenticated, 1, 10000), 1);
    assert_int_equal(recorder_wait(&x->srv, &x->srv.authenticated, 1, 5000), 1);
}

static void expiry_stop(expiry_run *x)
{
    negio_econn_unref(x->ca);
    recorder_free(&x->cli);
    recorder_free(&x->srv);
}

/* A Kerberos context ends with its ticket. By default an established connection outlives it
 * (MIT's per-message calls go on working after the end time). With close_at_context_expiry a
 * side closes it when its own context ends, negio_auth_info.lifetime after establishment, with
 * a protected CLOSE of status 120: the client at the ticket's end time (run 1), the server, MIT's
 * acceptor, at that time plus the allowed clock skew (run 2). Those runs move the engines' clock
 * (the test clock): nothing closes 10 s before that side's end, and it closes once 10 s past.
 * Run 0, where nobody asks, waits in real time instead, because MIT checks its own clock: a
 * ticket of 2 s ends, and the skew is cut to 1 s (a krb5.conf of the test's own before the
 * realm's) so that the server's context ends too; with the engines' clock an hour past both
 * ends as well, nothing closes, and messages flow. */
static void connections_close_at_context_expiry_only_when_asked(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    for (int run = 1; run <= 2; run++) {
        expiry_run x;
        expiry_start(&x, run, NULL);
        recorder *closer = run == 1 ? &x.cli : &x.srv, *other = run == 1 ? &x.srv : &x.cli;
        uint32_t life = closer->lifetime; /* set before the authentication was counted */
        assert_true(life > 20 && life != UINT32_MAX);
        negio__engine_advance_clock(closer->e, (uint64_t)(life - 10) * 1000);
        assert_int_equal(negio_engine_write(x.ca, "before the end", 14), 0);
        assert_int_equal(recorder_wait(&x.cli, &x.cli.messages, 1, 5000), 1);
        assert_int_equal(recorder_get(&x.cli, &x.cli.closed), 0);
        assert_int_equal(recorder_get(&x.srv, &x.srv.closed), 0);
        negio__engine_advance_clock(closer->e, 20000);
        assert_int_equal(recorder_wait(&x.cli, &x.cli.closed, 1, 5000), 1);
        assert_int_equal(recorder_wait(&x.srv, &x.srv.closed, 1, 5000), 1);
        fprintf(stderr, "run %d: lifetime %u s; client %s %s: %s\n", run, (unsigned)life,
                negio_close_reason_name(x.a.reason), negio_err_name(x.a.code), x.a.detail);
        assert_int_equal(closer->closed_by_reason[NEGIO_CLOSE_EXPIRED], 1);
        assert_int_equal(other->closed_by_reason[NEGIO_CLOSE_ERROR], 1);
        if (run == 2) { /* the client reads the server's protected CLOSE */
            assert_int_equal(x.a.code, NEGIO_ERR_REJECTED);
            assert_non_null(strstr(x.a.detail, "status 120"));
        }
        expiry_stop(&x);
    }

    const char *realm_conf = getenv("KRB5_CONFIG");
    char conf[400], both[900], ccache[400], cmd[1200];
    snprintf(conf, sizeof(conf), "%s/skew1.conf", r->dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("[libdefaults]\n  clockskew = 1\n", f);
    fclose(f);
    snprintf(both, sizeof(both), "%s:%s", conf, realm_conf);
    char *saved = strdup(realm_conf);
    assert_non_null(saved);
    snprintf(ccache, sizeof(ccache), "FILE:%s/cc-expiry", r->dir);
    snprintf(cmd, sizeof(cmd), "kinit -l 2s -c '%s' alice < '%s/alice.password' >/dev/null 2>&1",
             ccache, r->dir);
    double t0 = test_now_s();
    assert_int_equal(system(cmd), 0);
    setenv("KRB5_CONFIG", both, 1);
    expiry_run x;
    expiry_start(&x, 0, ccache);
    uint32_t life = x.a.lifetime > x.srv.lifetime ? x.a.lifetime : x.srv.lifetime;
    fprintf(stderr, "run 0: lifetimes %u s (client), %u s (server)\n", (unsigned)x.a.lifetime,
            (unsigned)x.srv.lifetime);
    negio__engine_advance_clock(x.cli.e, ((uint64_t)life + 3600) * 1000);
    negio__engine_advance_clock(x.srv.e, ((uint64_t)life + 3600) * 1000);
    /* the real wait: past the ticket's end and the skew (2 + 1 s), a second to spare */
    int ms = (int)(1000 * (t0 + 4.0 - test_now_s()));
    assert_int_equal(recorder_wait(&x.cli, &x.cli.closed, 1, ms > 0 ? ms : 0), 0);
    assert_int_equal(negio_engine_write(x.ca, "after the end", 13), 0);
    assert_int_equal(recorder_wait(&x.cli, &x.cli.messages, 1, 5000), 1);
    assert_int_equal(recorder_get(&x.srv, &x.srv.closed), 0);
    assert_int_equal(recorder_get(&x.cli, &x.cli.closed), 0);
    expiry_stop(&x);
    setenv("KRB5_CONFIG", saved, 1);
    free(saved);
}

/* Shutting the server down with connections open closes each established one with a protected
 * close, which its client sees as clean. */
static void shutdown_with_open_connections_closes_them_cleanly(void **state)
{
    (void)state;
    recorder srv, cli;
    negio_engine_options so = {.loops = 2}, co = {.loops = 2};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    recorder_init(&cli, &co);
    enum { N = 20 };
    rec_conn rc[N];
    memset(rc, 0, sizeof(rc));
    for (int i = 0; i < N; i++) {
        negio_config *cc = test_client_config((test_path)(i % PATH_COUNT));
        assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &rc[i], NULL), 0);
        negio_config_del(cc);
    }
    assert_int_equal(recorder_wait(&srv, &srv.authenticated, N, 20000), N);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, N, 20000), N);
    assert_int_equal(negio_engine_shutdown(srv.e), 0);
    assert_int_equal(negio_engine_connections(srv.e), 0);
    assert_int_equal(srv.closed, N);
    assert_int_equal(recorder_wait(&cli, &cli.closed, N, 10000), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(rc[i].reason, NEGIO_CLOSE_CLEAN);
    /* a shut-down engine refuses new work */
    negio_config *sc = test_server_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_listen(srv.e, "127.0.0.1:0", sc, NULL), NEGIO_ERR_STATE);
    negio_config_del(sc);
    recorder_free(&cli);
    recorder_free(&srv);
}

struct writer {
    negio_econn *c;
    int t;
    int n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 1; i <= w->n; i++) {
        char m[32];
        int len = snprintf(m, sizeof(m), "t%d-%d", w->t, i);
        /* over the hard limit: again once the connection has sent some (the test fails on the
         * messages missing if it never does) */
        TEST_POLL_UNTIL(negio_engine_write(w->c, m, (size_t)len) != NEGIO_ERR_BUSY, 60000);
    }
    return NULL;
}

/* Several threads writing to one connection at once: every message arrives, and each thread's
 * messages keep their order. */
static void writes_from_several_threads_keep_per_thread_order(void **state)
{
    (void)state;
    recorder srv, cli;
    negio_engine_options so = {.loops = 2}, co = {.loops = 2};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn rc = {0};
    negio_econn *c;
    negio_config *cc = test_client_config(PATH_NEG_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &rc, &c), 0);
    negio_config_del(cc);
    enum { T = 4, PER = 500 };
    pthread_t th[T];
    struct writer w[T];
    for (int t = 0; t < T; t++) { /* they start before authentication completes */
        w[t] = (struct writer){c, t, PER};
        assert_int_equal(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
    }
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(recorder_wait(&cli, &cli.messages, T * PER, 30000), T * PER);
    assert_int_equal(rc.order_errors, 0);
    for (int t = 0; t < T; t++)
        assert_int_equal(rc.last_seq[t], PER);
    negio_engine_close(c, 0);
    assert_int_equal(recorder_wait(&cli, &cli.closed, 1, 10000), 1);
    assert_int_equal(rc.reason, NEGIO_CLOSE_CLEAN);
    negio_econn_unref(c);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* The engine listens and connects over IPv6 as over IPv4. */
static void ipv6_loopback_works(void **state)
{
    (void)state;
    recorder srv, cli;
    negio_engine_options so = {.loops = 1}, co = {.loops = 1};
    recorder_init(&srv, &so);
    srv.echo = 1;
    negio_config *sc = test_server_config(PATH_KERBEROS);
    uint16_t port = 0;
    int rc = negio_engine_listen(srv.e, "[::1]:0", sc, &port);
    negio_config_del(sc);
    if (rc == NEGIO_ERR_ADDRESS) { /* no IPv6 on this machine: say so, do not pretend */
        recorder_free(&srv);
        skip();
    }
    assert_int_equal(rc, 0);
    recorder_init(&cli, &co);
    rec_conn r = {0};
    negio_econn *c;
    negio_config *cc = test_client_config(PATH_NEG_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "::1", port, cc, &r, &c), 0);
    negio_config_del(cc);
    assert_int_equal(negio_engine_write(c, "v6", 2), 0);
    assert_int_equal(recorder_wait(&cli, &cli.messages, 1, 10000), 1);
    assert_string_equal(r.first, "v6");
    assert_int_equal(negio_econn_peer_addr(c)->sa_family, AF_INET6);
    negio_econn_unref(c);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* With an idle timeout, a silent authenticated connection is closed and reported as a timeout;
 * traffic keeps another one alive. A minute's timeout on the test clock, moved 15 s at a time
 * with a message on the busy connection in each step: the quiet one is still open after 45 s and
 * closed after 75 s. */
static void idle_connections_time_out(void **state)
{
    (void)state;
    recorder srv, cli;
    negio_engine_options so = {.loops = 1, .idle_timeout_ms = 60000}, co = {.loops = 1};
    uint16_t port = start_server(&srv, &so, NEGIO_LEVEL_SIGN);
    srv.echo = 1;
    recorder_init(&cli, &co);
    rec_conn quiet = {0}, busy = {0};
    negio_econn *q, *b;
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &quiet, &q), 0);
    assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &busy, &b), 0);
    negio_config_del(cc);
    assert_int_equal(recorder_wait(&cli, &cli.authenticated, 2, 10000), 2);
    assert_int_equal(recorder_wait(&srv, &srv.authenticated, 2, 5000), 2);
    int open_at_45s = -1;
    for (int i = 1; i <= 5; i++) {
        char m[16];
        int len = snprintf(m, sizeof(m), "t0-%d", i);
        assert_int_equal(negio_engine_write(b, m, (size_t)len), 0);
        assert_int_equal(recorder_wait(&cli, &cli.messages, i, 5000), i); /* the server read it */
        if (i == 4)
            open_at_45s = recorder_get(&srv, &srv.closed) == 0;
        negio__engine_advance_clock(srv.e, 15000);
    }
    assert_int_equal(open_at_45s, 1);
    assert_int_equal(recorder_wait(&srv, &srv.closed, 1, 5000), 1);
    assert_int_equal(srv.closed_by_reason[NEGIO_CLOSE_TIMEOUT], 1);
    assert_int_equal(recorder_wait(&cli, &cli.closed, 1, 5000), 1);
    assert_true(quiet.closed);
    assert_false(busy.closed);
    assert_int_equal(busy.nmsgs, 5);
    assert_int_equal(busy.order_errors, 0);
    negio_econn_unref(q);
    negio_econn_unref(b);
    recorder_free(&cli);
    recorder_free(&srv);
}

/* A client engine connecting to a server that drops SYNs (test_tcp_silent_listen). */
typedef struct silent_run {
    int lfd;
    int fill[TEST_SILENT_FILL];
    uint16_t port;
    recorder cli;
    rec_conn rc;
    negio_econn *c;
    double t0; /* when the connect was made */
} silent_run;

/* Connects with OPTS (NULL: negio_engine_connect). */
static void silent_start(silent_run *s, const negio_connect_options *opts)
{
    memset(s, 0, sizeof(*s));
    s->lfd = test_tcp_silent_listen(&s->port, s->fill);
    assert_true(s->lfd >= 0);
    negio_engine_options co = {.loops = 1, .handshake_timeout_ms = 60000};
    recorder_init(&s->cli, &co);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    s->t0 = test_now_s();
    int rc = opts != NULL ? negio_engine_connect_with(s->cli.e, "127.0.0.1", s->port, cc, opts,
                                                      &s->rc, &s->c)
                          : negio_engine_connect(s->cli.e, "127.0.0.1", s->port, cc, &s->rc, &s->c);
    negio_config_del(cc);
    assert_int_equal(rc, 0);
}

static void silent_stop(silent_run *s)
{
    negio_econn_unref(s->c);
    recorder_free(&s->cli);
    test_tcp_silent_close(s->lfd, s->fill);
}

/* Such a server would hold a client's connect for the kernel's SYN retries, some two minutes,
 * whatever the handshake deadline: the connect deadline of negio_connect_options ends it as a
 * timeout, in real time here. */
static void a_connect_that_gets_no_answer_times_out_at_its_deadline(void **state)
{
    (void)state;
    silent_run s;
    negio_connect_options opts = {.size = sizeof(opts), .connect_timeout_ms = 300};
    silent_start(&s, &opts);
    int closed = recorder_wait(&s.cli, &s.cli.closed, 1, 5000);
    double took = test_now_s() - s.t0;
    fprintf(stderr, "closed after %.3f s: %s (%s)\n", took, negio_close_reason_name(s.rc.reason),
            s.rc.detail);
    assert_int_equal(closed, 1);
    assert_int_equal(s.rc.reason, NEGIO_CLOSE_TIMEOUT);
    assert_int_equal(s.rc.code, 0);
    char want[128];
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u did not complete within 300 ms",
             (unsigned)s.port);
    assert_string_equal(s.rc.detail, want);
    assert_true(took >= 0.25 && took < 3.0);
    silent_stop(&s);
}

/* negio_engine_connect (no options) has the default connect deadline, 10 s, on the test clock:
 * still connecting after 9.5 s, closed as a timeout after 10. */
static void a_connect_without_options_has_the_default_deadline(void **state)
{
    (void)state;
    silent_run s;
    silent_start(&s, NULL);
    negio__engine_advance_clock(s.cli.e, 9500);
    int closed_early = recorder_wait(&s.cli, &s.cli.closed, 1, 300);
    negio__engine_advance_clock(s.cli.e, 500);
    int closed = recorder_wait(&s.cli, &s.cli.closed, 1, 5000);
    assert_int_equal(closed_early, 0);
    assert_int_equal(closed, 1);
    assert_int_equal(s.rc.reason, NEGIO_CLOSE_TIMEOUT);
    assert_non_null(strstr(s.rc.detail, "did not complete within 10000 ms"));
    silent_stop(&s);
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_over_every_mechanism_path),
        cmocka_unit_test(ipv6_loopback_works),
        cmocka_unit_test(idle_connections_time_out),
        cmocka_unit_test(a_connect_that_gets_no_answer_times_out_at_its_deadline),
        cmocka_unit_test(a_connect_without_options_has_the_default_deadline),
        cmocka_unit_test(writes_from_several_threads_keep_per_thread_order),
        cmocka_unit_test(shutdown_with_open_connections_closes_them_cleanly),
        cmocka_unit_test(a_stalled_kdc_does_not_slow_authenticated_connections),
        cmocka_unit_test(connections_close_at_context_expiry_only_when_asked),
        cmocka_unit_test(a_kdc_that_is_down_is_named_and_established_connections_go_on),
        cmocka_unit_test(a_refusal_whose_explanation_outlives_the_deadline_is_the_refusal),
        cmocka_unit_test(handshakes_waiting_on_a_dead_kdc_leave_the_loop_responsive),
        cmocka_unit_test(a_thousand_concurrent_connections_exchange_messages_intact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
