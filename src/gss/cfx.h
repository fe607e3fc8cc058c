/* RFC 4121 per-message tokens ("CFX", section 4.2) for the Kerberos fast path (fastpath.c), on
 * kcrypto.c: MIC tokens and Wrap tokens, sealed and not, made and checked, with the sequence
 * numbers of both directions and MIT's replay and order checks. What goes on the wire is what
 * MIT's mechanism sends (EC 0 and RRC 0 on the tokens made here); a received token is judged as
 * MIT 1.20 (Debian 12, with the CVE-2024-37370/37371 fixes) judges it in gss_unwrap and
 * gss_verify_mic, down to the major status code, so that the differential tests can compare the
 * two (tests/conformance/test_krb5_fast.c). No GSS-API calls here, and nothing from the peer is
 * trusted before its integrity check: the token parser is fuzzed on its own
 * (tests/fuzz/fuzz_cfx.c). */
#ifndef NEGIO_GSS_CFX_H
#define NEGIO_GSS_CFX_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The token flags (RFC 4121 section 4.2.2) and identifiers (section 4.2.6). */
#define NEGIO__CFX_SENT_BY_ACCEPTOR 0x01
#define NEGIO__CFX_SEALED 0x02
#define NEGIO__CFX_ACCEPTOR_SUBKEY 0x04
#define NEGIO__CFX_TOK_MIC 0x0404
#define NEGIO__CFX_TOK_WRAP 0x0504
#define NEGIO__CFX_TOK_DELETE 0x0405
#define NEGIO__CFX_HEADER 16

/* An established context's keys and sequence numbers, as gss_krb5_export_lucid_sec_context gives
 * them (protocol 1), and the replay and order checks its flags asked for. */
typedef struct negio__cfx_params {
    int initiator;
    int32_t ctx_enctype; /* the initiator's subkey (or the ticket's session key) */
    const uint8_t *ctx_key;
    size_t ctx_key_len;
    int acceptor_subkey; /* the acceptor asserted a subkey of its own */
    int32_t acc_enctype;
    const uint8_t *acc_key;
    size_t acc_key_len;
    uint64_t send_seq; /* the next sequence number to send */
    uint64_t recv_seq; /* the first one the peer sends */
    int do_replay;     /* GSS_C_REPLAY_FLAG */
    int do_sequence;   /* GSS_C_SEQUENCE_FLAG */
} negio__cfx_params;

typedef struct negio__cfx negio__cfx;

/* Whether the fast path implements ENCTYPE (17, 18, 19, 20). */
int negio__cfx_supported(int32_t enctype);
/* A fast path for P's context; the keys are copied (the caller wipes its own). 0,
 * NEGIO_ERR_NOMEM, or NEGIO_ERR_INVALID when the key that protects this side's tokens (the
 * acceptor subkey if asserted, else the context key) has an enctype it does not implement or a
 * length that enctype does not have. A context key of another enctype beside a supported acceptor
 * subkey is kept out (a token that needs it fails with GSS_S_BAD_SIG). */
int negio__cfx_new(negio__cfx **out, const negio__cfx_params *p);
/* A copy of C with the same keys and sequence state (its OpenSSL contexts are made again on first
 * use). 0 or NEGIO_ERR_NOMEM. */
int negio__cfx_dup(negio__cfx **out, const negio__cfx *c);
/* Wipes the keys, frees the OpenSSL contexts (OpenSSL wipes them) and C. */
void negio__cfx_del(negio__cfx *c);
/* The enctype of the key this side protects its tokens with. */
int32_t negio__cfx_enctype(const negio__cfx *c);
/* The length of the MIC tokens this side makes (as gss_get_mic_iov_length gives it): the
 * 16-byte header and the checksum of the key above. */
size_t negio__cfx_mic_length(const negio__cfx *c);
/* The sequence number the peer's next token should carry if none was lost: the one the context
 * started with, plus one for each token taken since. */
uint64_t negio__cfx_recv_next(const negio__cfx *c);

/* One piece of a message covered by a MIC, where it lies. */
typedef struct negio__cfx_piece {
    const uint8_t *p;
    size_t len;
} negio__cfx_piece;

/* Why a call failed, beside its major status: */
enum {
    NEGIO__CFX_OK = 0,
    NEGIO__CFX_NOMEM = 1,  /* an allocation failed (GSS_S_FAILURE) */
    NEGIO__CFX_CRYPTO = 2, /* OpenSSL failed, or the key is not there (GSS_S_FAILURE/BAD_SIG) */
};

/* Each of the following returns a GSS-API major status: GSS_S_COMPLETE, or the status MIT's
 * mechanism gives in the same case, and sets *WHY (may be NULL) to one of the NEGIO__CFX_ values
 * above. Making a token never fails but for memory and OpenSSL. */

/* Appends the MIC token (RFC 4121 section 4.2.6.1) of the pieces, in order, to OUT. */
uint32_t negio__cfx_get_mic(negio__cfx *c, const negio__cfx_piece *pieces, size_t n,
                            negio__buf *out, int *why);
/* Checks TOK (LEN bytes) as the MIC of the pieces. As gss_verify_mic: GSS_S_DEFECTIVE_TOKEN
 * for a malformed token, GSS_S_BAD_SIG for one from this side's own direction or that does not
 * verify; then the sequence check (GSS_S_DUPLICATE_TOKEN, GSS_S_OLD_TOKEN, GSS_S_UNSEQ_TOKEN,
 * GSS_S_GAP_TOKEN, with the flags the context has). */
uint32_t negio__cfx_verify_mic(negio__cfx *c, const negio__cfx_piece *pieces, size_t n,
                               const uint8_t *tok, size_t len, int *why);
/* Appends the Wrap token (section 4.2.6.2) of MSG to OUT, sealed if CONF. The plaintext of a
 * sealed token is put together in OUT and encrypted there in place. */
uint32_t negio__cfx_wrap(negio__cfx *c, int conf, const uint8_t *msg, size_t len, negio__buf *out,
                         int *why);

/* The plaintext of an unwrapped token, in memory of its own (wiped when released). */
typedef struct negio__cfx_plain {
    uint8_t *mem; /* negio__malloc'd, or NULL */
    size_t mem_len;
    const uint8_t *msg; /* inside mem */
    size_t len;
} negio__cfx_plain;
/* Unwraps TOK (LEN bytes; any RRC rotation undone). On GSS_S_COMPLETE *OUT holds the plaintext
 * and *CONF whether it was sealed; on anything else *OUT is empty. As gss_unwrap, the errors of
 * negio__cfx_verify_mic and GSS_S_FAILURE when memory runs out. */
uint32_t negio__cfx_unwrap(negio__cfx *c, const uint8_t *tok, size_t len, negio__cfx_plain *out,
                           int *conf, int *why);
/* Wipes and frees P's memory; P is then empty. */
void negio__cfx_plain_release(negio__cfx_plain *p);

#endif
