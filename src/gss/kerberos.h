/* libkrb5 asked directly, inside the GSS provider: the facts GSS-API hides behind its status
 * codes (which KDC addresses were tried, what the KDC said about a password, a service principal
 * or the clock, which key a ticket needs). The plain-C side of it is diag.h; this header is for
 * src/gss alone (krb5 types). */
#ifndef NEGIO_GSS_KERBEROS_H
#define NEGIO_GSS_KERBEROS_H

#include <krb5/krb5.h>
#include <stdint.h>

#include "gss/diag.h"

/* A krb5 context of its own for one inquiry, recording the KDC addresses it contacts. */
typedef struct negio__krb5 {
    krb5_context ctx;
    char tried[200]; /* "tcp 127.0.0.1:88, udp 10.0.0.1:88" */
} negio__krb5;

int negio__krb5_open(negio__krb5 *k, negio__why *why);
void negio__krb5_close(negio__krb5 *k);

/* The full name of the default credential cache (KRB5CCNAME, else default_ccache_name of the
 * configuration, else MIT's own default) into OUT: 0, or -1 when no krb5 context can be made (the
 * configuration cannot be read) or the name does not fit. */
int negio__krb5_default_ccache(char *out, size_t cap);

/* Words for the Kerberos error CODE, met while CLIENT (NULL: unknown) sought a ticket for SERVER
 * (NULL: a ticket-granting ticket) in REALM (NULL: taken from them, else the default). */
void negio__krb5_say(negio__krb5 *k, krb5_error_code code, const char *client, const char *server,
                     const char *realm, negio__why *why);

/* A service ticket for SERVICE ("service@host") with the credentials in CC. 0 or -1. */
int negio__krb5_ticket(negio__krb5 *k, krb5_ccache cc, const char *service, negio__diag_ticket *t,
                       negio__why *why);

/* A KRB-ERROR message (RFC 4120 5.9.1) decoded: the error as a krb5 code, the sender's time. */
int negio__krb5_error_read(const uint8_t *msg, size_t len, krb5_error_code *code, long long *stime);

/* The ticket inside an AP-REQ (RFC 4120 5.5.1; the GSS framing of RFC 4121 4.1 stripped): the
 * service principal, the key version and enctype of the key it is encrypted in. 0 or -1. */
int negio__krb5_ap_req_ticket(const uint8_t *ap_req, size_t len, negio__diag_ticket *t);

/* Why the acceptor failed on a ticket T (from negio__krb5_ap_req_ticket; server "" if unknown)
 * with the Kerberos error CODE (0: no key at all), the keytab KEYTAB (NULL: the default) and
 * the service SERVICE it was configured for (NULL: any). */
void negio__krb5_acceptor_why(const negio__diag_ticket *t, krb5_error_code code, const char *keytab,
                              const char *service, negio__why *why);

/* Why a server answered this client with a KRB-ERROR of CODE sent at its time STIME, for the
 * service SERVICE ("service@host"); the skew measured against the KDC's clock. */
void negio__krb5_peer_error_why(krb5_error_code code, long long stime, const char *service,
                                negio__why *why);

/* Whether CODE is one of the error table krb5's (what MIT's mechanism puts in a minor status). */
int negio__krb5_is_code(uint32_t code);

#endif
