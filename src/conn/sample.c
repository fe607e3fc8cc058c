/* The gss-sample profile: the conversation of MIT krb5's src/appl/gss-sample programs
 * (docs/PROTOCOL.md appendix A), for interoperability. */
#include <stdio.h>
#include <string.h>

#include "conn/conn_internal.h"

/* Token framing: [flags u8][length u32 BE][token]. */

#define S_NOOP 0x01u
#define S_CONTEXT 0x02u
#define S_DATA 0x04u
#define S_MIC 0x08u
#define S_CONTEXT_NEXT 0x10u
#define S_WRAPPED 0x20u
#define S_ENCRYPTED 0x40u
#define S_SEND_MIC 0x80u

static int sample_put_token(negio_conn *c, uint8_t flags, const uint8_t *tok, size_t len)
{
    int rc;
    if ((rc = negio__buf_append(&c->out, &flags, 1)) < 0 ||
        (rc = negio__buf_append_u32(&c->out, (uint32_t)len)) < 0 ||
        (rc = negio__buf_append(&c->out, tok, len)) < 0)
        return rc;
    return 0;
}

/* No policy is exchanged: the peer accepts what it accepts, our own limits stand in for its.
 * A message is one token, never split, and a gss-sample receiver (negio's) refuses a token over
 * its max_frame: a message must fit one with room for the mechanism's overhead, and a write
 * that does not fails locally (NEGIO_ERR_MSG_SIZE) rather than end the conversation there. */
static uint32_t sample_max_message(const negio_conn *c)
{
    uint32_t fits = c->cfg.limits.max_frame - NEGIO__FRAME_OVERHEAD;
    return c->cfg.limits.max_message < fits ? c->cfg.limits.max_message : fits;
}

static void sample_no_policy(negio_conn *c)
{
    c->peer_policy = 1;
    c->peer_min = NEGIO_LEVEL_NONE;
    c->peer_default = c->cfg.default_level;
    c->peer_max_frame = c->cfg.limits.max_frame;
    c->peer_max_message = sample_max_message(c);
}

/* Client: one message as DATA|SEND_MIC, wrapped (and encrypted at seal) unless at none; the
 * plaintext is kept until the server's MIC over it has been verified. */
static int sample_put_message(negio_conn *c, const uint8_t *data, size_t len, negio_level level)
{
    int rc;
    if (c->cfg.role != NEGIO_ROLE_CLIENT)
        return negio__conn_fail(c, NEGIO_ERR_STATE,
                                "a gss-sample server only answers; it sends no messages");
    if ((rc = negio__buf_append_u32(&c->sample_sent, (uint32_t)len)) < 0 ||
        (rc = negio__buf_append(&c->sample_sent, data, len)) < 0)
        return negio__conn_fail(c, rc, "out of memory");
    uint8_t flags = S_DATA | S_SEND_MIC;
    if (level == NEGIO_LEVEL_NONE)
        return sample_put_token(c, flags, data, len) < 0
                   ? negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory")
                   : 0;
    flags |= S_WRAPPED | (level == NEGIO_LEVEL_SEAL ? S_ENCRYPTED : 0);
    negio__buf_clear(&c->scratch);
    rc = negio__gss_wrap(c->gss, level == NEGIO_LEVEL_SEAL, data, len, &c->scratch, c->detail);
    if (rc < 0)
        return negio__conn_fail(c, rc, NULL);
    rc = sample_put_token(c, flags, negio__buf_data(&c->scratch), negio__buf_size(&c->scratch));
    negio__buf_clear(&c->scratch);
    return rc < 0 ? negio__conn_fail(c, rc, "out of memory") : 0;
}

/* Server: a message token. Its level is what the token proves; the reply is a MIC of the
 * plaintext when asked for, else an empty NOOP (as gss-server does). */
static int sample_on_data(negio_conn *c, uint8_t flags, const uint8_t *tok, size_t len,
                          negio_event *ev)
{
    const uint8_t *msg = tok;
    size_t mlen = len;
    negio_level level = NEGIO_LEVEL_NONE;
    int rc;
    if (flags & S_WRAPPED) {
        uint8_t *plain;
        int conf = 0;
        if (len < MIN_TOKEN) /* see unprotect(): gss-ntlmssp's malloc(len - 16) */
            return negio__conn_fail(c, NEGIO_ERR_INTEGRITY, "wrap token of %zu bytes is too short",
                                    len);
        rc = negio__gss_unwrap(c->gss, tok, len, &plain, &mlen, &c->plain, &conf, c->detail);
        if (rc < 0)
            return negio__conn_fail(c, rc, NULL);
        if ((flags & S_ENCRYPTED) && !conf)
            return negio__conn_fail(
                c, NEGIO_ERR_INTEGRITY,
                "message flagged ENCRYPTED arrived in an integrity-only wrap token");
        msg = plain;
        /* confidentiality is claimed only where the context negotiated it (its keys were then
         * checked for strength); gss-ntlmssp reports conf_state 1 regardless */
        level = conf && negio__gss_has_conf(c->gss) ? NEGIO_LEVEL_SEAL : NEGIO_LEVEL_SIGN;
    }
    /* gss-client -nw leaves ENCRYPTED set on a plaintext message: the flag proves nothing and
     * cannot raise the level, which comes from the token alone */
    if (level < c->cfg.min_level)
        return negio__conn_fail(c, NEGIO_ERR_DOWNGRADE, "%s message received, minimum is %s",
                                negio_level_name(level), negio_level_name(c->cfg.min_level));
    if (mlen > c->cfg.limits.max_message)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
    if (flags & S_SEND_MIC) {
        negio__buf_clear(&c->scratch);
        rc = negio__gss_sign(c->gss, NULL, 0, msg, mlen, &c->scratch, NULL, c->detail);
        if (rc < 0)
            return negio__conn_fail(c, rc, NULL);
        rc = sample_put_token(c, S_MIC, negio__buf_data(&c->scratch), negio__buf_size(&c->scratch));
        negio__buf_clear(&c->scratch);
    } else {
        rc = sample_put_token(c, S_NOOP, NULL, 0);
    }
    if (rc < 0)
        return negio__conn_fail(c, rc, "out of memory");
    ev->type = NEGIO_EV_MESSAGE;
    ev->level = level;
    ev->data = msg;
    ev->len = mlen;
    return 1;
}

/* Client: the server's answer to the oldest unanswered message. */
static int sample_on_answer(negio_conn *c, uint8_t flags, const uint8_t *tok, size_t len,
                            negio_event *ev)
{
    if (negio__buf_size(&c->sample_sent) < 4)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "an answer to no message");
    const uint8_t *q = negio__buf_data(&c->sample_sent);
    size_t mlen = negio__get_u32(q);
    if (flags == S_NOOP) /* we always ask for a MIC: an empty answer proves nothing */
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                "the server answered without the MIC it was asked for");
    int rc = negio__gss_verify(c->gss, NULL, 0, q + 4, mlen, tok, len, NULL, c->detail);
    if (rc < 0)
        return negio__conn_fail(c, rc, NULL);
    /* the event points at the plaintext, which is dropped on the next call */
    c->in_hold = 0;
    ev->type = NEGIO_EV_ACKNOWLEDGED;
    ev->level = NEGIO_LEVEL_SIGN;
    ev->data = q + 4;
    ev->len = mlen;
    c->sample_ack = 4 + mlen;
    return 1;
}

/* The longest token accepted now: a context token, or a message or MIC once complete. */
static uint32_t token_limit(const negio_conn *c)
{
    return c->phase != PHASE_HANDSHAKE ? c->cfg.limits.max_frame : c->cfg.limits.max_token;
}

static int sample_parse_one(negio_conn *c, negio_event *ev, int *progress)
{
    *progress = 0;
    if (c->sample_ack > 0) {
        negio__buf_consume(&c->sample_sent, c->sample_ack);
        c->sample_ack = 0;
    }
    size_t avail = negio__buf_size(&c->in);
    if (avail < 5 && c->eof && avail == 0 && c->close_sent && !c->closed) {
        /* the client's closing NOOP went out and gss-server closed: the normal end */
        c->closed = 1;
        snprintf(c->detail, sizeof(c->detail), "end of the gss-sample conversation");
        ev->type = NEGIO_EV_CLOSED;
        ev->reason = c->detail;
        return 1;
    }
    if (avail < 5) {
        if (c->eof && !c->closed)
            return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                                    avail ? "stream ended inside a token header"
                                          : "stream ended before the end of the conversation");
        return 0;
    }
    const uint8_t *p = negio__buf_data(&c->in);
    uint8_t flags = p[0];
    uint32_t len = negio__get_u32(p + 1);
    uint64_t limit = token_limit(c);
    if (len > limit)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE, "token of %u bytes announced, limit %llu",
                                (unsigned)len, (unsigned long long)limit);
    if (avail - 5 < len) {
        if (c->eof)
            return negio__conn_fail(c, NEGIO_ERR_TRUNCATED, "stream ended inside a token");
        return 0;
    }
    const uint8_t *tok = p + 5;
    size_t total = 5 + (size_t)len;
    *progress = 1;
    int server = c->cfg.role == NEGIO_ROLE_SERVER;
    int rc;
    if (server && !c->sample_started) {
        /* gss-client's opening: NOOP|CONTEXT_NEXT; a plain NOOP asks for no authentication */
        if (flags == S_NOOP)
            return negio__conn_fail(c, NEGIO_ERR_POLICY,
                                    "the gss-sample client asked for no authentication");
        if (flags != (S_NOOP | S_CONTEXT_NEXT) || len != 0)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                    "expected the opening NOOP|CONTEXT_NEXT token");
        c->sample_started = 1;
        negio__buf_consume(&c->in, total);
        return 0;
    }
    if (c->phase == PHASE_HANDSHAKE) {
        if (flags != S_CONTEXT || len == 0)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                    "expected a context token, got flags 0x%02x", (unsigned)flags);
        if (c->early_input)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                    "context token before the client's first token");
        if (++c->rounds > c->cfg.limits.max_rounds)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "more than %u handshake rounds",
                                    (unsigned)c->cfg.limits.max_rounds);
        c->hs_hold = total; /* the token stays where it is until the step has used it */
        c->hs_at = 5;
        c->step_pending = 1;
        return 0;
    }
    if (server) {
        if (flags == S_NOOP && len == 0) { /* the end of the conversation: unprotected */
            negio__buf_consume(&c->in, total);
            c->closed = 1;
            snprintf(c->detail, sizeof(c->detail), "end of the gss-sample conversation");
            ev->type = NEGIO_EV_CLOSED;
            ev->reason = c->detail;
            return 1;
        }
        if (!(flags & S_DATA) || (flags & ~(S_DATA | S_WRAPPED | S_ENCRYPTED | S_SEND_MIC)))
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "unexpected token flags 0x%02x",
                                    (unsigned)flags);
        rc = sample_on_data(c, flags, tok, len, ev);
    } else {
        if (flags != S_MIC && flags != S_NOOP)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "unexpected token flags 0x%02x",
                                    (unsigned)flags);
        rc = sample_on_answer(c, flags, tok, len, ev);
    }
    if (rc < 0)
        return rc;
    if (c->plain == NULL && ev->type == NEGIO_EV_MESSAGE)
        c->in_hold = total; /* an unwrapped message points into the input buffer */
    else
        negio__buf_consume(&c->in, total);
    return rc;
}

/* A whole token is buffered (its header is 5 bytes, flags and length), or a header announcing
 * more than token_limit, which sample_parse_one refuses at once rather than after its body. */
static int unit_ready(const negio_conn *c)
{
    size_t avail = negio__buf_size(&c->in) - c->in_hold;
    if (avail < 5)
        return 0;
    uint32_t len = negio__get_u32(negio__buf_data(&c->in) + c->in_hold + 1);
    return len > token_limit(c) || avail - 5 >= len;
}

/* gss-client opens with an empty NOOP|CONTEXT_NEXT, then CONTEXT tokens */
static int put_token(negio_conn *c, const uint8_t *tok, size_t len, unsigned flags)
{
    int rc;
    if (((flags & NEGIO__TOKEN_FIRST) &&
         (rc = sample_put_token(c, S_NOOP | S_CONTEXT_NEXT, NULL, 0)) < 0) ||
        (rc = sample_put_token(c, S_CONTEXT, tok, len)) < 0)
        return rc;
    return 0;
}

/* No error frame in gss-sample: a mechanism's error token, if any, as a context token. */
static void put_error(negio_conn *c, const uint8_t *tok, size_t len, const char *reason)
{
    (void)reason;
    c->hs_error_sent = 1;
    if (len > 0)
        (void)sample_put_token(c, S_CONTEXT, tok, len);
}

/* The gss-sample conversation has no policy exchange. */
static int on_complete(negio_conn *c)
{
    sample_no_policy(c);
    return 0;
}

/* The client ends with an empty NOOP; gss-server just closes. */
static int close_established(negio_conn *c, uint32_t status, const char *reason)
{
    (void)status;
    (void)reason;
    if (c->cfg.role != NEGIO_ROLE_CLIENT)
        return NEGIO_OK;
    return sample_put_token(c, S_NOOP, NULL, 0) < 0
               ? negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory")
               : NEGIO_OK;
}

/* Nothing protected to tell the peer with; before completion not even an error frame. */
static void report(negio_conn *c, int code)
{
    (void)code;
    if (c->phase != PHASE_ESTABLISHED)
        c->hs_error_sent = 1;
}

const negio__profile negio__profile_sample = {
    .parse_one = sample_parse_one,
    .unit_ready = unit_ready,
    .put_token = put_token,
    .put_error = put_error,
    .on_complete = on_complete,
    .put_message = sample_put_message,
    .max_message = sample_max_message, /* before establishment too */
    .close = close_established,
    .report = report,
    .protected_close = 0,
};
