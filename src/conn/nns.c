/* The [MS-NNS] profile: the conversation of .NET's System.Net.Security.NegotiateStream (and WCF's
 * net.tcp, which runs it), for Windows and .NET peers (docs/PROTOCOL.md appendix C). The
 * handshake is the same GSS conversation as negio's own, every token through the same checks
 * (src/gss/peer_token.c), in 5-byte-header handshake messages; then the stream is protected at
 * one level, the one the context's flags say, in data messages, or not framed at all at none. No
 * policy, no transcript, no close message: docs/SECURITY.md section 8.7. */
#include <stdio.h>
#include <string.h>

#include "conn/conn_internal.h"
#include "conn/nns.h"

/* The application data put in one data message: with any mechanism's overhead (under
 * NEGIO__FRAME_OVERHEAD) the payload stays within NEGIO__NNS_DATA_MAX. */
#define NNS_CHUNK (NEGIO__NNS_DATA_MAX - NEGIO__FRAME_OVERHEAD)

/* ---- the bytes (nns.h) ------------------------------------------------------------------- */

void negio__nns_hs_header(uint8_t h[NEGIO__NNS_HS_HDR], uint8_t id, uint16_t len)
{
    h[0] = id;
    h[1] = 1; /* MajorVersion */
    h[2] = 0; /* MinorVersion */
    h[3] = (uint8_t)(len >> 8);
    h[4] = (uint8_t)len;
}

uint16_t negio__nns_hs_length(const uint8_t h[NEGIO__NNS_HS_HDR])
{
    return (uint16_t)(h[3] << 8 | h[4]);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void negio__nns_data_header(uint8_t h[NEGIO__NNS_DATA_HDR], uint32_t len)
{
    put_le32(h, len);
}

uint32_t negio__nns_data_length(const uint8_t h[NEGIO__NNS_DATA_HDR])
{
    return le32(h);
}

void negio__nns_error_encode(uint8_t out[NEGIO__NNS_ERROR_LEN], uint32_t code)
{
    put_le32(out, code);           /* .NET 8 on: ReadInt64LittleEndian, low 32 bits */
    negio__put_u32(out + 4, code); /* .NET Framework to .NET 7: big-endian, low 32 bits */
}

int negio__nns_error_decode(const uint8_t *p, size_t len, uint32_t *code)
{
    *code = 0;
    if (len < NEGIO__NNS_ERROR_LEN)
        return 0;
    /* a big-endian writer leaves bytes 0-3 zero (a 32-bit code in a 64-bit integer); a
     * little-endian one puts the code there (and 00 or FF sign bytes after it) */
    uint32_t low = le32(p);
    *code = low != 0 ? low : negio__get_u32(p + 4);
    return 1;
}

uint32_t negio__nns_error_for(int code, uint32_t gss_status)
{
    switch (code) {
    case NEGIO_ERR_POLICY:
    case NEGIO_ERR_DOWNGRADE:
        return NEGIO__NNS_TRUST_FAILURE;
    case NEGIO_ERR_HANDSHAKE:
        /* GSS failed (its status says how), or the token never reached it (peer_token.c) */
        return gss_status != 0 ? gss_status : NEGIO__NNS_SEC_E_INVALID_TOKEN;
    case NEGIO_ERR_PROTOCOL:
    case NEGIO_ERR_TOO_LARGE:
        return NEGIO__NNS_SEC_E_INVALID_TOKEN;
    case NEGIO_ERR_CREDENTIALS:
        return NEGIO__NNS_SEC_E_NO_CREDENTIALS;
    case NEGIO_ERR_BINDING:
        return NEGIO__NNS_SEC_E_BAD_BINDINGS;
    case NEGIO_ERR_NOMEM:
        return NEGIO__NNS_SEC_E_INSUFFICIENT_MEMORY;
    case NEGIO_ERR_CLOSED:
        return NEGIO__NNS_E_ABORT;
    default:
        return NEGIO__NNS_SEC_E_INTERNAL_ERROR;
    }
}

uint32_t negio__nns_error_for_status(uint32_t status)
{
    return status == NEGIO_STATUS_FORBIDDEN ? NEGIO__NNS_ACCESS_DENIED
           : status == NEGIO_STATUS_EXPIRED ? NEGIO__NNS_SEC_E_CONTEXT_EXPIRED
                                            : NEGIO__NNS_E_FAIL;
}

int negio__nns_error_negio(uint32_t code)
{
    if (code == NEGIO__NNS_TRUST_FAILURE)
        return NEGIO_ERR_POLICY;
    if (code == NEGIO__NNS_ACCESS_DENIED)
        return NEGIO_ERR_REJECTED;
    if (code == NEGIO__NNS_SEC_E_BAD_BINDINGS)
        return NEGIO_ERR_BINDING;
    return NEGIO_ERR_PEER;
}

const char *negio__nns_error_text(uint32_t code)
{
    static const struct {
        uint32_t code;
        const char *text;
    } known[] = {
        {NEGIO__NNS_ACCESS_DENIED, "ERROR_ACCESS_DENIED: access is denied (the peer "
                                   "authenticated this side and refused it: an access list)"},
        {NEGIO__NNS_TRUST_FAILURE, "ERROR_TRUST_FAILURE: the negotiated protection or "
                                   "impersonation level is below what the peer requires"},
        {NEGIO__NNS_E_ABORT, "E_ABORT: the peer gave up before authentication completed"},
        {NEGIO__NNS_E_FAIL, "E_FAIL: unspecified failure"},
        {NEGIO__NNS_SEC_E_INSUFFICIENT_MEMORY, "SEC_E_INSUFFICIENT_MEMORY: out of memory"},
        {0x80090302u, "SEC_E_UNSUPPORTED_FUNCTION: the request is not supported"},
        {0x80090303u, "SEC_E_TARGET_UNKNOWN: the target is unknown or unreachable"},
        {NEGIO__NNS_SEC_E_INTERNAL_ERROR, "SEC_E_INTERNAL_ERROR: the security package failed"},
        {NEGIO__NNS_SEC_E_INVALID_TOKEN, "SEC_E_INVALID_TOKEN: the token was not valid"},
        {0x8009030Au, "SEC_E_QOP_NOT_SUPPORTED: the quality of protection is not supported"},
        {NEGIO__NNS_SEC_E_LOGON_DENIED, "SEC_E_LOGON_DENIED: the logon attempt failed"},
        {0x8009030Du, "SEC_E_UNKNOWN_CREDENTIALS: the credentials were not recognized"},
        {NEGIO__NNS_SEC_E_NO_CREDENTIALS, "SEC_E_NO_CREDENTIALS: no credentials are available"},
        {0x8009030Fu, "SEC_E_MESSAGE_ALTERED: a token was altered"},
        {0x80090310u, "SEC_E_OUT_OF_SEQUENCE: a token arrived out of sequence"},
        {0x80090311u, "SEC_E_NO_AUTHENTICATING_AUTHORITY: no authority could be contacted"},
        {NEGIO__NNS_SEC_E_CONTEXT_EXPIRED, "SEC_E_CONTEXT_EXPIRED: the security context has "
                                           "expired"},
        {0x80090322u, "SEC_E_WRONG_PRINCIPAL: the target principal name is incorrect"},
        {0x80090324u, "SEC_E_TIME_SKEW: the clocks of client and server differ too much"},
        {0x80090328u, "SEC_E_CERT_EXPIRED: the credentials have expired"},
        {NEGIO__NNS_SEC_E_BAD_BINDINGS, "SEC_E_BAD_BINDINGS: the channel bindings do not match"},
        /* .NET's own comment: .NET Core and .NET 5 and 6 sent their internal status number
         * (SecurityStatusPalErrorCode.LogonDenied) instead of the Windows code */
        {21, "SEC_E_LOGON_DENIED (as .NET Core up to .NET 6 numbered it): the logon attempt "
             "failed"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].code == code)
            return known[i].text;
    }
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------ */

static int put_hs(negio_conn *c, uint8_t id, const uint8_t *tok, size_t len)
{
    uint8_t h[NEGIO__NNS_HS_HDR];
    size_t start = negio__buf_size(&c->out);
    negio__nns_hs_header(h, id, (uint16_t)len);
    int rc;
    if ((rc = negio__buf_append(&c->out, h, sizeof(h))) < 0 ||
        (rc = negio__buf_append(&c->out, tok, len)) < 0) {
        c->out.len = c->out.off + start; /* never half a message */
        return rc;
    }
    return 0;
}

/* A HandshakeError saying CODE, once (best effort: the connection is failing). */
static void put_error_code(negio_conn *c, uint32_t code)
{
    uint8_t body[NEGIO__NNS_ERROR_LEN];
    c->hs_error_sent = 1;
    negio__nns_error_encode(body, code);
    (void)put_hs(c, NEGIO__NNS_HANDSHAKE_ERROR, body, sizeof(body));
}

/* 3.1.5.1 and 3.2.5.2: a step that did not complete the context sends HandshakeInProgress; the
 * final token waits in SCRATCH until on_complete has checked the result, since a refused result
 * is answered with a HandshakeError instead. */
static int put_token(negio_conn *c, const uint8_t *tok, size_t len, unsigned flags)
{
    if (len > NEGIO__NNS_HS_MAX)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE,
                                "this side's handshake token of %zu bytes does not fit a "
                                "handshake message (at most 65535 bytes, [MS-NNS] 2.2.1)",
                                len);
    if (flags & NEGIO__TOKEN_LAST) {
        negio__buf_clear(&c->scratch);
        return negio__buf_append(&c->scratch, tok, len);
    }
    if (c->nns.peer_done)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                "the peer ended the handshake (HandshakeDone) but this side's "
                                "context needs another round");
    return put_hs(c, NEGIO__NNS_HANDSHAKE_IN_PROGRESS, tok, len);
}

/* The stream's level, read from the context's flags as .NET reads them (IsEncrypted, IsSigned). */
static negio_level flags_level(unsigned flags)
{
    return (flags & NEGIO_FLAG_CONF)    ? NEGIO_LEVEL_SEAL
           : (flags & NEGIO_FLAG_INTEG) ? NEGIO_LEVEL_SIGN
                                        : NEGIO_LEVEL_NONE;
}

static int on_complete(negio_conn *c)
{
    negio_auth_info info = {.size = sizeof(info)};
    negio__gss_info(c->gss, &info);
    c->stream_level = flags_level(info.flags);
    c->nns.ntlm = info.mech == NEGIO_MECH_NTLM;
    if (c->stream_level < c->cfg.min_level) {
        negio__buf_clear(&c->scratch);
        /* report() answers with ERROR_TRUST_FAILURE (3.1.5.1, 3.2.5.2) */
        return negio__conn_fail(c, NEGIO_ERR_POLICY,
                                "the negotiated protection level is %s, this side requires at "
                                "least %s",
                                negio_level_name(c->stream_level),
                                negio_level_name(c->cfg.min_level));
    }
    int server = c->cfg.role == NEGIO_ROLE_SERVER;
    /* the server always ends with HandshakeDone, empty or not; the client ends with its final
     * token, unless the server's HandshakeDone brought the token that completed it: the server
     * is done reading handshake messages then, and .NET sends nothing either */
    if (server || !c->nns.peer_done) {
        /* where it starts, in case the application refuses the client before it leaves */
        c->nns.done_at = c->out_taken + negio__buf_size(&c->out);
        int rc = put_hs(c, NEGIO__NNS_HANDSHAKE_DONE, negio__buf_data(&c->scratch),
                        negio__buf_size(&c->scratch));
        negio__buf_clear(&c->scratch);
        if (rc < 0)
            return negio__conn_fail(c, rc, "out of memory");
        c->nns.done_sent = 1;
    }
    negio__buf_clear(&c->scratch);
    /* nothing announced: the peer takes the stream's level and any size (data messages split) */
    c->peer_min = NEGIO_LEVEL_NONE;
    c->peer_default = c->stream_level;
    c->peer_max_frame = c->cfg.limits.max_frame;
    c->peer_max_message = c->cfg.limits.max_message;
    /* a server is done once its HandshakeDone is out (3.2.5.2); a client once the server's
     * HandshakeDone is in (3.1.5.3, 3.1.5.4) */
    c->peer_policy = server || c->nns.peer_done;
    return 0;
}

/* Appends LEN bytes of DATA as data messages of at most NNS_CHUNK bytes of plaintext each. */
static int put_message(negio_conn *c, const uint8_t *data, size_t len, negio_level level)
{
    (void)level; /* one level per stream: conn.c let through only the stream's */
    if (len == 0)
        return 0; /* nothing on the wire, as .NET's Write of nothing */
    if (c->stream_level == NEGIO_LEVEL_NONE) {
        /* 2.2.2: without signing or sealing the data is written as it is, unframed */
        int rc = negio__buf_append(&c->out, data, len);
        return rc < 0 ? negio__conn_fail(c, rc, "out of memory") : 0;
    }
    size_t frames = len / NNS_CHUNK + 1;
    if (negio__buf_reserve(&c->out, len + frames * (NEGIO__NNS_DATA_HDR + NEGIO__FRAME_OVERHEAD)) <
        0)
        return negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory");
    size_t start = negio__buf_size(&c->out);
    while (len > 0) {
        size_t n = len < NNS_CHUNK ? len : NNS_CHUNK;
        size_t at = negio__buf_size(&c->out);
        int rc = negio__buf_append_u32(&c->out, 0);
        if (rc == 0 && c->stream_level == NEGIO_LEVEL_SEAL)
            rc = negio__gss_seal(c->gss, data, n, &c->out, c->detail);
        else if (rc == 0 && c->nns.ntlm) {
            /* NTLM at sign: signature || plaintext, as Windows' MakeSignature lays it out and
             * .NET reads it; gss-ntlmssp's wrap would seal */
            rc = negio__gss_sign(c->gss, NULL, 0, data, n, &c->out, NULL, c->detail);
            if (rc == 0)
                rc = negio__buf_append(&c->out, data, n);
        } else if (rc == 0) {
            /* Kerberos at sign: a wrap token without confidentiality (RFC 4121 4.2.6.2), as .NET
             * on Linux (gss_wrap) and .NET 8 on Windows (EncryptMessage, SECQOP_WRAP_NO_ENCRYPT)
             * send it */
            rc = negio__gss_wrap(c->gss, 0, data, n, &c->out, c->detail);
        }
        size_t plen = negio__buf_size(&c->out) - at - NEGIO__NNS_DATA_HDR;
        if (rc == 0 && plen > NEGIO__NNS_DATA_MAX) {
            snprintf(c->detail, sizeof(c->detail),
                     "a protected piece of %zu bytes exceeds a data message (0xFC30 bytes)", plen);
            rc = NEGIO_ERR_INTEGRITY;
        }
        if (rc < 0) {
            c->out.len = c->out.off + start; /* the peer never sees part of a write */
            return negio__conn_fail(c, rc, rc == NEGIO_ERR_NOMEM ? "out of memory" : NULL);
        }
        negio__nns_data_header(c->out.p + c->out.off + at, (uint32_t)plen);
        data += n;
        len -= n;
    }
    return 0;
}

/* A server that refuses the client it authenticated (STATUS not 0: an access list, say) while
 * its HandshakeDone is still whole in the output, nothing after it taken: a HandshakeError of
 * the status's code goes in its place (3.2.5.2 lets a server refuse the final result so), and
 * the client learns why. 1 if so. */
static int refuse_in_place(negio_conn *c, uint32_t status)
{
    if (c->cfg.role != NEGIO_ROLE_SERVER || !c->nns.done_sent || c->nns.data_seen ||
        c->out_taken > c->nns.done_at)
        return 0;
    c->out.len = c->out.off + (size_t)(c->nns.done_at - c->out_taken);
    put_error_code(c, negio__nns_error_for_status(status));
    return 1;
}

/* No close message (docs/PROTOCOL.md C.6). A refusal ends the conversation here, with a
 * HandshakeError if it is not too late (refuse_in_place). A normal close under half-close ends
 * this side's sending only: the owner shuts down the sending half of the stream once the output
 * is sent (NEGIO_WANT_SHUTDOWN), and the peer's messages are read until its own end. Otherwise
 * the conversation ends here for this side (NEGIO_EV_CLOSED next), and the application ends the
 * stream. */
static int close_established(negio_conn *c, uint32_t status, const char *reason)
{
    (void)reason;
    if (status == 0 && c->cfg.half_close) {
        c->shut_send = 1;
        return NEGIO_OK;
    }
    if (status != 0)
        (void)refuse_in_place(c, status);
    c->nns.closing = 1;
    return NEGIO_OK;
}

/* The error code reaches the peer only during the handshake, in a HandshakeError; after it, the
 * stream has no message to say anything with. */
static void report(negio_conn *c, int code)
{
    if (c->hs_error_sent || c->phase == PHASE_ESTABLISHED ||
        (c->cfg.role == NEGIO_ROLE_SERVER && c->nns.done_sent))
        return;
    uint32_t gss_status = code == NEGIO_ERR_HANDSHAKE ? negio__gss_windows_status(c->gss) : 0;
    put_error_code(c, negio__nns_error_for(code, gss_status));
}

/* The handshake failing here: report() follows with the code, except for a local close, which
 * the core ends without a report. A mechanism's error token has no place in this profile. */
static void put_error(negio_conn *c, const uint8_t *tok, size_t len, const char *reason)
{
    (void)tok;
    (void)len;
    (void)reason;
    if (c->close_sent && !c->hs_error_sent)
        put_error_code(c, NEGIO__NNS_E_ABORT);
}

/* ---- input ------------------------------------------------------------------------------- */

static int on_hs_error(negio_conn *c, const uint8_t *body, size_t len)
{
    uint32_t code;
    c->hs_error_sent = 1; /* the peer gave up: nothing to answer */
    if (!negio__nns_error_decode(body, len, &code))
        return negio__conn_fail(c, NEGIO_ERR_PEER,
                                "the peer reported a handshake error without a code "
                                "(a payload of %zu bytes)",
                                len);
    const char *text = negio__nns_error_text(code);
    return negio__conn_fail(c, negio__nns_error_negio(code), "the peer reported 0x%08x %s",
                            (unsigned)code, text != NULL ? text : "(a code negio does not know)");
}

static int truncated(negio_conn *c, size_t avail, const char *inside)
{
    if (avail > 0)
        return negio__conn_fail(c, NEGIO_ERR_TRUNCATED, "stream ended inside a %s", inside);
    return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                            !c->received_any
                                ? "the peer closed the connection before sending anything"
                                : "stream ended during the handshake");
}

/* A handshake message: 3.1.5.2 to 3.1.5.4 (client) and 3.2.5.1 (server). */
static int parse_handshake(negio_conn *c, int *progress)
{
    size_t avail = negio__buf_size(&c->in);
    if (avail < NEGIO__NNS_HS_HDR)
        return c->eof ? truncated(c, avail, "handshake message header") : 0;
    const uint8_t *p = negio__buf_data(&c->in);
    uint8_t id = p[0];
    size_t len = negio__nns_hs_length(p);
    int complete = c->phase != PHASE_HANDSHAKE;
    const char *bad = NULL;
    if (id != NEGIO__NNS_HANDSHAKE_DONE && id != NEGIO__NNS_HANDSHAKE_ERROR &&
        id != NEGIO__NNS_HANDSHAKE_IN_PROGRESS)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                "not a handshake message: MessageId 0x%02x (0x14, 0x15 or 0x16 "
                                "expected)",
                                (unsigned)id);
    if (len > c->cfg.limits.max_token)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE,
                                "handshake message of %zu bytes announced, limit %u", len,
                                (unsigned)c->cfg.limits.max_token);
    if (id != NEGIO__NNS_HANDSHAKE_ERROR) {
        if (c->early_input)
            bad = "handshake message before the client's first token";
        else if (c->nns.peer_done)
            bad = "handshake message after the peer's HandshakeDone";
        else if (id == NEGIO__NNS_HANDSHAKE_IN_PROGRESS && complete)
            bad = "HandshakeInProgress after this side's context was complete";
        else if (id == NEGIO__NNS_HANDSHAKE_IN_PROGRESS && len == 0)
            bad = "empty handshake token";
        else if (id == NEGIO__NNS_HANDSHAKE_DONE && !complete && len == 0)
            bad = "the peer ended the handshake (an empty HandshakeDone) before this side's "
                  "context was complete";
        else if (!complete && c->rounds >= c->cfg.limits.max_rounds)
            return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "more than %u handshake rounds",
                                    (unsigned)c->cfg.limits.max_rounds);
    }
    if (bad != NULL)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "%s", bad);
    if (avail - NEGIO__NNS_HS_HDR < len)
        return c->eof ? truncated(c, avail, "handshake message") : 0;
    *progress = 1;
    size_t total = NEGIO__NNS_HS_HDR + len;
    if (id == NEGIO__NNS_HANDSHAKE_ERROR)
        return on_hs_error(c, p + NEGIO__NNS_HS_HDR, len);
    if (id == NEGIO__NNS_HANDSHAKE_DONE)
        c->nns.peer_done = 1;
    if (complete) {
        /* 3.1.5.4: a client that finished waits for HandshakeDone, whose payload it ignores */
        negio__buf_consume(&c->in, total);
        c->peer_policy = 1;
        return 0;
    }
    c->rounds++;
    c->hs_hold = total; /* the token stays where it is until the step has used it */
    c->hs_at = NEGIO__NNS_HS_HDR;
    c->step_pending = 1;
    return 0;
}

/* Kerberos tokens carry their sequence number in the clear (RFC 4121 4.2.6.1 and 4.2.6.2, bytes
 * 8 to 15 of a MIC or wrap token): each must follow the last, and the first must carry the
 * number the context started with where this side knows it (the fast path: dropping the first
 * messages is caught too; on MIT's path the first message sets it). MIT checks the order only
 * when the client asked for replay or sequence detection, which .NET clients on Linux do not;
 * NTLM checks its own (the signature covers it). 0, or the refusal. */
static int kerberos_order(negio_conn *c, const uint8_t *tok, size_t len, uint64_t *seq)
{
    *seq = 0;
    if (c->nns.ntlm || len < 16 || (tok[0] != 0x04 && tok[0] != 0x05) || tok[1] != 0x04)
        return 1; /* not an RFC 4121 token: the mechanism's own checks stand */
    for (int i = 8; i < 16; i++)
        *seq = *seq << 8 | tok[i];
    uint64_t first;
    if (!c->nns.rseq_known && negio__gss_recv_seq_first(c->gss, &first) && *seq != first)
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                "the first data message carries sequence number %llu where %llu "
                                "was due: earlier messages were dropped on the way",
                                (unsigned long long)*seq, (unsigned long long)first);
    if (c->nns.rseq_known && *seq != c->nns.rseq + 1)
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                "a data message out of sequence (number %llu after %llu): "
                                "replayed, reordered or dropped on the way",
                                (unsigned long long)*seq, (unsigned long long)c->nns.rseq);
    return 0;
}

/* A signed Kerberos payload is either a wrap token without confidentiality (RFC 4121 TOK_ID
 * 05 04; RFC 1964 and 4757 framed, TOK_ID 02 01) or a MIC token followed by the plaintext (RFC
 * 4121 04 04; framed, 01 01). */
static int kerberos_wrapped(const uint8_t *p, size_t n)
{
    if (n >= 2 && p[0] == 0x05 && p[1] == 0x04)
        return 1;
    if (n < 2 || p[0] != 0x60)
        return 0;
    size_t hdr = p[1] < 0x80 ? 2 : p[1] == 0x81 ? 3 : p[1] == 0x82 ? 4 : 0;
    /* the framing, the Kerberos OID (06 09, then 9 bytes), then TOK_ID */
    return hdr != 0 && n > hdr + 12 && p[hdr] == 0x06 && p[hdr + 1] == 0x09 &&
           p[hdr + 11] == 0x02 && p[hdr + 12] == 0x01;
}

/* The length of the MIC token at the front of a signed Kerberos payload of N bytes: an RFC 4121
 * one has this context's MIC length, a framed one says its own in its DER length. */
static int kerberos_mic_length(negio_conn *c, const uint8_t *p, size_t n, size_t *mic)
{
    if (n >= 2 && p[0] == 0x04 && p[1] == 0x04)
        return negio__gss_mic_length(c->gss, mic, c->detail);
    if (n >= 2 && p[0] == 0x60) {
        size_t hdr = p[1] < 0x80 ? 2 : p[1] == 0x81 ? 3 : p[1] == 0x82 ? 4 : 0;
        if (hdr != 0 && n >= hdr) {
            size_t body = hdr == 2 ? p[1] : hdr == 3 ? p[2] : (size_t)p[2] << 8 | p[3];
            *mic = hdr + body;
            if (*mic <= n)
                return 0;
        }
    }
    snprintf(c->detail, sizeof(c->detail),
             "a signed data message that starts with neither a MIC nor a wrap token");
    return NEGIO_ERR_INTEGRITY;
}

/* A signed payload: NTLM and the MIC form of Kerberos (.NET Framework's MakeSignature) carry the
 * MIC, then the plaintext; the wrap form of Kerberos (.NET on Linux, .NET 8 on) is a wrap token. */
static int verify_signed(negio_conn *c, const uint8_t *body, size_t len, const uint8_t **plain,
                         size_t *plen)
{
    size_t mic = 16; /* NTLM: an NTLMSSP_MESSAGE_SIGNATURE ([MS-NLMP] 2.2.2.9) */
    int rc;
    if (!c->nns.ntlm && kerberos_wrapped(body, len)) {
        uint8_t *p;
        int conf = 0;
        rc = negio__gss_unwrap(c->gss, body, len, &p, plen, &c->plain, &conf, c->detail);
        if (rc < 0)
            return negio__conn_fail(c, rc, NULL);
        *plain = p;
        return 0;
    }
    if (!c->nns.ntlm && (rc = kerberos_mic_length(c, body, len, &mic)) < 0)
        return negio__conn_fail(c, rc, NULL);
    if (mic >= len)
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                "a signed data message of %zu bytes holds no data after its "
                                "%zu-byte MIC",
                                len, mic);
    rc = negio__gss_verify(c->gss, NULL, 0, body + mic, len - mic, body, mic, NULL, c->detail);
    if (rc < 0)
        return negio__conn_fail(c, rc, NULL);
    *plain = body + mic;
    *plen = len - mic;
    return 0;
}

enum { REFUSAL_NO, REFUSAL_PART, REFUSAL_WHOLE };

/* 3.1.5.3: a client that refuses the server's final result sends a HandshakeError after the
 * server's HandshakeDone, which the server finds where the first data it reads begins. Framed
 * (sign, seal), 15 01 00 00 08 reads as a data length of 277 bytes whose payload would start
 * with 08, which no mechanism's token does; unframed (none), as application data that begins
 * with those five bytes, which a client's first data therefore cannot (docs/PROTOCOL.md C.2).
 * What the AVAIL bytes at P are: no such message, the beginning of one (more is needed), or a
 * whole one. */
static int refusal_at(const negio_conn *c, const uint8_t *p, size_t avail)
{
    uint8_t h[NEGIO__NNS_HS_HDR];
    if (c->cfg.role != NEGIO_ROLE_SERVER || c->nns.data_seen || avail == 0)
        return REFUSAL_NO;
    negio__nns_hs_header(h, NEGIO__NNS_HANDSHAKE_ERROR, NEGIO__NNS_ERROR_LEN);
    if (memcmp(p, h, avail < sizeof(h) ? avail : sizeof(h)) != 0)
        return REFUSAL_NO;
    return avail >= sizeof(h) + NEGIO__NNS_ERROR_LEN ? REFUSAL_WHOLE : REFUSAL_PART;
}

/* The first thing parse_data and parse_raw do: 1 when the input is, or may still become, a
 * client's refusal, with *RC the result (the peer's error, 0 to wait for more, or a truncation);
 * 0 when the input is the caller's. At the end of the stream fewer than five bytes cannot be one:
 * they are the caller's too. */
static int read_refusal(negio_conn *c, int *progress, int *rc)
{
    size_t avail = negio__buf_size(&c->in);
    const uint8_t *p = negio__buf_data(&c->in);
    int what = refusal_at(c, p, avail);
    if (what == REFUSAL_NO || (what == REFUSAL_PART && c->eof && avail < NEGIO__NNS_HS_HDR))
        return 0;
    if (what == REFUSAL_PART) {
        *rc = c->eof ? truncated(c, avail, "handshake error message") : 0;
        return 1;
    }
    *progress = 1;
    *rc = on_hs_error(c, p + NEGIO__NNS_HS_HDR, NEGIO__NNS_ERROR_LEN);
    return 1;
}

/* After the handshake, at sign or seal: 2.2.2 data messages. */
static int parse_data(negio_conn *c, negio_event *ev, int *progress)
{
    int rc;
    if (read_refusal(c, progress, &rc))
        return rc;
    size_t avail = negio__buf_size(&c->in);
    const uint8_t *p = negio__buf_data(&c->in);
    if (avail < NEGIO__NNS_DATA_HDR) {
        if (!c->eof)
            return 0;
        if (avail > 0)
            return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                                    "stream ended inside a data message header");
        return 2; /* the end of the stream */
    }
    uint32_t len = negio__nns_data_length(p);
    uint32_t limit = c->cfg.limits.max_frame < NEGIO__NNS_DATA_READ_MAX ? c->cfg.limits.max_frame
                                                                        : NEGIO__NNS_DATA_READ_MAX;
    if (len < MIN_TOKEN)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                "data message of %u bytes: shorter than any signature or wrap "
                                "token",
                                (unsigned)len);
    if (len > limit)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE,
                                "data message of %u bytes announced, limit %u", (unsigned)len,
                                (unsigned)limit);
    if (avail - NEGIO__NNS_DATA_HDR < len)
        return c->eof
                   ? negio__conn_fail(c, NEGIO_ERR_TRUNCATED, "stream ended inside a data message")
                   : 0;
    *progress = 1;
    c->nns.data_seen = 1;
    const uint8_t *body = p + NEGIO__NNS_DATA_HDR;
    size_t total = NEGIO__NNS_DATA_HDR + (size_t)len;
    uint64_t seq;
    int fresh = kerberos_order(c, body, len, &seq);
    if (fresh < 0)
        return fresh;
    const uint8_t *plain = NULL;
    size_t plen = 0;
    if (c->stream_level == NEGIO_LEVEL_SEAL) {
        uint8_t *q;
        rc = negio__gss_unseal(c->gss, body, len, &q, &plen, &c->plain, c->detail);
        if (rc < 0)
            return negio__conn_fail(c, rc, NULL);
        plain = q;
    } else if ((rc = verify_signed(c, body, len, &plain, &plen)) < 0) {
        return rc;
    }
    if (fresh == 0) {
        c->nns.rseq = seq;
        c->nns.rseq_known = 1;
    }
    if (plen == 0) { /* nothing for the application (.NET reads on) */
        negio__gss_release(&c->plain);
        negio__buf_consume(&c->in, total);
        return 0;
    }
    if (plen > c->cfg.limits.max_message)
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
    ev->type = NEGIO_EV_MESSAGE;
    ev->level = c->stream_level;
    ev->data = plain;
    ev->len = plen;
    if (c->plain == NULL)
        c->in_hold = total; /* the event points into the input buffer */
    else
        negio__buf_consume(&c->in, total);
    return 1;
}

/* After the handshake, at none: the bytes as they come, unframed (2.2.2). */
static int parse_raw(negio_conn *c, negio_event *ev, int *progress)
{
    int rc;
    if (read_refusal(c, progress, &rc))
        return rc;
    size_t avail = negio__buf_size(&c->in);
    if (avail == 0)
        return c->eof ? 2 : 0;
    *progress = 1;
    c->nns.data_seen = 1;
    ev->type = NEGIO_EV_MESSAGE;
    ev->level = NEGIO_LEVEL_NONE;
    ev->data = negio__buf_data(&c->in);
    ev->len = avail < c->cfg.limits.max_message ? avail : c->cfg.limits.max_message;
    c->in_hold = ev->len;
    return 1;
}

static int parse_one(negio_conn *c, negio_event *ev, int *progress)
{
    *progress = 0;
    if (c->phase != PHASE_ESTABLISHED)
        return parse_handshake(c, progress);
    int rc = c->nns.closing                        ? 2
             : c->stream_level == NEGIO_LEVEL_NONE ? parse_raw(c, ev, progress)
                                                   : parse_data(c, ev, progress);
    if (rc != 2)
        return rc;
    /* no close message in [MS-NNS]: this side's close, or the end of the stream between
     * messages, is the end */
    c->closed = 1;
    snprintf(c->detail, sizeof(c->detail),
             c->nns.closing ? "closed locally ([MS-NNS] has no close message)"
                            : "the peer ended the stream");
    ev->type = NEGIO_EV_CLOSED;
    ev->reason = c->detail;
    return 1;
}

/* A whole unit is buffered after the last event's (or a header that will fail its checks). */
static int unit_ready(const negio_conn *c)
{
    size_t avail = negio__buf_size(&c->in) - c->in_hold;
    if (c->nns.closing)
        return 1;
    if (avail == 0) /* and IN perhaps never allocated: no pointer into it */
        return 0;
    const uint8_t *p = negio__buf_data(&c->in) + c->in_hold;
    if (c->phase != PHASE_ESTABLISHED)
        return avail >= NEGIO__NNS_HS_HDR &&
               (p[0] < NEGIO__NNS_HANDSHAKE_DONE || p[0] > NEGIO__NNS_HANDSHAKE_IN_PROGRESS ||
                negio__nns_hs_length(p) > c->cfg.limits.max_token ||
                avail - NEGIO__NNS_HS_HDR >= negio__nns_hs_length(p));
    int refusal = refusal_at(c, p, avail);
    if (refusal != REFUSAL_NO)
        return refusal == REFUSAL_WHOLE;
    if (c->stream_level == NEGIO_LEVEL_NONE)
        return avail > 0;
    if (avail < NEGIO__NNS_DATA_HDR)
        return 0;
    uint32_t len = negio__nns_data_length(p);
    return len < MIN_TOKEN || len > NEGIO__NNS_DATA_READ_MAX || avail - NEGIO__NNS_DATA_HDR >= len;
}

const negio__profile negio__profile_nns = {
    .parse_one = parse_one,
    .unit_ready = unit_ready,
    .put_token = put_token,
    .put_error = put_error,
    .on_complete = on_complete,
    .put_message = put_message,
    .close = close_established,
    .report = report,
    .protected_close = 0,
    .fin_half_close = 1,
    .one_level = 1,
};
