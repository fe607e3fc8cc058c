/* GSS-API status codes as text a person can read (gss_display_status), and in words for the
 * per-message failures. */
#include <stdio.h>
#include <string.h>

#include "gss/gss_internal.h"

/* Appends every message of one status type to S (bounded). */
static void status_text(char *s, size_t cap, OM_uint32 code, int type, gss_OID mech)
{
    OM_uint32 more = 0, min;
    size_t used = strlen(s);
    do {
        gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
        if (GSS_ERROR(gss_display_status(&min, code, type, mech, &more, &b)))
            break;
        if (used + 3 < cap) {
            int n = snprintf(s + used, cap - used, "%s%.*s", used ? "; " : "", (int)b.length,
                             (const char *)b.value);
            if (n > 0)
                used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
        }
        gss_release_buffer(&min, &b);
    } while (more != 0);
}

/* "CALL: MAJOR TEXT; MINOR TEXT (major 0x..., minor ...)" */
static void gss_text(char *text, size_t cap, const char *call, OM_uint32 major, OM_uint32 minor,
                     gss_OID mech)
{
    char gss[NEGIO__DETAIL_MAX] = "", mine[256] = "";
    status_text(gss, sizeof(gss), major, GSS_C_GSS_CODE, GSS_C_NO_OID);
    if (minor != 0)
        status_text(mine, sizeof(mine), minor, GSS_C_MECH_CODE, mech);
    /* gss-ntlmssp names codes it does not know "Unknown Error", and MIT's minor text of a
     * supplementary status is "Success": neither says anything */
    int say = mine[0] != '\0' && strcmp(mine, "Unknown Error") != 0 && strcmp(mine, "Success") != 0;
    snprintf(text, cap, "%s: %s%s%s (major 0x%08x, minor %u)", call, gss, say ? "; " : "",
             say ? mine : "", (unsigned)major, (unsigned)minor);
}

void negio__gss_detail(char *detail, const char *call, OM_uint32 major, OM_uint32 minor,
                       gss_OID mech)
{
    char text[NEGIO__DETAIL_MAX];
    gss_text(text, sizeof(text), call, major, minor, mech);
    negio__detail(detail, "%s", text);
}

void negio__gss_detail_why(char *detail, const char *why, const char *call, OM_uint32 major,
                           OM_uint32 minor, gss_OID mech)
{
    char text[NEGIO__DETAIL_MAX];
    gss_text(text, sizeof(text), call, major, minor, mech);
    size_t keep = strlen(text) + 2;
    if (why == NULL || why[0] == '\0' || keep + 16 >= NEGIO__DETAIL_MAX) {
        negio__detail(detail, "%s", text);
        return;
    }
    negio__detail(detail, "%.*s; %s", (int)(NEGIO__DETAIL_MAX - 1 - keep), why, text);
}

/* A received frame that failed its MIC or unwrap, in words a person can act on, then the
 * mechanism's own report (PROTOCOL.md section 5.4: every such failure is fatal). */
void negio__gss_frame_detail(const negio__gss *g, char *detail, const char *call, OM_uint32 major,
                             OM_uint32 minor)
{
    OM_uint32 routine = GSS_ROUTINE_ERROR(major), sup = GSS_SUPPLEMENTARY_INFO(major);
    const char *what;
    if (routine == GSS_S_BAD_SIG)
        what = g->won == NEGIO_MECH_NTLM
                   ? "the frame does not verify: it was altered, replayed, reordered or dropped "
                     "on the way, or comes from another connection (an NTLM signature covers "
                     "its sequence number and cannot tell which)"
                   : "the frame does not verify: it was altered on the way, or comes from "
                     "another connection";
    else if (routine == GSS_S_DEFECTIVE_TOKEN)
        what = "the frame's token is malformed";
    else if (routine == GSS_S_CONTEXT_EXPIRED)
        what = "the security context has expired";
    else if (routine != 0)
        what = "the frame could not be verified";
    else if (sup & GSS_S_DUPLICATE_TOKEN)
        what = "a replayed frame: a copy of one already received";
    else if (sup & GSS_S_OLD_TOKEN)
        what = "an old frame: replayed, or reordered on the way";
    else if (sup & GSS_S_UNSEQ_TOKEN)
        what = "a frame out of order: reordered on the way";
    else if (sup & GSS_S_GAP_TOKEN)
        what = "a frame is missing: one was dropped on the way";
    else
        what = "the frame could not be verified";
    char text[NEGIO__DETAIL_MAX];
    gss_text(text, sizeof(text), call, major, minor, GSS_C_NO_OID);
    negio__detail(detail, "%s; %s", what, text);
}

/* Whether a mechanism's minor status is the errno value ERR. The mechanism glue renumbers minor
 * codes that pass through SPNEGO, so the number alone cannot tell; its text can. */
int negio__gss_minor_is_errno(OM_uint32 minor, gss_OID mech, int err)
{
    char text[256] = "";
    if (minor == (OM_uint32)err)
        return 1;
    status_text(text, sizeof(text), minor, GSS_C_MECH_CODE, mech);
    return strcmp(text, strerror(err)) == 0;
}

/* SSPI's status codes ([MS-ERREF] 2.1, winerror.h) for the GSS-API failures, as .NET's
 * NegotiateStream maps its own status codes onto them for a HandshakeError; an acceptor that fails
 * without a more precise reason says the logon was denied, as Windows does for a wrong password
 * (gss-ntlmssp and MIT both report GSS_S_FAILURE then). */
uint32_t negio__gss_windows_status(const negio__gss *g)
{
    OM_uint32 maj = g != NULL ? g->failed_major : 0;
    if (maj == 0)
        return 0;
    switch (GSS_ROUTINE_ERROR(maj)) {
    case 0:                 /* a supplementary status on a context token */
        return 0x80090310u; /* SEC_E_OUT_OF_SEQUENCE */
    case GSS_S_BAD_MECH:
    case GSS_S_BAD_MECH_ATTR:
        return 0x80090302u; /* SEC_E_UNSUPPORTED_FUNCTION */
    case GSS_S_BAD_NAME:
    case GSS_S_BAD_NAMETYPE:
        return 0x80090303u; /* SEC_E_TARGET_UNKNOWN */
    case GSS_S_BAD_BINDINGS:
        return 0x80090346u; /* SEC_E_BAD_BINDINGS */
    case GSS_S_BAD_SIG:
        return 0x8009030Fu; /* SEC_E_MESSAGE_ALTERED */
    case GSS_S_NO_CRED:
        return 0x8009030Eu; /* SEC_E_NO_CREDENTIALS */
    case GSS_S_DEFECTIVE_TOKEN:
        return 0x80090308u; /* SEC_E_INVALID_TOKEN */
    case GSS_S_DEFECTIVE_CREDENTIAL:
        return 0x8009030Cu; /* SEC_E_LOGON_DENIED */
    case GSS_S_CREDENTIALS_EXPIRED:
        return 0x80090328u; /* SEC_E_CERT_EXPIRED, as .NET maps CredentialsExpired */
    case GSS_S_CONTEXT_EXPIRED:
        return 0x80090317u; /* SEC_E_CONTEXT_EXPIRED */
    case GSS_S_BAD_QOP:
        return 0x8009030Au; /* SEC_E_QOP_NOT_SUPPORTED */
    case GSS_S_FAILURE:
        return g->role == NEGIO_ROLE_SERVER ? 0x8009030Cu  /* SEC_E_LOGON_DENIED */
                                            : 0x80090304u; /* SEC_E_INTERNAL_ERROR */
    default:
        return 0x80090304u; /* SEC_E_INTERNAL_ERROR */
    }
}
