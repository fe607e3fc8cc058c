/* The soak run (make soak; docs/SECURITY.md, "The soak run"): thousands of connections open,
 * authenticate, exchange messages and close against one `negio server --echo` process of the ASan
 * build for minutes, over the four mechanism paths (kerberos, negotiate->kerberos,
 * negotiate->ntlm, ntlm), while some clients are killed at random points: the socket closed
 * abruptly (a reset or a FIN) right after connecting, part-way through the first handshake frame,
 * after the first token, after the NTLM AUTHENTICATE, part-way through a message or before its
 * echo; and client processes killed with SIGKILL, their connections in flight. The server's RSS,
 * live heap and open descriptors are sampled throughout (/proc/PID/status, /proc/PID/fd,
 * tests/soak/heap_probe.c); at the end it is stopped with SIGTERM, shuts down gracefully, and
 * LeakSanitizer checks it at exit.
 *
 * The run: the server starts; a warm-up (Kerberos paths, NTLM paths, all paths, a third each)
 * brings its allocator and caches to their working size, and the baseline is sampled after a
 * pause; then three segments of a third of SOAK_SECONDS each: the Kerberos paths only, the NTLM
 * paths only, all four; each ends with a pause (no connection open) and a sample. gss-ntlmssp
 * 1.2.0 leaks a few KB per NTLM AUTHENTICATE it checks (docs/SECURITY.md 8.3), so the checks are:
 * the same descriptors open at the end of every segment as at the baseline; the live heap back to
 * its level at the start of each segment (within SOAK_HEAP_SLACK_KB), plus, on the NTLM paths, at
 * most SOAK_NTLM_HEAP_MAX bytes (7,600) for each AUTHENTICATE sent; the RSS,
 * which ASan's allocator keeps at its high-water mark, within SOAK_RSS_SLACK_KB of the baseline
 * plus SOAK_NTLM_RSS_MAX bytes per AUTHENTICATE; no sanitizer report from the server, exit status
 * 0; every connection that was not killed authenticated with the expected mechanism, got every
 * message echoed intact and ended with a protected close.
 *
 * Environment: NEGIO_BIN (the negio command to run as the server, required), SOAK_HEAP_PROBE (the
 * probe to preload into it; without it the live heap is not measured), SOAK_SECONDS (180),
 * SOAK_WARMUP_SECONDS (a sixth of it, at least 30), SOAK_CONCURRENCY (48 connections open at
 * once), SOAK_KILL_PERCENT (25), SOAK_CHILD_EVERY_MS (1000: a client process started, and killed
 * 20 to 420 ms later, this often), SOAK_HEAP_SLACK_KB (512), SOAK_NTLM_HEAP_MAX (7600),
 * SOAK_RSS_SLACK_KB (32768), SOAK_NTLM_RSS_MAX (20480), SOAK_SEED, SOAK_OUT (where the server's
 * output, the samples and the descriptor lists go; default ./soak). Exit status 0 when every check
 * passed; the last line says which failed otherwise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "negio/negio.h"
#include "support/clock.h"
#include "support/net.h"
#include "support/support.h"

/* gss-ntlmssp 1.2.0's leak per AUTHENTICATE checked (docs/SECURITY.md 8.3) */
#define NTLM_LEAK_BYTES 7600
#define MAX_SLOTS 512
#define CONN_DEADLINE 60.0 /* seconds: a connection that takes longer has hung */

/* Where a killed client stops. */
typedef enum kill_point {
    K_NONE = 0,
    K_AFTER_CONNECT,   /* nothing sent */
    K_PARTIAL_FIRST,   /* part of the first HANDSHAKE frame sent */
    K_AFTER_FIRST,     /* the first token sent, the server's answer not read */
    K_AFTER_AUTH,      /* the second token sent (NTLM: the AUTHENTICATE), before the POLICY */
    K_PARTIAL_MESSAGE, /* established; part of a message's frames sent */
    K_AWAIT_ECHO,      /* a whole message sent, its echo not read */
    K_COUNT
} kill_point;

static const char *const kill_names[K_COUNT] = {"none",
                                                "after connect",
                                                "inside the first frame",
                                                "after the first token",
                                                "after the second token",
                                                "inside a message",
                                                "before an echo"};

typedef struct stats {
    unsigned long started, established, completed, failed, killed[K_COUNT], messages, bytes;
    unsigned long ntlm_auth_sent; /* NTLM AUTHENTICATEs whose frame was sent whole */
    unsigned long per_path[PATH_COUNT];
    unsigned long child_processes, child_connections, child_auth_sent;
    long rss_mid_kb; /* the server's RSS half-way through the segment */
} stats;

typedef struct slot {
    int fd;
    negio_conn *c;
    test_path path;
    kill_point kill;
    int rst;
    int hs_sent;    /* HANDSHAKE frames sent whole */
    uint8_t hdr[8]; /* scanner of the frames sent: the header being read */
    size_t hdr_have;
    uint64_t frame_left; /* body bytes of the current frame still to be sent */
    int connected, established, close_sent, done, failed, msgs_left;
    uint8_t *expect;
    size_t expect_len;
    size_t send_cap; /* bytes that may still be sent before a partial-frame kill (0: no cap) */
    double started;
} slot;

static negio_config *client_cfg[PATH_COUNT];
static struct sockaddr_in server_addr;
static uint64_t rng_state;
static int child_pipe = -1; /* in a client child: where progress is reported */
static char failures[4096];

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? strtol(v, NULL, 10) : dflt;
}

static void note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_failure(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "soak: %s\n", line);
    size_t used = strlen(failures);
    if (used + strlen(line) + 3 < sizeof(failures))
        snprintf(failures + used, sizeof(failures) - used, "%s%s", used ? "; " : "", line);
}

/* Records that slot S failed (not by a planned kill: a kill closes the socket at once, so any
 * error the connector or the socket reports comes before it); returns -1, the slot is over. */
static int slot_failed(struct slot *s, stats *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_child(char what)
{
    if (child_pipe >= 0)
        (void)!write(child_pipe, &what, 1);
}

/* ---- one client connection ------------------------------------------------------------------ */

static int slot_failed(slot *s, stats *st, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    note_failure("%s%s", text, s->kill != K_NONE ? " (before its planned kill)" : "");
    s->failed = 1;
    st->failed++;
    return -1;
}

static int expected_mech(test_path p)
{
    return p == PATH_KERBEROS || p == PATH_NEG_KERBEROS ? NEGIO_MECH_KERBEROS : NEGIO_MECH_NTLM;
}

static void slot_close(slot *s)
{
    if (s->fd >= 0) {
        if (s->rst) {
            struct linger l = {1, 0}; /* close with a reset */
            (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        close(s->fd);
    }
    negio_conn_del(s->c);
    free(s->expect);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

static int slot_open(slot *s, test_path path, int kill_percent)
{
    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s->fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) < 0 &&
        errno != EINPROGRESS) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    if (negio_conn_new(&s->c, client_cfg[path]) != NEGIO_OK) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    s->path = path;
    s->started = test_now_s();
    s->msgs_left = 1 + (int)(rnd() % 3);
    if ((int)(rnd() % 100) < kill_percent) {
        /* a Kerberos client sends one token: "after the second token" is for NTLM */
        do
            s->kill = (kill_point)(1 + rnd() % (K_COUNT - 1));
        while (s->kill == K_AFTER_AUTH && expected_mech(path) != NEGIO_MECH_NTLM);
        s->rst = (int)(rnd() & 1);
    }
    return 0;
}

/* Follows the frames in the bytes sent, to know when a HANDSHAKE frame has gone out whole. */
static void scan_sent(slot *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (s->frame_left > 0) {
            size_t k = n < s->frame_left ? n : (size_t)s->frame_left;
            s->frame_left -= k;
            p += k;
            n -= k;
            if (s->frame_left == 0 && s->hdr[1] == 1)
                s->hs_sent++;
            continue;
        }
        s->hdr[s->hdr_have++] = *p++;
        n--;
        if (s->hdr_have == 8) {
            s->hdr_have = 0;
            s->frame_left = (uint64_t)s->hdr[4] << 24 | (uint64_t)s->hdr[5] << 16 |
                            (uint64_t)s->hdr[6] << 8 | s->hdr[7];
            if (s->frame_left == 0 && s->hdr[1] == 1)
                s->hs_sent++;
        }
    }
}

static void send_message(slot *s)
{
    /* mostly small, one in eight up to 64 KB (several frames of a peer with small frames would
     * need a server option; the multi-frame paths are the conformance tests' business) */
    size_t len = rnd() % 8 == 0 ? rnd() % 65536 : rnd() % 4096;
    static const negio_level levels[] = {NEGIO_LEVEL_NONE, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL};
    s->expect = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        s->expect[i] = (uint8_t)rnd();
    s->expect_len = len;
    int rc = negio_conn_write(s->c, s->expect, len, levels[rnd() % 3]);
    if (rc != NEGIO_OK)
        note_failure("write of %zu bytes on %s: %s", len, test_path_name(s->path),
                     negio_err_name(rc)); /* the connector's error then ends the slot */
    if (s->kill == K_PARTIAL_MESSAGE) {
        size_t out;
        (void)negio_conn_send_buf(s->c, &out);
        s->send_cap = out > 1 ? 1 + rnd() % (out - 1) : 1;
    }
}

/* Sends what the connector has; returns -1 when the slot is finished (killed or failed). */
static int pump_out(slot *s, stats *st)
{
    for (;;) {
        size_t n;
        const uint8_t *p = negio_conn_send_buf(s->c, &n);
        if (n == 0)
            return 0;
        int first_frame_kill = s->kill == K_PARTIAL_FIRST && s->hs_sent == 0;
        if (first_frame_kill && s->send_cap == 0)
            s->send_cap = n > 1 ? 1 + rnd() % (n - 1) : 1;
        if (s->send_cap > 0 && n > s->send_cap)
            n = s->send_cap;
        ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return slot_failed(s, st, "send on %s: %s", test_path_name(s->path), strerror(errno));
        }
        int before = s->hs_sent;
        scan_sent(s, p, (size_t)w);
        negio_conn_send_done(s->c, (size_t)w);
        if (s->hs_sent >= 2 && before < 2 && expected_mech(s->path) == NEGIO_MECH_NTLM) {
            st->ntlm_auth_sent++;
            report_child('A');
        }
        if (s->send_cap > 0) {
            s->send_cap -= (size_t)w;
            if (s->send_cap == 0)
                return -1; /* the partial frame is out: the kill */
        }
        if ((s->kill == K_AFTER_FIRST && s->hs_sent >= 1) ||
            (s->kill == K_AFTER_AUTH && s->hs_sent >= 2))
            return -1;
    }
}

/* Runs the connector's events; -1 when the slot is finished. */
static int run_events(slot *s, stats *st)
{
    for (;;) {
        negio_event ev;
        int rc = negio_conn_next_event(s->c, &ev);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            return slot_failed(s, st, "%s: %s: %s", test_path_name(s->path), negio_err_name(rc),
                               negio_conn_error_detail(s->c));
        }
        if (ev.type == NEGIO_EV_ESTABLISHED) {
            negio_auth_info info;
            s->established = 1;
            st->established++;
            report_child('E');
            if (negio_conn_auth_info(s->c, &info) != NEGIO_OK ||
                (int)info.mech != expected_mech(s->path)) {
                return slot_failed(s, st, "%s authenticated with %s", test_path_name(s->path),
                                   negio_mech_name(info.mech));
            }
            send_message(s);
        } else if (ev.type == NEGIO_EV_MESSAGE) {
            if (ev.len != s->expect_len ||
                (ev.len > 0 && memcmp(ev.data, s->expect, ev.len) != 0)) {
                return slot_failed(s, st, "%s: the echo of a %zu-byte message differs",
                                   test_path_name(s->path), s->expect_len);
            }
            st->messages++;
            st->bytes += ev.len;
            free(s->expect);
            s->expect = NULL;
            if (--s->msgs_left > 0) {
                send_message(s);
            } else {
                s->close_sent = 1;
                if (negio_conn_close(s->c, 0, "soak") != NEGIO_OK) {
                    return slot_failed(s, st, "close on %s: %s", test_path_name(s->path),
                                       negio_conn_error_detail(s->c));
                }
            }
        } else if (ev.type == NEGIO_EV_CLOSED) {
            if (!s->close_sent) {
                return slot_failed(s, st, "%s: the server closed first: %s",
                                   test_path_name(s->path), ev.reason);
            }
            (void)pump_out(s, st);
            st->completed++;
            s->done = 1;
            return -1;
        }
    }
}

/* What a slot waits for: the connection, then input, and room for pending output. */
static short slot_events(slot *s)
{
    if (!s->connected)
        return POLLOUT;
    size_t out;
    (void)negio_conn_send_buf(s->c, &out);
    return (short)(POLLIN | (out > 0 ? POLLOUT : 0));
}

/* Handles one poll result for a slot; -1 when the slot is finished. */
static int slot_io(slot *s, short revents, stats *st)
{
    if (!s->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            return slot_failed(s, st, "connect: %s", strerror(err != 0 ? err : errno));
        }
        s->connected = 1;
        if (s->kill == K_AFTER_CONNECT)
            return -1;
        revents = 0; /* the first step comes next: the client speaks first */
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t buf[65536];
        ssize_t r = recv(s->fd, buf, sizeof(buf), 0);
        if (r > 0) {
            if (negio_conn_feed(s->c, buf, (size_t)r) != NEGIO_OK)
                return slot_failed(s, st, "feed on %s: %s", test_path_name(s->path),
                                   negio_conn_error_detail(s->c));
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            negio_conn_feed_eof(s->c);
        }
    }
    if (run_events(s, st) < 0)
        return -1;
    if (s->kill == K_AWAIT_ECHO && s->established && s->expect != NULL) {
        size_t n;
        (void)negio_conn_send_buf(s->c, &n);
        if (pump_out(s, st) < 0)
            return -1;
        (void)negio_conn_send_buf(s->c, &n);
        if (n == 0)
            return -1; /* the message is out, its echo will not be read */
    }
    return pump_out(s, st);
}

typedef struct plan {
    int paths_mask;            /* 1 << path for each path to use */
    unsigned long connections; /* stop after this many (0: by time) */
    double until;              /* stop at this time (0: by count) */
    int concurrency, kill_percent;
    int child_every_ms; /* 0: no client processes */
    const char *csv;    /* sample the server every second into this file */
    pid_t server;
} plan;

static test_path pick_path(int mask)
{
    for (;;) {
        test_path p = (test_path)(rnd() % PATH_COUNT);
        if (mask & (1 << p))
            return p;
    }
}

typedef struct sample {
    long rss_kb, fds, threads;
    long heap_kb; /* live heap (tests/soak/heap_probe.c), -1 without the probe */
} sample;

static char heap_file[512];

/* Waits (at most 5 s) until the heap probe has written a sample after this call, so that the
 * next sample_of reads the server as it is now. */
static void fresh_heap_sample(void)
{
    struct stat before, now;
    if (heap_file[0] == '\0' || stat(heap_file, &before) != 0)
        return;
    TEST_POLL_EVERY(stat(heap_file, &now) == 0 && (now.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                                                   now.st_mtim.tv_nsec != before.st_mtim.tv_nsec),
                    5000, 10);
}

static sample sample_of(pid_t pid)
{
    sample sm = {-1, -1, -1, -1};
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "VmRSS:", 6) == 0)
                sm.rss_kb = strtol(line + 6, NULL, 10);
            else if (strncmp(line, "Threads:", 8) == 0)
                sm.threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
    }
    if (heap_file[0] != '\0' && pid != getpid() && (f = fopen(heap_file, "r")) != NULL) {
        unsigned long long live;
        if (fscanf(f, "%llu", &live) == 1)
            sm.heap_kb = (long)(live / 1024);
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d != NULL) {
        sm.fds = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            sm.fds += e->d_name[0] != '.';
        closedir(d);
    }
    return sm;
}

/* A client process: opens a few connections, runs them until it is killed. */
static pid_t start_child(int paths_mask, slot *slots, int nslots, int *progress_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    uint64_t seed = rnd();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        *progress_fd = p[0];
        return pid;
    }
    /* the child: the parent's sockets are not ours to hold open */
    close(p[0]);
    for (int i = 0; i < nslots; i++)
        if (slots[i].fd >= 0)
            close(slots[i].fd);
    child_pipe = p[1];
    rng_state = seed | 1;
    int n = 2 + (int)(rnd() % 7);
    slot mine[8];
    struct pollfd pfd[8];
    for (int i = 0; i < n; i++) {
        if (slot_open(&mine[i], pick_path(paths_mask), 0) == 0)
            report_child('C');
    }
    stats st = {0};
    for (;;) {
        for (int i = 0; i < n; i++) {
            pfd[i].fd = mine[i].fd;
            pfd[i].events = mine[i].fd >= 0 ? slot_events(&mine[i]) : 0;
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n, 100) < 0 && errno != EINTR)
            _exit(1);
        for (int i = 0; i < n; i++)
            if (mine[i].fd >= 0 && pfd[i].revents && slot_io(&mine[i], pfd[i].revents, &st) < 0) {
                close(mine[i].fd);
                mine[i].fd = -1; /* no cleanup: the parent kills this process anyway */
            }
    }
}

static void drain_child_pipe(int fd, stats *st)
{
    char buf[256];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            st->child_connections += buf[i] == 'C';
            st->child_auth_sent += buf[i] == 'A';
        }
    }
}

/* Runs clients as PLAN says. */
static void run_clients(const plan *pl, stats *st)
{
    slot slots[MAX_SLOTS];
    struct pollfd pfd[MAX_SLOTS];
    int n = pl->concurrency < MAX_SLOTS ? pl->concurrency : MAX_SLOTS;
    for (int i = 0; i < n; i++)
        slots[i].fd = -1;
    FILE *csv = pl->csv != NULL ? fopen(pl->csv, "a") : NULL;
    double t0 = test_now_s(), next_sample = t0, next_child = t0 + pl->child_every_ms / 1000.0;
    double mid = t0 + (pl->until - t0) / 2;
    pid_t child = -1;
    int child_fd = -1;
    double child_kill_at = 0;
    unsigned long started_here = 0;
    for (;;) {
        double t = test_now_s();
        int more = pl->connections ? started_here < pl->connections : t < pl->until;
        int open = 0;
        for (int i = 0; i < n; i++) {
            if (slots[i].fd < 0 && more) {
                test_path p = pick_path(pl->paths_mask);
                if (slot_open(&slots[i], p, pl->kill_percent) == 0) {
                    st->started++;
                    st->per_path[p]++;
                    started_here++;
                    more = pl->connections ? started_here < pl->connections : t < pl->until;
                } else {
                    note_failure("connect: %s", strerror(errno));
                    st->failed++;
                }
            }
            if (slots[i].fd >= 0 && t - slots[i].started > CONN_DEADLINE) {
                note_failure("%s connection hung (%s)", test_path_name(slots[i].path),
                             kill_names[slots[i].kill]);
                st->failed++;
                slot_close(&slots[i]);
            }
            pfd[i].fd = slots[i].fd;
            pfd[i].events = slots[i].fd >= 0 ? slot_events(&slots[i]) : 0;
            pfd[i].revents = 0;
            open += slots[i].fd >= 0;
        }
        if (!open && !more && child < 0)
            break;
        if (pl->child_every_ms > 0 && child < 0 && more && t >= next_child) {
            child = start_child(pl->paths_mask, slots, n, &child_fd);
            if (child > 0) {
                st->child_processes++;
                child_kill_at = t + (double)(20 + rnd() % 400) / 1000.0;
            }
            next_child = t + pl->child_every_ms / 1000.0;
        }
        if (child > 0 && t >= child_kill_at) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            drain_child_pipe(child_fd, st);
            close(child_fd);
            child = -1;
        }
        if (csv != NULL && t >= next_sample) {
            sample sm = sample_of(pl->server);
            if (t >= mid && st->rss_mid_kb == 0)
                st->rss_mid_kb = sm.rss_kb;
            fprintf(csv, "%.1f,%ld,%ld,%ld,%lu,%lu,%ld\n", t, sm.rss_kb, sm.fds, sm.threads,
                    st->started, st->completed, sm.heap_kb);
            fflush(csv);
            next_sample = t + 1.0;
        }
        if (poll(pfd, (nfds_t)n, 50) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (slots[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (slot_io(&slots[i], pfd[i].revents, st) < 0) {
                if (!slots[i].done && !slots[i].failed) {
                    if (slots[i].kill != K_NONE)
                        st->killed[slots[i].kill]++;
                    else
                        slot_failed(&slots[i], st, "%s ended early", test_path_name(slots[i].path));
                }
                slot_close(&slots[i]);
            }
        }
    }
    if (csv != NULL)
        fclose(csv);
}

/* ---- the server ------------------------------------------------------------------------------ */

static pid_t start_server(const char *bin, const char *out_dir, const test_realm *r, int *port)
{
    char log[512], err[512];
    snprintf(log, sizeof(log), "%s/server.log", out_dir);
    snprintf(err, sizeof(err), "%s/server.err", out_dir);
    unlink(log); /* a previous run's line must not be read for this server's */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || devnull < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
            dup2(devnull, 0) < 0)
            _exit(127);
        /* the server holds only what it opens itself: its descriptor counts are its own */
        close_range(3, ~0u, 0);
        /* ASan's quarantine of freed blocks (256 MB by default) would dominate the RSS; a small
         * one fills during the warm-up, so that the RSS follows the heap negio uses */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[1024];
        snprintf(opts, sizeof(opts),
                 "%s%squarantine_size_mb=8:allocator_release_to_os_interval_ms=-1%s",
                 asan != NULL ? asan : "", asan != NULL && asan[0] ? ":" : "",
                 heap_file[0] ? ":verify_asan_link_order=0" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        if (heap_file[0] != '\0') { /* the probe is preloaded ahead of the ASan runtime */
            setenv("LD_PRELOAD", getenv("SOAK_HEAP_PROBE"), 1);
            setenv("SOAK_HEAP_FILE", heap_file, 1);
        }
        execl(bin, bin, "server", "--listen", "127.0.0.1:0", "--echo", "--json", "--min-protect",
              "none", "--keytab", r->keytab, "--spn", "negio@localhost", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    /* the first line says where it listens: {"event":"listening",...,"port":N,...}; the log is
     * read again every 100 ms until it does, or the server has exited */
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(log, "r");
        char line[512];
        if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            const char *p = strstr(line, "\"port\":");
            fclose(f);
            if (p != NULL) {
                *port = atoi(p + 7);
                return pid;
            }
        } else if (f != NULL) {
            fclose(f);
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static unsigned long count_lines(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    unsigned long n = 0;
    char line[4096];
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    fclose(f);
    return n;
}

static long count_own_fds(void)
{
    return sample_of(getpid()).fds;
}

static void print_stats(const char *what, const stats *st)
{
    printf("%s: %lu connections (kerberos %lu, negotiate->kerberos %lu, negotiate->ntlm %lu, "
           "ntlm %lu), %lu established, %lu completed with a protected close, %lu failed; "
           "%lu messages echoed (%lu bytes); killed:",
           what, st->started, st->per_path[PATH_KERBEROS], st->per_path[PATH_NEG_KERBEROS],
           st->per_path[PATH_NEG_NTLM], st->per_path[PATH_NTLM], st->established, st->completed,
           st->failed, st->messages, st->bytes);
    for (int k = 1; k < K_COUNT; k++)
        printf(" %s %lu%s", kill_names[k], st->killed[k], k + 1 < K_COUNT ? "," : "");
    printf("; client processes killed %lu (%lu connections); NTLM AUTHENTICATEs sent %lu\n",
           st->child_processes, st->child_connections, st->ntlm_auth_sent + st->child_auth_sent);
}

/* Writes the targets of PID's descriptors, one a line, to PATH. */
static void list_fds(pid_t pid, const char *path)
{
    char dir[64], link[512], target[512];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    FILE *out = fopen(path, "w");
    DIR *d = opendir(dir);
    if (out == NULL || d == NULL) {
        if (out != NULL)
            fclose(out);
        if (d != NULL)
            closedir(d);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        fprintf(out, "%s -> %s\n", e->d_name, target);
    }
    closedir(d);
    fclose(out);
}

/* The server's LeakSanitizer summary of suppressed leaks (gss-ntlmssp's, tests/lsan.supp): the
 * blocks and bytes of every "Suppressions used" line. */
static void suppressed_leaks(const char *err, unsigned long *blocks, unsigned long *bytes)
{
    FILE *f = fopen(err, "r");
    char line[512];
    int in = 0;
    *blocks = *bytes = 0;
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long c, b;
        if (strstr(line, "Suppressions used:") != NULL)
            in = 1;
        else if (in && sscanf(line, " %lu %lu", &c, &b) == 2) {
            *blocks += c;
            *bytes += b;
        } else if (in && line[0] == '-')
            in = 0;
    }
    fclose(f);
}

static void add_stats(stats *to, const stats *x)
{
    to->started += x->started;
    to->established += x->established;
    to->completed += x->completed;
    to->failed += x->failed;
    to->messages += x->messages;
    to->bytes += x->bytes;
    to->ntlm_auth_sent += x->ntlm_auth_sent;
    to->child_processes += x->child_processes;
    to->child_connections += x->child_connections;
    to->child_auth_sent += x->child_auth_sent;
    for (int k = 0; k < K_COUNT; k++)
        to->killed[k] += x->killed[k];
    for (int p = 0; p < PATH_COUNT; p++)
        to->per_path[p] += x->per_path[p];
}

#define ALL_PATHS 0xf
#define KERBEROS_PATHS (1 << PATH_KERBEROS | 1 << PATH_NEG_KERBEROS)
#define NTLM_PATHS (1 << PATH_NEG_NTLM | 1 << PATH_NTLM)

int main(void)
{
    const char *bin = getenv("NEGIO_BIN");
    if (bin == NULL) {
        fprintf(stderr, "soak: NEGIO_BIN must name the negio command\n");
        return 2;
    }
    long seconds = env_long("SOAK_SECONDS", 180);
    long warmup = env_long("SOAK_WARMUP_SECONDS", seconds / 6 > 30 ? seconds / 6 : 30);
    int concurrency = (int)env_long("SOAK_CONCURRENCY", 48);
    int kill_percent = (int)env_long("SOAK_KILL_PERCENT", 25);
    int child_every = (int)env_long("SOAK_CHILD_EVERY_MS", 1000);
    long heap_slack_kb = env_long("SOAK_HEAP_SLACK_KB", 512);
    long rss_slack_kb = env_long("SOAK_RSS_SLACK_KB", 32768);
    long ntlm_rss_max = env_long("SOAK_NTLM_RSS_MAX", 20480);
    long ntlm_heap_max = env_long("SOAK_NTLM_HEAP_MAX", NTLM_LEAK_BYTES);
    rng_state = (uint64_t)env_long("SOAK_SEED", (long)time(NULL)) | 1;
    const char *out = getenv("SOAK_OUT") != NULL ? getenv("SOAK_OUT") : "soak";
    mkdir(out, 0755);
    char csv[512], log[512], err[512], fds_path[512];
    snprintf(csv, sizeof(csv), "%s/samples.csv", out);
    snprintf(log, sizeof(log), "%s/server.log", out);
    snprintf(err, sizeof(err), "%s/server.err", out);
    FILE *f = fopen(csv, "w");
    if (f != NULL) {
        fprintf(f, "time,rss_kb,fds,threads,connections,completed,heap_kb\n");
        fclose(f);
    }
    printf("soak: warm-up %ld s, then %ld s in three segments; %d connections at once, %d%% "
           "killed, a client process killed every %d ms; seed %llu; output in %s\n",
           warmup, seconds, concurrency, kill_percent, child_every, (unsigned long long)rng_state,
           out);

    if (getenv("SOAK_HEAP_PROBE") != NULL && getenv("SOAK_HEAP_PROBE")[0] != '\0')
        snprintf(heap_file, sizeof(heap_file), "%s/heap", out);
    const test_realm *r = test_realm_get();
    /* messages go at every level, and the server echoes each at the level it came: the clients
     * accept none too (a server echo the client's policy forbids would fail on the server) */
    for (int p = 0; p < PATH_COUNT; p++) {
        client_cfg[p] = test_client_config((test_path)p);
        if (negio_config_set_min_level(client_cfg[p], NEGIO_LEVEL_NONE) != NEGIO_OK)
            return 1;
    }
    long own_fds_start = count_own_fds();
    int port = 0;
    pid_t server = start_server(bin, out, r, &port);
    if (server < 0) {
        fprintf(stderr, "soak: the server did not start (see %s)\n", err);
        return 1;
    }
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)port);
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fresh_heap_sample(); /* the probe's first, once the server listens */
    sample s_start = sample_of(server);
    snprintf(fds_path, sizeof(fds_path), "%s/fds-start.txt", out);
    list_fds(server, fds_path);
    printf("server pid %d on port %d: RSS %ld KB, %ld descriptors, %ld threads at start\n",
           (int)server, port, s_start.rss_kb, s_start.fds, s_start.threads);

    /* The warm-up (Kerberos, NTLM, then all paths, a third of it each) brings the server's
     * allocator (ASan's size classes, its quarantine), its credential cache and replay cache to
     * their working size; the baseline is taken after it.
     * Then: Kerberos only, where RSS must stay at the baseline; NTLM only, which shows what
     * gss-ntlmssp's leak costs per AUTHENTICATE; everything together. Each segment ends with a
     * pause (nothing open) and a sample. */
    static const struct {
        const char *name;
        int mask;
    } segs[] = {{"warm-up", ALL_PATHS},
                {"kerberos paths", KERBEROS_PATHS},
                {"ntlm paths", NTLM_PATHS},
                {"all paths", ALL_PATHS}};
    stats st[4] = {{0}}, all = {0};
    sample sm[4];
    for (int i = 0; i < 4; i++) {
        plan pl = {.paths_mask = segs[i].mask,
                   .until = test_now_s() + (double)(i == 0 ? warmup : seconds / 3),
                   .concurrency = concurrency,
                   .kill_percent = kill_percent,
                   .child_every_ms = child_every,
                   .csv = csv,
                   .server = server};
        if (i == 0) {
            /* every kind of load the segments bring, so that each finds the allocator at the
             * size it needs */
            for (int k = 1; k < 4; k++) {
                pl.paths_mask = segs[k].mask;
                pl.until = test_now_s() + (double)warmup / 3;
                run_clients(&pl, &st[0]);
            }
        } else {
            run_clients(&pl, &st[i]);
        }
        /* the pause: until the server has closed every connection, then a heap sample taken
         * after that */
        TEST_POLL_EVERY(test_tcp_open_at((uint16_t)port) == 0, 60000, 20);
        if (test_tcp_open_at((uint16_t)port) != 0)
            note_failure("segment %s: the server still had %d connections open after 60 s",
                         segs[i].name, test_tcp_open_at((uint16_t)port));
        fresh_heap_sample();
        sm[i] = sample_of(server);
        print_stats(segs[i].name, &st[i]);
        add_stats(&all, &st[i]);
        unsigned long auths = st[i].ntlm_auth_sent + st[i].child_auth_sent;
        long growth = sm[i].rss_kb - (i == 0 ? s_start.rss_kb : sm[i - 1].rss_kb);
        printf("  then: RSS %ld KB (%+ld KB", sm[i].rss_kb, growth);
        if (st[i].started > 0)
            printf("; %.0f bytes per connection", (double)growth * 1024 / (double)st[i].started);
        if (auths > 0)
            printf("; %.0f bytes per NTLM AUTHENTICATE, %lu sent",
                   (double)growth * 1024 / (double)auths, auths);
        printf("), %ld descriptors", sm[i].fds);
        if (sm[i].heap_kb >= 0) {
            long hg = sm[i].heap_kb - (i == 0 ? s_start.heap_kb : sm[i - 1].heap_kb);
            printf("; live heap %ld KB (%+ld KB", sm[i].heap_kb, hg);
            if (auths > 0)
                printf(", %.0f bytes per NTLM AUTHENTICATE", (double)hg * 1024 / (double)auths);
            printf(")");
        }
        if (i > 0 && st[i].rss_mid_kb > 0)
            printf("; half-way through it RSS was %ld KB", st[i].rss_mid_kb);
        printf("\n");
        if (i > 0 && sm[i].fds != sm[0].fds)
            note_failure("%s: %ld server descriptors open, %ld at the baseline", segs[i].name,
                         sm[i].fds, sm[0].fds);
    }
    snprintf(fds_path, sizeof(fds_path), "%s/fds-end.txt", out);
    list_fds(server, fds_path);

    /* graceful stop, then LeakSanitizer in the server */
    kill(server, SIGTERM);
    int status = 0;
    double stop_t = test_now_s();
    pid_t stopped = 0;
    TEST_POLL_EVERY((stopped = waitpid(server, &status, WNOHANG)) != 0, 60000, 100);
    if (stopped == 0) {
        note_failure("the server did not stop within 60 s of SIGTERM");
        kill(server, SIGKILL);
        waitpid(server, &status, 0);
    }
    double stop_s = test_now_s() - stop_t;
    unsigned long sanitizer = count_lines(err, "Sanitizer", NULL);
    unsigned long auth_ntlm = count_lines(log, "\"authenticated\"", "\"mech\":\"ntlm\"");
    unsigned long auth_krb = count_lines(log, "\"authenticated\"", "\"mech\":\"kerberos\"");
    unsigned long closed = count_lines(log, "\"closed\"", NULL);
    unsigned long sup_blocks, sup_bytes;
    suppressed_leaks(err, &sup_blocks, &sup_bytes);
    print_stats("total", &all);
    unsigned long auths = all.ntlm_auth_sent + all.child_auth_sent;
    printf("server: stopped %.1f s after SIGTERM, %s %d; %lu authenticated (kerberos %lu, ntlm "
           "%lu), %lu connections closed; sanitizer reports: %lu; suppressed leaks (gss-ntlmssp, "
           "tests/lsan.supp): %lu blocks, %lu bytes (%.0f bytes in %.0f blocks per NTLM "
           "AUTHENTICATE sent)\n",
           stop_s, WIFEXITED(status) ? "exit status" : "signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), auth_krb + auth_ntlm,
           auth_krb, auth_ntlm, closed, sanitizer, sup_blocks, sup_bytes,
           auths ? (double)sup_bytes / (double)auths : 0.0,
           auths ? (double)sup_blocks / (double)auths : 0.0);
    printf("connections: %lu opened by the client, %lu by the client processes killed; %lu closed "
           "by the server\n",
           all.started, all.child_connections, closed);
    printf("server descriptors: %ld at start, %ld at the baseline, %ld at the end (lists in "
           "%s/fds-start.txt, fds-end.txt)\n",
           s_start.fds, sm[0].fds, sm[3].fds, out);

    /* Memory. The live heap (with the probe) is exact: after the warm-up it may grow only by
     * gss-ntlmssp's leak, at most SOAK_NTLM_HEAP_MAX bytes for each AUTHENTICATE sent (an upper
     * bound of those the server checked). LeakSanitizer's count of the suppressed blocks is not
     * used: it counts only the blocks it finds unreachable at exit, which varies from run to
     * run. The RSS is ASan's allocator at its high-water mark (it returns nothing to the system
     * here): it may grow by a slack, and by the leak's cost in RSS for each AUTHENTICATE. */
    double leak_per_auth = (double)ntlm_heap_max;
    unsigned long seg_auths = 0;
    long seg_heap = 0;
    for (int i = 1; i < 4; i++) {
        unsigned long a = st[i].ntlm_auth_sent + st[i].child_auth_sent;
        seg_auths += a;
        if (sm[i].heap_kb < 0)
            continue;
        long hg = sm[i].heap_kb - sm[i - 1].heap_kb;
        seg_heap += hg;
        double allowed = (double)heap_slack_kb + (double)a * leak_per_auth / 1024;
        if ((double)hg > allowed)
            note_failure("%s: the live heap grew %ld KB, more than %.0f KB (%ld KB, and %lu NTLM "
                         "AUTHENTICATEs of %.0f bytes)",
                         segs[i].name, hg, allowed, heap_slack_kb, a, leak_per_auth);
    }
    long rss_growth = sm[3].rss_kb - sm[0].rss_kb;
    double rss_allowed = (double)rss_slack_kb + (double)seg_auths * (double)ntlm_rss_max / 1024;
    if ((double)rss_growth > rss_allowed)
        note_failure("RSS grew %ld KB after the warm-up, more than %.0f KB (%ld KB, and %lu NTLM "
                     "AUTHENTICATEs of %ld bytes)",
                     rss_growth, rss_allowed, rss_slack_kb, seg_auths, ntlm_rss_max);
    if (sm[3].heap_kb >= 0)
        printf("live heap: %ld KB at start, %ld KB at the baseline, %ld KB at the end; after the "
               "baseline %+ld KB for %lu NTLM AUTHENTICATEs sent (%.0f bytes each), %+ld KB over "
               "the Kerberos segment's %lu connections\n",
               s_start.heap_kb, sm[0].heap_kb, sm[3].heap_kb, seg_heap, seg_auths,
               seg_auths ? (double)seg_heap * 1024 / (double)seg_auths : 0.0,
               sm[1].heap_kb - sm[0].heap_kb, st[1].started);
    printf("RSS: %ld KB at start, %ld KB at the baseline, %ld KB at the end (%+ld KB after the "
           "baseline: %.0f bytes per NTLM AUTHENTICATE sent; %+ld KB over the Kerberos "
           "segment)\n",
           s_start.rss_kb, sm[0].rss_kb, sm[3].rss_kb, rss_growth,
           seg_auths ? (double)rss_growth * 1024 / (double)seg_auths : 0.0,
           sm[1].rss_kb - sm[0].rss_kb);

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        note_failure("the server ended with %s %d (see %s)",
                     WIFEXITED(status) ? "exit status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), err);
    if (sanitizer > 0)
        note_failure("%lu sanitizer report lines in %s", sanitizer, err);
    if (all.failed > 0)
        note_failure("%lu connections that were not killed failed", all.failed);
    for (int p = 0; p < PATH_COUNT; p++)
        negio_config_del(client_cfg[p]);
    long own_fds_end = count_own_fds();
    if (own_fds_end != own_fds_start)
        note_failure("the soak client holds %ld descriptors, %ld at start", own_fds_end,
                     own_fds_start);
    if (failures[0] != '\0') {
        printf("soak: FAILED: %s\n", failures);
        return 1;
    }
    printf("soak: ok\n");
    return 0;
}
