/* The test PKI (certs.h), built with the OpenSSL 3 API: no openssl command, no config file. */
#include "support/certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DIR_PREFIX "/tmp/negio-certs-"
#define HOUR 3600L
#define DAY (24 * HOUR)
#define NO_ISSUER -1 /* self-signed */

typedef enum role { ROLE_CA, ROLE_SERVER, ROLE_CLIENT } role;

typedef struct spec {
    const char *stem; /* file names: STEM.pem and STEM-key.pem */
    const char *cn;
    role role;
    const char *san; /* subjectAltName, NULL for none */
    long not_before; /* seconds from now */
    long not_after;
    int issuer; /* index into SPECS of the signer (made earlier), or NO_ISSUER */
    size_t cert_off, key_off;
} spec;

#define LOCALHOST_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"
#define PATHS(f) offsetof(test_certs, f##_cert), offsetof(test_certs, f##_key)

/* Issuers come before what they sign. */
static const spec SPECS[] = {
    {"ca", "negio test CA", ROLE_CA, NULL, -3 * DAY, 30 * DAY, NO_ISSUER, PATHS(ca)},
    {"other-ca", "negio other test CA", ROLE_CA, NULL, -3 * DAY, 30 * DAY, NO_ISSUER,
     PATHS(other_ca)},
    {"server", "localhost", ROLE_SERVER, LOCALHOST_SAN, -HOUR, 30 * DAY, 0, PATHS(server)},
    {"wrong-host", "wrong.example", ROLE_SERVER, "DNS:wrong.example", -HOUR, 30 * DAY, 0,
     PATHS(wrong_host)},
    {"expired", "localhost", ROLE_SERVER, LOCALHOST_SAN, -2 * DAY, -DAY, 0, PATHS(expired)},
    {"self-signed", "localhost", ROLE_SERVER, LOCALHOST_SAN, -HOUR, 30 * DAY, NO_ISSUER,
     PATHS(self_signed)},
    {"client", "alice", ROLE_CLIENT, NULL, -HOUR, 30 * DAY, 0, PATHS(client)},
    {"other-client", "mallory", ROLE_CLIENT, NULL, -HOUR, 30 * DAY, 1, PATHS(other_client)},
    {"mitm", "localhost", ROLE_SERVER, LOCALHOST_SAN, -HOUR, 30 * DAY, 0, PATHS(mitm)},
};
#define NSPECS (sizeof(SPECS) / sizeof(SPECS[0]))

static char *field(test_certs *c, size_t off)
{
    return (char *)c + off;
}

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "test certs: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    ERR_print_errors_fp(stderr);
    return -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return fail("extension", value);
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : fail("add extension", value);
}

/* A positive 128-bit serial, random so that two runs never issue the same issuer/serial pair
 * (RFC 5280 section 4.1.2.2: at most 20 octets, positive). */
static int set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return fail("serial", NULL);
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : fail("serial", NULL);
}

static X509 *make_cert(const spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int ok =
        x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) && set_serial(x) == 0 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1,
                                   0) &&
        X509_set_subject_name(x, name) &&
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
        X509_gmtime_adj(X509_getm_notBefore(x), s->not_before) != NULL &&
        X509_gmtime_adj(X509_getm_notAfter(x), s->not_after) != NULL && X509_set_pubkey(x, key);
    X509_NAME_free(name);
    if (!ok) {
        fail("certificate fields", s->stem);
        X509_free(x);
        return NULL;
    }
    X509 *signer = issuer ? issuer : x;
    /* the subject key identifier first: the authority key identifier of a self-signed
     * certificate is read from it */
    ok = add_ext(x, signer, NID_subject_key_identifier, "hash") == 0 &&
         add_ext(x, signer, NID_authority_key_identifier, "keyid:always") == 0;
    switch (s->role) {
    case ROLE_CA:
        ok = ok && add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign") == 0;
        break;
    case ROLE_SERVER:
    case ROLE_CLIENT:
        ok = ok && add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(x, signer, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(x, signer, NID_ext_key_usage,
                     s->role == ROLE_SERVER ? "serverAuth" : "clientAuth") == 0;
        break;
    }
    if (ok && s->san != NULL)
        ok = add_ext(x, signer, NID_subject_alt_name, s->san) == 0;
    if (ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        fail("sign", s->stem);
        ok = 0;
    }
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Creates PATH (it must not exist) with MODE and writes a PEM object to it. */
static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return fail(path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return fail(path, strerror(errno));
    }
    int ok =
        cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : fail("write", path);
}

static int set_path(char *dst, const char *dir, const char *stem, const char *suffix)
{
    int n = snprintf(dst, TEST_CERTS_PATH, "%s/%s%s", dir, stem, suffix);
    return n > 0 && n < TEST_CERTS_PATH ? 0 : fail("path too long", dir);
}

int test_certs_make(test_certs *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->dir, sizeof(out->dir), DIR_PREFIX "XXXXXX");
    if (mkdtemp(out->dir) == NULL) {
        fail("mkdtemp", strerror(errno));
        memset(out, 0, sizeof(*out));
        return -1;
    }

    char dir[sizeof(out->dir)]; /* a copy: the paths are written into the same struct */
    memcpy(dir, out->dir, sizeof(dir));
    X509 *certs[NSPECS] = {0};
    EVP_PKEY *keys[NSPECS] = {0};
    int rc = 0;
    for (size_t i = 0; i < NSPECS && rc == 0; i++) {
        const spec *s = &SPECS[i];
        char *cert_path = field(out, s->cert_off), *key_path = field(out, s->key_off);
        keys[i] = EVP_EC_gen("P-256");
        if (keys[i] == NULL) {
            rc = fail("key", s->stem);
            break;
        }
        X509 *issuer = s->issuer == NO_ISSUER ? NULL : certs[s->issuer];
        EVP_PKEY *issuer_key = s->issuer == NO_ISSUER ? NULL : keys[s->issuer];
        certs[i] = make_cert(s, keys[i], issuer, issuer_key);
        if (certs[i] == NULL) {
            rc = -1;
            break;
        }
        /* the path is set only once its file is about to exist, so that a failure removes
         * exactly what was written */
        if (set_path(key_path, dir, s->stem, "-key.pem") != 0 ||
            write_pem(key_path, 0600, NULL, keys[i]) != 0) {
            rc = -1;
            break;
        }
        if (set_path(cert_path, dir, s->stem, ".pem") != 0 ||
            write_pem(cert_path, 0644, certs[i], NULL) != 0)
            rc = -1;
    }
    for (size_t i = 0; i < NSPECS; i++) {
        X509_free(certs[i]);
        EVP_PKEY_free(keys[i]);
    }
    if (rc != 0)
        test_certs_remove(out);
    return rc;
}

void test_certs_remove(test_certs *c)
{
    if (strncmp(c->dir, DIR_PREFIX, strlen(DIR_PREFIX)) != 0) {
        memset(c, 0, sizeof(*c));
        return;
    }
    for (size_t i = 0; i < NSPECS; i++) {
        const char *p[2] = {field(c, SPECS[i].cert_off), field(c, SPECS[i].key_off)};
        for (int j = 0; j < 2; j++)
            if (p[j][0] != '\0' && unlink(p[j]) != 0 && errno != ENOENT)
                fprintf(stderr, "test certs: could not remove %s: %s\n", p[j], strerror(errno));
    }
    if (rmdir(c->dir) != 0 && errno != ENOENT)
        fprintf(stderr, "test certs: could not remove %s: %s\n", c->dir, strerror(errno));
    memset(c, 0, sizeof(*c));
}

const char *test_certs_dir(const test_certs *c)
{
    return c->dir;
}
