/*
 * negio bench: the certificate of the plain TLS measurements (section 4), made for the run with
 * the OpenSSL 3 API: an EC P-256 key and a self-signed certificate for localhost, which the
 * client also takes as its CA. Kerberos inside TLS needs none: it runs certificate-free.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench.h"

static int ssl_fail(char *err, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    char why[256] = "";
    if (e != 0)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    snprintf(err, cap, "%s%s%s", what, why[0] ? ": " : "", why);
    return -1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* Creates PATH (it must not exist) readable by the owner only, and writes CERT or KEY in PEM. */
static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, char *err, size_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok = cert != NULL ? PEM_write_X509(f, cert)
                          : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : ssl_fail(err, cap, path);
}

int bench_tls_cert(const char *dir, char *cert, char *key, size_t cap, char *err, size_t errcap)
{
    snprintf(cert, cap, "%s/cert.pem", dir);
    snprintf(key, cap, "%s/key.pem", dir);
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int ok = pk != NULL && x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
             X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) != NULL &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"localhost", -1, -1, 0) &&
             X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
             X509_set_pubkey(x, pk) && add_ext(x, NID_subject_key_identifier, "hash") &&
             add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, NID_key_usage, "critical,digitalSignature") &&
             add_ext(x, NID_ext_key_usage, "serverAuth") &&
             add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") &&
             X509_sign(x, pk, EVP_sha256()) > 0;
    int rc = ok ? 0 : ssl_fail(err, errcap, "making the certificate");
    if (rc == 0)
        rc = write_pem(cert, x, NULL, err, errcap);
    if (rc == 0)
        rc = write_pem(key, NULL, pk, err, errcap);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}
