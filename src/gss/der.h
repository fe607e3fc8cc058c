/* A minimal DER reader for the SPNEGO tokens negio inspects before GSS sees them (RFC 4178,
 * X.690): definite lengths of up to four bytes, nothing else. */
#ifndef NEGIO_GSS_DER_H
#define NEGIO_GSS_DER_H

#include <stddef.h>
#include <stdint.h>

/* Reads the element at *P (before END): its tag and the bounds of its content, and moves *P past
 * it. 0 when the element is malformed or runs past END. */
int negio__der_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **body,
                    size_t *len);
/* Reads one element that fills [P, END) exactly and has tag WANT. */
int negio__der_exact(const uint8_t *p, const uint8_t *end, uint8_t want, const uint8_t **body,
                     size_t *len);

#endif
