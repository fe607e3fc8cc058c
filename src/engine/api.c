/* What an application calls on a connection, from any thread (include/negio/engine.h): writes
 * and closes, checked against this side's and the peer's limits and counted under hard_limit on
 * the calling thread, then run on the connection's loop (write.c, conn.c), at once when called
 * there or as a command from elsewhere (loop.c); and the handle's accessors. */
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "conn/write_check.h"
#include "engine/engine_internal.h"
#include "negio/identity.h"

const char *negio_close_reason_name(negio_close_reason reason)
{
    switch (reason) {
    case NEGIO_CLOSE_CLEAN:
        return "clean";
    case NEGIO_CLOSE_TRUNCATED:
        return "truncated";
    case NEGIO_CLOSE_TIMEOUT:
        return "timeout";
    case NEGIO_CLOSE_ERROR:
        return "error";
    case NEGIO_CLOSE_REFUSED:
        return "refused";
    case NEGIO_CLOSE_EXPIRED:
        return "expired";
    default:
        return "unknown";
    }
}

void *negio_econn_user(const negio_econn *c)
{
    return c->user;
}

void negio_econn_set_user(negio_econn *c, void *user)
{
    c->user = user;
}

const struct sockaddr *negio_econn_peer_addr(const negio_econn *c)
{
    return (const struct sockaddr *)&c->peer;
}

const struct sockaddr *negio_econn_via_addr(const negio_econn *c)
{
    return (const struct sockaddr *)&c->via;
}

int negio_econn_local_addr(const negio_econn *c, struct sockaddr_storage *out)
{
    if (c == NULL || out == NULL)
        return NEGIO_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    int len = sizeof(*out);
    /* a connect in progress has a socket, bound to an address that may not be the one used */
    if (!c->tcp_ready || c->state == ST_CONNECTING || uv_is_closing((const uv_handle_t *)&c->tcp) ||
        uv_tcp_getsockname(&c->tcp, (struct sockaddr *)out, &len) != 0) {
        memset(out, 0, sizeof(*out));
        return NEGIO_ERR_STATE;
    }
    return NEGIO_OK;
}

size_t negio_econn_queued(const negio_econn *c)
{
    return atomic_load(&c->queued) + atomic_load(&c->unsent);
}

int negio_econn_auth_info(const negio_econn *c, negio_auth_info *info)
{
    if (c == NULL || info == NULL)
        return NEGIO_ERR_INVALID;
    if (c->conn == NULL || c->step_running)
        return NEGIO_ERR_STATE;
    return negio_conn_auth_info(c->conn, info);
}

negio_delegated *negio_econn_delegated(const negio_econn *c)
{
    if (c->conn == NULL || c->step_running)
        return NULL;
    return negio_conn_delegated(c->conn);
}

unsigned negio_engine_connections(const negio_engine *e)
{
    return atomic_load(&e->conns);
}

/* The facts negio__write_check needs, as any thread sees them. */
static negio__write_limits write_limits(const negio_econn *c)
{
    uint64_t peer = atomic_load(&c->peer_policy);
    negio__write_limits l = {
        .tls_only = c->tls_only,
        .max_message = c->max_message,
        .peer_known = (peer & PEER_KNOWN) != 0,
        .peer_min = (negio_level)(peer >> 32 & 0xff),
        .peer_max_message = (uint32_t)peer,
    };
    return l;
}

/* Counts LEN more bytes as held by C unless that passes the hard limit; 0 if it would. Writers
 * on several threads each see the others' bytes: the count is raised first, then checked. */
static int reserve(negio_econn *c, size_t len)
{
    size_t before = atomic_fetch_add(&c->queued, len);
    if (before + len + atomic_load(&c->unsent) <= c->e->o.hard_limit)
        return 1;
    atomic_fetch_sub(&c->queued, len);
    return 0;
}

int negio_engine_send(negio_engine *e, negio_econn *c, const void *data, size_t len,
                      negio_level level)
{
    if (e == NULL || c == NULL || c->e != e || (data == NULL && len > 0) ||
        level < NEGIO_LEVEL_DEFAULT || level > NEGIO_LEVEL_SEAL)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&c->closed))
        return NEGIO_ERR_CLOSED;
    if (level == NEGIO_LEVEL_DEFAULT)
        level = c->default_level;
    negio__write_limits limits = write_limits(c);
    int rc = negio__write_check(&limits, len, level);
    if (rc < 0)
        return rc;
    if (len > e->o.hard_limit)
        return NEGIO_ERR_MSG_SIZE; /* it would never fit */
    if (!reserve(c, len))
        return NEGIO_ERR_BUSY;
    int here = negio__on_loop_thread(c->l);
    /* From a callback of C itself the message goes to the connector now (from on_message it
     * leaves when the round ends). Anywhere else on C's loop thread, a callback of another
     * connection, it waits for C's turn later in this iteration (write.c): none of C's callbacks
     * may run inside the caller's. */
    int own = here && c->in_callback > 0;
    if (own && !negio__must_hold(c)) {
        negio__do_write(c, data, len, level);
        return NEGIO_OK;
    }
    negio__cmd *m = negio__new_cmd(CMD_WRITE, c, len);
    if (m == NULL) {
        atomic_fetch_sub(&c->queued, len);
        return NEGIO_ERR_NOMEM;
    }
    if (len)
        memcpy(m->data, data, len);
    m->level = level;
    negio_econn_ref(c); /* the command's */
    if (here) {
        negio__hold(c, m);
        negio__queue_turn(c);
    } else {
        negio__post(c->l, m);
    }
    return NEGIO_OK;
}

int negio_engine_write(negio_econn *c, const void *data, size_t len)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    return negio_engine_send(c->e, c, data, len, NEGIO_LEVEL_DEFAULT);
}

int negio_engine_close(negio_econn *c, uint32_t status)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&c->closed))
        return NEGIO_ERR_CLOSED;
    if (negio__on_loop_thread(c->l)) {
        /* as a write is (negio_engine_send) */
        if (c->in_callback > 0)
            negio__do_graceful_close(c, status);
        else
            negio__ask_close(c, status);
        return NEGIO_OK;
    }
    negio__cmd *m = negio__new_cmd(CMD_CLOSE, c, 0);
    if (m == NULL)
        return NEGIO_ERR_NOMEM;
    m->status = status;
    negio_econn_ref(c);
    negio__post(c->l, m);
    return NEGIO_OK;
}
