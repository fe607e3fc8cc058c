/* The control frame bodies (src/wire/control.c) byte for byte against docs/PROTOCOL.md sections
 * 4.2, 4.3 and 4.5 (and the example of 10.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire/control.h"

static void policy_encodes_the_layout_of_section_4_3(void **state)
{
    (void)state;
    negio__policy p = {NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL, 1048576, 16777216, {0}};
    for (int i = 0; i < NEGIO__TRANSCRIPT_LEN; i++)
        p.transcript[i] = (uint8_t)(0xa0 + i);
    uint8_t b[NEGIO__POLICY_LEN];
    negio__policy_encode(b, &p);
    static const uint8_t head[16] = {0x02, 0x01, 0x02, 0x00, 0x00, 0x10, 0x00, 0x00,
                                     0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(NEGIO__POLICY_LEN, 48);
    assert_memory_equal(b, head, sizeof(head));
    assert_memory_equal(b + 16, p.transcript, NEGIO__TRANSCRIPT_LEN);
    negio__policy q;
    const char *why = NULL;
    assert_int_equal(negio__policy_decode(b, sizeof(b), &q, &why), 0);
    assert_memory_equal(&q, &p, sizeof(p));
}

static void policy_decoding_refuses_every_other_layout(void **state)
{
    (void)state;
    negio__policy p = {NEGIO_LEVEL_NONE, NEGIO_LEVEL_NONE, 4096, 0, {0}};
    uint8_t good[NEGIO__POLICY_LEN];
    negio__policy_encode(good, &p);
    static const struct {
        size_t at;
        uint8_t value;
        const char *why;
    } edits[] = {
        {0, 1, "malformed policy frame"},             /* the version of protocol 1 */
        {3, 1, "malformed policy frame"},             /* reserved */
        {15, 1, "malformed policy frame"},            /* reserved */
        {1, 3, "policy names an unknown level"},      /* min_level */
        {2, 255, "policy names an unknown level"},    /* default_level */
        {6, 0x0f, "policy frame limit out of range"}, /* max_frame 4095 (0x00000fff) */
        {4, 0x80, "policy frame limit out of range"}, /* max_frame 2^31 + 4096 */
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        uint8_t b[NEGIO__POLICY_LEN];
        memcpy(b, good, sizeof(b));
        b[edits[i].at] = edits[i].value;
        if (edits[i].at == 6)
            b[7] = 0xff, b[6] = 0x0f, b[5] = 0;
        negio__policy q;
        const char *why = NULL;
        /* the layout first; the values (levels, max_frame) only once decoded, so that the
         * receiver can compare the transcript in between (section 4.3) */
        int rc = negio__policy_decode(b, sizeof(b), &q, &why);
        if (rc == 0)
            rc = negio__policy_check(&q, &why);
        assert_int_equal(rc, NEGIO_ERR_PROTOCOL);
        assert_string_equal(why, edits[i].why);
        assert_int_equal(negio__policy_decode(b, sizeof(b), &q, &why) == 0,
                         strcmp(edits[i].why, "malformed policy frame") != 0);
    }
    negio__policy q;
    const char *why = NULL;
    assert_int_equal(negio__policy_decode(good, 16, &q, &why), NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio__policy_decode(good, sizeof(good), &q, &why), 0);
    assert_int_equal(negio__policy_check(&q, &why), 0);
}

static void close_carries_a_status_and_a_bounded_reason(void **state)
{
    (void)state;
    uint8_t b[4 + NEGIO__REASON_WIRE_MAX];
    size_t n = negio__close_encode(b, 0, "bye");
    static const uint8_t expect[] = {0, 0, 0, 0, 'b', 'y', 'e'};
    assert_int_equal(n, sizeof(expect));
    assert_memory_equal(b, expect, n);
    char longer[400];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(negio__close_encode(b, 109, longer), 4 + NEGIO__REASON_WIRE_MAX);
    uint32_t status;
    const uint8_t *reason;
    size_t rlen;
    assert_int_equal(negio__close_decode(b, 4 + NEGIO__REASON_WIRE_MAX, &status, &reason, &rlen),
                     0);
    assert_int_equal(status, 109);
    assert_int_equal(rlen, NEGIO__REASON_WIRE_MAX);
    uint8_t big[4 + NEGIO__REASON_WIRE_MAX + 1] = {0};
    assert_int_equal(negio__close_decode(big, sizeof(big), &status, &reason, &rlen),
                     NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio__close_decode(big, 3, &status, &reason, &rlen), NEGIO_ERR_PROTOCOL);
}

static void handshake_error_token_stays_inside_its_body(void **state)
{
    (void)state;
    static const uint8_t b[] = {0, 0, 0, 2, 't', 'k', 'n', 'o', 'p', 'e'};
    const uint8_t *tok, *reason;
    size_t tlen, rlen;
    assert_int_equal(negio__hs_error_decode(b, sizeof(b), &tok, &tlen, &reason, &rlen), 0);
    assert_int_equal(tlen, 2);
    assert_memory_equal(tok, "tk", 2);
    assert_int_equal(rlen, 4);
    assert_memory_equal(reason, "nope", 4);
    static const uint8_t past[] = {0, 0, 0, 7, 'x', 'y'};
    assert_int_equal(negio__hs_error_decode(past, sizeof(past), &tok, &tlen, &reason, &rlen),
                     NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio__hs_error_decode(past, 3, &tok, &tlen, &reason, &rlen),
                     NEGIO_ERR_PROTOCOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_encodes_the_layout_of_section_4_3),
        cmocka_unit_test(policy_decoding_refuses_every_other_layout),
        cmocka_unit_test(close_carries_a_status_and_a_bounded_reason),
        cmocka_unit_test(handshake_error_token_stays_inside_its_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
