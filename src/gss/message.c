/* Per-message protection: MICs (one piece, or Kerberos IOV over the pieces where they lie),
 * wrap and unwrap, and the unwrapped plaintext's release (docs/ARCHITECTURE.md section 8.3).
 * A Kerberos context on the fast path (g->cfx) goes to fastpath.c instead of GSS-API. */
#include <string.h>

#include "base/alloc.h"
#include "gss/gss_internal.h"

#ifdef NEGIO_TEST_HOOKS
_Atomic int negio__gss_no_iov;
_Atomic int negio__gss_nns_unordered;

#endif

/* Whether MICs can be made and checked over separate pieces: MIT's Kerberos mechanism (also
 * under SPNEGO) has the IOV calls, and the fast path takes pieces; gss-ntlmssp has not. */
static int mic_iov(const negio__gss *g)
{
#ifdef NEGIO_TEST_HOOKS
    if (negio__gss_no_iov)
        return 0;
#endif
    return g->won == NEGIO_MECH_KERBEROS;
}

int negio__gss_mic_joins(const negio__gss *g)
{
    return !mic_iov(g);
}

int negio__gss_mic_length(negio__gss *g, size_t *len, char *detail)
{
    OM_uint32 maj, min;
    if (g->won != NEGIO_MECH_KERBEROS) {
        *len = 16; /* an NTLMSSP_MESSAGE_SIGNATURE ([MS-NLMP] 2.2.2.9) */
        return 0;
    }
    if (g->cfx != NULL) { /* the fast path holds the keys; MIT's context is gone */
        *len = negio__cfx_mic_length(g->cfx);
        return 0;
    }
    /* asks for the size only: no token is made, no sequence number taken */
    gss_iov_buffer_desc iov[2] = {
        {GSS_IOV_BUFFER_TYPE_DATA, {0, NULL}},
        {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {0, NULL}},
    };
    maj = gss_get_mic_iov_length(&min, g->ctx, GSS_C_QOP_DEFAULT, iov, 2);
    if (maj != GSS_S_COMPLETE) {
        negio__gss_detail(detail, "gss_get_mic_iov_length", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_INTEGRITY;
    }
    *len = iov[1].buffer.length;
    return 0;
}

/* The message a MIC covers, in one piece for gss_get_mic/gss_verify_mic: BODY itself, or
 * HEAD || BODY joined in TMP (cleared by the caller after the call). */
static int mic_message(gss_buffer_desc *m, negio__buf *tmp, const uint8_t *head, size_t hlen,
                       const uint8_t *body, size_t blen, char *detail)
{
    *m = (gss_buffer_desc){blen, (void *)body};
    if (hlen == 0)
        return 0;
    negio__buf_clear(tmp);
    int rc;
    if ((rc = negio__buf_append(tmp, head, hlen)) < 0 ||
        (rc = negio__buf_append(tmp, body, blen)) < 0) {
        negio__detail(detail, "out of memory");
        return rc;
    }
    *m = (gss_buffer_desc){negio__buf_size(tmp), (void *)negio__buf_data(tmp)};
    return 0;
}

int negio__gss_sign(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                    size_t blen, negio__buf *out, negio__buf *tmp, char *detail)
{
    OM_uint32 maj, min, min2;
    int rc;
    if (g->cfx != NULL && (hlen == 0 || mic_iov(g)))
        return negio__gss_fast_sign(g, head, hlen, body, blen, out, detail);
    if (hlen > 0 && mic_iov(g)) {
        gss_iov_buffer_desc iov[3] = {
            {GSS_IOV_BUFFER_TYPE_DATA, {hlen, (void *)head}},
            {GSS_IOV_BUFFER_TYPE_DATA, {blen, (void *)body}},
            {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {0, NULL}},
        };
        maj = gss_get_mic_iov_length(&min, g->ctx, GSS_C_QOP_DEFAULT, iov, 3);
        if (maj != GSS_S_COMPLETE) {
            negio__gss_detail(detail, "gss_get_mic_iov_length", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_INTEGRITY;
        }
        size_t mlen = iov[2].buffer.length;
        if ((rc = negio__buf_reserve(out, mlen)) < 0) {
            negio__detail(detail, "out of memory");
            return rc;
        }
        iov[2].buffer.value = out->p + out->len; /* the MIC is made in place */
        maj = gss_get_mic_iov(&min, g->ctx, GSS_C_QOP_DEFAULT, iov, 3);
        if (maj != GSS_S_COMPLETE || iov[2].buffer.length > mlen) {
            negio__gss_detail(detail, "gss_get_mic_iov", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_INTEGRITY;
        }
        out->len += iov[2].buffer.length;
        return 0;
    }
    gss_buffer_desc m, mic = GSS_C_EMPTY_BUFFER;
    if ((rc = mic_message(&m, tmp, head, hlen, body, blen, detail)) < 0)
        return rc;
    if (g->cfx != NULL) { /* the joined form, which only the test build asks for */
        rc = negio__gss_fast_sign(g, NULL, 0, m.value, m.length, out, detail);
        if (hlen > 0)
            negio__buf_clear(tmp);
        return rc;
    }
    maj = gss_get_mic(&min, g->ctx, GSS_C_QOP_DEFAULT, &m, &mic);
    if (hlen > 0)
        negio__buf_clear(tmp);
    if (maj != GSS_S_COMPLETE) {
        negio__gss_detail(detail, "gss_get_mic", maj, min, GSS_C_NO_OID);
        gss_release_buffer(&min2, &mic);
        return NEGIO_ERR_INTEGRITY;
    }
    rc = negio__buf_append(out, mic.value, mic.length);
    gss_release_buffer(&min2, &mic);
    if (rc < 0)
        negio__detail(detail, "out of memory");
    return rc;
}

int negio__gss_verify(negio__gss *g, const uint8_t *head, size_t hlen, const uint8_t *body,
                      size_t blen, const uint8_t *mic, size_t mic_len, negio__buf *tmp,
                      char *detail)
{
    OM_uint32 maj, min;
    gss_qop_t qop = 0;
    /* Every MIC from the peer, in every profile, comes here. No mechanism's is shorter than 16
     * bytes (an NTLM signature is exactly 16, a Kerberos MIC token has a 16-byte header), and
     * gss-ntlmssp reads 16 bytes whatever length it is given: a shorter one must not reach it. */
    if (mic_len < NEGIO__MIN_MIC) {
        negio__detail(detail,
                      "a MIC of %zu bytes, refused before gss_verify_mic (no mechanism's is "
                      "shorter than %d)",
                      mic_len, NEGIO__MIN_MIC);
        return NEGIO_ERR_INTEGRITY;
    }
    if (g->cfx != NULL && (hlen == 0 || mic_iov(g)))
        return negio__gss_fast_verify(g, head, hlen, body, blen, mic, mic_len, detail);
    if (hlen > 0 && mic_iov(g)) {
        /* MIT 1.20's gss_verify_mic_iov aborts the process on a CFX MIC token of 16 bytes, a
         * header without a checksum (util_cksum.c, checksum_iov_v3: assert(rrc != 0 ||
         * trailer != NULL)); no Kerberos MIC token is that short (docs/SECURITY.md section 8) */
        if (mic_len <= 16) {
            negio__gss_frame_detail(g, detail, "gss_verify_mic_iov", GSS_S_DEFECTIVE_TOKEN, 0);
            return NEGIO_ERR_INTEGRITY;
        }
        gss_iov_buffer_desc iov[3] = {
            {GSS_IOV_BUFFER_TYPE_DATA, {hlen, (void *)head}},
            {GSS_IOV_BUFFER_TYPE_DATA, {blen, (void *)body}},
            {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {mic_len, (void *)mic}},
        };
        maj = gss_verify_mic_iov(&min, g->ctx, &qop, iov, 3);
        if (maj != GSS_S_COMPLETE) {
            negio__gss_frame_detail(g, detail, "gss_verify_mic_iov", maj, min);
            return NEGIO_ERR_INTEGRITY;
        }
        return 0;
    }
    gss_buffer_desc m, t = {mic_len, (void *)mic};
    int rc = mic_message(&m, tmp, head, hlen, body, blen, detail);
    if (rc < 0)
        return rc;
    if (g->cfx != NULL) { /* the joined form, which only the test build asks for */
        rc = negio__gss_fast_verify(g, NULL, 0, m.value, m.length, mic, mic_len, detail);
        if (hlen > 0)
            negio__buf_clear(tmp);
        return rc;
    }
    maj = gss_verify_mic(&min, g->ctx, &m, &t, &qop);
    if (hlen > 0)
        negio__buf_clear(tmp);
    if (maj != GSS_S_COMPLETE) {
        negio__gss_frame_detail(g, detail, "gss_verify_mic", maj, min);
        return NEGIO_ERR_INTEGRITY;
    }
    return 0;
}

int negio__gss_wrap(negio__gss *g, int conf_req, const uint8_t *msg, size_t len, negio__buf *out,
                    char *detail)
{
    OM_uint32 maj, min, min2;
    gss_buffer_desc m = {len, (void *)msg}, tok = GSS_C_EMPTY_BUFFER;
    int conf = 0;
    if (g->cfx != NULL)
        return negio__gss_fast_wrap(g, conf_req, msg, len, out, detail);
    maj = gss_wrap(&min, g->ctx, conf_req, GSS_C_QOP_DEFAULT, &m, &conf, &tok);
    if (maj != GSS_S_COMPLETE || (conf_req && conf != 1)) {
        if (maj == GSS_S_COMPLETE)
            negio__detail(detail, "gss_wrap did not apply confidentiality");
        else
            negio__gss_detail(detail, "gss_wrap", maj, min, GSS_C_NO_OID);
        gss_release_buffer(&min2, &tok);
        return NEGIO_ERR_INTEGRITY;
    }
    int rc = negio__buf_append(out, tok.value, tok.length);
    gss_release_buffer(&min2, &tok);
    return rc;
}

int negio__gss_seal(negio__gss *g, const uint8_t *msg, size_t len, negio__buf *out, char *detail)
{
    return negio__gss_wrap(g, 1, msg, len, out, detail);
}

int negio__gss_unwrap(negio__gss *g, const uint8_t *tok, size_t len, uint8_t **plain,
                      size_t *plain_len, void **handle, int *conf_state, char *detail)
{
    OM_uint32 maj, min;
    gss_buffer_desc t = {len, (void *)tok};
    struct plain *p = &g->plain;
    if (p->busy) { /* a second one outstanding: not how the connector works, but allowed */
        p = negio__calloc(1, sizeof(*p));
        if (p == NULL)
            return NEGIO_ERR_NOMEM;
    } else {
        p->embedded = 1;
    }
    p->busy = 1;
    int conf = 0;
    gss_qop_t qop = 0;
    if (g->cfx != NULL) {
        int rc = negio__gss_fast_unwrap(g, tok, len, p, &conf, detail);
        if (rc < 0) {
            void *h = p;
            negio__gss_release(&h);
            return rc;
        }
        *plain = (uint8_t *)p->fast.msg;
        *plain_len = p->fast.len;
        *handle = p;
        *conf_state = conf;
        return 0;
    }
    maj = gss_unwrap(&min, g->ctx, &t, &p->buf, &conf, &qop);
    if (g->won == NEGIO_MECH_KERBEROS && p->buf.value != NULL && p->buf.length == 0) {
        /* MIT hands an empty message of a Wrap token in the clear back in a malloc(0) block,
         * which gss_release_buffer never frees (it frees only a non-zero length): a peer could
         * make this side lose a block per message */
        OM_uint32 min2;
        p->buf.length = 1;
        gss_release_buffer(&min2, &p->buf);
    }
    if (maj != GSS_S_COMPLETE) {
        negio__gss_frame_detail(g, detail, "gss_unwrap", maj, min);
        /* wiped and released as any result (gss-ntlmssp frees the output of a failed unwrap but
         * leaves its length set: only a non-NULL value is wiped) */
        void *h = p;
        negio__gss_release(&h);
        return NEGIO_ERR_INTEGRITY;
    }
    *plain = p->buf.value;
    *plain_len = p->buf.length;
    *handle = p;
    *conf_state = conf;
    return 0;
}

int negio__gss_unseal(negio__gss *g, const uint8_t *tok, size_t len, uint8_t **plain,
                      size_t *plain_len, void **handle, char *detail)
{
    int conf = 0;
    int rc = negio__gss_unwrap(g, tok, len, plain, plain_len, handle, &conf, detail);
    if (rc == 0 && conf != 1) {
        negio__gss_release(handle);
        negio__detail(detail, "sealed frame was not encrypted (integrity-only wrap token)");
        return NEGIO_ERR_INTEGRITY;
    }
    return rc;
}

void negio__gss_release(void **handle)
{
    OM_uint32 min;
    struct plain *p = *handle;
    if (p == NULL)
        return;
    if (p->buf.value != NULL && p->buf.length > 0)
        explicit_bzero(p->buf.value, p->buf.length);
    gss_release_buffer(&min, &p->buf);
    negio__cfx_plain_release(&p->fast);
    p->buf.value = NULL;
    p->buf.length = 0;
    p->busy = 0;
    if (!p->embedded)
        negio__free(p);
    *handle = NULL;
}
