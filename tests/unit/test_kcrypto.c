/* Unit: the Kerberos encryption of the per-message fast path (src/gss/kcrypto.c) gives the
 * published answers and the same bytes as MIT's own crypto library.
 *  - RFC 3962 appendix B: AES-CTS with the "chicken teriyaki" key over 17 to 64 bytes (the CS3
 *    swap of the last two blocks, full or not), and string-to-key (PBKDF2, then RFC 3961's DK with
 *    the constant "kerberos": key derivation through OpenSSL's KRB5KDF);
 *  - RFC 8009 appendix A: key derivation (Kc, Ke, Ki for usage 2), string-to-key, the sample
 *    encryptions (decrypted, then encrypted again with the confounder they carry: the same
 *    bytes), and the sample checksums, for both enctypes;
 *  - against libk5crypto (krb5_c_encrypt, krb5_c_decrypt, krb5_c_make_checksum), for the four
 *    enctypes with random keys, the four GSS key usages (RFC 4121 section 2) and plaintexts from
 *    0 to 70 bytes and a few large ones: what one side encrypts the other decrypts, checksums are
 *    equal, and any flipped bit of a ciphertext is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <krb5.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gss/kcrypto.h"

/* Decodes HEX (spaces allowed) into OUT; returns the length. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void expect_hex(const uint8_t *got, size_t len, const char *hex)
{
    uint8_t want[256];
    size_t n = unhex(hex, want, sizeof(want));
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
}

static const negio__kc_type *type(int32_t enctype)
{
    const negio__kc_type *t = negio__kc_type_of(enctype);
    assert_non_null(t);
    return t;
}

/* ---- RFC 3962 appendix B ---------------------------------------------------------------- */

static void rfc3962_cts_vectors(void **state)
{
    (void)state;
    static const char input[] = "I would like the General Gau's Chicken, please, and wonton soup.";
    static const struct {
        size_t len;
        const char *out;
    } v[] = {
        {17, "c6353568f2bf8cb4d8a580362da7ff7f97"},
        {31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"},
        {32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"},
        {47, "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e"
             "39312523a78662d5be7fcbcc98ebf5"},
        {48, "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd8"
             "39312523a78662d5be7fcbcc98ebf5a8"},
        {64, "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a8"
             "4807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8"},
    };
    const negio__kc_type *t = type(17);
    const uint8_t *ke = (const uint8_t *)"chicken teriyaki", ki[16] = {0};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        negio__kc_key enc, dec;
        assert_int_equal(negio__kc_key_init_raw(&enc, t, ke, ki, 1), 0);
        assert_int_equal(negio__kc_key_init_raw(&dec, t, ke, ki, 0), 0);
        EVP_MD_CTX *work = EVP_MD_CTX_new();
        uint8_t buf[64], tag[NEGIO__KC_MAX_TAG], back[64];
        memcpy(buf, input, v[i].len);
        assert_int_equal(negio__kc_encrypt(&enc, work, buf, v[i].len, tag), 0);
        expect_hex(buf, v[i].len, v[i].out);
        /* and back: the tag (over the plaintext for RFC 3962) is right by construction */
        assert_int_equal(negio__kc_decrypt(&dec, work, buf, v[i].len, tag, back), 0);
        assert_memory_equal(back, input, v[i].len);
        EVP_MD_CTX_free(work);
        negio__kc_key_clear(&enc);
        negio__kc_key_clear(&dec);
    }
}

/* RFC 3961 section 6.1 / RFC 3962 section 4 (RFC 8009 section 4): base key =
 * DK(PBKDF2(password, salt, iterations), "kerberos"), with the salt prefixed by the enctype's
 * name and a zero byte for RFC 8009. */
static void str2key(const negio__kc_type *t, const char *pw, const uint8_t *salt, size_t slen,
                    int iter, uint8_t *out)
{
    uint8_t tkey[32], saltp[128];
    size_t n = 0;
    if (t->sha2) {
        memcpy(saltp, t->name, strlen(t->name) + 1);
        n = strlen(t->name) + 1;
    }
    memcpy(saltp + n, salt, slen);
    n += slen;
    const EVP_MD *md = t->sha2 ? (t->key_len == 16 ? EVP_sha256() : EVP_sha384()) : EVP_sha1();
    assert_int_equal(
        PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), saltp, (int)n, iter, md, (int)t->key_len, tkey), 1);
    assert_int_equal(
        negio__kc_derive_constant(t, tkey, (const uint8_t *)"kerberos", 8, out, t->key_len), 0);
}

static void rfc3962_string_to_key_vectors(void **state)
{
    (void)state;
    static const struct {
        int32_t enctype;
        int iter;
        const char *salt; /* hex */
        const char *key;
    } v[] = {
        {17, 1, "415448454e412e4d49542e4544557261656275726e", "42263c6e89f4fc28b8df68ee09799f15"},
        {18, 1, "415448454e412e4d49542e4544557261656275726e",
         "fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161"},
        {17, 2, "415448454e412e4d49542e4544557261656275726e", "c651bf29e2300ac27fa469d693bdda13"},
        {18, 2, "415448454e412e4d49542e4544557261656275726e",
         "a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff"},
        {17, 1200, "415448454e412e4d49542e4544557261656275726e",
         "4c01cd46d632d01e6dbe230a01ed642a"},
        {18, 1200, "415448454e412e4d49542e4544557261656275726e",
         "55a6ac740ad17b4846941051e1e8b0a7548d93b0ab30a8bc3ff16280382b8c2a"},
        {17, 5, "1234567878563412", "e9b23d52273747dd5c35cb55be619d8e"},
        {18, 5, "1234567878563412",
         "97a4e786be20d81a382d5ebc96d5909cabcdadc87ca48f574504159f16c36e31"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const negio__kc_type *t = type(v[i].enctype);
        uint8_t salt[64], key[32];
        size_t slen = unhex(v[i].salt, salt, sizeof(salt));
        str2key(t, "password", salt, slen, v[i].iter, key);
        expect_hex(key, t->key_len, v[i].key);
    }
}

/* ---- RFC 8009 appendix A ---------------------------------------------------------------- */

static const char *const base128 = "3705d96080c17728a0e800eab6e0d23c";
static const char *const base256 =
    "6d404d37faf79f9df0d33568d320669800eb4836472ea8a026d16b7182460c52";

static void rfc8009_key_derivation_vectors(void **state)
{
    (void)state;
    static const struct {
        int32_t enctype;
        uint8_t kind;
        const char *key;
    } v[] = {
        {19, NEGIO__KC_KC, "b31a018a48f54776f403e9a396325dc3"},
        {19, NEGIO__KC_KE, "9b197dd1e8c5609d6e67c3e37c62c72e"},
        {19, NEGIO__KC_KI, "9fda0e56ab2d85e1569a688696c26a6c"},
        {20, NEGIO__KC_KC, "ef5718be86cc84963d8bbb5031e9f5c4ba41f28faf69e73d"},
        {20, NEGIO__KC_KE, "56ab22bee63d82d7bc5227f6773f8ea7a5eb1c825160c38312980c442e5c7e49"},
        {20, NEGIO__KC_KI, "69b16514e3cd8e56b82010d5c73012b622c4d00ffc23ed1f"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const negio__kc_type *t = type(v[i].enctype);
        uint8_t base[32], out[32];
        unhex(t->key_len == 16 ? base128 : base256, base, sizeof(base));
        assert_int_equal(negio__kc_derive(t, base, 2, v[i].kind, out), 0);
        expect_hex(out, v[i].kind == NEGIO__KC_KE ? t->key_len : t->mac_key_len, v[i].key);
    }
}

static void rfc8009_string_to_key_vectors(void **state)
{
    (void)state;
    uint8_t salt[64], key[32];
    size_t slen = unhex("10df9dd783e5bc8acea1730e74355f61", salt, sizeof(salt));
    memcpy(salt + slen, "ATHENA.MIT.EDUraeburn", 21);
    slen += 21;
    str2key(type(19), "password", salt, slen, 32768, key);
    expect_hex(key, 16, "089bca48b105ea6ea77ca5d2f39dc5e7");
    str2key(type(20), "password", salt, slen, 32768, key);
    expect_hex(key, 32, "45bd806dbf6a833a9cffc1c94589a222367a79bc21c413718906e9f578a78467");
}

/* Each sample encryption is decrypted with the base key and usage 2; its first block is the
 * confounder the RFC used, so encrypting the same plaintext with it must give the same bytes. */
static void rfc8009_sample_encryptions(void **state)
{
    (void)state;
    static const struct {
        int32_t enctype;
        size_t plain_len; /* the plaintext is 00 01 02 ... */
        const char *cipher;
    } v[] = {
        {19, 0, "ef85fb890bb8472f4dab20394dca781dad877eda39d50c870c0d5a0a8e48c718"},
        {19, 6, "84d7f30754ed987bab0bf3506beb09cfb55402cef7e6877ce99e247e52d16ed4421dfdf8976c"},
        {19, 16,
         "3517d640f50ddc8ad3628722b3569d2ae07493fa8263254080ea65c1008e8fc2"
         "95fb4852e7d83e1e7c48c37eebe6b0d3"},
        {19, 21,
         "720f73b18d9859cd6ccb4346115cd336c70f58edc0c4437c5573544c31c813bc"
         "e1e6d072c186b39a413c2f92ca9b8334a287ffcbfc"},
        {20, 0, "41f53fa5bfe7026d91faf9be959195a058707273a96a40f0a01960621ac612748b9bbfbe7eb4ce3c"},
        {20, 6,
         "4ed7b37c2bcac8f74f23c1cf07e62bc7b75fb3f637b9f559c7f664f69eab7b60"
         "92237526ea0d1f61cb20d69d10f2"},
        {20, 16,
         "bc47ffec7998eb91e8115cf8d19dac4bbbe2e163e87dd37f49beca92027764f6"
         "8cf51f14d798c2273f35df574d1f932e40c4ff255b36a266"},
        {20, 21,
         "40013e2df58e8751957d2878bcd2d6fe101ccfd556cb1eae79db3c3ee86429f2"
         "b2a602ac86fef6ecb647d6295fae077a1feb517508d2c16b4192e01f62"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const negio__kc_type *t = type(v[i].enctype);
        uint8_t base[32], c[128], plain[128], again[128], tag[NEGIO__KC_MAX_TAG];
        unhex(t->key_len == 16 ? base128 : base256, base, sizeof(base));
        size_t clen = unhex(v[i].cipher, c, sizeof(c));
        size_t body = clen - t->tag_len;
        assert_int_equal(body, 16 + v[i].plain_len);
        negio__kc_key dec, enc;
        assert_int_equal(negio__kc_key_init(&dec, t, base, 2, 0), 0);
        assert_int_equal(negio__kc_key_init(&enc, t, base, 2, 1), 0);
        EVP_MD_CTX *work = EVP_MD_CTX_new();
        assert_int_equal(negio__kc_decrypt(&dec, work, c, body, c + body, plain), 0);
        for (size_t j = 0; j < v[i].plain_len; j++)
            assert_int_equal(plain[16 + j], j);
        memcpy(again, plain, body);
        assert_int_equal(negio__kc_encrypt(&enc, work, again, body, tag), 0);
        assert_memory_equal(again, c, body);
        assert_memory_equal(tag, c + body, t->tag_len);
        /* the tag decides, before any decryption */
        c[clen - 1] ^= 1;
        assert_int_equal(negio__kc_decrypt(&dec, work, c, body, c + body, plain), -1);
        EVP_MD_CTX_free(work);
        negio__kc_key_clear(&dec);
        negio__kc_key_clear(&enc);
    }
}

static void rfc8009_sample_checksums(void **state)
{
    (void)state;
    uint8_t msg[21], base[32], tag[NEGIO__KC_MAX_TAG];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    static const struct {
        int32_t enctype;
        const char *sum;
    } v[] = {
        {19, "d78367186643d67b411cba9139fc1dee"},
        {20, "45ee791567eefca37f4ac1e0222de80d43c3bfa06699672a"},
    };
    for (size_t i = 0; i < 2; i++) {
        const negio__kc_type *t = type(v[i].enctype);
        unhex(t->key_len == 16 ? base128 : base256, base, sizeof(base));
        negio__kc_mac kc;
        assert_int_equal(negio__kc_mac_init_checksum(&kc, t, base, 2), 0);
        EVP_MD_CTX *work = EVP_MD_CTX_new();
        /* fed in two pieces: the fast path checksums pieces where they lie */
        assert_int_equal(negio__kc_mac_start(&kc, work), 0);
        assert_int_equal(negio__kc_mac_update(work, msg, 5), 0);
        assert_int_equal(negio__kc_mac_update(work, msg + 5, sizeof(msg) - 5), 0);
        assert_int_equal(negio__kc_mac_finish(&kc, work, tag), 0);
        expect_hex(tag, t->tag_len, v[i].sum);
        EVP_MD_CTX_free(work);
        negio__kc_mac_clear(&kc);
    }
}

/* ---- against libk5crypto ---------------------------------------------------------------- */

static krb5_cksumtype cksumtype_of(int32_t enctype)
{
    switch (enctype) {
    case 17:
        return CKSUMTYPE_HMAC_SHA1_96_AES128;
    case 18:
        return CKSUMTYPE_HMAC_SHA1_96_AES256;
    case 19:
        return CKSUMTYPE_HMAC_SHA256_128_AES128;
    default:
        return CKSUMTYPE_HMAC_SHA384_192_AES256;
    }
}

static const size_t big_sizes[] = {255, 256, 1000, 4096, 16384, 65535, 100003};

static void one_size(const negio__kc_type *t, krb5_keyblock *kb, uint32_t usage, size_t len,
                     EVP_MD_CTX *work, int flips)
{
    size_t total = 16 + len;
    uint8_t *plain = malloc(total), *buf = malloc(total + NEGIO__KC_MAX_TAG), *back = malloc(total);
    assert_non_null(plain);
    assert_non_null(buf);
    assert_non_null(back);
    assert_int_equal(RAND_bytes(plain, (int)total), 1);
    negio__kc_key enc, dec;
    assert_int_equal(negio__kc_key_init(&enc, t, kb->contents, usage, 1), 0);
    assert_int_equal(negio__kc_key_init(&dec, t, kb->contents, usage, 0), 0);

    /* mine -> MIT */
    memcpy(buf, plain, total);
    assert_int_equal(negio__kc_encrypt(&enc, work, buf, total, buf + total), 0);
    krb5_enc_data ed = {
        .enctype = t->enctype,
        .ciphertext = {.data = (char *)buf, .length = (unsigned)(total + t->tag_len)}};
    krb5_data out = {.data = (char *)back, .length = (unsigned)total};
    assert_int_equal(krb5_c_decrypt(NULL, kb, usage, NULL, &ed, &out), 0);
    assert_int_equal(out.length, len);
    if (len > 0)
        assert_memory_equal(back, plain + 16, len);

    /* MIT -> mine */
    krb5_data in = {.data = (char *)plain + 16, .length = (unsigned)len};
    size_t elen = 0;
    assert_int_equal(krb5_c_encrypt_length(NULL, t->enctype, len, &elen), 0);
    assert_int_equal(elen, total + t->tag_len);
    ed.ciphertext.data = (char *)buf;
    ed.ciphertext.length = (unsigned)elen;
    assert_int_equal(krb5_c_encrypt(NULL, kb, usage, NULL, &in, &ed), 0);
    assert_int_equal(negio__kc_decrypt(&dec, work, buf, total, buf + total, back), 0);
    if (len > 0)
        assert_memory_equal(back + 16, plain + 16, len);

    /* every flipped bit of a short ciphertext, and one in a long one, is refused */
    size_t bits = flips ? elen * 8 : 1;
    for (size_t b = 0; b < bits; b++) {
        size_t at = flips ? b / 8 : elen / 2;
        buf[at] ^= (uint8_t)(1u << (b % 8));
        assert_int_equal(negio__kc_decrypt(&dec, work, buf, total, buf + total, back), -1);
        buf[at] ^= (uint8_t)(1u << (b % 8));
    }

    /* checksums: the same bytes */
    negio__kc_mac kc;
    uint8_t tag[NEGIO__KC_MAX_TAG];
    assert_int_equal(negio__kc_mac_init_checksum(&kc, t, kb->contents, usage), 0);
    assert_int_equal(negio__kc_mac_start(&kc, work), 0);
    assert_int_equal(negio__kc_mac_update(work, plain, total), 0);
    assert_int_equal(negio__kc_mac_finish(&kc, work, tag), 0);
    krb5_checksum sum;
    krb5_data whole = {.data = (char *)plain, .length = (unsigned)total};
    assert_int_equal(krb5_c_make_checksum(NULL, cksumtype_of(t->enctype), kb, usage, &whole, &sum),
                     0);
    assert_int_equal(sum.length, t->tag_len);
    assert_memory_equal(sum.contents, tag, t->tag_len);
    krb5_free_checksum_contents(NULL, &sum);
    negio__kc_mac_clear(&kc);

    negio__kc_key_clear(&enc);
    negio__kc_key_clear(&dec);
    free(plain);
    free(buf);
    free(back);
}

static void the_same_bytes_as_libk5crypto(void **state)
{
    (void)state;
    static const int32_t enctypes[] = {17, 18, 19, 20};
    EVP_MD_CTX *work = EVP_MD_CTX_new();
    for (size_t e = 0; e < 4; e++) {
        const negio__kc_type *t = type(enctypes[e]);
        krb5_keyblock *kb = NULL;
        krb5_keyblock tmp;
        assert_int_equal(krb5_c_make_random_key(NULL, enctypes[e], &tmp), 0);
        assert_int_equal(krb5_copy_keyblock(NULL, &tmp, &kb), 0);
        krb5_free_keyblock_contents(NULL, &tmp);
        assert_int_equal(kb->length, t->key_len);
        for (uint32_t usage = 22; usage <= 25; usage++) {
            for (size_t len = 0; len <= 70; len++)
                one_size(t, kb, usage, len, work, len <= 17 || len == 33);
            for (size_t i = 0; i < sizeof(big_sizes) / sizeof(big_sizes[0]); i++)
                one_size(t, kb, usage, big_sizes[i], work, 0);
        }
        krb5_free_keyblock(NULL, kb);
    }
    EVP_MD_CTX_free(work);
}

static void confounders_differ(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    assert_int_equal(negio__kc_confounder(a), 0);
    for (int i = 0; i < 100; i++) { /* across refills of the pool */
        assert_int_equal(negio__kc_confounder(b), 0);
        assert_memory_not_equal(a, b, 16);
        memcpy(a, b, 16);
    }
}

static void only_the_aes_enctypes_are_known(void **state)
{
    (void)state;
    static const int32_t others[] = {0, 1, 3, 16, 23, 24, 25, 26, 21, -1};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_null(negio__kc_type_of(others[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3962_cts_vectors),
        cmocka_unit_test(rfc3962_string_to_key_vectors),
        cmocka_unit_test(rfc8009_key_derivation_vectors),
        cmocka_unit_test(rfc8009_string_to_key_vectors),
        cmocka_unit_test(rfc8009_sample_encryptions),
        cmocka_unit_test(rfc8009_sample_checksums),
        cmocka_unit_test(the_same_bytes_as_libk5crypto),
        cmocka_unit_test(confounders_differ),
        cmocka_unit_test(only_the_aes_enctypes_are_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
