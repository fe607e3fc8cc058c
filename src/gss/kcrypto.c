/* Kerberos encryption for the AES enctypes (RFC 3961 simplified profile, RFC 3962, RFC 8009) on
 * OpenSSL 3 EVP; see kcrypto.h. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "gss/kcrypto.h"

static const negio__kc_type types[] = {
    {17, "aes128-cts-hmac-sha1-96", 16, 16, 12, 0, "AES-128-CBC-CTS", "SHA1"},
    {18, "aes256-cts-hmac-sha1-96", 32, 32, 12, 0, "AES-256-CBC-CTS", "SHA1"},
    {19, "aes128-cts-hmac-sha256-128", 16, 16, 16, 1, "AES-128-CBC-CTS", "SHA256"},
    {20, "aes256-cts-hmac-sha384-192", 32, 24, 24, 1, "AES-256-CBC-CTS", "SHA384"},
};

/* The cipher state every Kerberos encryption starts from (RFC 3961 section 5.3: the default
 * initial cipher state is all zeros); RFC 8009 also puts it in front of the ciphertext its tag
 * covers. */
static const uint8_t zero_iv[16];

const negio__kc_type *negio__kc_type_of(int32_t enctype)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].enctype == enctype)
            return &types[i];
    return NULL;
}

/* RFC 3961 section 5.1: DK(base, constant) = random-to-key(DR(base, constant)); for AES the
 * random-to-key function is the identity, and OpenSSL's KRB5KDF is DR (n-fold of the constant to
 * a block, then the cipher in CBC mode from a zero state, as many blocks as the key needs). */
static int dk(const negio__kc_type *t, const uint8_t *base, const uint8_t *constant, size_t clen,
              uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KRB5KDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return -1;
    /* the key length selects the cipher; KRB5KDF runs it in CBC mode itself */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER,
                                         t->key_len == 16 ? "AES-128-CBC" : "AES-256-CBC", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)base, t->key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_CONSTANT, (void *)constant, clen),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* RFC 8009 section 3: KDF-HMAC-SHA2(key, label, k) = k-truncate(HMAC(key, 00000001 | label | 00 |
 * k)), k in bits as 4 bytes big-endian (SP 800-108 counter mode; every key here fits in one
 * HMAC output, so the counter never passes 1). */
static int kdf_hmac_sha2(const negio__kc_type *t, const uint8_t *base, const uint8_t *label,
                         size_t llen, uint8_t *out, size_t out_len)
{
    uint8_t msg[4 + 64 + 1 + 4], full[64];
    size_t n = 0, got = 0;
    if (llen > 64 || out_len > 48)
        return -1;
    msg[n++] = 0, msg[n++] = 0, msg[n++] = 0, msg[n++] = 1;
    memcpy(msg + n, label, llen);
    n += llen;
    msg[n++] = 0;
    uint32_t bits = (uint32_t)out_len * 8;
    msg[n++] = (uint8_t)(bits >> 24), msg[n++] = (uint8_t)(bits >> 16);
    msg[n++] = (uint8_t)(bits >> 8), msg[n++] = (uint8_t)bits;
    int ok = EVP_Q_mac(NULL, "HMAC", NULL, t->digest, NULL, base, t->key_len, msg, n, full,
                       sizeof(full), &got) != NULL &&
             got >= out_len;
    if (ok)
        memcpy(out, full, out_len);
    OPENSSL_cleanse(full, sizeof(full));
    return ok ? 0 : -1;
}

int negio__kc_derive_constant(const negio__kc_type *t, const uint8_t *base, const uint8_t *constant,
                              size_t clen, uint8_t *out, size_t out_len)
{
    return t->sha2 ? kdf_hmac_sha2(t, base, constant, clen, out, out_len)
                   : dk(t, base, constant, clen, out, out_len);
}

int negio__kc_derive(const negio__kc_type *t, const uint8_t *base, uint32_t usage, uint8_t kind,
                     uint8_t *out)
{
    /* RFC 3961 section 5.3: the usage as 4 bytes big-endian, then the kind */
    uint8_t c[5] = {(uint8_t)(usage >> 24), (uint8_t)(usage >> 16), (uint8_t)(usage >> 8),
                    (uint8_t)usage, kind};
    size_t len = kind == NEGIO__KC_KE ? t->key_len : t->mac_key_len;
    return negio__kc_derive_constant(t, base, c, sizeof(c), out, len);
}

/* ---- HMAC ------------------------------------------------------------------------------- */

/* A hash state that has absorbed KEY padded to the block and XORed with PAD (RFC 2104). */
static EVP_MD_CTX *pad_state(const EVP_MD *md, const uint8_t *key, size_t len, uint8_t pad)
{
    uint8_t block[128];
    int bs = EVP_MD_get_block_size(md);
    if (bs <= 0 || (size_t)bs > sizeof(block) || len > (size_t)bs)
        return NULL;
    memset(block, pad, (size_t)bs);
    for (size_t i = 0; i < len; i++)
        block[i] ^= key[i];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL &&
        (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, block, (size_t)bs) != 1)) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    OPENSSL_cleanse(block, sizeof(block));
    return ctx;
}

int negio__kc_mac_init(negio__kc_mac *m, const negio__kc_type *t, const uint8_t *key, size_t len)
{
    memset(m, 0, sizeof(*m));
    EVP_MD *md = EVP_MD_fetch(NULL, t->digest, NULL);
    if (md == NULL)
        return -1;
    m->type = t;
    m->inner = pad_state(md, key, len, 0x36);
    m->outer = pad_state(md, key, len, 0x5c);
    EVP_MD_free(md); /* each state holds its own reference */
    if (m->inner == NULL || m->outer == NULL) {
        negio__kc_mac_clear(m);
        return -1;
    }
    return 0;
}

int negio__kc_mac_init_checksum(negio__kc_mac *m, const negio__kc_type *t, const uint8_t *base,
                                uint32_t usage)
{
    uint8_t kc[NEGIO__KC_MAX_KEY];
    int rc = negio__kc_derive(t, base, usage, NEGIO__KC_KC, kc);
    if (rc == 0)
        rc = negio__kc_mac_init(m, t, kc, t->mac_key_len);
    else
        memset(m, 0, sizeof(*m));
    OPENSSL_cleanse(kc, sizeof(kc));
    return rc;
}

void negio__kc_mac_clear(negio__kc_mac *m)
{
    EVP_MD_CTX_free(m->inner);
    EVP_MD_CTX_free(m->outer);
    memset(m, 0, sizeof(*m));
}

int negio__kc_mac_start(const negio__kc_mac *m, EVP_MD_CTX *work)
{
    return EVP_MD_CTX_copy_ex(work, m->inner) == 1 ? 0 : -1;
}

int negio__kc_mac_update(EVP_MD_CTX *work, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    return EVP_DigestUpdate(work, data, len) == 1 ? 0 : -1;
}

int negio__kc_mac_finish(const negio__kc_mac *m, EVP_MD_CTX *work, uint8_t *tag)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    int ok = EVP_DigestFinal_ex(work, h, &n) == 1 && EVP_MD_CTX_copy_ex(work, m->outer) == 1 &&
             EVP_DigestUpdate(work, h, n) == 1 && EVP_DigestFinal_ex(work, h, &n) == 1 &&
             n >= m->type->tag_len;
    if (ok)
        memcpy(tag, h, m->type->tag_len); /* truncated: RFC 3962 section 6, RFC 8009 section 5 */
    OPENSSL_cleanse(h, sizeof(h));
    return ok ? 0 : -1;
}

/* ---- encryption ------------------------------------------------------------------------- */

int negio__kc_key_init_raw(negio__kc_key *k, const negio__kc_type *t, const uint8_t *ke,
                           const uint8_t *ki, int encrypt)
{
    memset(k, 0, sizeof(*k));
    k->type = t;
    k->encrypt = encrypt != 0;
    /* CS3: the last two blocks are always swapped, also when the last one is full (RFC 3962
     * section 5, "ciphertext stealing as in Kerberos") */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_CIPHER_PARAM_CTS_MODE, OSSL_CIPHER_CTS_MODE_CS3, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, t->cipher, NULL);
    k->cipher = c != NULL ? EVP_CIPHER_CTX_new() : NULL;
    int ok = k->cipher != NULL &&
             EVP_CipherInit_ex2(k->cipher, c, ke, zero_iv, k->encrypt, params) == 1 &&
             negio__kc_mac_init(&k->integrity, t, ki, t->mac_key_len) == 0;
    EVP_CIPHER_free(c); /* the context holds its own reference */
    if (!ok) {
        negio__kc_key_clear(k);
        return -1;
    }
    return 0;
}

int negio__kc_key_init(negio__kc_key *k, const negio__kc_type *t, const uint8_t *base,
                       uint32_t usage, int encrypt)
{
    uint8_t ke[NEGIO__KC_MAX_KEY], ki[NEGIO__KC_MAX_KEY];
    int rc = -1;
    memset(k, 0, sizeof(*k));
    if (negio__kc_derive(t, base, usage, NEGIO__KC_KE, ke) == 0 &&
        negio__kc_derive(t, base, usage, NEGIO__KC_KI, ki) == 0)
        rc = negio__kc_key_init_raw(k, t, ke, ki, encrypt);
    OPENSSL_cleanse(ke, sizeof(ke));
    OPENSSL_cleanse(ki, sizeof(ki));
    return rc;
}

void negio__kc_key_clear(negio__kc_key *k)
{
    EVP_CIPHER_CTX_free(k->cipher);
    negio__kc_mac_clear(&k->integrity);
    memset(k, 0, sizeof(*k));
}

/* One CTS pass over LEN bytes from the zero state: OpenSSL's CTS modes take a message in a
 * single update. */
static int cts(negio__kc_key *k, uint8_t *out, const uint8_t *in, size_t len)
{
    int n = 0;
    if (len < 16 || len > (size_t)INT32_MAX ||
        EVP_CipherInit_ex2(k->cipher, NULL, NULL, zero_iv, -1, NULL) != 1 ||
        EVP_CipherUpdate(k->cipher, out, &n, in, (int)len) != 1 || (size_t)n != len)
        return -1;
    return 0;
}

/* The integrity tag: RFC 3962 (RFC 3961 section 5.3) over the confounder and plaintext, RFC 8009
 * section 5 over the cipher state and the ciphertext. */
static int tag_of(negio__kc_key *k, EVP_MD_CTX *work, const uint8_t *data, size_t len, uint8_t *tag)
{
    if (negio__kc_mac_start(&k->integrity, work) < 0 ||
        (k->type->sha2 && negio__kc_mac_update(work, zero_iv, sizeof(zero_iv)) < 0) ||
        negio__kc_mac_update(work, data, len) < 0)
        return -1;
    return negio__kc_mac_finish(&k->integrity, work, tag);
}

int negio__kc_encrypt(negio__kc_key *k, EVP_MD_CTX *work, uint8_t *buf, size_t len, uint8_t *tag)
{
    if (!k->encrypt || len < 16)
        return -1;
    if (!k->type->sha2 && tag_of(k, work, buf, len, tag) < 0)
        return -1;
    if (cts(k, buf, buf, len) < 0)
        return -1;
    if (k->type->sha2 && tag_of(k, work, buf, len, tag) < 0)
        return -1;
    return 0;
}

int negio__kc_decrypt(negio__kc_key *k, EVP_MD_CTX *work, const uint8_t *c, size_t len,
                      const uint8_t *tag, uint8_t *out)
{
    uint8_t mine[NEGIO__KC_MAX_TAG];
    size_t tl = k->type->tag_len;
    if (k->encrypt || len < 16)
        return -1;
    if (k->type->sha2 && (tag_of(k, work, c, len, mine) < 0 || CRYPTO_memcmp(mine, tag, tl) != 0))
        return -1;
    if (cts(k, out, c, len) < 0) {
        OPENSSL_cleanse(out, len);
        return -1;
    }
    if (!k->type->sha2 &&
        (tag_of(k, work, out, len, mine) < 0 || CRYPTO_memcmp(mine, tag, tl) != 0)) {
        OPENSSL_cleanse(out, len);
        return -1;
    }
    return 0;
}

/* ---- confounders ------------------------------------------------------------------------ */

#define POOL_BYTES 512
static _Thread_local uint8_t pool[POOL_BYTES];
static _Thread_local size_t pool_left;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* In a child after fork(): the thread that forked is the child's only one, and its pool is a copy
 * of the parent's, which the parent will go on using. */
static void pool_forget(void)
{
    OPENSSL_cleanse(pool, sizeof(pool));
    pool_left = 0;
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

int negio__kc_confounder(uint8_t *out)
{
    if (pool_left < NEGIO__KC_CONFOUNDER) {
        pthread_once(&fork_once, register_fork_handler);
        if (RAND_bytes(pool, sizeof(pool)) != 1)
            return -1;
        pool_left = sizeof(pool);
    }
    uint8_t *p = pool + sizeof(pool) - pool_left;
    memcpy(out, p, NEGIO__KC_CONFOUNDER);
    OPENSSL_cleanse(p, NEGIO__KC_CONFOUNDER); /* each byte is handed out once */
    pool_left -= NEGIO__KC_CONFOUNDER;
    return 0;
}
