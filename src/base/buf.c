#include "base/buf.h"
#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "negio/negio.h"

/* Wipes N bytes at P of B's memory unless B holds only public bytes. */
static void wipe(const negio__buf *b, void *p, size_t n)
{
    if (!b->public_bytes && p != NULL && n > 0)
        explicit_bzero(p, n);
}

int negio__buf_reserve(negio__buf *b, size_t n)
{
    if (b->off > 0 && b->cap - b->len < n) {
        size_t live = b->len - b->off;
        memmove(b->p, b->p + b->off, live);
        wipe(b, b->p + live, b->len - live);
        b->off = 0;
        b->len = live;
    }
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return NEGIO_ERR_NOMEM;
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    if (b->tight)
        cap = (want + 4095) & ~(size_t)4095;
    while (cap < want)
        cap *= 2;
    /* realloc would leave the old copy unwiped; allocate, copy and wipe instead */
    uint8_t *np = negio__malloc(cap);
    if (np == NULL)
        return NEGIO_ERR_NOMEM;
    if (b->p != NULL) {
        memcpy(np, b->p, b->len);
        wipe(b, b->p, b->cap);
        negio__free(b->p);
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

int negio__buf_append(negio__buf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    int rc = negio__buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int negio__buf_append_u32(negio__buf *b, uint32_t v)
{
    uint8_t tmp[4];
    negio__put_u32(tmp, v);
    return negio__buf_append(b, tmp, 4);
}

void negio__buf_consume(negio__buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        wipe(b, b->p, b->len);
        b->off = b->len = 0;
    }
}

void negio__buf_clear(negio__buf *b)
{
    wipe(b, b->p, b->len);
    b->off = b->len = 0;
}

void *negio__buf_detach(negio__buf *b, size_t cap)
{
    if (negio__buf_size(b) == 0 || !b->public_bytes)
        return NULL;
    uint8_t *np = negio__malloc(cap);
    if (np == NULL)
        return NULL;
    uint8_t *old = b->p;
    b->p = np;
    b->cap = cap;
    b->off = b->len = 0;
    return old;
}

void negio__buf_free(negio__buf *b)
{
    if (b->p != NULL) {
        wipe(b, b->p, b->cap);
        negio__free(b->p);
    }
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}
