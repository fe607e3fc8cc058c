/* Test support: bytes written and read by hand, independently of the library's own encoders
 * (src/base/buf.h, src/wire/frame.c), so that a test builds what a peer would send without
 * trusting the code under test: the byte orders of negio's frames (big-endian) and of NTLM
 * (little-endian), and negio's 8-byte frame header (PROTOCOL.md section 3.1: version, type,
 * level, flags, a 32-bit length). Header-only (static inline), as tests/support/clock.h. */
#ifndef NEGIO_TEST_BYTES_H
#define NEGIO_TEST_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "negio/negio.h" /* NEGIO_PROTOCOL_VERSION */

static inline uint32_t test_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void test_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t test_le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t test_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void test_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Writes a frame header into P[0..7], with any values at all (a test's bad ones too). */
static inline void test_put_header(uint8_t *p, unsigned version, unsigned type, unsigned level,
                                   unsigned flags, uint32_t length)
{
    p[0] = (uint8_t)version;
    p[1] = (uint8_t)type;
    p[2] = (uint8_t)level;
    p[3] = (uint8_t)flags;
    test_put_be32(p + 4, length);
}

/* Writes a header announcing LENGTH, followed by BODY_LEN bytes of BODY (fewer or more than
 * announced, if the test wants), into OUT; returns the bytes written. */
static inline size_t test_put_raw_frame(uint8_t *out, unsigned version, unsigned type,
                                        unsigned level, unsigned flags, uint32_t length,
                                        const void *body, size_t body_len)
{
    test_put_header(out, version, type, level, flags, length);
    if (body_len > 0)
        memcpy(out + 8, body, body_len);
    return 8 + body_len;
}

/* A well-formed frame of the current version whose header announces its body's length. */
static inline size_t test_put_frame(uint8_t *out, unsigned type, unsigned level, unsigned flags,
                                    const void *body, size_t body_len)
{
    return test_put_raw_frame(out, NEGIO_PROTOCOL_VERSION, type, level, flags, (uint32_t)body_len,
                              body, body_len);
}

#endif
