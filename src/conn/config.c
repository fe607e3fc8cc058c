#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "conn/conn.h"
#include "gss/gss.h"
#include "identity/identity.h"
#include "tls/tls.h"
#include "negio/identity.h"

/* negio_limits as negio 0.2 declared it ends with max_queued (base/sized.h); a layout without
 * padding at its end, so that a field appended later never lands in bytes an older caller
 * passed as padding (docs/ARCHITECTURE.md section 17.4) */
#define LIMITS_SIZE_0_2 NEGIO__END(negio_limits, max_queued)
_Static_assert(sizeof(negio_limits) == NEGIO__END(negio_limits, max_queued),
               "negio_limits grew: keep LIMITS_SIZE_0_2, move this check to the new last field");

static const negio_limits default_limits = {
    .size = sizeof(negio_limits),
    .max_token = 65536,
    .max_rounds = 8,
    .max_frame = 1048576,
    .max_message = 16777216,
    .max_queued = 16777216,
};

const char *negio_mech_name(negio_mech mech)
{
    switch (mech) {
    case NEGIO_MECH_NEGOTIATE:
        return "negotiate";
    case NEGIO_MECH_KERBEROS:
        return "kerberos";
    case NEGIO_MECH_NTLM:
        return "ntlm";
    default:
        return "none";
    }
}

const char *negio_level_name(negio_level level)
{
    switch (level) {
    case NEGIO_LEVEL_NONE:
        return "none";
    case NEGIO_LEVEL_SIGN:
        return "sign";
    case NEGIO_LEVEL_SEAL:
        return "seal";
    default:
        return "default";
    }
}

int negio_mech_parse(const char *name, negio_mech *out)
{
    if (name == NULL || out == NULL)
        return NEGIO_ERR_INVALID;
    for (int m = NEGIO_MECH_NEGOTIATE; m <= NEGIO_MECH_NTLM; m++) {
        if (strcmp(name, negio_mech_name((negio_mech)m)) == 0) {
            *out = (negio_mech)m;
            return NEGIO_OK;
        }
    }
    return NEGIO_ERR_INVALID;
}

int negio_level_parse(const char *name, negio_level *out)
{
    if (name == NULL || out == NULL)
        return NEGIO_ERR_INVALID;
    for (int l = NEGIO_LEVEL_NONE; l <= NEGIO_LEVEL_SEAL; l++) {
        if (strcmp(name, negio_level_name((negio_level)l)) == 0) {
            *out = (negio_level)l;
            return NEGIO_OK;
        }
    }
    return NEGIO_ERR_INVALID;
}

int negio_config_new(negio_config **out, negio_role role)
{
    if (out == NULL || (role != NEGIO_ROLE_CLIENT && role != NEGIO_ROLE_SERVER))
        return NEGIO_ERR_INVALID;
    negio_config *cfg = negio__calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return NEGIO_ERR_NOMEM;
    cfg->role = role;
    cfg->mech = NEGIO_MECH_NEGOTIATE;
    cfg->allowed = NEGIO_ALLOW_ALL;
    cfg->default_level = NEGIO_LEVEL_SEAL;
    cfg->min_level = NEGIO_LEVEL_SIGN;
    cfg->mutual = 1;
    cfg->limits = default_limits;
    *out = cfg;
    return NEGIO_OK;
}

static void free_secret(char **s)
{
    if (*s != NULL) {
        explicit_bzero(*s, strlen(*s));
        negio__free(*s);
        *s = NULL;
    }
}

void negio__config_clear(negio_config *cfg)
{
    for (size_t i = 0; i < 2 * cfg->user_map_len; i++)
        negio__free(cfg->user_map[i]);
    negio__free(cfg->user_map);
    negio__free(cfg->ntlm_domain);
    negio__delegated_unref(cfg->delegated);
    negio__tls_shared_unref(cfg->tls_shared);
    negio__cred_cache_unref(cfg->creds);
    negio__free(cfg->tls_cert);
    negio__free(cfg->tls_key);
    negio__free(cfg->tls_ca);
    negio__free(cfg->tls_host);
    negio__free(cfg->service);
    negio__free(cfg->keytab);
    negio__free(cfg->ccache);
    negio__free(cfg->ntlm_file);
    negio__free(cfg->user);
    free_secret(&cfg->password);
    memset(cfg, 0, sizeof(*cfg));
}

void negio_config_del(negio_config *cfg)
{
    if (cfg == NULL)
        return;
    negio__config_clear(cfg);
    negio__free(cfg);
}

static int dup_opt(char **dst, const char *src)
{
    char *copy = NULL;
    if (src != NULL && (copy = negio__strdup(src)) == NULL)
        return NEGIO_ERR_NOMEM;
    *dst = copy;
    return NEGIO_OK;
}

int negio__config_copy(negio_config *dst, const negio_config *src)
{
    *dst = *src;
    dst->service = dst->keytab = dst->ccache = dst->ntlm_file = dst->user = dst->password = NULL;
    dst->ntlm_domain = NULL;
    dst->user_map = NULL;
    dst->user_map_len = 0;
    dst->tls_cert = dst->tls_key = dst->tls_ca = dst->tls_host = NULL;
    negio__delegated_ref(dst->delegated);
    negio__tls_shared_ref(dst->tls_shared);
    dst->creds = __atomic_load_n(&src->creds, __ATOMIC_ACQUIRE);
    negio__cred_cache_ref(dst->creds);
    if (dup_opt(&dst->service, src->service) < 0 || dup_opt(&dst->keytab, src->keytab) < 0 ||
        dup_opt(&dst->ccache, src->ccache) < 0 || dup_opt(&dst->ntlm_file, src->ntlm_file) < 0 ||
        dup_opt(&dst->user, src->user) < 0 || dup_opt(&dst->password, src->password) < 0 ||
        dup_opt(&dst->ntlm_domain, src->ntlm_domain) < 0 ||
        dup_opt(&dst->tls_cert, src->tls_cert) < 0 || dup_opt(&dst->tls_key, src->tls_key) < 0 ||
        dup_opt(&dst->tls_ca, src->tls_ca) < 0 || dup_opt(&dst->tls_host, src->tls_host) < 0)
        goto nomem;
    if (src->user_map_len > 0) {
        dst->user_map = negio__calloc(2 * src->user_map_len, sizeof(char *));
        if (dst->user_map == NULL)
            goto nomem;
        dst->user_map_len = src->user_map_len;
        for (size_t i = 0; i < 2 * src->user_map_len; i++) {
            if (dup_opt(&dst->user_map[i], src->user_map[i]) < 0)
                goto nomem;
        }
    }
    return NEGIO_OK;
nomem:
    negio__config_clear(dst);
    return NEGIO_ERR_NOMEM;
}

/* A setting that changes which credentials a connector acquires: this configuration stops
 * sharing the credentials acquired so far (copies made before keep them, and they match their
 * settings); the next connector made from it acquires anew. */
static void creds_changed(negio_config *cfg)
{
    negio__cred_cache_unref(cfg->creds);
    cfg->creds = NULL;
}

struct negio__cred_cache *negio__config_creds(const negio_config *cfg)
{
    /* a cache is logically not part of the configuration's value: made on first use, also
     * through a const configuration, by whichever thread gets there first */
    negio_config *mut = (negio_config *)cfg;
    negio__cred_cache *cc = __atomic_load_n(&mut->creds, __ATOMIC_ACQUIRE);
    if (cc != NULL)
        return cc;
    negio__cred_cache *fresh = negio__cred_cache_new();
    if (fresh == NULL)
        return NULL; /* connectors then acquire their own */
    if (__atomic_compare_exchange_n(&mut->creds, &cc, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    negio__cred_cache_unref(fresh); /* another thread was first: CC holds its cache */
    return cc;
}

static int set_string(negio_config *cfg, char **field, const char *value)
{
    if (cfg == NULL || (value != NULL && value[0] == '\0'))
        return NEGIO_ERR_INVALID;
    char *copy = NULL;
    if (dup_opt(&copy, value) < 0)
        return NEGIO_ERR_NOMEM;
    negio__free(*field);
    *field = copy;
    creds_changed(cfg);
    return NEGIO_OK;
}

int negio_config_set_mech(negio_config *cfg, negio_mech mech)
{
    if (cfg == NULL || mech < NEGIO_MECH_NEGOTIATE || mech > NEGIO_MECH_NTLM)
        return NEGIO_ERR_INVALID;
    cfg->mech = mech;
    creds_changed(cfg);
    return NEGIO_OK;
}

int negio_config_set_allowed(negio_config *cfg, unsigned allowed)
{
    if (cfg == NULL || allowed == 0 || (allowed & ~NEGIO_ALLOW_ALL))
        return NEGIO_ERR_INVALID;
    cfg->allowed = allowed;
    creds_changed(cfg);
    return NEGIO_OK;
}

int negio_config_set_service(negio_config *cfg, const char *service_at_host)
{
    if (service_at_host != NULL) {
        const char *at = strchr(service_at_host, '@');
        if (at == NULL || at == service_at_host || at[1] == '\0')
            return NEGIO_ERR_INVALID;
    }
    return cfg == NULL ? NEGIO_ERR_INVALID : set_string(cfg, &cfg->service, service_at_host);
}

int negio_config_set_keytab(negio_config *cfg, const char *path)
{
    return cfg == NULL ? NEGIO_ERR_INVALID : set_string(cfg, &cfg->keytab, path);
}

int negio_config_set_ccache(negio_config *cfg, const char *name)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    return set_string(cfg, &cfg->ccache, name);
}

int negio_config_set_ntlm_file(negio_config *cfg, const char *path)
{
    return cfg == NULL ? NEGIO_ERR_INVALID : set_string(cfg, &cfg->ntlm_file, path);
}

int negio_config_set_password(negio_config *cfg, const char *user, const char *password)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT || (user == NULL) != (password == NULL))
        return NEGIO_ERR_INVALID;
    if (user != NULL && user[0] == '\0')
        return NEGIO_ERR_INVALID;
    char *u = NULL, *p = NULL;
    if (dup_opt(&u, user) < 0 || dup_opt(&p, password) < 0) {
        negio__free(u);
        free_secret(&p);
        return NEGIO_ERR_NOMEM;
    }
    negio__free(cfg->user);
    free_secret(&cfg->password);
    cfg->user = u;
    cfg->password = p;
    creds_changed(cfg);
    return NEGIO_OK;
}

static int valid_level(negio_level level)
{
    return level >= NEGIO_LEVEL_NONE && level <= NEGIO_LEVEL_SEAL;
}

int negio_config_set_default_level(negio_config *cfg, negio_level level)
{
    if (cfg == NULL || !valid_level(level))
        return NEGIO_ERR_INVALID;
    cfg->default_level = level;
    return NEGIO_OK;
}

int negio_config_set_min_level(negio_config *cfg, negio_level level)
{
    if (cfg == NULL || !valid_level(level))
        return NEGIO_ERR_INVALID;
    cfg->min_level = level;
    return NEGIO_OK;
}

int negio_config_set_require_server_auth(negio_config *cfg, int on)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    cfg->require_server_auth = on != 0;
    creds_changed(cfg);
    return NEGIO_OK;
}

int negio_config_set_allow_ntlm_fallback(negio_config *cfg, int on)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    cfg->allow_ntlm_fallback = on != 0;
    return NEGIO_OK;
}

int negio_config_set_mutual(negio_config *cfg, int on)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    cfg->mutual = on != 0;
    return NEGIO_OK;
}

int negio_config_set_delegate(negio_config *cfg, int on)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    cfg->delegate = on != 0;
    cfg->impersonation = on ? NEGIO_IMPERSONATION_DELEGATE : NEGIO_IMPERSONATION_IMPERSONATE;
    return NEGIO_OK;
}

int negio_config_set_impersonation(negio_config *cfg, negio_impersonation level)
{
    if (cfg == NULL || level < NEGIO_IMPERSONATION_IDENTIFY || level > NEGIO_IMPERSONATION_DELEGATE)
        return NEGIO_ERR_INVALID;
    cfg->impersonation = level;
    if (cfg->role == NEGIO_ROLE_CLIENT)
        cfg->delegate = level == NEGIO_IMPERSONATION_DELEGATE;
    return NEGIO_OK;
}

int negio_config_set_limits(negio_config *cfg, const negio_limits *limits)
{
    negio_limits l;
    if (cfg == NULL || limits == NULL ||
        negio__sized_in(&l, sizeof(l), limits, LIMITS_SIZE_0_2) < 0)
        return NEGIO_ERR_INVALID;
    if (l.max_token == 0)
        l.max_token = default_limits.max_token;
    if (l.max_rounds == 0)
        l.max_rounds = default_limits.max_rounds;
    if (l.max_frame == 0)
        l.max_frame = default_limits.max_frame;
    if (l.max_message == 0)
        l.max_message = default_limits.max_message;
    if (l.max_queued == 0)
        l.max_queued = default_limits.max_queued;
    if (l.max_frame < 4096 || l.max_token < 1024 || l.max_token > (16u << 20) ||
        l.max_frame > 0x7fffffffu || l.max_message > 0x7fffffffu)
        return NEGIO_ERR_INVALID;
    cfg->limits = l;
    return NEGIO_OK;
}

int negio_config_set_deferred_steps(negio_config *cfg, int deferred)
{
    if (cfg == NULL)
        return NEGIO_ERR_INVALID;
    cfg->deferred_steps = deferred != 0;
    return NEGIO_OK;
}

int negio_config_set_log(negio_config *cfg, negio_log_fn fn, void *user)
{
    if (cfg == NULL)
        return NEGIO_ERR_INVALID;
    cfg->log_fn = fn;
    cfg->log_user = user;
    return NEGIO_OK;
}

int negio_config_dup(negio_config **out, const negio_config *cfg)
{
    if (out == NULL || cfg == NULL)
        return NEGIO_ERR_INVALID;
    negio_config *copy = negio__calloc(1, sizeof(*copy));
    if (copy == NULL)
        return NEGIO_ERR_NOMEM;
    /* copies share the credentials of their original, also those acquired after the copy was
     * made: the engine makes one copy per outgoing connection, and each would otherwise acquire
     * its own (see negio__config_creds; without memory for the cache, the copy acquires its own) */
    (void)negio__config_creds(cfg);
    if (negio__config_copy(copy, cfg) < 0) {
        negio__free(copy);
        return NEGIO_ERR_NOMEM;
    }
    *out = copy;
    return NEGIO_OK;
}

negio_role negio_config_get_role(const negio_config *cfg)
{
    return cfg->role;
}

negio_level negio_config_get_default_level(const negio_config *cfg)
{
    return cfg->default_level;
}

int negio_config_get_limits(const negio_config *cfg, negio_limits *limits)
{
    if (cfg == NULL || limits == NULL)
        return NEGIO_ERR_INVALID;
    return negio__sized_out(limits, &cfg->limits, sizeof(cfg->limits), LIMITS_SIZE_0_2);
}

const char *negio_config_get_service(const negio_config *cfg)
{
    return cfg->service;
}

int negio_config_set_ntlm_domain(negio_config *cfg, const char *domain)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_SERVER)
        return NEGIO_ERR_INVALID;
    return set_string(cfg, &cfg->ntlm_domain, domain);
}

int negio_config_add_user_map(negio_config *cfg, const char *principal, const char *local_name)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_SERVER || principal == NULL || local_name == NULL ||
        principal[0] == '\0' || local_name[0] == '\0' || cfg->user_map_len >= 4096)
        return NEGIO_ERR_INVALID;
    char **more = negio__realloc(cfg->user_map, sizeof(char *) * 2 * (cfg->user_map_len + 1));
    if (more == NULL)
        return NEGIO_ERR_NOMEM;
    cfg->user_map = more;
    char *p = negio__strdup(principal), *l = negio__strdup(local_name);
    if (p == NULL || l == NULL) {
        negio__free(p);
        negio__free(l);
        return NEGIO_ERR_NOMEM;
    }
    cfg->user_map[2 * cfg->user_map_len] = p;
    cfg->user_map[2 * cfg->user_map_len + 1] = l;
    cfg->user_map_len++;
    return NEGIO_OK;
}

int negio_config_set_delegated(negio_config *cfg, struct negio_delegated *d)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT)
        return NEGIO_ERR_INVALID;
    negio__delegated_ref(d);
    negio__delegated_unref(cfg->delegated);
    cfg->delegated = d;
    return NEGIO_OK;
}

int negio_config_set_profile(negio_config *cfg, negio_profile profile)
{
    if (cfg == NULL || (profile != NEGIO_PROFILE_NATIVE && profile != NEGIO_PROFILE_GSS_SAMPLE &&
                        profile != NEGIO_PROFILE_NNS))
        return NEGIO_ERR_INVALID;
    cfg->profile = profile;
    return NEGIO_OK;
}

/* ---- TLS ------------------------------------------------------------------------------- */

/* A change to the TLS settings: the configuration gets its own, not yet built, SSL_CTX holder
 * (copies made before keep the old one, which matches their settings). */
static int tls_changed(negio_config *cfg)
{
    negio__tls_shared *fresh = NULL;
    if (cfg->transport != NEGIO_TRANSPORT_PLAIN && (fresh = negio__tls_shared_new()) == NULL)
        return NEGIO_ERR_NOMEM;
    negio__tls_shared_unref(cfg->tls_shared);
    cfg->tls_shared = fresh;
    return NEGIO_OK;
}

int negio_config_set_transport(negio_config *cfg, negio_transport transport)
{
    if (cfg == NULL || (transport != NEGIO_TRANSPORT_PLAIN && transport != NEGIO_TRANSPORT_TLS &&
                        transport != NEGIO_TRANSPORT_TLS_NEGOTIATE))
        return NEGIO_ERR_INVALID;
    int old = cfg->transport;
    cfg->transport = transport;
    if (tls_changed(cfg) < 0) {
        cfg->transport = old;
        return NEGIO_ERR_NOMEM;
    }
    if (transport != NEGIO_TRANSPORT_PLAIN)
        cfg->default_level = cfg->min_level = NEGIO_LEVEL_NONE;
    return NEGIO_OK;
}

negio_transport negio_config_get_transport(const negio_config *cfg)
{
    return cfg == NULL ? NEGIO_TRANSPORT_PLAIN : (negio_transport)cfg->transport;
}

static int set_tls_string(negio_config *cfg, char **field, const char *value)
{
    int rc = set_string(cfg, field, value);
    return rc < 0 ? rc : tls_changed(cfg);
}

int negio_config_set_tls_cert(negio_config *cfg, const char *cert_file, const char *key_file)
{
    if (cfg == NULL || (cert_file == NULL && key_file != NULL) ||
        (cert_file != NULL && cert_file[0] == '\0') || (key_file != NULL && key_file[0] == '\0'))
        return NEGIO_ERR_INVALID;
    char *cert = NULL, *key = NULL;
    if (dup_opt(&cert, cert_file) < 0 || dup_opt(&key, key_file) < 0) {
        negio__free(cert);
        return NEGIO_ERR_NOMEM;
    }
    negio__free(cfg->tls_cert);
    negio__free(cfg->tls_key);
    cfg->tls_cert = cert;
    cfg->tls_key = key;
    return tls_changed(cfg);
}

int negio_config_set_tls_ca(negio_config *cfg, const char *ca_file)
{
    if (cfg == NULL || (ca_file != NULL && ca_file[0] == '\0'))
        return NEGIO_ERR_INVALID;
    return set_tls_string(cfg, &cfg->tls_ca, ca_file);
}

int negio_config_set_tls_host(negio_config *cfg, const char *host)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_CLIENT || (host != NULL && host[0] == '\0'))
        return NEGIO_ERR_INVALID;
    return set_tls_string(cfg, &cfg->tls_host, host);
}

int negio_config_set_tls_require_client_cert(negio_config *cfg, int on)
{
    if (cfg == NULL || cfg->role != NEGIO_ROLE_SERVER)
        return NEGIO_ERR_INVALID;
    cfg->tls_require_client_cert = on != 0;
    return tls_changed(cfg);
}

int negio_config_set_tls_max_version(negio_config *cfg, int version)
{
    if (cfg == NULL || (version != 12 && version != 13))
        return NEGIO_ERR_INVALID;
    cfg->tls_max_version = version;
    return tls_changed(cfg);
}

int negio_config_set_tls_allow_ntlm(negio_config *cfg, int on)
{
    if (cfg == NULL)
        return NEGIO_ERR_INVALID;
    cfg->tls_allow_ntlm = on != 0;
    return NEGIO_OK;
}

int negio_config_tls_check(negio_config *cfg, char *detail, size_t cap)
{
    char text[NEGIO__DETAIL_MAX] = "";
    if (cfg == NULL)
        return NEGIO_ERR_INVALID;
    int rc = NEGIO_OK;
    if (cfg->transport != NEGIO_TRANSPORT_PLAIN) {
        if (cfg->tls_shared == NULL && tls_changed(cfg) < 0)
            return NEGIO_ERR_NOMEM;
        rc = negio__tls_shared_build(cfg->tls_shared, cfg, text);
    }
    if (detail != NULL && cap > 0)
        snprintf(detail, cap, "%s", text);
    return rc;
}
