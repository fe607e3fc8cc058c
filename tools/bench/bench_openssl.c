/*
 * negio bench: the hardware limit of Kerberos per-message protection (issue 18). What a sealed
 * Wrap token and a MIC token of the Kerberos pair's enctype cost in OpenSSL EVP alone, written
 * from RFC 3961/3962/8009 directly (not negio's code): for a seal, the sender's encryption of
 * confounder | message | 16-byte token header with AES-CBC-CTS and its HMAC, the receiver's
 * decryption and its HMAC again; for a sign, one HMAC over message | header made and one checked.
 * Contexts are keyed once (the cipher's key schedule, the MAC's key), as a long-lived
 * connection would have them; confounders come from RAND_bytes 4 KiB at a time. No copies, no
 * token parsing, no sequence numbers: what is left is the crypto itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "bench.h"

static const struct {
    int enctype;
    const char *cipher, *digest;
    size_t key_len, mac_key_len, tag_len;
    int sha2; /* RFC 8009: the tag covers IV | ciphertext */
} profiles[] = {
    {17, "AES-128-CBC-CTS", "SHA1", 16, 16, 12, 0},
    {18, "AES-256-CBC-CTS", "SHA1", 32, 32, 12, 0},
    {19, "AES-128-CBC-CTS", "SHA256", 16, 16, 16, 1},
    {20, "AES-256-CBC-CTS", "SHA384", 32, 24, 24, 1},
};

static const unsigned char zero_iv[16];

typedef struct ossl {
    int p; /* index into profiles */
    EVP_CIPHER_CTX *enc, *dec;
    EVP_MAC_CTX *ki, *kc;
    unsigned char pool[4096];
    size_t pool_left;
} ossl;

static EVP_MAC_CTX *hmac(const char *digest, size_t key_len)
{
    unsigned char key[32];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (m != NULL &&
        (RAND_bytes(key, (int)key_len) != 1 || EVP_MAC_init(m, key, key_len, params) != 1)) {
        EVP_MAC_CTX_free(m);
        m = NULL;
    }
    EVP_MAC_free(mac);
    OPENSSL_cleanse(key, sizeof(key));
    return m;
}

static void ossl_free(ossl *o)
{
    EVP_CIPHER_CTX_free(o->enc);
    EVP_CIPHER_CTX_free(o->dec);
    EVP_MAC_CTX_free(o->ki);
    EVP_MAC_CTX_free(o->kc);
}

static int ossl_init(ossl *o, int enctype)
{
    memset(o, 0, sizeof(*o));
    o->p = -1;
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
        if (profiles[i].enctype == enctype)
            o->p = (int)i;
    if (o->p < 0)
        return -1;
    unsigned char ke[32];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_CIPHER_PARAM_CTS_MODE, "CS3", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, profiles[o->p].cipher, NULL);
    o->enc = EVP_CIPHER_CTX_new();
    o->dec = EVP_CIPHER_CTX_new();
    int ok = c != NULL && o->enc != NULL && o->dec != NULL &&
             RAND_bytes(ke, (int)profiles[o->p].key_len) == 1 &&
             EVP_CipherInit_ex2(o->enc, c, ke, zero_iv, 1, params) == 1 &&
             EVP_CipherInit_ex2(o->dec, c, ke, zero_iv, 0, params) == 1;
    EVP_CIPHER_free(c);
    OPENSSL_cleanse(ke, sizeof(ke));
    o->ki = hmac(profiles[o->p].digest, profiles[o->p].mac_key_len);
    o->kc = hmac(profiles[o->p].digest, profiles[o->p].mac_key_len);
    if (!ok || o->ki == NULL || o->kc == NULL) {
        ossl_free(o);
        return -1;
    }
    return 0;
}

/* One truncated HMAC over A (and B, if any) into TAG. */
static int mac(ossl *o, EVP_MAC_CTX *m, const unsigned char *a, size_t alen, const unsigned char *b,
               size_t blen, unsigned char *tag)
{
    unsigned char full[EVP_MAX_MD_SIZE];
    size_t n = 0;
    int ok = EVP_MAC_init(m, NULL, 0, NULL) == 1 && EVP_MAC_update(m, a, alen) == 1 &&
             (blen == 0 || EVP_MAC_update(m, b, blen) == 1) &&
             EVP_MAC_final(m, full, &n, sizeof(full)) == 1 && n >= profiles[o->p].tag_len;
    memcpy(tag, full, profiles[o->p].tag_len);
    return ok ? 0 : -1;
}

static int cts(EVP_CIPHER_CTX *c, unsigned char *out, const unsigned char *in, size_t len)
{
    int n = 0;
    return EVP_CipherInit_ex2(c, NULL, NULL, zero_iv, -1, NULL) == 1 &&
                   EVP_CipherUpdate(c, out, &n, in, (int)len) == 1 && (size_t)n == len
               ? 0
               : -1;
}

/* A sealed token made and opened: PLAIN (confounder | message | header, LEN bytes) becomes C and
 * back into BACK. */
static int seal_once(ossl *o, unsigned char *plain, size_t len, unsigned char *c,
                     unsigned char *back)
{
    unsigned char tag[32], check[32];
    size_t tl = profiles[o->p].tag_len;
    if (o->pool_left < 16) {
        if (RAND_bytes(o->pool, sizeof(o->pool)) != 1)
            return -1;
        o->pool_left = sizeof(o->pool);
    }
    memcpy(plain, o->pool + sizeof(o->pool) - o->pool_left, 16);
    o->pool_left -= 16;
    if (profiles[o->p].sha2) {
        if (cts(o->enc, c, plain, len) < 0 || mac(o, o->ki, zero_iv, 16, c, len, tag) < 0 ||
            mac(o, o->ki, zero_iv, 16, c, len, check) < 0 || CRYPTO_memcmp(tag, check, tl) != 0 ||
            cts(o->dec, back, c, len) < 0)
            return -1;
    } else {
        if (mac(o, o->ki, plain, len, NULL, 0, tag) < 0 || cts(o->enc, c, plain, len) < 0 ||
            cts(o->dec, back, c, len) < 0 || mac(o, o->ki, back, len, NULL, 0, check) < 0 ||
            CRYPTO_memcmp(tag, check, tl) != 0)
            return -1;
    }
    return 0;
}

int bench_ossl_loop(int enctype, negio_level level, size_t size, double seconds,
                    bench_gss_result *r, char *err, size_t cap)
{
    ossl o;
    memset(r, 0, sizeof(*r));
    if (ossl_init(&o, enctype) < 0)
        return snprintf(err, cap, "OpenSSL has no AES-CTS/HMAC for enctype %d", enctype), -1;
    /* the token header (16 bytes) follows the message in both checksummed and sealed data */
    size_t len = 16 + size + 16;
    unsigned char *plain = bench_payload(len), *c = malloc(len), *back = malloc(len);
    if (plain == NULL || c == NULL || back == NULL) {
        bench_free_payload(plain);
        free(c);
        free(back);
        ossl_free(&o);
        return snprintf(err, cap, "out of memory"), -1;
    }
    int64_t c0 = bench_thread_cpu_ns(), w0 = bench_now_ns(), limit = (int64_t)(seconds * 1e9);
    long n = 0;
    int rc = 0;
    do {
        for (int k = 0; k < 8 && rc == 0; k++, n++) {
            if (level == NEGIO_LEVEL_SEAL) {
                rc = seal_once(&o, plain, len, c, back);
                if (rc == 0 && memcmp(back + 16, plain + 16, size) != 0)
                    rc = -1;
            } else {
                unsigned char tag[32], check[32];
                /* the message, then the header */
                rc = mac(&o, o.kc, plain + 16, size, plain + 16 + size, 16, tag) < 0 ||
                             mac(&o, o.kc, plain + 16, size, plain + 16 + size, 16, check) < 0 ||
                             CRYPTO_memcmp(tag, check, profiles[o.p].tag_len) != 0
                         ? -1
                         : 0;
            }
        }
    } while (rc == 0 && bench_thread_cpu_ns() - c0 < limit);
    if (rc < 0)
        snprintf(err, cap, "OpenSSL %s failed", level == NEGIO_LEVEL_SEAL ? "seal" : "sign");
    r->cpu_s = (double)(bench_thread_cpu_ns() - c0) / 1e9;
    r->wall_s = (double)(bench_now_ns() - w0) / 1e9;
    r->msgs = (double)n;
    r->bytes = (double)n * (double)size;
    bench_free_payload(plain);
    free(c);
    free(back);
    ossl_free(&o);
    return rc;
}
