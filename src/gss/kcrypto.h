/* Kerberos encryption for the per-message fast path (fastpath.c, cfx.c): the simplified profile
 * of RFC 3961 for the AES enctypes of RFC 3962 (aes128/aes256-cts-hmac-sha1-96, 17 and 18) and
 * RFC 8009 (aes128-cts-hmac-sha256-128 and aes256-cts-hmac-sha384-192, 19 and 20), on OpenSSL 3
 * EVP: key derivation for a key usage, encryption with a confounder and an integrity tag
 * (AES-CBC-CTS in the CS3 variant Kerberos uses, then HMAC), and keyed checksums. No GSS-API
 * here; every key this file holds lives in OpenSSL contexts that wipe themselves when freed, or in
 * buffers the caller owns and wipes. */
#ifndef NEGIO_GSS_KCRYPTO_H
#define NEGIO_GSS_KCRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define NEGIO__KC_MAX_KEY 32    /* the longest base, encryption or HMAC key */
#define NEGIO__KC_MAX_TAG 24    /* the longest integrity tag or checksum (HMAC-SHA384-192) */
#define NEGIO__KC_CONFOUNDER 16 /* the confounder: one AES block */

/* What distinguishes one enctype from another. */
typedef struct negio__kc_type {
    int32_t enctype;    /* 17, 18, 19 or 20 */
    const char *name;   /* "aes256-cts-hmac-sha1-96" */
    size_t key_len;     /* the base key and the encryption key Ke */
    size_t mac_key_len; /* the integrity key Ki and the checksum key Kc */
    size_t tag_len;     /* the truncated HMAC: integrity tag and checksum */
    int sha2;           /* RFC 8009: KDF-HMAC-SHA2, the tag over IV | ciphertext */
    const char *cipher; /* the EVP name of AES-CBC-CTS for this key length */
    const char *digest; /* the EVP name of the HMAC's hash */
} negio__kc_type;

/* The enctype's profile, or NULL for one this file does not implement. */
const negio__kc_type *negio__kc_type_of(int32_t enctype);

/* The derivation constants of RFC 3961 section 5.3: a key for checksums (Kc), for encryption (Ke)
 * or for the integrity of encryption (Ki) is derived from the base key and the key usage. */
enum { NEGIO__KC_KC = 0x99, NEGIO__KC_KE = 0xAA, NEGIO__KC_KI = 0x55 };

/* Derives the key for USAGE and KIND from BASE (T->key_len bytes) into OUT (T->key_len bytes for
 * Ke, T->mac_key_len for Kc and Ki): DK(base, usage | kind) of RFC 3961 section 5.1 for
 * RFC 3962 (OpenSSL's KRB5KDF), KDF-HMAC-SHA2(base, usage | kind, k) of RFC 8009 section 3.
 * 0, or -1 if OpenSSL failed. */
int negio__kc_derive(const negio__kc_type *t, const uint8_t *base, uint32_t usage, uint8_t kind,
                     uint8_t *out);
/* The same for an arbitrary CONSTANT of CLEN bytes (RFC 3961's DK for string-to-key takes
 * "kerberos"), with OUT_LEN bytes of output: the test vectors use it. */
int negio__kc_derive_constant(const negio__kc_type *t, const uint8_t *base, const uint8_t *constant,
                              size_t clen, uint8_t *out, size_t out_len);

/* An HMAC key whose padded blocks were hashed once (RFC 2104 section 4), so that each message
 * costs copies of two hash states instead of two extra compressions. */
struct evp_md_ctx_st;
typedef struct negio__kc_mac {
    const negio__kc_type *type;
    struct evp_md_ctx_st *inner, *outer;
} negio__kc_mac;

/* Keys M with KEY (LEN bytes, at most the hash's block). 0, or -1 (M is then clear). */
int negio__kc_mac_init(negio__kc_mac *m, const negio__kc_type *t, const uint8_t *key, size_t len);
/* The checksum key Kc of USAGE derived from BASE, as an HMAC key. 0 or -1. */
int negio__kc_mac_init_checksum(negio__kc_mac *m, const negio__kc_type *t, const uint8_t *base,
                                uint32_t usage);
/* Frees M's hash states (OpenSSL wipes them); M is then clear. */
void negio__kc_mac_clear(negio__kc_mac *m);
/* One HMAC: start in WORK (any EVP_MD_CTX, reused from message to message), feed it, finish it
 * into TAG (T->tag_len bytes, the truncated HMAC). Each returns 0 or -1. */
int negio__kc_mac_start(const negio__kc_mac *m, struct evp_md_ctx_st *work);
int negio__kc_mac_update(struct evp_md_ctx_st *work, const void *data, size_t len);
int negio__kc_mac_finish(const negio__kc_mac *m, struct evp_md_ctx_st *work, uint8_t *tag);

/* Encryption for one key usage, in one direction (RFC 3961 section 5.3): the cipher keyed with Ke
 * and the HMAC keyed with Ki. */
struct evp_cipher_ctx_st;
typedef struct negio__kc_key {
    const negio__kc_type *type;
    struct evp_cipher_ctx_st *cipher;
    negio__kc_mac integrity;
    int encrypt;
} negio__kc_key;

/* Keys K for USAGE from BASE, to encrypt (ENCRYPT non-zero) or to decrypt. 0 or -1. */
int negio__kc_key_init(negio__kc_key *k, const negio__kc_type *t, const uint8_t *base,
                       uint32_t usage, int encrypt);
/* Keys K with the encryption key KE (T->key_len bytes) and the integrity key KI
 * (T->mac_key_len bytes) as they are: for test vectors, which give derived keys. 0 or -1. */
int negio__kc_key_init_raw(negio__kc_key *k, const negio__kc_type *t, const uint8_t *ke,
                           const uint8_t *ki, int encrypt);
/* Frees K's contexts (OpenSSL wipes them); K is then clear. */
void negio__kc_key_clear(negio__kc_key *k);
/* Encrypts BUF in place: it holds the confounder and the plaintext (LEN >= 16 bytes) and then
 * holds the ciphertext; the integrity tag (K->type->tag_len bytes) goes to TAG. The ciphertext
 * is BUF then TAG, the layout of RFC 3961 section 5.3. WORK as for negio__kc_mac_start. 0 or
 * -1. */
int negio__kc_encrypt(negio__kc_key *k, struct evp_md_ctx_st *work, uint8_t *buf, size_t len,
                      uint8_t *tag);
/* Checks TAG and decrypts C (LEN >= 16 bytes) into OUT (LEN bytes; may not overlap C): 0, or -1
 * when the ciphertext does not verify (OUT is then wiped) or OpenSSL failed. RFC 8009 checks the
 * tag over the ciphertext before decrypting; RFC 3962 over the plaintext after. */
int negio__kc_decrypt(negio__kc_key *k, struct evp_md_ctx_st *work, const uint8_t *c, size_t len,
                      const uint8_t *tag, uint8_t *out);

/* A fresh confounder (16 random bytes) into OUT. They come from OpenSSL's RAND_bytes, drawn a few
 * hundred bytes at a time into a pool of the calling thread (one call costs about a microsecond,
 * more than the rest of sealing a short message); the pool is emptied in a child after fork(),
 * so that parent and child never use the same bytes. 0, or -1 if RAND_bytes failed. */
int negio__kc_confounder(uint8_t *out);

#endif
