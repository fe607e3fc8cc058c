/* Fuzz target: the frame header codec (src/wire/frame.h) on every 8-byte window of the input.
 * Each window is decoded and checked against a model written from PROTOCOL.md section 3, a
 * header that decodes is encoded again and must give the same 8 bytes, and a header built from
 * the window's bytes goes through encode and decode unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"
#include "fuzz/fuzz_support.h"

#define MAX_WINDOWS 512

/* PROTOCOL.md 3.1-3.4, written independently of frame.c: version 2 since the handshake
 * transcript (issue 13). */
static int model_valid(const uint8_t *p)
{
    uint8_t version = p[0], type = p[1], level = p[2], flags = p[3];
    if (version != 2 || level > 2 || type < 1 || type > 5)
        return 0;
    if ((type == 1 || type == 2) && level != 0) /* HANDSHAKE, HANDSHAKE_ERROR: none only */
        return 0;
    if ((type == 3 || type == 5) && level == 0) /* POLICY, CLOSE: sign or seal */
        return 0;
    if (type == 4) /* DATA: MORE is the only flag */
        return (flags & 0xfe) == 0;
    return flags == 0;
}

static void check_window(const uint8_t *p)
{
    negio__frame_hdr h;
    const char *why = NULL;
    int rc = negio__frame_decode(p, &h, &why, 0);
    /* the fields are the bytes, big-endian length, whatever the verdict */
    uint32_t len = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if (h.version != p[0] || h.type != p[1] || h.level != p[2] || h.flags != p[3] ||
        h.length != len)
        abort();
    if ((rc == 0) != model_valid(p)) {
        fprintf(stderr, "decode %d, model %d for %02x %02x %02x %02x\n", rc, model_valid(p), p[0],
                p[1], p[2], p[3]);
        abort();
    }
    if (rc != 0) {
        if (rc != NEGIO_ERR_PROTOCOL || why == NULL || why[0] == '\0')
            abort();
        return;
    }
    uint8_t again[NEGIO__HDR_LEN], ph[NEGIO__PH_LEN];
    negio__frame_encode(again, &h);
    if (memcmp(again, p, NEGIO__HDR_LEN) != 0)
        abort();
    negio__frame_ph(ph, &h);
    if (memcmp(ph, p, NEGIO__PH_LEN) != 0)
        abort();
    if (strcmp(negio__frame_type_name(h.type), "unknown") == 0)
        abort();
}

/* A header made of the window's fields survives encode then decode, valid or not. */
static void check_round_trip(const uint8_t *p)
{
    negio__frame_hdr h = {p[3], p[2], p[1], p[0],
                          (uint32_t)p[7] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[6] << 8 | p[5]};
    uint8_t wire[NEGIO__HDR_LEN];
    negio__frame_encode(wire, &h);
    negio__frame_hdr back;
    const char *why = NULL;
    int rc = negio__frame_decode(wire, &back, &why, 0);
    if (back.version != h.version || back.type != h.type || back.level != h.level ||
        back.flags != h.flags || back.length != h.length)
        abort();
    if ((rc == 0) != model_valid(wire))
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    for (size_t i = 0; i + NEGIO__HDR_LEN <= size && i < MAX_WINDOWS; i++) {
        check_window(data + i);
        check_round_trip(data + i);
    }
    return 0;
}
