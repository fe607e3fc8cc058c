/* NTLM messages ([MS-NLMP] 2.2.1) checked before gss-ntlmssp parses them: the type each side may
 * receive, every field inside the message, and the CHALLENGE rules. gss-ntlmssp 1.2.0 writes
 * through a NULL pointer when a CHALLENGE announces a target name (TARGET_TYPE_SERVER or _DOMAIN,
 * Unicode) of length zero, so a hostile server could crash the client; it loses memory on a
 * target info that repeats an AV pair (ntlm_decode_target_info) and on a context without extended
 * session security when SPNEGO resets its RC4 state (ntlm_reset_rc4_state; both still in 1.3.1),
 * so a hostile peer could make the other side leak at will. Such messages are refused. */
#include "gss/ntlm_check.h"

#include <string.h>

#define NTLM_NEGOTIATE_UNICODE 0x00000001u
#define NTLM_NEGOTIATE_ESS 0x00080000u /* NEGOTIATE_EXTENDED_SESSIONSECURITY (2.2.2.5) */
#define NTLM_TARGET_TYPE_DOMAIN 0x00010000u
#define NTLM_TARGET_TYPE_SERVER 0x00020000u
#define CHALLENGE_MIN 48 /* up to and including TargetInfoFields */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* A field descriptor (len, maxlen, offset) at AT must lie inside the message. */
static int field_ok(const uint8_t *m, size_t n, size_t at)
{
    uint32_t len = le16(m + at), off = le32(m + at + 4);
    return len == 0 || (off >= CHALLENGE_MIN - 16 && off <= n && len <= n - off);
}

/* A CHALLENGE's target info (2.2.2.1): AV pairs (AvId u16, AvLen u16, value) inside the field,
 * each AvId at most once, ending with MsvAvEOL (AvId 0, AvLen 0). Empty is allowed. */
static const char *check_target_info(const uint8_t *p, size_t len)
{
    uint32_t seen[2] = {0, 0}; /* the AvIds 0..63 met so far; [MS-NLMP] defines 0..10 */
    const uint8_t *end = p + len;
    if (len == 0)
        return NULL;
    while (end - p >= 4) {
        unsigned id = le16(p), alen = le16(p + 2);
        p += 4;
        if (alen > (size_t)(end - p))
            return "NTLM challenge target info pair outside its field";
        if (id == 0)
            return alen == 0 ? NULL : "NTLM challenge target info ends with a malformed pair";
        if (id < 64 && (seen[id / 32] & 1u << (id % 32)))
            return "NTLM challenge target info repeats a pair";
        if (id < 64)
            seen[id / 32] |= 1u << (id % 32);
        p += alen;
    }
    return "NTLM challenge target info without its end";
}

const char *negio__ntlm_check_challenge(const uint8_t *m, size_t n)
{
    if (n < 12 || memcmp(m, "NTLMSSP\0", 8) != 0 || le32(m + 8) != 2)
        return NULL; /* not a CHALLENGE: nothing to check here */
    if (n < CHALLENGE_MIN)
        return "NTLM challenge too short";
    uint32_t flags = le32(m + 20);
    if (!field_ok(m, n, 12))
        return "NTLM challenge target name outside the message";
    if (!field_ok(m, n, 40))
        return "NTLM challenge target info outside the message";
    if ((flags & (NTLM_TARGET_TYPE_SERVER | NTLM_TARGET_TYPE_DOMAIN)) && le16(m + 12) == 0)
        return "NTLM challenge announces a target but its name is empty";
    if ((flags & NTLM_NEGOTIATE_UNICODE) && (le16(m + 12) & 1))
        return "NTLM challenge target name has an odd Unicode length";
    if (!(flags & NTLM_NEGOTIATE_ESS))
        return "NTLM challenge without extended session security";
    return check_target_info(m + le32(m + 44), le16(m + 40));
}

/* Any NTLM message ([MS-NLMP] 2.2.1): the right type for where it arrives, long enough for its
 * fixed part, and every payload field (len u16, maxlen u16, offset u32) inside the message. */
const char *negio__ntlm_check_message(const uint8_t *m, size_t n, uint32_t expect)
{
    /* the fixed part of each message type and where its field descriptors are */
    static const struct {
        size_t min;
        uint8_t fields[6];
        size_t nfields;
    } layout[4] = {
        [1] = {16, {16, 24}, 2},                 /* NEGOTIATE: domain, workstation (optional) */
        [2] = {CHALLENGE_MIN, {12, 40}, 2},      /* CHALLENGE: target name, target info */
        [3] = {64, {12, 20, 28, 36, 44, 52}, 6}, /* AUTHENTICATE: LM, NT, domain, user, host, key */
    };
    if (n < 12 || memcmp(m, "NTLMSSP\0", 8) != 0)
        return "not an NTLM message";
    uint32_t type = le32(m + 8);
    if (type != expect)
        return type == 1   ? "unexpected NTLM NEGOTIATE message"
               : type == 2 ? "unexpected NTLM CHALLENGE message"
               : type == 3 ? "unexpected NTLM AUTHENTICATE message"
                           : "unknown NTLM message type";
    if (n < layout[type].min)
        return "NTLM message too short";
    for (size_t i = 0; i < layout[type].nfields; i++) {
        size_t at = layout[type].fields[i];
        if (at + 8 > n)
            break; /* a NEGOTIATE may end before its optional fields */
        uint32_t len = le16(m + at), off = le32(m + at + 4);
        if (len != 0 && (off > n || len > n - off))
            return "NTLM message field outside the message";
    }
    if (type == 1 && !(le32(m + 12) & NTLM_NEGOTIATE_ESS))
        return "NTLM negotiate without extended session security";
    return type == 2 ? negio__ntlm_check_challenge(m, n) : NULL;
}

/* A string field (len u16, maxlen u16, offset u32) at AT of message M, in Unicode (UTF-16LE)
 * or the OEM character set, as printable ASCII ('?' for anything else), appended to OUT. */
static void field_text(const uint8_t *m, size_t n, size_t at, int unicode, char *out, size_t cap)
{
    uint32_t len = le16(m + at), off = le32(m + at + 4);
    size_t used = strlen(out);
    if (off > n || len > n - off)
        return;
    for (uint32_t i = 0; i < len && used + 1 < cap; i += unicode ? 2 : 1) {
        unsigned ch = unicode ? (i + 1 < len ? le16(m + off + i) : 0xffff) : m[off + i];
        out[used++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[used] = '\0';
}

int negio__ntlm_challenge_target(const uint8_t *m, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    if (cap == 0 || negio__ntlm_check_message(m, n, 2) != NULL)
        return -1;
    const uint8_t *p = m + le32(m + 44), *end = p + le16(m + 40);
    while (end - p >= 4) {
        unsigned id = le16(p), alen = le16(p + 2);
        if (id == 0 || alen > (size_t)(end - p - 4))
            break;
        if (id == 9) { /* MsvAvTargetName: the server's SPN, UTF-16LE */
            size_t used = 0;
            for (unsigned i = 0; i + 1 < alen && used + 1 < cap; i += 2) {
                unsigned ch = le16(p + 4 + i);
                out[used++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
            }
            out[used] = '\0';
            return used > 0 ? 0 : -1;
        }
        p += 4 + alen;
    }
    return -1;
}

int negio__ntlm_auth_user(const uint8_t *m, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    if (cap == 0 || negio__ntlm_check_message(m, n, 3) != NULL)
        return -1;
    int unicode = (le32(m + 60) & NTLM_NEGOTIATE_UNICODE) != 0;
    field_text(m, n, 28, unicode, out, cap); /* DomainNameFields */
    if (out[0] != '\0' && strlen(out) + 1 < cap)
        strcat(out, "\\");
    size_t before = strlen(out);
    field_text(m, n, 36, unicode, out, cap); /* UserNameFields */
    return strlen(out) > before ? 0 : -1;
}
