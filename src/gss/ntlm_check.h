#ifndef NEGIO_GSS_NTLM_CHECK_H
#define NEGIO_GSS_NTLM_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Returns why an NTLM CHALLENGE message is unsafe to hand to gss-ntlmssp, or NULL if it is
 * acceptable or not a CHALLENGE at all. */
const char *negio__ntlm_check_challenge(const uint8_t *msg, size_t len);
/* Returns why M is not an acceptable NTLM message of type EXPECT (1 NEGOTIATE, 2 CHALLENGE,
 * 3 AUTHENTICATE) whose fields all lie inside it, or NULL. A CHALLENGE also passes the check
 * above. */
const char *negio__ntlm_check_message(const uint8_t *msg, size_t len, uint32_t expect);

/* For the words of a failure: the server's name in a CHALLENGE's target info (MsvAvTargetName,
 * [MS-NLMP] 2.2.2.1: gss-ntlmssp refuses a CHALLENGE whose name differs from the one the client
 * asked for), and the DOMAIN\user an AUTHENTICATE logs on as; printable ASCII ('?' for anything
 * else) into OUT of CAP bytes. 0 when the message has one, else -1 (OUT ""). */
int negio__ntlm_challenge_target(const uint8_t *msg, size_t len, char *out, size_t cap);
int negio__ntlm_auth_user(const uint8_t *msg, size_t len, char *out, size_t cap);

#endif
