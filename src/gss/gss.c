#include "gss/gss.h"
#include "core/alloc.h"

#include "gss/peer_token.h"
#include "identity/identity.h"
#include "negio/identity.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mechanism OIDs (RFC 4178 SPNEGO, RFC 1964 Kerberos 5, its pre-standard and Microsoft
 * variants, and [MS-NLMP] NTLMSSP). */
static gss_OID_desc oid_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
static gss_OID_desc oid_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
static gss_OID_desc oid_krb5_old = {5, (void *)"\x2b\x05\x01\x05\x02"};
static gss_OID_desc oid_krb5_ms = {9, (void *)"\x2a\x86\x48\x82\xf7\x12\x01\x02\x02"};
static gss_OID_desc oid_ntlm = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

struct negio_delegated {
    atomic_int refs;
    gss_cred_id_t cred;
    char *principal;
};

void negio__delegated_ref(struct negio_delegated *d)
{
    if (d != NULL)
        atomic_fetch_add(&d->refs, 1);
}

void negio__delegated_unref(struct negio_delegated *d)
{
    OM_uint32 min;
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    /* the credentials live in a memory cache owned by this handle: releasing destroys them */
    gss_release_cred(&min, &d->cred);
    negio__free(d->principal);
    negio__free(d);
}

void negio_delegated_ref(negio_delegated *d)
{
    negio__delegated_ref(d);
}

void negio_delegated_unref(negio_delegated *d)
{
    negio__delegated_unref(d);
}

const char *negio_delegated_principal(const negio_delegated *d)
{
    return d->principal;
}

/* The credentials of one configuration, acquired by its first connector and shared by all the
 * connectors made from it or its copies (docs/PERFORMANCE.md): acquiring per connection cost half
 * of a handshake's CPU. One per allowed-mechanism mask, since a connector may narrow the set
 * (require_server_auth, certificate-free TLS) and the mask is set on the credential
 * (gss_set_neg_mechs). A credential that expired is retired, not released: other connectors
 * may be using it; retired ones go with the cache. MIT krb5 locks its credentials; gss-ntlmssp's
 * are read-only once acquired. */
struct negio__cred_cache {
    atomic_int refs;
    pthread_mutex_t lock;
    gss_cred_id_t cred[4];
    gss_cred_id_t *retired;
    size_t nretired;
};

negio__cred_cache *negio__cred_cache_new(void)
{
    negio__cred_cache *cc = negio__calloc(1, sizeof(*cc));
    if (cc == NULL)
        return NULL;
    atomic_init(&cc->refs, 1);
    pthread_mutex_init(&cc->lock, NULL);
    for (size_t i = 0; i < 4; i++)
        cc->cred[i] = GSS_C_NO_CREDENTIAL;
    return cc;
}

void negio__cred_cache_ref(negio__cred_cache *cc)
{
    if (cc != NULL)
        atomic_fetch_add(&cc->refs, 1);
}

void negio__cred_cache_unref(negio__cred_cache *cc)
{
    OM_uint32 min;
    if (cc == NULL || atomic_fetch_sub(&cc->refs, 1) != 1)
        return;
    for (size_t i = 0; i < 4; i++) {
        if (cc->cred[i] != GSS_C_NO_CREDENTIAL)
            gss_release_cred(&min, &cc->cred[i]);
    }
    for (size_t i = 0; i < cc->nretired; i++)
        gss_release_cred(&min, &cc->retired[i]);
    negio__free(cc->retired);
    pthread_mutex_destroy(&cc->lock);
    negio__free(cc);
}

/* The plaintext of one unwrap, until negio__gss_release. */
struct plain {
    gss_buffer_desc buf;
    int embedded; /* the one in negio__gss (no allocation per message), else allocated */
    int busy;
};

struct negio__gss {
    const negio_config *cfg;  /* the connector's own copy, alive as long as this */
    negio__cred_cache *cache; /* when set, cred is borrowed from it */
    negio_role role;
    negio_mech want;
    unsigned allowed;
    int require_server_auth;
    OM_uint32 req_flags;
    gss_cred_id_t cred;
    gss_name_t target;
    gss_ctx_id_t ctx;
    gss_name_t peer;
    gss_cred_id_t deleg;
    OM_uint32 flags;
    OM_uint32 lifetime;
    negio_mech won;
    int negotiated;
    int first;
    int complete;
    char *peer_text;
    char *local_name;
    negio_delegated *delegated; /* server: what the client delegated; client: what we use */
    int peer_unsafe;            /* the peer's name held NUL or control characters */
    struct gss_channel_bindings_struct cb; /* TLS_NEGOTIATE: the TLS channel's bindings */
    int has_cb;
    uint8_t cb_data[NEGIO__CB_MAX];
    negio__peer_tokens tokens; /* what the peer's tokens may be (src/gss/peer_token.c) */
    gss_buffer_desc exported;  /* negio__gss_clone: the context, exported (it is gone from ctx) */
    struct plain plain;        /* the connector holds one unwrapped message at a time */
};

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

static int oid_eq(const gss_OID a, const gss_OID b)
{
    return a != GSS_C_NO_OID && a->length == b->length &&
           memcmp(a->elements, b->elements, a->length) == 0;
}

static negio_mech mech_of(gss_OID oid)
{
    if (oid_eq(oid, &oid_krb5) || oid_eq(oid, &oid_krb5_old) || oid_eq(oid, &oid_krb5_ms))
        return NEGIO_MECH_KERBEROS;
    if (oid_eq(oid, &oid_ntlm))
        return NEGIO_MECH_NTLM;
    return NEGIO_MECH_NONE;
}

/* Appends every message of one status type to S (bounded). */
static void status_text(char *s, size_t cap, OM_uint32 code, int type, gss_OID mech)
{
    OM_uint32 more = 0, min;
    size_t used = strlen(s);
    do {
        gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
        if (GSS_ERROR(gss_display_status(&min, code, type, mech, &more, &b)))
            break;
        if (used + 3 < cap) {
            int n = snprintf(s + used, cap - used, "%s%.*s", used ? "; " : "", (int)b.length,
                             (const char *)b.value);
            if (n > 0)
                used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
        }
        gss_release_buffer(&min, &b);
    } while (more != 0);
}

/* "CALL: MAJOR TEXT; MINOR TEXT (major 0x..., minor ...)" */
static void gss_text(char *text, size_t cap, const char *call, OM_uint32 major, OM_uint32 minor,
                     gss_OID mech)
{
    char gss[NEGIO__DETAIL_MAX] = "", mine[256] = "";
    status_text(gss, sizeof(gss), major, GSS_C_GSS_CODE, GSS_C_NO_OID);
    if (minor != 0)
        status_text(mine, sizeof(mine), minor, GSS_C_MECH_CODE, mech);
    /* gss-ntlmssp names codes it does not know "Unknown Error", and MIT's minor text of a
     * supplementary status is "Success": neither says anything */
    int say = mine[0] != '\0' && strcmp(mine, "Unknown Error") != 0 && strcmp(mine, "Success") != 0;
    snprintf(text, cap, "%s: %s%s%s (major 0x%08x, minor %u)", call, gss, say ? "; " : "",
             say ? mine : "", (unsigned)major, (unsigned)minor);
}

static void gss_detail(char *detail, const char *call, OM_uint32 major, OM_uint32 minor,
                       gss_OID mech)
{
    char text[NEGIO__DETAIL_MAX];
    gss_text(text, sizeof(text), call, major, minor, mech);
    negio__detail(detail, "%s", text);
}

/* A received frame that failed its MIC or unwrap, in words a person can act on, then the
 * mechanism's own report (PROTOCOL.md section 5.4: every such failure is fatal). */
static void frame_detail(const negio__gss *g, char *detail, const char *call, OM_uint32 major,
                         OM_uint32 minor)
{
    OM_uint32 routine = GSS_ROUTINE_ERROR(major), sup = GSS_SUPPLEMENTARY_INFO(major);
    const char *what;
    if (routine == GSS_S_BAD_SIG)
        what = g->won == NEGIO_MECH_NTLM
                   ? "the frame does not verify: it was altered, replayed, reordered or dropped "
                     "on the way, or comes from another connection (an NTLM signature covers "
                     "its sequence number and cannot tell which)"
                   : "the frame does not verify: it was altered on the way, or comes from "
                     "another connection";
    else if (routine == GSS_S_DEFECTIVE_TOKEN)
        what = "the frame's token is malformed";
    else if (routine == GSS_S_CONTEXT_EXPIRED)
        what = "the security context has expired";
    else if (routine != 0)
        what = "the frame could not be verified";
    else if (sup & GSS_S_DUPLICATE_TOKEN)
        what = "a replayed frame: a copy of one already received";
    else if (sup & GSS_S_OLD_TOKEN)
        what = "an old frame: replayed, or reordered on the way";
    else if (sup & GSS_S_UNSEQ_TOKEN)
        what = "a frame out of order: reordered on the way";
    else if (sup & GSS_S_GAP_TOKEN)
        what = "a frame is missing: one was dropped on the way";
    else
        what = "the frame could not be verified";
    char text[NEGIO__DETAIL_MAX];
    gss_text(text, sizeof(text), call, major, minor, GSS_C_NO_OID);
    negio__detail(detail, "%s; %s", what, text);
}

/* Whether a mechanism's minor status is the errno value ERR. The mechanism glue renumbers minor
 * codes that pass through SPNEGO, so the number alone cannot tell; its text can. */
static int minor_is_errno(OM_uint32 minor, gss_OID mech, int err)
{
    char text[256] = "";
    if (minor == (OM_uint32)err)
        return 1;
    status_text(text, sizeof(text), minor, GSS_C_MECH_CODE, mech);
    return strcmp(text, strerror(err)) == 0;
}

static int import_name(const char *text, gss_OID type, gss_name_t *out, char *detail)
{
    OM_uint32 min;
    gss_buffer_desc b = {strlen(text), (void *)text};
    OM_uint32 maj = gss_import_name(&min, &b, type, out);
    if (GSS_ERROR(maj)) {
        gss_detail(detail, "gss_import_name", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_CREDENTIALS;
    }
    return 0;
}

static const char *ntlm_file(const negio_config *cfg)
{
    return cfg->ntlm_file != NULL ? cfg->ntlm_file : getenv("NTLM_USER_FILE");
}

/* The mechanism list SPNEGO may offer or accept. */
static void neg_set(unsigned allowed, gss_OID_desc *elems, gss_OID_set_desc *set)
{
    set->count = 0;
    set->elements = elems;
    if (allowed & NEGIO_ALLOW_KERBEROS)
        elems[set->count++] = oid_krb5;
    if (allowed & NEGIO_ALLOW_NTLM)
        elems[set->count++] = oid_ntlm;
}

/* The mechanism a client asks GSS for; every call on one context must name the same one. */
static gss_OID client_oid(const negio__gss *g)
{
    return g->want == NEGIO_MECH_KERBEROS ? &oid_krb5
           : g->want == NEGIO_MECH_NTLM   ? &oid_ntlm
                                          : &oid_spnego;
}

/* The credential a client's context is made with: the delegated one it was given, or its own. */
static gss_cred_id_t client_cred(const negio__gss *g)
{
    return g->delegated != NULL ? g->delegated->cred : g->cred;
}

static int acquire_client(negio__gss *g, const negio_config *cfg, char *detail)
{
    OM_uint32 maj, min;
    gss_OID_desc one;
    gss_OID_set_desc mechs = {1, &one};
    one = *client_oid(g);
    if (cfg->user != NULL) {
        gss_name_t name = GSS_C_NO_NAME;
        int rc = import_name(cfg->user, GSS_C_NT_USER_NAME, &name, detail);
        if (rc < 0)
            return rc;
        gss_buffer_desc pw = {strlen(cfg->password), cfg->password};
        maj = gss_acquire_cred_with_password(&min, name, &pw, GSS_C_INDEFINITE, &mechs,
                                             GSS_C_INITIATE, &g->cred, NULL, NULL);
        gss_release_name(&min, &name);
        if (GSS_ERROR(maj)) {
            gss_detail(detail, "gss_acquire_cred_with_password", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_CREDENTIALS;
        }
    } else {
        /* gss-ntlmssp reads no default account when a cred store is given, so the store
         * names the NTLM account file whenever it names anything. */
        gss_key_value_element_desc el[3];
        gss_key_value_set_desc store = {0, el};
        if (cfg->ccache != NULL)
            el[store.count++] = (gss_key_value_element_desc){"ccache", cfg->ccache};
        if (cfg->keytab != NULL)
            el[store.count++] = (gss_key_value_element_desc){"client_keytab", cfg->keytab};
        if ((store.count > 0 || cfg->ntlm_file != NULL) && (g->allowed & NEGIO_ALLOW_NTLM) &&
            ntlm_file(cfg) != NULL)
            el[store.count++] = (gss_key_value_element_desc){"ntlmssp_keyfile", ntlm_file(cfg)};
        maj =
            gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                  store.count ? &store : GSS_C_NO_CRED_STORE, &g->cred, NULL, NULL);
        if (GSS_ERROR(maj)) {
            gss_detail(detail, "gss_acquire_cred_from", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_CREDENTIALS;
        }
    }
    if (g->want == NEGIO_MECH_NEGOTIATE) {
        gss_OID_desc elems[2];
        gss_OID_set_desc set;
        neg_set(g->allowed, elems, &set);
        maj = gss_set_neg_mechs(&min, g->cred, &set);
        if (GSS_ERROR(maj)) {
            gss_detail(detail, "gss_set_neg_mechs", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_CREDENTIALS;
        }
    }
    return 0;
}

static int acquire_server(negio__gss *g, const negio_config *cfg, char *detail)
{
    OM_uint32 maj, min;
    gss_name_t name = GSS_C_NO_NAME;
    gss_key_value_element_desc el[2];
    gss_key_value_set_desc store = {0, el};
    if (cfg->keytab != NULL)
        el[store.count++] = (gss_key_value_element_desc){"keytab", cfg->keytab};
    if (cfg->ntlm_file != NULL)
        el[store.count++] = (gss_key_value_element_desc){"ntlmssp_keyfile", cfg->ntlm_file};
    if (store.count > 0 && cfg->service == NULL && (cfg->allowed & NEGIO_ALLOW_NTLM)) {
        /* gss-ntlmssp 1.2 builds a user (not server) credential from a cred store unless it
         * is given a server name, and then fails or crashes in accept. */
        negio__detail(detail, "an explicit keytab or NTLM file with NTLM allowed needs a "
                              "service name (gss-ntlmssp limitation)");
        return NEGIO_ERR_CREDENTIALS;
    }
    if (cfg->service != NULL) {
        int rc = import_name(cfg->service, GSS_C_NT_HOSTBASED_SERVICE, &name, detail);
        if (rc < 0)
            return rc;
    }
    gss_OID_desc elems[3];
    gss_OID_set_desc mechs = {0, elems};
    elems[mechs.count++] = oid_spnego;
    if (cfg->allowed & NEGIO_ALLOW_KERBEROS)
        elems[mechs.count++] = oid_krb5;
    if (cfg->allowed & NEGIO_ALLOW_NTLM)
        elems[mechs.count++] = oid_ntlm;
    maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT,
                                store.count ? &store : GSS_C_NO_CRED_STORE, &g->cred, NULL, NULL);
    gss_release_name(&min, &name);
    if (GSS_ERROR(maj)) {
        gss_detail(detail, "gss_acquire_cred_from (acceptor)", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_CREDENTIALS;
    }
    gss_OID_desc negs[2];
    gss_OID_set_desc set;
    neg_set(cfg->allowed, negs, &set);
    maj = gss_set_neg_mechs(&min, g->cred, &set);
    if (GSS_ERROR(maj)) {
        gss_detail(detail, "gss_set_neg_mechs", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_CREDENTIALS;
    }
    return 0;
}

/* Gives up this context's use of its credential (borrowed or owned). */
static void drop_cred(negio__gss *g)
{
    OM_uint32 min;
    if (g->cache != NULL) {
        negio__cred_cache_unref(g->cache);
        g->cache = NULL;
        g->cred = GSS_C_NO_CREDENTIAL;
    } else if (g->cred != GSS_C_NO_CREDENTIAL) {
        gss_release_cred(&min, &g->cred);
    }
}

/* The configuration's shared credential for this context's mechanism set, acquired now if it
 * is not there yet (under the cache's lock, so that a burst of connections acquires once). A
 * failure is not remembered: the next connector tries again (a ticket may have arrived). */
static int acquire(negio__gss *g, const negio_config *cfg, char *detail)
{
    negio__cred_cache *cc = cfg->creds;
    if (cc == NULL)
        return g->role == NEGIO_ROLE_CLIENT ? acquire_client(g, cfg, detail)
                                            : acquire_server(g, cfg, detail);
    unsigned slot = g->allowed & 3u;
    int rc = 0;
    pthread_mutex_lock(&cc->lock);
    if (cc->cred[slot] == GSS_C_NO_CREDENTIAL) {
        rc = g->role == NEGIO_ROLE_CLIENT ? acquire_client(g, cfg, detail)
                                          : acquire_server(g, cfg, detail);
        if (rc == 0)
            cc->cred[slot] = g->cred;
    } else {
        g->cred = cc->cred[slot];
    }
    if (rc == 0) {
        negio__cred_cache_ref(cc);
        g->cache = cc;
    }
    pthread_mutex_unlock(&cc->lock);
    return rc; /* on failure a half-made credential stays in g->cred, released with g */
}

/* A credential the mechanism found expired or unusable is replaced for later connectors. */
static void retire_cred(negio__gss *g)
{
    negio__cred_cache *cc = g->cache;
    if (cc == NULL)
        return;
    pthread_mutex_lock(&cc->lock);
    unsigned slot = g->allowed & 3u;
    if (cc->cred[slot] == g->cred) {
        gss_cred_id_t *more = negio__realloc(cc->retired, (cc->nretired + 1) * sizeof(*more));
        if (more != NULL) { /* without memory, later connectors keep trying the old one */
            cc->retired = more;
            cc->retired[cc->nretired++] = cc->cred[slot];
            cc->cred[slot] = GSS_C_NO_CREDENTIAL;
        }
    }
    pthread_mutex_unlock(&cc->lock);
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
    g->target = GSS_C_NO_NAME;
    g->peer = GSS_C_NO_NAME;
    g->ctx = GSS_C_NO_CONTEXT;
    g->first = 1;
    g->tokens.role = cfg->role;
    g->tokens.want = cfg->role == NEGIO_ROLE_CLIENT ? cfg->mech : NEGIO_MECH_NONE;
    g->tokens.refuse_fallback = !cfg->allow_ntlm_fallback;
    g->req_flags = GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
    if (cfg->mutual)
        g->req_flags |= GSS_C_MUTUAL_FLAG;
    if (cfg->delegate)
        g->req_flags |= GSS_C_DELEG_FLAG;
    return g;
}

int negio__gss_new(negio__gss **out, const negio_config *cfg, char *detail)
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
        rc = import_name(cfg->service, GSS_C_NT_HOSTBASED_SERVICE, &g->target, detail);
        if (rc == 0 && cfg->delegated != NULL) {
            /* Delegated credentials are a Kerberos credential: used through SPNEGO, the
             * mechglue would fall back to the process's own default credentials. */
            g->want = NEGIO_MECH_KERBEROS;
            g->allowed = NEGIO_ALLOW_KERBEROS;
            negio__delegated_ref(cfg->delegated);
            g->delegated = cfg->delegated;
        } else if (rc == 0) {
            rc = acquire(g, cfg, detail);
        }
    } else {
        rc = acquire(g, cfg, detail);
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
    drop_cred(g);
    if (g->deleg != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &g->deleg);
    negio__delegated_unref(g->delegated);
    if (g->target != GSS_C_NO_NAME)
        gss_release_name(&min, &g->target);
    if (g->peer != GSS_C_NO_NAME)
        gss_release_name(&min, &g->peer);
    negio__free(g->peer_text);
    negio__free(g->local_name);
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
    if (g->exported.value == NULL) {
        maj = gss_export_sec_context(&min, &g->ctx, &g->exported);
        if (GSS_ERROR(maj)) {
            gss_detail(detail, "gss_export_sec_context", maj, min, GSS_C_NO_OID);
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
    if ((g->peer_text != NULL && (c->peer_text = negio__strdup(g->peer_text)) == NULL) ||
        (g->local_name != NULL && (c->local_name = negio__strdup(g->local_name)) == NULL)) {
        rc = NEGIO_ERR_NOMEM;
    } else if (g->peer != GSS_C_NO_NAME &&
               GSS_ERROR(maj = gss_duplicate_name(&min, g->peer, &c->peer))) {
        gss_detail(detail, "gss_duplicate_name", maj, min, GSS_C_NO_OID);
        rc = NEGIO_ERR_NOMEM;
    } else if (GSS_ERROR(maj = gss_import_sec_context(&min, &g->exported, &c->ctx))) {
        gss_detail(detail, "gss_import_sec_context", maj, min, GSS_C_NO_OID);
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

/* The local account the peer maps to (negio.h, negio_config_add_user_map): an explicit entry,
 * else Kerberos auth_to_local rules, else the NTLM domain rule. NULL when none is acceptable.
 * Returns 0, or -1 when out of memory. */
static int map_local_name(negio__gss *g)
{
    const negio_config *cfg = g->cfg;
    const char *peer = g->peer_text;
    char *name = NULL;
    g->local_name = NULL;
    if (g->peer_unsafe) /* "alice\0evil" must not become alice */
        return 0;
    for (size_t i = 0; i < cfg->user_map_len; i++) {
        const char *p = cfg->user_map[2 * i];
        if (g->won == NEGIO_MECH_NTLM ? strcasecmp(p, peer) == 0 : strcmp(p, peer) == 0) {
            name = negio__strdup(cfg->user_map[2 * i + 1]);
            if (name == NULL)
                return -1;
            break;
        }
    }
    if (name == NULL && g->won == NEGIO_MECH_KERBEROS) {
        OM_uint32 min;
        gss_buffer_desc ln = GSS_C_EMPTY_BUFFER;
        if (!GSS_ERROR(gss_localname(&min, g->peer, GSS_C_NO_OID, &ln))) {
            int ok = negio__local_name_ok(ln.value, ln.length);
            if (ok)
                name = negio__strndup(ln.value, ln.length);
            gss_release_buffer(&min, &ln);
            if (ok && name == NULL)
                return -1;
        }
    } else if (name == NULL && g->won == NEGIO_MECH_NTLM && cfg->ntlm_domain != NULL) {
        const char *sep = strchr(peer, '\\');
        size_t dlen = sep ? (size_t)(sep - peer) : 0;
        if (sep != NULL && dlen == strlen(cfg->ntlm_domain) &&
            strncasecmp(peer, cfg->ntlm_domain, dlen) == 0) {
            name = negio__strdup(sep + 1);
            if (name == NULL)
                return -1;
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
        }
    }
    if (name != NULL && !negio__local_name_ok(name, strlen(name))) {
        negio__free(name);
        name = NULL;
    }
    g->local_name = name;
    return 0;
}

negio_delegated *negio__gss_delegated(const negio__gss *g)
{
    return g != NULL && g->role == NEGIO_ROLE_SERVER ? g->delegated : NULL;
}

/* Every check an established context must pass before anything is sent under it. */
static int check_context(negio__gss *g, gss_OID mech, char *detail)
{
    OM_uint32 min;
    char names[128];
    g->won = mech_of(mech);
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
        need = g->req_flags & ~GSS_C_DELEG_FLAG;
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
        if (g->peer_text != NULL && map_local_name(g) < 0) {
            negio__detail(detail, "out of memory");
            return NEGIO_ERR_NOMEM;
        }
        if (g->peer_text != NULL && g->deleg != GSS_C_NO_CREDENTIAL) {
            negio_delegated *d = negio__calloc(1, sizeof(*d));
            char *who = negio__strdup(g->peer_text);
            if (d == NULL || who == NULL) {
                negio__free(d);
                negio__free(who);
                negio__detail(detail, "out of memory");
                return NEGIO_ERR_NOMEM;
            }
            atomic_init(&d->refs, 1);
            d->cred = g->deleg;
            d->principal = who;
            g->deleg = GSS_C_NO_CREDENTIAL;
            g->delegated = d;
        }
    }
    if (g->peer_text == NULL) {
        negio__detail(detail, "out of memory");
        return NEGIO_ERR_NOMEM;
    }
    return 0;
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
        gss_OID want = client_oid(g);
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
    if (otok.length > 0)
        rc = negio__buf_append(out, otok.value, otok.length);
    gss_release_buffer(&min2, &otok);
    if (GSS_ERROR(maj)) {
        gss_detail(detail, call, maj, min, mech);
        OM_uint32 routine = GSS_ROUTINE_ERROR(maj);
        if (routine == GSS_S_CREDENTIALS_EXPIRED || routine == GSS_S_NO_CRED ||
            routine == GSS_S_DEFECTIVE_CREDENTIAL)
            retire_cred(g);
        /* MIT krb5 reports a channel-binding mismatch as GSS_S_BAD_BINDINGS; gss-ntlmssp as a
         * defective token with the minor status EACCES (ntlm_verify_channel_bindings) */
        if (GSS_ROUTINE_ERROR(maj) == GSS_S_BAD_BINDINGS ||
            (g->has_cb && GSS_ROUTINE_ERROR(maj) == GSS_S_DEFECTIVE_TOKEN &&
             minor_is_errno(min, mech, EACCES)))
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
        gss_detail(detail, call, maj, min, mech);
        return NEGIO_ERR_HANDSHAKE;
    }
    rc = check_context(g, mech, detail);
    if (rc < 0)
        return rc;
    g->complete = 1;
    *complete = 1;
    /* An established context no longer needs the credential it was made with, and an idle
     * connection would otherwise keep it (with its open keytab) for its lifetime: about half
     * of an idle connection's memory (docs/PERFORMANCE.md). */
    drop_cred(g);
    return 0;
}

void negio__gss_peer_error(negio__gss *g, const uint8_t *tok, size_t len, char *detail)
{
    OM_uint32 maj, min, min2;
    detail[0] = '\0';
    /* only a Kerberos error, checked as any token from the peer: NTLM has no error tokens, and
     * a forged frame must not reach a mechanism it could crash */
    if (g == NULL || g->role != NEGIO_ROLE_CLIENT || g->ctx == GSS_C_NO_CONTEXT || g->complete ||
        !negio__peer_error_token_ok(&g->tokens, tok, len))
        return;
    gss_buffer_desc itok = {len, (void *)tok};
    gss_buffer_desc otok = GSS_C_EMPTY_BUFFER;
    gss_OID mech = GSS_C_NO_OID;
    maj = gss_init_sec_context(&min, client_cred(g), &g->ctx, g->target, client_oid(g),
                               g->req_flags, 0, bindings(g), &itok, &mech, &otok, NULL, NULL);
    gss_release_buffer(&min2, &otok);
    if (GSS_ERROR(maj))
        gss_detail(detail, "gss_init_sec_context (peer error token)", maj, min, mech);
}

#ifdef NEGIO_TEST_HOOKS
_Atomic int negio__gss_no_iov;
#endif

/* Whether MICs can be made and checked over separate pieces: MIT's Kerberos mechanism (also
 * under SPNEGO) has the IOV calls; gss-ntlmssp has not. */
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
    if (hlen > 0 && mic_iov(g)) {
        gss_iov_buffer_desc iov[3] = {
            {GSS_IOV_BUFFER_TYPE_DATA, {hlen, (void *)head}},
            {GSS_IOV_BUFFER_TYPE_DATA, {blen, (void *)body}},
            {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {0, NULL}},
        };
        maj = gss_get_mic_iov_length(&min, g->ctx, GSS_C_QOP_DEFAULT, iov, 3);
        if (maj != GSS_S_COMPLETE) {
            gss_detail(detail, "gss_get_mic_iov_length", maj, min, GSS_C_NO_OID);
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
            gss_detail(detail, "gss_get_mic_iov", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_INTEGRITY;
        }
        out->len += iov[2].buffer.length;
        return 0;
    }
    gss_buffer_desc m, mic = GSS_C_EMPTY_BUFFER;
    if ((rc = mic_message(&m, tmp, head, hlen, body, blen, detail)) < 0)
        return rc;
    maj = gss_get_mic(&min, g->ctx, GSS_C_QOP_DEFAULT, &m, &mic);
    if (hlen > 0)
        negio__buf_clear(tmp);
    if (maj != GSS_S_COMPLETE) {
        gss_detail(detail, "gss_get_mic", maj, min, GSS_C_NO_OID);
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
    if (hlen > 0 && mic_iov(g)) {
        gss_iov_buffer_desc iov[3] = {
            {GSS_IOV_BUFFER_TYPE_DATA, {hlen, (void *)head}},
            {GSS_IOV_BUFFER_TYPE_DATA, {blen, (void *)body}},
            {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {mic_len, (void *)mic}},
        };
        maj = gss_verify_mic_iov(&min, g->ctx, &qop, iov, 3);
        if (maj != GSS_S_COMPLETE) {
            frame_detail(g, detail, "gss_verify_mic_iov", maj, min);
            return NEGIO_ERR_INTEGRITY;
        }
        return 0;
    }
    gss_buffer_desc m, t = {mic_len, (void *)mic};
    int rc = mic_message(&m, tmp, head, hlen, body, blen, detail);
    if (rc < 0)
        return rc;
    maj = gss_verify_mic(&min, g->ctx, &m, &t, &qop);
    if (hlen > 0)
        negio__buf_clear(tmp);
    if (maj != GSS_S_COMPLETE) {
        frame_detail(g, detail, "gss_verify_mic", maj, min);
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
    maj = gss_wrap(&min, g->ctx, conf_req, GSS_C_QOP_DEFAULT, &m, &conf, &tok);
    if (maj != GSS_S_COMPLETE || (conf_req && conf != 1)) {
        if (maj == GSS_S_COMPLETE)
            negio__detail(detail, "gss_wrap did not apply confidentiality");
        else
            gss_detail(detail, "gss_wrap", maj, min, GSS_C_NO_OID);
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
    maj = gss_unwrap(&min, g->ctx, &t, &p->buf, &conf, &qop);
    if (maj != GSS_S_COMPLETE) {
        frame_detail(g, detail, "gss_unwrap", maj, min);
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
    p->buf.value = NULL;
    p->buf.length = 0;
    p->busy = 0;
    if (!p->embedded)
        negio__free(p);
    *handle = NULL;
}

void negio__gss_info(const negio__gss *g, negio_auth_info *info)
{
    info->mech = g->won;
    info->negotiated = g->negotiated;
    info->peer = g->peer_text;
    info->local_name = g->role == NEGIO_ROLE_SERVER ? g->local_name : NULL;
    info->delegated = g->role == NEGIO_ROLE_SERVER && g->delegated != NULL;
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
    info->flags = f;
    info->lifetime = g->lifetime;
}

int negio__gss_has_conf(const negio__gss *g)
{
    return (g->flags & GSS_C_CONF_FLAG) != 0;
}
