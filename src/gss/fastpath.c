/* The Kerberos fast path (docs/ARCHITECTURE.md section 8.3): once a Kerberos context is
 * established (directly or through SPNEGO) with an AES enctype, its keys and sequence numbers
 * leave MIT's library through gss_krb5_export_lucid_sec_context, and cfx.c makes and checks the
 * RFC 4121 tokens of every protected message on OpenSSL. Decided once per connection, at
 * establishment: the lucid export takes MIT's handle, so a connection on the fast path stays on
 * it, and one that is not (NTLM, RC4, DES3, RFC 1964 tokens, the switch off) never leaves MIT's
 * path. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gss/gss_internal.h"

int negio__gss_fast_wanted(const negio_config *cfg)
{
    /* the operator's switch can only turn it off: an application that chose MIT's path keeps it */
    const char *env = getenv("NEGIO_KRB5_FAST_PATH");
    if (env != NULL && (strcmp(env, "0") == 0 || strcasecmp(env, "off") == 0 ||
                        strcasecmp(env, "no") == 0 || strcasecmp(env, "false") == 0))
        return 0;
    return cfg->kerberos_fast_path;
}

/* The enctype of the key MIT protects the context's tokens with (the acceptor's subkey when there
 * is one), from GSS_C_INQ_SSPI_SESSION_KEY: the key itself, then the OID
 * 1.2.840.113554.1.2.2.4.<enctype>. 0 when MIT cannot say. The inquiry leaves the handle as it
 * was, so it decides before the lucid export takes the handle away. */
static int32_t session_enctype(gss_ctx_id_t ctx)
{
    static const uint8_t prefix[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x04};
    OM_uint32 maj, min;
    gss_buffer_set_t set = GSS_C_NO_BUFFER_SET;
    int32_t enctype = 0;
    maj = gss_inquire_sec_context_by_oid(&min, ctx, GSS_C_INQ_SSPI_SESSION_KEY, &set);
    if (GSS_ERROR(maj) || set == GSS_C_NO_BUFFER_SET)
        return 0;
    if (set->count >= 2 && set->elements[1].length > sizeof(prefix) &&
        memcmp(set->elements[1].value, prefix, sizeof(prefix)) == 0) {
        /* the last arc, base 128 (X.690 section 8.19) */
        const uint8_t *a = (const uint8_t *)set->elements[1].value + sizeof(prefix);
        size_t n = set->elements[1].length - sizeof(prefix);
        uint32_t v = 0;
        for (size_t i = 0; i < n && i < 4; i++) {
            v = v << 7 | (a[i] & 0x7f);
            if (!(a[i] & 0x80)) {
                enctype = i + 1 == n ? (int32_t)v : 0;
                break;
            }
        }
    }
    /* the buffer set holds a copy of the session key: wiped before it is freed */
    for (size_t i = 0; i < set->count; i++)
        if (set->elements[i].value != NULL)
            explicit_bzero(set->elements[i].value, set->elements[i].length);
    gss_release_buffer_set(&min, &set);
    return enctype;
}

int negio__gss_fast_take(gss_ctx_id_t *ctx, OM_uint32 flags, negio__cfx **out, char *detail)
{
    OM_uint32 maj, min;
    *out = NULL;
    int32_t enctype = session_enctype(*ctx);
    if (!negio__cfx_supported(enctype))
        return 0; /* RC4, DES3 (RFC 1964 tokens), or an enctype yet to come: MIT's path */
    void *lucid = NULL;
    maj = gss_krb5_export_lucid_sec_context(&min, ctx, 1, &lucid);
    if (GSS_ERROR(maj)) {
        /* MIT gives the handle up only after a successful export */
        if (*ctx != GSS_C_NO_CONTEXT)
            return 0;
        negio__gss_detail(detail, "gss_krb5_export_lucid_sec_context", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_HANDSHAKE;
    }
    *ctx = GSS_C_NO_CONTEXT; /* MIT deleted it */
    const gss_krb5_lucid_context_v1_t *l = lucid;
    int rc = NEGIO_ERR_HANDSHAKE;
    if (l->version == 1 && l->protocol == 1) {
        const gss_krb5_cfx_keydata_t *kd = &l->cfx_kd;
        negio__cfx_params p = {
            .initiator = l->initiate != 0,
            .ctx_enctype = (int32_t)kd->ctx_key.type,
            .ctx_key = kd->ctx_key.data,
            .ctx_key_len = kd->ctx_key.length,
            .acceptor_subkey = kd->have_acceptor_subkey != 0,
            .acc_enctype = (int32_t)kd->acceptor_subkey.type,
            .acc_key = kd->acceptor_subkey.data,
            .acc_key_len = kd->acceptor_subkey.length,
            .send_seq = l->send_seq,
            .recv_seq = l->recv_seq,
            .do_replay = (flags & GSS_C_REPLAY_FLAG) != 0,
            .do_sequence = (flags & GSS_C_SEQUENCE_FLAG) != 0,
        };
        rc = negio__cfx_new(out, &p);
    }
    gss_krb5_free_lucid_sec_context(&min, lucid); /* MIT wipes the keys it hands out */
    if (rc == NEGIO_ERR_NOMEM) {
        negio__detail(detail, "out of memory");
        return rc;
    }
    if (rc < 0) {
        negio__detail(detail,
                      "the Kerberos context's keys (enctype %d) do not fit the fast path, "
                      "and MIT's context was given up for them; "
                      "NEGIO_KRB5_FAST_PATH=0 keeps such contexts on MIT's path",
                      (int)enctype);
        return NEGIO_ERR_HANDSHAKE;
    }
    return 1;
}

int negio__gss_recv_seq_first(const negio__gss *g, uint64_t *seq)
{
    if (g->cfx == NULL)
        return 0;
    *seq = negio__cfx_recv_next(g->cfx);
    return 1;
}

#ifdef NEGIO_TEST_HOOKS
_Atomic int negio__gss_fast_fails;
#endif

int negio__gss_fast_engage(negio__gss *g, char *detail)
{
    if (!g->fast_wanted || g->won != NEGIO_MECH_KERBEROS)
        return 0;
#ifdef NEGIO_TEST_HOOKS
    if (negio__gss_fast_fails) {
        negio__detail(detail, "gss_krb5_export_lucid_sec_context failed (test hook)");
        return NEGIO_ERR_HANDSHAKE;
    }
#endif
    int rc = negio__gss_fast_take(&g->ctx, g->flags, &g->cfx, detail);
    return rc < 0 ? rc : 0;
}

/* ---- the per-message calls -------------------------------------------------------------- */

/* Named after the GSS-API calls they stand in for, so that a log reads the same either way. */
#define FAST " (Kerberos fast path, RFC 4121)"
static const char *const fast_get_mic = "gss_get_mic" FAST;
static const char *const fast_verify_mic = "gss_verify_mic" FAST;
static const char *const fast_wrap = "gss_wrap" FAST;
static const char *const fast_unwrap = "gss_unwrap" FAST;

/* A token could not be made: memory, or OpenSSL. */
static int make_failed(char *detail, const char *call, int why)
{
    if (why == NEGIO__CFX_NOMEM) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    negio__detail(detail, "%s: OpenSSL failed", call);
    return NEGIO_ERR_INTEGRITY;
}

/* A template whose context went to its clones (negio__gss_clone) protects nothing, as a
 * template on MIT's path, whose handle is gone. */
static int template_only(const negio__gss *g, char *detail)
{
    if (!g->cfx_cloned)
        return 0;
    negio__gss_detail(detail, "the template of cloned connections" FAST, GSS_S_NO_CONTEXT, 0,
                      GSS_C_NO_OID);
    return NEGIO_ERR_INTEGRITY;
}

int negio__gss_fast_sign(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                         size_t blen, negio__buf *out, char *detail)
{
    int why = 0;
    if (template_only(g, detail) < 0)
        return NEGIO_ERR_INTEGRITY;
    negio__cfx_piece pieces[2] = {{head, hlen}, {body, blen}};
    OM_uint32 maj = negio__cfx_get_mic(g->cfx, pieces, 2, out, &why);
    return maj == GSS_S_COMPLETE ? 0 : make_failed(detail, fast_get_mic, why);
}

int negio__gss_fast_verify(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                           size_t blen, const uint8_t *mic, size_t mic_len, char *detail)
{
    int why = 0;
    if (template_only(g, detail) < 0)
        return NEGIO_ERR_INTEGRITY;
    negio__cfx_piece pieces[2] = {{head, hlen}, {body, blen}};
    OM_uint32 maj = negio__cfx_verify_mic(g->cfx, pieces, 2, mic, mic_len, &why);
    if (maj == GSS_S_COMPLETE)
        return 0;
    negio__gss_frame_detail(g, detail, fast_verify_mic, maj, 0);
    return NEGIO_ERR_INTEGRITY;
}

int negio__gss_fast_wrap(negio__gss *g, int conf_req, const uint8_t *msg, size_t len,
                         negio__buf *out, char *detail)
{
    int why = 0;
    if (template_only(g, detail) < 0)
        return NEGIO_ERR_INTEGRITY;
    /* MIT's wrap seals whenever confidentiality is asked for: so does this one */
    OM_uint32 maj = negio__cfx_wrap(g->cfx, conf_req, msg, len, out, &why);
    return maj == GSS_S_COMPLETE ? 0 : make_failed(detail, fast_wrap, why);
}

int negio__gss_fast_unwrap(negio__gss *g, const uint8_t *tok, size_t len, struct plain *p,
                           int *conf_state, char *detail)
{
    int why = 0;
    if (template_only(g, detail) < 0)
        return NEGIO_ERR_INTEGRITY;
    OM_uint32 maj = negio__cfx_unwrap(g->cfx, tok, len, &p->fast, conf_state, &why);
    if (maj == GSS_S_COMPLETE)
        return 0;
    if (why == NEGIO__CFX_NOMEM) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    negio__gss_frame_detail(g, detail, fast_unwrap, maj, 0);
    return NEGIO_ERR_INTEGRITY;
}
