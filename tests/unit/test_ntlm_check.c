/* The NTLM CHALLENGE check (src/gss/ntlm_check.c) and the client's check of the server's tokens
 * around it (src/gss/peer_token.c), on the hostile tokens of tests/support/tokens.h: what would
 * crash gss-ntlmssp 1.2.0 never reaches it, raw or inside SPNEGO, whatever framing surrounds it
 * (SECURITY.md section 8.1). No GSS, no realm. The same tokens fed to a client connector in a
 * child process, where a crash would show, are in tests/conformance/test_handshake.c
 * (hostile_ntlm_challenge_with_empty_target_name_does_not_crash_the_client,
 * negtokenresp_with_inconsistent_lengths_does_not_crash_the_client). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gss/ntlm_check.h"
#include "gss/peer_token.h"
#include "support/tokens.h"

/* What a client's token check says of TOK as the server's first answer: raw NTLM, or SPNEGO
 * after an offer of NTLM alone (a client without a ticket). NULL if it passes. */
static const char *client_check(negio_mech want, const uint8_t *tok, size_t n)
{
    negio__peer_tokens st = {.role = NEGIO_ROLE_CLIENT, .want = want, .inner = NEGIO_MECH_NTLM};
    const char *why = NULL;
    return negio__peer_token_check(&st, tok, n, &why) == 0 ? NULL : why;
}

/* gss-ntlmssp 1.2.0 crashes on a CHALLENGE announcing a target with an empty target name. */
static void a_challenge_with_an_empty_target_name_is_refused_raw_and_inside_spnego(void **state)
{
    (void)state;
    uint8_t chal[128], spnego[256];
    size_t n = test_ntlm_challenge(chal, 0);
    assert_non_null(negio__ntlm_check_challenge(chal, n));
    size_t m = test_wrap_negtokenresp(spnego, chal, n);
    assert_non_null(client_check(NEGIO_MECH_NEGOTIATE, spnego, m));
    /* control: the same message with a target name passes */
    n = test_ntlm_challenge(chal, 10);
    assert_null(negio__ntlm_check_challenge(chal, n));
    m = test_wrap_negtokenresp(spnego, chal, n);
    assert_null(client_check(NEGIO_MECH_NEGOTIATE, spnego, m));
}

static void a_challenge_whose_fields_point_outside_it_is_refused(void **state)
{
    (void)state;
    uint8_t chal[128];
    size_t n = test_ntlm_challenge(chal, 10);
    assert_null(negio__ntlm_check_challenge(chal, n));
    chal[16] = 200; /* TargetNameBufferOffset */
    assert_non_null(negio__ntlm_check_challenge(chal, n));
}

/* The fuzzer's way around the check: a supportedMech longer than its OID. */
static void a_negtokenresp_whose_supportedmech_overruns_its_oid_is_refused(void **state)
{
    (void)state;
    assert_non_null(client_check(NEGIO_MECH_NEGOTIATE, test_hostile_supportedmech_length,
                                 test_hostile_supportedmech_length_len));
}

static void a_challenge_is_checked_whatever_framing_surrounds_it(void **state)
{
    (void)state;
    uint8_t chal[128], junk[200] = {0x30, 0x82};
    size_t c = test_ntlm_challenge(chal, 0);
    memcpy(junk + 7, chal, c);
    assert_non_null(client_check(NEGIO_MECH_NEGOTIATE, junk, 7 + c));
}

/* Each element of a NegTokenResp must be exactly the length of its content: a changed length
 * or tag is refused, and so is a mechanism negio does not speak; only the negState (0..3) and
 * the message's own bytes may change. */
static void every_length_and_tag_of_a_negtokenresp_must_be_exact(void **state)
{
    (void)state;
    uint8_t chal[128], spnego[256];
    size_t c = test_ntlm_challenge(chal, 10);
    size_t m = test_wrap_negtokenresp(spnego, chal, c);
    assert_null(client_check(NEGIO_MECH_NEGOTIATE, spnego, m));
    /* the lengths and tags; 13..22 are the NTLM OID */
    static const uint8_t framing[30] = {
        [1] = 1, [2] = 1,  [3] = 1,  [4] = 1,  [5] = 1,  [6] = 1,  [7] = 1,
        [9] = 1, [10] = 1, [11] = 1, [12] = 1, [24] = 1, [25] = 1, [26] = 1};
    for (size_t i = 0; i < m && i < 30; i++) {
        uint8_t save = spnego[i];
        for (int d = -1; d <= 1; d += 2) {
            spnego[i] = (uint8_t)(save + d);
            const char *why = client_check(NEGIO_MECH_NEGOTIATE, spnego, m);
            if (framing[i] || (i >= 13 && i < 23))
                assert_non_null(why);
        }
        spnego[i] = save;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_challenge_with_an_empty_target_name_is_refused_raw_and_inside_spnego),
        cmocka_unit_test(a_challenge_whose_fields_point_outside_it_is_refused),
        cmocka_unit_test(a_negtokenresp_whose_supportedmech_overruns_its_oid_is_refused),
        cmocka_unit_test(a_challenge_is_checked_whatever_framing_surrounds_it),
        cmocka_unit_test(every_length_and_tag_of_a_negtokenresp_must_be_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
