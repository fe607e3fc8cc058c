/* Test support: a throwaway PKI for the TLS tests, made with the OpenSSL 3 API.
 *
 * test_certs_make() creates a fresh directory (/tmp/negio-certs-XXXXXX) holding PEM files, each
 * key unencrypted (PKCS#8) and readable only by the owner. Every key is EC P-256 and every
 * certificate X.509 v3, signed with ECDSA-SHA256, with a random 128-bit serial and a subject and
 * authority key identifier (RFC 5280 section 4.2.1). Unless said otherwise a certificate is valid
 * from one hour ago (clock skew) until 30 days from now; the CAs from 3 days ago, so that the
 * expired certificate lies within its issuer's validity.
 *
 *   ca            CN=negio test CA: basicConstraints critical CA:TRUE, keyUsage critical
 *                 keyCertSign cRLSign; self-signed
 *   server        CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1, extKeyUsage serverAuth;
 *                 signed by ca
 *   wrong_host    CN=wrong.example, SAN DNS:wrong.example only, serverAuth; signed by ca
 *   expired       as server (own key), but valid from 2 days ago until 1 day ago; signed by ca
 *   self_signed   as server (own key), but self-signed: no CA vouches for it
 *   client        CN=alice, extKeyUsage clientAuth; signed by ca
 *   other_ca      CN=negio other test CA: a second, unrelated CA
 *   other_client  CN=mallory, clientAuth; signed by other_ca
 *   mitm          as server (CN=localhost, same SAN) but with its own key: what a man in the
 *                 middle holding a certificate from a CA the client trusts would present
 *
 * End-entity certificates have basicConstraints critical CA:FALSE and keyUsage critical
 * digitalSignature (the only use of an ECDSA key in TLS 1.2 ECDHE and TLS 1.3). */
#ifndef NEGIO_TEST_CERTS_H
#define NEGIO_TEST_CERTS_H

#define TEST_CERTS_PATH 320

typedef struct test_certs {
    char dir[256];
    char ca_cert[TEST_CERTS_PATH], ca_key[TEST_CERTS_PATH];
    char server_cert[TEST_CERTS_PATH], server_key[TEST_CERTS_PATH];
    char wrong_host_cert[TEST_CERTS_PATH], wrong_host_key[TEST_CERTS_PATH];
    char expired_cert[TEST_CERTS_PATH], expired_key[TEST_CERTS_PATH];
    char self_signed_cert[TEST_CERTS_PATH], self_signed_key[TEST_CERTS_PATH];
    char client_cert[TEST_CERTS_PATH], client_key[TEST_CERTS_PATH];
    char other_ca_cert[TEST_CERTS_PATH], other_ca_key[TEST_CERTS_PATH];
    char other_client_cert[TEST_CERTS_PATH], other_client_key[TEST_CERTS_PATH];
    char mitm_cert[TEST_CERTS_PATH], mitm_key[TEST_CERTS_PATH];
} test_certs;

/* Creates the directory and every file above. Returns 0, or -1 after printing the reason (and
 * OpenSSL's error queue) to stderr and removing whatever it had created; *OUT is then zeroed. */
int test_certs_make(test_certs *out);
/* Removes the files and the directory (only a directory test_certs_make created). Safe on a
 * zeroed struct and when called twice; C is zeroed afterwards. */
void test_certs_remove(test_certs *c);
/* The directory holding the files (C->dir), "" if none. */
const char *test_certs_dir(const test_certs *c);

#endif
