/* The counting allocator behind src/base/alloc.h, compiled only into the test-only library
 * (NEGIO_ALLOC_HOOK). A normal build gets the inline libc calls from the header and this file
 * contributes nothing. */
#include "base/alloc.h"

#ifdef NEGIO_ALLOC_HOOK

#include <stdatomic.h>

static atomic_long fail_at;  /* the allocation number to fail, 0: none */
static atomic_long counted;  /* allocations attempted since armed */
static atomic_long injected; /* allocations failed since armed */

void negio__alloc_fail_after(long n)
{
    atomic_store(&fail_at, 0);
    atomic_store(&counted, 0);
    atomic_store(&injected, 0);
    atomic_store(&fail_at, n > 0 ? n : 0);
}

long negio__alloc_injected(void)
{
    return atomic_load(&injected);
}

long negio__alloc_count(void)
{
    return atomic_load(&counted);
}

/* 1 if this allocation must fail. */
static int should_fail(void)
{
    long k = atomic_fetch_add(&counted, 1) + 1;
    long at = atomic_load(&fail_at);
    if (at > 0 && k == at) {
        atomic_fetch_add(&injected, 1);
        return 1;
    }
    return 0;
}

void *negio__malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *negio__calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count, size);
}

void *negio__realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *negio__strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

char *negio__strndup(const char *s, size_t n)
{
    return should_fail() ? NULL : strndup(s, n);
}

void negio__free(void *p)
{
    free(p);
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int negio__alloc_unused;

#endif /* NEGIO_ALLOC_HOOK */
