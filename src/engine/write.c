/* Application messages on their way into the connector, on the connection's loop: held while
 * the connector cannot take them yet (before establishment, during a step), then handed to it in
 * order; a message the peer's POLICY refuses late is reported (on_write_failed) or ends the
 * connection with a protected CLOSE. */
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"

/* Writes held during a step that will never be made: the connection is ending. */
void negio__drop_held(negio_econn *c)
{
    while (c->held != NULL) {
        negio__cmd *m = c->held;
        c->held = m->next;
        atomic_fetch_sub(&c->queued, m->len);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c);
        negio__free(m);
    }
    c->held_tail = &c->held;
}

/* Must a write wait in c->held rather than go to the connector now? Until the connection is
 * established the peer's POLICY is unknown, so the write could not be checked; while a step
 * runs the connector is the worker's; and a write may not overtake those already waiting. */
int negio__must_hold(const negio_econn *c)
{
    return c->step_running || !c->established || c->held != NULL;
}

void negio__hold(negio_econn *c, negio__cmd *m)
{
    m->next = NULL;
    *c->held_tail = m;
    c->held_tail = &m->next;
}

/* A write that negio_engine_send accepted and the connector then refused: it was made before
 * the peer's POLICY was known (or on another thread as it arrived) and the POLICY forbids it.
 * The application hears of it through on_write_failed, and the connection stays up
 * (PROTOCOL.md section 4.3). Without that callback nothing would tell it that the message was
 * not sent, so the connection ends instead, the peer told by a protected CLOSE with the status
 * of NEGIO_ERR_POLICY (section 6.7). */
static void write_refused(negio_econn *c, int code, const uint8_t *data, size_t len,
                          negio_level level)
{
    negio_engine *e = c->e;
    if (e->o.callbacks.on_write_failed != NULL) {
        c->in_callback++;
        e->o.callbacks.on_write_failed(c, code, data, len, level, e->o.user);
        c->in_callback--;
        return;
    }
    uint64_t peer = atomic_load(&c->peer_policy);
    (void)negio_conn_close(c->conn, (uint32_t)-NEGIO_ERR_POLICY,
                           "a message could not be sent under this side's policy");
    negio__flush(c);
    negio__econn_close(
        c, NEGIO_CLOSE_ERROR, NEGIO_ERR_POLICY,
        "a message of %zu bytes at level %s could not be sent: %s (the peer takes at "
        "most %u bytes at level %s or above), and no on_write_failed callback is set",
        len, negio_level_name(level), negio_strerror(code), (unsigned)(uint32_t)peer,
        negio_level_name((negio_level)(peer >> 32 & 0xff)));
}

/* Hands one accepted write to the connector (never while negio__must_hold). Its bytes leave QUEUED
 * only once UNSENT counts them, so that the hard limit never loses sight of them. A write that
 * reaches the loop once the connection is closing is not sent: on_closed reports the end. */
void negio__do_write(negio_econn *c, const uint8_t *data, size_t len, negio_level level)
{
    if (c->state != ST_OPEN || c->close_started || c->local_closing) {
        atomic_fetch_sub(&c->queued, len);
        return;
    }
    int rc = negio_conn_write(c->conn, data, len, level);
    if (rc == NEGIO_OK)
        negio__note_unsent(c);
    atomic_fetch_sub(&c->queued, len);
    if (rc == NEGIO_OK) {
        negio__econn_process(c);
    } else if (rc <= NEGIO_ERR_FATAL) {
        negio__flush(c); /* the connector's CLOSE */
        negio__econn_close(c, NEGIO_CLOSE_ERROR, rc, "%s", negio_conn_error_detail(c->conn));
    } else {
        write_refused(c, rc, data, len, level);
    }
}

/* Hands the held writes to the connector in their order, once it can take them. */
void negio__release_held(negio_econn *c)
{
    while (c->held != NULL && c->established && !c->step_running && !c->close_started) {
        negio__cmd *m = c->held;
        c->held = m->next;
        if (c->held == NULL)
            c->held_tail = &c->held;
        negio__do_write(c, m->data, m->len, m->level);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c); /* the command's */
        negio__free(m);
    }
}

/* ---- turns: what the loop thread wrote or closed outside the connection's own callbacks ---- *
 *
 * A callback of connection A that writes to connection B on the same loop (a forwarding server)
 * must not run B's processing: B's callbacks would run inside A's (libuv never calls back from
 * inside the call that started the work). The message waits in B's held writes, behind any
 * already there, and B gets a turn in this iteration's check phase, before the flush pass, where
 * the held writes go to the connector in order and B's output leaves with the rest. A close
 * waits for the turn in the same way, after the writes made before it. No thread hop and no
 * system call: the list belongs to the loop thread, and the idle handle keeps the loop from
 * sleeping in poll while it is not empty. */

void negio__queue_turn(negio_econn *c)
{
    negio__loop *l = c->l;
    /* a stopping loop has ended every connection: what is held is dropped with it */
    if (c->turn || l->stopping)
        return;
    c->turn = 1;
    c->turn_next = NULL;
    negio_econn_ref(c); /* the list's */
    if (l->turns_tail != NULL)
        l->turns_tail->turn_next = c;
    else
        l->turns = c;
    l->turns_tail = c;
    negio__keep_awake(l);
}

void negio__ask_close(negio_econn *c, uint32_t status)
{
    /* as a close made at once would: no application write is taken after it */
    atomic_store(&c->closed, 1);
    if (!c->close_asked) {
        c->close_asked = 1;
        c->close_status = status;
    }
    negio__queue_turn(c);
}

void negio__run_turns(negio__loop *l)
{
    negio_econn *list = l->turns;
    l->turns = l->turns_tail = NULL; /* a turn asked for during these comes next iteration */
    while (list != NULL) {
        negio_econn *c = list;
        list = c->turn_next;
        c->turn_next = NULL;
        c->turn = 0;
        if (c->close_asked) {
            c->close_asked = 0;
            negio__do_graceful_close(c, c->close_status); /* the held writes go first */
        } else {
            negio__release_held(c); /* unless a step runs, or not yet established */
        }
        negio_econn_unref(c);
    }
}

/* The loop is stopping and every connection has ended: drop the list's references. */
void negio__drop_turns(negio__loop *l)
{
    while (l->turns != NULL) {
        negio_econn *c = l->turns;
        l->turns = c->turn_next;
        c->turn_next = NULL;
        c->turn = 0;
        negio_econn_unref(c);
    }
    l->turns_tail = NULL;
}
