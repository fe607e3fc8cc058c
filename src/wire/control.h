/* The bodies of negio's control frames (docs/PROTOCOL.md sections 4.2, 4.3 and 4.5) as pure
 * encode and decode functions: the POLICY payload, the CLOSE payload, the HANDSHAKE_ERROR body.
 * Decoding checks the layout only; what the values mean to a side is the connector's. */
#ifndef NEGIO_WIRE_CONTROL_H
#define NEGIO_WIRE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "negio/negio.h"
#include "wire/transcript.h"

#define NEGIO__POLICY_LEN (16 + NEGIO__TRANSCRIPT_LEN)
#define NEGIO__POLICY_VERSION 2
#define NEGIO__REASON_WIRE_MAX 256 /* reason text of a CLOSE or HANDSHAKE_ERROR */

typedef struct negio__policy {
    negio_level min_level;
    negio_level default_level;
    uint32_t max_frame;
    uint32_t max_message;
    uint8_t transcript[NEGIO__TRANSCRIPT_LEN];
} negio__policy;

void negio__policy_encode(uint8_t out[NEGIO__POLICY_LEN], const negio__policy *p);
/* 0, or NEGIO_ERR_PROTOCOL with *WHY (static text) for a payload that is not a version-2 policy
 * (length, version, reserved fields). The values are not judged: negio__policy_check does, after
 * the receiver has compared the transcript (PROTOCOL.md section 4.3 gives the order). */
int negio__policy_decode(const uint8_t *b, size_t len, negio__policy *p, const char **why);
/* 0, or NEGIO_ERR_PROTOCOL with *WHY (static text) for a decoded policy that names an unknown
 * level or a frame limit out of range. */
int negio__policy_check(const negio__policy *p, const char **why);

/* Writes [status u32][reason, at most NEGIO__REASON_WIRE_MAX bytes] to OUT (room for 4 + that)
 * and returns its length. */
size_t negio__close_encode(uint8_t *out, uint32_t status, const char *reason);
/* 0, or NEGIO_ERR_PROTOCOL for a payload shorter than 4 bytes or a reason over the maximum. */
int negio__close_decode(const uint8_t *b, size_t len, uint32_t *status, const uint8_t **reason,
                        size_t *reason_len);

/* The HANDSHAKE_ERROR body: [token length u32][token][reason]. 0, or NEGIO_ERR_PROTOCOL when the
 * token length runs past the body. */
int negio__hs_error_decode(const uint8_t *b, size_t len, const uint8_t **tok, size_t *tok_len,
                           const uint8_t **reason, size_t *reason_len);

#endif
