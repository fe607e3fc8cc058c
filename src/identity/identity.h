/* Internal to the identity layer and its tests. */
#ifndef NEGIO_IDENTITY_INTERNAL_H
#define NEGIO_IDENTITY_INTERNAL_H

#include <stddef.h>

/* A local account name that may be looked up at all: 1..255 bytes, no NUL, '/', ':' or control
 * character. */
int negio__local_name_ok(const char *name, size_t len);

#ifdef NEGIO_TEST_HOOKS
/* The test build only (negio_hook_static, tests/CMakeLists.txt): HOOK(step) returning non-zero
 * makes step STEP of the switch into an identity fail as if the kernel refused it (1 setgroups,
 * 2 setresgid, 3 setresuid). NULL removes it. */
void negio__identity_set_fail_hook(int (*hook)(int step));
#endif

#endif
