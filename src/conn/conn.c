/* The connector's core: its life, the input and output buffers, the TLS transport under the
 * frames, the handshake steps, the events and the application's calls. What the bytes look like
 * is the wire profile's (native.c, sample.c, nns.c; conn_internal.h). Input is parsed lazily in
 * negio_conn_next_event() so that a message can be handed out straight from the input buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "conn/conn_internal.h"
#include "conn/write_check.h"
#include "identity/identity.h"
/* The receive region (negio_conn_recv_buf): RECV_CHUNK at first; doubled, up to RECV_CHUNK_MAX,
 * after every read that filled at least a region, so that a busy stream is read in large pieces
 * and the partial frame at the end of each read (moved to the front of the buffer when room runs
 * out) is moved rarely; given back when the stream has quietened (RECV_QUIET small reads in a
 * row, nothing unread), so that an idle connection does not keep what a burst made it grow to. */
#define RECV_CHUNK 16384
#define RECV_CHUNK_MAX (64 * 1024)
#define RECV_QUIET 4

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

/* Records the first fatal error; the detail must already be in c->detail or be given here. */

int negio__conn_fail(negio_conn *c, int code, const char *fmt, ...)
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
        code != NEGIO_ERR_CLOSED && !c->close_sent && !c->closed)
        c->profile->report(c, code);
    logf_(c, 0, "%s: %s", negio_err_name(code), c->detail);
    return code;
}

int negio_conn_new(negio_conn **out, const negio_config *cfg)
{
    if (out == NULL || cfg == NULL || negio__config_check(cfg) != NEGIO_OK)
        return NEGIO_ERR_INVALID;
    negio_conn *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    (void)negio__config_creds(cfg); /* the copy then shares the configuration's credentials */
    if (negio__config_copy(&c->cfg, cfg) < 0) {
        negio__free(c);
        return NEGIO_ERR_NOMEM;
    }
    c->profile = cfg->profile == NEGIO_PROFILE_GSS_SAMPLE ? &negio__profile_sample
                 : cfg->profile == NEGIO_PROFILE_NNS      ? &negio__profile_nns
                                                          : &negio__profile_native;
    /* [MS-NNS]: a Windows client with NTLM as its only package sends raw NTLM, not SPNEGO over
     * it; so does a negio client allowed NTLM alone (the server accepts both) */
    if (c->profile == &negio__profile_nns && cfg->role == NEGIO_ROLE_CLIENT &&
        cfg->mech == NEGIO_MECH_NEGOTIATE && cfg->allowed == NEGIO_ALLOW_NTLM)
        c->cfg.mech = NEGIO_MECH_NTLM;
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
            negio__conn_fail(c, rc, NULL);
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
    negio__free(c->local_name);
    negio__delegated_unref(c->delegated);
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
    if (src->phase != PHASE_ESTABLISHED || src->err != 0 || src->tls != NULL ||
        src->profile != &negio__profile_native || src->close_sent || src->closed || src->eof ||
        src->reasm_active || src->plain != NULL || src->in_hold != 0 ||
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
    c->delegated = NULL; /* delegation is a handshake's: a copy has none */
    c->local_name = NULL;
    if (src->local_name != NULL && (c->local_name = negio__strdup(src->local_name)) == NULL) {
        negio__free(c);
        return NEGIO_ERR_NOMEM;
    }
    if (negio__config_copy(&c->cfg, &src->cfg) < 0) {
        negio__free(c->local_name);
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

/* The connection is over on this side: after its last frame, TLS says so with close_notify. */
static int tls_finished(const negio_conn *c)
{
    return c->err != 0 || (c->close_sent && c->profile->protected_close);
}

/* Encrypts the frames waiting in OUT into TOUT (TLS transports). */
static void tls_pump_out(negio_conn *c)
{
    if (c->tls == NULL || !negio__tls_done(c->tls))
        return;
    if (negio__buf_size(&c->out) > 0) {
        size_t before = negio__buf_size(&c->out);
        int rc = negio__tls_send(c->tls, &c->out, &c->tout, c->detail);
        c->out_taken += before - negio__buf_size(&c->out);
        if (rc < 0) {
            negio__buf_clear(&c->out);
            negio__conn_fail(c, rc, NULL);
            negio__buf_clear(
                &c->out); /* whatever negio__conn_fail() added cannot be encrypted either */
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
    if (c->tls == NULL)
        c->out_taken += n;
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
    if (c->tls == NULL)
        c->out_taken += n;
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
    if (c->recv_chunk == 0 || c->phase != PHASE_ESTABLISHED)
        c->recv_chunk = RECV_CHUNK; /* a peer that has not authenticated gets no larger region */
    if (c->recv_small >= RECV_QUIET && negio__buf_size(w) == 0 && w->cap > 2 * RECV_CHUNK) {
        negio__buf_free(w); /* quiet again: the next region comes from a small buffer */
        c->recv_chunk = RECV_CHUNK;
    }
    if (negio__buf_reserve(w, c->recv_chunk) < 0) {
        negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory buffering input");
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
        return negio__conn_fail(c, rc, "out of memory buffering input");
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
    c->phase = PHASE_COMPLETE;
    return c->profile->on_complete(c);
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
            return negio__conn_fail(
                c, NEGIO_ERR_POLICY,
                "certificate-free TLS refuses NTLM, which cannot authenticate the server "
                "(negio_config_set_tls_allow_ntlm() allows it)");
    }
    int n = negio__tls_bindings(c->tls, c->cb, c->detail);
    if (n < 0)
        return negio__conn_fail(c, n, NULL);
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
        return negio__conn_fail(c, rc, NULL);
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

/* A server's context is complete: who the peer is locally (src/identity/map.c) and what it
 * delegated, both kept by the connector. */
static int server_identity(negio_conn *c)
{
    int rc = negio__identity_local_name(&c->cfg, c->gss, &c->local_name);
    void *cred = negio__gss_take_delegated(c->gss);
    if (rc == 0 && cred != NULL) {
        negio_auth_info info = {.size = sizeof(info)};
        negio__gss_info(c->gss, &info);
        if ((c->delegated = negio__delegated_new(&cred, info.peer)) == NULL)
            rc = NEGIO_ERR_NOMEM;
    }
    negio__gss_cred_release(&cred);
    return rc;
}

const char *negio_conn_peer_refusal(const negio_conn *c)
{
    return c != NULL && c->peer_error_held ? c->held_reason : NULL;
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
        return negio__conn_fail(c, NEGIO_ERR_PROTOCOL,
                                "handshake frame before the client's first token");
    c->step_pending = 0;
    if (c->peer_error_held)
        return c->profile->held_error(c);
    int rc;
    if (c->gss == NULL) {
        rc = negio__gss_new(&c->gss, &c->cfg,
                            c->cfg.delegated ? negio__delegated_cred(c->cfg.delegated) : NULL,
                            c->detail);
        if (rc == 0 && c->cb_len > 0)
            negio__gss_set_bindings(c->gss, c->cb, c->cb_len);
        /* the credential now holds what it needs from the password */
        if (c->cfg.password != NULL)
            explicit_bzero(c->cfg.password, strlen(c->cfg.password));
        if (rc < 0) {
            /* a server without credentials still tells the client why it gives up */
            const char *why = rc == NEGIO_ERR_NOMEM              ? negio_strerror(rc)
                              : c->cfg.role == NEGIO_ROLE_SERVER ? "server credentials unavailable"
                                                                 : "client credentials unavailable";
            if (c->cfg.role == NEGIO_ROLE_SERVER)
                c->profile->put_error(c, NULL, 0, why);
            else if (c->tls != NULL) /* the server waits inside TLS for our first token */
                c->profile->put_error(c, NULL, 0, why);
            else
                c->hs_error_sent = 1; /* nothing was sent yet: nobody is waiting */
            return negio__conn_fail(c, rc, NULL);
        }
    }
    negio__buf tok = {0};
    int complete = 0;
    /* the peer's token where it arrived (none for the client's first step) */
    const uint8_t *in = c->hs_hold > 0 ? negio__buf_data(&c->in) + c->hs_at : NULL;
    rc = negio__gss_step(c->gss, in, c->hs_hold > 0 ? c->hs_hold - c->hs_at : 0, &tok, &complete,
                         c->detail);
    unsigned tok_flags = (c->cfg.role == NEGIO_ROLE_CLIENT && in == NULL ? NEGIO__TOKEN_FIRST : 0) |
                         (complete ? NEGIO__TOKEN_LAST : 0);
    negio__buf_consume(&c->in, c->hs_hold);
    c->hs_hold = 0;
    if (rc < 0) {
        /* RFC 2743 2.2.1: an error token from the mechanism still goes to the peer; but when the
         * mechanism succeeded and our own policy refused the result, the token (an NTLM
         * AUTHENTICATE, say) must not reach a server we do not trust */
        if (rc == NEGIO_ERR_HANDSHAKE)
            c->profile->put_error(c, negio__buf_data(&tok), negio__buf_size(&tok),
                                  negio_strerror(rc));
        else
            c->profile->put_error(c, NULL, 0, negio_strerror(rc));
        negio__buf_free(&tok);
        return negio__conn_fail(c, rc, NULL);
    }
    if (negio__buf_size(&tok) > c->cfg.limits.max_token) {
        negio__buf_free(&tok);
        return negio__conn_fail(c, NEGIO_ERR_TOO_LARGE,
                                "own handshake token larger than max_token");
    }
    if (negio__buf_size(&tok) > 0) {
        if ((rc = c->profile->put_token(c, negio__buf_data(&tok), negio__buf_size(&tok),
                                        tok_flags)) < 0) {
            negio__buf_free(&tok);
            return negio__conn_fail(c, rc, "out of memory");
        }
    } else if (!complete) {
        negio__buf_free(&tok);
        return negio__conn_fail(c, NEGIO_ERR_HANDSHAKE,
                                "mechanism wants more but produced no token");
    }
    negio__buf_free(&tok);
    if (complete && c->cfg.role == NEGIO_ROLE_SERVER && (rc = server_identity(c)) < 0)
        return negio__conn_fail(c, rc, "out of memory");
    if (complete)
        return on_context_complete(c);
    return NEGIO_OK;
}

static int next_event(negio_conn *c, negio_event *ev);

int negio_conn_next_event(negio_conn *c, negio_event *ev)
{
    if (c == NULL || ev == NULL)
        return NEGIO_ERR_INVALID;
    memset(ev, 0, sizeof(*ev));
    if (c->recv_granted > 0 && c->err == 0)
        return NEGIO_ERR_STATE; /* negio_conn_recv_done() first */
    int rc = next_event(c, ev);
    if (rc == 0) /* why nothing more: the owner needs no second call to ask */
        ev->want = negio_conn_want(c);
    return rc;
}

static int next_event(negio_conn *c, negio_event *ev)
{
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
        if (c->phase == PHASE_COMPLETE && c->peer_policy) {
            c->phase = PHASE_ESTABLISHED;
            c->in.tight = c->tin.tight = 0;
            int rc = flush_queue(c);
            if (rc < 0)
                return rc;
            ev->type = NEGIO_EV_ESTABLISHED;
            return 1;
        }
        int progress;
        int rc = c->profile->parse_one(c, ev, &progress);
        if (rc != 0)
            return rc;
        if (!progress)
            return 0;
    }
}

/* ---- application writes ---------------------------------------------------------------- */

/* The rule is shared with the engine (conn/write_check.h); these are its facts. */
static int check_write(negio_conn *c, size_t len, negio_level level)
{
    negio__write_limits l = {
        .tls_only = c->cfg.transport == NEGIO_TRANSPORT_TLS,
        .max_message =
            c->profile->max_message ? c->profile->max_message(c) : c->cfg.limits.max_message,
        .peer_known = c->phase == PHASE_ESTABLISHED,
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
            return negio__conn_fail(
                c, NEGIO_ERR_POLICY,
                "a message written before completion at level %s is below the peer's "
                "minimum %s",
                negio_level_name(level), negio_level_name(c->peer_min));
        if (rc == NEGIO_ERR_MSG_SIZE)
            return negio__conn_fail(
                c, NEGIO_ERR_POLICY,
                "a message written before completion exceeds the peer's limit of %u bytes",
                (unsigned)c->peer_max_message);
        if ((rc = c->profile->put_message(c, q + 5, len, level)) < 0)
            return rc;
        negio__buf_consume(&c->queue, 5 + len);
    }
    return 0;
}

/* One protection level per stream ([MS-NNS]): the configured default, by name or by value (the
 * engine resolves NEGIO_LEVEL_DEFAULT itself), stands for the stream's level; another level is
 * refused, unless it is the stream's. 0 or NEGIO_ERR_LEVEL. */
static int one_level(negio_conn *c, negio_level level)
{
    if (level == c->cfg.default_level ||
        (c->phase == PHASE_ESTABLISHED && level == c->stream_level))
        return 0;
    if (c->phase == PHASE_ESTABLISHED)
        logf_(c, 1,
              "write at level %s refused: this profile protects the whole stream at one level "
              "(%s); a per-message level has no meaning in it",
              negio_level_name(level), negio_level_name(c->stream_level));
    else
        logf_(c, 1,
              "write at level %s refused: this profile protects the whole stream at one level, "
              "not known before authentication completes; write at the default level",
              negio_level_name(level));
    return NEGIO_ERR_LEVEL;
}

int negio_conn_write(negio_conn *c, const void *data, size_t len, negio_level level)
{
    if (c == NULL || (data == NULL && len > 0) || level < NEGIO_LEVEL_DEFAULT ||
        level > NEGIO_LEVEL_SEAL)
        return NEGIO_ERR_INVALID;
    if (c->err != 0)
        return c->err;
    /* half-close: the peer's CLOSE (or FIN) ended its sending only; ours goes on until our own
     * close */
    if (c->close_sent ||
        (c->closed && !(c->cfg.half_close && c->phase == PHASE_ESTABLISHED &&
                        (c->profile->protected_close || c->profile->fin_half_close))))
        return NEGIO_ERR_STATE;
    if (level == NEGIO_LEVEL_DEFAULT)
        level = c->cfg.default_level;
    int rc;
    if (c->profile->one_level && (rc = one_level(c, level)) < 0)
        return rc;
    rc = check_write(c, len, level);
    if (rc < 0)
        return rc;
    if (c->phase == PHASE_ESTABLISHED)
        return c->profile->put_message(c, data, len, level);
    if (negio__buf_size(&c->queue) + 5 + len > c->cfg.limits.max_queued)
        return NEGIO_ERR_MSG_SIZE;
    uint8_t h[5] = {(uint8_t)level};
    negio__put_u32(h + 1, (uint32_t)len);
    if ((rc = negio__buf_append(&c->queue, h, sizeof(h))) < 0 ||
        (rc = negio__buf_append(&c->queue, data, len)) < 0)
        return negio__conn_fail(c, NEGIO_ERR_NOMEM, "out of memory queueing a write");
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
    if (c->phase != PHASE_ESTABLISHED) {
        /* no context to protect a close with: tell the peer and stop the handshake here */
        c->profile->put_error(c, NULL, 0,
                              reason[0] ? reason : "closed before authentication completed");
        c->step_pending = 0;
        negio__conn_fail(c, NEGIO_ERR_CLOSED, "closed locally before authentication completed");
        return NEGIO_OK;
    }
    return c->profile->close(c, status, reason);
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
    if (c->shut_send)
        w |= NEGIO_WANT_SHUTDOWN;
    if (c->step_pending)
        w |= NEGIO_WANT_STEP;
    else if (c->profile->unit_ready(c) || c->eof ||
             (c->tls != NULL && negio__buf_size(&c->tin) > 0) ||
             (c->phase == PHASE_COMPLETE && c->peer_policy))
        w |= NEGIO_WANT_EVENT;
    if (!c->eof)
        w |= NEGIO_WANT_READ;
    return w;
}

/* negio_auth_info as negio 0.2 declared it ends with channel_bound (base/sized.h) */
#define AUTH_INFO_SIZE_0_2 NEGIO__END(negio_auth_info, channel_bound)

int negio_conn_auth_info(const negio_conn *c, negio_auth_info *caller)
{
    if (c == NULL || caller == NULL)
        return NEGIO_ERR_INVALID;
    if (c->phase != PHASE_ESTABLISHED)
        return NEGIO_ERR_STATE;
    /* filled whole here, then as much of it as the caller has room for */
    negio_auth_info whole = {.size = sizeof(whole)}, *info = &whole;
    if (c->gss != NULL) {
        negio__gss_info(c->gss, info);
        info->client_authenticated = 1;
        info->local_name = c->local_name;
        info->delegated = c->delegated != NULL;
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
    return c != NULL && c->phase == PHASE_ESTABLISHED && c->err == 0;
}

size_t negio_conn_pending_bytes(const negio_conn *c)
{
    return c == NULL
               ? 0
               : negio__buf_size(&c->queue) + negio__buf_size(&c->out) + negio__buf_size(&c->tout);
}

negio_delegated *negio_conn_delegated(const negio_conn *c)
{
    return c != NULL && c->phase == PHASE_ESTABLISHED ? c->delegated : NULL;
}

int negio_conn_user(negio_user **out, const negio_conn *conn, const negio_identity_policy *policy,
                    char *detail, size_t cap)
{
    if (out == NULL || conn == NULL)
        return NEGIO_ERR_INVALID;
    *out = NULL;
    negio_auth_info info = {.size = sizeof(info)};
    int rc = negio_conn_auth_info(conn, &info);
    if (rc < 0)
        return rc;
    if ((info.flags & (NEGIO_FLAG_ANON | NEGIO_FLAG_IDENTIFY)) || info.local_name == NULL) {
        if (detail != NULL && cap > 0)
            snprintf(detail, cap,
                     (info.flags & NEGIO_FLAG_ANON) ? "anonymous peers are never impersonated"
                     : (info.flags & NEGIO_FLAG_IDENTIFY)
                         ? "\"%s\" allowed identification only: it may be named, not "
                           "impersonated"
                         : "\"%s\" maps to no local account",
                     info.peer);
        return NEGIO_ERR_IDENTITY;
    }
    return negio_user_lookup(out, info.local_name, policy, detail, cap);
}
