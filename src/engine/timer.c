/* A connection's one timer, as its deadlines: a client's connect deadline (connect.c), the
 * handshake deadline until established, then the idle timeout and the end of the security
 * context (close_at_context_expiry). The close deadlines are set where a close starts (conn.c).
 * Every deadline is reckoned in the loop's time (negio__now), which the test build can move
 * forward (negio__engine_advance_clock). */
#include <pthread.h>

#include "engine/engine_internal.h"

int negio__timer_start(negio_econn *c, uv_timer_cb cb, uint64_t ms)
{
    c->timer_cb = cb;
    return uv_timer_start(&c->timer, cb, ms, 0);
}

/* Established: the timer is due at the earlier of the idle deadline (from the last read) and the
 * context's end. Nothing to do per read but note the time. */
void negio__arm_established_timer(negio_econn *c)
{
    uint64_t now = negio__now(c->l), due = UINT64_MAX;
    uint32_t idle = c->e->o.idle_timeout_ms;
    if (idle)
        due = c->last_active + idle;
    if (c->expires_at && c->expires_at < due)
        due = c->expires_at;
    if (due != UINT64_MAX)
        negio__timer_start(c, negio__on_timeout, due > now ? due - now : 0);
}

void negio__on_timeout(uv_timer_t *t)
{
    negio_econn *c = t->data;
    if (!c->established) {
        /* the peer refused, and the step explaining its report (which may ask DNS and the KDC)
         * is still running: the refusal is what happened, not a timeout */
        const char *held = c->step_running ? negio_conn_peer_refusal(c->conn) : NULL;
        if (held != NULL) {
            negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_PEER,
                               "peer reported: %s (not explained further: the explanation, which "
                               "asks DNS and the KDC, was still running at the handshake "
                               "deadline of %u ms)",
                               held[0] ? held : "(no reason)",
                               (unsigned)c->e->o.handshake_timeout_ms);
            return;
        }
        /* a step still on a worker is a GSS call, most often one waiting on the KDC */
        negio__econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "handshake did not complete within %u ms%s",
                           (unsigned)c->e->o.handshake_timeout_ms,
                           c->step_running
                               ? " (a GSS-API step was still running: waiting on the KDC, or "
                                 "on credentials)"
                               : "");
        return;
    }
    uint64_t now = negio__now(c->l);
    uint32_t idle = c->e->o.idle_timeout_ms;
    if (c->expires_at && now >= c->expires_at) {
        /* the peer hears it in a protected close with a status of its own (PROTOCOL.md 6.8) */
        negio_conn_close(c->conn, NEGIO_STATUS_EXPIRED, "the security context expired");
        negio__flush(c);
        negio__econn_close(
            c, NEGIO_CLOSE_EXPIRED, 0,
            "the security context expired (its Kerberos ticket ended); the peer must "
            "authenticate again");
    } else if (idle && now - c->last_active >= idle) {
        negio__econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "idle for %u ms", (unsigned)idle);
    } else {
        negio__arm_established_timer(c);
    }
}

#ifdef NEGIO_TEST_HOOKS

void negio__engine_advance_clock(negio_engine *e, uint64_t ms)
{
    pthread_mutex_lock(&e->lock);
    e->clock_pending = e->loops_running;
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->loops_running; i++) {
        negio__loop *l = &e->loops[i];
        pthread_mutex_lock(&l->lock);
        l->clock_ask += ms;
        pthread_mutex_unlock(&l->lock);
        negio__signal_loop(l, LOOP_CLOCK);
    }
    pthread_mutex_lock(&e->lock);
    while (e->clock_pending > 0)
        pthread_cond_wait(&e->done, &e->lock);
    pthread_mutex_unlock(&e->lock);
}

/* The stamps (last_active, expires_at) are in the loop's time already; a running timer was set
 * for a span of real time, so it is set again for what is left of that span less MS. */
void negio__loop_move_clock(negio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t ms = l->clock_ask;
    l->clock_ask = 0;
    pthread_mutex_unlock(&l->lock);
    l->clock_skew += ms;
    for (negio_econn *c = l->conns; c != NULL; c = c->next) {
        if (!c->timer_ready || !uv_is_active((uv_handle_t *)&c->timer))
            continue;
        uint64_t left = uv_timer_get_due_in(&c->timer);
        negio__timer_start(c, c->timer_cb, left > ms ? left - ms : 0);
    }
    negio_engine *e = l->e;
    pthread_mutex_lock(&e->lock);
    e->clock_pending--;
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->lock);
}

#endif /* NEGIO_TEST_HOOKS */
