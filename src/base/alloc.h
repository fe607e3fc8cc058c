/* negio's own allocations go through these wrappers so that tests can make any one of them fail
 * (docs/FUZZING.md, "Allocation failures"). In a normal build they are the libc calls, inlined;
 * with NEGIO_ALLOC_HOOK defined (the test-only library negio_hook_static) they are functions in
 * alloc.c that count allocations and can fail the Nth one. Allocations made inside GSS-API, the
 * mechanisms, OpenSSL or libuv do not pass through here and cannot be failed this way. */
#ifndef NEGIO_CORE_ALLOC_H
#define NEGIO_CORE_ALLOC_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifdef NEGIO_ALLOC_HOOK

void *negio__malloc(size_t n);
void *negio__calloc(size_t count, size_t size);
void *negio__realloc(void *p, size_t n);
char *negio__strdup(const char *s);
char *negio__strndup(const char *s, size_t n);
void negio__free(void *p);

/* Test hook: the Nth allocation from now (1 = the next one) returns NULL, once; 0 disarms.
 * Counting and failing are atomic, so allocations from several threads are counted too. */
void negio__alloc_fail_after(long n);
/* How many allocations were failed by the hook since the last negio__alloc_fail_after(). */
long negio__alloc_injected(void);
/* How many allocations were attempted since the last negio__alloc_fail_after(). */
long negio__alloc_count(void);

#else

static inline void *negio__malloc(size_t n)
{
    return malloc(n);
}

static inline void *negio__calloc(size_t count, size_t size)
{
    return calloc(count, size);
}

static inline void *negio__realloc(void *p, size_t n)
{
    return realloc(p, n);
}

static inline char *negio__strdup(const char *s)
{
    return strdup(s);
}

static inline char *negio__strndup(const char *s, size_t n)
{
    return strndup(s, n);
}

static inline void negio__free(void *p)
{
    free(p);
}

#endif /* NEGIO_ALLOC_HOOK */

#endif /* NEGIO_CORE_ALLOC_H */
