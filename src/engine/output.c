/* The output path. The connector's output buffer holds only bytes for the wire (frame headers,
 * tokens, MICs, ciphertext, TLS records, and the payload of frames at level none, which is sent
 * in the clear): nothing here is wiped, as the same bytes sit unwiped in the kernel's socket
 * buffers and cross the network as they are.
 *
 * Writes are coalesced per loop iteration. The end of a round only puts the connection on the
 * loop's dirty list; the loop's check handle, after the poll phase (every read, command and write
 * callback of the iteration), flushes each dirty connection once, so that the messages written
 * in one iteration leave in one system call. Output past FLUSH_BATCH is flushed at once instead:
 * bigger batches measured no cheaper, and bytes written soon after they were made are still in
 * the cache.
 *
 * A flush writes straight from the connector's buffer (uv_try_write) when no write request is in
 * flight; what the socket did not take, or everything while a request is in flight, leaves
 * through negio_conn_send_take(): the connector's output block itself when the output fills it
 * at least half (no copy; the connector goes on in a new block, so no buffer stays at the size a
 * burst gave it), else a copy of its own size. Only when that fails for lack of memory is the
 * output copied into the request. Flow control is unchanged: output in the connector and in
 * write requests is what negio_econn_queued() counts and the high-water mark bounds. */
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"

#define FLUSH_BATCH (64u * 1024)
#define SPARE_MAX (256u * 1024) /* the largest write request kept for reuse, one per loop */

struct negio__wreq {
    uv_write_t req;
    negio_econn *c;
    size_t len;
    void *block; /* the connector's output block being written (negio_conn_send_take), or NULL:
                    the bytes are in DATA */
    size_t cap;
    uint8_t data[];
};

/* What negio_econn_queued() reports besides the commands not yet run; returns it. */
size_t negio__note_unsent(negio_econn *c)
{
    size_t unsent = c->inflight + (c->conn ? negio_conn_pending_bytes(c->conn) : 0);
    atomic_store(&c->unsent, unsent);
    return unsent;
}

void negio__update_backpressure(negio_econn *c)
{
    /* the connector belongs to the worker while a step runs (negio.h: one caller at a time) */
    if (c->step_running)
        return;
    size_t unsent = negio__note_unsent(c);
    size_t pending = unsent + atomic_load(&c->queued);
    negio_engine *e = c->e;
    /* Before establishment the connector holds early writes (bounded by its max_queued and the
     * hard limit): pausing reads then would stall the very handshake they wait for. */
    if (!c->established)
        return;
    /* a relay pauses its socket instead: reading the peer is paused only by what the socket
     * holds, so that one direction waiting never stops the other (relay.c) */
    if (c->relay != NULL) {
        negio__relay_output(c, pending);
        return;
    }
    if (!c->above_hw && pending > e->o.high_water) {
        c->above_hw = 1;
        c->read_paused = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (e->o.callbacks.on_backpressure) {
            c->in_callback++;
            e->o.callbacks.on_backpressure(c, 1, e->o.user);
            c->in_callback--;
        }
    } else if (c->above_hw && pending <= e->o.high_water / 2 && !c->processing) {
        /* Never inside a round: what the application writes from this callback must be counted
         * as it writes (each write a round of its own), or it could write without bound. A
         * direct write at the end of a round leaves the connection on the dirty list while it
         * is above the mark, so the flush pass comes here, outside the round. */
        c->above_hw = 0;
        c->read_paused = 0;
        if (e->o.callbacks.on_backpressure) {
            c->in_callback++;
            e->o.callbacks.on_backpressure(c, 0, e->o.user);
            c->in_callback--;
        }
        negio__econn_process(c); /* restarts reading */
    }
}

/* After each delivered message: has what the callback wrote crossed the mark? */
void negio__check_high_water(negio_econn *c)
{
    if (c->above_hw || c->state != ST_OPEN || !c->established)
        return;
    if (c->inflight + negio_conn_pending_bytes(c->conn) + atomic_load(&c->queued) >
        c->e->o.high_water)
        negio__update_backpressure(c);
}

static negio__wreq *wreq_get(negio__loop *l, size_t len)
{
    negio__wreq *w = l->spare;
    if (w != NULL && w->cap >= len) {
        l->spare = NULL;
        return w;
    }
    w = negio__malloc(sizeof(*w) + len);
    if (w != NULL)
        w->cap = len;
    return w;
}

static void wreq_put(negio__loop *l, negio__wreq *w)
{
    if (w->cap <= SPARE_MAX && (l->spare == NULL || l->spare->cap < w->cap)) {
        negio__free(l->spare);
        l->spare = w;
    } else {
        negio__free(w);
    }
}

static void on_written(uv_write_t *req, int status)
{
    negio__wreq *w = (negio__wreq *)req;
    negio_econn *c = w->c;
    c->inflight -= w->len;
    negio_conn_send_release(w->block);
    w->block = NULL;
    wreq_put(c->l, w);
    if (status < 0 && status != UV_ECANCELED)
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "write: %s",
                           uv_strerror(status));
    else if (c->state == ST_OPEN)
        negio__update_backpressure(c);
}

/* Hands all of the connector's output to the socket (see "The output path" above). */
void negio__flush(negio_econn *c)
{
    size_t len;
    const uint8_t *out = negio_conn_send_buf(c->conn, &len);
    if (len == 0 || !c->tcp_ready || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->inflight == 0) { /* libuv's write queue is empty: nothing to overtake */
        uv_buf_t b = {.base = (char *)out, .len = len};
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        /* an error other than EAGAIN is left to uv_write below, which reports it through
         * on_written like any write failure */
        if (n > 0) {
            negio_conn_send_done(c->conn, (size_t)n);
            out += n;
            len -= (size_t)n;
            if (len == 0) {
                negio__note_unsent(c);
                return;
            }
        }
    }
    const uint8_t *taken = NULL;
    size_t taken_len = 0;
    void *block = negio_conn_send_take(c->conn, &taken, &taken_len);
    negio__wreq *w = wreq_get(c->l, block != NULL ? 0 : len);
    if (w == NULL) {
        negio_conn_send_release(block);
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "out of memory for output");
        return;
    }
    w->block = block;
    if (block != NULL) {
        out = taken;
        len = taken_len;
    } else {
        memcpy(w->data, out, len);
        negio_conn_send_done(c->conn, len);
        out = w->data;
    }
    w->c = c;
    w->len = len;
    uv_buf_t b = {.base = (char *)out, .len = len};
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        negio_conn_send_release(w->block);
        w->block = NULL;
        wreq_put(c->l, w);
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "write: %s", uv_strerror(rc));
        return;
    }
    c->inflight += len;
    negio__note_unsent(c);
}

/* The end of a round: the output goes now if there is a lot of it, else with the loop's flush
 * pass. A connection above the high-water mark goes on the list even without output: the pass
 * checks, outside the round, whether it has fallen under the low-water mark. */
void negio__flush_soon(negio_econn *c)
{
    /* sizes only: negio_conn_send_buf() would also make the TLS records, which negio__flush() makes
     * once for the whole batch */
    if (negio_conn_pending_bytes(c->conn) >= FLUSH_BATCH)
        negio__flush(c);
    int waiting = (negio_conn_want(c->conn) & NEGIO_WANT_WRITE) != 0;
    if ((!waiting && !c->above_hw) || c->dirty || c->state != ST_OPEN)
        return;
    negio__loop *l = c->l;
    c->dirty = 1;
    negio_econn_ref(c); /* the list's */
    c->dirty_next = l->dirty;
    l->dirty = c;
    negio__keep_awake(l);
}

void negio__flush_dirty(negio__loop *l)
{
    negio_econn *list = l->dirty;
    l->dirty = NULL; /* what the pass itself makes dirty waits for the next iteration */
    while (list != NULL) {
        negio_econn *c = list;
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        if (c->state == ST_OPEN && !c->step_running) {
            negio__flush(c);
            if (c->state == ST_OPEN)
                negio__update_backpressure(c); /* a direct write lowers what is queued */
        }
        negio_econn_unref(c);
    }
}

/* The loop is stopping and every connection has ended: drop the list's references. */
void negio__drop_dirty(negio__loop *l)
{
    while (l->dirty != NULL) {
        negio_econn *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        negio_econn_unref(c);
    }
    uv_idle_stop(&l->spin);
}
