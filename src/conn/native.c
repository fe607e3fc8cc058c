/* negio's own wire profile (docs/PROTOCOL.md): frames, the handshake transcript, the policy
 * exchange, per-message protection, the protected close. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conn/conn_internal.h"
#include "wire/control.h"
#include "wire/frame.h"

/* The largest body of a protected POLICY or CLOSE: a MIC length, the mechanism's overhead (the
 * room a sender keeps in every frame) and the payload (PROTOCOL.md section 3.5). */
#define CONTROL_BODY_MAX(payload) (4 + NEGIO__FRAME_OVERHEAD + (payload))

/* ---- output ---------------------------------------------------------------------------- */

static int put_header(negio_conn *c, uint8_t type, negio_level level, uint8_t flags, size_t len)
{
    uint8_t h[NEGIO__HDR_LEN];
    negio__frame_hdr hdr = {NEGIO_PROTOCOL_VERSION, type, (uint8_t)level, flags, (uint32_t)len};
    negio__frame_encode(h, &hdr);
    return negio__buf_append(&c->out, h, sizeof(h));
}

/* Appends one frame of TYPE at LEVEL carrying PAYLOAD, protected as the level says
 * (PROTOCOL.md section 5): sign = [mic length][MIC(PH || payload)][payload],
 * seal = Wrap(PH || payload). */
static int put_frame_body(negio_conn *c, uint8_t type, negio_level level, uint8_t flags,
                          const uint8_t *payload, size_t len, char *detail);

/* A frame that cannot be completed is taken back out of the output: the peer must never see
 * half a frame (it would report a malformed frame instead of the real cause). */
static int put_frame(negio_conn *c, uint8_t type, negio_level level, uint8_t flags,
                     const uint8_t *payload, size_t len)
{
    size_t start = negio__buf_size(&c->out);
    /* a CLOSE sent after a failure must not overwrite the first error's detail */
    char spare[NEGIO__DETAIL_MAX];
    int rc = put_frame_body(c, type, level, flags, payload, len, c->err ? spare : c->detail);
    if (rc < 0) {
        negio__buf_clear(&c->scratch);
        if (negio__buf_size(&c->out) > start)
            c->out.len = c->out.off + start;
        /* only now: what negio__conn_fail() appends for the peer (a CLOSE or HANDSHAKE_ERROR saying
         * why) must not be taken back with the half-written frame */
        return negio__conn_fail(c, rc, NULL);
    }
    return 0;
}

static int frame_nomem(char *detail, int rc)
{
    snprintf(detail, NEGIO__DETAIL_MAX, "out of memory");
    return rc;
}

static int put_frame_body(negio_conn *c, uint8_t type, negio_level level, uint8_t flags,
                          const uint8_t *payload, size_t len, char *detail)
{
    int rc;
    if (level == NEGIO_LEVEL_NONE) {
        if ((rc = put_header(c, type, level, flags, len)) < 0 ||
            (rc = negio__buf_append(&c->out, payload, len)) < 0)
            return frame_nomem(detail, rc);
        return 0;
    }
    negio__frame_hdr hdr = {NEGIO_PROTOCOL_VERSION, type, (uint8_t)level, flags, 0};
    uint8_t ph[NEGIO__PH_LEN];
    negio__frame_ph(ph, &hdr);
    /* reserve the header, produce the token behind it, then fill in the length; positions are
     * kept relative to the unsent data because appending may compact the buffer */
    size_t at = negio__buf_size(&c->out);
    if ((rc = put_header(c, type, level, flags, 0)) < 0)
        return frame_nomem(detail, rc);
    if (level == NEGIO_LEVEL_SIGN) {
        size_t mic_at = negio__buf_size(&c->out);
        if ((rc = negio__buf_append_u32(&c->out, 0)) < 0)
            return frame_nomem(detail, rc);
        rc = negio__gss_sign(c->gss, ph, sizeof(ph), payload, len, &c->out, &c->joined, detail);
        if (rc < 0)
            return rc; /* the GSS provider wrote the detail */
        negio__put_u32(c->out.p + c->out.off + mic_at,
                       (uint32_t)(negio__buf_size(&c->out) - mic_at - 4));
        if ((rc = negio__buf_append(&c->out, payload, len)) < 0)
            return frame_nomem(detail, rc);
    } else {
        negio__buf_clear(&c->scratch);
        if ((rc = negio__buf_append(&c->scratch, ph, sizeof(ph))) < 0 ||
            (rc = negio__buf_append(&c->scratch, payload, len)) < 0)
            return frame_nomem(detail, rc);
        rc = negio__gss_seal(c->gss, negio__buf_data(&c->scratch), negio__buf_size(&c->scratch),
                             &c->out, detail);
        negio__buf_clear(&c->scratch);
        if (rc < 0)
            return rc; /* the GSS provider wrote the detail */
    }
    negio__put_u32(c->out.p + c->out.off + at + 4,
                   (uint32_t)(negio__buf_size(&c->out) - at - NEGIO__HDR_LEN));
    return 0;
}

/* The largest payload per DATA frame that keeps the body within the peer's frame limit. */
static size_t chunk_size(const negio_conn *c)
{
    return c->peer_max_frame - NEGIO__FRAME_OVERHEAD - NEGIO__PH_LEN;
}

static int put_message(negio_conn *c, const uint8_t *data, size_t len, negio_level level)
{
    size_t chunk = chunk_size(c);
    /* Room for every frame of the message first: an allocation failing half-way would leave
     * frames flagged MORE in the output, and the CLOSE that reports the failure would then
     * arrive inside a fragmented message, which the peer must refuse. */
    size_t frames = len / chunk + 1;
    negio__buf *piece = level == NEGIO_LEVEL_SEAL                                   ? &c->scratch
                        : level == NEGIO_LEVEL_SIGN && negio__gss_mic_joins(c->gss) ? &c->joined
                                                                                    : NULL;
    if (negio__buf_reserve(&c->out, len + frames * (NEGIO__HDR_LEN + 4 + NEGIO__FRAME_OVERHEAD)) <
            0 ||
        (piece != NULL &&
         negio__buf_reserve(piece, NEGIO__PH_LEN + (len < chunk ? len : chunk)) < 0))
        return negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory");
    do {
        size_t n = len < chunk ? len : chunk;
        int rc = put_frame(c, NEGIO__FT_DATA, level, n < len ? NEGIO__FLAG_MORE : 0, data, n);
        if (rc < 0)
            return rc;
        data += n;
        len -= n;
    } while (len > 0);
    return 0;
}

/* POLICY and CLOSE are signed with the GSS context; inside plain TLS, which has none, they
 * travel at level none and TLS protects them. */
static negio_level control_level(const negio_conn *c)
{
    return c->cfg.transport == NEGIO_TRANSPORT_TLS ? NEGIO_LEVEL_NONE : NEGIO_LEVEL_SIGN;
}

static int put_policy(negio_conn *c)
{
    negio__policy mine = {c->cfg.min_level,
                          c->cfg.default_level,
                          c->cfg.limits.max_frame,
                          c->cfg.limits.max_message,
                          {0}};
    memcpy(mine.transcript, c->transcript, NEGIO__TRANSCRIPT_LEN);
    uint8_t p[NEGIO__POLICY_LEN];
    negio__policy_encode(p, &mine);
    return put_frame(c, NEGIO__FT_POLICY, control_level(c), 0, p, sizeof(p));
}

/* HANDSHAKE_ERROR body: [token length u32][token][reason text]. */
static void put_hs_error(negio_conn *c, const uint8_t *tok, size_t len, const char *reason)
{
    size_t rlen = strnlen(reason, NEGIO__REASON_MAX);
    c->hs_error_sent = 1;
    /* Best effort (the connection is failing anyway), but whole or not at all: room for the
     * frame first, so that no append below can fail and leave half a frame (see put_frame). */
    if (negio__buf_reserve(&c->out, NEGIO__HDR_LEN + 4 + len + rlen) < 0)
        return;
    (void)put_header(c, NEGIO__FT_HS_ERROR, NEGIO_LEVEL_NONE, 0, 4 + len + rlen);
    (void)negio__buf_append_u32(&c->out, (uint32_t)len);
    (void)negio__buf_append(&c->out, tok, len);
    (void)negio__buf_append(&c->out, reason, rlen);
}

/* CLOSE body: [status u32][reason text]. Best effort when failing: the connection ends anyway. */
static void put_close(negio_conn *c, uint32_t status, const char *reason)
{
    uint8_t body[4 + NEGIO__REASON_WIRE_MAX];
    size_t len = negio__close_encode(body, status, reason);
    c->close_sent = 1;
    (void)put_frame(c, NEGIO__FT_CLOSE, control_level(c), 0, body, len);
}

/* Appends a HANDSHAKE frame carrying TOK and adds it to the transcript; on failure nothing of
 * it stays in the output. */
static int put_handshake(negio_conn *c, const uint8_t *tok, size_t len)
{
    size_t start = negio__buf_size(&c->out);
    uint8_t h[NEGIO__HDR_LEN];
    negio__frame_hdr hdr = {NEGIO_PROTOCOL_VERSION, NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_NONE, 0,
                            (uint32_t)len};
    negio__frame_encode(h, &hdr);
    int rc;
    if ((rc = negio__buf_append(&c->out, h, sizeof(h))) < 0 ||
        (rc = negio__buf_append(&c->out, tok, len)) < 0 ||
        (rc = negio__transcript_add(&c->ts, h, tok, len)) < 0) {
        c->out.len = c->out.off + start;
        return rc;
    }
    return 0;
}

/* ---- received frames ------------------------------------------------------------------- */

/* Makes peer text safe to show: printable ASCII only, bounded. */
static void clean_text(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        dst[n++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[n] = '\0';
}

/* The peer's HANDSHAKE_ERROR at BODY, LEN bytes, checked already: fatal, with its reason and what
 * its token says (a client's), in the error detail. */
static int peer_error(negio_conn *c, const uint8_t *body, size_t len)
{
    char reason[NEGIO__REASON_MAX + 1] = "";
    const uint8_t *tok, *text;
    size_t tlen, text_len;
    (void)negio__hs_error_decode(body, len, &tok, &tlen, &text, &text_len);
    clean_text(reason, sizeof(reason), text, text_len);
    char gss_text[NEGIO__DETAIL_MAX];
    negio__gss_peer_error(c->gss, tok, tlen, reason, gss_text);
    return negio__conn_fail(c, NEGIO_ERR_PEER, "peer reported: %s%s%s",
                            reason[0] ? reason : "(no reason)", gss_text[0] ? "; " : "", gss_text);
}

static int on_hs_error(negio_conn *c, const uint8_t *frame, size_t len)
{
    char reason[NEGIO__REASON_MAX + 1] = "";
    const uint8_t *body = frame + NEGIO__HDR_LEN, *tok, *text;
    size_t tlen, text_len;
    if (negio__hs_error_decode(body, len, &tok, &tlen, &text, &text_len) < 0)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "malformed handshake error frame");
    if (c->phase == PHASE_ESTABLISHED) { /* unprotected: anyone on the path could have sent it */
        clean_text(reason, sizeof(reason), text, text_len);
        return negio__conn_fail(
            c, NEGIO_ERR_PROTOCOL,
            "handshake error frame after establishment (unprotected, so not a report "
            "from the peer; it said: %s)",
            reason[0] ? reason : "(no reason)");
    }
    if (c->cfg.role == NEGIO_ROLE_CLIENT && c->gss != NULL) {
        /* A client explains the report with its context (src/gss/explain.c), which may ask DNS
         * for the server's realm and the KDC for its clock: a step's work, for the thread that
         * runs steps (the engine's workers), never the parsing one. The frame waits in IN. */
        clean_text(c->held_reason, sizeof(c->held_reason), text, text_len);
        c->hs_hold = NEGIO__HDR_LEN + len;
        c->hs_at = NEGIO__HDR_LEN;
        c->peer_error_held = 1;
        c->step_pending = 1;
        return 0;
    }
    return peer_error(c, body, len);
}

/* The step for a HANDSHAKE_ERROR that on_hs_error held. */
static int held_error(negio_conn *c)
{
    const uint8_t *body = negio__buf_data(&c->in) + c->hs_at;
    return peer_error(c, body, c->hs_hold - c->hs_at);
}

/* Checks the protection of a signed or sealed frame body and returns its payload. */
static int unprotect(negio_conn *c, const negio__frame_hdr *h, const uint8_t *body,
                     const uint8_t **payload, size_t *plen)
{
    uint8_t ph[NEGIO__PH_LEN];
    negio__frame_ph(ph, h);
    int rc;
    if (h->level == NEGIO_LEVEL_NONE) {
        *payload = body;
        *plen = h->length;
        return 0;
    }
    if (h->level == NEGIO_LEVEL_SIGN) {
        if (h->length < 4 || negio__get_u32(body) > h->length - 4)
            return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                    "signed frame with a malformed MIC length");
        size_t mlen = negio__get_u32(body); /* at least 16: negio__gss_verify checks */
        const uint8_t *data = body + 4 + mlen;
        size_t dlen = h->length - 4 - mlen;
        rc = negio__gss_verify(c->gss, ph, sizeof(ph), data, dlen, body + 4, mlen, &c->joined,
                               c->detail);
        if (rc < 0)
            return negio__conn_fail(c, rc, NULL);
        *payload = data;
        *plen = dlen;
        return 0;
    }
    uint8_t *plain;
    size_t n;
    /* A wrap token carries at least a 16-byte header or signature plus the sealed protected
     * header; gss-ntlmssp computes malloc(len - 16) without checking, so shorter ones stop here. */
    if (h->length < MIN_TOKEN + NEGIO__PH_LEN)
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY, "sealed frame of %u bytes is too short",
                                (unsigned)h->length);
    rc = negio__gss_unseal(c->gss, body, h->length, &plain, &n, &c->plain, c->detail);
    if (rc < 0)
        return negio__conn_fail(c, rc, NULL);
    /* the sealed copy of the header must match the clear one (level, type, flags) */
    if (n < NEGIO__PH_LEN || memcmp(plain, ph, NEGIO__PH_LEN) != 0)
        return negio__conn_fail(c, NEGIO_ERR_INTEGRITY,
                                "sealed frame header does not match its clear header");
    *payload = plain + NEGIO__PH_LEN;
    *plen = n - NEGIO__PH_LEN;
    return 0;
}

static int on_policy(negio_conn *c, const uint8_t *p, size_t len)
{
    negio__policy peer;
    const char *why;
    if (negio__policy_decode(p, len, &peer, &why) < 0)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "%s", why);
    /* the peer's view of the handshake, under its first MIC, against ours: any byte of any
     * HANDSHAKE frame changed on the way, in either direction, differs here */
    if (CRYPTO_memcmp(peer.transcript, c->transcript, NEGIO__TRANSCRIPT_LEN) != 0)
        return negio__conn_fail(
            c, NEGIO_ERR_INTEGRITY,
            "the handshake was altered in transit: the peer's transcript of it differs "
            "from this side's");
    if (negio__policy_check(&peer, &why) < 0)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "%s", why);
    c->peer_min = peer.min_level;
    c->peer_default = peer.default_level;
    c->peer_max_frame = peer.max_frame;
    c->peer_max_message = peer.max_message;
    if (c->peer_default < c->cfg.min_level)
        return negio__conn_fail(
            c, NEGIO_ERR_POLICY,
            "policy mismatch: the peer sends at %s by default, this side requires at "
            "least %s",
            negio_level_name(c->peer_default), negio_level_name(c->cfg.min_level));
    if (c->cfg.default_level < c->peer_min)
        return negio__conn_fail(
            c, NEGIO_ERR_POLICY,
            "policy mismatch: this side sends at %s by default, the peer requires at "
            "least %s",
            negio_level_name(c->cfg.default_level), negio_level_name(c->peer_min));
    c->peer_policy = 1;
    return 0;
}

static int on_close(negio_conn *c, const uint8_t *p, size_t len, negio_event *ev)
{
    uint32_t status;
    const uint8_t *reason;
    size_t rlen;
    if (negio__close_decode(p, len, &status, &reason, &rlen) < 0)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "malformed close frame");
    char text[NEGIO__REASON_MAX + 1];
    clean_text(text, sizeof(text), reason, rlen);
    c->closed = 1;
    if (status != 0)
        return negio__conn_fail(c, NEGIO_ERR_REJECTED, "peer closed with status %u: %s",
                                (unsigned)status, text);
    /* before the peer's POLICY (PROTOCOL.md section 4.5): a conforming peer sends its POLICY
     * first, and one that refuses this side's closes with a non-zero status; a clean close of a
     * connection that was never established is not one */
    if (c->phase != PHASE_ESTABLISHED)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                "close with status 0 before the peer's policy (it said: %s)",
                                text[0] ? text : "(no reason)");
    /* every side sends CLOSE: answer the peer's unless ours went first, or unless the owner
     * answers it later (half-close: negio_conn_close) */
    if (!c->close_sent && c->phase == PHASE_ESTABLISHED && !c->cfg.half_close) {
        int rc = put_frame(c, NEGIO__FT_CLOSE, control_level(c), 0, (const uint8_t *)"\0\0\0\0", 4);
        if (rc < 0)
            return rc;
        c->close_sent = 1;
    }
    /* the reason lives in the detail buffer, which outlives the event */
    snprintf(c->detail, sizeof(c->detail), "%s", text);
    ev->type = NEGIO_EV_CLOSED;
    ev->status = status;
    ev->reason = c->detail;
    return 1;
}

static int deliver(negio_conn *c, const negio__frame_hdr *h, const uint8_t *payload, size_t len,
                   negio_event *ev)
{
    int more = (h->flags & NEGIO__FLAG_MORE) != 0;
    if (c->reasm_active && h->level != c->reasm_level)
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL, "protection level changed inside a message");
    if (more || c->reasm_active) {
        if (negio__buf_size(&c->reasm) + len > c->cfg.limits.max_message)
            return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
        int rc = negio__buf_append(&c->reasm, payload, len);
        if (rc < 0)
            return negio__conn_fail(c, rc, "out of memory reassembling a message");
        c->reasm_active = 1;
        c->reasm_level = h->level;
        negio__gss_release(&c->plain);
        if (more)
            return 0;
        payload = negio__buf_data(&c->reasm);
        len = negio__buf_size(&c->reasm);
        c->reasm_active = 2; /* cleared on the next call */
    } else if (len > c->cfg.limits.max_message) {
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
    }
    ev->type = NEGIO_EV_MESSAGE;
    ev->level = (negio_level)h->level;
    ev->data = payload;
    ev->len = len;
    return 1;
}

/* Whether a frame with header H may arrive now (PROTOCOL.md sections 3.5 and 6.3), decided on
 * the header alone, so that a frame whose size or type the state does not allow is refused
 * before its body is buffered: before establishment nothing larger than a handshake token can
 * make this side hold memory. 0, or the error with its explanation in WHY. */
static int head_allowed(const negio_conn *c, const negio__frame_hdr *h, char *why, size_t cap)
{
    uint64_t limit;
    switch (h->type) {
    case NEGIO__FT_HANDSHAKE:
        limit = c->cfg.limits.max_token;
        break;
    case NEGIO__FT_HS_ERROR: /* a token plus its length and a reason */
        limit = (uint64_t)c->cfg.limits.max_token + 4 + NEGIO__REASON_MAX;
        break;
    case NEGIO__FT_POLICY:
        limit = CONTROL_BODY_MAX(NEGIO__POLICY_LEN);
        break;
    case NEGIO__FT_CLOSE:
        limit = CONTROL_BODY_MAX(4 + NEGIO__REASON_MAX);
        break;
    default:
        limit = c->cfg.limits.max_frame;
        break;
    }
    if (h->length > limit) {
        snprintf(why, cap, "%s frame announces %u bytes, limit %llu",
                 negio__frame_type_name(h->type), (unsigned)h->length, (unsigned long long)limit);
        return NEGIO_ERR_TOO_LARGE;
    }
    const char *bad = NULL;
    switch (h->type) {
    case NEGIO__FT_HANDSHAKE:
        if (c->phase != PHASE_HANDSHAKE)
            bad = "handshake frame after the context was complete";
        else if (c->early_input)
            bad = "handshake frame before the client's first token";
        else if (h->length == 0)
            bad = "empty handshake token";
        else if (c->rounds >= c->cfg.limits.max_rounds) {
            snprintf(why, cap, "more than %u handshake rounds", (unsigned)c->cfg.limits.max_rounds);
            return NEGIO_ERR_PROTOCOL;
        }
        break;
    case NEGIO__FT_POLICY:
        if (c->phase == PHASE_HANDSHAKE)
            bad = "policy frame before the handshake completed";
        else if (c->peer_policy)
            bad = "second policy frame";
        break;
    case NEGIO__FT_CLOSE:
        /* a peer that found our POLICY unacceptable closes before we are established */
        if (c->phase == PHASE_HANDSHAKE)
            bad = "close frame before the context was complete";
        else if (c->reasm_active == 1)
            bad = "close frame inside a fragmented message";
        break;
    case NEGIO__FT_DATA:
        if (c->phase != PHASE_ESTABLISHED)
            bad = "data frame before establishment";
        else if (h->level < c->cfg.min_level) {
            snprintf(why, cap, "%s frame received, minimum is %s",
                     negio_level_name((negio_level)h->level), negio_level_name(c->cfg.min_level));
            return NEGIO_ERR_DOWNGRADE;
        }
        break;
    default: /* NEGIO__FT_HS_ERROR: fatal in every state, after its body is read for the reason */
        break;
    }
    if (bad == NULL)
        return 0;
    snprintf(why, cap, "%s", bad);
    return NEGIO_ERR_PROTOCOL;
}

/* Decodes the header at P and applies every check it allows: the format (frame.c), then the
 * size and the state (head_allowed). 0 or the error, explained in WHY. */
static int head_check(const negio_conn *c, const uint8_t *p, negio__frame_hdr *h, char *why,
                      size_t cap)
{
    const char *bad = NULL;
    int tls_only = c->cfg.transport == NEGIO_TRANSPORT_TLS;
    if (negio__frame_decode(p, h, &bad, tls_only) < 0) {
        if (h->version != NEGIO_PROTOCOL_VERSION)
            snprintf(why, cap,
                     "bad frame header: unsupported protocol version %u (this side "
                     "speaks version %u)",
                     (unsigned)h->version, (unsigned)NEGIO_PROTOCOL_VERSION);
        else
            snprintf(why, cap, "bad frame header: %s", bad);
        return NEGIO_ERR_PROTOCOL;
    }
    if (tls_only && h->level != NEGIO_LEVEL_NONE) {
        snprintf(why, cap, "%s frame at level %s inside plain TLS, which has no GSS context",
                 negio__frame_type_name(h->type), negio_level_name((negio_level)h->level));
        return NEGIO_ERR_PROTOCOL;
    }
    return head_allowed(c, h, why, cap);
}

/* Parses one frame if a whole one is buffered: 1 = event, 0 = frame consumed without event or
 * nothing to parse (*PROGRESS says which), negative = fatal. */
static int parse_one(negio_conn *c, negio_event *ev, int *progress)
{
    *progress = 0;
    size_t avail = negio__buf_size(&c->in);
    int eof = c->tls != NULL ? c->plain_eof : c->eof;
    if (avail < NEGIO__HDR_LEN) {
        if (eof && !c->closed) {
            if (c->tls != NULL && !c->tls_ready)
                return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                                        "the stream ended during the TLS handshake");
            if (c->tls_cut)
                return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                                        "the TLS stream ended without close_notify%s",
                                        avail ? " inside a frame header" : "");
            return negio__conn_fail(c, NEGIO_ERR_TRUNCATED,
                                    avail ? "stream ended inside a frame header"
                                    : !c->received_any
                                        ? "the peer closed the connection before sending anything"
                                        : "stream ended without a protected close");
        }
        return 0;
    }
    negio__frame_hdr h;
    char why[160];
    const uint8_t *p = negio__buf_data(&c->in);
    int rc = head_check(c, p, &h, why, sizeof(why));
    if (rc < 0)
        return negio__conn_fail(c, rc, "%s", why);
    if (avail - NEGIO__HDR_LEN < h.length) {
        if (eof)
            return negio__conn_fail(c, NEGIO_ERR_TRUNCATED, "%s ended inside a %s frame",
                                    c->tls_cut ? "the TLS stream (without close_notify)" : "stream",
                                    negio__frame_type_name(h.type));
        return 0;
    }
    const uint8_t *body = p + NEGIO__HDR_LEN;
    size_t total = NEGIO__HDR_LEN + (size_t)h.length;
    *progress = 1;
    const uint8_t *payload;
    size_t plen;
    switch (h.type) {
    case NEGIO__FT_HANDSHAKE:
        /* the token stays where it is until the step has used it */
        if ((rc = negio__transcript_add(&c->ts, p, body, h.length)) < 0)
            return negio__conn_fail(c, rc, "out of memory hashing the handshake");
        c->rounds++;
        c->hs_hold = total;
        c->hs_at = NEGIO__HDR_LEN;
        c->step_pending = 1;
        return 0;
    case NEGIO__FT_HS_ERROR:
        return on_hs_error(c, p, h.length);
    case NEGIO__FT_POLICY:
        c->peer_policy_seen = 1;
        if ((rc = unprotect(c, &h, body, &payload, &plen)) < 0)
            return rc;
        rc = on_policy(c, payload, plen);
        negio__gss_release(&c->plain);
        if (rc < 0)
            return rc;
        negio__buf_consume(&c->in, total);
        return 0;
    case NEGIO__FT_CLOSE:
        if ((rc = unprotect(c, &h, body, &payload, &plen)) < 0)
            return rc;
        rc = on_close(c, payload, plen, ev);
        negio__gss_release(&c->plain);
        negio__buf_consume(&c->in, total);
        return rc;
    default: /* NEGIO__FT_DATA */
        if ((rc = unprotect(c, &h, body, &payload, &plen)) < 0)
            return rc;
        rc = deliver(c, &h, payload, plen, ev);
        if (rc < 0)
            return rc;
        if (rc == 1 && c->plain == NULL && c->reasm_active != 2)
            c->in_hold = total; /* the event points into the input buffer */
        else
            negio__buf_consume(&c->in, total);
        return rc;
    }
}

/* A whole frame (or a header that will fail its checks) is buffered. */
static int frame_ready(const negio_conn *c)
{
    size_t avail = negio__buf_size(&c->in) - c->in_hold;
    if (avail < NEGIO__HDR_LEN)
        return 0;
    negio__frame_hdr h;
    char why[160];
    /* the checks parse_one makes, so that a header it will refuse counts as ready */
    if (head_check(c, negio__buf_data(&c->in) + c->in_hold, &h, why, sizeof(why)) < 0)
        return 1;
    return avail - NEGIO__HDR_LEN >= h.length;
}

static int put_token(negio_conn *c, const uint8_t *tok, size_t len, unsigned flags)
{
    (void)flags;
    return put_handshake(c, tok, len);
}

/* Called once the local context is complete: announce our policy. */
static int on_complete(negio_conn *c)
{
    /* every HANDSHAKE frame has crossed by now: this side's last token went out just before,
     * and the peer's last one was the input of the step that completed */
    if (negio__transcript_final(&c->ts, c->transcript) < 0)
        return negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory hashing the handshake");
    return put_policy(c);
}

static int close_established(negio_conn *c, uint32_t status, const char *reason)
{
    put_close(c, status, reason);
    return c->err;
}

/* A peer whose context is complete gets a protected CLOSE carrying the negated error code; one
 * still in the handshake gets a HANDSHAKE_ERROR (PROTOCOL.md section 6.7). */
static void report(negio_conn *c, int code)
{
    if (c->phase != PHASE_HANDSHAKE && (c->phase == PHASE_ESTABLISHED || c->peer_policy_seen))
        put_close(c, (uint32_t)-code, negio_strerror(code));
    else if (c->phase != PHASE_ESTABLISHED && !c->hs_error_sent)
        put_hs_error(c, NULL, 0, negio_strerror(code));
}

const negio__profile negio__profile_native = {
    .parse_one = parse_one,
    .unit_ready = frame_ready,
    .put_token = put_token,
    .put_error = put_hs_error,
    .held_error = held_error,
    .on_complete = on_complete,
    .put_message = put_message,
    .close = close_established,
    .report = report,
    .protected_close = 1,
};
