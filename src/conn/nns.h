/* The bytes of [MS-NNS], the .NET NegotiateStream protocol (docs/PROTOCOL.md appendix C): the
 * handshake and data message headers, and the HandshakeError payload with the Windows codes it
 * carries and what negio makes of them. The profile itself is nns.c. */
#ifndef NEGIO_CONN_NNS_H
#define NEGIO_CONN_NNS_H

#include <stddef.h>
#include <stdint.h>

/* [MS-NNS] 2.2.1 Handshake message: MessageId, MajorVersion 1, MinorVersion 0, the payload size
 * as its high byte then its low byte, the AuthPayload. */
#define NEGIO__NNS_HANDSHAKE_DONE 0x14u
#define NEGIO__NNS_HANDSHAKE_ERROR 0x15u
#define NEGIO__NNS_HANDSHAKE_IN_PROGRESS 0x16u
#define NEGIO__NNS_HS_HDR 5
#define NEGIO__NNS_HS_MAX 0xFFFFu
/* 2.2.1: a HandshakeError's AuthPayload is 8 bytes holding the error code */
#define NEGIO__NNS_ERROR_LEN 8

/* [MS-NNS] 2.2.2 Data message: a 4-byte little-endian PayloadSize, the payload. A sender puts at
 * most 0xFC30 bytes in one (the 2019 errata); a receiver takes up to 64 KiB, as .NET's reader
 * does (its writer can exceed 0xFC30 with Kerberos sealing). */
#define NEGIO__NNS_DATA_HDR 4
#define NEGIO__NNS_DATA_MAX 0xFC30u
#define NEGIO__NNS_DATA_READ_MAX 0x10000u

/* Windows codes ([MS-ERREF] 2.1 and 2.2) a HandshakeError carries. */
#define NEGIO__NNS_ACCESS_DENIED 0x00000005u /* ERROR_ACCESS_DENIED: an application's refusal */
#define NEGIO__NNS_TRUST_FAILURE 0x000006FEu /* ERROR_TRUST_FAILURE: levels refused (3.1.5.1) */
#define NEGIO__NNS_E_ABORT 0x80004004u
#define NEGIO__NNS_E_FAIL 0x80004005u
#define NEGIO__NNS_SEC_E_INSUFFICIENT_MEMORY 0x80090300u
#define NEGIO__NNS_SEC_E_INTERNAL_ERROR 0x80090304u
#define NEGIO__NNS_SEC_E_INVALID_TOKEN 0x80090308u
#define NEGIO__NNS_SEC_E_LOGON_DENIED 0x8009030Cu
#define NEGIO__NNS_SEC_E_NO_CREDENTIALS 0x8009030Eu
#define NEGIO__NNS_SEC_E_CONTEXT_EXPIRED 0x80090317u
#define NEGIO__NNS_SEC_E_BAD_BINDINGS 0x80090346u

void negio__nns_hs_header(uint8_t h[NEGIO__NNS_HS_HDR], uint8_t id, uint16_t len);
/* The payload size a handshake header announces (the version bytes are not looked at: 3.1.5.2
 * and 3.2.5.1 say a receiver ignores them). */
uint16_t negio__nns_hs_length(const uint8_t h[NEGIO__NNS_HS_HDR]);
void negio__nns_data_header(uint8_t h[NEGIO__NNS_DATA_HDR], uint32_t len);
uint32_t negio__nns_data_length(const uint8_t h[NEGIO__NNS_DATA_HDR]);

/* The 8-byte payload of a HandshakeError saying CODE. .NET Framework and .NET up to 7 write and
 * read it as a big-endian 64-bit integer, .NET 8 and later as a little-endian one, each taking
 * the low 32 bits as the code; negio writes the code in both places (bytes 0-3 little-endian,
 * bytes 4-7 big-endian), so that every one of them reads CODE. */
void negio__nns_error_encode(uint8_t out[NEGIO__NNS_ERROR_LEN], uint32_t code);
/* The code in a HandshakeError payload of LEN bytes, whichever of those writers made it:
 * 1 with *CODE, or 0 when the payload is shorter than 8 bytes (.NET then reports no code). */
int negio__nns_error_decode(const uint8_t *p, size_t len, uint32_t *code);
/* The code this side sends for a failure with negio error CODE (GSS_STATUS: the Windows status of
 * a failed GSS step, negio__gss_windows_status, used for NEGIO_ERR_HANDSHAKE when not 0). */
uint32_t negio__nns_error_for(int code, uint32_t gss_status);
/* The code a server sends in place of its HandshakeDone when the application refuses the client
 * with a close of STATUS: ERROR_ACCESS_DENIED for NEGIO_STATUS_FORBIDDEN, SEC_E_CONTEXT_EXPIRED
 * for NEGIO_STATUS_EXPIRED, E_FAIL for any other. */
uint32_t negio__nns_error_for_status(uint32_t status);
/* The negio error a received code becomes: NEGIO_ERR_POLICY (ERROR_TRUST_FAILURE),
 * NEGIO_ERR_BINDING (SEC_E_BAD_BINDINGS), NEGIO_ERR_REJECTED (ERROR_ACCESS_DENIED) or
 * NEGIO_ERR_PEER. */
int negio__nns_error_negio(uint32_t code);
/* The code's name and meaning ("SEC_E_LOGON_DENIED: the logon attempt failed"), or NULL. */
const char *negio__nns_error_text(uint32_t code);

#endif
