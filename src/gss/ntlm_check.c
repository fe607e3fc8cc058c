/* NTLM messages ([MS-NLMP] 2.2.1) checked before gss-ntlmssp parses them: the type each side may
 * receive, every field inside the message, and the CHALLENGE rules. gss-ntlmssp 1.2.0 writes
 * through a NULL pointer when a CHALLENGE announces a target name (TARGET_TYPE_SERVER or _DOMAIN,
 * Unicode) of length zero, so a hostile server could crash the client; such messages are refused. */
#include "gss/ntlm_check.h"

#include <string.h>

#define NTLM_NEGOTIATE_UNICODE 0x00000001u
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
    return NULL;
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
    return type == 2 ? negio__ntlm_check_challenge(m, n) : NULL;
}
