/* The one path by which a context token from the peer reaches GSS-API (docs/ARCHITECTURE.md
 * section 8.2, docs/PROTOCOL.md section 7.5): every HANDSHAKE token, every token inside a
 * HANDSHAKE_ERROR, in every wire profile, is checked here first against what this side expects
 * at this point of the conversation: its framing (RFC 2743 3.1, RFC 4178 DER, [MS-NLMP]
 * messages) exactly, the message type each mechanism may send in this direction, and the
 * client's downgrade policy. GSS never parses a token this file has not accepted. */
#ifndef NEGIO_GSS_PEER_TOKEN_H
#define NEGIO_GSS_PEER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "negio/negio.h"

/* What this side has learned of the conversation so far. Zeroed, then ROLE, WANT (a client's
 * mechanism) and REFUSE_FALLBACK set by the provider. */
typedef struct negio__peer_tokens {
    negio_role role;
    negio_mech want;      /* client: what it asked GSS for; server: what the first token named */
    negio_mech inner;     /* SPNEGO: the mechanism under way (NEGIO_MECH_NONE: unknown) */
    unsigned seen;        /* peer tokens accepted so far */
    unsigned ntlm_seen;   /* NTLM messages among them */
    int offered_kerberos; /* client: its NegTokenInit put Kerberos first, with a token */
    int refuse_fallback;  /* client: SPNEGO moving to NTLM after that is refused (a downgrade) */
    int ntlm_identify;    /* server: the client's NEGOTIATE or AUTHENTICATE set NEGOTIATE_IDENTIFY
                             ([MS-NLMP] 2.2.2.5), which gss-ntlmssp does not report as
                             GSS_C_IDENTIFY_FLAG */
} negio__peer_tokens;

/* Checks the peer's next context token TOK and, when it is accepted, records what it says.
 * Returns 0 when TOK may be given to GSS; NEGIO_ERR_HANDSHAKE when it is malformed or not what
 * the mechanism may send here; NEGIO_ERR_POLICY when the server moves a client that offered
 * Kerberos to NTLM and REFUSE_FALLBACK is set. *WHY (static text) says why. */
int negio__peer_token_check(negio__peer_tokens *st, const uint8_t *tok, size_t len,
                            const char **why);
/* Whether a client may give TOK, the token of the peer's HANDSHAKE_ERROR, to GSS to learn the
 * mechanism's own reason: only a Kerberos KRB-ERROR (RFC 4121 4.1), raw or in a SPNEGO response,
 * on a conversation that is on Kerberos, and only if it passes the same checks as a handshake
 * token. Nothing else is ever interpreted; NTLM has no error tokens. Changes nothing in ST. */
int negio__peer_error_token_ok(const negio__peer_tokens *st, const uint8_t *tok, size_t len);
/* The mechanism token inside TOK (a token negio__peer_token_check accepted, or this side's own):
 * TOK itself when it is an NTLM message or a framed Kerberos token, else a SPNEGO NegTokenInit's
 * mechToken or NegTokenResp's responseToken. *MECH says which mechanism it is (NEGIO_MECH_NONE,
 * *INNER NULL: there is none). For the words of a failure, never to decide anything. */
void negio__peer_token_inner(const uint8_t *tok, size_t len, negio_mech *mech,
                             const uint8_t **inner, size_t *inner_len);
/* A framed Kerberos token (RFC 4121 4.1): its TOK_ID and the message after it. 0 or -1. */
int negio__peer_token_krb5(const uint8_t *tok, size_t len, unsigned *tok_id, const uint8_t **body,
                           size_t *body_len);
/* Whether TOK is a SPNEGO response that rejects the negotiation (negState reject, RFC 4178
 * 4.2.2): the server accepts none of the mechanisms offered. */
int negio__peer_token_rejects(const uint8_t *tok, size_t len);
/* A client records its own first token (what its NegTokenInit offered). */
void negio__peer_tokens_own_first(negio__peer_tokens *st, const uint8_t *tok, size_t len);

#endif
