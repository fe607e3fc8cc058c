/* A connection's one timer, as its deadlines: the handshake deadline until established, then
 * the idle timeout and the end of the security context (close_at_context_expiry). The close
 * deadlines are set where a close starts (conn.c). */
#include "engine/engine_internal.h"

/* Established: the timer is due at the earlier of the idle deadline (from the last read) and the
 * context's end. Nothing to do per read but note the time. */
void negio__arm_established_timer(negio_econn *c)
{
    uint64_t now = uv_now(&c->l->uv), due = UINT64_MAX;
    uint32_t idle = c->e->o.idle_timeout_ms;
    if (idle)
        due = c->last_active + idle;
    if (c->expires_at && c->expires_at < due)
        due = c->expires_at;
    if (due != UINT64_MAX)
        uv_timer_start(&c->timer, negio__on_timeout, due > now ? due - now : 0, 0);
}

void negio__on_timeout(uv_timer_t *t)
{
    negio_econn *c = t->data;
    if (!c->established) {
        /* a step still on a worker is a GSS call, most often one waiting on the KDC */
        negio__econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "handshake did not complete within %u ms%s",
                           (unsigned)c->e->o.handshake_timeout_ms,
                           c->step_running
                               ? " (a GSS-API step was still running: waiting on the KDC, or "
                                 "on credentials)"
                               : "");
        return;
    }
    uint64_t now = uv_now(&c->l->uv);
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
