/* The TLS transport (OpenSSL 3, through a BIO over the connector's own buffers): a byte-stream
 * filter under negio's frames. Wire bytes go in, plaintext comes out into the connector's frame
 * buffer; the connector's frames go in, wire bytes come out. Every function writes a human-readable
 * cause into DETAIL (size NEGIO__DETAIL_MAX) when it fails. */
#ifndef NEGIO_TLS_TLS_H
#define NEGIO_TLS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/config.h"

/* The SSL_CTX built from a configuration, shared by the configuration, its copies and their
 * connectors, built once on first use. Any change to a configuration's TLS settings gives that
 * configuration a new one. */
typedef struct negio__tls_shared negio__tls_shared;
negio__tls_shared *negio__tls_shared_new(void);
void negio__tls_shared_ref(negio__tls_shared *s);
void negio__tls_shared_unref(negio__tls_shared *s);
/* Builds the SSL_CTX of CFG if that was not done yet (certificates, key, CA, ephemeral
 * certificate). Returns 0 or NEGIO_ERR_CREDENTIALS / NEGIO_ERR_NOMEM; a failure is remembered
 * and reported again without retrying. */
int negio__tls_shared_build(negio__tls_shared *s, const negio_config *cfg, char *detail);

/* Longest channel-binding value: "tls-server-end-point:" and a SHA-512 hash. */
#define NEGIO__TLS_CB_MAX 96

typedef struct negio__tls negio__tls;

/* A client produces its ClientHello at once (into WIRE_OUT). Returns 0, NEGIO_ERR_CREDENTIALS,
 * NEGIO_ERR_NOMEM. */
int negio__tls_new(negio__tls **out, const negio_config *cfg, negio__buf *wire_out, char *detail);
void negio__tls_del(negio__tls *t);

/* Takes all of WIRE (consumed), advances the handshake, appends the plaintext that arrived to
 * PLAIN and what must be sent to WIRE_OUT. Returns 0 or a fatal code. */
int negio__tls_recv(negio__tls *t, negio__buf *wire, negio__buf *plain, negio__buf *wire_out,
                    char *detail);
/* Encrypts all of PLAIN (consumed) into WIRE_OUT once the handshake is done. 0 or fatal code. */
int negio__tls_send(negio__tls *t, negio__buf *plain, negio__buf *wire_out, char *detail);
/* Sends close_notify (once). */
void negio__tls_shutdown(negio__tls *t, negio__buf *wire_out);

int negio__tls_done(const negio__tls *t);        /* handshake complete and checked */
int negio__tls_peer_closed(const negio__tls *t); /* close_notify received */
int negio__tls_shutdown_sent(const negio__tls *t);
/* Certificate-free: a client that does not verify the server, or a server presenting an
 * ephemeral certificate. */
int negio__tls_cert_free(const negio__tls *t);
/* The GSS channel-binding application data of this session ("tls-exporter:" || 32 bytes with
 * TLS 1.3, "tls-server-end-point:" || hash with TLS 1.2). Returns its length, or a negative code.
 */
int negio__tls_bindings(negio__tls *t, uint8_t out[NEGIO__TLS_CB_MAX], char *detail);
/* Fills the TLS fields of INFO (strings owned by T). */
void negio__tls_info(const negio__tls *t, negio_auth_info *info);

#endif
