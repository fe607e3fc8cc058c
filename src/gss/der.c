#include "gss/der.h"

int negio__der_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **body,
                    size_t *len)
{
    const uint8_t *q = *p;
    if (end - q < 2)
        return 0;
    *tag = *q++;
    size_t l = *q++;
    if (l & 0x80) {
        size_t k = l & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - q) < k)
            return 0;
        l = 0;
        while (k--)
            l = l << 8 | *q++;
    }
    if (l > (size_t)(end - q))
        return 0;
    *body = q;
    *len = l;
    *p = q + l;
    return 1;
}

int negio__der_exact(const uint8_t *p, const uint8_t *end, uint8_t want, const uint8_t **body,
                     size_t *len)
{
    uint8_t tag;
    return negio__der_next(&p, end, &tag, body, len) && tag == want && p == end;
}
