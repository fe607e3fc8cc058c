/* Test support: a raw OpenSSL peer over memory BIOs, to stand on the other side of a sans-I/O TLS
 * connector in tests and be driven byte by byte.
 *
 * The peer does no I/O. Bytes from the other side go in with test_tls_peer_feed(); the records it
 * produces are read with test_tls_peer_out() and taken away with test_tls_peer_consume(), so a
 * test decides how they are cut, delayed, altered or dropped. Each peer has its own SSL_CTX.
 *
 * Conventions for every function that returns int unless said otherwise:
 *   >= 0             success (meaning given per function)
 *   TEST_TLS_ERR     TLS failed: an alert was received or sent, a certificate was refused, a
 *                    record did not decrypt... test_tls_peer_error() has OpenSSL's text, e.g.
 *                    "handshake: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify
 *                    failed (verify: unable to get local issuer certificate)"
 *   TEST_TLS_EOF     the transport ended (test_tls_peer_feed_eof) before close_notify
 * Both failures are sticky: once a peer failed, every later call returns the same code without
 * touching OpenSSL, but output already produced (an alert) can still be taken with _out().
 * A peer is used by one thread at a time. */
#ifndef NEGIO_TEST_TLS_PEER_H
#define NEGIO_TEST_TLS_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

enum {
    TEST_TLS_ERR = -1,
    TEST_TLS_EOF = -2,
    TEST_TLS_CLOSED = -3, /* test_tls_peer_read: the peer sent close_notify (not a failure) */
};

typedef enum test_tls_role { TEST_TLS_CLIENT = 0, TEST_TLS_SERVER = 1 } test_tls_role;

/* Options; a zeroed struct is a client that verifies nothing, with the library's defaults. */
typedef struct test_tls_opts {
    test_tls_role role;
    const char *cert; /* PEM certificate (chain) to present; a server needs one. NULL: none */
    const char *key;  /* its PEM private key */
    /* PEM CA certificates to verify the peer with. NULL: no verification (a client accepts any
     * server certificate; a server asks for no client certificate). A server given CA asks for
     * a client certificate, naming these CAs, and verifies the one it gets. */
    const char *ca;
    int require_client_cert; /* server with CA: refuse a client that sends no certificate */
    /* client with CA: the name the server certificate must carry (RFC 6125 via
     * X509_VERIFY_PARAM; an IPv4 or IPv6 literal is matched against IP SANs). NULL: not checked */
    const char *host;
    const char *sni;              /* client: server name to send (RFC 6066 section 3); NULL: none */
    int min_version, max_version; /* TLS1_VERSION .. TLS1_3_VERSION; 0: OpenSSL's default */
    /* 1: use SECURITY_LEVEL instead of OpenSSL's default (2 on Debian 12). OpenSSL 3 offers and
     * accepts TLS 1.0/1.1 at any level when the versions allow it, but from level 1 up it will
     * neither make nor accept their MD5+SHA-1 handshake signature: a TLS 1.1 handshake completes
     * only with level 0 on both sides (a level 0 client against a default server fails with "no
     * suitable signature algorithm" at the server). */
    int set_security_level;
    int security_level;
    /* server: accept a TLS 1.2 client's renegotiation (OpenSSL 3 refuses it by default, with a
     * no_renegotiation alert: SSL_OP_ALLOW_CLIENT_RENEGOTIATION) */
    int allow_client_renegotiation;
} test_tls_opts;

typedef struct test_tls_peer test_tls_peer;

/* Creates a peer. Returns 0, or -1 after printing the reason and OpenSSL's errors to stderr
 * (a file that cannot be loaded, a key that does not match its certificate...). */
int test_tls_peer_new(test_tls_peer **out, const test_tls_opts *opts);
void test_tls_peer_free(test_tls_peer *p);

/* Bytes received from the other side; kept until the next call that processes input. */
void test_tls_peer_feed(test_tls_peer *p, const void *data, size_t len);
/* The transport ended: once the bytes fed so far are used up, reads see end of stream. */
void test_tls_peer_feed_eof(test_tls_peer *p);
/* The bytes waiting to be sent to the other side: *LEN of them at the returned pointer (NULL
 * and 0 when there are none). Valid until the next call on P. */
const uint8_t *test_tls_peer_out(test_tls_peer *p, size_t *len);
/* N of those bytes were sent (N at most the length _out() returned). */
void test_tls_peer_consume(test_tls_peer *p, size_t n);

/* Advances the handshake (SSL_do_handshake) with the input fed so far. Returns 1 when it is
 * complete, 0 when it needs more input (take the output first: it may be what the other side
 * waits for), TEST_TLS_ERR or TEST_TLS_EOF. Calling it again once complete returns 1. */
int test_tls_peer_handshake(test_tls_peer *p);
/* Encrypts LEN bytes of application data into the output (starting the handshake first if
 * needed, as SSL_write does). Returns LEN when it was all taken, 0 when the handshake needs more
 * input first (nothing was taken), or a failure. */
ssize_t test_tls_peer_write(test_tls_peer *p, const void *data, size_t len);
/* Decrypts application data into BUF. Returns the number of bytes (> 0), 0 when none is
 * available yet, TEST_TLS_CLOSED once the peer's close_notify has been read (every later call
 * returns it too), or a failure. Handshake records met on the way (a renegotiation, TLS 1.3
 * session tickets and key updates) are processed. */
ssize_t test_tls_peer_read(test_tls_peer *p, void *buf, size_t cap);
/* TLS 1.2 only: starts a renegotiation (SSL_renegotiate, then SSL_do_handshake: a client sends
 * a ClientHello, a server a HelloRequest). Returns 1 if the new handshake is already complete,
 * 0 when it is under way (drive it with test_tls_pump, _handshake or _read), or a failure;
 * TEST_TLS_ERR when the connection is not TLS 1.2 or the peer refused secure renegotiation. */
int test_tls_peer_renegotiate(test_tls_peer *p);
/* 1 while a renegotiation this side started has not completed. */
int test_tls_peer_renegotiating(const test_tls_peer *p);
/* Sends close_notify (SSL_shutdown). Returns 1 if the peer's close_notify had already been
 * received, 0 if not, or a failure. Calling it again only checks for the peer's close_notify. */
int test_tls_peer_shutdown(test_tls_peer *p);
/* 1 once the peer's close_notify has been read (by _read, _shutdown or test_tls_pump). */
int test_tls_peer_closed(const test_tls_peer *p);

/* Keying material exporter (RFC 5705; RFC 8446 section 7.5) with LABEL and no context: LEN
 * bytes into OUT. Returns 0 or TEST_TLS_ERR (handshake not complete). */
int test_tls_peer_exporter(test_tls_peer *p, const char *label, uint8_t *out, size_t len);
/* The same with a context (which may be empty: in TLS 1.2 "no context" and "empty context" give
 * different keys, in TLS 1.3 the same ones). */
int test_tls_peer_exporter_context(test_tls_peer *p, const char *label, const uint8_t *context,
                                   size_t context_len, uint8_t *out, size_t len);

/* The negotiated protocol, "TLSv1.3", "TLSv1.2"... (meaningful once the handshake is complete). */
const char *test_tls_peer_version(const test_tls_peer *p);
/* The peer certificate's subject in RFC 2253 form ("CN=alice"), or NULL if the peer sent none.
 * Valid until the next call on P. */
const char *test_tls_peer_subject(test_tls_peer *p);
/* The text of the failure a call returned ("" if none). */
const char *test_tls_peer_error(const test_tls_peer *p);
/* The underlying SSL object, for anything else a test needs to look at or set. */
SSL *test_tls_peer_ssl(test_tls_peer *p);

/* Moves at most MAX bytes (0: all) of FROM's output into TO. Returns the number moved. */
size_t test_tls_move(test_tls_peer *from, test_tls_peer *to, size_t max);
/* Runs A and B against each other until nothing moves: each round advances each side (its
 * handshake while one is in progress, otherwise it processes incoming records without taking
 * application data: renegotiation, session tickets, close_notify), then moves at most CHUNK
 * bytes (0: all) each way. After a side fails, its remaining output (the alert) is still
 * delivered, so that both sides see the failure.
 * Returns 1 when both handshakes are complete (and no renegotiation is pending), 0 when they
 * are not and nothing can move, or the failure of A, else of B. Application data written
 * before is delivered and stays unread, for test_tls_peer_read. */
int test_tls_pump(test_tls_peer *a, test_tls_peer *b, size_t chunk);

#endif
