/*
 * negio bench: the networked parties, each a separate process started by the parent as
 * "negio bench --child ROLE key=value ...". They use the engine (include/negio/engine.h) exactly
 * as an application would, and report on stdout, one "word key=value ..." line per result.
 *
 * The application protocol on top of negio messages, told apart by the first byte:
 *   'D' data (counted by the server)      'B' begin a measurement (server resets its counters)
 *   'E' end: the server answers "R msgs=N bytes=N cpu_us=N" at the level of the 'E'
 *   'P' ping: the server echoes it at the level it arrived
 *   'W' warm-up data, not counted
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "negio/engine.h"

#define SERVICE "negio@localhost"
#define HIGH_WATER (1u << 20) /* the engine's default: what a user gets */

static int usage_error(const char *role, const char *what)
{
    printf("error role=%s %s\n", role, what);
    fflush(stdout);
    return 2;
}

negio_config *bench_client_config(const char *path, char *err, size_t cap)
{
    negio_config *cfg;
    if (negio_config_new(&cfg, NEGIO_ROLE_CLIENT) != 0)
        return snprintf(err, cap, "out of memory"), NULL;
    int rc = negio_config_set_service(cfg, SERVICE);
    if (rc == 0)
        rc = negio_config_set_min_level(cfg, NEGIO_LEVEL_NONE);
    if (rc == 0 && strcmp(path, "kerberos") == 0) {
        rc = negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS);
    } else if (rc == 0 && strcmp(path, "kerberos-mit") == 0) {
        rc = negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS);
        if (rc == 0)
            rc = negio_config_set_kerberos_fast_path(cfg, 0);
    } else if (rc == 0 && strcmp(path, "ntlm") == 0) {
        rc = negio_config_set_mech(cfg, NEGIO_MECH_NTLM);
    } else if (rc == 0 && strcmp(path, "negotiate-ntlm") == 0) {
        const char *dir = getenv("NEGIO_REALM_DIR"), *ntlm = getenv("NTLM_USER_FILE");
        char cc[600];
        if (dir == NULL || ntlm == NULL) {
            negio_config_del(cfg);
            return snprintf(err, cap, "NEGIO_REALM_DIR and NTLM_USER_FILE must be set"), NULL;
        }
        snprintf(cc, sizeof(cc), "FILE:%s/no-such-cc", dir);
        rc = negio_config_set_mech(cfg, NEGIO_MECH_NEGOTIATE);
        if (rc == 0)
            rc = negio_config_set_ccache(cfg, cc);
        if (rc == 0)
            rc = negio_config_set_ntlm_file(cfg, ntlm);
    } else if (rc == 0 && strcmp(path, "tls") == 0) {
        const char *ca = getenv("NEGIO_BENCH_TLS_CA");
        if (ca == NULL) {
            negio_config_del(cfg);
            return snprintf(err, cap, "NEGIO_BENCH_TLS_CA must name the server's certificate"),
                   NULL;
        }
        rc = negio_config_set_transport(cfg, NEGIO_TRANSPORT_TLS);
        if (rc == 0)
            rc = negio_config_set_tls_ca(cfg, ca);
    } else if (rc == 0 && strcmp(path, "tls-negotiate") == 0) {
        rc = negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS);
        if (rc == 0)
            rc = negio_config_set_transport(cfg, NEGIO_TRANSPORT_TLS_NEGOTIATE);
    } else if (rc == 0) {
        negio_config_del(cfg);
        return snprintf(err, cap, "unknown path '%s'", path), NULL;
    }
    if (rc != 0) {
        negio_config_del(cfg);
        return snprintf(err, cap, "configuration: %s", negio_strerror(rc)), NULL;
    }
    return cfg;
}

/* Splits a comma-separated list of numbers into OUT (at most CAP); returns the count. */
static size_t parse_list(const char *s, double *out, size_t cap)
{
    size_t n = 0;
    while (s != NULL && *s && n < cap) {
        char *end;
        double v = strtod(s, &end);
        if (end == s)
            break;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* Waits for stdin to reach its end (the parent's signal), answering "stats" lines with ANSWER. */
static void serve_stdin(void (*answer)(void))
{
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (strncmp(line, "stats", 5) == 0 && answer != NULL)
            answer();
    }
}

/* ---- the server ------------------------------------------------------------------------------ */

static struct {
    negio_engine *e;
    atomic_long auth;       /* authenticated connections open now */
    atomic_long handshakes; /* completed since the start */
    atomic_long msgs, bytes;
    atomic_llong cpu0;
} srv;

static int srv_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)info;
    (void)user;
    negio_econn_set_user(c, (void *)1); /* no allocation: the memory per connection is negio's */
    atomic_fetch_add(&srv.auth, 1);
    atomic_fetch_add(&srv.handshakes, 1);
    return 0;
}

static void srv_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                           void *user)
{
    (void)user;
    if (len == 0)
        return;
    switch (data[0]) {
    case 'D':
        atomic_fetch_add_explicit(&srv.msgs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv.bytes, (long)len, memory_order_relaxed);
        break;
    case 'B':
        atomic_store(&srv.msgs, 0);
        atomic_store(&srv.bytes, 0);
        atomic_store(&srv.cpu0, bench_cpu_us());
        break;
    case 'E': {
        char reply[160];
        int n = snprintf(reply, sizeof(reply), "R msgs=%ld bytes=%ld cpu_us=%lld",
                         atomic_load(&srv.msgs), atomic_load(&srv.bytes),
                         (long long)(bench_cpu_us() - atomic_load(&srv.cpu0)));
        negio_engine_send(srv.e, c, reply, (size_t)n, level);
        break;
    }
    case 'P':
        negio_engine_send(srv.e, c, data, len, level);
        break;
    default:
        break;
    }
}

static void srv_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                          void *user)
{
    (void)reason;
    (void)code;
    (void)detail;
    (void)user;
    if (negio_econn_user(c) != NULL)
        atomic_fetch_sub(&srv.auth, 1);
}

static void srv_stats(void)
{
    printf("stats auth=%ld conns=%u handshakes=%ld cpu_us=%lld rss_kb=%ld\n",
           atomic_load(&srv.auth), negio_engine_connections(srv.e), atomic_load(&srv.handshakes),
           (long long)bench_cpu_us(), bench_rss_kb(0));
    fflush(stdout);
}

/* transport=tls cert=FILE key=FILE, or transport=tls-negotiate (certificate-free): the server's
 * TLS; levels stay at none, the transport's default. */
static int server_tls(negio_config *cfg, int argc, char **argv)
{
    const char *transport = bench_arg(argc, argv, "transport", "plain");
    const char *cert = bench_arg(argc, argv, "cert", NULL),
               *key = bench_arg(argc, argv, "key", NULL);
    char detail[512] = "";
    int rc = 0;
    if (strcmp(transport, "tls") == 0)
        rc = negio_config_set_transport(cfg, NEGIO_TRANSPORT_TLS);
    else if (strcmp(transport, "tls-negotiate") == 0)
        rc = negio_config_set_transport(cfg, NEGIO_TRANSPORT_TLS_NEGOTIATE);
    else if (strcmp(transport, "plain") != 0)
        return usage_error("server", "transport must be plain, tls or tls-negotiate");
    if (rc == 0 && cert != NULL)
        rc = negio_config_set_tls_cert(cfg, cert, key);
    if (rc == 0 && (rc = negio_config_tls_check(cfg, detail, sizeof(detail))) < 0) {
        for (char *p = detail; *p; p++)
            if (*p == ' ' || *p == '\n')
                *p = '_'; /* one word on the result line */
        printf("error role=server tls: %s\n", detail);
        fflush(stdout);
        return 1;
    }
    return rc == 0 ? 0 : usage_error("server", "TLS configuration failed");
}

/* key=value: loops=N (0: one per CPU, the engine's default), max=N (connections), fast=0 (the
 * Kerberos fast path off: MIT's per-message calls, issue 18), and the TLS of server_tls(). Listens
 * on a free port of 127.0.0.1 and prints "port port=N". Serves until stdin ends. */
int bench_child_server(int argc, char **argv)
{
    bench_raise_nofile();
    negio_config *cfg;
    if (negio_config_new(&cfg, NEGIO_ROLE_SERVER) != 0 ||
        negio_config_set_service(cfg, SERVICE) != 0 ||
        negio_config_set_min_level(cfg, NEGIO_LEVEL_NONE) != 0 ||
        negio_config_set_kerberos_fast_path(cfg, (int)bench_arg_num(argc, argv, "fast", 1)) != 0)
        return usage_error("server", "configuration failed");
    int trc = server_tls(cfg, argc, argv);
    if (trc != 0)
        return trc;
    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.loops = (unsigned)bench_arg_num(argc, argv, "loops", 0);
    eo.max_connections = (unsigned)bench_arg_num(argc, argv, "max", 0);
    eo.callbacks.on_authenticated = srv_on_authenticated;
    eo.callbacks.on_message = srv_on_message;
    eo.callbacks.on_closed = srv_on_closed;
    int rc = negio_engine_new(&srv.e, &eo);
    uint16_t port = 0;
    if (rc == 0)
        rc = negio_engine_listen(srv.e, "127.0.0.1:0", cfg, &port);
    if (rc != 0) {
        printf("error role=server listen: %s\n", negio_strerror(rc));
        fflush(stdout);
        return 1;
    }
    printf("port port=%u rss_kb=%ld\n", (unsigned)port, bench_rss_kb(0));
    fflush(stdout);
    serve_stdin(srv_stats);
    negio_engine_del(srv.e);
    negio_config_del(cfg);
    return 0;
}

/* ---- a client's engine, shared by the client roles ---------------------------------------------
 */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void signal_main(void)
{
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void first_error(char *dst, size_t cap, const char *detail)
{
    pthread_mutex_lock(&mu);
    if (dst[0] == '\0') {
        size_t n = 0;
        for (const char *p = detail; *p && n + 1 < cap; p++)
            dst[n++] = (*p == ' ' || *p == '\n') ? '_' : *p; /* one word on the result line */
        dst[n] = '\0';
    }
    pthread_mutex_unlock(&mu);
}

/* A one-connection role's connection ended: a failure (with DETAIL) unless it was done. */
static void role_closed(int *done, int *failed, char *error, size_t cap, const char *detail)
{
    if (!*done) {
        *failed = 1;
        first_error(error, cap, detail);
    }
    *done = 1;
    signal_main();
}

/* ---- stream: bulk one-way transfer at each level and size on one connection ------------------ */

struct point {
    negio_level level;
    size_t size;
};

static struct {
    negio_engine *e;
    negio_econn *c;
    struct point pts[256];
    size_t npts, cur;
    uint8_t *buf;
    int64_t t0, tend, cpu0;
    long msgs;
    int above;     /* the engine reported backpressure */
    int measuring; /* 'B' sent */
    int draining;  /* 'E' sent: waiting for the server's 'R' */
    int done;
    int failed;
    char error[256];
    double seconds;
} st;

static void st_send(const void *data, size_t len, negio_level level)
{
    int rc = negio_engine_send(st.e, st.c, data, len, level);
    if (rc != 0 && !st.failed) {
        st.failed = 1;
        first_error(st.error, sizeof(st.error), negio_strerror(rc));
    }
}

/* Sends data messages until the engine pushes back or the time is up. Called on the loop thread
 * from the engine's backpressure callback, outside a callback round, where the engine counts
 * each write as it is made. The engine writes a connection's output once per loop iteration, or
 * as soon as 64 KiB are waiting, straight from the connector's buffer: what the socket takes at
 * once is no longer queued, so while the server keeps up this runs until the time is up. */
static void st_pump(void)
{
    const struct point *p = &st.pts[st.cur];
    while (!st.above && !st.draining && !st.failed) {
        if (bench_now_ns() >= st.tend) {
            st.draining = 1;
            st_send("E", 1, p->level);
            return;
        }
        st_send(st.buf, p->size, p->level);
        st.msgs++;
    }
}

/* Called inside a callback round, whose writes the engine counts only when the round ends. So
 * these first messages, enough to cross the high-water mark (the engine's signal to resume us
 * outside a round), are warm-up ('W') that the server does not count, and the measurement
 * starts when the engine resumes us. */
static void st_start_point(void)
{
    const struct point *p = &st.pts[st.cur];
    st.measuring = 0;
    st.draining = 0;
    st.buf[0] = 'W';
    for (size_t sent = 0; sent <= HIGH_WATER && !st.failed; sent += p->size)
        st_send(st.buf, p->size, p->level);
}

/* Outside a callback round (each write counted as it is made): begin the measurement. */
static void st_begin(void)
{
    const struct point *p = &st.pts[st.cur];
    st.measuring = 1;
    st.buf[0] = 'D';
    st.msgs = 0;
    st.cpu0 = bench_cpu_us();
    st.t0 = bench_now_ns();
    st.tend = st.t0 + (int64_t)(st.seconds * 1e9);
    st_send("B", 1, p->level);
}

static int st_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)c;
    (void)user;
    if (info->tls_version != NULL)
        printf("authenticated mech=%s tls=%s cipher=%s\n", negio_mech_name(info->mech),
               info->tls_version, info->tls_cipher != NULL ? info->tls_cipher : "-");
    else
        printf("authenticated mech=%s\n", negio_mech_name(info->mech));
    fflush(stdout);
    st_start_point();
    return 0;
}

static void st_on_backpressure(negio_econn *c, int above, void *user)
{
    (void)c;
    (void)user;
    st.above = above;
    if (above || st.done)
        return;
    if (!st.measuring)
        st_begin();
    st_pump();
}

static void st_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                          void *user)
{
    (void)c;
    (void)level;
    (void)user;
    if (len < 1 || data[0] != 'R' || !st.draining)
        return;
    st.measuring = 0;
    char line[200];
    snprintf(line, sizeof(line), "%.*s", (int)len, (const char *)data);
    const struct point *p = &st.pts[st.cur];
    int64_t wall = bench_now_ns() - st.t0, cpu = bench_cpu_us() - st.cpu0;
    printf("point level=%s size=%zu msgs=%ld bytes=%.0f wall_ns=%lld client_cpu_us=%lld "
           "server_cpu_us=%.0f server_msgs=%.0f\n",
           negio_level_name(p->level), p->size, st.msgs, (double)st.msgs * (double)p->size,
           (long long)wall, (long long)cpu, bench_kv_num(line, "cpu_us", -1),
           bench_kv_num(line, "msgs", -1));
    fflush(stdout);
    if (++st.cur < st.npts) {
        st_start_point();
        return;
    }
    st.done = 1;
    signal_main();
}

static void st_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                         void *user)
{
    (void)c;
    (void)reason;
    (void)code;
    (void)user;
    role_closed(&st.done, &st.failed, st.error, sizeof(st.error), detail);
}

/* The client roles with one connection: PATH's client configuration, a one-loop engine with CB,
 * a connection to 127.0.0.1:PORT, and a wait until a callback sets *DONE (under mu). Returns 0,
 * or the role's usage error. */
static int connect_and_wait(const char *role, const char *path, uint16_t port,
                            const negio_engine_callbacks *cb, const int *done, negio_engine **e,
                            negio_econn **c, negio_config **cfg)
{
    char err[256];
    *cfg = bench_client_config(path, err, sizeof(err));
    if (*cfg == NULL)
        return usage_error(role, err);
    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.loops = 1; /* one connection lives on one loop anyway */
    eo.callbacks = *cb;
    int rc = negio_engine_new(e, &eo);
    if (rc == 0)
        rc = negio_engine_connect(*e, "127.0.0.1", port, *cfg, NULL, c);
    if (rc != 0)
        return usage_error(role, negio_strerror(rc));
    pthread_mutex_lock(&mu);
    while (!*done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}

/* Ends what connect_and_wait() started. */
static void disconnect(negio_engine *e, negio_econn *c, negio_config *cfg)
{
    negio_engine_close(c, 0);
    negio_econn_unref(c);
    negio_engine_del(e);
    negio_config_del(cfg);
}

/* key=value: path=kerberos|ntlm port=N levels=none,sign,seal (as numbers 0,1,2) sizes=64,...
 * seconds=S repeat=N (whole sweeps). Prints "point ..." per level and size, then "done". */
int bench_child_stream(int argc, char **argv)
{
    const char *path = bench_arg(argc, argv, "path", "kerberos");
    double levels[3], sizes[32];
    size_t nl = parse_list(bench_arg(argc, argv, "levels", "0,1,2"), levels, 3);
    size_t ns = parse_list(bench_arg(argc, argv, "sizes", "16384"), sizes, 32);
    uint16_t port = (uint16_t)bench_arg_num(argc, argv, "port", 0);
    st.seconds = bench_arg_num(argc, argv, "seconds", 1);
    int repeat = (int)bench_arg_num(argc, argv, "repeat", 1);
    size_t maxsize = 1;
    for (int k = 0; k < repeat; k++)
        for (size_t i = 0; i < nl; i++)
            for (size_t j = 0; j < ns && st.npts < sizeof(st.pts) / sizeof(st.pts[0]); j++) {
                st.pts[st.npts].level = (negio_level)levels[i];
                st.pts[st.npts].size = (size_t)sizes[j];
                if ((size_t)sizes[j] > maxsize)
                    maxsize = (size_t)sizes[j];
                st.npts++;
            }
    if (port == 0 || st.npts == 0)
        return usage_error("stream", "port, levels and sizes are required");
    st.buf = bench_payload(maxsize);
    if (st.buf == NULL)
        return usage_error("stream", "out of memory");
    static const negio_engine_callbacks cb = {
        .on_authenticated = st_on_authenticated,
        .on_message = st_on_message,
        .on_closed = st_on_closed,
        .on_backpressure = st_on_backpressure,
    };
    negio_config *cfg;
    int rc = connect_and_wait("stream", path, port, &cb, &st.done, &st.e, &st.c, &cfg);
    if (rc != 0)
        return rc;
    if (st.failed)
        printf("error role=stream %s\n", st.error);
    else
        printf("done\n");
    fflush(stdout);
    disconnect(st.e, st.c, cfg);
    bench_free_payload(st.buf);
    return st.failed ? 1 : 0;
}

/* ---- handshakes: new connection + full handshake + close, PARALLEL at a time ------------------
 */

static struct {
    negio_engine *e;
    negio_config *cfg;
    uint16_t port;
    atomic_int stop;
    atomic_long ok, failed, inflight;
    char error[256];
} hs;

static void hs_connect(void)
{
    atomic_fetch_add(&hs.inflight, 1);
    if (negio_engine_connect(hs.e, "127.0.0.1", hs.port, hs.cfg, NULL, NULL) != 0) {
        atomic_fetch_sub(&hs.inflight, 1);
        atomic_fetch_add(&hs.failed, 1);
    }
}

static int hs_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)info;
    (void)user;
    negio_econn_set_user(c, (void *)1);
    atomic_fetch_add(&hs.ok, 1);
    negio_engine_close(c, 0);
    return 0;
}

static void hs_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                         void *user)
{
    (void)reason;
    (void)code;
    (void)user;
    if (negio_econn_user(c) == NULL) {
        atomic_fetch_add(&hs.failed, 1);
        first_error(hs.error, sizeof(hs.error), detail);
    }
    if (!atomic_load(&hs.stop))
        hs_connect();
    if (atomic_fetch_sub(&hs.inflight, 1) == 1)
        signal_main();
}

/* key=value: path port parallel=K seconds=S. Prints "started", then after S seconds "handshakes
 * ok=N failed=N wall_ns=N cpu_us=N", then "done" once every connection has closed. */
int bench_child_handshakes(int argc, char **argv)
{
    bench_raise_nofile();
    const char *path = bench_arg(argc, argv, "path", "kerberos");
    hs.port = (uint16_t)bench_arg_num(argc, argv, "port", 0);
    int parallel = (int)bench_arg_num(argc, argv, "parallel", 32);
    double seconds = bench_arg_num(argc, argv, "seconds", 2);
    char err[256];
    hs.cfg = bench_client_config(path, err, sizeof(err));
    if (hs.cfg == NULL)
        return usage_error("handshakes", err);
    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.callbacks.on_authenticated = hs_on_authenticated;
    eo.callbacks.on_closed = hs_on_closed;
    if (negio_engine_new(&hs.e, &eo) != 0)
        return usage_error("handshakes", "engine");
    printf("started\n");
    fflush(stdout);
    int64_t w0 = bench_now_ns(), c0 = bench_cpu_us();
    for (int i = 0; i < parallel; i++)
        hs_connect();
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    atomic_store(&hs.stop, 1);
    long ok = atomic_load(&hs.ok), failed = atomic_load(&hs.failed);
    int64_t wall = bench_now_ns() - w0, cpu = bench_cpu_us() - c0;
    pthread_mutex_lock(&mu);
    printf("handshakes ok=%ld failed=%ld wall_ns=%lld cpu_us=%lld first_error=%s\n", ok, failed,
           (long long)wall, (long long)cpu, hs.error[0] ? hs.error : "-");
    fflush(stdout);
    pthread_mutex_unlock(&mu);
    pthread_mutex_lock(&mu);
    while (atomic_load(&hs.inflight) > 0)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    printf("done\n");
    fflush(stdout);
    negio_engine_del(hs.e);
    negio_config_del(hs.cfg);
    return 0;
}

/* ---- hold: COUNT authenticated connections kept open and idle ---------------------------------
 */

static struct {
    negio_engine *e;
    negio_config *cfg;
    uint16_t ports[64];
    size_t nports;
    long count, warm, parallel;
    atomic_long issued, held, failed, inflight;
    atomic_int paused; /* after WARM connections, until the parent says "go" */
    int64_t t0;
    char error[256];
} hd;

/* Starts connections until PARALLEL handshakes are in flight or COUNT have been issued. */
static void hd_fill(void)
{
    while (!atomic_load(&hd.paused) && atomic_load(&hd.inflight) < hd.parallel) {
        long i = atomic_fetch_add(&hd.issued, 1);
        if (i >= hd.count) {
            atomic_fetch_sub(&hd.issued, 1);
            return;
        }
        atomic_fetch_add(&hd.inflight, 1);
        if (negio_engine_connect(hd.e, "127.0.0.1", hd.ports[(size_t)i % hd.nports], hd.cfg, NULL,
                                 NULL) != 0) {
            atomic_fetch_sub(&hd.inflight, 1);
            atomic_fetch_add(&hd.failed, 1);
        }
    }
}

/* Called after each handshake ended (DONE: established or failed so far) and its in-flight count
 * was dropped. */
static void hd_progress(long done)
{
    if (done == hd.warm && hd.warm > 0)
        atomic_store(&hd.paused, 1);
    if (done >= hd.count || (atomic_load(&hd.paused) && atomic_load(&hd.inflight) == 0)) {
        signal_main();
    } else if (done % 1000 == 0) {
        pthread_mutex_lock(&mu);
        printf("progress held=%ld failed=%ld\n", atomic_load(&hd.held), atomic_load(&hd.failed));
        fflush(stdout);
        pthread_mutex_unlock(&mu);
    }
}

static int hd_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)info;
    (void)user;
    negio_econn_set_user(c, (void *)1);
    long held = atomic_fetch_add(&hd.held, 1) + 1;
    atomic_fetch_sub(&hd.inflight, 1);
    hd_progress(held + atomic_load(&hd.failed));
    hd_fill();
    return 0;
}

static void hd_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                         void *user)
{
    (void)reason;
    (void)code;
    (void)user;
    if (negio_econn_user(c) != NULL) {
        atomic_fetch_sub(&hd.held, 1); /* an established connection lost: counts as failed */
        first_error(hd.error, sizeof(hd.error), detail);
        atomic_fetch_add(&hd.failed, 1);
        return;
    }
    first_error(hd.error, sizeof(hd.error), detail);
    long failed = atomic_fetch_add(&hd.failed, 1) + 1;
    atomic_fetch_sub(&hd.inflight, 1);
    hd_progress(atomic_load(&hd.held) + failed);
    hd_fill();
}

/* Waits until TARGET connections have ended their handshakes and none is in flight. */
static void hd_wait(long target)
{
    pthread_mutex_lock(&mu);
    while (atomic_load(&hd.held) + atomic_load(&hd.failed) < target ||
           atomic_load(&hd.inflight) > 0)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* key=value: path ports=P1,P2,... count=N warm=W parallel=K. Connects round-robin over the
 * ports; prints "warm ..." after W connections and waits for a "go" line, then "held ..." after
 * all N; then waits for stdin to end and exits without closing the connections one by one. */
int bench_child_hold(int argc, char **argv)
{
    long nofile = bench_raise_nofile();
    const char *path = bench_arg(argc, argv, "path", "kerberos");
    double ports[64];
    hd.nports = parse_list(bench_arg(argc, argv, "ports", ""), ports, 64);
    for (size_t i = 0; i < hd.nports; i++)
        hd.ports[i] = (uint16_t)ports[i];
    hd.count = (long)bench_arg_num(argc, argv, "count", 1000);
    hd.warm = (long)bench_arg_num(argc, argv, "warm", 0);
    hd.parallel = (long)bench_arg_num(argc, argv, "parallel", 64);
    if (hd.nports == 0 || hd.count <= 0 || hd.warm >= hd.count)
        return usage_error("hold", "ports and count are required (warm < count)");
    char err[256];
    hd.cfg = bench_client_config(path, err, sizeof(err));
    if (hd.cfg == NULL)
        return usage_error("hold", err);
    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.max_connections = (unsigned)hd.count + 16;
    eo.handshake_timeout_ms = 120000;
    eo.callbacks.on_authenticated = hd_on_authenticated;
    eo.callbacks.on_closed = hd_on_closed;
    if (negio_engine_new(&hd.e, &eo) != 0)
        return usage_error("hold", "engine");
    hd.t0 = bench_now_ns();
    hd_fill();
    char line[64];
    if (hd.warm > 0) {
        hd_wait(hd.warm);
        pthread_mutex_lock(&mu);
        printf("warm held=%ld failed=%ld\n", atomic_load(&hd.held), atomic_load(&hd.failed));
        fflush(stdout);
        pthread_mutex_unlock(&mu);
        if (fgets(line, sizeof(line), stdin) == NULL)
            _exit(0);
        atomic_store(&hd.paused, 0);
        hd.t0 = bench_now_ns();
        hd_fill();
    }
    hd_wait(hd.count);
    pthread_mutex_lock(&mu);
    printf("held held=%ld failed=%ld wall_ns=%lld nofile=%ld rss_kb=%ld first_error=%s\n",
           atomic_load(&hd.held), atomic_load(&hd.failed), (long long)(bench_now_ns() - hd.t0),
           nofile, bench_rss_kb(0), hd.error[0] ? hd.error : "-");
    fflush(stdout);
    pthread_mutex_unlock(&mu);
    while (fgets(line, sizeof(line), stdin) != NULL)
        ;
    /* tens of thousands of graceful closes would measure nothing: let the kernel end them */
    _exit(0);
}

/* ---- latency: one outstanding sealed ping at a time --------------------------------------------
 */

static struct {
    negio_engine *e;
    negio_econn *c;
    uint8_t *buf;
    size_t size;
    negio_level level;
    int64_t *rtt;
    long n, max, skip;
    int64_t sent_at, tend;
    double seconds;
    int done, failed;
    char error[256];
} lt;

static void lt_ping(void)
{
    lt.sent_at = bench_now_ns();
    int rc = negio_engine_send(lt.e, lt.c, lt.buf, lt.size, lt.level);
    if (rc != 0) {
        lt.failed = 1;
        first_error(lt.error, sizeof(lt.error), negio_strerror(rc));
        lt.done = 1;
        signal_main();
    }
}

static int lt_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)c;
    (void)info;
    (void)user;
    lt.tend = bench_now_ns() + (int64_t)(lt.seconds * 1e9);
    lt_ping();
    return 0;
}

static void lt_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                          void *user)
{
    (void)c;
    (void)level;
    (void)user;
    int64_t now = bench_now_ns();
    if (len != lt.size || data[0] != 'P' || lt.done)
        return;
    if (lt.skip > 0)
        lt.skip--; /* warm-up round trips */
    else
        lt.rtt[lt.n++] = now - lt.sent_at;
    if (lt.n >= lt.max || now >= lt.tend) {
        lt.done = 1;
        signal_main();
        return;
    }
    lt_ping();
}

static void lt_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                         void *user)
{
    (void)c;
    (void)reason;
    (void)code;
    (void)user;
    role_closed(&lt.done, &lt.failed, lt.error, sizeof(lt.error), detail);
}

/* key=value: path port size=1024 level=2 seconds=S max=N. Prints "latency n=N p50_us=...". */
int bench_child_latency(int argc, char **argv)
{
    const char *path = bench_arg(argc, argv, "path", "kerberos");
    uint16_t port = (uint16_t)bench_arg_num(argc, argv, "port", 0);
    lt.size = (size_t)bench_arg_num(argc, argv, "size", 1024);
    lt.level = (negio_level)bench_arg_num(argc, argv, "level", NEGIO_LEVEL_SEAL);
    lt.seconds = bench_arg_num(argc, argv, "seconds", 1);
    lt.max = (long)bench_arg_num(argc, argv, "max", 100000);
    lt.skip = 20;
    lt.buf = bench_payload(lt.size);
    lt.rtt = malloc(sizeof(int64_t) * (size_t)lt.max);
    if (port == 0 || lt.size == 0 || lt.buf == NULL || lt.rtt == NULL)
        return usage_error("latency", "port and size are required");
    memset(lt.buf, 'x', lt.size);
    lt.buf[0] = 'P';
    static const negio_engine_callbacks cb = {
        .on_authenticated = lt_on_authenticated,
        .on_message = lt_on_message,
        .on_closed = lt_on_closed,
    };
    negio_config *cfg;
    int rc = connect_and_wait("latency", path, port, &cb, &lt.done, &lt.e, &lt.c, &cfg);
    if (rc != 0)
        return rc;
    if (lt.failed)
        printf("error role=latency %s\n", lt.error);
    else
        bench_print_latency(lt.rtt, lt.n);
    fflush(stdout);
    disconnect(lt.e, lt.c, cfg);
    bench_free_payload(lt.buf);
    free(lt.rtt);
    return lt.failed ? 1 : 0;
}

int bench_child_main(int argc, char **argv)
{
    /* the parent ends a child by closing its stdin, or by SIGTERM if it must */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    const char *role = argv[0];
    if (strcmp(role, "server") == 0)
        return bench_child_server(argc, argv);
    if (strcmp(role, "stream") == 0)
        return bench_child_stream(argc, argv);
    if (strcmp(role, "handshakes") == 0)
        return bench_child_handshakes(argc, argv);
    if (strcmp(role, "hold") == 0)
        return bench_child_hold(argc, argv);
    if (strcmp(role, "latency") == 0)
        return bench_child_latency(argc, argv);
    if (strcmp(role, "tcpserver") == 0)
        return bench_tcp_server(argc, argv);
    if (strcmp(role, "tcpstream") == 0)
        return bench_tcp_stream(argc, argv);
    if (strcmp(role, "tcplatency") == 0)
        return bench_tcp_latency(argc, argv);
    return usage_error(role, "unknown role");
}
