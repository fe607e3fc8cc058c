/* The one rule an application write is checked against before it becomes a frame
 * (docs/PROTOCOL.md section 4.3): the connector applies it in negio_conn_write(), and the engine
 * applies it in negio_engine_send() to writes from any thread, from the same facts published
 * when the connection is established, so that both refuse exactly the same writes.
 *
 * A static inline function rather than a function of libnegio: the engine is a separate library
 * that sees only libnegio's public symbols. */
#ifndef NEGIO_CORE_WRITE_CHECK_H
#define NEGIO_CORE_WRITE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "negio/negio.h"

typedef struct negio__write_limits {
    int tls_only;              /* NEGIO_TRANSPORT_TLS: no GSS-API context, level none only */
    uint32_t max_message;      /* this side's own limit */
    int peer_known;            /* the peer's POLICY is in force (established) */
    negio_level peer_min;      /* the peer's announced minimum level */
    uint32_t peer_max_message; /* the peer's announced max_message */
} negio__write_limits;

/* 0, or why a message of LEN bytes at LEVEL (never NEGIO_LEVEL_DEFAULT) must not be sent:
 * NEGIO_ERR_INVALID (sign or seal inside plain TLS), NEGIO_ERR_MSG_SIZE (over this side's or the
 * peer's max_message), NEGIO_ERR_LEVEL (below the peer's minimum). Before the peer's POLICY
 * arrived only this side's limits apply. */
static inline int negio__write_check(const negio__write_limits *l, size_t len, negio_level level)
{
    if (l->tls_only && level != NEGIO_LEVEL_NONE)
        return NEGIO_ERR_INVALID;
    if (len > l->max_message || (l->peer_known && len > l->peer_max_message))
        return NEGIO_ERR_MSG_SIZE;
    if (l->peer_known && level < l->peer_min)
        return NEGIO_ERR_LEVEL;
    return 0;
}

#endif /* NEGIO_CORE_WRITE_CHECK_H */
