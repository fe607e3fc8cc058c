/* The input half of a connection: the socket read straight into the connector's buffer, then
 * the process loop that turns the connector's events into the application's callbacks
 * (on_authenticated, on_message, on_acknowledged), hands steps to the workers, and ends a round
 * by scheduling its output (output.c) and reading again. */
#include <stdatomic.h>

#include "engine/engine_internal.h"

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    negio_econn *c = h->data;
    size_t len = 0;
    uint8_t *p = negio_conn_recv_buf(c->conn, &len);
    *buf = uv_buf_init((char *)p, p ? (unsigned)len : 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    negio_econn *c = s->data;
    (void)buf;
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
            negio_conn_close(c->conn, (uint32_t)status, "rejected by the application");
            negio__flush(c);
            negio__econn_close(c, NEGIO_CLOSE_REFUSED, 0, "rejected by the application (status %d)",
                               status);
            return;
        }
    }
    /* the writes made before establishment, then those made in on_authenticated, in order:
     * each is now sent or refused under the peer's POLICY */
    negio__release_held(c);
}

/* Runs the connector until it needs input, a step or the socket: the heart of the engine. */
static void econn_process_loop(negio_econn *c);

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
        if (c->read_paused)
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
            deliver(c, e->o.callbacks.on_message, &ev);
            negio__check_high_water(c);
        } else if (ev.type == NEGIO_EV_ACKNOWLEDGED) {
            deliver(c, e->o.callbacks.on_acknowledged, &ev);
            negio__check_high_water(c);
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
    if (c->state == ST_OPEN && !c->reading && !c->read_paused && (want & NEGIO_WANT_READ)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}
