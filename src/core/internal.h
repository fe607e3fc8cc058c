/* Internal state shared between the connector core and the GSS provider. */
#ifndef NEGIO_CORE_INTERNAL_H
#define NEGIO_CORE_INTERNAL_H

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
    int deferred_steps;
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

/* Delegated credentials (src/gss): reference counting used by the configuration. */
void negio__delegated_ref(struct negio_delegated *d);
void negio__delegated_unref(struct negio_delegated *d);

/* The configuration's shared GSS credential cache, made on first use (NULL without memory). */
struct negio__cred_cache *negio__config_creds(const negio_config *cfg);

/* Deep copy of a configuration (strings duplicated). 0 or NEGIO_ERR_NOMEM. */
int negio__config_copy(negio_config *dst, const negio_config *src);
void negio__config_clear(negio_config *cfg);

/* A copy of an established, idle connector (nothing buffered, no error, no TLS, not the
 * gss-sample profile): same state, a copy of its GSS context (negio__gss_clone in src/gss/gss.h:
 * SRC's own context is exported by the first clone and SRC then only serves as a template).
 * NEGIO_ERR_INVALID otherwise; the cause goes to DETAIL (NEGIO__DETAIL_MAX bytes). For the
 * fuzzing fixture of tests/fuzz/fuzz_established.c and its test. */
int negio__conn_clone(negio_conn **out, negio_conn *src, char *detail);

/* snprintf into a detail buffer of NEGIO__DETAIL_MAX bytes. */
void negio__detail(char *detail, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
