/* Credentials: acquisition for each role and mechanism set, and the cache a configuration's
 * connectors share (docs/ARCHITECTURE.md section 8.1); the release of a credential handed out
 * (delegated credentials, src/identity). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "gss/gss_internal.h"
#include "gss/kerberos.h"

/* The credentials of one configuration, acquired by its first connector and shared by all the
 * connectors made from it or its copies (docs/PERFORMANCE.md): acquiring per connection cost half
 * of a handshake's CPU. One per allowed-mechanism mask, since a connector may narrow the set
 * (require_server_auth, certificate-free TLS) and the mask is set on the credential
 * (gss_set_neg_mechs), and per Kerberos CONF/INTEG suppression (the NNS profile below seal), an
 * option of the credential too. A credential that expired is retired, not released: other
 * connectors may be using it; retired ones go with the cache. MIT krb5 locks its credentials;
 * gss-ntlmssp's are read-only once acquired. */
struct negio__cred_cache {
    atomic_int refs;
    pthread_mutex_t lock;
    gss_cred_id_t cred[8]; /* by cred_slot() */
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
    for (size_t i = 0; i < 8; i++)
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
    for (size_t i = 0; i < 8; i++) {
        if (cc->cred[i] != GSS_C_NO_CREDENTIAL)
            gss_release_cred(&min, &cc->cred[i]);
    }
    for (size_t i = 0; i < cc->nretired; i++)
        gss_release_cred(&min, &cc->retired[i]);
    negio__free(cc->retired);
    pthread_mutex_destroy(&cc->lock);
    negio__free(cc);
}

int negio__gss_import_name(const char *text, gss_OID type, gss_name_t *out, char *detail)
{
    OM_uint32 min;
    gss_buffer_desc b = {strlen(text), (void *)text};
    OM_uint32 maj = gss_import_name(&min, &b, type, out);
    if (GSS_ERROR(maj)) {
        negio__gss_detail(detail, "gss_import_name", maj, min, GSS_C_NO_OID);
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
        elems[set->count++] = negio__oid_krb5;
    if (allowed & NEGIO_ALLOW_NTLM)
        elems[set->count++] = negio__oid_ntlm;
}

/* Whether the default identity's Kerberos credentials come from the default cache, named. Left
 * unnamed, MIT's acquisition (acquire_init_cred) checks with krb5_cccol_have_content that some
 * cache of the collection holds credentials, and that function, in MIT krb5 before 1.21.3 (1.20.1
 * on Debian 12), frees a principal it never set whenever it cannot read a cache (out of
 * descriptors, a damaged or half-written file): a crash, a double free or nothing, by chance of
 * what the stack held. Named, MIT reads that one cache and takes the principal from it at once.
 * What is given up is MIT's lazy choice, in the first gss_init_sec_context, of the collection's
 * cache for the target's realm (krb5_cc_select): the credential is the primary cache's (what klist
 * shows), as it is anyway once its lifetime is asked for below. Only with Kerberos in play, and
 * not where the name would make the store hide gss-ntlmssp's default account (a store without an
 * NTLM account file, see below). docs/ARCHITECTURE.md section 8.1. */
static int default_cache_named(const negio__gss *g, const negio_config *cfg)
{
    if (g->want == NEGIO_MECH_KERBEROS)
        return 1;
    return g->want == NEGIO_MECH_NEGOTIATE && (g->allowed & NEGIO_ALLOW_KERBEROS) &&
           (!(g->allowed & NEGIO_ALLOW_NTLM) || ntlm_file(cfg) != NULL);
}

static int acquire_client(negio__gss *g, const negio_config *cfg, char *detail)
{
    OM_uint32 maj, min;
    gss_OID_desc one;
    gss_OID_set_desc mechs = {1, &one};
    one = *negio__gss_client_oid(g);
    if (cfg->user != NULL) {
        gss_name_t name = GSS_C_NO_NAME;
        int rc = negio__gss_import_name(cfg->user, GSS_C_NT_USER_NAME, &name, detail);
        if (rc < 0)
            return rc;
        gss_buffer_desc pw = {strlen(cfg->password), cfg->password};
        maj = gss_acquire_cred_with_password(&min, name, &pw, GSS_C_INDEFINITE, &mechs,
                                             GSS_C_INITIATE, &g->cred, NULL, NULL);
        gss_release_name(&min, &name);
        if (GSS_ERROR(maj)) {
            negio__gss_explain_acquire(g, cfg, "gss_acquire_cred_with_password", maj, min, detail);
            return NEGIO_ERR_CREDENTIALS;
        }
    } else {
        /* gss-ntlmssp reads no default account when a cred store is given, so the store
         * names the NTLM account file whenever it names anything. */
        gss_key_value_element_desc el[3];
        gss_key_value_set_desc store = {0, el};
        char defcc[1024];
        const char *ccache = cfg->ccache;
        if (ccache == NULL && default_cache_named(g, cfg) &&
            negio__krb5_default_ccache(defcc, sizeof(defcc)) == 0)
            ccache = defcc;
        if (ccache != NULL)
            el[store.count++] = (gss_key_value_element_desc){"ccache", ccache};
        if (cfg->keytab != NULL)
            el[store.count++] = (gss_key_value_element_desc){"client_keytab", cfg->keytab};
        if ((store.count > 0 || cfg->ntlm_file != NULL) && (g->allowed & NEGIO_ALLOW_NTLM) &&
            ntlm_file(cfg) != NULL)
            el[store.count++] = (gss_key_value_element_desc){"ntlmssp_keyfile", ntlm_file(cfg)};
        /* Asking for the lifetime makes MIT resolve the credential now (kg_cred_resolve: its
         * principal and cache) rather than in the first gss_init_sec_context made with it.
         * Resolved lazily, a shared credential is resolved by whichever connector uses it first,
         * and if reading the cache fails there (EMFILE) MIT (1.20 at least) keeps the cache
         * without the principal: every later gss_init_sec_context with it, in the connectors
         * that borrowed it meanwhile, stops the process on an assertion. Resolved here, a
         * credential that cannot be is never acquired, so never shared. */
        OM_uint32 lifetime = 0;
        maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                    store.count ? &store : GSS_C_NO_CRED_STORE, &g->cred, NULL,
                                    &lifetime);
        if (GSS_ERROR(maj)) {
            negio__gss_explain_acquire(g, cfg, "gss_acquire_cred_from", maj, min, detail);
            return NEGIO_ERR_CREDENTIALS;
        }
    }
    if (g->want == NEGIO_MECH_NEGOTIATE) {
        gss_OID_desc elems[2];
        gss_OID_set_desc set;
        neg_set(g->allowed, elems, &set);
        maj = gss_set_neg_mechs(&min, g->cred, &set);
        if (GSS_ERROR(maj)) {
            negio__gss_detail(detail, "gss_set_neg_mechs", maj, min, GSS_C_NO_OID);
            return NEGIO_ERR_CREDENTIALS;
        }
    }
    if (g->no_ci) {
        /* MIT krb5 (1.14 on): the authenticator then claims only the flags asked for, so that a
         * peer reading the flags as the stream's protection ([MS-NNS]) sees sign or none. The
         * NTLM element of a SPNEGO credential does not know the option: one element taking it is
         * success enough, and none (no Kerberos ticket: NTLM only) is nothing to suppress */
        gss_buffer_desc none = GSS_C_EMPTY_BUFFER;
        maj = gss_set_cred_option(&min, &g->cred, GSS_KRB5_CRED_NO_CI_FLAGS_X, &none);
        if (GSS_ERROR(maj) && GSS_ROUTINE_ERROR(maj) != GSS_S_UNAVAILABLE) {
            negio__gss_detail(detail, "gss_set_cred_option (GSS_KRB5_CRED_NO_CI_FLAGS_X)", maj, min,
                              GSS_C_NO_OID);
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
        int rc = negio__gss_import_name(cfg->service, GSS_C_NT_HOSTBASED_SERVICE, &name, detail);
        if (rc < 0)
            return rc;
    }
    gss_OID_desc elems[3];
    gss_OID_set_desc mechs = {0, elems};
    elems[mechs.count++] = negio__oid_spnego;
    if (cfg->allowed & NEGIO_ALLOW_KERBEROS)
        elems[mechs.count++] = negio__oid_krb5;
    if (cfg->allowed & NEGIO_ALLOW_NTLM)
        elems[mechs.count++] = negio__oid_ntlm;
    maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT,
                                store.count ? &store : GSS_C_NO_CRED_STORE, &g->cred, NULL, NULL);
    gss_release_name(&min, &name);
    if (GSS_ERROR(maj)) {
        negio__gss_explain_acquire(g, cfg, "gss_acquire_cred_from (acceptor)", maj, min, detail);
        return NEGIO_ERR_CREDENTIALS;
    }
    gss_OID_desc negs[2];
    gss_OID_set_desc set;
    neg_set(cfg->allowed, negs, &set);
    maj = gss_set_neg_mechs(&min, g->cred, &set);
    if (GSS_ERROR(maj)) {
        negio__gss_detail(detail, "gss_set_neg_mechs", maj, min, GSS_C_NO_OID);
        return NEGIO_ERR_CREDENTIALS;
    }
    return 0;
}

/* Gives up this context's use of its credential (borrowed or owned). */
void negio__gss_drop_cred(negio__gss *g)
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

/* Which of a cache's credentials a context uses: its allowed-mechanism mask, and whether Kerberos'
 * CONF and INTEG are suppressed. */
static unsigned cred_slot(const negio__gss *g)
{
    return (g->allowed & 3u) | (g->no_ci ? 4u : 0u);
}

/* The configuration's shared credential for this context's mechanism set, acquired now if it
 * is not there yet (under the cache's lock, so that a burst of connections acquires once). A
 * failure is not remembered: the next connector tries again (a ticket may have arrived). */
int negio__gss_acquire(negio__gss *g, const negio_config *cfg, char *detail)
{
    negio__cred_cache *cc = cfg->creds;
    if (cc == NULL)
        return g->role == NEGIO_ROLE_CLIENT ? acquire_client(g, cfg, detail)
                                            : acquire_server(g, cfg, detail);
    unsigned slot = cred_slot(g);
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
void negio__gss_retire_cred(negio__gss *g)
{
    negio__cred_cache *cc = g->cache;
    if (cc == NULL)
        return;
    pthread_mutex_lock(&cc->lock);
    unsigned slot = cred_slot(g);
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

void negio__gss_cred_release(void **cred)
{
    OM_uint32 min;
    gss_cred_id_t c = *cred;
    if (c != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &c);
    *cred = NULL;
}
