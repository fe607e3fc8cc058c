/* The security context: the provider's life, the handshake steps with the one validating path
 * for the peer's tokens (peer_token.c), the checks a completed context must pass, and its facts
 * (docs/ARCHITECTURE.md section 8.2). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "gss/gss_internal.h"

void negio__gss_set_bindings(negio__gss *g, const uint8_t *data, size_t len)
{
    if (len > sizeof(g->cb_data))
        len = sizeof(g->cb_data); /* callers pass at most NEGIO__CB_MAX */
    memcpy(g->cb_data, data, len);
    memset(&g->cb, 0, sizeof(g->cb)); /* addresses: GSS_C_AF_UNSPEC, empty (RFC 5056) */
    g->cb.application_data.value = g->cb_data;
    g->cb.application_data.length = len;
    g->has_cb = 1;
}

static gss_channel_bindings_t bindings(negio__gss *g)
{
    return g->has_cb ? &g->cb : GSS_C_NO_CHANNEL_BINDINGS;
}

/* The credential a client's context is made with: the delegated one it was given, or its own. */
static gss_cred_id_t client_cred(const negio__gss *g)
{
    return g->deleg_in != GSS_C_NO_CREDENTIAL ? g->deleg_in : g->cred;
}

/* A provider for CFG before its first step: no credential, name or context yet. */
static negio__gss *gss_alloc(const negio_config *cfg)
{
    negio__gss *g = negio__calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->cfg = cfg;
    g->role = cfg->role;
    g->want = cfg->mech;
    g->allowed = cfg->allowed;
    g->require_server_auth = cfg->require_server_auth;
    g->cred = GSS_C_NO_CREDENTIAL;
    g->deleg = GSS_C_NO_CREDENTIAL;
    g->deleg_in = GSS_C_NO_CREDENTIAL;
    g->target = GSS_C_NO_NAME;
    g->peer = GSS_C_NO_NAME;
    g->ctx = GSS_C_NO_CONTEXT;
    g->first = 1;
    g->tokens.role = cfg->role;
    g->tokens.want = cfg->role == NEGIO_ROLE_CLIENT ? cfg->mech : NEGIO_MECH_NONE;
    g->tokens.refuse_fallback = !cfg->allow_ntlm_fallback;
    g->fast_wanted = negio__gss_fast_wanted(cfg);
    g->req_flags = GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
    if (cfg->profile == NEGIO_PROFILE_NNS && cfg->role == NEGIO_ROLE_CLIENT) {
        /* [MS-NNS] 3.1.4.1: the flags say the one protection level of the stream, so the client
         * asks for what its level needs and no more (gss-ntlmssp negotiates signing for any of
         * integrity, replay or sequence, sealing for confidentiality) */
        negio_level want =
            cfg->default_level > cfg->min_level ? cfg->default_level : cfg->min_level;
        g->req_flags = 0;
        if (want >= NEGIO_LEVEL_SIGN)
            g->req_flags |= GSS_C_INTEG_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG;
        if (want == NEGIO_LEVEL_SEAL)
            g->req_flags |= GSS_C_CONF_FLAG;
#ifdef NEGIO_TEST_HOOKS
        if (negio__gss_nns_unordered) /* as .NET's client on Linux asks */
            g->req_flags &= ~(OM_uint32)(GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG);
#endif
        /* MIT's initiator claims confidentiality and integrity on the wire unless told not to,
         * and the acceptor reads them as granted: below seal, the credential says not to */
        g->no_ci = want < NEGIO_LEVEL_SEAL && cfg->mech != NEGIO_MECH_NTLM &&
                   (cfg->allowed & NEGIO_ALLOW_KERBEROS);
    }
    if (cfg->mutual)
        g->req_flags |= GSS_C_MUTUAL_FLAG;
    if (cfg->delegate)
        g->req_flags |= GSS_C_DELEG_FLAG;
    else if (cfg->role == NEGIO_ROLE_CLIENT && cfg->impersonation == NEGIO_IMPERSONATION_IDENTIFY)
        g->req_flags |= GSS_C_IDENTIFY_FLAG;
    return g;
}

int negio__gss_new(negio__gss **out, const negio_config *cfg, void *delegated, char *detail)
{
    negio__gss *g = gss_alloc(cfg);
    if (g == NULL)
        return NEGIO_ERR_NOMEM;
    int rc;
    if (g->role == NEGIO_ROLE_CLIENT) {
        /* NTLM can never authenticate the server: when that is required, never offer it, so
         * that no NTLM message is ever sent to a server we would refuse */
        if (g->require_server_auth)
            g->allowed &= ~NEGIO_ALLOW_NTLM;
        if (g->allowed == 0 || (g->want == NEGIO_MECH_NTLM && g->require_server_auth)) {
            negio__detail(detail, "server authentication required, but only ntlm is allowed "
                                  "and it cannot authenticate the server");
            negio__gss_del(g);
            return NEGIO_ERR_POLICY;
        }
        if ((g->want == NEGIO_MECH_KERBEROS && !(g->allowed & NEGIO_ALLOW_KERBEROS)) ||
            (g->want == NEGIO_MECH_NTLM && !(g->allowed & NEGIO_ALLOW_NTLM))) {
            negio__detail(detail, "mechanism %s is not in the allowed set",
                          negio_mech_name(g->want));
            negio__gss_del(g);
            return NEGIO_ERR_POLICY;
        }
        rc = negio__gss_import_name(cfg->service, GSS_C_NT_HOSTBASED_SERVICE, &g->target, detail);
        if (rc == 0 && delegated != NULL) {
            /* Delegated credentials are a Kerberos credential: used through SPNEGO, the
             * mechglue would fall back to the process's own default credentials. */
            g->want = NEGIO_MECH_KERBEROS;
            g->allowed = NEGIO_ALLOW_KERBEROS;
            g->tokens.want = NEGIO_MECH_KERBEROS;
            g->deleg_in = delegated;
        } else if (rc == 0) {
            rc = negio__gss_acquire(g, cfg, detail);
        }
    } else {
        rc = negio__gss_acquire(g, cfg, detail);
    }
    if (rc < 0) {
        negio__gss_del(g);
        return rc;
    }
    *out = g;
    return 0;
}

void negio__gss_del(negio__gss *g)
{
    OM_uint32 min;
    if (g == NULL)
        return;
    if (g->plain.busy) { /* not released by its holder: still wiped */
        void *h = &g->plain;
        negio__gss_release(&h);
    }
    if (g->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min, &g->ctx, GSS_C_NO_BUFFER);
    negio__cfx_del(g->cfx); /* wipes the keys */
    negio__gss_drop_cred(g);
    if (g->deleg != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &g->deleg);
    if (g->target != GSS_C_NO_NAME)
        gss_release_name(&min, &g->target);
    if (g->peer != GSS_C_NO_NAME)
        gss_release_name(&min, &g->peer);
    negio__free(g->peer_text);
    if (g->exported.value != NULL) { /* it holds the session keys */
        explicit_bzero(g->exported.value, g->exported.length);
        gss_release_buffer(&min, &g->exported);
    }
    negio__free(g);
}

int negio__gss_clone(negio__gss **out, negio__gss *g, const negio_config *cfg, char *detail)
{
    OM_uint32 maj, min;
    if (!g->complete) {
        negio__detail(detail, "only an established context can be cloned");
        return NEGIO_ERR_INVALID;
    }
    if (g->cfx == NULL && g->exported.value == NULL) {
        maj = gss_export_sec_context(&min, &g->ctx, &g->exported);
        if (GSS_ERROR(maj)) {
            negio__gss_detail(detail, "gss_export_sec_context", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_INVALID;
        }
    }
    negio__gss *c = gss_alloc(cfg);
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    c->want = g->want; /* as the handshake narrowed them */
    c->allowed = g->allowed;
    c->first = g->first;
    c->flags = g->flags;
    c->lifetime = g->lifetime;
    c->won = g->won;
    c->negotiated = g->negotiated;
    c->complete = 1;
    c->peer_unsafe = g->peer_unsafe;
    c->tokens = g->tokens;
    int rc = 0;
    if (g->peer_text != NULL && (c->peer_text = negio__strdup(g->peer_text)) == NULL) {
        rc = NEGIO_ERR_NOMEM;
    } else if (g->peer != GSS_C_NO_NAME &&
               GSS_ERROR(maj = gss_duplicate_name(&min, g->peer, &c->peer))) {
        negio__gss_detail(detail, "gss_duplicate_name", maj, min, GSS_C_NO_OID);
        rc = NEGIO_ERR_NOMEM;
    } else if (g->cfx != NULL) {
        /* the fast path's keys and sequence state, copied; the template then protects nothing,
         * as one on MIT's path whose handle went to the first clone */
        rc = negio__cfx_dup(&c->cfx, g->cfx);
        if (rc == 0)
            g->cfx_cloned = 1;
    } else if (GSS_ERROR(maj = gss_import_sec_context(&min, &g->exported, &c->ctx))) {
        negio__gss_detail(detail, "gss_import_sec_context", maj, min, GSS_C_NO_OID);
        rc = NEGIO_ERR_INVALID;
    }
    if (rc < 0) {
        negio__gss_del(c);
        return rc;
    }
    *out = c;
    return 0;
}

static const char *flag_names(OM_uint32 f, char *buf, size_t cap)
{
    static const struct {
        OM_uint32 bit;
        const char *name;
    } names[] = {{GSS_C_MUTUAL_FLAG, "mutual"},
                 {GSS_C_REPLAY_FLAG, "replay"},
                 {GSS_C_SEQUENCE_FLAG, "sequence"},
                 {GSS_C_INTEG_FLAG, "integrity"},
                 {GSS_C_CONF_FLAG, "confidentiality"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (f & names[i].bit) {
            size_t u = strlen(buf);
            snprintf(buf + u, cap - u, "%s%s", u ? ", " : "", names[i].name);
        }
    }
    return buf;
}

/* The display form of NAME with every NUL and control character replaced by '?', so that it can
 * be shown and compared as a C string; *UNSAFE (if not NULL) tells whether anything was
 * replaced: such a name never maps to a local account. */
static char *display(gss_name_t name, int *unsafe)
{
    OM_uint32 min;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    if (unsafe != NULL)
        *unsafe = 1;
    if (GSS_ERROR(gss_display_name(&min, name, &b, NULL)))
        return negio__strdup("");
    /* gss-ntlmssp counts the string's terminator in the length: that one is not part of it */
    if (b.length > 0 && ((const char *)b.value)[b.length - 1] == '\0')
        b.length--;
    char *s = negio__malloc(b.length + 1);
    int replaced = 0;
    if (s != NULL) {
        for (size_t i = 0; i < b.length; i++) {
            unsigned char ch = ((const unsigned char *)b.value)[i];
            replaced |= ch < 0x20 || ch == 0x7f;
            s[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
        }
        s[b.length] = '\0';
    }
    gss_release_buffer(&min, &b);
    if (unsafe != NULL)
        *unsafe = replaced;
    return s;
}

/* The client allowed identification only: Kerberos carries GSS_C_IDENTIFY_FLAG in the
 * authenticator's checksum flags and MIT reports it; gss-ntlmssp does not report NTLM's
 * NEGOTIATE_IDENTIFY, which src/gss/peer_token.c reads from the AUTHENTICATE. */
static int identify_only(const negio__gss *g)
{
    return (g->flags & GSS_C_IDENTIFY_FLAG) != 0 ||
           (g->won == NEGIO_MECH_NTLM && g->tokens.ntlm_identify);
}

/* Every check an established context must pass before anything is sent under it. */
static int check_context(negio__gss *g, gss_OID mech, char *detail)
{
    OM_uint32 min;
    char names[128];
    g->won = negio__gss_mech_of(mech);
    if (g->won == NEGIO_MECH_NONE) {
        negio__detail(detail, "an unknown mechanism was negotiated");
        return NEGIO_ERR_POLICY;
    }
    unsigned bit = g->won == NEGIO_MECH_KERBEROS ? NEGIO_ALLOW_KERBEROS : NEGIO_ALLOW_NTLM;
    if (!(g->allowed & bit)) {
        negio__detail(detail, "mechanism %s won but is not allowed", negio_mech_name(g->won));
        return NEGIO_ERR_POLICY;
    }
    if (g->flags & GSS_C_ANON_FLAG) {
        negio__detail(detail, "anonymous context refused");
        return NEGIO_ERR_POLICY;
    }
    OM_uint32 need;
    if (g->role == NEGIO_ROLE_CLIENT) {
        need = g->req_flags & ~(GSS_C_DELEG_FLAG | GSS_C_IDENTIFY_FLAG);
    } else {
        /* gss-ntlmssp enforces sequence numbers on every signature but does not report the
         * replay and sequence flags to the acceptor; Kerberos reports them. */
        need = GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
        if (g->won == NEGIO_MECH_KERBEROS)
            need |= GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG;
        /* MIT's gss-client asks for mutual and replay only, never sequence or (with NTLM)
         * confidentiality; in that profile each message's confidentiality is what its own wrap
         * token proves */
        if (g->cfg->profile == NEGIO_PROFILE_GSS_SAMPLE)
            need &= ~(GSS_C_SEQUENCE_FLAG | GSS_C_CONF_FLAG);
    }
    /* In [MS-NNS] the flags are the stream's one protection level, which the profile checks
     * against this side's minimum and reports to the peer in its own words (ERROR_TRUST_FAILURE);
     * .NET clients on Linux ask for neither replay nor sequence detection (src/conn/nns.c checks
     * the order of Kerberos tokens itself). Only mutual authentication, when asked for, is
     * required here. */
    if (g->cfg->profile == NEGIO_PROFILE_NNS)
        need &= GSS_C_MUTUAL_FLAG;
    if ((g->flags & need) != need) {
        negio__detail(detail, "requested context flags not granted: %s",
                      flag_names(need & ~g->flags, names, sizeof(names)));
        return NEGIO_ERR_POLICY;
    }
    /* The strength of the session keys (RFC 4752's SASL SSF). NTLM's NEGOTIATE message is not
     * protected outside SPNEGO: someone on the path can clear NEGOTIATE_128 and _56 and have
     * both sides seal with 40-bit keys; gss-ntlmssp then reports 40 (64 for 128-bit RC4). */
    OM_uint32 ssf = 0;
    gss_buffer_set_t ssf_set = GSS_C_NO_BUFFER_SET;
    OM_uint32 smaj =
        gss_inquire_sec_context_by_oid(&min, g->ctx, GSS_C_SEC_CONTEXT_SASL_SSF, &ssf_set);
    if (!GSS_ERROR(smaj) && ssf_set != GSS_C_NO_BUFFER_SET && ssf_set->count == 1 &&
        ssf_set->elements[0].length == 4) {
        const uint8_t *b = ssf_set->elements[0].value;
        ssf = (OM_uint32)b[0] << 24 | (OM_uint32)b[1] << 16 | (OM_uint32)b[2] << 8 | b[3];
    } else if (g->won == NEGIO_MECH_NTLM) {
        ssf = 0; /* gss-ntlmssp always answers: not knowing is refusing */
    } else {
        ssf = 64; /* a Kerberos mechanism that cannot say: its enctypes are the KDC's policy */
    }
    gss_release_buffer_set(&min, &ssf_set);
    /* The weakness is in the sealing keys (NTLMv2 signing keys are full length either way): it
     * matters when confidentiality was negotiated. Without it (only the gss-sample profile
     * allows that) the strength is 1 and no message is ever reported as sealed. */
    if ((g->flags & GSS_C_CONF_FLAG) && ssf < 64) {
        negio__detail(detail,
                      "%s negotiated weak session keys (strength %u, at least 64 "
                      "required)",
                      negio_mech_name(g->won), (unsigned)ssf);
        return NEGIO_ERR_POLICY;
    }
    if (g->role == NEGIO_ROLE_SERVER && g->cfg->impersonation > NEGIO_IMPERSONATION_IDENTIFY) {
        /* what the client allows, as Windows reads it ([MS-NNS] 3.2.5.2) */
        static const char *const level_names[] = {"", "identification", "impersonation",
                                                  "delegation"};
        int granted = (g->flags & GSS_C_DELEG_FLAG) && g->won == NEGIO_MECH_KERBEROS
                          ? NEGIO_IMPERSONATION_DELEGATE
                      : identify_only(g) ? NEGIO_IMPERSONATION_IDENTIFY
                                         : NEGIO_IMPERSONATION_IMPERSONATE;
        if (granted < g->cfg->impersonation) {
            negio__detail(detail, "the client allows %s only, this server requires %s",
                          level_names[granted], level_names[g->cfg->impersonation]);
            return NEGIO_ERR_POLICY;
        }
    }
    if (g->role == NEGIO_ROLE_CLIENT && g->won == NEGIO_MECH_NTLM && g->tokens.offered_kerberos &&
        g->tokens.refuse_fallback) {
        negio__detail(detail, "SPNEGO chose ntlm although this client offered kerberos with a "
                              "ticket for the service: refused as a downgrade "
                              "(negio_config_set_allow_ntlm_fallback() allows it)");
        return NEGIO_ERR_POLICY;
    }
    if (g->require_server_auth && g->won != NEGIO_MECH_KERBEROS) {
        negio__detail(detail,
                      "server authentication required, but %s cannot authenticate the "
                      "server",
                      negio_mech_name(g->won));
        return NEGIO_ERR_POLICY;
    }
    if (g->require_server_auth && !(g->flags & GSS_C_MUTUAL_FLAG)) {
        negio__detail(detail, "server authentication required, but mutual authentication "
                              "was not performed");
        return NEGIO_ERR_POLICY;
    }
    if (g->role == NEGIO_ROLE_CLIENT) {
        gss_name_t targ = GSS_C_NO_NAME;
        if (!GSS_ERROR(
                gss_inquire_context(&min, g->ctx, NULL, &targ, NULL, NULL, NULL, NULL, NULL)) &&
            targ != GSS_C_NO_NAME) {
            g->peer_text = display(targ, NULL);
            gss_release_name(&min, &targ);
        } else {
            g->peer_text = display(g->target, NULL);
        }
    } else {
        g->peer_text = display(g->peer, &g->peer_unsafe);
    }
    if (g->peer_text == NULL) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    return 0;
}

/* Takes back the token a GSS call that succeeded put in OUT after START, because this side
 * refused the result (PROTOCOL.md section 6.7: only a failed call's token reaches the peer; an
 * NTLM AUTHENTICATE must not reach a server this side does not trust), and returns RC. */
static int unsent(negio__buf *out, size_t start, int rc)
{
    size_t n = negio__buf_size(out) - start;
    if (n > 0) {
        explicit_bzero(out->p + out->off + start, n);
        out->len -= n;
    }
    return rc;
}

int negio__gss_step(negio__gss *g, const uint8_t *in, size_t in_len, negio__buf *out, int *complete,
                    char *detail)
{
    OM_uint32 maj, min, min2;
    gss_buffer_desc itok = {in_len, (void *)in};
    gss_buffer_desc otok = GSS_C_EMPTY_BUFFER;
    gss_OID mech = GSS_C_NO_OID;
    const char *call;
    *complete = 0;
    /* the one path by which the peer's tokens reach GSS */
    if (in != NULL) {
        const char *why;
        int rc = negio__peer_token_check(&g->tokens, in, in_len, &why);
        if (rc < 0) {
            negio__detail(detail,
                          rc == NEGIO_ERR_POLICY ? "%s"
                                                 : "refused the peer's handshake "
                                                   "token: %s",
                          why);
            return rc;
        }
    }
    if (g->role == NEGIO_ROLE_CLIENT) {
        call = "gss_init_sec_context";
        gss_OID want = negio__gss_client_oid(g);
        g->negotiated = g->want == NEGIO_MECH_NEGOTIATE;
        maj = gss_init_sec_context(&min, client_cred(g), &g->ctx, g->target, want, g->req_flags, 0,
                                   bindings(g), in ? &itok : GSS_C_NO_BUFFER, &mech, &otok,
                                   &g->flags, &g->lifetime);
        if (g->first && otok.length > 0)
            negio__peer_tokens_own_first(&g->tokens, otok.value, otok.length);
    } else {
        call = "gss_accept_sec_context";
        if (g->first) {
            /* Refuse a mechanism outside the policy before its parser sees the token. */
            negio_mech m = g->tokens.want;
            g->negotiated = m == NEGIO_MECH_NEGOTIATE;
            if ((m == NEGIO_MECH_KERBEROS && !(g->allowed & NEGIO_ALLOW_KERBEROS)) ||
                (m == NEGIO_MECH_NTLM && !(g->allowed & NEGIO_ALLOW_NTLM))) {
                negio__detail(detail, "client offered %s, which is not allowed",
                              negio_mech_name(m));
                return NEGIO_ERR_POLICY;
            }
        }
        maj = gss_accept_sec_context(&min, &g->ctx, g->cred, &itok, bindings(g),
                                     g->peer == GSS_C_NO_NAME ? &g->peer : NULL, &mech, &otok,
                                     &g->flags, &g->lifetime, &g->deleg);
    }
    g->first = 0;
    int rc = 0;
    size_t start = negio__buf_size(out);
    if (otok.length > 0)
        rc = negio__buf_append(out, otok.value, otok.length);
    gss_release_buffer(&min2, &otok);
    if (GSS_ERROR(maj)) {
        g->failed_major = maj;
        negio__gss_explain_step(g, call, maj, min, mech, in, in_len, detail);
        OM_uint32 routine = GSS_ROUTINE_ERROR(maj);
        if (routine == GSS_S_CREDENTIALS_EXPIRED || routine == GSS_S_NO_CRED ||
            routine == GSS_S_DEFECTIVE_CREDENTIAL)
            negio__gss_retire_cred(g);
        /* MIT krb5 reports a channel-binding mismatch as GSS_S_BAD_BINDINGS; gss-ntlmssp as a
         * defective token with the minor status EACCES (ntlm_verify_channel_bindings) */
        if (GSS_ROUTINE_ERROR(maj) == GSS_S_BAD_BINDINGS ||
            (g->has_cb && GSS_ROUTINE_ERROR(maj) == GSS_S_DEFECTIVE_TOKEN &&
             negio__gss_minor_is_errno(min, mech, EACCES)))
            return NEGIO_ERR_BINDING;
        return NEGIO_ERR_HANDSHAKE;
    }
    if (rc < 0) {
        negio__detail(detail, "out of memory");
        return rc;
    }
    if (maj == GSS_S_CONTINUE_NEEDED)
        return 0;
    if (maj != GSS_S_COMPLETE) {
        /* a supplementary bit (duplicate, old, gap) on a context token is an attack */
        g->failed_major = maj;
        negio__gss_detail(detail, call, maj, min, mech);
        return unsent(out, start, NEGIO_ERR_HANDSHAKE);
    }
    rc = check_context(g, mech, detail);
    if (rc < 0)
        return unsent(out, start, rc);
    rc = negio__gss_fast_engage(g, detail);
    if (rc < 0)
        return unsent(out, start, rc);
    g->complete = 1;
    *complete = 1;
    /* An established context no longer needs the credential it was made with, and an idle
     * connection would otherwise keep it (with its open keytab) for its lifetime: about half
     * of an idle connection's memory (docs/PERFORMANCE.md). */
    negio__gss_drop_cred(g);
    return 0;
}

void negio__gss_peer_error(negio__gss *g, const uint8_t *tok, size_t len, const char *reason,
                           char *detail)
{
    OM_uint32 maj, min, min2;
    char words[NEGIO__DETAIL_MAX];
    detail[0] = '\0';
    if (g == NULL)
        return;
    negio__gss_explain_peer(g, tok, len, reason, words, sizeof(words));
    /* only a Kerberos error, checked as any token from the peer: NTLM has no error tokens, and
     * a forged frame must not reach a mechanism it could crash */
    if (g->role != NEGIO_ROLE_CLIENT || g->ctx == GSS_C_NO_CONTEXT || g->complete ||
        !negio__peer_error_token_ok(&g->tokens, tok, len)) {
        negio__detail(detail, "%s", words);
        return;
    }
    gss_buffer_desc itok = {len, (void *)tok};
    gss_buffer_desc otok = GSS_C_EMPTY_BUFFER;
    gss_OID mech = GSS_C_NO_OID;
    maj = gss_init_sec_context(&min, client_cred(g), &g->ctx, g->target, negio__gss_client_oid(g),
                               g->req_flags, 0, bindings(g), &itok, &mech, &otok, NULL, NULL);
    gss_release_buffer(&min2, &otok);
    if (GSS_ERROR(maj))
        negio__gss_detail_why(detail, words, "gss_init_sec_context (peer error token)", maj, min,
                              mech);
    else
        negio__detail(detail, "%s", words);
}

void negio__gss_info(const negio__gss *g, negio_auth_info *info)
{
    info->mech = g->won;
    info->negotiated = g->negotiated;
    info->peer = g->peer_text;
    info->server_authenticated =
        g->won == NEGIO_MECH_KERBEROS && (g->flags & GSS_C_MUTUAL_FLAG) != 0;
    unsigned f = 0;
    /* gss-ntlmssp grants DELEG (like MUTUAL) to an NTLM client that asks; NTLM cannot delegate */
    if ((g->flags & GSS_C_DELEG_FLAG) && g->won == NEGIO_MECH_KERBEROS)
        f |= NEGIO_FLAG_DELEG;
    /* gss-ntlmssp grants MUTUAL to the initiator, but NTLM never authenticates the server */
    if ((g->flags & GSS_C_MUTUAL_FLAG) && g->won == NEGIO_MECH_KERBEROS)
        f |= NEGIO_FLAG_MUTUAL;
    if (g->flags & GSS_C_REPLAY_FLAG)
        f |= NEGIO_FLAG_REPLAY;
    if (g->flags & GSS_C_SEQUENCE_FLAG)
        f |= NEGIO_FLAG_SEQUENCE;
    if (g->flags & GSS_C_CONF_FLAG)
        f |= NEGIO_FLAG_CONF;
    if (g->flags & GSS_C_INTEG_FLAG)
        f |= NEGIO_FLAG_INTEG;
    if (g->flags & GSS_C_ANON_FLAG)
        f |= NEGIO_FLAG_ANON;
    if (g->role == NEGIO_ROLE_SERVER ? identify_only(g) : (g->req_flags & GSS_C_IDENTIFY_FLAG) != 0)
        f |= NEGIO_FLAG_IDENTIFY;
    info->flags = f;
    info->lifetime = g->lifetime;
}

int negio__gss_has_conf(const negio__gss *g)
{
    return (g->flags & GSS_C_CONF_FLAG) != 0;
}

int negio__gss_peer_unsafe(const negio__gss *g)
{
    return g->peer_unsafe;
}

int negio__gss_localname(const negio__gss *g, char **out)
{
    OM_uint32 maj, min;
    gss_buffer_desc ln = GSS_C_EMPTY_BUFFER;
    *out = NULL;
    maj = gss_localname(&min, g->peer, GSS_C_NO_OID, &ln);
    if (GSS_ERROR(maj))
        return 0; /* no rule maps the peer: not an error */
    /* a name with a NUL inside is cut there and then refused by the caller's checks */
    *out = negio__strndup(ln.value, ln.length);
    int rc = *out == NULL ? NEGIO_ERR_NOMEM : 0;
    gss_release_buffer(&min, &ln);
    return rc;
}

void *negio__gss_take_delegated(negio__gss *g)
{
    gss_cred_id_t d = g->deleg;
    g->deleg = GSS_C_NO_CREDENTIAL;
    return d;
}
