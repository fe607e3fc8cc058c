/* Unit tests for the TLS test support: the throwaway PKI (tests/support/certs.h), the OpenSSL peer
 * over memory BIOs (tls_peer.h) and the TLS man in the middle (tls_mitm.h). The other TLS tests
 * trust these to be what they claim, so each property they rely on is proved here, with OpenSSL
 * itself as the judge (X509_verify_cert, X509_check_host, real handshakes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "support/certs.h"
#include "support/clock.h"
#include "support/net.h"
#include "support/tls_mitm.h"
#include "support/tls_peer.h"

#define CB_LABEL "EXPORTER-Channel-Binding" /* RFC 9266 section 2 */
#define CB_LEN 32
#define IO_TIMEOUT_S 10

static test_certs certs;

static int make_certs(void **state)
{
    (void)state;
    return test_certs_make(&certs);
}

static int remove_certs(void **state)
{
    (void)state;
    test_certs_remove(&certs);
    return 0;
}

/* ---- certificate helpers --------------------------------------------------------------------- */

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

/* X509_verify_cert of LEAF against the single trust anchor ANCHOR (NULL: none), for PURPOSE
 * (0: any) and HOST (NULL: not checked). Returns the X509_V_* verdict. */
static int verify_flags(const char *leaf, const char *anchor, int purpose, const char *host,
                        unsigned long flags)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509 *x = load_cert(leaf);
    assert_non_null(store);
    assert_non_null(ctx);
    if (anchor != NULL) {
        X509 *a = load_cert(anchor);
        assert_int_equal(X509_STORE_add_cert(store, a), 1);
        X509_free(a);
    }
    assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
    if (purpose != 0)
        assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    if (host != NULL)
        assert_int_equal(X509_VERIFY_PARAM_set1_host(param, host, 0), 1);
    if (flags != 0)
        X509_VERIFY_PARAM_set_flags(param, flags);
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(x);
    ERR_clear_error();
    if (ok == 1)
        assert_int_equal(err, X509_V_OK);
    else
        assert_int_not_equal(err, X509_V_OK);
    return err;
}

static int verify(const char *leaf, const char *anchor, int purpose, const char *host)
{
    return verify_flags(leaf, anchor, purpose, host, 0);
}

static int check_host(const char *cert, const char *host)
{
    X509 *x = load_cert(cert);
    int r = X509_check_host(x, host, 0, 0, NULL);
    X509_free(x);
    return r;
}

static int check_ip(const char *cert, const char *ip)
{
    X509 *x = load_cert(cert);
    int r = X509_check_ip_asc(x, ip, 0);
    X509_free(x);
    return r;
}

static void assert_subject(const char *cert, const char *want)
{
    X509 *x = load_cert(cert);
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
    assert_string_equal(buf, want);
    X509_free(x);
}

/* ---- the PKI --------------------------------------------------------------------------------- */

static void files_live_in_a_fresh_private_directory(void **state)
{
    (void)state;
    struct stat st;
    assert_ptr_equal(test_certs_dir(&certs), certs.dir);
    assert_memory_equal(certs.dir, "/tmp/negio-certs-", 17);
    assert_int_equal(stat(certs.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    const char *keys[] = {certs.ca_key,       certs.server_key,       certs.wrong_host_key,
                          certs.expired_key,  certs.self_signed_key,  certs.client_key,
                          certs.other_ca_key, certs.other_client_key, certs.mitm_key};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_memory_equal(keys[i], certs.dir, strlen(certs.dir));
        assert_int_equal(stat(keys[i], &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void every_key_is_p256_and_matches_its_sha256_v3_certificate(void **state)
{
    (void)state;
    const char *pairs[][2] = {
        {certs.ca_cert, certs.ca_key},
        {certs.server_cert, certs.server_key},
        {certs.wrong_host_cert, certs.wrong_host_key},
        {certs.expired_cert, certs.expired_key},
        {certs.self_signed_cert, certs.self_signed_key},
        {certs.client_cert, certs.client_key},
        {certs.other_ca_cert, certs.other_ca_key},
        {certs.other_client_cert, certs.other_client_key},
        {certs.mitm_cert, certs.mitm_key},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        X509 *x = load_cert(pairs[i][0]);
        EVP_PKEY *k = load_key(pairs[i][1]);
        char group[64];
        assert_int_equal(X509_check_private_key(x, k), 1);
        assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group), NULL), 1);
        assert_string_equal(group, "prime256v1");
        assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
        assert_int_equal(X509_get_version(x), X509_VERSION_3);
        assert_non_null(X509_get0_subject_key_id(x));
        assert_non_null(X509_get0_authority_key_id(x));
        EVP_PKEY_free(k);
        X509_free(x);
    }
}

static int ext_critical(X509 *x, int nid)
{
    int at = X509_get_ext_by_NID(x, nid, -1);
    assert_true(at >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(x, at));
}

static void cas_sign_certificates_and_leaves_only_sign_handshakes(void **state)
{
    (void)state;
    const char *cas[] = {certs.ca_cert, certs.other_ca_cert};
    for (int i = 0; i < 2; i++) {
        X509 *x = load_cert(cas[i]);
        assert_int_equal(X509_check_ca(x), 1);
        assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
        assert_true(ext_critical(x, NID_basic_constraints));
        assert_true(ext_critical(x, NID_key_usage));
        assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
        X509_free(x);
    }
    const char *servers[] = {certs.server_cert, certs.wrong_host_cert, certs.expired_cert,
                             certs.self_signed_cert, certs.mitm_cert};
    const char *clients[] = {certs.client_cert, certs.other_client_cert};
    for (int i = 0; i < 7; i++) {
        int server = i < 5;
        X509 *x = load_cert(server ? servers[i] : clients[i - 5]);
        assert_int_equal(X509_check_ca(x), 0);
        assert_true(ext_critical(x, NID_basic_constraints));
        assert_true(ext_critical(x, NID_key_usage));
        assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
        assert_int_equal(X509_get_extended_key_usage(x), server ? XKU_SSL_SERVER : XKU_SSL_CLIENT);
        X509_free(x);
    }
}

static void server_cert_verifies_for_localhost_and_loopback_addresses(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.server_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER, "localhost"),
                     X509_V_OK);
    assert_int_equal(check_host(certs.server_cert, "localhost"), 1);
    assert_int_equal(check_ip(certs.server_cert, "127.0.0.1"), 1);
    assert_int_equal(check_ip(certs.server_cert, "::1"), 1);
    assert_int_equal(check_host(certs.server_cert, "wrong.example"), 0);
    assert_int_equal(check_ip(certs.server_cert, "127.0.0.2"), 0);
    assert_int_equal(verify(certs.server_cert, certs.ca_cert, 0, "wrong.example"),
                     X509_V_ERR_HOSTNAME_MISMATCH);
    /* not a client certificate */
    assert_int_equal(verify(certs.server_cert, certs.ca_cert, X509_PURPOSE_SSL_CLIENT, NULL),
                     X509_V_ERR_INVALID_PURPOSE);
    assert_subject(certs.server_cert, "/CN=localhost");
}

static void wrong_host_cert_chains_to_the_ca_but_names_only_wrong_example(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.wrong_host_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER, NULL),
                     X509_V_OK);
    assert_int_equal(verify(certs.wrong_host_cert, certs.ca_cert, 0, "localhost"),
                     X509_V_ERR_HOSTNAME_MISMATCH);
    assert_int_equal(check_host(certs.wrong_host_cert, "wrong.example"), 1);
    assert_int_equal(check_host(certs.wrong_host_cert, "localhost"), 0);
    assert_int_equal(check_ip(certs.wrong_host_cert, "127.0.0.1"), 0);
}

static void expired_cert_is_refused_only_for_its_dates(void **state)
{
    (void)state;
    assert_int_equal(
        verify(certs.expired_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER, "localhost"),
        X509_V_ERR_CERT_HAS_EXPIRED);
    assert_int_equal(verify_flags(certs.expired_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER,
                                  "localhost", X509_V_FLAG_NO_CHECK_TIME),
                     X509_V_OK);
    X509 *x = load_cert(certs.expired_cert);
    time_t now = time(NULL), t = now - 36 * 3600; /* between notBefore (-2 d) and notAfter (-1 d) */
    assert_true(X509_cmp_time(X509_get0_notAfter(x), &now) < 0);
    assert_true(X509_cmp_time(X509_get0_notBefore(x), &t) < 0);
    assert_true(X509_cmp_time(X509_get0_notAfter(x), &t) > 0);
    X509_free(x);
}

static void self_signed_cert_is_not_vouched_for_by_the_ca(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.self_signed_cert, certs.ca_cert, 0, "localhost"),
                     X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    /* it is a sound certificate otherwise: trusted directly, it verifies */
    assert_int_equal(verify(certs.self_signed_cert, certs.self_signed_cert, X509_PURPOSE_SSL_SERVER,
                            "localhost"),
                     X509_V_OK);
    assert_int_equal(check_ip(certs.self_signed_cert, "::1"), 1);
}

static void client_cert_is_alice_for_client_auth_only(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.client_cert, certs.ca_cert, X509_PURPOSE_SSL_CLIENT, NULL),
                     X509_V_OK);
    assert_int_equal(verify(certs.client_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER, NULL),
                     X509_V_ERR_INVALID_PURPOSE);
    assert_subject(certs.client_cert, "/CN=alice");
}

static void other_ca_and_mallory_are_strangers_to_the_test_ca(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.other_client_cert, certs.ca_cert, X509_PURPOSE_SSL_CLIENT, NULL),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_int_equal(
        verify(certs.other_client_cert, certs.other_ca_cert, X509_PURPOSE_SSL_CLIENT, NULL),
        X509_V_OK);
    assert_int_equal(verify(certs.client_cert, certs.other_ca_cert, X509_PURPOSE_SSL_CLIENT, NULL),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_int_equal(verify(certs.server_cert, certs.other_ca_cert, 0, NULL),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_subject(certs.other_client_cert, "/CN=mallory");
    X509 *a = load_cert(certs.ca_cert), *b = load_cert(certs.other_ca_cert);
    assert_int_not_equal(X509_cmp(a, b), 0);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)), 1);
    X509_free(a);
    X509_free(b);
}

static void mitm_cert_is_trusted_like_the_server_but_holds_another_key(void **state)
{
    (void)state;
    assert_int_equal(verify(certs.mitm_cert, certs.ca_cert, X509_PURPOSE_SSL_SERVER, "localhost"),
                     X509_V_OK);
    assert_int_equal(check_ip(certs.mitm_cert, "127.0.0.1"), 1);
    X509 *m = load_cert(certs.mitm_cert), *s = load_cert(certs.server_cert);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(m), X509_get0_pubkey(s)), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(m), X509_get_subject_name(s)), 0);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(m), X509_get0_serialNumber(s)), 0);
    X509_free(m);
    X509_free(s);
}

static void remove_deletes_every_file_and_the_directory(void **state)
{
    (void)state;
    test_certs c;
    assert_int_equal(test_certs_make(&c), 0);
    char dir[sizeof(c.dir)], key[sizeof(c.mitm_key)];
    strcpy(dir, c.dir);
    strcpy(key, c.mitm_key);
    assert_string_not_equal(dir, certs.dir); /* a fresh directory each time */
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    test_certs_remove(&c);
    assert_int_equal(stat(key, &st), -1);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_string_equal(test_certs_dir(&c), "");
    test_certs_remove(&c); /* twice is harmless */
}

/* ---- two tls_peers --------------------------------------------------------------------------- */

static test_tls_peer *peer(const test_tls_opts *o)
{
    test_tls_peer *p;
    assert_int_equal(test_tls_peer_new(&p, o), 0);
    return p;
}

static test_tls_peer *server_peer(const char *cert, const char *key, int max_version)
{
    test_tls_opts o = {
        .role = TEST_TLS_SERVER, .cert = cert, .key = key, .max_version = max_version};
    return peer(&o);
}

/* A client that verifies against the test CA and checks "localhost". */
static test_tls_peer *client_peer(int max_version)
{
    test_tls_opts o = {
        .ca = certs.ca_cert, .host = "localhost", .sni = "localhost", .max_version = max_version};
    return peer(&o);
}

/* Writes MSG on FROM, delivers it and reads it whole on TO. */
static void send_and_receive(test_tls_peer *from, test_tls_peer *to, const char *msg)
{
    size_t len = strlen(msg);
    assert_int_equal(test_tls_peer_write(from, msg, len), (ssize_t)len);
    assert_int_equal(test_tls_pump(from, to, 0), 1);
    char buf[256];
    size_t got = 0;
    while (got < len) {
        ssize_t n = test_tls_peer_read(to, buf + got, sizeof(buf) - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, len);
    assert_memory_equal(buf, msg, len);
    assert_int_equal(test_tls_peer_read(to, buf, sizeof(buf)), 0); /* nothing more */
}

static void assert_exporters_agree(test_tls_peer *a, test_tls_peer *b)
{
    uint8_t ea[CB_LEN], eb[CB_LEN], other[CB_LEN];
    assert_int_equal(test_tls_peer_exporter(a, CB_LABEL, ea, sizeof(ea)), 0);
    assert_int_equal(test_tls_peer_exporter(b, CB_LABEL, eb, sizeof(eb)), 0);
    assert_memory_equal(ea, eb, CB_LEN);
    assert_int_equal(test_tls_peer_exporter(b, "EXPORTER-negio-test", other, sizeof(other)), 0);
    assert_memory_not_equal(ea, other, CB_LEN);
    assert_int_equal(test_tls_peer_exporter_context(a, CB_LABEL, NULL, 0, ea, sizeof(ea)), 0);
    assert_int_equal(test_tls_peer_exporter_context(b, CB_LABEL, NULL, 0, eb, sizeof(eb)), 0);
    assert_memory_equal(ea, eb, CB_LEN);
}

static void peers_complete_tls13_byte_by_byte_and_agree_on_exporters(void **state)
{
    (void)state;
    test_tls_peer *c = client_peer(0), *s = server_peer(certs.server_cert, certs.server_key, 0);
    uint8_t e[CB_LEN];
    /* too early */
    assert_int_equal(test_tls_peer_exporter(c, CB_LABEL, e, sizeof(e)), TEST_TLS_ERR);
    assert_int_equal(test_tls_pump(c, s, 1), 1);
    assert_string_equal(test_tls_peer_version(c), "TLSv1.3");
    assert_string_equal(test_tls_peer_version(s), "TLSv1.3");
    assert_string_equal(test_tls_peer_subject(c), "CN=localhost");
    assert_null(test_tls_peer_subject(s)); /* no client certificate */
    assert_string_equal(SSL_get_servername(test_tls_peer_ssl(s), TLSEXT_NAMETYPE_host_name),
                        "localhost");
    send_and_receive(c, s, "ping");
    send_and_receive(s, c, "pong");
    assert_exporters_agree(c, s);
    /* in TLS 1.3 "no context" and "empty context" are the same (RFC 8446 section 7.5) */
    uint8_t none[CB_LEN], empty[CB_LEN];
    assert_int_equal(test_tls_peer_exporter(c, CB_LABEL, none, sizeof(none)), 0);
    assert_int_equal(test_tls_peer_exporter_context(c, CB_LABEL, NULL, 0, empty, sizeof(empty)), 0);
    assert_memory_equal(none, empty, CB_LEN);
    /* renegotiation does not exist in TLS 1.3, and asking does not break the connection */
    assert_int_equal(test_tls_peer_renegotiate(c), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(c), "not TLS 1.2"));
    send_and_receive(c, s, "still there");
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void peers_complete_tls12_and_agree_on_exporters(void **state)
{
    (void)state;
    test_tls_peer *c = client_peer(TLS1_2_VERSION);
    test_tls_peer *s = server_peer(certs.server_cert, certs.server_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_string_equal(test_tls_peer_version(c), "TLSv1.2");
    assert_string_equal(test_tls_peer_version(s), "TLSv1.2");
    send_and_receive(c, s, "hello over 1.2");
    send_and_receive(s, c, "and back");
    assert_exporters_agree(c, s);
    /* RFC 5705 section 4: with TLS 1.2, an empty context is not the absence of one */
    uint8_t none[CB_LEN], empty[CB_LEN];
    assert_int_equal(test_tls_peer_exporter(c, CB_LABEL, none, sizeof(none)), 0);
    assert_int_equal(test_tls_peer_exporter_context(c, CB_LABEL, NULL, 0, empty, sizeof(empty)), 0);
    assert_memory_not_equal(none, empty, CB_LEN);
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void tls12_renegotiation_runs_from_either_side(void **state)
{
    (void)state;
    test_tls_opts so = {.role = TEST_TLS_SERVER,
                        .cert = certs.server_cert,
                        .key = certs.server_key,
                        .allow_client_renegotiation = 1};
    test_tls_peer *c = client_peer(TLS1_2_VERSION), *s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    uint8_t before[CB_LEN], after[CB_LEN];
    assert_int_equal(test_tls_peer_exporter(c, CB_LABEL, before, sizeof(before)), 0);

    /* the client's: a new ClientHello; byte by byte */
    assert_int_equal(test_tls_peer_renegotiate(c), 0);
    assert_int_equal(test_tls_peer_renegotiating(c), 1);
    assert_int_equal(test_tls_pump(c, s, 1), 1);
    assert_int_equal(test_tls_peer_renegotiating(c), 0);
    assert_int_equal(test_tls_peer_exporter(c, CB_LABEL, after, sizeof(after)), 0);
    assert_memory_not_equal(before, after, CB_LEN); /* new master secret */
    assert_exporters_agree(c, s);
    send_and_receive(c, s, "after the client's renegotiation");

    /* the server's: a HelloRequest */
    memcpy(before, after, CB_LEN);
    assert_int_equal(test_tls_peer_renegotiate(s), 0);
    assert_int_equal(test_tls_peer_renegotiating(s), 1);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_int_equal(test_tls_peer_renegotiating(s), 0);
    assert_int_equal(test_tls_peer_exporter(s, CB_LABEL, after, sizeof(after)), 0);
    assert_memory_not_equal(before, after, CB_LEN);
    assert_exporters_agree(c, s);
    send_and_receive(s, c, "after the server's renegotiation");
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void default_server_refuses_a_client_renegotiation(void **state)
{
    (void)state;
    test_tls_peer *c = client_peer(TLS1_2_VERSION);
    test_tls_peer *s = server_peer(certs.server_cert, certs.server_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_int_equal(test_tls_peer_renegotiate(c), 0);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(c), "no renegotiation"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void tls11_client_fails_against_a_default_server(void **state)
{
    (void)state;
    test_tls_opts co = {.ca = certs.ca_cert,
                        .host = "localhost",
                        .min_version = TLS1_1_VERSION,
                        .max_version = TLS1_1_VERSION,
                        .set_security_level = 1,
                        .security_level = 0};
    test_tls_peer *c = peer(&co), *s = server_peer(certs.server_cert, certs.server_key, 0);
    /* the ClientHello offers TLS 1.1 only (legacy_version 0x0302, no supported_versions) */
    assert_int_equal(test_tls_peer_handshake(c), 0);
    size_t n;
    const uint8_t *hello = test_tls_peer_out(c, &n);
    assert_true(n > 11);
    assert_int_equal(hello[0], 22);                /* handshake record */
    assert_int_equal(hello[5], 1);                 /* ClientHello */
    assert_memory_equal(hello + 9, "\x03\x02", 2); /* client_version TLS 1.1 */
    /* OpenSSL 3's default server does not refuse the version itself: at its default security
     * level it has no signature algorithm that TLS 1.1 can use (MD5+SHA-1) */
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(s), "no suitable signature algorithm"));
    assert_non_null(strstr(test_tls_peer_error(c), "alert internal error"));
    /* sticky */
    assert_int_equal(test_tls_peer_handshake(c), TEST_TLS_ERR);
    assert_int_equal(test_tls_peer_write(c, "x", 1), TEST_TLS_ERR);
    test_tls_peer_free(c);
    test_tls_peer_free(s);

    /* a server with TLS 1.2 as its minimum (as negio's is) refuses the version */
    test_tls_opts so = {.role = TEST_TLS_SERVER,
                        .cert = certs.server_cert,
                        .key = certs.server_key,
                        .min_version = TLS1_2_VERSION};
    c = peer(&co);
    s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(s), "unsupported protocol"));
    assert_non_null(strstr(test_tls_peer_error(c), "alert protocol version"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);

    /* with level 0 on both sides TLS 1.1 does complete: the override is what makes a TLS 1.1
     * peer possible at all */
    so.min_version = 0;
    so.set_security_level = 1;
    so.security_level = 0;
    c = peer(&co);
    s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_string_equal(test_tls_peer_version(c), "TLSv1.1");
    assert_string_equal(test_tls_peer_version(s), "TLSv1.1");
    send_and_receive(c, s, "old but working");
    test_tls_peer_free(c);
    test_tls_peer_free(s);

    /* without the client's override, the level 0 server's MD5+SHA-1 signature is refused */
    co.set_security_level = 0;
    c = peer(&co);
    s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(c), "legacy sigalg disallowed"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

/* A client verifying against the test CA meets a server presenting CERT. */
static void expect_refused(const char *cert, const char *key, const char *client_says,
                           const char *server_hears)
{
    test_tls_peer *c = client_peer(0), *s = server_peer(cert, key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    if (strstr(test_tls_peer_error(c), client_says) == NULL ||
        strstr(test_tls_peer_error(s), server_hears) == NULL)
        fail_msg("client: %s\nserver: %s", test_tls_peer_error(c), test_tls_peer_error(s));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void verifying_client_refuses_every_bad_server_certificate(void **state)
{
    (void)state;
    expect_refused(certs.wrong_host_cert, certs.wrong_host_key, "hostname mismatch",
                   "alert bad certificate");
    expect_refused(certs.expired_cert, certs.expired_key, "certificate has expired",
                   "alert certificate expired");
    expect_refused(certs.self_signed_cert, certs.self_signed_key, "self-signed certificate",
                   "alert unknown ca");
    expect_refused(certs.other_client_cert, certs.other_client_key,
                   "unable to get local issuer certificate", "alert unknown ca");
    /* the "trusted" MITM certificate passes: only channel binding can tell it apart */
    test_tls_peer *c = client_peer(0), *s = server_peer(certs.mitm_cert, certs.mitm_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    test_tls_peer_free(c);
    test_tls_peer_free(s);
    /* an IP literal is checked against the IP SANs */
    test_tls_opts o = {.ca = certs.ca_cert, .host = "::1"};
    c = peer(&o);
    s = server_peer(certs.server_cert, certs.server_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    test_tls_peer_free(c);
    test_tls_peer_free(s);
    o.host = "127.0.0.2";
    c = peer(&o);
    s = server_peer(certs.server_cert, certs.server_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(c), "IP address mismatch"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void server_verifies_the_client_certificate(void **state)
{
    (void)state;
    test_tls_opts so = {.role = TEST_TLS_SERVER,
                        .cert = certs.server_cert,
                        .key = certs.server_key,
                        .ca = certs.ca_cert,
                        .require_client_cert = 1};
    test_tls_opts co = {.ca = certs.ca_cert,
                        .host = "localhost",
                        .cert = certs.client_cert,
                        .key = certs.client_key};
    for (int max = 0; max <= 1; max++) {
        co.max_version = max ? TLS1_2_VERSION : 0;
        test_tls_peer *c = peer(&co), *s = peer(&so);
        assert_int_equal(test_tls_pump(c, s, 1), 1);
        assert_string_equal(test_tls_peer_subject(s), "CN=alice");
        send_and_receive(c, s, "it is alice");
        test_tls_peer_free(c);
        test_tls_peer_free(s);
    }

    co.cert = certs.other_client_cert;
    co.key = certs.other_client_key;
    test_tls_peer *c = peer(&co), *s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(s), "certificate verify failed"));
    assert_non_null(strstr(test_tls_peer_error(s), "unable to get local issuer certificate"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);

    co.cert = co.key = NULL;
    c = peer(&co);
    s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(s), "peer did not return a certificate"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);

    /* not required: a client without a certificate is let in, and seen as such */
    so.require_client_cert = 0;
    c = peer(&co);
    s = peer(&so);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_null(test_tls_peer_subject(s));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void close_notify_is_not_an_end_of_stream(void **state)
{
    (void)state;
    for (int v = 0; v <= 1; v++) {
        int max = v ? TLS1_2_VERSION : 0;
        test_tls_peer *c = client_peer(max),
                      *s = server_peer(certs.server_cert, certs.server_key, 0);
        assert_int_equal(test_tls_pump(c, s, 0), 1);
        assert_int_equal(test_tls_peer_write(c, "last words", 10), 10);
        assert_int_equal(test_tls_peer_shutdown(c), 0);
        assert_int_equal(test_tls_pump(c, s, 0), 1);
        char buf[32];
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), 10); /* data first */
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), TEST_TLS_CLOSED);
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), TEST_TLS_CLOSED);
        assert_int_equal(test_tls_peer_closed(s), 1);
        assert_int_equal(test_tls_peer_closed(c), 0);
        assert_int_equal(test_tls_peer_shutdown(s), 1); /* both directions closed */
        test_tls_move(s, c, 0);
        assert_int_equal(test_tls_peer_shutdown(c), 1);
        assert_int_equal(test_tls_peer_closed(c), 1);
        test_tls_peer_free(c);
        test_tls_peer_free(s);

        /* the transport ends without close_notify: a truncation */
        c = client_peer(max);
        s = server_peer(certs.server_cert, certs.server_key, 0);
        assert_int_equal(test_tls_pump(c, s, 0), 1);
        assert_int_equal(test_tls_peer_write(c, "cut", 3), 3);
        test_tls_move(c, s, 0);
        test_tls_peer_feed_eof(s);
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), 3);
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), TEST_TLS_EOF);
        assert_non_null(strstr(test_tls_peer_error(s), "unexpected eof"));
        assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), TEST_TLS_EOF); /* sticky */
        test_tls_peer_free(c);
        test_tls_peer_free(s);
    }
}

static void a_flipped_record_byte_fails_decryption(void **state)
{
    (void)state;
    test_tls_peer *c = client_peer(0), *s = server_peer(certs.server_cert, certs.server_key, 0);
    assert_int_equal(test_tls_pump(c, s, 0), 1);
    assert_int_equal(test_tls_peer_write(c, "tamper with me", 14), 14);
    size_t n;
    const uint8_t *rec = test_tls_peer_out(c, &n);
    assert_true(n > 10);
    uint8_t copy[256];
    assert_true(n <= sizeof(copy));
    memcpy(copy, rec, n);
    copy[n - 1] ^= 0x01; /* in the AEAD tag */
    test_tls_peer_consume(c, n);
    test_tls_peer_feed(s, copy, n);
    char buf[32];
    assert_int_equal(test_tls_peer_read(s, buf, sizeof(buf)), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(s), "bad record mac"));
    /* the alert reaches the client */
    assert_int_equal(test_tls_pump(c, s, 0), TEST_TLS_ERR);
    assert_non_null(strstr(test_tls_peer_error(c), "alert bad record mac"));
    test_tls_peer_free(c);
    test_tls_peer_free(s);
}

static void bad_files_are_reported_at_creation(void **state)
{
    (void)state;
    test_tls_peer *p = (test_tls_peer *)&p;
    test_tls_opts o = {.role = TEST_TLS_SERVER, .cert = certs.server_cert, .key = certs.mitm_key};
    assert_int_equal(test_tls_peer_new(&p, &o), -1); /* key of another certificate */
    assert_null(p);
    o.key = certs.server_key;
    o.ca = "/nonexistent/ca.pem";
    assert_int_equal(test_tls_peer_new(&p, &o), -1);
    ERR_clear_error();
}

/* ---- real sockets: an echo server, a client, the MITM between them --------------------------- */

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

static int listen_loopback(uint16_t *port)
{
    int fd = test_tcp_listen(port);
    assert_true(fd >= 0);
    return fd;
}

static int connect_loopback(uint16_t port)
{
    int fd = test_tcp_connect(port);
    assert_true(fd >= 0);
    set_timeouts(fd);
    return fd;
}

/* An OpenSSL echo server for one connection, in a thread. It does not use cmocka: the test
 * thread checks what it recorded after joining it. */
typedef struct echo_server {
    int lfd;
    uint16_t port;
    pthread_t thread;
    const char *ca; /* require a client certificate verified against it; NULL: none */
    /* results */
    int handshake_ok;
    int clean_close; /* the client's close_notify was read */
    size_t echoed;
    uint8_t exporter[CB_LEN];
    char subject[256];
    char error[512];
} echo_server;

static void echo_error(echo_server *e, const char *what)
{
    unsigned long code = ERR_get_error();
    char text[256] = "";
    if (code != 0)
        ERR_error_string_n(code, text, sizeof(text));
    snprintf(e->error, sizeof(e->error), "%s: %s", what, text);
    ERR_clear_error();
}

static void *echo_main(void *arg)
{
    echo_server *e = arg;
    struct pollfd pfd = {.fd = e->lfd, .events = POLLIN};
    if (poll(&pfd, 1, IO_TIMEOUT_S * 1000) != 1) {
        snprintf(e->error, sizeof(e->error), "no connection");
        return NULL;
    }
    int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        snprintf(e->error, sizeof(e->error), "accept: %s", strerror(errno));
        return NULL;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = NULL;
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, certs.server_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, certs.server_key, SSL_FILETYPE_PEM) != 1) {
        echo_error(e, "setup");
        goto out;
    }
    if (e->ca != NULL) {
        SSL_CTX_load_verify_locations(ctx, e->ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
        echo_error(e, "accept");
        goto out;
    }
    e->handshake_ok = 1;
    SSL_export_keying_material(ssl, e->exporter, CB_LEN, CB_LABEL, strlen(CB_LABEL), NULL, 0, 0);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer != NULL)
        X509_NAME_oneline(X509_get_subject_name(peer), e->subject, sizeof(e->subject));
    for (;;) {
        char buf[4096];
        size_t n, w;
        if (SSL_read_ex(ssl, buf, sizeof(buf), &n) != 1) {
            if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
                e->clean_close = 1;
            else
                echo_error(e, "read");
            break;
        }
        if (SSL_write_ex(ssl, buf, n, &w) != 1) {
            echo_error(e, "write");
            break;
        }
        e->echoed += n;
    }
    if (e->clean_close)
        SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return NULL;
}

static void echo_start(echo_server *e, const char *ca)
{
    memset(e, 0, sizeof(*e));
    e->ca = ca;
    e->lfd = listen_loopback(&e->port);
    assert_int_equal(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

static void echo_join(echo_server *e)
{
    pthread_join(e->thread, NULL);
    close(e->lfd);
}

typedef struct client_result {
    int handshake_ok;
    int echo_ok;
    int clean_close; /* the close_notify answering ours was read */
    uint8_t exporter[CB_LEN];
    char version[16];
    char error[512];
} client_result;

/* An OpenSSL client over a socket to 127.0.0.1:PORT, verifying against the test CA and checking
 * "localhost": sends MSG, reads it back, closes with close_notify and waits for the answer. */
static void client_run(uint16_t port, int max_version, const char *msg, client_result *r)
{
    memset(r, 0, sizeof(*r));
    int fd = connect_loopback(port);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, certs.ca_cert, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(SSL_set1_host(ssl, "localhost"), 1);
    assert_int_equal(SSL_set_tlsext_host_name(ssl, "localhost"), 1);
    assert_int_equal(SSL_set_fd(ssl, fd), 1);
    if (SSL_connect(ssl) != 1) {
        unsigned long code = ERR_get_error();
        ERR_error_string_n(code, r->error, sizeof(r->error));
        goto out;
    }
    r->handshake_ok = 1;
    snprintf(r->version, sizeof(r->version), "%s", SSL_get_version(ssl));
    assert_int_equal(SSL_export_keying_material(ssl, r->exporter, CB_LEN, CB_LABEL,
                                                strlen(CB_LABEL), NULL, 0, 0),
                     1);
    size_t len = strlen(msg), w, got = 0;
    assert_int_equal(SSL_write_ex(ssl, msg, len, &w), 1);
    char buf[4096];
    while (got < len) {
        size_t n;
        if (SSL_read_ex(ssl, buf + got, sizeof(buf) - got, &n) != 1)
            break;
        got += n;
    }
    r->echo_ok = got == len && memcmp(buf, msg, len) == 0;
    if (SSL_shutdown(ssl) == 0) {
        size_t n;
        r->clean_close = SSL_read_ex(ssl, buf, sizeof(buf), &n) != 1 &&
                         SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
    }
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
}

static void direct_connection_exporters_agree(void **state)
{
    (void)state;
    echo_server e;
    client_result r;
    echo_start(&e, NULL);
    client_run(e.port, 0, "direct", &r);
    echo_join(&e);
    assert_true(r.handshake_ok);
    assert_true(r.echo_ok);
    assert_true(r.clean_close);
    assert_true(e.clean_close);
    assert_string_equal(e.error, "");
    assert_memory_equal(r.exporter, e.exporter, CB_LEN);
}

static void mitm_relays_an_echo_and_the_legs_have_different_exporters(void **state)
{
    (void)state;
    for (int v = 0; v <= 1; v++) {
        int max = v ? TLS1_2_VERSION : 0;
        echo_server e;
        client_result r;
        test_mitm *m;
        echo_start(&e, NULL);
        assert_int_equal(test_mitm_start(&m, certs.mitm_cert, certs.mitm_key, e.port), 0);
        assert_int_not_equal(test_mitm_port(m), 0);
        assert_int_not_equal(test_mitm_port(m), e.port);
        assert_int_equal(test_mitm_relayed(m), 0);

        /* large enough for several records each way */
        char msg[3000];
        for (size_t i = 0; i < sizeof(msg) - 1; i++)
            msg[i] = (char)('a' + i % 26);
        msg[sizeof(msg) - 1] = '\0';
        client_run(test_mitm_port(m), max, msg, &r);
        echo_join(&e);

        char err[1024];
        test_mitm_last_error(m, err, sizeof(err));
        if (!r.handshake_ok || !r.echo_ok || !e.handshake_ok)
            fail_msg("client: %s; server: %s; mitm: %s", r.error, e.error, err);
        assert_string_equal(r.version, v ? "TLSv1.2" : "TLSv1.3");
        assert_int_equal(e.echoed, strlen(msg));
        assert_int_equal(test_mitm_accepted(m), 1);
        assert_int_equal(test_mitm_relayed(m), 1);
        /* the client authenticated "localhost" through the test CA, yet the two ends hold
         * different TLS sessions: what channel binding detects */
        assert_memory_not_equal(r.exporter, e.exporter, CB_LEN);
        /* each side's close_notify crossed the MITM and was answered */
        assert_true(r.clean_close);
        assert_true(e.clean_close);
        assert_string_equal(err, "");
        test_mitm_stop(m);
    }
}

static void client_refusing_the_mitm_leaves_upstream_untouched(void **state)
{
    (void)state;
    uint16_t up_port;
    int up = listen_loopback(&up_port);
    test_mitm *m;
    client_result r;
    assert_int_equal(test_mitm_start(&m, certs.self_signed_cert, certs.self_signed_key, up_port),
                     0);
    client_run(test_mitm_port(m), 0, "never sent", &r);
    assert_false(r.handshake_ok);
    assert_non_null(strstr(r.error, "certificate verify failed"));
    /* wait for the MITM's side of the failure */
    char err[1024] = "";
    TEST_POLL_UNTIL((test_mitm_last_error(m, err, sizeof(err)), err[0] != '\0'), 5000);
    assert_non_null(strstr(err, "conn 0: client leg:"));
    assert_non_null(strstr(err, "alert unknown ca"));
    assert_int_equal(test_mitm_accepted(m), 1);
    assert_int_equal(test_mitm_relayed(m), 0);
    test_mitm_stop(m);
    /* no connection ever reached the upstream port */
    struct pollfd pfd = {.fd = up, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    close(up);
}

static void mitm_presents_its_client_certificate_upstream(void **state)
{
    (void)state;
    echo_server e;
    client_result r;
    test_mitm *m;
    echo_start(&e, certs.ca_cert);
    test_mitm_opts o = {.cert = certs.mitm_cert,
                        .key = certs.mitm_key,
                        .upstream_port = e.port,
                        .client_cert = certs.client_cert,
                        .client_key = certs.client_key};
    assert_int_equal(test_mitm_start_opts(&m, &o), 0);
    client_run(test_mitm_port(m), 0, "with a certificate", &r);
    echo_join(&e);
    assert_true(r.echo_ok);
    assert_string_equal(e.subject, "/CN=alice");
    assert_int_equal(test_mitm_relayed(m), 1);
    test_mitm_stop(m);

    /* without one, the upstream handshake fails and the client is closed on */
    echo_start(&e, certs.ca_cert);
    assert_int_equal(test_mitm_start(&m, certs.mitm_cert, certs.mitm_key, e.port), 0);
    client_run(test_mitm_port(m), 0, "without", &r);
    echo_join(&e);
    assert_true(r.handshake_ok); /* with the MITM */
    assert_false(r.echo_ok);
    assert_false(e.handshake_ok);
    char err[1024];
    test_mitm_last_error(m, err, sizeof(err));
    assert_non_null(strstr(err, "upstream leg"));
    /* (relayed may be 0 or 1 here: a TLS 1.3 client completes its handshake before the server
     * has judged its certificate, so the client's bytes can be handed over before the alert) */
    test_mitm_stop(m);
}

static void mitm_stops_with_connections_open(void **state)
{
    (void)state;
    uint16_t up_port;
    int up = listen_loopback(&up_port);
    test_mitm *m;
    assert_int_equal(test_mitm_start(&m, certs.mitm_cert, certs.mitm_key, up_port), 0);
    int fd = connect_loopback(test_mitm_port(m));
    TEST_POLL_UNTIL(test_mitm_accepted(m) == 1, 5000);
    assert_int_equal(test_mitm_accepted(m), 1);
    test_mitm_stop(m); /* mid-handshake: joins and frees all the same */
    char c;
    assert_true(read(fd, &c, 1) <= 0);
    close(fd);
    /* no TLS from the client: the MITM never went upstream */
    struct pollfd pfd = {.fd = up, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    close(up);
    test_mitm_stop(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the OpenSSL ends write to sockets a peer may have closed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_live_in_a_fresh_private_directory),
        cmocka_unit_test(every_key_is_p256_and_matches_its_sha256_v3_certificate),
        cmocka_unit_test(cas_sign_certificates_and_leaves_only_sign_handshakes),
        cmocka_unit_test(server_cert_verifies_for_localhost_and_loopback_addresses),
        cmocka_unit_test(wrong_host_cert_chains_to_the_ca_but_names_only_wrong_example),
        cmocka_unit_test(expired_cert_is_refused_only_for_its_dates),
        cmocka_unit_test(self_signed_cert_is_not_vouched_for_by_the_ca),
        cmocka_unit_test(client_cert_is_alice_for_client_auth_only),
        cmocka_unit_test(other_ca_and_mallory_are_strangers_to_the_test_ca),
        cmocka_unit_test(mitm_cert_is_trusted_like_the_server_but_holds_another_key),
        cmocka_unit_test(remove_deletes_every_file_and_the_directory),
        cmocka_unit_test(peers_complete_tls13_byte_by_byte_and_agree_on_exporters),
        cmocka_unit_test(peers_complete_tls12_and_agree_on_exporters),
        cmocka_unit_test(tls12_renegotiation_runs_from_either_side),
        cmocka_unit_test(default_server_refuses_a_client_renegotiation),
        cmocka_unit_test(tls11_client_fails_against_a_default_server),
        cmocka_unit_test(verifying_client_refuses_every_bad_server_certificate),
        cmocka_unit_test(server_verifies_the_client_certificate),
        cmocka_unit_test(close_notify_is_not_an_end_of_stream),
        cmocka_unit_test(a_flipped_record_byte_fails_decryption),
        cmocka_unit_test(bad_files_are_reported_at_creation),
        cmocka_unit_test(direct_connection_exporters_agree),
        cmocka_unit_test(mitm_relays_an_echo_and_the_legs_have_different_exporters),
        cmocka_unit_test(client_refusing_the_mitm_leaves_upstream_untouched),
        cmocka_unit_test(mitm_presents_its_client_certificate_upstream),
        cmocka_unit_test(mitm_stops_with_connections_open),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
