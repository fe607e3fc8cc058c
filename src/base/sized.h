/* The public structures that can grow (the conventions of include/negio/negio.h,
 * docs/ARCHITECTURE.md section 17.4): each begins with a uint32_t size, the bytes the caller
 * has; 0 stands for the layout of negio 0.2. The rules are those of Linux's extensible system
 * call arguments (copy_struct_from_user() for openat2 and clone3), with 0 allowed:
 * read no more than the caller has, treat what it does not have as zero, and refuse non-zero
 * bytes this library has no field for.
 *
 * Static inline functions for the same reason as write_check.h: the engine is a separate
 * library that sees only libnegio's public symbols. */
#ifndef NEGIO_BASE_SIZED_H
#define NEGIO_BASE_SIZED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "negio/negio.h"

/* Where FIELD of TYPE ends: the size of a layout whose last field is FIELD. Appending fields
 * never moves it, so NEGIO__END(type, last field of 0.2) is the 0.2 size for good. */
#define NEGIO__END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* The largest size accepted: a bound on what is read or written for a wrong size. */
#define NEGIO__SIZED_MAX 4096u

/* The caller's size of the structure at P: 0 means V0, the 0.2 size; 0 when it is refused (1 to
 * 3, or over NEGIO__SIZED_MAX). */
static inline size_t negio__sized_len(const void *p, size_t v0)
{
    uint32_t n;
    memcpy(&n, p, sizeof(n));
    if (n == 0)
        return v0;
    return n < sizeof(n) || n > NEGIO__SIZED_MAX ? 0 : n;
}

/* Copies the caller's structure SRC into the library's own DST of DST_SIZE bytes: the bytes the
 * caller has, zero for the rest; DST's size becomes DST_SIZE. Returns 0, or NEGIO_ERR_INVALID
 * (DST unchanged) for a refused size or a non-zero byte beyond DST_SIZE. */
static inline int negio__sized_in(void *dst, size_t dst_size, const void *src, size_t v0)
{
    size_t n = negio__sized_len(src, v0);
    if (n == 0)
        return NEGIO_ERR_INVALID;
    for (size_t i = dst_size; i < n; i++) {
        if (((const uint8_t *)src)[i] != 0)
            return NEGIO_ERR_INVALID;
    }
    memset(dst, 0, dst_size);
    memcpy(dst, src, n < dst_size ? n : dst_size);
    uint32_t full = (uint32_t)dst_size;
    memcpy(dst, &full, sizeof(full));
    return 0;
}

/* Fills the caller's structure DST from the library's SRC of SRC_SIZE bytes: no more than the
 * caller has, zero for what the library has no field for, and the caller's size set to the
 * bytes filled. Returns 0, or NEGIO_ERR_INVALID (DST unchanged) for a refused size. */
static inline int negio__sized_out(void *dst, const void *src, size_t src_size, size_t v0)
{
    size_t n = negio__sized_len(dst, v0);
    if (n == 0)
        return NEGIO_ERR_INVALID;
    size_t fill = n < src_size ? n : src_size;
    memcpy(dst, src, fill);
    memset((uint8_t *)dst + fill, 0, n - fill);
    uint32_t filled = (uint32_t)fill;
    memcpy(dst, &filled, sizeof(filled));
    return 0;
}

#endif
