/* The settings every layer reads: the definition of negio_config (set through the public setters
 * in src/conn/config.c), and the sizes and the detail text they share. Data only: the objects it
 * points to (credentials, TLS context, delegated credentials) are opaque here and belong to the
 * layers that make them. */
#ifndef NEGIO_BASE_CONFIG_H
#define NEGIO_BASE_CONFIG_H

#include "negio/negio.h"

#define NEGIO__DETAIL_MAX 768
#define NEGIO__FRAME_OVERHEAD 1024 /* room kept in a frame body for MIC or wrap overhead */
#define NEGIO__REASON_MAX 256

struct negio_config {
    negio_role role;
    negio_mech mech;
    unsigned allowed;
    char *service;
    char *keytab;
    char *ccache;
    char *ntlm_file;
    char *user;
    char *password;
    negio_level default_level;
    negio_level min_level;
    int require_server_auth;
    int allow_ntlm_fallback; /* client: SPNEGO may move from an offered Kerberos to NTLM */
    int mutual;
    int delegate;
    int impersonation;      /* NEGIO_IMPERSONATION_*: client, what it allows (0: impersonate, or
                               delegate with delegate set); server, the least it requires (0: any) */
    int kerberos_fast_path; /* RFC 4121 tokens on OpenSSL once Kerberos is established (src/gss) */
    int deferred_steps;
    int half_close; /* native profile: a peer's CLOSE is answered by negio_conn_close() */
    negio_limits limits;
    negio_log_fn log_fn;
    void *log_user;
    char *ntlm_domain;   /* server: NTLM names of this domain map to local accounts */
    char **user_map;     /* server: principal, local name, principal, local name, ... */
    size_t user_map_len; /* number of pairs */
    struct negio_delegated *delegated; /* client: authenticate with these (a reference) */
    int profile;                       /* negio_profile */
    int transport;                     /* negio_transport */
    char *tls_cert;
    char *tls_key;
    char *tls_ca;
    char *tls_host;
    int tls_require_client_cert;
    int tls_allow_ntlm;
    int tls_max_version;                  /* 12 or 13; 0: 13 */
    struct negio__tls_shared *tls_shared; /* the SSL_CTX built from the above (a reference) */
    struct negio__cred_cache *creds;      /* GSS credentials shared by connectors (a reference) */
};

/* Whether negio_conn_new can make a connector of CFG: NEGIO_OK, or NEGIO_ERR_INVALID for a
 * client without a service name, a profile other than negio's own inside TLS (gss-sample and
 * [MS-NNS] have no TLS form), or a level above none on plain TLS (no GSS-API context to sign or
 * seal with). The engine refuses such a configuration where it is given (negio_engine_listen),
 * rather than for each connection: a static inline function, as the engine sees only libnegio's
 * public symbols. */
static inline int negio__config_check(const negio_config *cfg)
{
    if (cfg->role == NEGIO_ROLE_CLIENT && cfg->service == NULL)
        return NEGIO_ERR_INVALID;
    if (cfg->transport != NEGIO_TRANSPORT_PLAIN &&
        (cfg->profile != NEGIO_PROFILE_NATIVE ||
         (cfg->transport == NEGIO_TRANSPORT_TLS &&
          (cfg->min_level != NEGIO_LEVEL_NONE || cfg->default_level != NEGIO_LEVEL_NONE))))
        return NEGIO_ERR_INVALID;
    return NEGIO_OK;
}

/* snprintf into a detail buffer of NEGIO__DETAIL_MAX bytes. */
void negio__detail(char *detail, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
