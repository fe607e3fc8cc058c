/* The input half of a connection: the socket read straight into the connector's buffer, then
 * the process loop that turns the connector's events into the application's callbacks
 * (on_authenticated, on_message, on_acknowledged), hands steps to the workers, and ends a round
 * by scheduling its output (output.c) and reading again. */
#include <stdatomic.h>

#include "engine/engine_internal.h"

#include <arpa/inet.h>
#include <string.h>

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    negio_econn *c = h->data;
    if (c->proxy_state == 1) { /* a PROXY header first, into a buffer of its own (proxy.c) */
        negio__proxy_alloc(c, buf);
        return;
    }
    size_t len = 0;
    uint8_t *p = negio_conn_recv_buf(c->conn, &len);
    *buf = uv_buf_init((char *)p, p ? (unsigned)len : 0);
}

/* A PROXY header from a source the listener does not accept one from: a client claiming
 * another's address, or a balancer missing from the list. */
static int refused_proxy(negio_econn *c, const uv_buf_t *buf, ssize_t n)
{
    static const char v2[] = "\r\n\r\n\0\r\nQUIT\n";
    c->proxy_state = 0;
    if (n < 6 || (memcmp(buf->base, "PROXY ", 6) != 0 && memcmp(buf->base, v2, 6) != 0))
        return 0;
    char from[INET6_ADDRSTRLEN];
    negio__peer_host(c, from, sizeof(from));
    negio_conn_recv_done(c->conn, 0);
    negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_PROTOCOL,
                       "a PROXY protocol header from %s, which is not among the sources it is "
                       "accepted from (accept_proxy_from)",
                       from);
    return 1;
}

/* While a PROXY header is expected (proxy.c). */
static void on_proxy_read(negio_econn *c, ssize_t n, const uv_buf_t *buf)
{
    if (n == 0) {
        if (buf->base == NULL)
            negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "no input buffer");
        return;
    }
    if (n < 0) {
        negio__econn_close(c, n == UV_EOF ? NEGIO_CLOSE_TRUNCATED : NEGIO_CLOSE_ERROR,
                           n == UV_EOF ? NEGIO_ERR_TRUNCATED : NEGIO_ERR_SYSTEM,
                           "the stream ended inside its PROXY protocol header%s%s",
                           n == UV_EOF ? "" : ": ", n == UV_EOF ? "" : uv_strerror((int)n));
        return;
    }
    c->last_active = negio__now(c->l);
    if (negio__proxy_read(c, (size_t)n) > 0)
        negio__econn_process(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    negio_econn *c = s->data;
    if (c->proxy_state == 1) {
        on_proxy_read(c, n, buf);
        return;
    }
    if (c->proxy_state == 2 && n > 0 && refused_proxy(c, buf, n))
        return;
    if (n > 0) {
        negio_conn_recv_done(c->conn, (size_t)n);
        c->last_active = negio__now(c->l); /* the idle timer looks at this when it fires */
    } else if (n == UV_EOF) {
        negio_conn_recv_done(c->conn, 0);
        negio_conn_feed_eof(c->conn);
    } else if (n < 0) {
        negio_conn_recv_done(c->conn, 0);
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "read: %s", uv_strerror((int)n));
        return;
    } else {
        negio_conn_recv_done(c->conn, 0);
        if (buf->base == NULL) {
            negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "no input buffer");
            return;
        }
    }
    negio__econn_process(c);
}

static void on_established(negio_econn *c)
{
    negio_engine *e = c->e;
    negio_auth_info info = {.size = sizeof(info)};
    int rc = negio_conn_auth_info(c->conn, &info);
    if (rc < 0) {
        negio__econn_close(c, NEGIO_CLOSE_ERROR, rc, "established without its facts: %s",
                           negio_strerror(rc));
        return;
    }
    c->established = 1;
    /* from now on negio_engine_send checks every write against the peer's POLICY itself */
    atomic_store(&c->peer_policy, PEER_KNOWN | (uint64_t)info.peer_min_level << 32 |
                                      (uint64_t)info.peer_max_message);
    uv_timer_stop(&c->timer);
    c->last_active = negio__now(c->l);
    /* GSS_C_INDEFINITE (NTLM): no end */
    if (e->o.close_at_context_expiry && info.lifetime != UINT32_MAX)
        c->expires_at = c->last_active + (uint64_t)info.lifetime * 1000 + 1;
    negio__arm_established_timer(c);
    if (e->o.callbacks.on_authenticated) {
        c->in_callback++;
        int status = e->o.callbacks.on_authenticated(c, &info, e->o.user);
        c->in_callback--;
        if (status != 0) {
            /* the writes made before are dropped with the connection: a rejected peer gets
             * nothing but the rejection */
            /* the statuses of PROTOCOL.md section 6.8 that an application sends say so */
            negio_conn_close(c->conn, (uint32_t)status,
                             status == NEGIO_STATUS_FORBIDDEN     ? "not allowed"
                             : status == NEGIO_STATUS_UNAVAILABLE ? "service unavailable"
                                                                  : "rejected by the application");
            negio__flush(c);
            negio__econn_close(c, NEGIO_CLOSE_REFUSED, 0, "rejected by the application (status %d)",
                               status);
            return;
        }
    }
    /* the writes made before establishment, then those made in on_authenticated, in order:
     * each is now sent or refused under the peer's POLICY */
    negio__release_held(c);
    if (c->relay != NULL && c->state == ST_OPEN)
        negio__relay_established(c);
}

/* Runs the connector until it needs input, a step or the socket: the heart of the engine. */
static void econn_process_loop(negio_econn *c);

/* The peer's CLOSE under half-close (negio_config_set_half_close): nothing more will be read
 * from it, but the connection stays open for this side's writes until it closes in turn. */
static void peer_closed(negio_econn *c)
{
    c->peer_closed = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    negio__update_backpressure(c);
    negio__flush_soon(c);
    if (c->relay != NULL) {
        negio__relay_peer_closed(c);
    } else if (c->e->o.on_peer_closed != NULL) {
        c->in_callback++;
        c->e->o.on_peer_closed(c, c->e->o.user);
        c->in_callback--;
    }
}

/* A callback that sends or closes runs inside this function; it must not start another round,
 * which would release the event the callback is still looking at and nest the callbacks. What
 * it writes goes out when the running round flushes. */
void negio__econn_process(negio_econn *c)
{
    if (c->processing)
        return;
    c->processing = 1;
    econn_process_loop(c);
    c->processing = 0;
}

/* on_message or on_acknowledged (CB, if set) with the bytes of EV: a callback of C's. */
static void deliver(negio_econn *c,
                    void (*cb)(negio_econn *, const uint8_t *, size_t, negio_level, void *),
                    const negio_event *ev)
{
    if (cb == NULL)
        return;
    c->in_callback++;
    cb(c, ev->data, ev->len, ev->level, c->e->o.user);
    c->in_callback--;
}

static void econn_process_loop(negio_econn *c)
{
    if (c->step_running || c->state == ST_DONE || c->conn == NULL)
        return;
    negio_engine *e = c->e;
    unsigned want = 0, known = 0; /* what the connector said it needs when it stopped */
    while (c->state == ST_OPEN) {
        /* over the high-water mark, input already buffered waits as well: a read can bring
         * several frames, and answering them all could queue that much more (their output
         * is counted after each message, below) */
        if (c->read_paused || negio__relay_holds(c))
            break;
        negio_event ev;
        int rc = negio_conn_next_event(c->conn, &ev);
        if (rc < 0) {
            negio__flush(c); /* a handshake error frame may be waiting */
            negio_close_reason r =
                rc == NEGIO_ERR_TRUNCATED ? NEGIO_CLOSE_TRUNCATED : NEGIO_CLOSE_ERROR;
            negio__econn_close(c, r, rc, "%s", negio_conn_error_detail(c->conn));
            return;
        }
        if (rc == 0) {
            want = ev.want;
            known = 1;
            if (want & NEGIO_WANT_STEP) {
                /* the connector is the worker's until the step is done */
                negio__flush(c);
                if (c->state != ST_OPEN)
                    return;
                if (c->reading) {
                    uv_read_stop((uv_stream_t *)&c->tcp);
                    c->reading = 0;
                }
                if (negio__submit_step(c) < 0) {
                    negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "out of memory");
                    return;
                }
                c->step_running = 1;
                return;
            }
            break;
        }
        if (ev.type == NEGIO_EV_ESTABLISHED) {
            on_established(c);
            negio__check_high_water(c);
        } else if (ev.type == NEGIO_EV_MESSAGE) {
            if (c->relay != NULL)
                negio__relay_message(c, ev.data, ev.len);
            else
                deliver(c, e->o.callbacks.on_message, &ev);
            negio__check_high_water(c);
        } else if (ev.type == NEGIO_EV_ACKNOWLEDGED) {
            deliver(c, e->o.callbacks.on_acknowledged, &ev);
            negio__check_high_water(c);
        } else if (ev.type == NEGIO_EV_CLOSED && c->half_close && !c->local_closing) {
            /* half-close: the peer sends nothing more; this side goes on until it closes */
            peer_closed(c);
            return;
        } else if (ev.type == NEGIO_EV_CLOSED) {
            negio__flush(c); /* our answering CLOSE */
            if (c->local_closing)
                negio__econn_close(c, NEGIO_CLOSE_CLEAN, 0, "closed; the peer answered");
            else
                negio__econn_close(c, NEGIO_CLOSE_CLEAN, 0, "peer closed: %s",
                                   ev.reason && ev.reason[0] ? ev.reason : "normal close");
            return;
        }
    }
    if (c->state != ST_OPEN)
        return;
    /* above the mark as the application wrote, before a direct write lowers what is queued */
    negio__update_backpressure(c);
    negio__flush_soon(c);
    if (!known) /* stopped by backpressure, before asking the connector */
        want = negio_conn_want(c->conn);
    /* this side's close without a close message ([MS-NNS] under half-close): the FIN says it */
    if (want & NEGIO_WANT_SHUTDOWN)
        negio__shut_send(c);
    if (c->state != ST_OPEN)
        return;
    if (negio__relay_holds(c) && c->reading) {
        /* the relay's socket is not ready for more: what the peer sends waits in the kernel */
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (c->state == ST_OPEN && !c->reading && !c->read_paused && !negio__relay_holds(c) &&
        (want & NEGIO_WANT_READ)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}
