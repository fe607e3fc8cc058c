/* A connection's life on its loop: made (accepted or connecting), started once its socket is
 * connected, closed gracefully (CLOSE, then waiting for the peer's) or at once, finished when its
 * handles are closed (on_closed), and freed with its last reference. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/config.h" /* half_close, which the connector's owner needs to know */
#include "engine/engine_internal.h"

/* COUNTED: the listener already counted this connection when it accepted it (so that a burst of
 * accepts handed to other loops cannot overshoot max_connections). */
int negio__econn_new(negio_econn **out, negio_engine *e, negio__loop *l, const negio_config *cfg,
                     int is_client, int counted)
{
    negio_econn *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    int rc = negio_conn_new(&c->conn, cfg);
    if (rc != NEGIO_OK) {
        negio__free(c);
        return rc;
    }
    atomic_init(&c->refs, 1); /* the engine's reference, dropped after on_closed */
    atomic_init(&c->closed, 0);
    atomic_init(&c->queued, 0);
    atomic_init(&c->unsent, 0);
    atomic_init(&c->peer_policy, 0);
    c->e = e;
    c->l = l;
    c->is_client = is_client;
    c->default_level = negio_config_get_default_level(cfg);
    c->tls_only = negio_config_get_transport(cfg) == NEGIO_TRANSPORT_TLS;
    negio_limits limits = {.size = sizeof(limits)};
    (void)negio_config_get_limits(cfg, &limits); /* cannot fail: both are there */
    c->max_message = limits.max_message;
    c->held_tail = &c->held;
    c->half_close = cfg->half_close;
    atomic_init(&c->relay_attached, 0);
    c->state = ST_CONNECTING;
    if (!counted)
        atomic_fetch_add(&e->conns, 1);
    *out = c;
    return NEGIO_OK;
}

static void link_conn(negio_econn *c)
{
    negio__loop *l = c->l;
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
}

static void unlink_conn(negio_econn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->l->conns == c)
        c->l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Called when the last handle closed: report and release. A step still blocked in a worker (on
 * an unreachable KDC, say) does not delay the report: the worker's reference keeps the connector
 * alive until the step returns, and nothing reads its result. */
void negio__econn_finish(negio_econn *c)
{
    if (c->state == ST_DONE || c->handles > 0)
        return;
    c->state = ST_DONE;
    atomic_store(&c->closed, 1);
    unlink_conn(c);
    negio_engine *e = c->e;
    if (e->o.callbacks.on_closed) {
        c->in_callback++;
        e->o.callbacks.on_closed(c, c->reason, c->code, c->detail, e->o.user);
        c->in_callback--;
    }
    /* the connector is freed with the last reference; nothing touches it any more */
    negio__uncount(e);
    pthread_mutex_lock(&e->lock);
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->lock);
    negio_econn_unref(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    negio_econn *c = h->data;
    c->handles--;
    negio__econn_finish(c);
}

void negio__close_handles(negio_econn *c)
{
    if (c->tcp_ready && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->timer_ready && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->handles == 0) /* none was ever opened */
        negio__econn_finish(c);
}

/* Everything at once, the relay's socket included: a deadline passed, or a forced shutdown. */
void negio__close_all_handles(negio_econn *c)
{
    if (c->relay != NULL)
        negio__relay_close_now(c);
    negio__close_handles(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    negio__close_handles(req->data);
}

static void on_send_shut(uv_shutdown_t *req, int status)
{
    negio_econn *c = req->data;
    if (status == UV_ECANCELED) /* the handles are being closed */
        return;
    /* done, or failed: then the peer is gone, and the reads will say so */
    c->send_shut = 2;
    if (c->close_started)
        negio__close_handles(c);
}

void negio__shut_send(negio_econn *c)
{
    if (c->send_shut || c->close_started || c->state != ST_OPEN)
        return;
    negio__flush(c);
    if (c->state != ST_OPEN)
        return; /* the flush failed and closed C */
    c->send_shut = 1;
    c->shutdown_req.data = c;
    /* libuv shuts the socket down after the writes queued before */
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_send_shut) != 0)
        c->send_shut = 2;
}

static void on_close_deadline(uv_timer_t *t)
{
    negio__close_all_handles(t->data);
}

/* Ends the connection: pending output (a protected close, a handshake error) is flushed first,
 * bounded by the shutdown deadline. The first reason wins. */
void negio__econn_close(negio_econn *c, negio_close_reason reason, int code, const char *fmt, ...)
{
    if (c->close_started)
        return;
    c->close_started = 1;
    atomic_store(&c->closed, 1);
    negio__drop_held(c);
    c->reason = reason;
    c->code = code;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
        va_end(ap);
    }
    int connected = c->state != ST_CONNECTING;
    c->state = ST_CLOSING;
    /* the relay's socket: shut down after its last byte for a clean end, reset otherwise */
    if (c->relay != NULL)
        negio__relay_stop(c, reason == NEGIO_CLOSE_CLEAN);
    /* a socket still resolving or connecting has nothing to flush: uv_shutdown would never
     * complete on it */
    if (!c->tcp_ready || !connected) {
        negio__close_handles(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    /* output a round left for the loop's flush pass goes before the shutdown */
    if (!c->step_running && c->conn != NULL)
        negio__flush(c);
    uv_timer_stop(&c->timer);
    negio__timer_start(c, on_close_deadline, c->e->o.shutdown_timeout_ms);
    if (c->send_shut == 1)
        return; /* the sending half is being shut down already: on_send_shut closes */
    c->shutdown_req.data = c;
    if (c->send_shut == 2 ||
        uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        negio__close_handles(c);
}

/* Common start of a connected socket, server or client side. */
void negio__econn_start(negio_econn *c)
{
    c->state = ST_OPEN;
    int len = sizeof(c->peer);
    /* fails only if the peer is already gone (ENOTCONN): the address stays unspecified
     * (AF_UNSPEC, engine.h) and the first read reports the end */
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len) != 0)
        memset(&c->peer, 0, sizeof(c->peer));
    /* a listener that accepts PROXY headers: expected from the sources it lists, refused from
     * every other (proxy.c) */
    if (c->listener != NULL && c->listener->nproxy > 0)
        c->proxy_state = negio__cidr_match(c->listener->proxy_from, c->listener->nproxy,
                                           (const struct sockaddr *)&c->peer)
                             ? 1
                             : 2;
    int rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0)
        rc = negio__timer_start(c, negio__on_timeout, c->e->o.handshake_timeout_ms);
    if (rc != 0) {
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "socket setup: %s",
                           uv_strerror(rc));
        return;
    }
    negio__econn_process(c);
}

int negio__econn_init_handles(negio_econn *c)
{
    if (uv_timer_init(&c->l->uv, &c->timer) != 0)
        return -1;
    c->timer.data = c;
    c->timer_ready = 1;
    c->handles++;
    if (uv_tcp_init(&c->l->uv, &c->tcp) != 0)
        return -1;
    c->tcp.data = c;
    c->tcp_ready = 1;
    c->handles++;
    link_conn(c);
    return 0;
}

void negio__uncount(negio_engine *e)
{
    unsigned left = atomic_fetch_sub(&e->conns, 1) - 1;
    if (atomic_load(&e->accept_paused) && left < e->o.max_connections &&
        !atomic_load(&e->shutting_down))
        negio__listener_resume(e);
}

static void on_close_unanswered(uv_timer_t *t)
{
    negio_econn *c = t->data;
    negio__econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "the peer did not answer the close within %u ms",
                       (unsigned)c->e->o.shutdown_timeout_ms);
}

/* A normal close sends CLOSE and keeps reading until the peer's own CLOSE (every side sends one;
 * a rejection that crossed ours arrives this way), the end of the stream, or the close deadline;
 * what arrives decides how the connection is reported. A profile without a close message under
 * half-close asks for the socket's FIN instead (NEGIO_WANT_SHUTDOWN, negio__shut_send), and the
 * peer's own end is its answer. A rejection, or a connection not yet established, ends at once. */
void negio__do_graceful_close(negio_econn *c, uint32_t status)
{
    if (c->close_started || c->state == ST_DONE || c->local_closing)
        return;
    if (c->step_running || c->state != ST_OPEN) {
        negio__econn_close(c, NEGIO_CLOSE_REFUSED, 0, "closed locally");
        return;
    }
    if (status != 0 || !c->established) {
        negio_conn_close(c->conn, status, status ? "closed by the application" : "");
        negio__flush(c);
        negio__econn_close(c, status ? NEGIO_CLOSE_REFUSED : NEGIO_CLOSE_CLEAN, 0,
                           "closed locally");
        return;
    }
    negio__release_held(c); /* writes made before the close go out before it */
    if (c->close_started)
        return;
    negio_conn_close(c->conn, 0, "");
    atomic_store(&c->closed, 1); /* no more application writes */
    if (c->peer_closed) {
        /* half-close: the peer's CLOSE came first and this one answers it; both are done */
        negio__flush(c);
        negio__econn_close(c, NEGIO_CLOSE_CLEAN, 0, "closed after the peer's close");
        return;
    }
    c->local_closing = 1;
    uv_timer_stop(&c->timer);
    /* Under half-close the peer may go on sending for as long as it has something to say (the
     * rest of a reply): the idle timeout bounds that, not the close deadline, except when the
     * engine shuts down. */
    if (c->half_close && !atomic_load(&c->e->shutting_down))
        negio__arm_established_timer(c);
    else
        negio__timer_start(c, on_close_unanswered, c->e->o.shutdown_timeout_ms);
    negio__econn_process(c); /* flushes the CLOSE, keeps reading */
}

void negio_econn_ref(negio_econn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void negio_econn_unref(negio_econn *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    negio__free_addrs(c);
    negio__relay_free(c->relay);
    negio__free(c->proxy_buf);
    negio_conn_del(c->conn);
    negio__free(c->host);
    negio__free(c);
}
