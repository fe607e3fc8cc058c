/* The negio frame header (docs/PROTOCOL.md section 3): pure encode/decode and validation. */
#ifndef NEGIO_CORE_FRAME_H
#define NEGIO_CORE_FRAME_H

#include <stdint.h>

#define NEGIO__HDR_LEN 8
#define NEGIO__PH_LEN 4 /* the "protected header": version, type, level, flags */

enum negio__frame_type {
    NEGIO__FT_HANDSHAKE = 1,
    NEGIO__FT_HS_ERROR = 2,
    NEGIO__FT_POLICY = 3,
    NEGIO__FT_DATA = 4,
    NEGIO__FT_CLOSE = 5,
};

#define NEGIO__FLAG_MORE 0x01u /* DATA only: the message continues in the next DATA frame */

typedef struct negio__frame_hdr {
    uint8_t version;
    uint8_t type;
    uint8_t level;
    uint8_t flags;
    uint32_t length; /* body length */
} negio__frame_hdr;

/* Decodes and validates 8 header bytes. Returns 0, or NEGIO_ERR_PROTOCOL with *WHY set to a
 * static explanation. The length is not checked against limits here. CHANNEL_PROTECTED (plain
 * TLS underneath) allows POLICY and CLOSE at level none. */
int negio__frame_decode(const uint8_t *p, negio__frame_hdr *h, const char **why,
                        int channel_protected);
void negio__frame_encode(uint8_t *p, const negio__frame_hdr *h);
/* The protected header of a frame: what the MIC or the sealed plaintext starts with. */
void negio__frame_ph(uint8_t *p, const negio__frame_hdr *h);
const char *negio__frame_type_name(uint8_t type);

#endif
