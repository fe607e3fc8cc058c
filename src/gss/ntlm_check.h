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

#endif
