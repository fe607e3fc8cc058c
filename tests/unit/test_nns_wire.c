/* The bytes of [MS-NNS] (src/conn/nns.h) against the spec's definitions: 2.2.1 the handshake
 * header (MessageId, MajorVersion 1, MinorVersion 0, the payload size high byte first), 2.2.2 the
 * data header (a 4-byte little-endian PayloadSize), the HandshakeError payload as each .NET
 * version writes and reads it, and the mapping of its codes to negio's errors and back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conn/nns.h"
#include "negio/negio.h"

static void handshake_headers_are_id_version_and_a_big_endian_size(void **state)
{
    (void)state;
    uint8_t h[NEGIO__NNS_HS_HDR];
    negio__nns_hs_header(h, NEGIO__NNS_HANDSHAKE_IN_PROGRESS, 0x1234);
    static const uint8_t in_progress[] = {0x16, 0x01, 0x00, 0x12, 0x34};
    assert_memory_equal(h, in_progress, sizeof(in_progress));
    negio__nns_hs_header(h, NEGIO__NNS_HANDSHAKE_DONE, 0);
    static const uint8_t done[] = {0x14, 0x01, 0x00, 0x00, 0x00};
    assert_memory_equal(h, done, sizeof(done));
    negio__nns_hs_header(h, NEGIO__NNS_HANDSHAKE_ERROR, 8);
    static const uint8_t error[] = {0x15, 0x01, 0x00, 0x00, 0x08};
    assert_memory_equal(h, error, sizeof(error));
    negio__nns_hs_header(h, NEGIO__NNS_HANDSHAKE_IN_PROGRESS, 0xFFFF);
    assert_int_equal(negio__nns_hs_length(h), 0xFFFF);
    assert_int_equal(h[3], 0xFF);
    assert_int_equal(h[4], 0xFF);
    /* a receiver ignores the version bytes (3.1.5.2, 3.2.5.1) */
    static const uint8_t other_version[] = {0x16, 0x07, 0x09, 0x01, 0x02};
    assert_int_equal(negio__nns_hs_length(other_version), 0x0102);
}

static void data_headers_are_a_little_endian_size(void **state)
{
    (void)state;
    uint8_t h[NEGIO__NNS_DATA_HDR];
    negio__nns_data_header(h, NEGIO__NNS_DATA_MAX);
    static const uint8_t max[] = {0x30, 0xFC, 0x00, 0x00};
    assert_memory_equal(h, max, sizeof(max));
    negio__nns_data_header(h, 0x01020304);
    static const uint8_t some[] = {0x04, 0x03, 0x02, 0x01};
    assert_memory_equal(h, some, sizeof(some));
    assert_int_equal(negio__nns_data_length(some), 0x01020304);
    assert_int_equal(NEGIO__NNS_DATA_MAX, 64560);
    assert_int_equal(NEGIO__NNS_DATA_READ_MAX, 65536);
}

/* negio writes the code where .NET 8 reads it (little-endian, bytes 0-3) and where .NET Framework
 * to .NET 7 read it (big-endian, bytes 4-7). */
static void an_error_payload_reads_the_same_in_either_byte_order(void **state)
{
    (void)state;
    uint8_t p[NEGIO__NNS_ERROR_LEN];
    negio__nns_error_encode(p, NEGIO__NNS_TRUST_FAILURE);
    static const uint8_t trust[] = {0xFE, 0x06, 0x00, 0x00, 0x00, 0x00, 0x06, 0xFE};
    assert_memory_equal(p, trust, sizeof(trust));
    negio__nns_error_encode(p, NEGIO__NNS_SEC_E_LOGON_DENIED);
    static const uint8_t denied[] = {0x0C, 0x03, 0x09, 0x80, 0x80, 0x09, 0x03, 0x0C};
    assert_memory_equal(p, denied, sizeof(denied));
    /* how each reader takes it: a 64-bit integer, its low 32 bits */
    uint64_t le = 0, be = 0;
    for (int i = 7; i >= 0; i--)
        le = le << 8 | p[i];
    for (int i = 0; i < 8; i++)
        be = be << 8 | p[i];
    assert_int_equal((uint32_t)le, NEGIO__NNS_SEC_E_LOGON_DENIED);
    assert_int_equal((uint32_t)be, NEGIO__NNS_SEC_E_LOGON_DENIED);
}

static void error_payloads_of_every_writer_are_decoded(void **state)
{
    (void)state;
    uint32_t code;
    /* .NET 8 on: Int64 little-endian of an int, sign-extended */
    static const uint8_t net8[] = {0x0C, 0x03, 0x09, 0x80, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(negio__nns_error_decode(net8, sizeof(net8), &code), 1);
    assert_int_equal(code, NEGIO__NNS_SEC_E_LOGON_DENIED);
    static const uint8_t net8_trust[] = {0xFE, 0x06, 0, 0, 0, 0, 0, 0};
    assert_int_equal(negio__nns_error_decode(net8_trust, 8, &code), 1);
    assert_int_equal(code, NEGIO__NNS_TRUST_FAILURE);
    /* .NET Framework and .NET up to 7: big-endian */
    static const uint8_t netfx[] = {0, 0, 0, 0, 0x80, 0x09, 0x03, 0x0C};
    assert_int_equal(negio__nns_error_decode(netfx, 8, &code), 1);
    assert_int_equal(code, NEGIO__NNS_SEC_E_LOGON_DENIED);
    /* longer payloads: the first 8 bytes, as .NET reads them */
    static const uint8_t longer[] = {0, 0, 0, 0, 0, 0, 0x06, 0xFE, 0xAA, 0xBB};
    assert_int_equal(negio__nns_error_decode(longer, sizeof(longer), &code), 1);
    assert_int_equal(code, NEGIO__NNS_TRUST_FAILURE);
    /* shorter: no code */
    assert_int_equal(negio__nns_error_decode(longer, 7, &code), 0);
    assert_int_equal(negio__nns_error_decode(NULL, 0, &code), 0);
    static const uint8_t zero[8] = {0};
    assert_int_equal(negio__nns_error_decode(zero, 8, &code), 1);
    assert_int_equal(code, 0);
}

/* What this side sends for each of its failures, and what a received code becomes. */
static void error_codes_map_to_negio_errors_and_back(void **state)
{
    (void)state;
    static const struct {
        int err;
        uint32_t gss;
        uint32_t code;
    } out[] = {
        {NEGIO_ERR_POLICY, 0, NEGIO__NNS_TRUST_FAILURE},
        {NEGIO_ERR_DOWNGRADE, 0, NEGIO__NNS_TRUST_FAILURE},
        {NEGIO_ERR_HANDSHAKE, NEGIO__NNS_SEC_E_LOGON_DENIED, NEGIO__NNS_SEC_E_LOGON_DENIED},
        {NEGIO_ERR_HANDSHAKE, 0, NEGIO__NNS_SEC_E_INVALID_TOKEN},
        {NEGIO_ERR_PROTOCOL, 0, NEGIO__NNS_SEC_E_INVALID_TOKEN},
        {NEGIO_ERR_TOO_LARGE, 0, NEGIO__NNS_SEC_E_INVALID_TOKEN},
        {NEGIO_ERR_CREDENTIALS, 0, NEGIO__NNS_SEC_E_NO_CREDENTIALS},
        {NEGIO_ERR_BINDING, 0, NEGIO__NNS_SEC_E_BAD_BINDINGS},
        {NEGIO_ERR_NOMEM, 0, NEGIO__NNS_SEC_E_INSUFFICIENT_MEMORY},
        {NEGIO_ERR_CLOSED, 0, NEGIO__NNS_E_ABORT},
        {NEGIO_ERR_INTEGRITY, 0, NEGIO__NNS_SEC_E_INTERNAL_ERROR},
    };
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        assert_int_equal(negio__nns_error_for(out[i].err, out[i].gss), out[i].code);
    assert_int_equal(negio__nns_error_negio(NEGIO__NNS_TRUST_FAILURE), NEGIO_ERR_POLICY);
    assert_int_equal(negio__nns_error_negio(NEGIO__NNS_SEC_E_BAD_BINDINGS), NEGIO_ERR_BINDING);
    assert_int_equal(negio__nns_error_negio(NEGIO__NNS_SEC_E_LOGON_DENIED), NEGIO_ERR_PEER);
    assert_int_equal(negio__nns_error_negio(0x12345678), NEGIO_ERR_PEER);
    /* a code negio sends maps back to the error that sent it, where one is meant */
    assert_int_equal(negio__nns_error_negio(negio__nns_error_for(NEGIO_ERR_POLICY, 0)),
                     NEGIO_ERR_POLICY);
    assert_int_equal(negio__nns_error_negio(negio__nns_error_for(NEGIO_ERR_BINDING, 0)),
                     NEGIO_ERR_BINDING);
    /* every code negio sends has a name */
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        assert_non_null(negio__nns_error_text(out[i].code));
    assert_non_null(strstr(negio__nns_error_text(NEGIO__NNS_TRUST_FAILURE), "ERROR_TRUST_FAILURE"));
    assert_non_null(strstr(negio__nns_error_text(21), "SEC_E_LOGON_DENIED"));
    assert_null(negio__nns_error_text(0x12345678));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_headers_are_id_version_and_a_big_endian_size),
        cmocka_unit_test(data_headers_are_a_little_endian_size),
        cmocka_unit_test(an_error_payload_reads_the_same_in_either_byte_order),
        cmocka_unit_test(error_payloads_of_every_writer_are_decoded),
        cmocka_unit_test(error_codes_map_to_negio_errors_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
