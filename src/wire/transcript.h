/* The handshake transcript (docs/PROTOCOL.md section 4.3): SHA-256 over every HANDSHAKE frame of
 * the connection, header and body, in the order the frames crossed the wire. Each side computes
 * it from the bytes it sent and received, and the POLICY frame, signed with the new context,
 * carries it to the peer for comparison. */
#ifndef NEGIO_CORE_TRANSCRIPT_H
#define NEGIO_CORE_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#define NEGIO__TRANSCRIPT_LEN 32

typedef struct negio__transcript negio__transcript;

/* Adds one frame (its 8 header bytes, then its body) to *T, made on first use.
 * 0 or NEGIO_ERR_NOMEM. */
int negio__transcript_add(negio__transcript **t, const uint8_t *hdr, const uint8_t *body,
                          size_t len);
/* Writes the hash of everything added (of nothing, when *T is NULL) to OUT and releases *T.
 * 0 or NEGIO_ERR_NOMEM. */
int negio__transcript_final(negio__transcript **t, uint8_t out[NEGIO__TRANSCRIPT_LEN]);
void negio__transcript_free(negio__transcript **t);

#endif
