/* Internal to the identity layer and its tests. */
#ifndef NEGIO_IDENTITY_INTERNAL_H
#define NEGIO_IDENTITY_INTERNAL_H

#include <stddef.h>

#include "base/config.h"
#include "gss/gss.h"

/* A local account name that may be looked up at all: 1..255 bytes, no NUL, '/', ':' or control
 * character. */
int negio__local_name_ok(const char *name, size_t len);

/* The local account PEER of the established server context G maps to (negio.h,
 * negio_config_add_user_map) in *OUT (negio__free it), NULL when none is acceptable. 0 or
 * NEGIO_ERR_NOMEM. */
int negio__identity_local_name(const negio_config *cfg, const negio__gss *g, char **out);

/* Delegated credentials (delegated.c): a handle owning the provider's credential *CRED (taken:
 * *CRED is NULL afterwards, also when the handle cannot be made and the credential is released)
 * for PRINCIPAL, with one reference; NULL without memory. */
struct negio_delegated *negio__delegated_new(void **cred, const char *principal);
/* The provider's credential inside D, for negio__gss_new (borrowed: D keeps it). */
void *negio__delegated_cred(const struct negio_delegated *d);
void negio__delegated_ref(struct negio_delegated *d);
void negio__delegated_unref(struct negio_delegated *d);

#ifdef NEGIO_TEST_HOOKS
/* The test build only (negio_hook_static, tests/CMakeLists.txt): HOOK(step) returning non-zero
 * makes step STEP of the switch into an identity fail as if the kernel refused it (1 setgroups,
 * 2 setresgid, 3 setresuid). NULL removes it. */
void negio__identity_set_fail_hook(int (*hook)(int step));
#endif

#endif
