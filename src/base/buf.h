/* A growable byte buffer with a read cursor: [p+off, p+len) holds unread bytes. Memory is wiped
 * before it is released, because buffers carry plaintext and tokens. */
#ifndef NEGIO_CORE_BUF_H
#define NEGIO_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct negio__buf {
    uint8_t *p;
    size_t off; /* first unread byte */
    size_t len; /* one past the last byte */
    size_t cap;
    int public_bytes; /* holds only bytes that cross the wire as they are (ciphertext, or what
                         was sent in the clear anyway): not wiped, which costs a pass over every
                         byte. 0, the default, wipes. */
    int tight;        /* grows to what is needed (in 4 KiB steps) instead of doubling: for input
                         from a peer that has not authenticated, so that what it can make this
                         side hold stays what the limits allow, not twice that */
} negio__buf;

static inline size_t negio__buf_size(const negio__buf *b)
{
    return b->len - b->off;
}

/* NULL for a buffer that was never allocated (or was freed). off > 0 only while unread bytes are
 * held, so p is allocated then; testing off rather than p keeps C's undefined NULL + 0 out and
 * compiles to the same single addition (gcc and clang fold the select), with no branch. */
static inline const uint8_t *negio__buf_data(const negio__buf *b)
{
    return b->off != 0 ? b->p + b->off : b->p;
}

/* Ensures room for N more bytes after len (compacting first). 0 or NEGIO_ERR_NOMEM. */
int negio__buf_reserve(negio__buf *b, size_t n);
int negio__buf_append(negio__buf *b, const void *data, size_t n);
int negio__buf_append_u32(negio__buf *b, uint32_t v);
void negio__buf_consume(negio__buf *b, size_t n);
/* Drops all content (wiped) but keeps the allocation. */
void negio__buf_clear(negio__buf *b);
void negio__buf_free(negio__buf *b);
/* Hands B's memory to the caller, unread bytes and all (they stay at the offset B had), and
 * gives B a new, empty allocation of CAP bytes. Only for a buffer of public bytes (nothing to
 * wipe when the caller frees it with negio__free). NULL, with B unchanged, when B is empty, not
 * public, or CAP bytes cannot be had. */
void *negio__buf_detach(negio__buf *b, size_t cap);

static inline uint32_t negio__get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void negio__put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
