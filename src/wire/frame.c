#include "wire/frame.h"

#include "base/buf.h"
#include "negio/negio.h"

const char *negio__frame_type_name(uint8_t type)
{
    switch (type) {
    case NEGIO__FT_HANDSHAKE:
        return "HANDSHAKE";
    case NEGIO__FT_HS_ERROR:
        return "HANDSHAKE_ERROR";
    case NEGIO__FT_POLICY:
        return "POLICY";
    case NEGIO__FT_DATA:
        return "DATA";
    case NEGIO__FT_CLOSE:
        return "CLOSE";
    default:
        return "unknown";
    }
}

int negio__frame_decode(const uint8_t *p, negio__frame_hdr *h, const char **why,
                        int channel_protected)
{
    h->version = p[0];
    h->type = p[1];
    h->level = p[2];
    h->flags = p[3];
    h->length = negio__get_u32(p + 4);
    if (h->version != NEGIO_PROTOCOL_VERSION) {
        *why = "unsupported protocol version";
        return NEGIO_ERR_PROTOCOL;
    }
    if (h->level > NEGIO_LEVEL_SEAL) {
        *why = "unknown protection level";
        return NEGIO_ERR_PROTOCOL;
    }
    switch (h->type) {
    case NEGIO__FT_HANDSHAKE:
    case NEGIO__FT_HS_ERROR:
        /* nothing can protect a frame before the context exists */
        if (h->level != NEGIO_LEVEL_NONE) {
            *why = "handshake frame with a protection level";
            return NEGIO_ERR_PROTOCOL;
        }
        break;
    case NEGIO__FT_POLICY:
    case NEGIO__FT_CLOSE:
        /* an unprotected policy or close could be forged by anyone on the path, unless the
         * channel itself (plain TLS) protects every byte */
        if (h->level == NEGIO_LEVEL_NONE && !channel_protected) {
            *why = "unprotected policy or close frame";
            return NEGIO_ERR_PROTOCOL;
        }
        break;
    case NEGIO__FT_DATA:
        break;
    default:
        *why = "unknown frame type";
        return NEGIO_ERR_PROTOCOL;
    }
    unsigned allowed = h->type == NEGIO__FT_DATA ? NEGIO__FLAG_MORE : 0;
    if (h->flags & ~allowed) {
        *why = "reserved flag bits set";
        return NEGIO_ERR_PROTOCOL;
    }
    return 0;
}

void negio__frame_encode(uint8_t *p, const negio__frame_hdr *h)
{
    negio__frame_ph(p, h);
    negio__put_u32(p + 4, h->length);
}

void negio__frame_ph(uint8_t *p, const negio__frame_hdr *h)
{
    p[0] = h->version;
    p[1] = h->type;
    p[2] = h->level;
    p[3] = h->flags;
}
