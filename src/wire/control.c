#include "wire/control.h"

#include <string.h>

#include "base/buf.h"

void negio__policy_encode(uint8_t out[NEGIO__POLICY_LEN], const negio__policy *p)
{
    memset(out, 0, NEGIO__POLICY_LEN);
    out[0] = NEGIO__POLICY_VERSION;
    out[1] = (uint8_t)p->min_level;
    out[2] = (uint8_t)p->default_level;
    negio__put_u32(out + 4, p->max_frame);
    negio__put_u32(out + 8, p->max_message);
    memcpy(out + 16, p->transcript, NEGIO__TRANSCRIPT_LEN);
}

int negio__policy_decode(const uint8_t *b, size_t len, negio__policy *p, const char **why)
{
    if (len != NEGIO__POLICY_LEN || b[0] != NEGIO__POLICY_VERSION || b[3] != 0 ||
        negio__get_u32(b + 12) != 0) {
        *why = "malformed policy frame";
        return NEGIO_ERR_PROTOCOL;
    }
    p->min_level = (negio_level)b[1];
    p->default_level = (negio_level)b[2];
    p->max_frame = negio__get_u32(b + 4);
    p->max_message = negio__get_u32(b + 8);
    memcpy(p->transcript, b + 16, NEGIO__TRANSCRIPT_LEN);
    return 0;
}

int negio__policy_check(const negio__policy *p, const char **why)
{
    if ((unsigned)p->min_level > NEGIO_LEVEL_SEAL ||
        (unsigned)p->default_level > NEGIO_LEVEL_SEAL) {
        *why = "policy names an unknown level";
        return NEGIO_ERR_PROTOCOL;
    }
    if (p->max_frame < 4096 || p->max_frame > 0x7fffffffu) {
        *why = "policy frame limit out of range";
        return NEGIO_ERR_PROTOCOL;
    }
    return 0;
}

size_t negio__close_encode(uint8_t *out, uint32_t status, const char *reason)
{
    size_t rlen = strnlen(reason, NEGIO__REASON_WIRE_MAX);
    negio__put_u32(out, status);
    memcpy(out + 4, reason, rlen);
    return 4 + rlen;
}

int negio__close_decode(const uint8_t *b, size_t len, uint32_t *status, const uint8_t **reason,
                        size_t *reason_len)
{
    if (len < 4 || len - 4 > NEGIO__REASON_WIRE_MAX)
        return NEGIO_ERR_PROTOCOL;
    *status = negio__get_u32(b);
    *reason = b + 4;
    *reason_len = len - 4;
    return 0;
}

int negio__hs_error_decode(const uint8_t *b, size_t len, const uint8_t **tok, size_t *tok_len,
                           const uint8_t **reason, size_t *reason_len)
{
    if (len < 4 || negio__get_u32(b) > len - 4)
        return NEGIO_ERR_PROTOCOL;
    *tok_len = negio__get_u32(b);
    *tok = b + 4;
    *reason = b + 4 + *tok_len;
    *reason_len = len - 4 - *tok_len;
    return 0;
}
