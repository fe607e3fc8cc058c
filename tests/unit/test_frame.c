/* Unit tests for the frame header codec (src/wire/frame.h): encode/decode round trips and every
 * validation rule of negio__frame_decode. Length limits are the connector's job, not the
 * codec's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support/bytes.h"
#include "wire/frame.h"
#include "negio/negio.h"

/* Decodes a raw header and returns the result; *WHY is set to NULL beforehand. */
static int decode_raw(unsigned version, unsigned type, unsigned level, unsigned flags,
                      uint32_t length, negio__frame_hdr *h, const char **why)
{
    uint8_t p[NEGIO__HDR_LEN];
    test_put_header(p, version, type, level, flags, length);
    *why = NULL;
    return negio__frame_decode(p, h, why, 0);
}

static void assert_rejected(unsigned version, unsigned type, unsigned level, unsigned flags,
                            uint32_t length)
{
    negio__frame_hdr h;
    const char *why;
    assert_int_equal(decode_raw(version, type, level, flags, length, &h, &why), NEGIO_ERR_PROTOCOL);
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

static void assert_accepted(unsigned type, unsigned level, unsigned flags, uint32_t length)
{
    negio__frame_hdr h;
    const char *why;
    assert_int_equal(decode_raw(NEGIO_PROTOCOL_VERSION, type, level, flags, length, &h, &why), 0);
    assert_int_equal(h.version, NEGIO_PROTOCOL_VERSION);
    assert_int_equal(h.type, type);
    assert_int_equal(h.level, level);
    assert_int_equal(h.flags, flags);
    assert_int_equal(h.length, length);
}

static int combo_valid(unsigned type, unsigned level, unsigned flags)
{
    switch (type) {
    case NEGIO__FT_HANDSHAKE:
    case NEGIO__FT_HS_ERROR:
        return level == NEGIO_LEVEL_NONE && flags == 0;
    case NEGIO__FT_POLICY:
    case NEGIO__FT_CLOSE:
        return (level == NEGIO_LEVEL_SIGN || level == NEGIO_LEVEL_SEAL) && flags == 0;
    case NEGIO__FT_DATA:
        return level <= NEGIO_LEVEL_SEAL && (flags & ~NEGIO__FLAG_MORE) == 0;
    default:
        return 0;
    }
}

static void encode_then_decode_round_trips_every_valid_combination(void **state)
{
    (void)state;
    static const uint32_t lengths[] = {0,           1,           255,         256,        65536,
                                       0x01020304u, 0x7fffffffu, 0x80000000u, 0xffffffffu};
    int valid = 0;
    for (unsigned type = NEGIO__FT_HANDSHAKE; type <= NEGIO__FT_CLOSE; type++) {
        for (unsigned level = NEGIO_LEVEL_NONE; level <= NEGIO_LEVEL_SEAL; level++) {
            for (unsigned flags = 0; flags <= 1; flags++) {
                if (!combo_valid(type, level, flags))
                    continue;
                valid++;
                for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
                    negio__frame_hdr in = {NEGIO_PROTOCOL_VERSION, (uint8_t)type, (uint8_t)level,
                                           (uint8_t)flags, lengths[i]};
                    uint8_t wire[NEGIO__HDR_LEN];
                    memset(wire, 0xAA, sizeof(wire));
                    negio__frame_encode(wire, &in);
                    uint8_t expect[NEGIO__HDR_LEN];
                    test_put_header(expect, NEGIO_PROTOCOL_VERSION, type, level, flags, lengths[i]);
                    assert_memory_equal(wire, expect, NEGIO__HDR_LEN);

                    negio__frame_hdr out;
                    memset(&out, 0xCC, sizeof(out));
                    const char *why = NULL;
                    assert_int_equal(negio__frame_decode(wire, &out, &why, 0), 0);
                    assert_int_equal(out.version, in.version);
                    assert_int_equal(out.type, in.type);
                    assert_int_equal(out.level, in.level);
                    assert_int_equal(out.flags, in.flags);
                    assert_int_equal(out.length, in.length);
                }
            }
        }
    }
    /* HANDSHAKE, HS_ERROR: 1 each; POLICY, CLOSE: 2 each; DATA: 3 levels x 2 flag values */
    assert_int_equal(valid, 12);
}

static void encode_is_big_endian_length(void **state)
{
    (void)state;
    negio__frame_hdr h = {NEGIO_PROTOCOL_VERSION, NEGIO__FT_DATA, NEGIO_LEVEL_SEAL,
                          NEGIO__FLAG_MORE, 0x11223344u};
    uint8_t wire[NEGIO__HDR_LEN];
    negio__frame_encode(wire, &h);
    static const uint8_t expect[NEGIO__HDR_LEN] = {
        NEGIO_PROTOCOL_VERSION, 4, 2, 1, 0x11, 0x22, 0x33, 0x44};
    assert_memory_equal(wire, expect, sizeof(expect));
}

static void protected_header_is_first_four_header_bytes(void **state)
{
    (void)state;
    negio__frame_hdr h = {1, NEGIO__FT_CLOSE, NEGIO_LEVEL_SIGN, 0, 0xdeadbeefu};
    uint8_t wire[NEGIO__HDR_LEN], ph[NEGIO__PH_LEN + 1];
    memset(ph, 0x5A, sizeof(ph));
    negio__frame_encode(wire, &h);
    negio__frame_ph(ph, &h);
    assert_memory_equal(ph, wire, NEGIO__PH_LEN);
    assert_int_equal(ph[NEGIO__PH_LEN], 0x5A); /* writes exactly four bytes */
}

/* Version 2 only: version 1 (no transcript binding) is refused like any other. */
static void decode_rejects_versions_0_1_and_3(void **state)
{
    (void)state;
    for (unsigned v = 0; v <= 3; v++) {
        if (v == NEGIO_PROTOCOL_VERSION)
            continue;
        assert_rejected(v, NEGIO__FT_DATA, NEGIO_LEVEL_NONE, 0, 0);
        assert_rejected(v, NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_NONE, 0, 10);
    }
    assert_rejected(0xff, NEGIO__FT_DATA, NEGIO_LEVEL_NONE, 0, 0);
}

static void decode_rejects_unknown_types_0_and_6_to_255(void **state)
{
    (void)state;
    for (unsigned level = 0; level <= NEGIO_LEVEL_SEAL; level++) {
        assert_rejected(NEGIO_PROTOCOL_VERSION, 0, level, 0, 0);
        for (unsigned type = 6; type <= 255; type++)
            assert_rejected(NEGIO_PROTOCOL_VERSION, type, level, 0, 0);
    }
}

static void decode_rejects_levels_3_to_255_on_every_type(void **state)
{
    (void)state;
    for (unsigned type = NEGIO__FT_HANDSHAKE; type <= NEGIO__FT_CLOSE; type++)
        for (unsigned level = 3; level <= 255; level++)
            assert_rejected(NEGIO_PROTOCOL_VERSION, type, level, 0, 0);
}

static void decode_rejects_reserved_flag_bits_on_each_type(void **state)
{
    (void)state;
    for (unsigned type = NEGIO__FT_HANDSHAKE; type <= NEGIO__FT_CLOSE; type++) {
        /* a level that is otherwise valid for the type */
        unsigned level = (type == NEGIO__FT_POLICY || type == NEGIO__FT_CLOSE) ? NEGIO_LEVEL_SIGN
                                                                               : NEGIO_LEVEL_NONE;
        for (unsigned flags = 1; flags <= 255; flags++) {
            if (type == NEGIO__FT_DATA && flags == NEGIO__FLAG_MORE)
                continue;
            assert_rejected(NEGIO_PROTOCOL_VERSION, type, level, flags, 0);
        }
    }
}

static void decode_accepts_more_flag_only_on_data(void **state)
{
    (void)state;
    for (unsigned level = NEGIO_LEVEL_NONE; level <= NEGIO_LEVEL_SEAL; level++)
        assert_accepted(NEGIO__FT_DATA, level, NEGIO__FLAG_MORE, 100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_NONE, NEGIO__FLAG_MORE,
                    100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HS_ERROR, NEGIO_LEVEL_NONE, NEGIO__FLAG_MORE,
                    100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_POLICY, NEGIO_LEVEL_SIGN, NEGIO__FLAG_MORE,
                    100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_POLICY, NEGIO_LEVEL_SEAL, NEGIO__FLAG_MORE,
                    100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_CLOSE, NEGIO_LEVEL_SIGN, NEGIO__FLAG_MORE,
                    100);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_CLOSE, NEGIO_LEVEL_SEAL, NEGIO__FLAG_MORE,
                    100);
}

static void decode_rejects_handshake_frames_at_sign_or_seal(void **state)
{
    (void)state;
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_SIGN, 0, 10);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_SEAL, 0, 10);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HS_ERROR, NEGIO_LEVEL_SIGN, 0, 10);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HS_ERROR, NEGIO_LEVEL_SEAL, 0, 10);
    assert_accepted(NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_NONE, 0, 10);
    assert_accepted(NEGIO__FT_HS_ERROR, NEGIO_LEVEL_NONE, 0, 10);
}

static void decode_rejects_policy_and_close_at_level_none(void **state)
{
    (void)state;
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_POLICY, NEGIO_LEVEL_NONE, 0, 16);
    assert_rejected(NEGIO_PROTOCOL_VERSION, NEGIO__FT_CLOSE, NEGIO_LEVEL_NONE, 0, 4);
    assert_accepted(NEGIO__FT_POLICY, NEGIO_LEVEL_SIGN, 0, 16);
    assert_accepted(NEGIO__FT_POLICY, NEGIO_LEVEL_SEAL, 0, 16);
    assert_accepted(NEGIO__FT_CLOSE, NEGIO_LEVEL_SIGN, 0, 4);
    assert_accepted(NEGIO__FT_CLOSE, NEGIO_LEVEL_SEAL, 0, 4);
}

static void decode_accepts_data_at_every_level(void **state)
{
    (void)state;
    for (unsigned level = NEGIO_LEVEL_NONE; level <= NEGIO_LEVEL_SEAL; level++)
        assert_accepted(NEGIO__FT_DATA, level, 0, 5);
}

static void decode_leaves_length_limits_to_the_connector(void **state)
{
    (void)state;
    static const uint32_t lengths[] = {0, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        assert_accepted(NEGIO__FT_HANDSHAKE, NEGIO_LEVEL_NONE, 0, lengths[i]);
        assert_accepted(NEGIO__FT_HS_ERROR, NEGIO_LEVEL_NONE, 0, lengths[i]);
        assert_accepted(NEGIO__FT_POLICY, NEGIO_LEVEL_SIGN, 0, lengths[i]);
        assert_accepted(NEGIO__FT_DATA, NEGIO_LEVEL_SEAL, NEGIO__FLAG_MORE, lengths[i]);
        assert_accepted(NEGIO__FT_CLOSE, NEGIO_LEVEL_SEAL, 0, lengths[i]);
    }
}

static void decode_does_not_set_why_on_success(void **state)
{
    (void)state;
    negio__frame_hdr h;
    const char *why;
    assert_int_equal(
        decode_raw(NEGIO_PROTOCOL_VERSION, NEGIO__FT_DATA, NEGIO_LEVEL_SIGN, 0, 7, &h, &why), 0);
    assert_null(why);
}

static void decode_gives_distinct_reasons_per_rule(void **state)
{
    (void)state;
    negio__frame_hdr h;
    const char *version, *type, *level, *hs_level, *unprotected, *flags;
    assert_int_equal(decode_raw(1, NEGIO__FT_DATA, 0, 0, 0, &h, &version), NEGIO_ERR_PROTOCOL);
    assert_int_equal(decode_raw(NEGIO_PROTOCOL_VERSION, 9, 0, 0, 0, &h, &type), NEGIO_ERR_PROTOCOL);
    assert_int_equal(decode_raw(NEGIO_PROTOCOL_VERSION, NEGIO__FT_DATA, 3, 0, 0, &h, &level),
                     NEGIO_ERR_PROTOCOL);
    assert_int_equal(
        decode_raw(NEGIO_PROTOCOL_VERSION, NEGIO__FT_HANDSHAKE, 1, 0, 0, &h, &hs_level),
        NEGIO_ERR_PROTOCOL);
    assert_int_equal(decode_raw(NEGIO_PROTOCOL_VERSION, NEGIO__FT_CLOSE, 0, 0, 0, &h, &unprotected),
                     NEGIO_ERR_PROTOCOL);
    assert_int_equal(decode_raw(NEGIO_PROTOCOL_VERSION, NEGIO__FT_DATA, 0, 2, 0, &h, &flags),
                     NEGIO_ERR_PROTOCOL);
    const char *all[] = {version, type, level, hs_level, unprotected, flags};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = i + 1; j < 6; j++)
            assert_string_not_equal(all[i], all[j]);
}

static void frame_type_name_names_known_types_and_unknown_otherwise(void **state)
{
    (void)state;
    assert_string_equal(negio__frame_type_name(NEGIO__FT_HANDSHAKE), "HANDSHAKE");
    assert_string_equal(negio__frame_type_name(NEGIO__FT_HS_ERROR), "HANDSHAKE_ERROR");
    assert_string_equal(negio__frame_type_name(NEGIO__FT_POLICY), "POLICY");
    assert_string_equal(negio__frame_type_name(NEGIO__FT_DATA), "DATA");
    assert_string_equal(negio__frame_type_name(NEGIO__FT_CLOSE), "CLOSE");
    assert_string_equal(negio__frame_type_name(0), "unknown");
    assert_string_equal(negio__frame_type_name(6), "unknown");
    assert_string_equal(negio__frame_type_name(255), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_then_decode_round_trips_every_valid_combination),
        cmocka_unit_test(encode_is_big_endian_length),
        cmocka_unit_test(protected_header_is_first_four_header_bytes),
        cmocka_unit_test(decode_rejects_versions_0_1_and_3),
        cmocka_unit_test(decode_rejects_unknown_types_0_and_6_to_255),
        cmocka_unit_test(decode_rejects_levels_3_to_255_on_every_type),
        cmocka_unit_test(decode_rejects_reserved_flag_bits_on_each_type),
        cmocka_unit_test(decode_accepts_more_flag_only_on_data),
        cmocka_unit_test(decode_rejects_handshake_frames_at_sign_or_seal),
        cmocka_unit_test(decode_rejects_policy_and_close_at_level_none),
        cmocka_unit_test(decode_accepts_data_at_every_level),
        cmocka_unit_test(decode_leaves_length_limits_to_the_connector),
        cmocka_unit_test(decode_does_not_set_why_on_success),
        cmocka_unit_test(decode_gives_distinct_reasons_per_rule),
        cmocka_unit_test(frame_type_name_names_known_types_and_unknown_otherwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
