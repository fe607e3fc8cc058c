#include "gss/peer_token.h"

#include <string.h>

#include "gss/der.h"
#include "gss/ntlm_check.h"

/* Mechanism OIDs (RFC 4178 SPNEGO; RFC 1964 Kerberos 5, its pre-standard and Microsoft variants;
 * [MS-NLMP] NTLMSSP), as their DER contents. */
static const uint8_t oid_spnego[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const uint8_t oid_krb5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_krb5_old[] = {0x2b, 0x05, 0x01, 0x05, 0x02};
static const uint8_t oid_krb5_ms[] = {0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const uint8_t oid_ntlm[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};

/* RFC 4121 4.1: the TOK_ID of Kerberos context tokens */
#define KRB_AP_REQ 0x0100u
#define KRB_AP_REP 0x0200u
#define KRB_ERROR 0x0300u

static int oid_is(const uint8_t *oid, size_t n, const uint8_t *want, size_t wn)
{
    return n == wn && memcmp(oid, want, n) == 0;
}

static negio_mech oid_mech(const uint8_t *oid, size_t n)
{
    if (oid_is(oid, n, oid_spnego, sizeof(oid_spnego)))
        return NEGIO_MECH_NEGOTIATE;
    if (oid_is(oid, n, oid_krb5, sizeof(oid_krb5)) ||
        oid_is(oid, n, oid_krb5_old, sizeof(oid_krb5_old)) ||
        oid_is(oid, n, oid_krb5_ms, sizeof(oid_krb5_ms)))
        return NEGIO_MECH_KERBEROS;
    if (oid_is(oid, n, oid_ntlm, sizeof(oid_ntlm)))
        return NEGIO_MECH_NTLM;
    return NEGIO_MECH_NONE;
}

static int is_ntlm(const uint8_t *tok, size_t n)
{
    return n >= 8 && memcmp(tok, "NTLMSSP\0", 8) == 0;
}

/* RFC 2743 3.1: [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID, innerToken }, filling TOK
 * exactly. */
static int framed(const uint8_t *tok, size_t n, negio_mech *mech, const uint8_t **inner,
                  size_t *inner_len)
{
    const uint8_t *body, *oid;
    size_t blen, olen;
    uint8_t tag;
    if (!negio__der_exact(tok, tok + n, 0x60, &body, &blen))
        return 0;
    const uint8_t *p = body, *end = body + blen;
    if (!negio__der_next(&p, end, &tag, &oid, &olen) || tag != 0x06)
        return 0;
    *mech = oid_mech(oid, olen);
    *inner = p;
    *inner_len = (size_t)(end - p);
    return 1;
}

/* A Kerberos context token: framed, a Kerberos OID, and a TOK_ID this side may receive. */
static const char *check_krb5(const negio__peer_tokens *st, const uint8_t *tok, size_t n,
                              unsigned *tok_id)
{
    negio_mech m;
    const uint8_t *in;
    size_t il;
    if (!framed(tok, n, &m, &in, &il) || m != NEGIO_MECH_KERBEROS || il < 2)
        return "malformed Kerberos token";
    unsigned id = (unsigned)in[0] << 8 | in[1];
    if (st->role == NEGIO_ROLE_SERVER ? id != KRB_AP_REQ : id != KRB_AP_REP && id != KRB_ERROR)
        return "a Kerberos message this side does not expect";
    if (tok_id != NULL)
        *tok_id = id;
    return NULL;
}

/* An NTLM message: a client receives one CHALLENGE; a server a NEGOTIATE, then an AUTHENTICATE. */
static const char *check_ntlm(negio__peer_tokens *st, const uint8_t *m, size_t n)
{
    uint32_t expect = st->role == NEGIO_ROLE_CLIENT ? 2 : st->ntlm_seen == 0 ? 1 : 3;
    if (st->ntlm_seen >= (st->role == NEGIO_ROLE_CLIENT ? 1u : 2u))
        return "more NTLM messages than the exchange has";
    const char *why = negio__ntlm_check_message(m, n, expect);
    if (why == NULL)
        st->ntlm_seen++;
    /* NTLMSSP_NEGOTIATE_IDENTIFY (bit 20) as the client asked for it: in its NEGOTIATE (flags at
     * 12; gss-ntlmssp's CHALLENGE does not echo the bit, so its AUTHENTICATE loses it) or its
     * AUTHENTICATE (flags at 60; at least 64 bytes, checked above) */
    if (why == NULL && st->role == NEGIO_ROLE_SERVER && (expect == 1 || expect == 3))
        st->ntlm_identify |= (m[expect == 1 ? 14 : 62] & 0x10) != 0;
    return why;
}

/* The inner token of MECH inside SPNEGO (or raw). A server judges a SPNEGO inner token by what it
 * is; a client by the mechanism the server named. */
static const char *check_inner(negio__peer_tokens *st, negio_mech mech, const uint8_t *tok,
                               size_t n)
{
    if (st->role == NEGIO_ROLE_SERVER && mech == NEGIO_MECH_NONE)
        mech = is_ntlm(tok, n) ? NEGIO_MECH_NTLM : NEGIO_MECH_KERBEROS;
    if (mech == NEGIO_MECH_NTLM)
        return check_ntlm(st, tok, n);
    if (mech == NEGIO_MECH_KERBEROS)
        return check_krb5(st, tok, n, NULL);
    return "a token of no mechanism negio speaks";
}

/* The context-tagged elements [0]..[MAX] of a SPNEGO SEQUENCE (RFC 4178 4.2), in increasing
 * order, each holding exactly one element. */
typedef struct tagged_walk {
    const uint8_t *p, *end;
    int last, max;
} tagged_walk;

/* The next element: 1 with its index and the one element inside it, 0 at the end, -1 when it
 * is malformed (a length past its end, an index out of range or out of order, trailing bytes). */
static int next_tagged(tagged_walk *w, int *idx, uint8_t *tag, const uint8_t **inner,
                       size_t *inner_len)
{
    const uint8_t *el;
    size_t el_len;
    uint8_t outer;
    if (w->p >= w->end)
        return 0;
    if (!negio__der_next(&w->p, w->end, &outer, &el, &el_len))
        return -1;
    *idx = outer - 0xa0;
    if (*idx < 0 || *idx > w->max || *idx <= w->last)
        return -1;
    w->last = *idx;
    const uint8_t *q = el;
    if (!negio__der_next(&q, el + el_len, tag, inner, inner_len) || q != el + el_len)
        return -1;
    return 1;
}

/* The fields of a NegTokenResp (RFC 4178 4.2.2): [1] SEQUENCE { negState [0] ENUMERATED,
 * supportedMech [1] OID, responseToken [2] OCTET STRING, mechListMIC [3] OCTET STRING }, each
 * optional, in this order. Every element must be exactly as long as its content: a parser that
 * reads an element by the length of what is inside it (MIT's does, for supportedMech) must not
 * find a different responseToken from the one checked here. */
typedef struct resp {
    int has_state;
    unsigned state;       /* 0 accept-completed, 1 accept-incomplete, 2 reject, 3 request-mic */
    negio_mech supported; /* NEGIO_MECH_NONE when absent */
    const uint8_t *token;
    size_t token_len;
} resp;

static const char *parse_resp(const uint8_t *tok, size_t n, resp *r)
{
    static const char bad[] = "malformed SPNEGO response token";
    static const uint8_t inner_tag[4] = {0x0a, 0x06, 0x04, 0x04};
    const uint8_t *body, *seq, *inner;
    size_t len, seq_len, inner_len;
    uint8_t tag;
    int idx, more;
    memset(r, 0, sizeof(*r));
    if (!negio__der_exact(tok, tok + n, 0xa1, &body, &len) ||
        !negio__der_exact(body, body + len, 0x30, &seq, &seq_len))
        return bad;
    tagged_walk w = {seq, seq + seq_len, -1, 3};
    while ((more = next_tagged(&w, &idx, &tag, &inner, &inner_len)) != 0) {
        if (more < 0 || tag != inner_tag[idx])
            return bad;
        if (idx == 0) {
            if (inner_len != 1 || inner[0] > 3)
                return "SPNEGO response with an unknown negotiation state";
            r->has_state = 1;
            r->state = inner[0];
        } else if (idx == 1) {
            r->supported = oid_mech(inner, inner_len);
            if (r->supported != NEGIO_MECH_KERBEROS && r->supported != NEGIO_MECH_NTLM)
                return "SPNEGO response names a mechanism negio does not offer";
        } else if (idx == 2) {
            r->token = inner;
            r->token_len = inner_len;
        }
    }
    return NULL;
}

/* The client's NegTokenInit (RFC 4178 4.2.1, and [MS-SPNG] NegTokenInit2): framed with the SPNEGO
 * OID, [0] { SEQUENCE { mechTypes [0], reqFlags [1], mechToken [2], mechListMIC or negHints [3],
 * mechListMIC [4] } }. *FIRST is the first mechanism listed, *TOKEN its optimistic token. */
static const char *parse_init(const uint8_t *tok, size_t n, negio_mech *first,
                              const uint8_t **token, size_t *token_len)
{
    static const char bad[] = "malformed SPNEGO initial token";
    const uint8_t *inner, *body, *seq, *content;
    size_t inner_len, len, seq_len, content_len;
    uint8_t tag;
    negio_mech m;
    int idx, more, listed = 0;
    *first = NEGIO_MECH_NONE;
    *token = NULL;
    *token_len = 0;
    if (!framed(tok, n, &m, &inner, &inner_len) || m != NEGIO_MECH_NEGOTIATE ||
        !negio__der_exact(inner, inner + inner_len, 0xa0, &body, &len) ||
        !negio__der_exact(body, body + len, 0x30, &seq, &seq_len))
        return bad;
    tagged_walk w = {seq, seq + seq_len, -1, 4};
    while ((more = next_tagged(&w, &idx, &tag, &content, &content_len)) != 0) {
        static const uint8_t want_tag[5] = {0x30, 0x03, 0x04, 0, 0x04};
        if (more < 0 || (idx != 3 ? tag != want_tag[idx] : tag != 0x04 && tag != 0x30))
            return bad;
        if (idx == 0) { /* SEQUENCE OF OID, at least one */
            const uint8_t *o = content, *oend = content + content_len, *oid;
            size_t olen;
            if (o == oend)
                return "SPNEGO initial token offers no mechanism";
            while (o < oend) {
                if (!negio__der_next(&o, oend, &tag, &oid, &olen) || tag != 0x06)
                    return bad;
                if (!listed++)
                    *first = oid_mech(oid, olen);
            }
            if (*first == NEGIO_MECH_NEGOTIATE) /* SPNEGO inside itself: nothing negio speaks */
                *first = NEGIO_MECH_NONE;
        } else if (idx == 2) {
            *token = content;
            *token_len = content_len;
        }
    }
    if (!listed) /* mechTypes is not OPTIONAL in RFC 4178 4.2.1 */
        return "SPNEGO initial token offers no mechanism";
    if (w.last < 0)
        return bad;
    return NULL;
}

/* The server's view of the client's first token: it also names the mechanism (ST->want). */
static const char *check_first(negio__peer_tokens *st, const uint8_t *tok, size_t n)
{
    if (is_ntlm(tok, n)) {
        st->want = NEGIO_MECH_NTLM;
        return check_ntlm(st, tok, n);
    }
    negio_mech m;
    const uint8_t *in;
    size_t il;
    if (!framed(tok, n, &m, &in, &il) || m == NEGIO_MECH_NONE)
        return "initial token names no supported mechanism";
    st->want = m;
    if (m == NEGIO_MECH_KERBEROS)
        return check_krb5(st, tok, n, NULL);
    const uint8_t *opt;
    size_t opt_len;
    negio_mech first;
    const char *why = parse_init(tok, n, &first, &opt, &opt_len);
    /* an optimistic token of a mechanism negio does not speak (NegoEx, say) reaches no mechanism
     * here: SPNEGO drops it and picks one of the others */
    if (why == NULL && opt != NULL && first != NEGIO_MECH_NONE)
        why = check_inner(st, first, opt, opt_len);
    return why;
}

int negio__peer_token_check(negio__peer_tokens *st, const uint8_t *tok, size_t len,
                            const char **why)
{
    *why = NULL;
    if (st->role == NEGIO_ROLE_SERVER && st->seen == 0) {
        *why = check_first(st, tok, len);
    } else if (st->want == NEGIO_MECH_NTLM) {
        *why = is_ntlm(tok, len) ? check_ntlm(st, tok, len) : "not an NTLM message";
    } else if (st->want == NEGIO_MECH_KERBEROS) {
        *why = check_krb5(st, tok, len, NULL);
    } else {
        resp r;
        *why = parse_resp(tok, len, &r);
        if (*why == NULL && st->role == NEGIO_ROLE_SERVER && r.supported != NEGIO_MECH_NONE)
            *why = "a client's SPNEGO response names a mechanism";
        negio_mech inner = r.supported != NEGIO_MECH_NONE ? r.supported : st->inner;
        if (*why == NULL && st->role == NEGIO_ROLE_CLIENT && inner == NEGIO_MECH_NTLM &&
            st->offered_kerberos && st->refuse_fallback) {
            *why = "the server moved SPNEGO to ntlm although this client offered kerberos with a "
                   "ticket for the service: refused as a downgrade "
                   "(negio_config_set_allow_ntlm_fallback() allows it); the usual cause is a "
                   "server that does not accept kerberos or has no key for the service in its "
                   "keytab ('negio doctor server' checks), else someone on the path rewrote the "
                   "offer";
            return NEGIO_ERR_POLICY;
        }
        if (*why == NULL && r.token != NULL)
            *why = check_inner(st, st->role == NEGIO_ROLE_CLIENT ? inner : NEGIO_MECH_NONE, r.token,
                               r.token_len);
        if (*why == NULL)
            st->inner = inner;
    }
    if (*why != NULL)
        return NEGIO_ERR_HANDSHAKE;
    st->seen++;
    return 0;
}

int negio__peer_error_token_ok(const negio__peer_tokens *st, const uint8_t *tok, size_t len)
{
    if (st->role != NEGIO_ROLE_CLIENT || len == 0)
        return 0;
    negio__peer_tokens copy = *st;
    const char *why;
    if (negio__peer_token_check(&copy, tok, len, &why) != 0)
        return 0;
    unsigned id = 0;
    if (st->want == NEGIO_MECH_KERBEROS)
        return check_krb5(st, tok, len, &id) == NULL && id == KRB_ERROR;
    if (st->want != NEGIO_MECH_NEGOTIATE || copy.inner != NEGIO_MECH_KERBEROS)
        return 0;
    resp r;
    return parse_resp(tok, len, &r) == NULL && r.token != NULL &&
           check_krb5(st, r.token, r.token_len, &id) == NULL && id == KRB_ERROR;
}

void negio__peer_tokens_own_first(negio__peer_tokens *st, const uint8_t *tok, size_t len)
{
    negio_mech first;
    const uint8_t *opt;
    size_t opt_len;
    if (st->want != NEGIO_MECH_NEGOTIATE || parse_init(tok, len, &first, &opt, &opt_len) != NULL)
        return;
    st->inner = first;
    st->offered_kerberos = first == NEGIO_MECH_KERBEROS && opt != NULL;
}

void negio__peer_token_inner(const uint8_t *tok, size_t len, negio_mech *mech,
                             const uint8_t **inner, size_t *inner_len)
{
    negio_mech m, first;
    const uint8_t *in;
    size_t il;
    resp r;
    *mech = NEGIO_MECH_NONE;
    *inner = NULL;
    *inner_len = 0;
    if (is_ntlm(tok, len)) {
        in = tok;
        il = len;
    } else if (framed(tok, len, &m, &in, &il) && m == NEGIO_MECH_KERBEROS) {
        in = tok;
        il = len;
    } else if (parse_init(tok, len, &first, &in, &il) != NULL || in == NULL) {
        if (parse_resp(tok, len, &r) != NULL || r.token == NULL)
            return;
        in = r.token;
        il = r.token_len;
    }
    if (is_ntlm(in, il))
        *mech = NEGIO_MECH_NTLM;
    else if (framed(in, il, &m, inner, inner_len) && m == NEGIO_MECH_KERBEROS)
        *mech = NEGIO_MECH_KERBEROS;
    else
        return;
    *inner = in;
    *inner_len = il;
}

int negio__peer_token_krb5(const uint8_t *tok, size_t len, unsigned *tok_id, const uint8_t **body,
                           size_t *body_len)
{
    negio_mech m;
    const uint8_t *in;
    size_t il;
    if (!framed(tok, len, &m, &in, &il) || m != NEGIO_MECH_KERBEROS || il < 2)
        return -1;
    *tok_id = (unsigned)in[0] << 8 | in[1];
    *body = in + 2;
    *body_len = il - 2;
    return 0;
}

int negio__peer_token_rejects(const uint8_t *tok, size_t len)
{
    resp r;
    return parse_resp(tok, len, &r) == NULL && r.has_state && r.state == 2;
}
