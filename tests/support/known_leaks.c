/* The leaks of gss-ntlmssp that LeakSanitizer cannot be told about by their stacks (support.h,
 * test_ntlm_known_leak). */
#include <string.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__)
#define NEGIO_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NEGIO_TEST_LSAN 1
#endif
#endif

#ifdef NEGIO_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* [MS-NLMP] 2.2.1.2: "NTLMSSP\0", MessageType 2, TargetNameFields at 12, NegotiateFlags
 * (little-endian) at 20, TargetInfoFields (length, maximum length, offset) at 40. */
#define FLAGS_AT 20
#define TARGET_INFO_AT 40
#define CHALLENGE_MIN 48
/* NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY (2.2.2.5) */
#define ESS 0x00080000u
/* The AV pairs (2.2.2.1) gss-ntlmssp's ntlm_decode_target_info turns into strings:
 * MsvAvNbComputerName 1, MsvAvNbDomainName 2, MsvAvDnsComputerName 3, MsvAvDnsDomainName 4,
 * MsvAvDnsTreeName 5, MsvAvTargetName 9. */
#define STRING_AV_PAIRS (1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 5 | 1u << 9)

static uint32_t le(const uint8_t *p, int bytes)
{
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Whether the target info of the CHALLENGE M (N bytes to the end of the input) names one of the
 * string AV pairs twice before its end. */
static int repeats_a_string_av_pair(const uint8_t *m, size_t n)
{
    if (n < CHALLENGE_MIN)
        return 0;
    size_t len = le(m + TARGET_INFO_AT, 2), off = le(m + TARGET_INFO_AT + 4, 4);
    if (off > n || len > n - off)
        return 0;
    const uint8_t *p = m + off, *end = p + len;
    uint32_t seen = 0;
    while (end - p >= 4) {
        uint32_t id = le(p, 2), alen = le(p + 2, 2);
        p += 4;
        if (id == 0 || alen > (size_t)(end - p))
            break;
        p += alen;
        if (id < 32 && (STRING_AV_PAIRS & 1u << id)) {
            if (seen & 1u << id)
                return 1;
            seen |= 1u << id;
        }
    }
    return 0;
}

int test_ntlm_known_leak(const uint8_t *p, size_t n, int spnego)
{
    static const uint8_t sig[12] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 2, 0, 0, 0};
    for (size_t i = 0; i + FLAGS_AT + 4 <= n; i++) {
        if (memcmp(p + i, sig, sizeof(sig)) != 0)
            continue;
        if (spnego && !(le(p + i + FLAGS_AT, 4) & ESS))
            return 1;
        if (repeats_a_string_av_pair(p + i, n - i))
            return 1;
    }
    return 0;
}

void test_known_leak_begin(void)
{
#ifdef NEGIO_TEST_LSAN
    __lsan_disable();
#endif
}

void test_known_leak_end(void)
{
#ifdef NEGIO_TEST_LSAN
    __lsan_enable();
#endif
}
