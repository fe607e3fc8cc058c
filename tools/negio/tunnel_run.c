/*
 * negio tunnel, running: one engine per tunnel (its own timeouts, limits and loop), relays made
 * with negio_engine_relay (client side: the accepted plain socket) and negio_engine_relay_connect
 * (server side: the backend), one log line per connection when it ends, the metrics endpoint,
 * SIGHUP to reload and SIGTERM or SIGINT to stop.
 *
 * The main thread runs a libuv loop of its own for the signals, the client side's plain
 * listeners and the metrics endpoint; the engines call back on their loop threads, one per CPU
 * in each engine, each connection (and its relay) on one of them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "json.h"
#include "tunnel.h"

struct runner;

struct tunnel {
    char name[TUNNEL_NAME_MAX]; /* the definition's, which a reload never changes: read by the
                                   engine's threads without the lock */
    enum tunnel_mode mode;
    struct runner *run;
    struct tunnel *next;
    pthread_mutex_t mu;
    struct tunnel_def *def; /* under mu: replaced on a reload */
    negio_config *cfg;      /* client: what new connections are made with (under mu) */
    struct acl *acl;        /* server (under mu) */
    negio_engine *engine;
    uint16_t port; /* the bound port */
    struct sockaddr_storage listen_addr;
    /* client: the plain listener and its backoff while out of descriptors, on the main loop */
    int lfd;
    uv_poll_t poll;
    int polling;
    uv_timer_t backoff;
    int backoff_ready;
    uint64_t backoff_ms; /* 0: accepting; else the pause before the next try */
    int handles;         /* of poll and backoff, not yet closed */
    int removing;        /* a reload dropped it: stopped once its handles are closed */
    struct tunnel_metrics m;
};

/* One connection, from its start (client) or its authentication (server) to on_closed. */
struct tconn {
    struct tunnel *t;
    uint64_t start_ns;
    int authenticated, counted;
    int nns; /* --profile nns: one level both ways, and no close message */
    char from[80], via[80];
    char who[300];
    negio_mech mech;
    negio_level level_in, level_out;
    char refused[640];
};

struct runner {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    struct tunnel_global g;
    const char *config_path;
    struct tunnel *tunnels;
    pthread_mutex_t out_mu;
    uv_tcp_t metrics;
    int metrics_on;
    unsigned http_open; /* metrics requests being served */
    int stopping;
    /* tunnels a reload removed, stopping on threads of their own: the process ends only once
     * they are done (their engines log through this runner and use OpenSSL and GSS) */
    pthread_mutex_t retire_mu;
    pthread_cond_t retire_cv;
    unsigned retiring;
};

/* ---- output ------------------------------------------------------------------------------------
 */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (sa != NULL && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    } else {
        out[0] = '\0';
    }
}

/* A line about the tunnel itself (listening, reloaded, errors): MSG in text, or a JSON object
 * {"event": EVENT, "tunnel": NAME, "message": MSG} plus PORT when non-zero. */
static void say(struct runner *r, const char *event, const char *name, uint16_t port,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void say(struct runner *r, const char *event, const char *name, uint16_t port,
                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->out_mu);
    if (r->g.log == LOG_JSON) {
        json_writer w;
        json_init(&w, stdout);
        json_begin_object(&w);
        json_kv_string(&w, "event", event);
        json_kv_string(&w, "tunnel", name);
        if (port != 0)
            json_kv_int(&w, "port", port);
        json_kv_string(&w, "message", msg);
        json_end_object(&w);
        fputc('\n', stdout);
    } else {
        printf("%s%s%s\n", name ? name : "", name ? ": " : "", msg);
    }
    fflush(stdout);
    pthread_mutex_unlock(&r->out_mu);
}

static const char *mech_text(negio_mech m)
{
    return m == NEGIO_MECH_KERBEROS ? "kerberos" : m == NEGIO_MECH_NTLM ? "ntlm" : NULL;
}

/* The line of a connection that ended. */
static void log_connection(struct tunnel *t, const struct tconn *tc, const char *from,
                           negio_close_reason reason, int code, const char *detail,
                           const negio_relay_stats *st)
{
    struct runner *r = t->run;
    const char *side = t->mode == TUNNEL_CLIENT ? "client" : "server";
    long long dur_ms = tc && tc->start_ns ? (long long)((now_ns() - tc->start_ns) / 1000000u) : -1;
    const char *close = tc && tc->refused[0] ? "refused" : negio_close_reason_name(reason);
    const char *why = tc && tc->refused[0] ? tc->refused : detail;
    const char *mech = tc && tc->authenticated ? mech_text(tc->mech) : NULL;
    const char *lin = tc && tc->authenticated ? negio_level_name(tc->level_in) : NULL;
    const char *lout = tc && tc->authenticated ? negio_level_name(tc->level_out) : NULL;
    pthread_mutex_lock(&r->out_mu);
    if (r->g.log == LOG_JSON) {
        json_writer w;
        json_init(&w, stdout);
        json_begin_object(&w);
        json_kv_string(&w, "event", "connection");
        json_kv_string(&w, "tunnel", t->name);
        json_kv_string(&w, "side", side);
        json_kv_string(&w, "from", from && from[0] ? from : NULL);
        json_kv_string(&w, "via", tc && tc->via[0] ? tc->via : NULL);
        json_kv_string(&w, "who", tc && tc->who[0] ? tc->who : NULL);
        json_kv_string(&w, "mech", mech);
        json_kv_string(&w, "level_in", lin);
        json_kv_string(&w, "level_out", lout);
        json_kv_int(&w, "bytes_in", st ? (long long)st->to_socket : 0);
        json_kv_int(&w, "bytes_out", st ? (long long)st->from_socket : 0);
        json_kv_int(&w, "held_max", st ? (long long)st->held_max : 0);
        if (dur_ms >= 0)
            json_kv_int(&w, "duration_ms", dur_ms);
        json_kv_string(&w, "close", close);
        json_kv_string(&w, "error", code != 0 ? negio_err_name(code) : NULL);
        json_kv_string(&w, "detail", why && why[0] ? why : NULL);
        json_end_object(&w);
        fputc('\n', stdout);
    } else {
        printf("%s: connection", t->name);
        log_text_value(stdout, "side", side);
        log_text_value(stdout, "from", from);
        log_text_value(stdout, "via", tc ? tc->via : NULL);
        log_text_value(stdout, "who", tc ? tc->who : NULL);
        log_text_value(stdout, "mech", mech);
        if (lin != NULL)
            printf(" level=%s/%s", lin, lout);
        printf(" in=%llu out=%llu", st ? (unsigned long long)st->to_socket : 0ull,
               st ? (unsigned long long)st->from_socket : 0ull);
        if (dur_ms >= 0)
            printf(" duration=%lld.%03llds", dur_ms / 1000, dur_ms % 1000);
        log_text_value(stdout, "close", close);
        log_text_value(stdout, "error", code != 0 ? negio_err_name(code) : NULL);
        log_text_value(stdout, "detail", why);
        putchar('\n');
    }
    fflush(stdout);
    pthread_mutex_unlock(&r->out_mu);
}

/* ---- the engine's callbacks --------------------------------------------------------------------
 */

static int mech_index(negio_mech m)
{
    return m == NEGIO_MECH_KERBEROS ? 1 : m == NEGIO_MECH_NTLM ? 2 : 0;
}

static int server_authenticated(struct tunnel *t, negio_econn *c, const negio_auth_info *info)
{
    struct tconn *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NEGIO_STATUS_UNAVAILABLE;
    tc->t = t;
    tc->start_ns = now_ns();
    tc->authenticated = 1;
    tc->mech = info->mech;
    tc->level_in = info->peer_default_level;
    snprintf(tc->who, sizeof(tc->who), "%s", info->peer ? info->peer : "");
    addr_text(negio_econn_peer_addr(c), tc->from, sizeof(tc->from));
    addr_text(negio_econn_via_addr(c), tc->via, sizeof(tc->via));
    negio_econn_set_user(c, tc);

    pthread_mutex_lock(&t->mu);
    struct acl *acl = t->acl;
    acl_ref(acl);
    const struct tunnel_def *d = t->def;
    char host[256];
    snprintf(host, sizeof(host), "%s", d->host);
    uint16_t port = d->port;
    int proxy_v2 = d->proxy_v2;
    uint32_t connect_ms = d->connect_timeout_ms;
    tc->nns = d->conn.profile == NEGIO_PROFILE_NNS;
    tc->level_out = tc->nns ? tc->level_in : d->conn.protect.protect;
    pthread_mutex_unlock(&t->mu);

    char why[300] = "";
    int allowed = !(info->flags & NEGIO_FLAG_ANON) &&
                  acl_allows(acl, info->peer, info->mech, why, sizeof(why));
    if (info->flags & NEGIO_FLAG_ANON)
        snprintf(why, sizeof(why), "an anonymous client");
    acl_unref(acl);
    if (!allowed) {
        snprintf(tc->refused, sizeof(tc->refused), "%s: %s", tc->who, why);
        atomic_fetch_add(&t->m.hs_refused, 1);
        /* the client gets a protected CLOSE of status 121 (--profile nns: a HandshakeError
         * with ERROR_ACCESS_DENIED, in place of the HandshakeDone that has not left yet) */
        return NEGIO_STATUS_FORBIDDEN;
    }
    atomic_fetch_add(&t->m.hs_ok[mech_index(info->mech)], 1);
    atomic_fetch_add(&t->m.open, 1);
    atomic_fetch_add(&t->m.total, 1);
    tc->counted = 1;
    uint8_t header[1024];
    negio_relay_options ro = {.size = sizeof(ro), .connect_timeout_ms = connect_ms};
    if (proxy_v2) {
        /* the destination: the address this connection was accepted on (unknown: zeros) */
        struct sockaddr_storage local;
        (void)negio_econn_local_addr(c, &local);
        size_t len = proxy_v2_header(
            header, sizeof(header), negio_econn_peer_addr(c), (const struct sockaddr *)&local,
            info->peer, mech_text(info->mech), negio_level_name(tc->level_in), info->local_name);
        if (len == 0) { /* names too long for a header: should not happen (bounded names) */
            snprintf(tc->refused, sizeof(tc->refused), "%s: no PROXY header fits its name",
                     tc->who);
            return NEGIO_STATUS_UNAVAILABLE;
        }
        ro.preamble = header;
        ro.preamble_len = len;
    }
    int rc = negio_engine_relay_connect(c, host, port, &ro);
    return rc == NEGIO_OK ? 0 : NEGIO_STATUS_UNAVAILABLE;
}

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    struct tunnel *t = user;
    if (t->mode == TUNNEL_SERVER)
        return server_authenticated(t, c, info);
    struct tconn *tc = negio_econn_user(c);
    tc->authenticated = 1;
    tc->mech = info->mech;
    tc->level_in = info->peer_default_level;
    if (tc->nns)
        tc->level_out = tc->level_in;
    snprintf(tc->who, sizeof(tc->who), "%s", info->peer ? info->peer : "");
    atomic_fetch_add(&t->m.hs_ok[mech_index(info->mech)], 1);
    metrics_observe_handshake(&t->m, (now_ns() - tc->start_ns) / 1000u);
    return 0;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    (void)c, (void)data, (void)len, (void)level, (void)user; /* relayed: never called */
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    struct tunnel *t = user;
    struct tconn *tc = negio_econn_user(c);
    negio_relay_stats st = {.size = sizeof(st)};
    int have = negio_econn_relay_stats(c, &st) == 0;
    if (have) {
        atomic_fetch_add(&t->m.bytes_in, st.to_socket);
        atomic_fetch_add(&t->m.bytes_out, st.from_socket);
    }
    if (tc == NULL || !tc->authenticated)
        atomic_fetch_add(&t->m.hs_failed, 1);
    if (tc != NULL && tc->counted)
        atomic_fetch_sub(&t->m.open, 1);
    /* [MS-NNS] has no close message: a server that ends the stream without a byte (its backend
     * closed, or could not be reached) looks like a clean end; say what it may have been */
    char why[256];
    if (tc != NULL && tc->nns && t->mode == TUNNEL_CLIENT && have && st.peer_closed &&
        st.to_socket == 0 && reason == NEGIO_CLOSE_CLEAN) {
        snprintf(why, sizeof(why),
                 "the server ended the stream without sending a byte: its backend closed, or "
                 "could not be reached, or the server failed ([MS-NNS] has no close message to "
                 "say which; the server's log does)");
        detail = why;
    }
    char from[80];
    struct tconn early; /* a connection that ended before authentication: where it came from */
    if (tc == NULL) {
        memset(&early, 0, sizeof(early));
        addr_text(negio_econn_peer_addr(c), early.from, sizeof(early.from));
        addr_text(negio_econn_via_addr(c), early.via, sizeof(early.via));
    }
    snprintf(from, sizeof(from), "%s", tc != NULL ? tc->from : early.from);
    log_connection(t, tc != NULL ? tc : &early, from, reason, code, detail, have ? &st : NULL);
    negio_econn_set_user(c, NULL);
    free(tc);
}

/* ---- the client side's plain listener (main loop) ----------------------------------------------
 */

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void on_plain_ready(uv_poll_t *p, int status, int events);

static void on_backoff(uv_timer_t *timer)
{
    struct tunnel *t = timer->data;
    if (!t->polling || t->removing)
        return;
    uv_poll_start(&t->poll, UV_READABLE, on_plain_ready);
    /* try at once: an empty backlog (EAGAIN) ends the episode, which a poll would never report */
    on_plain_ready(&t->poll, 0, UV_READABLE);
}

/* Out of descriptors (or kernel memory): the connection waits in the backlog, and the listener
 * stops polling for a while instead of being told again at once that it is readable (which
 * would spin the main loop); the pause doubles up to 2 s while it lasts. The episode is logged
 * once at its start and once at its end, when the backlog is empty again. */
static void accept_starved(struct tunnel *t, int err)
{
    if (t->backoff_ms == 0) {
        t->backoff_ms = 50;
        say(t->run, "error", t->def->name, 0,
            "cannot accept connections: %s; pausing the listener until descriptors free up",
            strerror(err));
    } else if (t->backoff_ms < 2000) {
        t->backoff_ms *= 2;
    }
    uv_poll_stop(&t->poll);
    uv_timer_start(&t->backoff, on_backoff, t->backoff_ms, 0);
}

static void on_plain_ready(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct tunnel *t = p->data;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                accept_starved(t, errno);
            } else if (t->backoff_ms != 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* the backlog is empty: the episode is over */
                t->backoff_ms = 0;
                say(t->run, "listening", t->def->name, 0, "accepting connections again");
            }
            return; /* the next poll tries again */
        }
        struct tconn *tc = calloc(1, sizeof(*tc));
        char from[80];
        addr_text((struct sockaddr *)&ss, from, sizeof(from));
        if (tc == NULL || negio_engine_connections(t->engine) >= t->def->max_connections) {
            free(tc);
            reset_close(fd);
            say(t->run, "refused", t->def->name, 0, "refused a connection from %s: %s", from,
                tc == NULL ? "out of memory" : "at --max-connections");
            continue;
        }
        tc->t = t;
        tc->start_ns = now_ns();
        snprintf(tc->from, sizeof(tc->from), "%s", from);
        /* TC is the connection's from the moment negio_engine_connect posts it: its loop may end
         * it and run on_closed, which frees TC, before the call returns here. Everything on_closed
         * reads is set before. */
        tc->counted = 1;
        atomic_fetch_add(&t->m.open, 1);
        negio_econn *c = NULL;
        pthread_mutex_lock(&t->mu);
        tc->level_out = t->def->conn.protect.protect;
        tc->nns = t->def->conn.profile == NEGIO_PROFILE_NNS;
        negio_connect_options co = {.size = sizeof(co),
                                    .connect_timeout_ms = t->def->connect_timeout_ms};
        int rc =
            negio_engine_connect_with(t->engine, t->def->host, t->def->port, t->cfg, &co, tc, &c);
        pthread_mutex_unlock(&t->mu);
        if (rc < 0) {
            atomic_fetch_sub(&t->m.open, 1);
            free(tc);
            reset_close(fd);
            say(t->run, "error", t->def->name, 0, "cannot open a connection for %s: %s", from,
                negio_strerror(rc));
            continue;
        }
        atomic_fetch_add(&t->m.total, 1);
        /* posted after the connect: attached before anything can be delivered */
        rc = negio_engine_relay(c, fd, NULL);
        if (rc < 0) {
            reset_close(fd);
            negio_engine_close(c, 0);
        }
        negio_econn_unref(c);
    }
}

static int resolve_listen(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    char p[8];
    snprintf(p, sizeof(p), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, p, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int plain_listen(struct tunnel *t)
{
    const struct tunnel_def *d = t->def;
    if (resolve_listen(d->listen_host, d->listen_port, &t->listen_addr) < 0) {
        fprintf(stderr, "negio tunnel: [%s] --listen %s: cannot resolve it\n", d->name, d->listen);
        return -1;
    }
    int fd = socket(t->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = t->listen_addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&t->listen_addr, len) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&t->listen_addr, &len) < 0) {
        fprintf(stderr, "negio tunnel: [%s] cannot listen on %s: %s\n", d->name, d->listen,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    t->lfd = fd;
    t->port = ntohs(t->listen_addr.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&t->listen_addr)->sin6_port
                        : ((struct sockaddr_in *)&t->listen_addr)->sin_port);
    if (uv_poll_init_socket(&t->run->loop, &t->poll, fd) != 0) {
        fprintf(stderr, "negio tunnel: [%s] cannot watch %s\n", d->name, d->listen);
        close(fd);
        t->lfd = -1;
        return -1;
    }
    t->poll.data = t;
    t->handles++;
    t->polling = 1;
    uv_timer_init(&t->run->loop, &t->backoff);
    t->backoff.data = t;
    t->backoff_ready = 1;
    t->handles++;
    uv_poll_start(&t->poll, UV_READABLE, on_plain_ready);
    return 0;
}

/* ---- a tunnel's life ---------------------------------------------------------------------------
 */

static const char *access_text(const struct acl *a, char *buf, size_t cap)
{
    if (!a->restricted)
        return "any authenticated client";
    snprintf(buf, cap, "%zu entries from %s", a->n, a->source);
    return buf;
}

static struct tunnel *tunnel_start(struct runner *r, struct tunnel_def *d)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->run = r;
    t->def = d;
    snprintf(t->name, sizeof(t->name), "%s", d->name);
    t->mode = d->mode;
    t->lfd = -1;
    pthread_mutex_init(&t->mu, NULL);
    negio_config *cfg = NULL;
    if (tunnel_def_config(d, &cfg) < 0)
        goto fail;
    if (d->mode == TUNNEL_SERVER && (t->acl = acl_load(d)) == NULL)
        goto fail;
    negio_engine_options eo = {
        .size = sizeof(eo),
        /* one loop per CPU (the engine's default): a single loop thread holds one CPU's share
         * at most, so on a busy machine every connection of the tunnel waits for that one thread
         * (docs/PERFORMANCE.md, "The tunnel against stunnel"); the callbacks below touch only
         * atomics and state under a lock, so any loop may run them */
        .loops = 0,
        .workers = 2,
        .handshake_timeout_ms = d->handshake_timeout_ms,
        .idle_timeout_ms = d->idle_timeout_ms,
        .max_connections = d->max_connections,
        /* SIGTERM: each connection's peer gets this long to answer the protected close
         * (docs/TUNNEL.md, "Reload and shutdown") */
        .shutdown_timeout_ms = 5000,
        .callbacks = {.on_authenticated = on_authenticated,
                      .on_message = on_message,
                      .on_closed = on_closed},
        .user = t,
    };
    int rc = negio_engine_new(&t->engine, &eo);
    if (rc < 0) {
        fprintf(stderr, "negio tunnel: [%s] cannot start the engine: %s\n", d->name,
                negio_strerror(rc));
        goto fail;
    }
    char acc[300];
    if (d->mode == TUNNEL_SERVER) {
        negio_listen_options lo = {.size = sizeof(lo), .accept_proxy_from = d->accept_proxy_from};
        rc = negio_engine_listen_with(t->engine, d->listen, cfg, &lo, &t->port);
        if (rc < 0) {
            fprintf(stderr, "negio tunnel: [%s] cannot listen on %s: %s\n", d->name, d->listen,
                    negio_strerror(rc));
            goto fail;
        }
        negio_config_del(cfg);
        cfg = NULL;
        say(r, "listening", d->name, t->port,
            "server listening on %s%s%s:%u, backend %s:%u%s, %s%s, protect %s, min %s, "
            "access: %s",
            strchr(d->listen_host, ':') ? "[" : "", d->listen_host,
            strchr(d->listen_host, ':') ? "]" : "", t->port, d->host, d->port,
            d->proxy_v2 ? " with PROXY v2" : "",
            d->conn.tls.transport == NEGIO_TRANSPORT_TLS_NEGOTIATE
                ? "tls-negotiate"
                : negio_mech_name(d->conn.auth.mech),
            d->conn.profile == NEGIO_PROFILE_NNS ? " over [MS-NNS]" : "",
            negio_level_name(d->conn.protect.protect), negio_level_name(d->conn.protect.min),
            access_text(t->acl, acc, sizeof(acc)));
    } else {
        t->cfg = cfg;
        cfg = NULL;
        if (plain_listen(t) < 0)
            goto fail;
        say(r, "listening", d->name, t->port,
            "client listening on %s%s%s:%u, to %s:%u as %s, %s%s, protect %s",
            strchr(d->listen_host, ':') ? "[" : "", d->listen_host,
            strchr(d->listen_host, ':') ? "]" : "", t->port, d->host, d->port, d->conn.auth.spn,
            d->conn.tls.transport == NEGIO_TRANSPORT_TLS_NEGOTIATE
                ? "tls-negotiate"
                : negio_mech_name(d->conn.auth.mech),
            d->conn.profile == NEGIO_PROFILE_NNS ? " over [MS-NNS]" : "",
            negio_level_name(d->conn.protect.protect));
    }
    return t;
fail:
    negio_config_del(cfg);
    negio_engine_del(t->engine);
    negio_config_del(t->cfg);
    acl_unref(t->acl);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
}

/* Closes every tunnel of T gracefully within the engine's deadline and frees T. Its handles on
 * the main loop must be closed (tunnel_close_handles, then their callbacks). */
static void tunnel_stop(struct tunnel *t)
{
    negio_engine_shutdown(t->engine);
    negio_engine_del(t->engine);
    negio_config_del(t->cfg);
    acl_unref(t->acl);
    tunnel_def_free(t->def);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void *stop_thread(void *arg)
{
    tunnel_stop(arg);
    return NULL;
}

static void *retire_thread(void *arg)
{
    struct tunnel *t = arg;
    struct runner *r = t->run;
    tunnel_stop(t);
    pthread_mutex_lock(&r->retire_mu);
    if (--r->retiring == 0)
        pthread_cond_broadcast(&r->retire_cv);
    pthread_mutex_unlock(&r->retire_mu);
    return NULL;
}

/* Stopping takes the engine's shutdown deadline: a tunnel a reload removed stops on a thread of
 * its own, so that the main loop (signals, the other listeners, metrics) goes on meanwhile;
 * counted in R->retiring, which the end of the process waits for (retire_wait). */
static void tunnel_stop_detached(struct tunnel *t)
{
    struct runner *r = t->run;
    pthread_t th;
    pthread_mutex_lock(&r->retire_mu);
    r->retiring++;
    pthread_mutex_unlock(&r->retire_mu);
    if (pthread_create(&th, NULL, retire_thread, t) == 0) {
        pthread_detach(th);
        return;
    }
    pthread_mutex_lock(&r->retire_mu);
    r->retiring--;
    pthread_mutex_unlock(&r->retire_mu);
    tunnel_stop(t);
}

/* Waits until every tunnel a reload removed has stopped. */
static void retire_wait(struct runner *r)
{
    pthread_mutex_lock(&r->retire_mu);
    while (r->retiring > 0)
        pthread_cond_wait(&r->retire_cv, &r->retire_mu);
    pthread_mutex_unlock(&r->retire_mu);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tunnel *t = h->data;
    if (--t->handles > 0)
        return;
    if (t->lfd >= 0) { /* no longer watched */
        close(t->lfd);
        t->lfd = -1;
    }
    if (t->removing)
        tunnel_stop_detached(t);
}

/* Stops accepting (client side: the plain listener and its backoff timer). Their memory is T's:
 * T may be freed only once on_handle_closed has run for each (T->handles == 0). */
static void tunnel_close_handles(struct tunnel *t)
{
    if (t->polling) {
        uv_close((uv_handle_t *)&t->poll, on_handle_closed);
        t->polling = 0;
    }
    if (t->backoff_ready) {
        uv_close((uv_handle_t *)&t->backoff, on_handle_closed);
        t->backoff_ready = 0;
    }
}

/* ---- reload ------------------------------------------------------------------------------------
 */

static int same_text(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* What in D, against the running OLD, only a restart can apply (a new listener or engine), or
 * NULL. The connect timeout, the backend, PROXY v2 to it, the credentials, the levels and the
 * access list are read per connection, and a reload applies them. */
static const char *needs_restart(const struct tunnel_def *old, const struct tunnel_def *d)
{
    if (d->mode != old->mode)
        return "the side (mode)";
    if (strcmp(d->listen, old->listen) != 0)
        return "--listen";
    if (d->handshake_timeout_ms != old->handshake_timeout_ms)
        return "--handshake-timeout";
    if (d->idle_timeout_ms != old->idle_timeout_ms)
        return "--idle-timeout";
    if (d->max_connections != old->max_connections)
        return "--max-connections";
    if (!same_text(d->accept_proxy_from, old->accept_proxy_from))
        return "--accept-proxy-from";
    return NULL;
}

/* A reload, staged: for each running tunnel the file keeps, its new definition, configuration
 * and access list, made before anything is applied; the tunnels the file adds, started (not yet
 * listed); the tunnels it drops. */
struct stage {
    size_t n;
    struct {
        struct tunnel *t;
        struct tunnel_def *d;
        negio_config *cfg;
        struct acl *acl;
    } up[TUNNEL_MAX];
    size_t nnew;
    struct tunnel *fresh[TUNNEL_MAX];
};

static void stage_free(struct stage *st, struct tunnel_def **defs, size_t n)
{
    for (size_t i = 0; i < st->n; i++) {
        negio_config_del(st->up[i].cfg);
        acl_unref(st->up[i].acl);
    }
    for (size_t i = 0; i < st->nnew; i++) {
        tunnel_close_handles(st->fresh[i]);
        st->fresh[i]->removing = st->fresh[i]->handles > 0;
        if (!st->fresh[i]->removing)
            tunnel_stop(st->fresh[i]); /* a server side: nothing on the main loop */
    }
    for (size_t i = 0; i < n; i++)
        tunnel_def_free(defs[i]);
}

/* Makes what DEFS asks of the running tunnels, without applying any of it. 0, or -1 when any
 * part fails (each failure said), and then nothing changes; OK 0: a failure before this one
 * (said), and then the running tunnels' parts are still checked. Takes DEFS either way. */
static int stage_reload(struct runner *r, struct tunnel_def **defs, size_t n, int ok,
                        struct stage *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = r->tunnels;
        while (t != NULL && strcmp(t->name, defs[i]->name) != 0)
            t = t->next;
        if (t == NULL)
            continue; /* new: started below, once the rest is known to be good */
        const char *what = needs_restart(t->def, defs[i]);
        if (what != NULL) {
            say(r, "reload", defs[i]->name, 0, "%s changed, which only a restart applies", what);
            ok = 0;
            continue;
        }
        size_t k = st->n++;
        st->up[k].t = t;
        if (tunnel_def_config(defs[i], &st->up[k].cfg) < 0 ||
            (defs[i]->mode == TUNNEL_SERVER && (st->up[k].acl = acl_load(defs[i])) == NULL)) {
            say(r, "reload", defs[i]->name, 0, "its new configuration failed (see above)");
            ok = 0;
        }
    }
    /* the new sections, once the rest is known to be good: every one tried, each failure said */
    int start = ok;
    for (size_t i = 0; start && i < n; i++) {
        int running = 0;
        for (struct tunnel *t = r->tunnels; t != NULL && !running; t = t->next)
            running = strcmp(t->name, defs[i]->name) == 0;
        if (running)
            continue;
        struct tunnel *t = tunnel_start(r, defs[i]);
        if (t == NULL) {
            say(r, "reload", defs[i]->name, 0, "could not start (see above)");
            ok = 0;
            continue;
        }
        defs[i] = NULL; /* the tunnel's now */
        st->fresh[st->nnew++] = t;
    }
    if (!ok) {
        stage_free(st, defs, n);
        return -1;
    }
    /* the definitions of the running tunnels go with their staged parts */
    for (size_t k = 0; k < st->n; k++)
        for (size_t i = 0; i < n; i++)
            if (defs[i] != NULL && strcmp(defs[i]->name, st->up[k].t->name) == 0) {
                st->up[k].d = defs[i];
                defs[i] = NULL;
                break;
            }
    return 0;
}

/* Applies one staged update. The access list and definition first, then the listener's
 * configuration: a connection whose handshake spans the reload is judged by the new access
 * list (a removal takes effect at once), with the credentials and levels it was accepted with. */
static void apply_update(struct runner *r, struct tunnel *t, struct tunnel_def *d,
                         negio_config *cfg, struct acl *acl)
{
    pthread_mutex_lock(&t->mu);
    struct tunnel_def *gone = t->def;
    t->def = d;
    struct acl *old_acl = t->acl;
    negio_config *old_cfg = t->cfg;
    if (d->mode == TUNNEL_SERVER) {
        t->acl = acl;
        old_cfg = NULL;
    } else {
        t->cfg = cfg;
        cfg = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    int listener_ok = 1;
    if (d->mode == TUNNEL_SERVER)
        listener_ok = negio_engine_listen_reconfigure(t->engine, t->port, cfg) == NEGIO_OK;
    negio_config_del(cfg); /* the listener holds its copy */
    acl_unref(old_acl);
    negio_config_del(old_cfg);
    /* the engine's threads read a definition under mu only (and the tunnel's own name and side
     * without it), so the old one can go */
    tunnel_def_free(gone);
    char acc[300];
    if (!listener_ok)
        say(r, "reload", d->name, 0,
            "out of memory: new connections keep the previous credentials and levels%s%s",
            d->mode == TUNNEL_SERVER ? "; access: " : "",
            d->mode == TUNNEL_SERVER ? access_text(t->acl, acc, sizeof(acc)) : "");
    else
        say(r, "reload", d->name, 0, "reloaded: new connections use the current credentials%s%s",
            d->mode == TUNNEL_SERVER ? "; access: " : "",
            d->mode == TUNNEL_SERVER ? access_text(t->acl, acc, sizeof(acc)) : "");
}

/* A copy of D for a reload from the command line (the same options, the files read again). */
static struct tunnel_def *def_copy(const struct tunnel_def *d)
{
    struct tunnel_def *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *d;
    c->nowned = 0; /* the strings stay the original's, which lives as long as argv */
    return c;
}

/* SIGHUP: the file (or the command line's options) read again, and applied whole or not at all:
 * every running tunnel it keeps gets its new configuration and access list, the tunnels it adds
 * start, the ones it drops stop gracefully; if any part fails, nothing changes. */
static void reload(struct runner *r)
{
    struct tunnel_def *defs[TUNNEL_MAX];
    size_t n = 0;
    int ok = 1;
    if (r->config_path != NULL) {
        struct tunnel_global g;
        if (tunnel_config_read(r->config_path, defs, &n, &g) < 0) {
            say(r, "reload", NULL, 0,
                "SIGHUP: %s has errors (above); the running configuration is kept", r->config_path);
            return;
        }
        /* the log format and the metrics endpoint are the process's, made once at start */
        const char *what = g.log != r->g.log                      ? "[global] log"
                           : strcmp(g.metrics, r->g.metrics) != 0 ? "[global] metrics"
                                                                  : NULL;
        if (what != NULL) {
            say(r, "reload", NULL, 0, "%s changed, which only a restart applies", what);
            ok = 0;
        }
    } else {
        for (struct tunnel *t = r->tunnels; t != NULL && n < TUNNEL_MAX; t = t->next) {
            if ((defs[n] = def_copy(t->def)) == NULL) {
                for (size_t i = 0; i < n; i++)
                    tunnel_def_free(defs[i]);
                say(r, "reload", NULL, 0,
                    "SIGHUP: out of memory; the running configuration is kept");
                return;
            }
            n++;
        }
    }
    struct stage *st = malloc(sizeof(*st));
    if (st == NULL) {
        for (size_t i = 0; i < n; i++)
            tunnel_def_free(defs[i]);
        say(r, "reload", NULL, 0, "SIGHUP: out of memory; the running configuration is kept");
        return;
    }
    if (stage_reload(r, defs, n, ok, st) < 0) {
        free(st);
        say(r, "reload", NULL, 0,
            "SIGHUP: reload refused (above); the running configuration is kept");
        return;
    }
    for (size_t k = 0; k < st->n; k++)
        apply_update(r, st->up[k].t, st->up[k].d, st->up[k].cfg, st->up[k].acl);
    /* the tunnels the file dropped: every definition left in DEFS is a dropped tunnel's name */
    struct tunnel **pp = &r->tunnels;
    while (*pp != NULL) {
        struct tunnel *t = *pp;
        int kept = 0;
        for (size_t k = 0; k < st->n && !kept; k++)
            kept = st->up[k].t == t;
        if (kept) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        say(r, "reload", t->name, 0, "removed from the configuration: stopping");
        t->removing = 1;
        tunnel_close_handles(t);
        if (t->handles == 0)
            tunnel_stop_detached(t);
    }
    for (size_t i = 0; i < st->nnew; i++) {
        *pp = st->fresh[i];
        pp = &st->fresh[i]->next;
    }
    for (size_t i = 0; i < n; i++)
        tunnel_def_free(defs[i]); /* NULL for every one taken */
    free(st);
}

/* ---- the metrics endpoint ----------------------------------------------------------------------
 */

/* The endpoint shares the process's descriptors with the tunnels: at most HTTP_MAX requests at
 * a time (more are closed at once), each with HTTP_DEADLINE_MS to send its request and take the
 * answer, so that slow or idle clients cannot hold descriptors the tunnels need. */
#define HTTP_MAX 16u
#define HTTP_DEADLINE_MS 5000u

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t deadline;
    int open;    /* handles not yet closed */
    int counted; /* in r->http_open */
    struct runner *r;
    char req[4096];
    size_t len;
    uv_write_t wreq;
    struct strbuf out;
};

static void http_closed(uv_handle_t *h)
{
    struct http_conn *hc = h->data;
    if (--hc->open > 0)
        return;
    free(hc->out.p);
    free(hc);
}

/* Ends the request: it stops counting against HTTP_MAX at once (its descriptor is closed here),
 * its memory goes when both handles' callbacks have run. */
static void http_close(struct http_conn *hc)
{
    if (hc->counted) {
        hc->counted = 0;
        hc->r->http_open--;
    }
    if (!uv_is_closing((uv_handle_t *)&hc->tcp))
        uv_close((uv_handle_t *)&hc->tcp, http_closed);
    if (!uv_is_closing((uv_handle_t *)&hc->deadline))
        uv_close((uv_handle_t *)&hc->deadline, http_closed);
}

static void http_timeout(uv_timer_t *t)
{
    http_close(t->data);
}

static void http_written(uv_write_t *req, int status)
{
    (void)status;
    http_close(req->data);
}

static void http_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct http_conn *hc = h->data;
    *buf = uv_buf_init(hc->req + hc->len, (unsigned)(sizeof(hc->req) - 1 - hc->len));
}

static void http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct http_conn *hc = s->data;
    if (n < 0 || (n == 0 && hc->len == sizeof(hc->req) - 1)) {
        http_close(hc);
        return;
    }
    hc->len += (size_t)n;
    hc->req[hc->len] = '\0';
    if (strstr(hc->req, "\r\n\r\n") == NULL && strstr(hc->req, "\n\n") == NULL) {
        if (hc->len == sizeof(hc->req) - 1)
            http_close(hc);
        return;
    }
    uv_read_stop(s);
    struct strbuf body = {0};
    const char *status = "200 OK";
    if (strncmp(hc->req, "GET /metrics ", 13) == 0 || strncmp(hc->req, "GET / ", 6) == 0) {
        struct metrics_view v[TUNNEL_MAX];
        size_t k = 0;
        for (struct tunnel *t = hc->r->tunnels; t != NULL && k < TUNNEL_MAX; t = t->next)
            v[k++] = (struct metrics_view){t->def->name, t->def->mode, &t->m};
        metrics_render(&body, k, v);
    } else {
        status = "404 Not Found";
        strbuf_printf(&body, "only /metrics is here\n");
    }
    strbuf_printf(&hc->out,
                  "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  status, body.len);
    strbuf_printf(&hc->out, "%.*s", (int)body.len, body.p ? body.p : "");
    free(body.p);
    uv_buf_t b = uv_buf_init(hc->out.p, (unsigned)hc->out.len);
    hc->wreq.data = hc;
    if (hc->out.p == NULL || uv_write(&hc->wreq, s, &b, 1, http_written) != 0)
        http_close(hc);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_metrics_connection(uv_stream_t *server, int status)
{
    struct runner *r = server->data;
    if (status < 0)
        return;
    struct http_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) { /* the connection waits in the backlog: take it to close it */
        uv_tcp_t *drop = malloc(sizeof(*drop));
        if (drop != NULL && uv_tcp_init(&r->loop, drop) == 0) {
            (void)uv_accept(server, (uv_stream_t *)drop);
            uv_close((uv_handle_t *)drop, free_handle);
        } else {
            free(drop);
        }
        return;
    }
    hc->r = r;
    r->http_open++;
    hc->counted = 1;
    uv_tcp_init(&r->loop, &hc->tcp);
    uv_timer_init(&r->loop, &hc->deadline);
    hc->open = 2;
    hc->tcp.data = hc->deadline.data = hc;
    if (uv_accept(server, (uv_stream_t *)&hc->tcp) != 0 || r->http_open > HTTP_MAX ||
        uv_timer_start(&hc->deadline, http_timeout, HTTP_DEADLINE_MS, 0) != 0 ||
        uv_read_start((uv_stream_t *)&hc->tcp, http_alloc, http_read) != 0)
        http_close(hc);
}

/* Whether SS is a loopback address (127.0.0.0/8, ::1, or IPv4 loopback mapped). */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int metrics_start(struct runner *r)
{
    char host[256];
    uint16_t port;
    struct sockaddr_storage ss;
    if (cli_split_hostport(r->g.metrics, host, sizeof(host), &port) < 0 ||
        resolve_listen(host, port, &ss) < 0) {
        fprintf(stderr, "negio tunnel: --metrics %s: not an address\n", r->g.metrics);
        return -1;
    }
    uv_tcp_init(&r->loop, &r->metrics);
    r->metrics.data = r;
    r->metrics_on = 1;
    int rc = uv_tcp_bind(&r->metrics, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&r->metrics, 64, on_metrics_connection);
    if (rc != 0) {
        fprintf(stderr, "negio tunnel: --metrics %s: %s\n", r->g.metrics, uv_strerror(rc));
        return -1;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&r->metrics, (struct sockaddr *)&ss, &len);
    char bound[INET6_ADDRSTRLEN + 8];
    addr_text((struct sockaddr *)&ss, bound, sizeof(bound)); /* port 0 chosen: the real one */
    say(r, "metrics", NULL,
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port),
        "metrics on http://%s/metrics", bound);
    if (!is_loopback(&ss))
        say(r, "warning", NULL, 0,
            "--metrics %s is reachable from other hosts: the metrics name the tunnels and count "
            "their clients; bind it to a loopback address or firewall it",
            r->g.metrics);
    return 0;
}

/* ---- signals and the run -----------------------------------------------------------------------
 */

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct runner *r = s->data;
    say(r, "stopping", NULL, 0, "%s: closing every tunnel gracefully",
        signum == SIGINT ? "SIGINT" : "SIGTERM");
    r->stopping = 1;
    uv_stop(&r->loop);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct runner *r = s->data;
    reload(r);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int tunnel_run(struct tunnel_def **defs, size_t n, const struct tunnel_global *g,
               const char *config_path)
{
    struct runner *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CLI_EXIT_FAIL;
    r->g = *g;
    r->config_path = config_path;
    /* every tunnel holds two descriptors: as many as the hard limit allows (as servers do) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    pthread_mutex_init(&r->out_mu, NULL);
    pthread_mutex_init(&r->retire_mu, NULL);
    pthread_cond_init(&r->retire_cv, NULL);
    uv_loop_init(&r->loop);
    int status = CLI_EXIT_OK;
    struct tunnel **pp = &r->tunnels;
    for (size_t i = 0; i < n; i++) {
        struct tunnel *t = status == CLI_EXIT_OK ? tunnel_start(r, defs[i]) : NULL;
        if (t == NULL) {
            tunnel_def_free(defs[i]);
            status = CLI_EXIT_FAIL;
            continue;
        }
        *pp = t;
        pp = &t->next;
    }
    if (status == CLI_EXIT_OK && r->g.metrics[0] != '\0' && metrics_start(r) < 0)
        status = CLI_EXIT_FAIL;
    if (status == CLI_EXIT_OK) {
        uv_signal_init(&r->loop, &r->sigterm);
        uv_signal_init(&r->loop, &r->sigint);
        uv_signal_init(&r->loop, &r->sighup);
        r->sigterm.data = r->sigint.data = r->sighup.data = r;
        uv_signal_start(&r->sigterm, on_stop_signal, SIGTERM);
        uv_signal_start(&r->sigint, on_stop_signal, SIGINT);
        uv_signal_start(&r->sighup, on_hup, SIGHUP);
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    /* stop accepting everywhere first (every handle of the main loop closed, and their callbacks
     * run, before a tunnel's memory goes), then drain every tunnel at once: each engine's
     * shutdown on a thread of its own (the main thread only joins them), so that every server
     * side stops accepting now and all share one deadline rather than one after the other */
    for (struct tunnel *t = r->tunnels; t != NULL; t = t->next)
        tunnel_close_handles(t);
    uv_walk(&r->loop, close_walk, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    pthread_t stopping[TUNNEL_MAX];
    size_t nstopping = 0;
    struct tunnel *inline_stop = NULL; /* no thread for them: stopped here, after the others */
    while (r->tunnels != NULL) {
        struct tunnel *t = r->tunnels;
        r->tunnels = t->next;
        if (nstopping < TUNNEL_MAX &&
            pthread_create(&stopping[nstopping], NULL, stop_thread, t) == 0) {
            nstopping++;
        } else {
            t->next = inline_stop;
            inline_stop = t;
        }
    }
    while (inline_stop != NULL) {
        struct tunnel *t = inline_stop;
        inline_stop = t->next;
        tunnel_stop(t);
    }
    for (size_t i = 0; i < nstopping; i++)
        pthread_join(stopping[i], NULL);
    retire_wait(r);
    uv_loop_close(&r->loop);
    pthread_cond_destroy(&r->retire_cv);
    pthread_mutex_destroy(&r->retire_mu);
    pthread_mutex_destroy(&r->out_mu);
    free(r);
    return status;
}
