#include <stdarg.h>
#include <stdio.h>

#include "base/config.h"

#define CODES(X)                                                                                   \
    X(NEGIO_OK, "success")                                                                         \
    X(NEGIO_ERR_INVALID, "invalid argument")                                                       \
    X(NEGIO_ERR_STATE, "call not valid in the current state")                                      \
    X(NEGIO_ERR_LEVEL, "protection level below the peer's minimum")                                \
    X(NEGIO_ERR_MSG_SIZE, "message larger than the maximum message size")                          \
    X(NEGIO_ERR_BUSY, "send queue full; retry later")                                              \
    X(NEGIO_ERR_ADDRESS, "address could not be parsed, resolved, bound or reached")                \
    X(NEGIO_ERR_SYSTEM, "a system call failed")                                                    \
    X(NEGIO_ERR_IDENTITY, "no acceptable local account for this peer")                             \
    X(NEGIO_ERR_PERMISSION, "this process may not switch identities")                              \
    X(NEGIO_ERR_FATAL, "fatal error")                                                              \
    X(NEGIO_ERR_NOMEM, "out of memory")                                                            \
    X(NEGIO_ERR_PROTOCOL, "protocol violation by the peer")                                        \
    X(NEGIO_ERR_TOO_LARGE, "announced length over the configured limit")                           \
    X(NEGIO_ERR_TRUNCATED, "stream ended without a protected close")                               \
    X(NEGIO_ERR_HANDSHAKE, "security context could not be established")                            \
    X(NEGIO_ERR_PEER, "the peer reported a handshake failure")                                     \
    X(NEGIO_ERR_POLICY, "refused by security policy")                                              \
    X(NEGIO_ERR_DOWNGRADE, "frame below the minimum protection level")                             \
    X(NEGIO_ERR_INTEGRITY, "message failed integrity or confidentiality check")                    \
    X(NEGIO_ERR_CREDENTIALS, "credentials could not be acquired")                                  \
    X(NEGIO_ERR_CLOSED, "connection closed")                                                       \
    X(NEGIO_ERR_REJECTED, "the peer closed the connection with an error status")                   \
    X(NEGIO_ERR_BINDING, "authentication not bound to this TLS channel (man in the middle?)")

const char *negio_strerror(int code)
{
#define TEXT(c, t)                                                                                 \
    case c:                                                                                        \
        return t;
    switch (code) {
        CODES(TEXT)
    default:
        return "unknown error";
    }
#undef TEXT
}

const char *negio_err_name(int code)
{
#define NAME(c, t)                                                                                 \
    case c:                                                                                        \
        return #c;
    switch (code) {
        CODES(NAME)
    default:
        return "NEGIO_ERR_UNKNOWN";
    }
#undef NAME
}

void negio__detail(char *detail, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, NEGIO__DETAIL_MAX, fmt, ap);
    va_end(ap);
}

unsigned negio_version(void)
{
    return NEGIO_VERSION_NUMBER;
}

const char *negio_version_string(void)
{
    return NEGIO_VERSION_STRING;
}
