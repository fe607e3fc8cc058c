#include "support/tokens.h"

#include <stdlib.h>
#include <string.h>

uint8_t *test_ntlm_find(uint8_t *p, size_t n, uint32_t type)
{
    for (size_t i = 0; i + 12 <= n; i++) {
        if (memcmp(p + i, "NTLMSSP\0", 8) == 0 && test_le32(p + i + 8) == type)
            return p + i;
    }
    return NULL;
}

uint8_t *test_ntlm_flags(uint8_t *msg, const uint8_t *end)
{
    /* NEGOTIATE: after the signature and type; CHALLENGE: after TargetNameFields;
     * AUTHENTICATE: after the six payload fields ([MS-NLMP] 2.2.1.1-3) */
    static const size_t at[4] = {0, 12, 20, 60};
    uint32_t type = test_le32(msg + 8);
    if (type < 1 || type > 3 || (size_t)(end - msg) < at[type] + 4)
        return NULL;
    return msg + at[type];
}

uint8_t *test_ntlm_av(uint8_t *msg, const uint8_t *end, uint16_t id)
{
    size_t n = (size_t)(end - msg), len, off;
    uint32_t type = test_le32(msg + 8);
    if (type == 2 && n >= 48) { /* TargetInfoFields */
        len = test_le16(msg + 40);
        off = test_le32(msg + 44);
    } else if (type == 3 && n >= 28) { /* the NTLMv2 response's AV pairs: after NTProofStr and
                                          the 28 fixed bytes of its client challenge */
        len = test_le16(msg + 20);
        off = test_le32(msg + 24);
        if (len < 44)
            return NULL;
        off += 44;
        len -= 44;
    } else {
        return NULL;
    }
    if (off > n || len > n - off)
        return NULL;
    for (size_t i = off; i + 4 <= off + len;) {
        uint32_t av = test_le16(msg + i), avlen = test_le16(msg + i + 2);
        if (av == id)
            return msg + i;
        if (av == 0)
            break;
        i += 4 + avlen;
    }
    return NULL;
}

size_t test_ntlm_challenge(uint8_t *m, uint16_t name_len)
{
    memset(m, 0, 64 + name_len);
    memcpy(m, "NTLMSSP\0", 8);
    m[8] = 2;                  /* MessageType */
    m[12] = (uint8_t)name_len; /* TargetNameFields.Len */
    m[14] = (uint8_t)name_len; /* .MaxLen */
    m[16] = 56;                /* .BufferOffset */
    /* UNICODE, NTLM, TARGET_TYPE_DOMAIN, EXTENDED_SESSIONSECURITY, TARGET_INFO */
    test_put_le32(m + 20, 0x00000001u | 0x00000200u | 0x00010000u | 0x00080000u | 0x00800000u);
    memcpy(m + 24, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8); /* ServerChallenge */
    m[40] = 0;                                             /* TargetInfoFields: empty */
    m[44] = 56;
    for (uint16_t i = 0; i < name_len; i++)
        m[56 + i] = (i % 2) ? 0 : 'N';
    return 56 + name_len;
}

size_t test_wrap_negtokenresp(uint8_t *out, const uint8_t *msg, size_t len)
{
    static const uint8_t ntlm_oid[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                       0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
    size_t inner = 5 + (2 + sizeof(ntlm_oid)) + (4 + len);
    size_t k = 0;
    out[k++] = 0xa1;
    out[k++] = (uint8_t)(2 + inner);
    out[k++] = 0x30;
    out[k++] = (uint8_t)inner;
    memcpy(out + k, "\xa0\x03\x0a\x01\x01", 5); /* negState accept-incomplete */
    k += 5;
    out[k++] = 0xa1;
    out[k++] = sizeof(ntlm_oid);
    memcpy(out + k, ntlm_oid, sizeof(ntlm_oid));
    k += sizeof(ntlm_oid);
    out[k++] = 0xa2;
    out[k++] = (uint8_t)(2 + len);
    out[k++] = 0x04;
    out[k++] = (uint8_t)len;
    memcpy(out + k, msg, len);
    return k + len;
}

uint8_t *test_hs_error_body(const uint8_t *token, size_t len, const char *reason, size_t *n)
{
    size_t rl = strlen(reason);
    uint8_t *b = malloc(4 + len + rl + 1);
    if (b == NULL)
        abort();
    test_put_be32(b, (uint32_t)len);
    if (len > 0)
        memcpy(b + 4, token, len);
    memcpy(b + 4 + len, reason, rl);
    *n = 4 + len + rl;
    return b;
}

/* ---- DER re-encoding ------------------------------------------------------------------------ */

/* Reads a TLV header at P (before END): the tag, the content's length and where it starts. */
static int tlv(const uint8_t *p, const uint8_t *end, uint8_t *tag, size_t *len, const uint8_t **c)
{
    if (end - p < 2 || (p[0] & 0x1f) == 0x1f)
        return 0;
    *tag = p[0];
    size_t n = p[1];
    p += 2;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - p) < k)
            return 0;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = n << 8 | *p++;
    }
    if ((size_t)(end - p) < n)
        return 0;
    *len = n;
    *c = p;
    return 1;
}

/* Appends a length, minimal or (LONGER) one byte longer than minimal. */
static size_t put_len(uint8_t *out, size_t n, int longer)
{
    uint8_t b[5];
    size_t k = 0;
    for (size_t v = n; v > 0; v >>= 8)
        b[k++] = (uint8_t)v;
    if (n < 0x80 && !longer) {
        out[0] = (uint8_t)n;
        return 1;
    }
    if (longer && n >= 0x80)
        b[k++] = 0; /* a leading zero byte */
    if (k == 0)
        b[k++] = 0;
    out[0] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        out[1 + i] = b[k - 1 - i];
    return 1 + k;
}

/* Re-encodes the TLVs in IN..END into OUT (room enough), counting elements in *COUNT. */
static int reencode(const uint8_t *in, const uint8_t *end, uint8_t *out, size_t *out_len,
                    int *count, int target)
{
    size_t at = 0;
    while (in < end) {
        uint8_t tag;
        size_t len;
        const uint8_t *c;
        if (!tlv(in, end, &tag, &len, &c))
            return 0;
        int me = (*count)++;
        uint8_t *content = malloc(len + 64 + 1);
        size_t clen = len;
        if (content == NULL)
            abort();
        if (tag & 0x20) {
            if (!reencode(c, c + len, content, &clen, count, target)) {
                free(content);
                return 0;
            }
        } else {
            memcpy(content, c, len);
        }
        out[at++] = tag;
        at += put_len(out + at, clen, me == target);
        memcpy(out + at, content, clen);
        at += clen;
        free(content);
        in = c + len;
    }
    *out_len = at;
    return 1;
}

uint8_t *test_der_long_form(const uint8_t *in, size_t n, int target, size_t *out_len)
{
    /* each element grows by at most two bytes */
    uint8_t *out = malloc(3 * n + 16);
    int count = 0;
    if (out == NULL)
        abort();
    if (!reencode(in, in + n, out, out_len, &count, target) || count <= target) {
        free(out);
        return NULL;
    }
    return out;
}

/* Found by fuzz_client_handshake: a NegTokenResp whose supportedMech [1] claims 0x4c bytes for a
 * 12-byte OID. A DER walk by element lengths skips the responseToken; MIT's parser reads the OID
 * by its own length and hands the CHALLENGE inside (empty target name) to gss-ntlmssp, which
 * crashed the client. Such a token must be refused as malformed. */
const uint8_t test_hostile_supportedmech_length[] = {
    0xa1, 0x81, 0xd4, 0x30, 0x81, 0xd1, 0xa0, 0x03, 0x0a, 0x01, 0x01, 0xa1, 0x4c, 0x06, 0x0a, 0x2b,
    0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a, 0xa2, 0x81, 0xbb, 0x04, 0x81, 0xb8, 0x4e,
    0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xeb, 0x00, 0x38,
    0x00, 0x00, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb,
    0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xf1,
    0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1,
    0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1,
    0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1,
    0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0xf1, 0x00, 0x35, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x0f, 0x35, 0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x76, 0x00, 0x00, 0x42,
    0x00, 0x76, 0x6d, 0x61, 0x78, 0x5f, 0x70, 0x65, 0x72, 0x73, 0x6c, 0x65, 0x6e, 0x00, 0x00, 0x00,
    0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x4e, 0x00, 0x45, 0x00, 0x47, 0x00, 0x49, 0x00,
    0x4f, 0x00, 0x01, 0x00, 0x14, 0x00, 0x4e, 0x00, 0x45, 0x00, 0x47, 0x00, 0x49, 0x00, 0x4f, 0x00,
    0x2d, 0x00, 0xb2, 0x48, 0x00, 0x4f, 0x00,
};
const size_t test_hostile_supportedmech_length_len = sizeof(test_hostile_supportedmech_length);
