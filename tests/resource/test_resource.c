/* Resources under load (CHECKLIST "Slowloris", "Handshake failing ... 1,000 times: memory flat"):
 *
 *  1. 10,000 half-open TCP connections (connect, never send) and 100 slowloris peers (a frame
 *     header trickled one byte per 250 ms) against one engine server with a 2 s handshake
 *     deadline, while real clients on every mechanism path are served within a few seconds: 20
 *     once all the peers are connected, 20 more while the deadlines close them by thousands.
 *     The peers live in a child process (each process may hold at most RLIMIT_NOFILE
 *     descriptors, and the server needs one per connection too).
 *  2. 1,000 handshakes abandoned after each round k = 0..3 (the client vanishes after sending its
 *     k-th batch of frames) against one server, per mechanism, with the server's heap measured
 *     (mallinfo2, or the sanitizer allocator's count under ASan) after a warm-up of 100. The
 *     clients run in a child process so that only the server's allocations are in the parent's
 *     heap. Kerberos must stay flat. gss-ntlmssp 1.2.0 leaks an OpenSSL library context per NT
 *     hash it computes (README "Known limitations"): the NTLM growth per round is measured and
 *     must stay within that leak's size (NTLM_LEAK_BOUND, below) for the rounds where the server
 *     checks an AUTHENTICATE message, and flat for the others.
 *  3. 1,000 handshakes failing at each round against one server, on every mechanism path, with
 *     the server's heap measured the same way: the client corrupts one of its own frames (its
 *     first token, its second token, the SPNEGO mechListMIC, or the MIC of its POLICY), so that
 *     the server's GSS call or its verification fails; the server reports the error (a
 *     HANDSHAKE_ERROR, or a protected CLOSE once both contexts are complete) and closes. Every
 *     server connection must end in that error, with the expected code, and the heap must stay
 *     flat, except for the same gss-ntlmssp leak wherever the server checked an AUTHENTICATE.
 *
 * A slow reader with bounded server memory is tested in tests/engine/test_engine_adversarial.c
 * (slow_reader_keeps_server_memory_bounded*), not repeated here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine_support.h"
#include "support/bytes.h"
#include "support/net.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#define SANITIZED 0
#endif

/* Bytes the process has allocated and not freed. */
static size_t heap_in_use(void)
{
#if SANITIZED
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/* ---- 1. half-open connections and slowloris peers -------------------------------------------- */

#define N_HALF 10000
#define N_SLOW 100
#define N_PEERS (N_HALF + N_SLOW)
/* real clients per wave: one wave as soon as the peers are open, one while their deadlines fire */
#define N_REAL 20
#define DEADLINE_MS 2000

/* What the child saw, sent back through a pipe. */
typedef struct peer_report {
    int opened, connect_failed, closed, still_open;
    long unexpected;            /* bytes the server sent to a peer that never completed a frame */
    int64_t open_ms;            /* time to open all of them */
    int64_t first_close;        /* ms from the first connect() to the first close seen */
    int64_t min_life, max_life; /* ms from connect to the server's close, silent */
    int64_t slow_min_life, slow_max_life; /* the same for slowloris peers */
    int slow_min_sent;                    /* fewest bytes a slowloris peer got out */
} peer_report;

/* The peers' process: system calls only (the parent has threads), no allocation. Closes are
 * watched with epoll from the first connect() on, and the slowloris peers trickle from their own
 * connect() on, so that neither a peer's measured life nor its trickle depends on how long opening
 * all of them takes on a loaded machine. */
static int peer_fd[N_PEERS];
static int64_t peer_open[N_PEERS], peer_closed[N_PEERS];
static int peer_sent[N_PEERS];
static int peers_open;
static int64_t next_trickle;

/* One byte to each open slowloris peer, every 250 ms (after a stall, one round per call until the
 * schedule is caught up). */
static void peers_trickle(int opened)
{
    static const uint8_t hdr[8] = {
        NEGIO_PROTOCOL_VERSION, 1, 0, 0, 0, 0, 0x10, 0}; /* HANDSHAKE, 4096 bytes */
    if (opened <= N_HALF || test_now_ms() < next_trickle)
        return;
    for (int i = N_HALF; i < opened; i++) {
        if (peer_fd[i] >= 0 && peer_closed[i] == 0 &&
            send(peer_fd[i], &hdr[peer_sent[i] % 8], 1, MSG_NOSIGNAL) == 1)
            peer_sent[i]++;
    }
    next_trickle += 250;
}

/* Waits up to MS for input on the peers; records the server's closes. */
static void peers_harvest(int ep, int ms, peer_report *rep)
{
    struct epoll_event ev[256];
    int n = epoll_wait(ep, ev, 256, ms);
    for (int k = 0; k < n; k++) {
        int i = (int)ev[k].data.u32;
        for (;;) {
            uint8_t b[256];
            ssize_t got = recv(peer_fd[i], b, sizeof(b), 0);
            if (got > 0) {
                rep->unexpected += got;
                continue;
            }
            if (got < 0 && errno == EINTR)
                continue;
            if (got == 0 || errno != EAGAIN) {
                peer_closed[i] = test_now_ms();
                close(peer_fd[i]); /* leaves the epoll set with it */
                peer_fd[i] = -1;
                peers_open--;
            }
            break;
        }
    }
}

static void peers_main(uint16_t port, int ready_fd, int report_fd)
{
    peer_report rep;
    memset(&rep, 0, sizeof(rep));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        _exit(1);
    int64_t t0 = test_now_ms();
    for (int i = 0; i < N_PEERS; i++) {
        int fd = test_tcp_connect(port);
        if (fd < 0) {
            peer_fd[i] = -1;
            rep.connect_failed++;
            continue;
        }
        peer_open[i] = test_now_ms();
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        peer_fd[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            _exit(1);
        rep.opened++;
        peers_open++;
        if (i >= N_HALF && next_trickle == 0)
            next_trickle = peer_open[i];
        peers_trickle(i + 1);
        if (i % 16 == 15)
            peers_harvest(ep, 0, &rep);
    }
    rep.open_ms = test_now_ms() - t0;
    (void)!write(ready_fd, "r", 1); /* the parent starts its real clients now */
    int64_t until = test_now_ms() + DEADLINE_MS + 15000;
    while (peers_open > 0 && test_now_ms() < until) {
        peers_trickle(N_PEERS);
        int64_t wait = next_trickle - test_now_ms();
        peers_harvest(ep, wait < 0 ? 0 : wait > 50 ? 50 : (int)wait, &rep);
    }
    rep.first_close = rep.min_life = rep.slow_min_life = INT64_MAX;
    rep.slow_min_sent = INT32_MAX;
    for (int i = 0; i < N_PEERS; i++) {
        if (peer_open[i] == 0)
            continue; /* connect() failed */
        if (peer_closed[i] == 0) {
            rep.still_open++;
            continue;
        }
        rep.closed++;
        if (peer_closed[i] - t0 < rep.first_close)
            rep.first_close = peer_closed[i] - t0;
        int64_t life = peer_closed[i] - peer_open[i];
        int64_t *mn = i < N_HALF ? &rep.min_life : &rep.slow_min_life;
        int64_t *mx = i < N_HALF ? &rep.max_life : &rep.slow_max_life;
        if (life < *mn)
            *mn = life;
        if (life > *mx)
            *mx = life;
        if (i >= N_HALF && peer_sent[i] < rep.slow_min_sent)
            rep.slow_min_sent = peer_sent[i];
    }
    (void)!write(report_fd, &rep, sizeof(rep));
    _exit(0); /* not exit(): the parent's atexit handlers (the realm) are not ours to run */
}

/* Raises the soft descriptor limit to at least NEED; returns 0, or -1 if the hard limit is
 * lower. */
static int raise_nofile(rlim_t need, rlim_t *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    *hard = rl.rlim_max;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        return -1;
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void half_open_and_slowloris_peers_do_not_starve_real_clients(void **state)
{
    (void)state;
    rlim_t hard = 0, need = N_PEERS + 4 * N_REAL + 512;
    if (raise_nofile(need, &hard) != 0) {
        print_message("SKIPPED: %d half-open connections need RLIMIT_NOFILE >= %lu in each of two "
                      "processes; the hard limit is %lu\n",
                      N_PEERS, (unsigned long)need, (unsigned long)hard);
        skip();
    }
    recorder srv;
    negio_engine_options so = {.loops = 2, .workers = 4, .handshake_timeout_ms = DEADLINE_MS};
    recorder_init(&srv, &so);
    srv.echo = 1;
    negio_config *sc = test_server_config(PATH_KERBEROS);
    uint16_t port;
    assert_int_equal(negio_engine_listen(srv.e, "127.0.0.1:0", sc, &port), 0);
    negio_config_del(sc);

    int ready[2], report[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(report, O_CLOEXEC), 0);
    int64_t t0 = test_now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        peers_main(port, ready[1], report[1]);
    close(ready[1]);
    close(report[1]);
    char r;
    assert_int_equal(test_read_all(ready[0], &r, 1, 60000), 0);

    /* the real clients, on every mechanism path: a first wave while the server holds 10,100
     * connections that will never authenticate, a second one while their deadlines fire */
    recorder cli;
    negio_engine_options co = {.loops = 2};
    recorder_init(&cli, &co);
    static rec_conn rc[2 * N_REAL];
    memset(rc, 0, sizeof(rc));
    negio_econn *conns[2 * N_REAL];
    int served[2];
    int64_t served_ms[2], wave_at[2];
    int at_conns[2];
    for (int w = 0; w < 2; w++) {
        if (w == 1) {
            /* the first peers' deadlines fire from t0 + 2 s on, the last ones' when all were
             * open + 2 s (opening takes about 1.5 s): the second wave starts with the first
             * close by the deadline */
            assert_true(recorder_wait(&srv, &srv.closed_by_reason[NEGIO_CLOSE_TIMEOUT], 1,
                                      DEADLINE_MS + 30000) >= 1);
        }
        wave_at[w] = test_now_ms();
        at_conns[w] = (int)negio_engine_connections(srv.e);
        for (int j = 0; j < N_REAL; j++) {
            int i = w * N_REAL + j;
            negio_config *cc = test_client_config((test_path)(i % PATH_COUNT));
            assert_int_equal(negio_engine_connect(cli.e, "127.0.0.1", port, cc, &rc[i], &conns[i]),
                             0);
            negio_config_del(cc);
            char text[32];
            int len = snprintf(text, sizeof(text), "real client %d", i);
            assert_int_equal(negio_engine_write(conns[i], text, (size_t)len), 0);
        }
        served[w] = recorder_wait(&cli, &cli.messages, (w + 1) * N_REAL, 30000) - w * N_REAL;
        served_ms[w] = test_now_ms() - wave_at[w];
    }

    peer_report rep;
    int got = test_read_all(report[0], &rep, sizeof(rep), DEADLINE_MS + 30000);
    int st = 0;
    if (got != 0)
        kill(pid, SIGKILL);
    (void)waitpid(pid, &st, 0);
    close(ready[0]);
    close(report[0]);
    assert_int_equal(got, 0);
    print_message("%d peers opened in %lld ms (%d failed); first close %lld ms after the first "
                  "connect; silent peers closed %lld..%lld ms after connecting, slowloris "
                  "%lld..%lld ms (at least %d bytes trickled); %d still open, %ld unexpected "
                  "bytes; %lld ms in all\n",
                  rep.opened, (long long)rep.open_ms, rep.connect_failed,
                  (long long)rep.first_close, (long long)rep.min_life, (long long)rep.max_life,
                  (long long)rep.slow_min_life, (long long)rep.slow_max_life, rep.slow_min_sent,
                  rep.still_open, rep.unexpected, (long long)(test_now_ms() - t0));
    for (int w = 0; w < 2; w++)
        print_message("real clients, wave %d (started %lld ms after the first peer, server at %d "
                      "connections): %d of %d served in %lld ms\n",
                      w + 1, (long long)(wave_at[w] - t0), at_conns[w], served[w], N_REAL,
                      (long long)served_ms[w]);

    for (int i = 0; i < 2 * N_REAL; i++) {
        assert_int_equal(negio_engine_close(conns[i], 0), 0);
        negio_econn_unref(conns[i]);
    }
    assert_int_equal(recorder_wait(&cli, &cli.closed, 2 * N_REAL, 10000), 2 * N_REAL);
    int closed = recorder_wait(&srv, &srv.closed, N_PEERS + 2 * N_REAL, 20000);
    pthread_mutex_lock(&srv.lock);
    int timeouts = srv.closed_by_reason[NEGIO_CLOSE_TIMEOUT];
    int clean = srv.closed_by_reason[NEGIO_CLOSE_CLEAN];
    pthread_mutex_unlock(&srv.lock);
    recorder_free(&cli);
    recorder_free(&srv);

    assert_int_equal(rep.connect_failed, 0);
    assert_int_equal(rep.opened, N_PEERS);
    /* every real client authenticated and was answered, within a few seconds */
    for (int w = 0; w < 2; w++) {
        assert_int_equal(served[w], N_REAL);
        assert_true(served_ms[w] <= (SANITIZED ? 10000 : 5000));
    }
    /* the first wave met thousands of them: all when opening them takes less than the deadline,
     * else those opened within the last deadline or so (on a machine starved by CPU hogs at a
     * higher priority, opening took 5 to 14 s and the first wave met 1,588 to 5,908; a tenth
     * only needs them opened at 500 per second) */
    assert_true(at_conns[0] >= N_PEERS / 10);
    for (int i = 0; i < 2 * N_REAL; i++) {
        assert_true(rc[i].authenticated);
        assert_int_equal(rc[i].mech, test_path_mech((test_path)(i % PATH_COUNT)));
        assert_int_equal(rc[i].nmsgs, 1);
        assert_int_equal(rc[i].reason, NEGIO_CLOSE_CLEAN);
    }
    /* every peer was closed by the deadline, not before it, not long after, silently */
    assert_int_equal(rep.still_open, 0);
    assert_int_equal(rep.closed, N_PEERS);
    assert_int_equal(rep.unexpected, 0);
    /* Not before it. Exactly, whatever the load: a deadline starts when the server adopts the
     * connection, never before the first connect(), so nothing may close before the first
     * connect() plus the deadline (10 ms for the clocks' granularity). Per peer, with slack: the
     * engine starts each deadline from its loop's time (uv_now, read when the loop woke up), so a
     * connection adopted late in a long burst of accepts gets a deadline that many milliseconds
     * short of its connect(); half the deadline leaves room for a burst of a second. */
    assert_true(rep.first_close >= DEADLINE_MS - 10);
    assert_true(rep.min_life >= DEADLINE_MS / 2 && rep.slow_min_life >= DEADLINE_MS / 2);
    assert_true(rep.max_life <= DEADLINE_MS + 8000 && rep.slow_max_life <= DEADLINE_MS + 8000);
    /* they kept trickling while the deadline ran (a byte every 250 ms from their connect() on:
     * 4 in the first half of the deadline) and were cut off all the same */
    assert_true(rep.slow_min_sent >= 4);
    assert_int_equal(closed, N_PEERS + 2 * N_REAL);
    assert_int_equal(timeouts, N_PEERS);
    assert_int_equal(clean, 2 * N_REAL);
}

/* ---- 2. abandoned handshakes, memory flat ---------------------------------------------------- */

/* The clients' process: runs batches of abandoned handshakes on command. */

/* One client that vanishes (closes its socket without a protected close) after round K:
 * 0 = at once, having sent nothing; 1 = after sending its first token; 2 = after sending its
 * answer to the server's first reply (Kerberos: its POLICY; NTLM: AUTHENTICATE and POLICY);
 * 3 = established, after one sealed message went to the server and its echo came back.
 * Returns 0 if the client got as far as K. */
static int abandon_once(uint16_t port, test_path path, int k, const negio_config *cfg)
{
    int fd = test_tcp_connect(port);
    if (fd < 0)
        return -1;
    if (k == 0) {
        close(fd);
        return 0;
    }
    negio_conn *c;
    if (negio_conn_new(&c, cfg) != NEGIO_OK) {
        close(fd);
        return -1;
    }
    (void)path;
    int batches = 0, rc = -1;
    for (int iter = 0; iter < 64; iter++) {
        negio_event ev;
        int r;
        while ((r = negio_conn_next_event(c, &ev)) > 0) {
            if (ev.type == NEGIO_EV_ESTABLISHED && k == 3 &&
                negio_conn_write(c, "abandoned", 9, NEGIO_LEVEL_SEAL) != NEGIO_OK)
                goto out;
            if (ev.type == NEGIO_EV_MESSAGE && k == 3) {
                rc = 0;
                goto out;
            }
        }
        if (r < 0)
            goto out;
        size_t len;
        const uint8_t *out = negio_conn_send_buf(c, &len);
        if (len > 0) {
            if (test_write_all(fd, out, len) != 0)
                goto out;
            negio_conn_send_done(c, len);
            if (++batches == k && k < 3) {
                rc = 0;
                goto out;
            }
        }
        uint8_t buf[16384];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            goto out;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            goto out;
        if (negio_conn_feed(c, buf, (size_t)n) != NEGIO_OK)
            goto out;
    }
out:
    close(fd);
    negio_conn_del(c);
    return rc;
}

static int fail_once(uint16_t port, int at, const negio_config *cfg);

/* Commands: "port P", "run PATH K N" (abandoned handshakes), "fail PATH AT N" (failing ones;
 * both answer "ok FAILURES"), "quit". */
static void clients_main(int cmd_fd, int ans_fd)
{
    FILE *in = fdopen(cmd_fd, "r");
    char line[128];
    uint16_t port = 0;
    negio_config *cfg[PATH_COUNT] = {0};
    while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
        unsigned p, path, k, n;
        char verb[8];
        if (sscanf(line, "port %u", &p) == 1) {
            port = (uint16_t)p;
        } else if (sscanf(line, "%7s %u %u %u", verb, &path, &k, &n) == 4 && path < PATH_COUNT &&
                   (strcmp(verb, "run") == 0 || strcmp(verb, "fail") == 0)) {
            if (cfg[path] == NULL)
                cfg[path] = test_client_config((test_path)path);
            unsigned failed = 0;
            for (unsigned i = 0; i < n; i++)
                failed += (verb[0] == 'r' ? abandon_once(port, (test_path)path, (int)k, cfg[path])
                                          : fail_once(port, (int)k, cfg[path])) != 0;
            char ans[64];
            int len = snprintf(ans, sizeof(ans), "ok %u\n", failed);
            (void)!write(ans_fd, ans, (size_t)len);
        } else {
            break;
        }
    }
    _exit(0); /* leaves the parent's realm alone */
}

typedef struct clients {
    pid_t pid;
    int cmd, ans;
} clients;

/* The child's next answer line (waiting at most MS for it). */
static const char *clients_answer(clients *cl, int ms)
{
    static char ans[64];
    size_t got = 0;
    while (got < sizeof(ans) - 1) {
        assert_int_equal(test_read_all(cl->ans, ans + got, 1, ms), 0);
        if (ans[got++] == '\n')
            break;
    }
    ans[got] = '\0';
    return ans;
}

static unsigned clients_cmd(clients *cl, const char *verb, test_path path, int k, int n)
{
    char cmd[64];
    int len = snprintf(cmd, sizeof(cmd), "%s %d %d %d\n", verb, (int)path, k, n);
    assert_int_equal(test_write_all(cl->cmd, cmd, (size_t)len), 0);
    unsigned failed;
    assert_int_equal(sscanf(clients_answer(cl, 300000), "ok %u", &failed), 1);
    return failed;
}

/* Waits until the server has freed every connection: none is counted any more, and no step
 * worker still holds one (a step that was running when its connection closed holds it until the
 * loop has taken the step's result). */
static void server_empty(recorder *srv)
{
    TEST_POLL_EVERY(negio_engine_connections(srv->e) == 0, 10000, 5);
    assert_int_equal(negio_engine_connections(srv->e), 0);
    TEST_POLL_EVERY(engine_threads_idle(&srv->threads), 10000, 5);
    assert_true(engine_threads_idle(&srv->threads));
}

/* Waits until the server has reported every connection closed and freed them. */
static void server_settle(recorder *srv, int total)
{
    assert_int_equal(recorder_wait(srv, &srv->closed, total, 60000), total);
    server_empty(srv);
}

#define WARMUP 100
#define ROUNDS 1000
/* "Flat": under 64 bytes per handshake on average over 1,000 (64 KiB), where a leak of a single
 * small allocation per handshake would show. Measured: 0 to 8 KiB of noise per 1,000 (glibc
 * with tcache off, see main; ASan). */
#define FLAT_BOUND (64u * 1024)
/* gss-ntlmssp 1.2.0's leak per NTLM authentication an acceptor checks: one OpenSSL library
 * context (legacy provider loaded, MD4 fetched), never freed. Measured here per authentication:
 * 6,296 bytes requested (ASan's count), 7,640 bytes of glibc 2.36 heap without tcache (7,850
 * with it), OpenSSL 3.0, x86-64. The bound leaves room for allocator differences, not for a
 * second leak of the same size. */
#define NTLM_LEAK_BOUND (10u * 1024)

static void abandoned_handshakes(test_path path, clients *cl, recorder *srv, int *total,
                                 double growth_per[4])
{
    for (int k = 0; k < 4; k++) { /* warm-up: caches, replay cache, worker arenas */
        (void)clients_cmd(cl, "run", path, k, WARMUP / 4);
        *total += WARMUP / 4;
    }
    server_settle(srv, *total);
    size_t before = heap_in_use();
    for (int k = 0; k < 4; k++) {
        unsigned failed = clients_cmd(cl, "run", path, k, ROUNDS);
        *total += ROUNDS;
        server_settle(srv, *total);
        size_t after = heap_in_use();
        growth_per[k] = ((double)after - (double)before) / ROUNDS;
        print_message("%s, abandoned after round %d: %d handshakes (%u clients stopped early), "
                      "server heap %zu -> %zu bytes (%+.1f per handshake)\n",
                      test_path_name(path), k, ROUNDS, failed, before, after, growth_per[k]);
        assert_int_equal(failed, 0);
        before = after;
    }
}

/* Forks the clients' process; call it while this one has no threads of its own. */
static void clients_start(clients *cl, void (*child_main)(int cmd_fd, int ans_fd))
{
    int cmd[2], ans[2];
    assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
    assert_int_equal(pipe2(ans, O_CLOEXEC), 0);
    (void)test_realm_get();
    cl->pid = fork();
    assert_true(cl->pid >= 0);
    if (cl->pid == 0) {
        close(cmd[1]);
        close(ans[0]);
        child_main(cmd[0], ans[1]);
    }
    close(cmd[0]);
    close(ans[1]);
    cl->cmd = cmd[1];
    cl->ans = ans[0];
}

static void clients_connect_to(clients *cl, uint16_t port)
{
    char line[32];
    int len = snprintf(line, sizeof(line), "port %u\n", port);
    assert_int_equal(test_write_all(cl->cmd, line, (size_t)len), 0);
}

static void clients_stop(clients *cl)
{
    assert_int_equal(test_write_all(cl->cmd, "quit\n", 5), 0);
    int st;
    (void)waitpid(cl->pid, &st, 0);
    close(cl->cmd);
    close(cl->ans);
}

/* One server on every mechanism path (the Kerberos server configuration allows all). */
static uint16_t server_listen(recorder *srv)
{
    negio_config *sc = test_server_config(PATH_KERBEROS);
    uint16_t port;
    assert_int_equal(negio_engine_listen(srv->e, "127.0.0.1:0", sc, &port), 0);
    negio_config_del(sc);
    return port;
}

static void abandoned_handshakes_leave_server_memory_flat(void **state)
{
    (void)state;
    clients cl;
    clients_start(&cl, clients_main); /* first, while this process has no threads of its own */
    recorder srv;
    negio_engine_options so = {.loops = 2, .workers = 4};
    recorder_init(&srv, &so);
    srv.echo = 1;
    clients_connect_to(&cl, server_listen(&srv));

    int64_t t0 = test_now_ms();
    int total = 0;
    double krb[4], ntlm[4];
    abandoned_handshakes(PATH_KERBEROS, &cl, &srv, &total, krb);
    int64_t t1 = test_now_ms();
    abandoned_handshakes(PATH_NTLM, &cl, &srv, &total, ntlm);
    int64_t t2 = test_now_ms();
    print_message("kerberos: %lld ms, ntlm: %lld ms for %d handshakes each\n", (long long)(t1 - t0),
                  (long long)(t2 - t1), WARMUP + 4 * ROUNDS);

    clients_stop(&cl);
    recorder_free(&srv);

    for (int k = 0; k < 4; k++)
        assert_true(krb[k] * ROUNDS < FLAT_BOUND);
    /* NTLM: the server checks no AUTHENTICATE message in rounds 0 and 1 (nothing, NEGOTIATE) */
    assert_true(ntlm[0] * ROUNDS < FLAT_BOUND);
    assert_true(ntlm[1] * ROUNDS < FLAT_BOUND);
    /* rounds 2 and 3: one leaked library context per handshake, and nothing more */
    assert_true(ntlm[2] <= NTLM_LEAK_BOUND);
    assert_true(ntlm[3] <= NTLM_LEAK_BOUND);
}

/* ---- 3. failing handshakes, memory flat ------------------------------------------------------ */

/* The frame header (PROTOCOL.md section 3): version, type, level, flags, length (u32, BE). */
#define HDR 8
#define FT_HANDSHAKE 1
#define FT_POLICY 3

/* Where a client breaks its own handshake. */
enum fail_at {
    FAIL_FIRST_TOKEN = 1,  /* its first HANDSHAKE frame: AP-REQ, NEGOTIATE, or the NegTokenInit */
    FAIL_SECOND_TOKEN = 2, /* its second HANDSHAKE frame: the AUTHENTICATE (raw or in SPNEGO) */
    FAIL_MECHLISTMIC = 3,  /* the mechListMIC of its second SPNEGO token (negotiate->ntlm) */
    FAIL_POLICY = 4,       /* the MIC of its POLICY frame: its context is complete and valid */
};

/* Corrupts a client token so that the server's GSS call fails, not negio's first-token check
 * (the framing and the "NTLMSSP\0" signature stay intact). Returns 0 if the token is not what
 * AT expects. */
static int corrupt_token(uint8_t *tok, size_t n, int at)
{
    if (at == FAIL_MECHLISTMIC) {
        /* NegTokenResp's last element, mechListMIC [3]: an OCTET STRING holding the 16-byte
         * NTLM signature (version 1, checksum, sequence number); flip the checksum's last byte */
        if (n < 18 || tok[n - 18] != 0x04 || tok[n - 17] != 16 || test_le32(tok + n - 16) != 1)
            return 0;
        tok[n - 5] ^= 0xff;
        return 1;
    }
    const uint8_t *sig = memmem(tok, n, "NTLMSSP\0", 8);
    if (sig == NULL) {
        /* Kerberos (raw or in a NegTokenInit): the middle byte lies in the ticket's ciphertext,
         * most of the AP-REQ */
        if (at != FAIL_FIRST_TOKEN)
            return 0;
        tok[n / 2] ^= 0xff;
        return 1;
    }
    size_t i = (size_t)(sig - tok);
    if (i + 32 > n)
        return 0;
    uint32_t type = test_le32(tok + i + 8);
    if (at == FAIL_FIRST_TOKEN && type == 1) {
        tok[i + 8] = 0x7f; /* MessageType: no such NTLM message */
        return 1;
    }
    if (at == FAIL_SECOND_TOKEN && type == 3) {
        /* NtChallengeResponseFields ([MS-NLMP] 2.2.1.3): the NTLMv2 response starts with the
         * 16-byte NTProofStr, the HMAC the server recomputes from the user's NT hash */
        uint32_t len = test_le16(tok + i + 20), off = test_le32(tok + i + 24);
        if (len < 16 || off > n - i || len > n - i - off)
            return 0;
        tok[i + off] ^= 0xff;
        return 1;
    }
    return 0;
}

/* Corrupts the frame AT names among the frames in B (one batch of the client's output); *HS
 * counts the client's HANDSHAKE frames across batches. Returns 1 if done, 0 if the frame is not
 * in this batch, -1 if the batch or the frame is not what AT expects. */
static int corrupt_batch(uint8_t *b, size_t len, int at, int *hs)
{
    size_t off = 0;
    while (off + HDR <= len) {
        uint8_t type = b[off + 1];
        size_t flen = (size_t)b[off + 4] << 24 | (size_t)b[off + 5] << 16 |
                      (size_t)b[off + 6] << 8 | b[off + 7];
        uint8_t *body = b + off + HDR;
        if (flen > len - off - HDR)
            return -1;
        if (type == FT_HANDSHAKE) {
            int k = ++*hs;
            if ((at == FAIL_FIRST_TOKEN && k == 1) ||
                ((at == FAIL_SECOND_TOKEN || at == FAIL_MECHLISTMIC) && k == 2))
                return corrupt_token(body, flen, at) ? 1 : -1;
        } else if (type == FT_POLICY && at == FAIL_POLICY) {
            /* signed (PROTOCOL.md 5.2): mic_length (u32), MIC, payload; flip the MIC's last
             * byte (Kerberos: in the checksum; NTLM: the sequence number, which the signature
             * must match) */
            size_t mlen = flen >= 4 ? (size_t)body[0] << 24 | (size_t)body[1] << 16 |
                                          (size_t)body[2] << 8 | body[3]
                                    : 0;
            if (mlen < 16 || mlen > flen - 4)
                return -1;
            body[4 + mlen - 1] ^= 0xff;
            return 1;
        }
        off += HDR + flen;
    }
    return off == len ? 0 : -1;
}

/* One client that breaks its own handshake at AT, then reads the server's answer: an error
 * report (a HANDSHAKE_ERROR, or a protected CLOSE with a status once both contexts are complete)
 * and the end of the stream. Returns 0 if the server reported an error and closed. */
static int fail_once(uint16_t port, int at, const negio_config *cfg)
{
    int fd = test_tcp_connect(port);
    if (fd < 0)
        return -1;
    negio_conn *c;
    if (negio_conn_new(&c, cfg) != NEGIO_OK) {
        close(fd);
        return -1;
    }
    int hs = 0, corrupted = 0, rc = -1;
    uint8_t batch[16384], buf[16384];
    for (int iter = 0; iter < 64; iter++) {
        negio_event ev;
        int r;
        while ((r = negio_conn_next_event(c, &ev)) > 0)
            ;
        if (r < 0) {
            /* the server's report of its failure, and nothing else, may end this client */
            if (corrupted && (r == NEGIO_ERR_PEER || r == NEGIO_ERR_REJECTED))
                rc = 1;
            break;
        }
        size_t len;
        const uint8_t *out = negio_conn_send_buf(c, &len);
        if (len > 0) {
            if (len > sizeof(batch))
                break;
            memcpy(batch, out, len);
            if (!corrupted) {
                int d = corrupt_batch(batch, len, at, &hs);
                if (d < 0)
                    break;
                corrupted = d;
            }
            if (test_write_all(fd, batch, len) != 0)
                break;
            negio_conn_send_done(c, len);
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0 || negio_conn_feed(c, buf, (size_t)n) != NEGIO_OK)
            break;
    }
    /* then the server closes: the end of the stream, within the same time */
    while (rc == 1) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0)
            rc = 0;
        else if (n < 0 && errno != EINTR)
            break;
    }
    close(fd);
    negio_conn_del(c);
    return rc;
}

/* A server that counts its connections' ends by error code (the recorder counts reasons). */
#define CODES 32 /* NEGIO_ERR_NOMEM (-101) .. -132 */
typedef struct code_server {
    recorder r; /* engine, lock, counters (closed, authenticated) for recorder_wait */
    int by_code[CODES];
    char detail[CODES][240]; /* the last detail seen per code */
} code_server;

static int cs_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)c;
    (void)info;
    code_server *s = user;
    pthread_mutex_lock(&s->r.lock);
    s->r.authenticated++;
    pthread_mutex_unlock(&s->r.lock);
    return 0;
}

static void cs_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                          void *user)
{
    (void)c, (void)data, (void)len, (void)level;
    code_server *s = user;
    pthread_mutex_lock(&s->r.lock);
    s->r.messages++;
    pthread_mutex_unlock(&s->r.lock);
}

static void cs_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                         void *user)
{
    (void)c;
    code_server *s = user;
    pthread_mutex_lock(&s->r.lock);
    s->r.closed++;
    if (reason > 0 && reason < 6)
        s->r.closed_by_reason[reason]++;
    if (reason == NEGIO_CLOSE_ERROR && code <= -101 && code > -101 - CODES) {
        s->by_code[-101 - code]++;
        snprintf(s->detail[-101 - code], sizeof(s->detail[0]), "%s", detail);
    }
    pthread_cond_broadcast(&s->r.cond);
    pthread_mutex_unlock(&s->r.lock);
}

static void code_server_init(code_server *s, uint32_t handshake_timeout_ms)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->r.lock, NULL);
    pthread_cond_init(&s->r.cond, NULL);
    negio_engine_options o = {
        .loops = 2, .workers = 4, .handshake_timeout_ms = handshake_timeout_ms};
    o.callbacks.on_authenticated = cs_on_authenticated;
    o.callbacks.on_message = cs_on_message;
    o.callbacks.on_closed = cs_on_closed;
    o.user = s;
    assert_int_equal(engine_new_watched(&s->r.e, &o, &s->r.threads), NEGIO_OK);
}

static int code_count(code_server *s, int code)
{
    pthread_mutex_lock(&s->r.lock);
    int n = s->by_code[-101 - code];
    pthread_mutex_unlock(&s->r.lock);
    return n;
}

typedef struct fail_case {
    test_path path;
    int at;
    const char *what;
    int code;        /* how the server's side of each connection must end */
    int checks_ntlm; /* the server checked an AUTHENTICATE: gss-ntlmssp's leak applies */
} fail_case;

static const fail_case fail_cases[] = {
    {PATH_KERBEROS, FAIL_FIRST_TOKEN, "AP-REQ", NEGIO_ERR_HANDSHAKE, 0},
    {PATH_KERBEROS, FAIL_POLICY, "POLICY MIC", NEGIO_ERR_INTEGRITY, 0},
    {PATH_NEG_KERBEROS, FAIL_FIRST_TOKEN, "NegTokenInit (AP-REQ)", NEGIO_ERR_HANDSHAKE, 0},
    {PATH_NEG_KERBEROS, FAIL_POLICY, "POLICY MIC", NEGIO_ERR_INTEGRITY, 0},
    {PATH_NEG_NTLM, FAIL_FIRST_TOKEN, "NegTokenInit (NEGOTIATE)", NEGIO_ERR_HANDSHAKE, 0},
    {PATH_NEG_NTLM, FAIL_SECOND_TOKEN, "NegTokenResp (AUTHENTICATE)", NEGIO_ERR_HANDSHAKE, 1},
    {PATH_NEG_NTLM, FAIL_MECHLISTMIC, "NegTokenResp (mechListMIC)", NEGIO_ERR_HANDSHAKE, 1},
    {PATH_NEG_NTLM, FAIL_POLICY, "POLICY MIC", NEGIO_ERR_INTEGRITY, 1},
    {PATH_NTLM, FAIL_FIRST_TOKEN, "NEGOTIATE", NEGIO_ERR_HANDSHAKE, 0},
    {PATH_NTLM, FAIL_SECOND_TOKEN, "AUTHENTICATE", NEGIO_ERR_HANDSHAKE, 1},
    {PATH_NTLM, FAIL_POLICY, "POLICY MIC", NEGIO_ERR_INTEGRITY, 1},
};
#define NFAIL (sizeof(fail_cases) / sizeof(fail_cases[0]))

static void failed_handshakes_leave_server_memory_flat(void **state)
{
    (void)state;
    clients cl;
    clients_start(&cl, clients_main); /* first, while this process has no threads of its own */
    code_server srv;
    code_server_init(&srv, 0);
    clients_connect_to(&cl, server_listen(&srv.r));

    int64_t t0 = test_now_ms();
    int total = 0;
    for (size_t i = 0; i < NFAIL; i++) { /* warm-up: every error path once, caches, arenas */
        (void)clients_cmd(&cl, "fail", fail_cases[i].path, fail_cases[i].at, WARMUP / 4);
        total += WARMUP / 4;
    }
    server_settle(&srv.r, total);
    double growth[NFAIL];
    int ended[NFAIL];
    unsigned failed[NFAIL];
    size_t before = heap_in_use();
    for (size_t i = 0; i < NFAIL; i++) {
        const fail_case *f = &fail_cases[i];
        int had = code_count(&srv, f->code);
        failed[i] = clients_cmd(&cl, "fail", f->path, f->at, ROUNDS);
        total += ROUNDS;
        server_settle(&srv.r, total);
        size_t after = heap_in_use();
        growth[i] = ((double)after - (double)before) / ROUNDS;
        ended[i] = code_count(&srv, f->code) - had;
        print_message("%s, %s corrupted: %d handshakes (%u clients saw no error report), %d "
                      "ended in %s on the server (\"%s\"), server heap %zu -> %zu bytes (%+.1f "
                      "per handshake)\n",
                      test_path_name(f->path), f->what, ROUNDS, failed[i], ended[i],
                      negio_err_name(f->code), srv.detail[-101 - f->code], before, after,
                      growth[i]);
        before = after;
    }
    print_message("%zu cases, %d failing handshakes in %lld ms\n", NFAIL, total,
                  (long long)(test_now_ms() - t0));
    pthread_mutex_lock(&srv.r.lock);
    int authenticated = srv.r.authenticated, messages = srv.r.messages;
    int errors = srv.r.closed_by_reason[NEGIO_CLOSE_ERROR];
    pthread_mutex_unlock(&srv.r.lock);

    clients_stop(&cl);
    recorder_free(&srv.r);

    /* every handshake failed on the server, for the reason the corruption gives, and the server
     * told the client before closing */
    assert_int_equal(authenticated, 0);
    assert_int_equal(messages, 0);
    assert_int_equal(errors, total);
    for (size_t i = 0; i < NFAIL; i++) {
        assert_int_equal(failed[i], 0);
        assert_int_equal(ended[i], ROUNDS);
        /* flat; where the server checked an AUTHENTICATE, gss-ntlmssp's leak and nothing more */
        if (fail_cases[i].checks_ntlm)
            assert_true(growth[i] <= NTLM_LEAK_BOUND);
        else
            assert_true(growth[i] * ROUNDS < FLAT_BOUND);
    }
}

/* ---- 4. before authentication: at most one handshake token per connection -------------------- */

/* A peer that has not authenticated can make the server hold one handshake token at most
 * (max_token, 64 KiB by default), never a frame of max_frame (1 MiB): a frame whose type or size
 * the state does not allow is refused on its header, before its body is buffered (PROTOCOL.md
 * sections 3.5 and 4.1; before commit 7871e00 a DATA header announcing 1 MiB at level none made
 * the server buffer the megabyte until the handshake deadline, issue 13).
 *
 * The peers, in a child process: PRE_N connections that each send a HANDSHAKE header announcing
 * max_token and then nothing more, the same with all of the token but its last byte (the most a
 * connection can make the server hold), and PRE_N that each send a DATA header at level none
 * announcing 1 MiB and then the megabyte but a byte, as far as the server takes it. The server's
 * heap is measured (as in section 2) once it has read everything the HANDSHAKE peers sent (the
 * kernel's receive queue of each of its sockets is empty, /proc/net/tcp), and sampled while the
 * DATA peers send: the highest value counts. */

#define PRE_N 64
#define DATA_BODY ((1 << 20) - 1) /* all of the announced megabyte but a byte */
#define MAX_TOKEN 65536           /* negio's default max_token (src/conn/config.c) */
/* What a connection that has not authenticated may cost the server beyond the token it holds:
 * the receive region the connector keeps free for the next read (16 KiB, src/conn/conn.c
 * RECV_CHUNK), the 4 KiB step its input buffer grows by before authentication (src/base/buf.c),
 * and the connection itself: the engine's connection and its libuv TCP and timer handles, the
 * connector with its copy of the configuration, the frame header. Measured here (glibc, no
 * tcache): about 20,000 bytes per connection for a header alone (the 16 KiB region and about
 * 3.6 KiB), 73,300 to 85,600 with the whole token but a byte, depending on where the reads fell;
 * the most it can be is the token and its header with a region after them, in 4 KiB steps
 * (86,016 bytes), and the 3.6 KiB: 89,700, under the bound of 94,208. 8 KiB is left for the
 * connection itself and the allocator. On commit 4f7be19 the token took 134,700 bytes per
 * connection (the input buffer doubled), and the DATA peers were held until the deadline with
 * 2 MiB each (the megabyte in a doubled buffer: the server's heap peaked at 134.7 MB). */
#define PRE_REGION (16u * 1024)
#define PRE_STEP (4u * 1024)
#define PRE_CONN (8u * 1024)
#define PRE_FIXED (PRE_REGION + PRE_STEP + PRE_CONN)

static int pre_fd[PRE_N];
static int pre_open;

/* Sends what it can of N bytes (zeros) to FD: until they are all out or the peer has gone. */
static void pre_send_body(int fd, size_t n)
{
    static const uint8_t zeros[16384];
    while (n > 0) {
        ssize_t w = send(fd, zeros, n < sizeof(zeros) ? n : sizeof(zeros), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        n -= (size_t)w;
    }
}

/* Opens N connections to PORT that each send a frame header of TYPE announcing LEN bytes, then
 * (once all are open) BODY bytes of it each; they stay open. Returns how many got their header
 * out. */
static int pre_open_frames(uint16_t port, int n, uint8_t type, uint32_t len, size_t body)
{
    uint8_t hdr[HDR] = {
        NEGIO_PROTOCOL_VERSION, type,        0, 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
        (uint8_t)(len >> 8),    (uint8_t)len};
    int ok = 0, first = pre_open;
    for (int i = 0; i < n && pre_open < PRE_N; i++) {
        int fd = test_tcp_connect(port);
        if (fd < 0)
            continue;
        pre_fd[pre_open++] = fd;
        ok += test_write_all(fd, hdr, HDR) == 0;
    }
    for (int i = first; i < pre_open && body > 0; i++)
        pre_send_body(pre_fd[i], body);
    return ok;
}

/* Waits for the server to end each open connection (end of stream or reset, after whatever it
 * sent), up to MS; returns how many it ended and the longest wait in *MAX_MS. */
static int pre_wait_closed(int ms, int64_t t0, int64_t *max_ms)
{
    int closed = 0;
    *max_ms = 0;
    for (int i = 0; i < pre_open; i++) {
        uint8_t b[512];
        for (;;) {
            struct pollfd pfd = {.fd = pre_fd[i], .events = POLLIN};
            int left = (int)(t0 + ms - test_now_ms());
            if (left <= 0 || poll(&pfd, 1, left) <= 0)
                break;
            ssize_t r = read(pre_fd[i], b, sizeof(b));
            if (r > 0 || (r < 0 && errno == EINTR))
                continue;
            closed++;
            if (test_now_ms() - t0 > *max_ms)
                *max_ms = test_now_ms() - t0;
            break;
        }
    }
    return closed;
}

static void pre_close_all(void)
{
    for (int i = 0; i < pre_open; i++)
        close(pre_fd[i]);
    pre_open = 0;
}

/* Commands: "port P"; "hs N BODY" (N HANDSHAKE headers announcing MAX_TOKEN, BODY bytes of it
 * each); "data N BODY" (N DATA headers at level none announcing 1 MiB, BODY bytes of it each, as
 * far as the server takes them; answers once the server ended them: "ok ENDED LONGEST_MS");
 * "close" (all connections); "quit". Every other answer is "ok SENT 0". */
static void pre_peers_main(int cmd_fd, int ans_fd)
{
    FILE *in = fdopen(cmd_fd, "r");
    char line[128];
    unsigned port = 0, n, body;
    while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
        char ans[64];
        int len;
        if (sscanf(line, "port %u", &port) == 1)
            continue;
        if (sscanf(line, "hs %u %u", &n, &body) == 2) {
            int ok = pre_open_frames((uint16_t)port, (int)n, 1, MAX_TOKEN, body);
            len = snprintf(ans, sizeof(ans), "ok %d 0\n", ok);
        } else if (sscanf(line, "data %u %u", &n, &body) == 2) {
            int64_t t0 = test_now_ms(), longest;
            (void)pre_open_frames((uint16_t)port, (int)n, 4, 1u << 20, body);
            int ended = pre_wait_closed(10000, t0, &longest);
            pre_close_all();
            len = snprintf(ans, sizeof(ans), "ok %d %lld\n", ended, (long long)longest);
        } else if (strncmp(line, "close", 5) == 0) {
            pre_close_all();
            len = snprintf(ans, sizeof(ans), "ok 0 0\n");
        } else {
            break;
        }
        (void)!write(ans_fd, ans, (size_t)len);
    }
    _exit(0);
}

/* Sends a command to the peers and reads "ok A B". */
static void pre_cmd(clients *cl, const char *cmd, int *a, long long *b)
{
    assert_int_equal(test_write_all(cl->cmd, cmd, strlen(cmd)), 0);
    assert_int_equal(sscanf(clients_answer(cl, 60000), "ok %d %lld", a, b), 2);
}

/* pre_cmd, sampling the server's heap until the answer comes: the highest in *PEAK. */
static void pre_cmd_watching(clients *cl, const char *cmd, int *a, long long *b, size_t *peak)
{
    struct pollfd pfd = {.fd = cl->ans, .events = POLLIN};
    assert_int_equal(test_write_all(cl->cmd, cmd, strlen(cmd)), 0);
    int64_t until = test_now_ms() + 60000;
    while (poll(&pfd, 1, 1) == 0 && test_now_ms() < until) {
        size_t h = heap_in_use();
        if (h > *peak)
            *peak = h;
    }
    assert_int_equal(sscanf(clients_answer(cl, 60000), "ok %d %lld", a, b), 2);
}

/* Waits until the server has accepted N connections on PORT and read all they sent. */
static void server_read_all(code_server *srv, uint16_t port, int n)
{
    int sockets = 0;
    long unread = -1;
    /* every 5 ms: /proc/net/tcp has a line per connection, read while the server works */
    TEST_POLL_EVERY((unread = test_tcp_unread_at(port, &sockets)) == 0 && sockets == n &&
                        (int)negio_engine_connections(srv->r.e) == n,
                    30000, 5);
    if (unread != 0 || sockets != n || (int)negio_engine_connections(srv->r.e) != n)
        fail_msg("the server did not read everything from %d connections: %d sockets, %ld bytes "
                 "unread, %u connections",
                 n, sockets, unread, negio_engine_connections(srv->r.e));
}

/* N HANDSHAKE headers with BODY bytes each: the server's heap growth per connection. */
static double held_per_connection(clients *cl, code_server *srv, uint16_t port, int body)
{
    server_empty(&srv->r);
    size_t before = heap_in_use();
    char cmd[64];
    int sent;
    long long unused;
    snprintf(cmd, sizeof(cmd), "hs %d %d\n", PRE_N, body);
    pre_cmd(cl, cmd, &sent, &unused);
    assert_int_equal(sent, PRE_N);
    server_read_all(srv, port, PRE_N);
    size_t after = heap_in_use();
    pre_cmd(cl, "close\n", &sent, &unused);
    double per = ((double)after - (double)before) / PRE_N;
    print_message("%d connections each sent a HANDSHAKE header announcing %d bytes and %d bytes "
                  "of it: server heap %zu -> %zu bytes (%+.0f per connection)\n",
                  PRE_N, MAX_TOKEN, body, before, after, per);
    return per;
}

static void connections_before_authentication_hold_at_most_one_token(void **state)
{
    (void)state;
    clients cl;
    clients_start(&cl, pre_peers_main); /* first, while this process has no threads of its own */
    code_server srv;
    code_server_init(&srv, 60000); /* no deadline fires while the peers wait */
    uint16_t port = server_listen(&srv.r);
    clients_connect_to(&cl, port);

    (void)held_per_connection(&cl, &srv, port, MAX_TOKEN - 1); /* warm-up: arenas, caches */
    double header_only = held_per_connection(&cl, &srv, port, 0);
    double whole_token = held_per_connection(&cl, &srv, port, MAX_TOKEN - 1);

    server_empty(&srv.r);
    size_t before = heap_in_use();
    int had = code_count(&srv, NEGIO_ERR_PROTOCOL);
    int ended;
    long long longest;
    char line[64];
    snprintf(line, sizeof(line), "data %d %d\n", PRE_N, DATA_BODY);
    size_t peak = before;
    pre_cmd_watching(&cl, line, &ended, &longest, &peak);
    server_empty(&srv.r);
    size_t after = heap_in_use();
    int refused = code_count(&srv, NEGIO_ERR_PROTOCOL) - had;
    print_message("%d connections each sent a DATA header announcing 1 MiB at level none and "
                  "then what the server would take of it: %d ended by the server within %lld "
                  "ms, %d of them as protocol errors (\"%s\"); server heap %zu, at most %zu "
                  "meanwhile (%+.0f per connection), %zu afterwards\n",
                  PRE_N, ended, longest, refused, srv.detail[-101 - NEGIO_ERR_PROTOCOL], before,
                  peak, ((double)peak - (double)before) / PRE_N, after);
    pthread_mutex_lock(&srv.r.lock);
    int authenticated = srv.r.authenticated, messages = srv.r.messages;
    pthread_mutex_unlock(&srv.r.lock);
    clients_stop(&cl);
    recorder_free(&srv.r);

    assert_int_equal(authenticated, 0);
    assert_int_equal(messages, 0);
    /* a header alone: the connection and its receive region; the whole token but a byte: that
     * token more, and nothing in proportion to what the header announced beyond it */
    assert_true(header_only <= PRE_FIXED);
    assert_true(whole_token <= MAX_TOKEN + PRE_FIXED);
    /* DATA before authentication is refused on its header, at once (the deadline is 60 s),
     * having cost no more than a connection that sent a header alone */
    assert_int_equal(ended, PRE_N);
    assert_int_equal(refused, PRE_N);
    assert_true(longest < 5000);
    assert_true(peak - before <= (size_t)PRE_N * PRE_FIXED);
    assert_true(after - before < FLAT_BOUND || after < before);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
#if !SANITIZED
    /* glibc's per-thread caches (tcache) hold freed chunks that mallinfo2 still counts as in
     * use, hundreds of KiB across the engine's threads and varying from run to run: measure
     * without them. Tunables are read at start-up, hence the exec. */
    const char *tun = getenv("GLIBC_TUNABLES");
    if (tun == NULL || strstr(tun, "glibc.malloc.tcache_count=0") == NULL) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s%sglibc.malloc.tcache_count=0", tun ? tun : "",
                 tun ? ":" : "");
        setenv("GLIBC_TUNABLES", buf, 1);
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe"); /* go on with the caches */
    }
#endif
    test_realm_get();
    if (getenv("NEGIO_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("NEGIO_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(half_open_and_slowloris_peers_do_not_starve_real_clients),
        cmocka_unit_test(abandoned_handshakes_leave_server_memory_flat),
        cmocka_unit_test(failed_handshakes_leave_server_memory_flat),
        cmocka_unit_test(connections_before_authentication_hold_at_most_one_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
