/* Test support: a TLS man in the middle on 127.0.0.1, for tests that prove a client or a channel
 * binding notices it.
 *
 * The MITM listens on an ephemeral port. For each connection it accepts, in a thread of its own:
 *   1. it terminates TLS as a server with the given certificate and key (TLS 1.2 or 1.3, as the
 *      client offers; no client certificate asked for);
 *   2. once that handshake is complete (not before: a client that refuses the MITM leaves the
 *      upstream server untouched), it connects to 127.0.0.1:UPSTREAM_PORT and originates TLS as a
 *      client: no certificate verification, the client's SNI passed on, TLS 1.2 or 1.3 as the
 *      server chooses, the optional client certificate presented if the server asks;
 *   3. it relays the decrypted bytes both ways until either side closes (close_notify, end of
 *      stream or a TLS failure), then sends close_notify on both legs, shuts the sockets down for
 *      writing and waits (at most 2 s) for each peer to close before closing them, so that no
 *      peer sees a reset.
 * The two legs are separate TLS sessions with separate keys: exporters and tls-unique differ.
 * A failure on a leg (a refused certificate, an alert) closes the connection and is kept as the
 * last error. No socket I/O happens outside the MITM's threads; nothing is printed. */
#ifndef NEGIO_TEST_TLS_MITM_H
#define NEGIO_TEST_TLS_MITM_H

#include <stddef.h>
#include <stdint.h>

typedef struct test_mitm test_mitm;

typedef struct test_mitm_opts {
    const char *cert; /* PEM certificate (chain) presented to clients */
    const char *key;  /* its PEM private key */
    uint16_t upstream_port;
    const char *client_cert; /* presented upstream when the server asks; NULL: none */
    const char *client_key;
} test_mitm_opts;

/* Starts a MITM with a client certificate upstream (test_mitm_opts). The files are read for each
 * connection, so they must stay until test_mitm_stop. Returns 0, or -1 after printing why to
 * stderr (a file that does not load, no socket...). */
int test_mitm_start_opts(test_mitm **out, const test_mitm_opts *opts);
/* The same without a client certificate. */
int test_mitm_start(test_mitm **out, const char *cert, const char *key, uint16_t upstream_port);
/* The port it listens on (127.0.0.1). */
uint16_t test_mitm_port(const test_mitm *m);
/* TCP connections accepted so far. */
unsigned test_mitm_accepted(const test_mitm *m);
/* Connections whose TLS handshakes on both legs completed and that relayed at least one byte of
 * application data (either way): each proves the MITM really sat in the middle. A connection
 * counts from the moment its first byte was handed to the other leg, before the peer reads it. */
unsigned test_mitm_relayed(const test_mitm *m);
/* The last leg failure (e.g. "conn 0: client leg: handshake: SSL_ERROR_SSL: ...tlsv1 alert
 * unknown ca"), "" if none; copied into BUF (CAP bytes, NUL-terminated). */
void test_mitm_last_error(const test_mitm *m, char *buf, size_t cap);
/* Stops accepting, ends every connection at once (without close_notify), joins every thread and
 * frees the MITM. NULL is allowed. */
void test_mitm_stop(test_mitm *m);

#endif
