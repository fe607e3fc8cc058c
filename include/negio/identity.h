/*
 * negio identity — acting as the authenticated client.
 *
 * Local impersonation: the peer's principal is mapped to a local account when the connection is
 * established (negio_auth_info.local_name; see negio_config_add_user_map and
 * negio_config_set_ntlm_domain for the rules). negio_user_lookup() resolves that account under a
 * policy, and negio_impersonate() runs a function as it ON THE CALLING THREAD ONLY: real,
 * effective and saved uid and gid and the supplementary groups are switched with the raw system
 * calls (glibc's setresuid() and friends change every thread of the process), the function runs
 * with no effective capabilities, and the thread is switched back afterwards whatever happened.
 * No other thread ever observes the identity.
 *
 * Delegation: a client that asks for delegation (negio_config_set_delegate) and holds a
 * forwardable ticket hands its credentials to the server. The server reaches them through
 * negio_conn_delegated(); they live in memory for that connection only (never in a credential
 * cache file or KRB5CCNAME) and are destroyed when the last reference goes, at the latest when
 * the connection and every configuration using them are freed. A client configuration made with
 * negio_config_set_delegated() opens an onward connection as the original client.
 */
#ifndef NEGIO_IDENTITY_H
#define NEGIO_IDENTITY_H

#include <sys/types.h>

#include "negio/negio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* identity's error codes, NEGIO_ERR_IDENTITY and NEGIO_ERR_PERMISSION, are in the one table of
 * negio.h (range -40..-59). */

/* What may be impersonated. The zero value is the safe default. Growable (the conventions of
 * negio.h): set size = sizeof(negio_identity_policy), or leave it 0 for the 0.2 layout. */
typedef struct negio_identity_policy {
    uint32_t size;  /* sizeof(negio_identity_policy), or 0: the 0.2 layout */
    uid_t min_uid;  /* lowest uid of a login account (0: UID_MIN from /etc/login.defs, else 1000) */
    int allow_root; /* allow uid 0 */
    int allow_system; /* allow accounts below min_uid */
} negio_identity_policy;

typedef struct negio_user negio_user;

/* Looks up the local account NAME and its groups, and applies POLICY (NULL: the defaults).
 * Names that are empty, longer than 255 bytes, or hold '/', ':', a newline or another control
 * character are refused. DETAIL (optional, CAP bytes) receives the reason on failure.
 * Returns NEGIO_OK, NEGIO_ERR_INVALID (also: a policy size the conventions of negio.h refuse),
 * NEGIO_ERR_IDENTITY, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_user_lookup(negio_user **out, const char *name,
                                const negio_identity_policy *policy, char *detail, size_t cap);
/* The same for the local account an established connection's peer maps to (anonymous peers and
 * peers without a mapping are refused with NEGIO_ERR_IDENTITY).
 * Returns NEGIO_OK, NEGIO_ERR_INVALID, NEGIO_ERR_STATE, NEGIO_ERR_IDENTITY, NEGIO_ERR_NOMEM. */
NEGIO_API int negio_conn_user(negio_user **out, const negio_conn *conn,
                              const negio_identity_policy *policy, char *detail, size_t cap);
NEGIO_API void negio_user_del(negio_user *user);
NEGIO_API const char *negio_user_name(const negio_user *user);
NEGIO_API uid_t negio_user_uid(const negio_user *user);
NEGIO_API gid_t negio_user_gid(const negio_user *user);

/* Runs FN(ARG) as USER on the calling thread and stores its return value in *RESULT (if not
 * NULL). Needs root or CAP_SETUID and CAP_SETGID. If switching in fails half-way, what was
 * switched is undone and FN does not run. If the thread cannot be switched back afterwards, the
 * process aborts: going on with the wrong identity would be worse.
 * Returns NEGIO_OK (FN ran), NEGIO_ERR_INVALID, NEGIO_ERR_PERMISSION (nothing switched; errno
 * tells why), NEGIO_ERR_NOMEM. */
NEGIO_API int negio_impersonate(const negio_user *user, int (*fn)(void *arg), void *arg,
                                int *result);

/* The credentials the peer delegated on an established server connection (a negio_delegated,
 * declared in negio.h), or NULL when none were (not asked for, ticket not forwardable, NTLM, or
 * policy). The connection keeps its own reference; call negio_delegated_ref() to keep them
 * longer. */
NEGIO_API negio_delegated *negio_conn_delegated(const negio_conn *conn);
NEGIO_API void negio_delegated_ref(negio_delegated *d);
NEGIO_API void negio_delegated_unref(negio_delegated *d);
/* The principal the credentials belong to (the original client). */
NEGIO_API const char *negio_delegated_principal(const negio_delegated *d);
/* Client: authenticate with delegated credentials instead of the process's own (the config
 * takes a reference). NULL removes them. Returns NEGIO_OK, NEGIO_ERR_INVALID. */
NEGIO_API int negio_config_set_delegated(negio_config *cfg, negio_delegated *d);

#ifdef __cplusplus
}
#endif
#endif /* NEGIO_IDENTITY_H */
