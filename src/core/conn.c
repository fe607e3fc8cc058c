/* The connector: framing, accumulation, the handshake conversation, policy exchange and
 * per-message protection (docs/PROTOCOL.md). Input is parsed lazily in negio_conn_next_event()
 * so that a message can be handed out straight from the input buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/frame.h"
#include "core/internal.h"
#include "core/sized.h"
#include "core/transcript.h"
#include "core/write_check.h"
#include "gss/gss.h"
#include "negio/identity.h"
#include "tls/tls.h"

#define POLICY_LEN (16 + NEGIO__TRANSCRIPT_LEN)
#define POLICY_VERSION 2
/* The largest body of a protected POLICY or CLOSE: a MIC length, the mechanism's overhead (the
 * room a sender keeps in every frame) and the payload (PROTOCOL.md section 3.5). */
#define CONTROL_BODY_MAX(payload) (4 + NEGIO__FRAME_OVERHEAD + (payload))
/* The receive region (negio_conn_recv_buf): RECV_CHUNK at first; doubled, up to RECV_CHUNK_MAX,
 * after every read that filled at least a region, so that a busy stream is read in large pieces
 * and the partial frame at the end of each read (moved to the front of the buffer when room runs
 * out) is moved rarely; given back when the stream has quietened (RECV_QUIET small reads in a
 * row, nothing unread), so that an idle connection does not keep what a burst made it grow to. */
#define RECV_CHUNK 16384
#define RECV_CHUNK_MAX (64 * 1024)
#define RECV_QUIET 4
#define MIN_TOKEN 16 /* the shortest MIC or wrap header of any supported mechanism */

struct negio_conn {
    negio_config cfg;
    negio__gss *gss;
    int err;
    char detail[NEGIO__DETAIL_MAX];

    negio__buf in;         /* received, unparsed bytes */
    size_t in_hold;        /* bytes of IN handed out in the last event, consumed on the next call */
    size_t recv_granted;   /* size of the region last returned by negio_conn_recv_buf() */
    size_t recv_chunk;     /* the least free room that region has (RECV_CHUNK ... RECV_CHUNK_MAX) */
    unsigned recv_small;   /* reads in a row that brought less than RECV_CHUNK / 4 */
    negio__buf out;        /* bytes for the wire */
    negio__buf queue;      /* writes before establishment: [level u8][len u32][data] */
    size_t hs_hold;        /* the HANDSHAKE frame (or gss-sample context token) at the front of
                              IN whose token waits for a step: kept where it arrived, no copy */
    size_t hs_at;          /* where its token starts: after the 8-byte header (5 in gss-sample) */
    negio__transcript *ts; /* the handshake transcript being hashed (transcript.h) */
    uint8_t transcript[NEGIO__TRANSCRIPT_LEN]; /* its hash, from the context's completion */
    negio__buf reasm;                          /* a message arriving in several DATA frames */
    negio__buf scratch;                        /* protected header + payload for wrap input */
    negio__buf joined; /* protected header + payload for a MIC where the mechanism needs them
                          in one piece (NTLM): bytes the wire carries in the clear, not wiped */
    void *plain;       /* the unwrapped buffer handed out in the last event */
    int reasm_level;
    int reasm_active;

    int step_pending;
    int hs_error_sent;
    int peer_policy_seen;   /* the peer sent POLICY: its context is complete, it can verify ours */
    int early_input;        /* bytes arrived at a client before it sent its first token */
    int sample;             /* NEGIO_PROFILE_GSS_SAMPLE */
    int sample_started;     /* server: the opening NOOP|CONTEXT_NEXT was received */
    size_t sample_ack;      /* client: bytes of sample_sent handed out in the last event */
    negio__buf sample_sent; /* client: messages awaiting the server's MIC: [u32 len][bytes] */
    int received_any;
    int ctx_complete;
    int peer_policy;
    int established;
    int eof;
    int close_sent;
    int closed;
    unsigned rounds;

    /* TLS transports: the wire is TLS; IN and OUT above hold the plaintext frames inside it */
    negio__tls *tls;
    negio__buf tin;  /* received TLS bytes, not yet decrypted */
    negio__buf tout; /* TLS bytes for the wire */
    int tls_ready;   /* the TLS handshake completed and its facts were applied */
    int plain_eof;   /* no more plaintext will come: close_notify, or the wire ended */
    int tls_cut;     /* the wire ended without close_notify */
    uint8_t cb[NEGIO__TLS_CB_MAX]; /* TLS_NEGOTIATE: the channel bindings of the TLS session */
    size_t cb_len;

    negio_level peer_min;
    negio_level peer_default;
    uint32_t peer_max_frame;
    uint32_t peer_max_message;
};

static void logf_(negio_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(negio_conn *c, int level, const char *fmt, ...)
{
    if (c->cfg.log_fn == NULL)
        return;
    char text[NEGIO__DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    c->cfg.log_fn(c->cfg.log_user, level, text);
}

static void put_hs_error(negio_conn *c, const uint8_t *tok, size_t len, const char *reason);
static void put_close(negio_conn *c, uint32_t status, const char *reason);
static int sample_put_token(negio_conn *c, uint8_t flags, const uint8_t *tok, size_t len);
static int sample_parse_one(negio_conn *c, negio_event *ev, int *progress);
static int sample_put_message(negio_conn *c, const uint8_t *data, size_t len, negio_level level);
static void sample_no_policy(negio_conn *c);

/* Records the first fatal error; the detail must already be in c->detail or be given here. */
static int fail(negio_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(negio_conn *c, int code, const char *fmt, ...)
{
    if (c->err != 0)
        return c->err;
    c->err = code;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
        va_end(ap);
    } else if (c->detail[0] == '\0') {
        /* the callee had no words of its own (an allocation that failed): name the code */
        snprintf(c->detail, sizeof(c->detail), "%s", negio_strerror(code));
    }
    negio__buf_clear(&c->queue);
    negio__buf_clear(&c->reasm);
    /* Tell the peer why, unless it caused the end itself (its own error report, its close, the
     * end of the stream). A peer whose context is complete gets a protected CLOSE carrying the
     * negated error code; one still in the handshake gets a HANDSHAKE_ERROR. */
    if (code != NEGIO_ERR_PEER && code != NEGIO_ERR_TRUNCATED && code != NEGIO_ERR_REJECTED &&
        code != NEGIO_ERR_CLOSED && !c->close_sent && !c->closed) {
        if (c->ctx_complete && (c->established || c->peer_policy_seen) && !c->sample)
            put_close(c, (uint32_t)-code, negio_strerror(code));
        else if (!c->established && !c->hs_error_sent)
            put_hs_error(c, NULL, 0, negio_strerror(code));
    }
    logf_(c, 0, "%s: %s", negio_err_name(code), c->detail);
    return code;
}

int negio_conn_new(negio_conn **out, const negio_config *cfg)
{
    if (out == NULL || cfg == NULL)
        return NEGIO_ERR_INVALID;
    if (cfg->role == NEGIO_ROLE_CLIENT && cfg->service == NULL)
        return NEGIO_ERR_INVALID;
    negio_conn *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    (void)negio__config_creds(cfg); /* the copy then shares the configuration's credentials */
    if (negio__config_copy(&c->cfg, cfg) < 0) {
        negio__free(c);
        return NEGIO_ERR_NOMEM;
    }
    c->sample = cfg->profile == NEGIO_PROFILE_GSS_SAMPLE;
    if (cfg->transport != NEGIO_TRANSPORT_PLAIN &&
        (c->sample ||
         (cfg->transport == NEGIO_TRANSPORT_TLS &&
          (cfg->min_level != NEGIO_LEVEL_NONE || cfg->default_level != NEGIO_LEVEL_NONE)))) {
        /* gss-sample has no TLS form; plain TLS has no GSS context to sign or seal with */
        negio__config_clear(&c->cfg);
        negio__free(c);
        return NEGIO_ERR_INVALID;
    }
    /* What crosses the wire as it is needs no wiping: TLS records, and on a bare stream the
     * frames themselves (sealed payloads are ciphertext, none and sign payloads travel in the
     * clear). Inside TLS, IN and OUT hold the plaintext TLS protects, and are wiped. */
    c->tin.public_bytes = c->tout.public_bytes = c->joined.public_bytes = 1;
    c->in.public_bytes = c->out.public_bytes = cfg->transport == NEGIO_TRANSPORT_PLAIN;
    c->in.tight = c->tin.tight = 1; /* until the peer has authenticated */
    /* the client speaks first: its first step needs no input (inside TLS: once TLS is up) */
    c->step_pending = cfg->role == NEGIO_ROLE_CLIENT && cfg->transport == NEGIO_TRANSPORT_PLAIN;
    *out = c;
    if (cfg->transport != NEGIO_TRANSPORT_PLAIN) {
        int rc = negio__tls_new(&c->tls, &c->cfg, &c->tout, c->detail);
        if (rc < 0) {
            c->hs_error_sent = 1; /* nothing can reach the peer without TLS */
            fail(c, rc, NULL);
        }
    }
    return NEGIO_OK;
}

void negio_conn_del(negio_conn *c)
{
    if (c == NULL)
        return;
    negio__gss_release(&c->plain);
    negio__gss_del(c->gss);
    negio__buf_free(&c->in);
    negio__buf_free(&c->out);
    negio__buf_free(&c->queue);
    negio__transcript_free(&c->ts);
    negio__buf_free(&c->reasm);
    negio__buf_free(&c->scratch);
    negio__buf_free(&c->joined);
    negio__buf_free(&c->sample_sent);
    negio__tls_del(c->tls);
    negio__buf_free(&c->tin);
    negio__buf_free(&c->tout);
    negio__config_clear(&c->cfg);
    negio__free(c);
}

int negio__conn_clone(negio_conn **out, negio_conn *src, char *detail)
{
    if (!src->established || src->err != 0 || src->tls != NULL || src->sample || src->close_sent ||
        src->closed || src->eof || src->reasm_active || src->plain != NULL || src->in_hold != 0 ||
        negio__buf_size(&src->in) != 0 || negio__buf_size(&src->out) != 0 ||
        negio__buf_size(&src->queue) != 0) {
        negio__detail(detail, "only an established, idle connector without TLS can be cloned");
        return NEGIO_ERR_INVALID;
    }
    negio_conn *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    /* the scalar state as it is; buffers, configuration and context made anew below */
    *c = *src;
    negio__buf empty = {0};
    c->in = c->out = c->queue = c->reasm = c->scratch = c->sample_sent = empty;
    c->ts = NULL; /* an established connector's transcript is complete: only its hash remains */
    c->tin = c->tout = c->joined = empty;
    c->joined.public_bytes = 1;
    c->in.public_bytes = src->in.public_bytes;
    c->out.public_bytes = src->out.public_bytes;
    c->tin.public_bytes = c->tout.public_bytes = 1;
    c->recv_granted = 0;
    c->gss = NULL;
    if (negio__config_copy(&c->cfg, &src->cfg) < 0) {
        negio__free(c);
        return NEGIO_ERR_NOMEM;
    }
    int rc = negio__gss_clone(&c->gss, src->gss, &c->cfg, detail);
    if (rc < 0) {
        negio_conn_del(c);
        return rc;
    }
    *out = c;
    return NEGIO_OK;
}

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
        /* only now: what fail() appends for the peer (a CLOSE or HANDSHAKE_ERROR saying why)
         * must not be taken back with the half-written frame */
        return fail(c, rc, NULL);
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
    if (c->sample)
        return sample_put_message(c, data, len, level);
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
        return fail(c, NEGIO_ERR_NOMEM, "out of memory");
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
    uint8_t p[POLICY_LEN] = {POLICY_VERSION, (uint8_t)c->cfg.min_level,
                             (uint8_t)c->cfg.default_level, 0};
    negio__put_u32(p + 4, c->cfg.limits.max_frame);
    negio__put_u32(p + 8, c->cfg.limits.max_message);
    memcpy(p + 16, c->transcript, NEGIO__TRANSCRIPT_LEN);
    return put_frame(c, NEGIO__FT_POLICY, control_level(c), 0, p, sizeof(p));
}

/* HANDSHAKE_ERROR body: [token length u32][token][reason text]. */
static void put_hs_error(negio_conn *c, const uint8_t *tok, size_t len, const char *reason)
{
    size_t rlen = strnlen(reason, NEGIO__REASON_MAX);
    c->hs_error_sent = 1;
    if (c->sample) { /* no error frame in gss-sample: a mechanism's error token, if any */
        if (len > 0)
            (void)sample_put_token(c, 0x02, tok, len);
        return;
    }
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
    size_t rlen = strnlen(reason, NEGIO__REASON_MAX);
    uint8_t body[4 + NEGIO__REASON_MAX];
    negio__put_u32(body, status);
    memcpy(body + 4, reason, rlen);
    c->close_sent = 1;
    (void)put_frame(c, NEGIO__FT_CLOSE, control_level(c), 0, body, 4 + rlen);
}

/* The connection is over on this side: after its last frame, TLS says so with close_notify. */
static int tls_finished(const negio_conn *c)
{
    return c->err != 0 || (c->close_sent && !c->sample);
}

/* Encrypts the frames waiting in OUT into TOUT (TLS transports). */
static void tls_pump_out(negio_conn *c)
{
    if (c->tls == NULL || !negio__tls_done(c->tls))
        return;
    if (negio__buf_size(&c->out) > 0) {
        int rc = negio__tls_send(c->tls, &c->out, &c->tout, c->detail);
        if (rc < 0) {
            negio__buf_clear(&c->out);
            fail(c, rc, NULL);
            negio__buf_clear(&c->out); /* whatever fail() added cannot be encrypted either */
        }
    }
    if (tls_finished(c) && negio__buf_size(&c->out) == 0)
        negio__tls_shutdown(c->tls, &c->tout);
}

static negio__buf *wire_out(negio_conn *c)
{
    return c->tls != NULL ? &c->tout : &c->out;
}

const uint8_t *negio_conn_send_buf(negio_conn *c, size_t *len)
{
    if (c == NULL || len == NULL)
        return NULL;
    tls_pump_out(c);
    negio__buf *w = wire_out(c);
    *len = negio__buf_size(w);
    return *len ? negio__buf_data(w) : NULL;
}

int negio_conn_send_done(negio_conn *c, size_t n)
{
    if (c == NULL || n > negio__buf_size(wire_out(c)))
        return NEGIO_ERR_INVALID;
    negio__buf_consume(wire_out(c), n);
    return NEGIO_OK;
}

/* Output taken (negio_conn_send_take) leaves in one of two ways. Output that fills at least half
 * of the connector's buffer is handed over as it is, and the connector goes on in a new buffer
 * sized for the output just taken (the next power of two, 16 KiB to 256 KiB): the owner holds at
 * most twice the bytes, and no buffer stays at the size a burst gave it. Less is copied into a
 * block of its own size, and an oversized buffer is replaced by one of that size (it is empty
 * then: nothing to move), so that the next output fills it: small messages to a slow reader,
 * each taken while a write is in flight, do not each pin a large buffer, and after a burst the
 * copies stop at once. */
#define TAKE_CAP_MIN (16 * 1024)
#define TAKE_CAP_MAX (256 * 1024)

static size_t take_cap(size_t n)
{
    size_t cap = TAKE_CAP_MIN;
    while (cap < n && cap < TAKE_CAP_MAX)
        cap *= 2;
    return cap;
}

static void *take_copy(negio__buf *w, size_t next_cap)
{
    size_t n = negio__buf_size(w);
    uint8_t *block = negio__malloc(n);
    if (block == NULL)
        return NULL;
    memcpy(block, negio__buf_data(w), n);
    negio__buf_consume(w, n);
    if (w->cap > next_cap) {
        negio__buf_free(w);
        (void)negio__buf_reserve(w, next_cap); /* without memory, the next write allocates */
    }
    return block;
}

void *negio_conn_send_take(negio_conn *c, const uint8_t **data, size_t *len)
{
    if (data != NULL)
        *data = NULL;
    if (len != NULL)
        *len = 0;
    if (c == NULL || data == NULL || len == NULL)
        return NULL;
    tls_pump_out(c);
    negio__buf *w = wire_out(c);
    size_t off = w->off, n = negio__buf_size(w);
    if (n == 0)
        return NULL;
    int copy = n < w->cap / 2;
    void *block = copy ? take_copy(w, take_cap(n)) : negio__buf_detach(w, take_cap(n));
    if (block == NULL)
        return NULL;
    *data = copy ? block : (const uint8_t *)block + off;
    *len = n;
    return block;
}

void negio_conn_send_release(void *block)
{
    negio__free(block); /* wire bytes only: nothing to wipe */
}

/* ---- input ----------------------------------------------------------------------------- */

static void release_event(negio_conn *c)
{
    negio__gss_release(&c->plain);
    if (c->in_hold > 0) {
        negio__buf_consume(&c->in, c->in_hold);
        c->in_hold = 0;
    }
    if (c->reasm_active == 2) { /* delivered last time */
        negio__buf_clear(&c->reasm);
        c->reasm_active = 0;
    }
}

static negio__buf *wire_in(negio_conn *c)
{
    return c->tls != NULL ? &c->tin : &c->in;
}

uint8_t *negio_conn_recv_buf(negio_conn *c, size_t *len)
{
    if (c == NULL || len == NULL)
        return NULL;
    *len = 0;
    if (c->err != 0 || c->eof)
        return NULL;
    release_event(c);
    negio__buf *w = wire_in(c);
    if (c->recv_chunk == 0 || !c->established)
        c->recv_chunk = RECV_CHUNK; /* a peer that has not authenticated gets no larger region */
    if (c->recv_small >= RECV_QUIET && negio__buf_size(w) == 0 && w->cap > 2 * RECV_CHUNK) {
        negio__buf_free(w); /* quiet again: the next region comes from a small buffer */
        c->recv_chunk = RECV_CHUNK;
    }
    if (negio__buf_reserve(w, c->recv_chunk) < 0) {
        fail(c, NEGIO_ERR_NOMEM, "out of memory buffering input");
        return NULL;
    }
    c->recv_granted = w->cap - w->len;
    *len = c->recv_granted;
    return w->p + w->len;
}

static void note_input(negio_conn *c, size_t n)
{
    if (n > 0)
        c->received_any = 1;
    /* the server cannot answer a token it has not seen: anything arriving at a client before its
     * first step ran was not sent in reply to us */
    if (n > 0 && c->cfg.role == NEGIO_ROLE_CLIENT && c->gss == NULL &&
        c->cfg.transport == NEGIO_TRANSPORT_PLAIN)
        c->early_input = 1;
}

int negio_conn_recv_done(negio_conn *c, size_t n)
{
    if (c == NULL || n > c->recv_granted)
        return NEGIO_ERR_INVALID;
    wire_in(c)->len += n;
    if (n >= c->recv_chunk && c->recv_chunk < RECV_CHUNK_MAX)
        c->recv_chunk *= 2;
    c->recv_small = n < RECV_CHUNK / 4 ? c->recv_small + 1 : 0;
    c->recv_granted = 0;
    note_input(c, n);
    return NEGIO_OK;
}

int negio_conn_feed(negio_conn *c, const void *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0))
        return NEGIO_ERR_INVALID;
    if (c->err != 0)
        return c->err;
    if (c->eof || c->recv_granted > 0)
        return NEGIO_ERR_STATE;
    release_event(c);
    int rc = negio__buf_append(wire_in(c), data, len);
    if (rc < 0)
        return fail(c, rc, "out of memory buffering input");
    note_input(c, len);
    return NEGIO_OK;
}

int negio_conn_feed_eof(negio_conn *c)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    c->eof = 1;
    return NEGIO_OK;
}

/* ---- handshake ------------------------------------------------------------------------- */

static int flush_queue(negio_conn *c);

/* Called once the local context is complete: announce our policy. */
static int on_context_complete(negio_conn *c)
{
    c->ctx_complete = 1;
    if (c->sample) { /* the gss-sample conversation has no policy exchange */
        sample_no_policy(c);
        return 0;
    }
    /* every HANDSHAKE frame has crossed by now: this side's last token went out just before,
     * and the peer's last one was the input of the step that completed */
    if (negio__transcript_final(&c->ts, c->transcript) < 0)
        return fail(c, NEGIO_ERR_NOMEM, "out of memory hashing the handshake");
    return put_policy(c);
}

/* The TLS handshake is done: plain TLS is now authenticated as far as it goes (POLICY next);
 * the stacked transport binds the GSS conversation that starts now to this TLS session. */
static int on_tls_ready(negio_conn *c)
{
    c->tls_ready = 1;
    if (c->cfg.transport == NEGIO_TRANSPORT_TLS)
        return on_context_complete(c);
    if (negio__tls_cert_free(c->tls) && !c->cfg.tls_allow_ntlm) {
        /* nothing but Kerberos mutual authentication can prove the server here */
        c->cfg.allowed &= ~NEGIO_ALLOW_NTLM;
        if (c->cfg.role == NEGIO_ROLE_CLIENT)
            c->cfg.require_server_auth = 1;
        if (c->cfg.allowed == 0 ||
            (c->cfg.role == NEGIO_ROLE_CLIENT && c->cfg.mech == NEGIO_MECH_NTLM))
            return fail(c, NEGIO_ERR_POLICY,
                        "certificate-free TLS refuses NTLM, which cannot authenticate the server "
                        "(negio_config_set_tls_allow_ntlm() allows it)");
    }
    int n = negio__tls_bindings(c->tls, c->cb, c->detail);
    if (n < 0)
        return fail(c, n, NULL);
    c->cb_len = (size_t)n;
    if (c->cfg.role == NEGIO_ROLE_CLIENT)
        c->step_pending = 1;
    return 0;
}

/* Decrypts what arrived into IN (TLS transports). */
static int tls_pump_in(negio_conn *c)
{
    if (c->tls == NULL || c->plain_eof)
        return 0;
    size_t before = negio__buf_size(&c->in);
    int rc = negio__tls_recv(c->tls, &c->tin, &c->in, &c->tout, c->detail);
    if (rc < 0) {
        if (!c->tls_ready)
            c->hs_error_sent = 1; /* the TLS alert, if any, is the report */
        return fail(c, rc, NULL);
    }
    if (!c->tls_ready && negio__tls_done(c->tls) && (rc = on_tls_ready(c)) < 0)
        return rc;
    /* inside TLS as on a bare stream, the server cannot answer a token it has not seen */
    if (negio__buf_size(&c->in) > before && c->cfg.role == NEGIO_ROLE_CLIENT &&
        c->cfg.transport == NEGIO_TRANSPORT_TLS_NEGOTIATE && c->gss == NULL)
        c->early_input = 1;
    if (negio__buf_size(&c->in) > before)
        c->received_any = 1;
    if (negio__tls_peer_closed(c->tls)) {
        c->plain_eof = 1;
    } else if (c->eof) {
        c->plain_eof = 1;
        c->tls_cut = 1;
    }
    return 0;
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

int negio_conn_step(negio_conn *c)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    if (c->err != 0)
        return c->err;
    if (!c->step_pending)
        return NEGIO_OK;
    if (c->early_input) /* checked before any GSS work is done for such a peer */
        return fail(c, NEGIO_ERR_PROTOCOL, "handshake frame before the client's first token");
    c->step_pending = 0;
    int rc;
    if (c->gss == NULL) {
        rc = negio__gss_new(&c->gss, &c->cfg, c->detail);
        if (rc == 0 && c->cb_len > 0)
            negio__gss_set_bindings(c->gss, c->cb, c->cb_len);
        /* the credential now holds what it needs from the password */
        if (c->cfg.password != NULL)
            explicit_bzero(c->cfg.password, strlen(c->cfg.password));
        if (rc < 0) {
            /* a server without credentials still tells the client why it gives up */
            if (c->cfg.role == NEGIO_ROLE_SERVER)
                put_hs_error(c, NULL, 0, "server credentials unavailable");
            else if (c->tls != NULL) /* the server waits inside TLS for our first token */
                put_hs_error(c, NULL, 0, "client credentials unavailable");
            else
                c->hs_error_sent = 1; /* nothing was sent yet: nobody is waiting */
            return fail(c, rc, NULL);
        }
    }
    negio__buf tok = {0};
    int complete = 0;
    /* the peer's token where it arrived (none for the client's first step) */
    const uint8_t *in = c->hs_hold > 0 ? negio__buf_data(&c->in) + c->hs_at : NULL;
    rc = negio__gss_step(c->gss, in, c->hs_hold > 0 ? c->hs_hold - c->hs_at : 0, &tok, &complete,
                         c->detail);
    int is_first_client = c->cfg.role == NEGIO_ROLE_CLIENT && in == NULL;
    negio__buf_consume(&c->in, c->hs_hold);
    c->hs_hold = 0;
    if (rc < 0) {
        /* RFC 2743 2.2.1: an error token from the mechanism still goes to the peer; but when the
         * mechanism succeeded and our own policy refused the result, the token (an NTLM
         * AUTHENTICATE, say) must not reach a server we do not trust */
        if (rc == NEGIO_ERR_HANDSHAKE)
            put_hs_error(c, negio__buf_data(&tok), negio__buf_size(&tok), negio_strerror(rc));
        else
            put_hs_error(c, NULL, 0, negio_strerror(rc));
        negio__buf_free(&tok);
        return fail(c, rc, NULL);
    }
    if (negio__buf_size(&tok) > c->cfg.limits.max_token) {
        negio__buf_free(&tok);
        return fail(c, NEGIO_ERR_TOO_LARGE, "own handshake token larger than max_token");
    }
    if (negio__buf_size(&tok) > 0 && c->sample) {
        /* gss-client opens with an empty NOOP|CONTEXT_NEXT, then CONTEXT tokens */
        if ((is_first_client && (rc = sample_put_token(c, 0x11, NULL, 0)) < 0) ||
            (rc = sample_put_token(c, 0x02, negio__buf_data(&tok), negio__buf_size(&tok))) < 0) {
            negio__buf_free(&tok);
            return fail(c, rc, "out of memory");
        }
    } else if (negio__buf_size(&tok) > 0) {
        if ((rc = put_handshake(c, negio__buf_data(&tok), negio__buf_size(&tok))) < 0) {
            negio__buf_free(&tok);
            return fail(c, rc, "out of memory");
        }
    } else if (!complete) {
        negio__buf_free(&tok);
        return fail(c, NEGIO_ERR_HANDSHAKE, "mechanism wants more but produced no token");
    }
    negio__buf_free(&tok);
    if (complete)
        return on_context_complete(c);
    return NEGIO_OK;
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

static int on_hs_error(negio_conn *c, const uint8_t *body, size_t len)
{
    char reason[NEGIO__REASON_MAX + 1] = "";
    if (len < 4 || negio__get_u32(body) > len - 4)
        return fail(c, NEGIO_ERR_PROTOCOL, "malformed handshake error frame");
    size_t tlen = negio__get_u32(body);
    clean_text(reason, sizeof(reason), body + 4 + tlen, len - 4 - tlen);
    if (c->established) /* unprotected: anyone on the path could have sent it */
        return fail(c, NEGIO_ERR_PROTOCOL,
                    "handshake error frame after establishment (unprotected, so not a report "
                    "from the peer; it said: %s)",
                    reason[0] ? reason : "(no reason)");
    char gss_text[NEGIO__DETAIL_MAX];
    negio__gss_peer_error(c->gss, body + 4, tlen, gss_text);
    return fail(c, NEGIO_ERR_PEER, "peer reported: %s%s%s", reason[0] ? reason : "(no reason)",
                gss_text[0] ? "; " : "", gss_text);
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
            return fail(c, NEGIO_ERR_INTEGRITY, "signed frame with a malformed MIC length");
        size_t mlen = negio__get_u32(body);
        /* No mechanism's MIC is shorter than 16 bytes (an NTLM signature is exactly 16, a
         * Kerberos MIC token has a 16-byte header); gss-ntlmssp reads 16 bytes whatever length
         * it is given, so a shorter one must not reach it. */
        if (mlen < MIN_TOKEN)
            return fail(c, NEGIO_ERR_INTEGRITY, "signed frame with a %zu-byte MIC", mlen);
        const uint8_t *data = body + 4 + mlen;
        size_t dlen = h->length - 4 - mlen;
        rc = negio__gss_verify(c->gss, ph, sizeof(ph), data, dlen, body + 4, mlen, &c->joined,
                               c->detail);
        if (rc < 0)
            return fail(c, rc, NULL);
        *payload = data;
        *plen = dlen;
        return 0;
    }
    uint8_t *plain;
    size_t n;
    /* A wrap token carries at least a 16-byte header or signature plus the sealed protected
     * header; gss-ntlmssp computes malloc(len - 16) without checking, so shorter ones stop here. */
    if (h->length < MIN_TOKEN + NEGIO__PH_LEN)
        return fail(c, NEGIO_ERR_INTEGRITY, "sealed frame of %u bytes is too short",
                    (unsigned)h->length);
    rc = negio__gss_unseal(c->gss, body, h->length, &plain, &n, &c->plain, c->detail);
    if (rc < 0)
        return fail(c, rc, NULL);
    /* the sealed copy of the header must match the clear one (level, type, flags) */
    if (n < NEGIO__PH_LEN || memcmp(plain, ph, NEGIO__PH_LEN) != 0)
        return fail(c, NEGIO_ERR_INTEGRITY, "sealed frame header does not match its clear header");
    *payload = plain + NEGIO__PH_LEN;
    *plen = n - NEGIO__PH_LEN;
    return 0;
}

static int on_policy(negio_conn *c, const uint8_t *p, size_t len)
{
    if (len != POLICY_LEN || p[0] != POLICY_VERSION || p[3] != 0 || negio__get_u32(p + 12) != 0)
        return fail(c, NEGIO_ERR_PROTOCOL, "malformed policy frame");
    /* the peer's view of the handshake, under its first MIC, against ours: any byte of any
     * HANDSHAKE frame changed on the way, in either direction, differs here */
    if (CRYPTO_memcmp(p + 16, c->transcript, NEGIO__TRANSCRIPT_LEN) != 0)
        return fail(c, NEGIO_ERR_INTEGRITY,
                    "the handshake was altered in transit: the peer's transcript of it differs "
                    "from this side's");
    if (p[1] > NEGIO_LEVEL_SEAL || p[2] > NEGIO_LEVEL_SEAL)
        return fail(c, NEGIO_ERR_PROTOCOL, "policy names an unknown level");
    c->peer_min = (negio_level)p[1];
    c->peer_default = (negio_level)p[2];
    c->peer_max_frame = negio__get_u32(p + 4);
    c->peer_max_message = negio__get_u32(p + 8);
    if (c->peer_max_frame < 4096 || c->peer_max_frame > 0x7fffffffu)
        return fail(c, NEGIO_ERR_PROTOCOL, "policy frame limit out of range");
    if (c->peer_default < c->cfg.min_level)
        return fail(c, NEGIO_ERR_POLICY,
                    "policy mismatch: the peer sends at %s by default, this side requires at "
                    "least %s",
                    negio_level_name(c->peer_default), negio_level_name(c->cfg.min_level));
    if (c->cfg.default_level < c->peer_min)
        return fail(c, NEGIO_ERR_POLICY,
                    "policy mismatch: this side sends at %s by default, the peer requires at "
                    "least %s",
                    negio_level_name(c->cfg.default_level), negio_level_name(c->peer_min));
    c->peer_policy = 1;
    return 0;
}

static int on_close(negio_conn *c, const uint8_t *p, size_t len, negio_event *ev)
{
    if (len < 4 || len - 4 > NEGIO__REASON_MAX)
        return fail(c, NEGIO_ERR_PROTOCOL, "malformed close frame");
    char text[NEGIO__REASON_MAX + 1];
    uint32_t status = negio__get_u32(p);
    clean_text(text, sizeof(text), p + 4, len - 4);
    c->closed = 1;
    if (status != 0)
        return fail(c, NEGIO_ERR_REJECTED, "peer closed with status %u: %s", (unsigned)status,
                    text);
    /* every side sends CLOSE: answer the peer's unless ours went first */
    if (!c->close_sent && c->established) {
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
        return fail(c, NEGIO_ERR_PROTOCOL, "protection level changed inside a message");
    if (more || c->reasm_active) {
        if (negio__buf_size(&c->reasm) + len > c->cfg.limits.max_message)
            return fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
        int rc = negio__buf_append(&c->reasm, payload, len);
        if (rc < 0)
            return fail(c, rc, "out of memory reassembling a message");
        c->reasm_active = 1;
        c->reasm_level = h->level;
        negio__gss_release(&c->plain);
        if (more)
            return 0;
        payload = negio__buf_data(&c->reasm);
        len = negio__buf_size(&c->reasm);
        c->reasm_active = 2; /* cleared on the next call */
    } else if (len > c->cfg.limits.max_message) {
        return fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
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
        limit = CONTROL_BODY_MAX(POLICY_LEN);
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
        if (c->ctx_complete)
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
        if (!c->ctx_complete)
            bad = "policy frame before the handshake completed";
        else if (c->peer_policy)
            bad = "second policy frame";
        break;
    case NEGIO__FT_CLOSE:
        /* a peer that found our POLICY unacceptable closes before we are established */
        if (!c->ctx_complete)
            bad = "close frame before the context was complete";
        else if (c->reasm_active == 1)
            bad = "close frame inside a fragmented message";
        break;
    case NEGIO__FT_DATA:
        if (!c->established)
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
                return fail(c, NEGIO_ERR_TRUNCATED, "the stream ended during the TLS handshake");
            if (c->tls_cut)
                return fail(c, NEGIO_ERR_TRUNCATED, "the TLS stream ended without close_notify%s",
                            avail ? " inside a frame header" : "");
            return fail(c, NEGIO_ERR_TRUNCATED,
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
        return fail(c, rc, "%s", why);
    if (avail - NEGIO__HDR_LEN < h.length) {
        if (eof)
            return fail(c, NEGIO_ERR_TRUNCATED, "%s ended inside a %s frame",
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
            return fail(c, rc, "out of memory hashing the handshake");
        c->rounds++;
        c->hs_hold = total;
        c->hs_at = NEGIO__HDR_LEN;
        c->step_pending = 1;
        return 0;
    case NEGIO__FT_HS_ERROR:
        return on_hs_error(c, body, h.length);
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

int negio_conn_next_event(negio_conn *c, negio_event *ev)
{
    if (c == NULL || ev == NULL)
        return NEGIO_ERR_INVALID;
    memset(ev, 0, sizeof(*ev));
    if (c->recv_granted > 0 && c->err == 0)
        return NEGIO_ERR_STATE; /* negio_conn_recv_done() first */
    release_event(c);
    if (c->tls != NULL && c->err == 0 && !c->closed) {
        int rc = tls_pump_in(c);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        if (c->err != 0)
            return c->err;
        if (c->closed)
            return 0;
        if (c->step_pending) {
            if (c->cfg.deferred_steps)
                return 0;
            int rc = negio_conn_step(c);
            if (rc < 0)
                return rc;
            continue;
        }
        if (!c->established && c->ctx_complete && c->peer_policy) {
            c->established = 1;
            c->in.tight = c->tin.tight = 0;
            int rc = flush_queue(c);
            if (rc < 0)
                return rc;
            ev->type = NEGIO_EV_ESTABLISHED;
            return 1;
        }
        int progress;
        int rc = c->sample ? sample_parse_one(c, ev, &progress) : parse_one(c, ev, &progress);
        if (rc != 0)
            return rc;
        if (!progress)
            return 0;
    }
}

/* ---- application writes ---------------------------------------------------------------- */

/* The rule is shared with the engine (core/write_check.h); these are its facts. */
static int check_write(negio_conn *c, size_t len, negio_level level)
{
    negio__write_limits l = {
        .tls_only = c->cfg.transport == NEGIO_TRANSPORT_TLS,
        .max_message = c->cfg.limits.max_message,
        .peer_known = c->established,
        .peer_min = c->peer_min,
        .peer_max_message = c->peer_max_message,
    };
    return negio__write_check(&l, len, level);
}

static int flush_queue(negio_conn *c)
{
    while (negio__buf_size(&c->queue) > 0) {
        const uint8_t *q = negio__buf_data(&c->queue);
        negio_level level = (negio_level)q[0];
        size_t len = negio__get_u32(q + 1);
        int rc = check_write(c, len, level);
        if (rc == NEGIO_ERR_LEVEL)
            return fail(c, NEGIO_ERR_POLICY,
                        "a message written before completion at level %s is below the peer's "
                        "minimum %s",
                        negio_level_name(level), negio_level_name(c->peer_min));
        if (rc == NEGIO_ERR_MSG_SIZE)
            return fail(c, NEGIO_ERR_POLICY,
                        "a message written before completion exceeds the peer's limit of %u bytes",
                        (unsigned)c->peer_max_message);
        if ((rc = put_message(c, q + 5, len, level)) < 0)
            return rc;
        negio__buf_consume(&c->queue, 5 + len);
    }
    return 0;
}

int negio_conn_write(negio_conn *c, const void *data, size_t len, negio_level level)
{
    if (c == NULL || (data == NULL && len > 0) || level < NEGIO_LEVEL_DEFAULT ||
        level > NEGIO_LEVEL_SEAL)
        return NEGIO_ERR_INVALID;
    if (c->err != 0)
        return c->err;
    if (c->close_sent || c->closed)
        return NEGIO_ERR_STATE;
    if (level == NEGIO_LEVEL_DEFAULT)
        level = c->cfg.default_level;
    int rc = check_write(c, len, level);
    if (rc < 0)
        return rc;
    if (c->established)
        return put_message(c, data, len, level);
    if (negio__buf_size(&c->queue) + 5 + len > c->cfg.limits.max_queued)
        return NEGIO_ERR_MSG_SIZE;
    uint8_t h[5] = {(uint8_t)level};
    negio__put_u32(h + 1, (uint32_t)len);
    if ((rc = negio__buf_append(&c->queue, h, sizeof(h))) < 0 ||
        (rc = negio__buf_append(&c->queue, data, len)) < 0)
        return fail(c, NEGIO_ERR_NOMEM, "out of memory queueing a write");
    return NEGIO_OK;
}

int negio_conn_close(negio_conn *c, uint32_t status, const char *reason)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    if (c->close_sent)
        return NEGIO_ERR_STATE;
    if (c->err != 0)
        return c->err;
    if (reason == NULL)
        reason = "";
    c->close_sent = 1;
    if (!c->established) {
        /* no context to protect a close with: tell the peer and stop the handshake here */
        put_hs_error(c, NULL, 0, reason[0] ? reason : "closed before authentication completed");
        c->step_pending = 0;
        fail(c, NEGIO_ERR_CLOSED, "closed locally before authentication completed");
        return NEGIO_OK;
    }
    if (c->sample) {
        if (c->cfg.role == NEGIO_ROLE_CLIENT)
            return sample_put_token(c, 0x01, NULL, 0) < 0
                       ? fail(c, NEGIO_ERR_NOMEM, "out of memory")
                       : NEGIO_OK;
        return NEGIO_OK; /* gss-server just closes */
    }
    put_close(c, status, reason);
    return c->err;
}

/* ---- queries --------------------------------------------------------------------------- */

/* A whole frame (or a header that will fail its checks) is buffered. */
static int frame_ready(const negio_conn *c)
{
    size_t avail = negio__buf_size(&c->in) - c->in_hold;
    if (c->sample)
        return avail >= 5 && avail - 5 >= negio__get_u32(negio__buf_data(&c->in) + c->in_hold + 1);
    if (avail < NEGIO__HDR_LEN)
        return 0;
    negio__frame_hdr h;
    char why[160];
    /* the checks parse_one makes, so that a header it will refuse counts as ready */
    if (head_check(c, negio__buf_data(&c->in) + c->in_hold, &h, why, sizeof(why)) < 0)
        return 1;
    return avail - NEGIO__HDR_LEN >= h.length;
}

/* Bytes for the wire exist or will once negio_conn_send_buf() encrypts them. */
static int has_output(const negio_conn *c)
{
    if (c->tls == NULL)
        return negio__buf_size(&c->out) > 0;
    if (negio__buf_size(&c->tout) > 0)
        return 1;
    if (!negio__tls_done(c->tls))
        return 0;
    return negio__buf_size(&c->out) > 0 || (tls_finished(c) && !negio__tls_shutdown_sent(c->tls));
}

unsigned negio_conn_want(const negio_conn *c)
{
    if (c == NULL)
        return 0;
    unsigned w = 0;
    if (has_output(c))
        w |= NEGIO_WANT_WRITE;
    if (c->err != 0 || c->closed)
        return w;
    if (c->step_pending)
        w |= NEGIO_WANT_STEP;
    else if (frame_ready(c) || c->eof || (c->tls != NULL && negio__buf_size(&c->tin) > 0) ||
             (!c->established && c->ctx_complete && c->peer_policy))
        w |= NEGIO_WANT_EVENT;
    if (!c->eof)
        w |= NEGIO_WANT_READ;
    return w;
}

/* negio_auth_info as negio 0.2 declared it ends with channel_bound (core/sized.h) */
#define AUTH_INFO_SIZE_0_2 NEGIO__END(negio_auth_info, channel_bound)

int negio_conn_auth_info(const negio_conn *c, negio_auth_info *caller)
{
    if (c == NULL || caller == NULL)
        return NEGIO_ERR_INVALID;
    if (!c->established)
        return NEGIO_ERR_STATE;
    /* filled whole here, then as much of it as the caller has room for */
    negio_auth_info whole = {.size = sizeof(whole)}, *info = &whole;
    if (c->gss != NULL) {
        negio__gss_info(c->gss, info);
        info->client_authenticated = 1;
    }
    if (c->tls != NULL) {
        negio__tls_info(c->tls, info);
        int client = c->cfg.role == NEGIO_ROLE_CLIENT;
        if (c->gss == NULL) { /* plain TLS: the certificates are all there is */
            info->mech = NEGIO_MECH_NONE;
            info->peer = info->tls_peer;
            info->client_authenticated = !client && info->tls_peer_verified;
        } else {
            info->channel_bound = 1;
        }
        if (client && info->tls_peer_verified)
            info->server_authenticated = 1;
    }
    info->peer_min_level = c->peer_min;
    info->peer_default_level = c->peer_default;
    info->peer_max_message = c->peer_max_message;
    return negio__sized_out(caller, &whole, sizeof(whole), AUTH_INFO_SIZE_0_2);
}

int negio_conn_error(const negio_conn *c)
{
    return c == NULL ? NEGIO_ERR_INVALID : c->err;
}

const char *negio_conn_error_detail(const negio_conn *c)
{
    return (c == NULL || c->err == 0) ? "" : c->detail;
}

int negio_conn_is_established(const negio_conn *c)
{
    return c != NULL && c->established && c->err == 0;
}

size_t negio_conn_pending_bytes(const negio_conn *c)
{
    return c == NULL
               ? 0
               : negio__buf_size(&c->queue) + negio__buf_size(&c->out) + negio__buf_size(&c->tout);
}

negio_delegated *negio_conn_delegated(const negio_conn *c)
{
    return c != NULL && c->established && c->gss != NULL ? negio__gss_delegated(c->gss) : NULL;
}

/* ---- the gss-sample profile (MIT's src/appl/gss-sample) ------------------------------------ *
 * Token framing: [flags u8][length u32 BE][token]. Flags: NOOP 0x01, CONTEXT 0x02, DATA 0x04,
 * MIC 0x08, CONTEXT_NEXT 0x10, WRAPPED 0x20, ENCRYPTED 0x40, SEND_MIC 0x80. */

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

/* No policy is exchanged: the peer accepts what it accepts, our own limits stand in for its. */
static void sample_no_policy(negio_conn *c)
{
    c->peer_policy = 1;
    c->peer_min = NEGIO_LEVEL_NONE;
    c->peer_default = c->cfg.default_level;
    c->peer_max_frame = c->cfg.limits.max_frame;
    c->peer_max_message = c->cfg.limits.max_message;
}

/* Client: one message as DATA|SEND_MIC, wrapped (and encrypted at seal) unless at none; the
 * plaintext is kept until the server's MIC over it has been verified. */
static int sample_put_message(negio_conn *c, const uint8_t *data, size_t len, negio_level level)
{
    int rc;
    if (c->cfg.role != NEGIO_ROLE_CLIENT)
        return fail(c, NEGIO_ERR_STATE, "a gss-sample server only answers; it sends no messages");
    if ((rc = negio__buf_append_u32(&c->sample_sent, (uint32_t)len)) < 0 ||
        (rc = negio__buf_append(&c->sample_sent, data, len)) < 0)
        return fail(c, rc, "out of memory");
    uint8_t flags = S_DATA | S_SEND_MIC;
    if (level == NEGIO_LEVEL_NONE)
        return sample_put_token(c, flags, data, len) < 0 ? fail(c, NEGIO_ERR_NOMEM, "out of memory")
                                                         : 0;
    flags |= S_WRAPPED | (level == NEGIO_LEVEL_SEAL ? S_ENCRYPTED : 0);
    negio__buf_clear(&c->scratch);
    rc = negio__gss_wrap(c->gss, level == NEGIO_LEVEL_SEAL, data, len, &c->scratch, c->detail);
    if (rc < 0)
        return fail(c, rc, NULL);
    rc = sample_put_token(c, flags, negio__buf_data(&c->scratch), negio__buf_size(&c->scratch));
    negio__buf_clear(&c->scratch);
    return rc < 0 ? fail(c, rc, "out of memory") : 0;
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
            return fail(c, NEGIO_ERR_INTEGRITY, "wrap token of %zu bytes is too short", len);
        rc = negio__gss_unwrap(c->gss, tok, len, &plain, &mlen, &c->plain, &conf, c->detail);
        if (rc < 0)
            return fail(c, rc, NULL);
        if ((flags & S_ENCRYPTED) && !conf)
            return fail(c, NEGIO_ERR_INTEGRITY,
                        "message flagged ENCRYPTED arrived in an integrity-only wrap token");
        msg = plain;
        /* confidentiality is claimed only where the context negotiated it (its keys were then
         * checked for strength); gss-ntlmssp reports conf_state 1 regardless */
        level = conf && negio__gss_has_conf(c->gss) ? NEGIO_LEVEL_SEAL : NEGIO_LEVEL_SIGN;
    }
    /* gss-client -nw leaves ENCRYPTED set on a plaintext message: the flag proves nothing and
     * cannot raise the level, which comes from the token alone */
    if (level < c->cfg.min_level)
        return fail(c, NEGIO_ERR_DOWNGRADE, "%s message received, minimum is %s",
                    negio_level_name(level), negio_level_name(c->cfg.min_level));
    if (mlen > c->cfg.limits.max_message)
        return fail(c, NEGIO_ERR_TOO_LARGE, "message larger than max_message");
    if (flags & S_SEND_MIC) {
        negio__buf_clear(&c->scratch);
        rc = negio__gss_sign(c->gss, NULL, 0, msg, mlen, &c->scratch, NULL, c->detail);
        if (rc < 0)
            return fail(c, rc, NULL);
        rc = sample_put_token(c, S_MIC, negio__buf_data(&c->scratch), negio__buf_size(&c->scratch));
        negio__buf_clear(&c->scratch);
    } else {
        rc = sample_put_token(c, S_NOOP, NULL, 0);
    }
    if (rc < 0)
        return fail(c, rc, "out of memory");
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
        return fail(c, NEGIO_ERR_PROTOCOL, "an answer to no message");
    const uint8_t *q = negio__buf_data(&c->sample_sent);
    size_t mlen = negio__get_u32(q);
    if (flags == S_NOOP) /* we always ask for a MIC: an empty answer proves nothing */
        return fail(c, NEGIO_ERR_INTEGRITY, "the server answered without the MIC it was asked for");
    int rc = negio__gss_verify(c->gss, NULL, 0, q + 4, mlen, tok, len, NULL, c->detail);
    if (rc < 0)
        return fail(c, rc, NULL);
    /* the event points at the plaintext, which is dropped on the next call */
    c->in_hold = 0;
    ev->type = NEGIO_EV_ACKNOWLEDGED;
    ev->level = NEGIO_LEVEL_SIGN;
    ev->data = q + 4;
    ev->len = mlen;
    c->sample_ack = 4 + mlen;
    return 1;
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
            return fail(c, NEGIO_ERR_TRUNCATED,
                        avail ? "stream ended inside a token header"
                              : "stream ended before the end of the conversation");
        return 0;
    }
    const uint8_t *p = negio__buf_data(&c->in);
    uint8_t flags = p[0];
    uint32_t len = negio__get_u32(p + 1);
    uint64_t limit = c->ctx_complete ? c->cfg.limits.max_frame : c->cfg.limits.max_token;
    if (len > limit)
        return fail(c, NEGIO_ERR_TOO_LARGE, "token of %u bytes announced, limit %llu",
                    (unsigned)len, (unsigned long long)limit);
    if (avail - 5 < len) {
        if (c->eof)
            return fail(c, NEGIO_ERR_TRUNCATED, "stream ended inside a token");
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
            return fail(c, NEGIO_ERR_POLICY, "the gss-sample client asked for no authentication");
        if (flags != (S_NOOP | S_CONTEXT_NEXT) || len != 0)
            return fail(c, NEGIO_ERR_PROTOCOL, "expected the opening NOOP|CONTEXT_NEXT token");
        c->sample_started = 1;
        negio__buf_consume(&c->in, total);
        return 0;
    }
    if (!c->ctx_complete) {
        if (flags != S_CONTEXT || len == 0)
            return fail(c, NEGIO_ERR_PROTOCOL, "expected a context token, got flags 0x%02x",
                        (unsigned)flags);
        if (c->early_input)
            return fail(c, NEGIO_ERR_PROTOCOL, "context token before the client's first token");
        if (++c->rounds > c->cfg.limits.max_rounds)
            return fail(c, NEGIO_ERR_PROTOCOL, "more than %u handshake rounds",
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
            return fail(c, NEGIO_ERR_PROTOCOL, "unexpected token flags 0x%02x", (unsigned)flags);
        rc = sample_on_data(c, flags, tok, len, ev);
    } else {
        if (flags != S_MIC && flags != S_NOOP)
            return fail(c, NEGIO_ERR_PROTOCOL, "unexpected token flags 0x%02x", (unsigned)flags);
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
