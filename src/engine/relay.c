/* A relay: a connection joined to a plain TCP socket on its loop (engine.h, "Relays"), what
 * negio tunnel is made of. Messages from the peer are written to the socket; what the socket
 * reads goes to the peer as messages. Each direction has its own flow control, so that one
 * direction waiting never stops the other:
 *
 *   peer --C--> messages --> socket     paused (C not read) while the socket holds more than the
 *                                        relay's high-water mark, resumed under half of it
 *   socket --> messages --C--> peer     paused (the socket not read) while C holds more than the
 *                                        engine's high-water mark (negio_econn_queued), resumed
 *                                        under half of it
 *
 * The socket is read into one buffer per loop (a read is taken whole by the connector before the
 * next read on that loop), so an idle relay holds no buffer at all.
 *
 * Ends: the socket's EOF is C's CLOSE (negio__do_graceful_close), the peer's CLOSE under
 * half-close is the socket's shutdown; the connection ends when both directions have, and then
 * the socket is shut down after its last byte (clean) or reset (anything else). The relay's
 * handles count among C's, so on_closed comes after the socket is closed. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "engine/engine_internal.h"

#define RELAY_CHUNK (64u * 1024)
#define RELAY_CONNECT_MS 10000u

struct negio__relay {
    negio_econn *c;
    negio_relay_options o;
    int fd; /* negio_engine_relay's socket until it is opened, else -1 */
    char *host;
    uint16_t port;
    uint8_t *preamble;
    uv_tcp_t tcp;
    uv_timer_t timer; /* the connect deadline, then the deadline of a clean end */
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_shutdown_t shutdown_req;
    struct addrinfo *addrs;
    int tcp_ready, timer_ready;
    int resolving;
    int connected;
    int reading;
    int paused;      /* not read: C holds too much for the peer */
    int holding;     /* C not read: the socket holds too much */
    int eof;         /* the socket's input ended */
    int peer_closed; /* the peer's CLOSE: shut the socket down after what came before */
    int shut_asked, shut_done;
    int ending; /* C is closing: no more reads or writes */
    size_t unwritten;
    uint64_t to_socket, from_socket;
    size_t held_max;
};

typedef struct relay_write {
    uv_write_t req;
    struct negio__relay *r;
    size_t len;
    uint8_t data[];
} relay_write;

static void relay_fail(struct negio__relay *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t high_water(const struct negio__relay *r)
{
    return r->o.high_water ? r->o.high_water : r->c->e->o.high_water;
}

static void note_held(struct negio__relay *r)
{
    size_t held = r->unwritten + negio_econn_queued(r->c);
    if (held > r->held_max)
        r->held_max = held;
}

/* The socket failed or cannot be reached: the peer hears why in a protected CLOSE of the
 * relay's status, the application in on_closed. */
static void relay_fail(struct negio__relay *r, int code, const char *fmt, ...)
{
    negio_econn *c = r->c;
    if (c->close_started)
        return;
    char text[257]; /* a CLOSE reason holds 256 bytes (PROTOCOL.md section 4.5) */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!c->step_running && c->state == ST_OPEN && !c->local_closing) {
        (void)negio_conn_close(c->conn, r->o.fail_status, text);
        negio__flush(c);
    }
    negio__econn_close(c, NEGIO_CLOSE_ERROR, code, "relay: %s", text);
}

/* ---- the socket's handles ---------------------------------------------------------------- */

static void on_relay_handle_closed(uv_handle_t *h)
{
    struct negio__relay *r = h->data;
    negio_econn *c = r->c;
    c->handles--;
    negio__econn_finish(c);
}

static void close_tcp(struct negio__relay *r, int reset)
{
    if (!r->tcp_ready || uv_is_closing((uv_handle_t *)&r->tcp))
        return;
    /* a reset tells the program behind the socket that the stream was cut, not complete */
    if (!reset || !r->connected || uv_tcp_close_reset(&r->tcp, on_relay_handle_closed) != 0)
        uv_close((uv_handle_t *)&r->tcp, on_relay_handle_closed);
}

static void close_timer(struct negio__relay *r)
{
    if (r->timer_ready && !uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, on_relay_handle_closed);
}

/* The socket and its deadline, both: the relay is over. */
static void close_relay(struct negio__relay *r, int reset)
{
    close_tcp(r, reset);
    close_timer(r);
}

/* ---- socket to peer ------------------------------------------------------------------------ */

static void on_relay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct negio__relay *r = h->data;
    negio__loop *l = r->c->l;
    if (l->relay_buf == NULL)
        l->relay_buf = negio__malloc(RELAY_CHUNK);
    /* a message the peer takes: no longer than its announced max_message */
    size_t len = r->o.chunk;
    uint32_t peer_max = (uint32_t)atomic_load(&r->c->peer_policy);
    if (peer_max != 0 && peer_max < len)
        len = peer_max;
    if (r->c->max_message < len)
        len = r->c->max_message;
    *buf = uv_buf_init((char *)l->relay_buf, l->relay_buf ? (unsigned)len : 0);
}

static void read_stop(struct negio__relay *r)
{
    if (r->reading) {
        uv_read_stop((uv_stream_t *)&r->tcp);
        r->reading = 0;
    }
}

static void on_relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Reads the socket when everything allows it. */
static void read_start(struct negio__relay *r)
{
    negio_econn *c = r->c;
    if (r->reading || r->paused || r->eof || r->ending || !r->connected || !c->established ||
        c->local_closing || c->state != ST_OPEN)
        return;
    if (uv_read_start((uv_stream_t *)&r->tcp, on_relay_alloc, on_relay_read) == 0)
        r->reading = 1;
}

static void on_relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct negio__relay *r = s->data;
    negio_econn *c = r->c;
    if (n == 0) {
        if (buf->base == NULL)
            relay_fail(r, NEGIO_ERR_NOMEM, "no memory for a read buffer");
        return;
    }
    if (n == UV_EOF) {
        /* the socket's end is C's CLOSE, after everything read before it */
        r->eof = 1;
        read_stop(r);
        negio__do_graceful_close(c, 0);
        return;
    }
    if (n < 0) {
        relay_fail(r, NEGIO_ERR_SYSTEM, "read: %s", uv_strerror((int)n));
        return;
    }
    c->last_active = negio__now(c->l);
    r->from_socket += (uint64_t)n;
    atomic_fetch_add(&c->queued, (size_t)n); /* negio__do_write takes it back */
    if (negio__must_hold(c)) {
        negio__cmd *m = negio__new_cmd(CMD_WRITE, c, (size_t)n);
        if (m == NULL) {
            atomic_fetch_sub(&c->queued, (size_t)n);
            relay_fail(r, NEGIO_ERR_NOMEM, "out of memory");
            return;
        }
        memcpy(m->data, buf->base, (size_t)n);
        m->level = NEGIO_LEVEL_DEFAULT;
        negio_econn_ref(c);
        negio__hold(c, m);
        negio__queue_turn(c);
    } else {
        negio__do_write(c, (const uint8_t *)buf->base, (size_t)n, NEGIO_LEVEL_DEFAULT);
    }
    if (c->state != ST_OPEN || r->ending)
        return;
    note_held(r);
    negio__relay_output(c, negio_econn_queued(c));
}

void negio__relay_output(negio_econn *c, size_t pending)
{
    struct negio__relay *r = c->relay;
    size_t hw = c->e->o.high_water;
    if (!r->paused && pending > hw) {
        r->paused = 1;
        read_stop(r);
    } else if (r->paused && pending <= hw / 2) {
        r->paused = 0;
        read_start(r);
    }
}

/* ---- peer to socket ------------------------------------------------------------------------ */

static void on_relay_written(uv_write_t *req, int status)
{
    relay_write *w = (relay_write *)req;
    struct negio__relay *r = w->r;
    negio_econn *c = r->c;
    r->unwritten -= w->len;
    negio__free(w);
    if (status < 0) {
        if (status != UV_ECANCELED)
            relay_fail(r, NEGIO_ERR_SYSTEM, "write: %s", uv_strerror(status));
        return;
    }
    if (r->holding && r->unwritten <= high_water(r) / 2) {
        r->holding = 0;
        negio__econn_process(c); /* reads C again */
    }
}

/* Writes LEN bytes to the socket: straight away what it takes, the rest in a write request. */
static void relay_write_bytes(struct negio__relay *r, const uint8_t *data, size_t len)
{
    if (len == 0 || r->ending)
        return;
    if (r->unwritten == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&r->tcp, &b, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    relay_write *w = negio__malloc(sizeof(*w) + len);
    if (w == NULL) {
        relay_fail(r, NEGIO_ERR_NOMEM, "out of memory for the socket's output");
        return;
    }
    memcpy(w->data, data, len);
    w->r = r;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, on_relay_written);
    if (rc < 0) {
        negio__free(w);
        relay_fail(r, NEGIO_ERR_SYSTEM, "write: %s", uv_strerror(rc));
        return;
    }
    r->unwritten += len;
    if (r->unwritten > high_water(r))
        r->holding = 1;
}

void negio__relay_message(negio_econn *c, const uint8_t *data, size_t len)
{
    struct negio__relay *r = c->relay;
    if (r->shut_asked)
        return; /* cannot happen: nothing is delivered after the peer's CLOSE */
    r->to_socket += len;
    relay_write_bytes(r, data, len);
    note_held(r);
}

int negio__relay_holds(const negio_econn *c)
{
    const struct negio__relay *r = c->relay;
    return r != NULL && (!r->connected || r->holding);
}

static void on_relay_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* ENOTCONN: the other end is gone; the reads will say so */
    struct negio__relay *r = req->data;
    r->shut_done = 1;
    if (r->ending)
        close_relay(r, 0);
}

/* The socket's sending half ends after every write before it (libuv orders them). */
static void relay_shutdown(struct negio__relay *r)
{
    if (r->shut_asked || !r->connected)
        return;
    r->shut_asked = 1;
    r->shutdown_req.data = r;
    if (uv_shutdown(&r->shutdown_req, (uv_stream_t *)&r->tcp, on_relay_shutdown) != 0) {
        r->shut_done = 1;
        if (r->ending)
            close_relay(r, 0);
    }
}

void negio__relay_peer_closed(negio_econn *c)
{
    struct negio__relay *r = c->relay;
    r->peer_closed = 1;
    relay_shutdown(r); /* or once connected */
    if (r->eof)        /* both directions are over */
        negio__do_graceful_close(c, 0);
}

/* ---- connecting ------------------------------------------------------------------------------ */

/* The socket is connected: the preamble first, then whatever waited for it. */
static void relay_opened(struct negio__relay *r)
{
    negio_econn *c = r->c;
    r->connected = 1;
    if (r->timer_ready)
        uv_timer_stop(&r->timer);
    (void)uv_tcp_nodelay(&r->tcp, 1); /* best effort: a relay carries interactive protocols */
    if (r->preamble != NULL) {
        relay_write_bytes(r, r->preamble, r->o.preamble_len);
        negio__free(r->preamble);
        r->preamble = NULL;
    }
    if (r->peer_closed)
        relay_shutdown(r);
    read_start(r);
    negio__econn_process(c); /* C is read again */
}

static void free_addrs(struct negio__relay *r)
{
    negio__free_addr_list(&r->addrs);
}

static int try_next(struct negio__relay *r);

static void on_retry_closed(uv_handle_t *h)
{
    struct negio__relay *r = h->data;
    negio_econn *c = r->c;
    int rc = r->ending ? UV_ECANCELED : uv_tcp_init(&c->l->uv, &r->tcp);
    if (rc != 0) {
        r->tcp_ready = 0;
        c->handles--;
        if (r->ending)
            negio__econn_finish(c);
        else
            relay_fail(r, NEGIO_ERR_SYSTEM, "tcp init: %s", uv_strerror(rc));
        return;
    }
    r->tcp.data = r;
    if ((rc = try_next(r)) < 0)
        relay_fail(r, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", r->host, (unsigned)r->port,
                   uv_strerror(rc));
}

static void on_relay_connected(uv_connect_t *req, int status)
{
    struct negio__relay *r = req->data;
    if (r->ending)
        return;
    if (status < 0) {
        if (r->addrs != NULL) {
            uv_close((uv_handle_t *)&r->tcp, on_retry_closed);
            return;
        }
        relay_fail(r, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", r->host, (unsigned)r->port,
                   uv_strerror(status));
        return;
    }
    free_addrs(r);
    relay_opened(r);
}

static int try_next(struct negio__relay *r)
{
    int rc = UV_EADDRNOTAVAIL;
    while (r->addrs != NULL) {
        struct addrinfo *a = r->addrs;
        r->addrs = a->ai_next;
        r->connect_req.data = r;
        rc = uv_tcp_connect(&r->connect_req, &r->tcp, a->ai_addr, on_relay_connected);
        negio__free(a->ai_addr);
        negio__free(a);
        if (rc == 0)
            return 0;
    }
    return rc;
}

static void on_relay_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct negio__relay *r = req->data;
    negio_econn *c = r->c;
    r->resolving = 0;
    if (!r->ending && (status < 0 || res == NULL)) {
        relay_fail(r, NEGIO_ERR_ADDRESS, "resolve %s: %s", r->host, uv_strerror(status));
    } else if (!r->ending) {
        r->addrs = negio__copy_addrs(res);
        int rc = r->addrs == NULL ? UV_ENOMEM : try_next(r);
        if (rc < 0)
            relay_fail(r, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", r->host, (unsigned)r->port,
                       uv_strerror(rc));
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    negio_econn_unref(c); /* the resolver's */
}

static void on_relay_timer(uv_timer_t *t)
{
    struct negio__relay *r = t->data;
    if (r->ending) { /* a clean end that the socket did not finish in time */
        close_relay(r, 1);
        return;
    }
    relay_fail(r, NEGIO_ERR_ADDRESS, "connect to %s:%u: no answer within %u ms", r->host,
               (unsigned)r->port, (unsigned)r->o.connect_timeout_ms);
}

/* ---- attaching and ending ------------------------------------------------------------------- */

void negio__relay_free(struct negio__relay *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free_addrs(r);
    negio__free(r->preamble);
    negio__free(r->host);
    negio__free(r);
}

void negio__relay_start(negio_econn *c, struct negio__relay *r)
{
    if (c->close_started || c->state == ST_DONE || c->state == ST_CLOSING) {
        negio__relay_free(r);
        return;
    }
    r->c = c;
    c->relay = r;
    negio__loop *l = c->l;
    int rc = uv_timer_init(&l->uv, &r->timer);
    if (rc == 0) {
        r->timer.data = r;
        r->timer_ready = 1;
        c->handles++;
        rc = uv_tcp_init(&l->uv, &r->tcp);
    }
    if (rc == 0) {
        r->tcp.data = r;
        r->tcp_ready = 1;
        c->handles++;
    }
    if (rc != 0) {
        relay_fail(r, NEGIO_ERR_SYSTEM, "socket setup: %s", uv_strerror(rc));
        return;
    }
    if (r->fd >= 0) {
        rc = uv_tcp_open(&r->tcp, r->fd);
        if (rc != 0) {
            relay_fail(r, NEGIO_ERR_SYSTEM, "socket: %s", uv_strerror(rc));
            return;
        }
        r->fd = -1; /* the handle's now */
        relay_opened(r);
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)r->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->resolve_req.data = r;
    negio_econn_ref(c); /* the resolver's */
    rc = uv_getaddrinfo(&l->uv, &r->resolve_req, on_relay_resolved, r->host, port, &hints);
    if (rc < 0) {
        negio_econn_unref(c);
        relay_fail(r, NEGIO_ERR_ADDRESS, "resolve %s: %s", r->host, uv_strerror(rc));
        return;
    }
    r->resolving = 1;
    uv_timer_start(&r->timer, on_relay_timer, r->o.connect_timeout_ms, 0);
}

void negio__relay_established(negio_econn *c)
{
    read_start(c->relay);
}

void negio__relay_stop(negio_econn *c, int clean)
{
    struct negio__relay *r = c->relay;
    if (r->ending)
        return;
    r->ending = 1;
    read_stop(r);
    if (r->resolving)
        uv_cancel((uv_req_t *)&r->resolve_req); /* its callback still runs, and sees ending */
    if (clean && r->connected) {
        /* every byte for the socket first, then its FIN; bounded like C's own close */
        uv_timer_stop(&r->timer);
        uv_timer_start(&r->timer, on_relay_timer, c->e->o.shutdown_timeout_ms, 0);
        if (!r->shut_asked)
            relay_shutdown(r);
        else if (r->shut_done)
            close_relay(r, 0);
        return;
    }
    close_relay(r, 1);
}

void negio__relay_close_now(negio_econn *c)
{
    struct negio__relay *r = c->relay;
    r->ending = 1;
    close_relay(r, 1);
}

/* ---- the public calls ------------------------------------------------------------------------ */

static int relay_new(negio_econn *c, const negio_relay_options *opts, struct negio__relay **out)
{
    negio_relay_options o = {.size = sizeof(o)};
    if (opts != NULL && negio__sized_in(&o, sizeof(o), opts, sizeof(o)) < 0)
        return NEGIO_ERR_INVALID;
    if (o.preamble == NULL && o.preamble_len > 0)
        return NEGIO_ERR_INVALID;
    if (o.chunk == 0 || o.chunk > RELAY_CHUNK)
        o.chunk = RELAY_CHUNK;
    if (o.connect_timeout_ms == 0)
        o.connect_timeout_ms = RELAY_CONNECT_MS;
    if (o.fail_status == 0)
        o.fail_status = NEGIO_STATUS_UNAVAILABLE;
    struct negio__relay *r = negio__calloc(1, sizeof(*r));
    if (r == NULL)
        return NEGIO_ERR_NOMEM;
    r->fd = -1;
    if (o.preamble_len > 0) {
        r->preamble = negio__malloc(o.preamble_len);
        if (r->preamble == NULL) {
            negio__free(r);
            return NEGIO_ERR_NOMEM;
        }
        memcpy(r->preamble, o.preamble, o.preamble_len);
    }
    o.preamble = NULL; /* the copy is r->preamble */
    r->o = o;
    (void)c;
    *out = r;
    return NEGIO_OK;
}

/* Claims C's one relay and hands R to C's loop. */
static int relay_attach(negio_econn *c, struct negio__relay *r)
{
    if (atomic_load(&c->closed) || atomic_exchange(&c->relay_attached, 1) != 0) {
        r->fd = -1; /* the caller's still */
        negio__relay_free(r);
        return NEGIO_ERR_STATE;
    }
    if (negio__on_loop_thread(c->l)) {
        negio__relay_start(c, r);
        return NEGIO_OK;
    }
    negio__cmd *m = negio__new_cmd(CMD_RELAY, c, 0);
    if (m == NULL) {
        atomic_store(&c->relay_attached, 0);
        r->fd = -1;
        negio__relay_free(r);
        return NEGIO_ERR_NOMEM;
    }
    m->relay = r;
    negio_econn_ref(c); /* the command's */
    negio__post(c->l, m);
    return NEGIO_OK;
}

int negio_engine_relay(negio_econn *c, int fd, const negio_relay_options *opts)
{
    if (c == NULL || fd < 0)
        return NEGIO_ERR_INVALID;
    struct negio__relay *r;
    int rc = relay_new(c, opts, &r);
    if (rc < 0)
        return rc;
    r->fd = fd;
    return relay_attach(c, r);
}

int negio_engine_relay_connect(negio_econn *c, const char *host, uint16_t port,
                               const negio_relay_options *opts)
{
    if (c == NULL || host == NULL || host[0] == '\0')
        return NEGIO_ERR_INVALID;
    struct negio__relay *r;
    int rc = relay_new(c, opts, &r);
    if (rc < 0)
        return rc;
    r->host = negio__strdup(host);
    if (r->host == NULL) {
        negio__relay_free(r);
        return NEGIO_ERR_NOMEM;
    }
    r->port = port;
    return relay_attach(c, r);
}

int negio_econn_relay_stats(const negio_econn *c, negio_relay_stats *stats)
{
    if (c == NULL || stats == NULL)
        return NEGIO_ERR_INVALID;
    const struct negio__relay *r = c->relay;
    if (r == NULL)
        return NEGIO_ERR_STATE;
    negio_relay_stats st = {
        .size = sizeof(st),
        .to_socket = r->to_socket,
        .from_socket = r->from_socket,
        .held = r->unwritten + negio_econn_queued(c),
        .held_max = r->held_max,
        .connected = r->connected,
        .socket_eof = r->eof,
        .peer_closed = r->peer_closed,
    };
    return negio__sized_out(stats, &st, sizeof(st), sizeof(st));
}
