/* Test support: handshake tokens taken apart and built by hand, as a network attacker or a
 * hostile peer would, holding no keys: NTLM messages ([MS-NLMP] 2.2.1), SPNEGO's DER (RFC 4178)
 * and negio's HANDSHAKE_ERROR body (PROTOCOL.md section 4.2). */
#ifndef NEGIO_TEST_TOKENS_H
#define NEGIO_TEST_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "support/bytes.h" /* test_le32, test_put_le32 */

/* NTLM negotiation flags ([MS-NLMP] 2.2.2.5) the tests change. */
#define TEST_NTLM_DATAGRAM 0x00000040u
#define TEST_NTLM_KEY_EXCH 0x40000000u
/* AV pair ids ([MS-NLMP] 2.2.2.1). */
#define TEST_AV_FLAGS 6
#define TEST_AV_TIMESTAMP 7
#define TEST_AV_FLAG_MIC 0x00000002u /* MsvAvFlags: the AUTHENTICATE message carries a MIC */

/* The first NTLM message of TYPE (1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE) in P..P+N, found by
 * its signature anywhere (raw, or inside SPNEGO), or NULL. */
uint8_t *test_ntlm_find(uint8_t *p, size_t n, uint32_t type);
/* The NegotiateFlags field of MSG (NEGOTIATE, CHALLENGE or AUTHENTICATE), or NULL if END leaves
 * no room for it. */
uint8_t *test_ntlm_flags(uint8_t *msg, const uint8_t *end);
/* The AV pair ID in the target info of MSG (a CHALLENGE, or an AUTHENTICATE's NTLMv2 response),
 * within END: its AvId field, or NULL. */
uint8_t *test_ntlm_av(uint8_t *msg, const uint8_t *end, uint16_t id);

/* Writes a CHALLENGE with Unicode and TARGET_TYPE_DOMAIN set and a target name of NAME_LEN
 * bytes (0: the empty target name that crashes gss-ntlmssp 1.2.0's client) into M (room for
 * 64 + NAME_LEN bytes); returns its length. */
size_t test_ntlm_challenge(uint8_t *m, uint16_t name_len);
/* Wraps MSG (under 100 bytes) as a SPNEGO NegTokenResp, accept-incomplete, supportedMech NTLM,
 * into OUT (room for LEN + 30 bytes); returns its length. */
size_t test_wrap_negtokenresp(uint8_t *out, const uint8_t *msg, size_t len);

/* A server's NegTokenResp found by fuzz_client_handshake (SECURITY.md section 8.1): its
 * supportedMech [1] claims 0x4c bytes for a 12-byte OID. A DER walk by element lengths skips the
 * responseToken; MIT's parser reads the OID by its own length and hands the CHALLENGE inside
 * (empty target name) to gss-ntlmssp, which crashed the client. */
extern const uint8_t test_hostile_supportedmech_length[];
extern const size_t test_hostile_supportedmech_length_len;

/* The body of a HANDSHAKE_ERROR frame: [u32 BE token length][TOKEN][REASON]. Caller frees. */
uint8_t *test_hs_error_body(const uint8_t *token, size_t len, const char *reason, size_t *n);

/* Re-encodes the DER in IN (a sequence of TLVs, descending into constructed ones) with the
 * length of its TARGET-th element (counted in document order from 0) in a longer form than
 * needed (0x81 LL for a short length, one more leading zero byte for a long one) and every
 * enclosing length adjusted: the same values, encoded differently. Returns the new encoding
 * (caller frees) and its length, or NULL if IN is not DER or has fewer elements. */
uint8_t *test_der_long_form(const uint8_t *in, size_t n, int target, size_t *out_len);

#endif
