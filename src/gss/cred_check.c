/* The credential check: can a configuration authenticate at all, judged from what is on this
 * host (no KDC is asked), so that a server refuses to start without the key of its service
 * instead of failing every client (negio_config_check_credentials); and the NTLM side of the
 * diagnostics (diag.h): the account file and the mechanism. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gss/diag.h"
#include "gss/gss_internal.h"

/* The accounts of an NTLM account file (DOMAIN:USER:PASSWORD lines, gss-ntlmssp's format; '#'
 * starts a comment): their number, and the first as DOMAIN\user. */
static int ntlm_file_read(const char *file, size_t *count, char *first, size_t cap, negio__why *why)
{
    *count = 0;
    if (first != NULL && cap > 0)
        first[0] = '\0';
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        negio__why_text(why, "ntlm: the account file %s cannot be read: %s", file, strerror(errno));
        negio__why_advice(why, "point NTLM_USER_FILE at a readable DOMAIN:USER:PASSWORD file");
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        char *user = strchr(line, ':');
        if (line[0] == '#' || user == NULL || strchr(user + 1, ':') == NULL)
            continue;
        if (++*count == 1 && first != NULL)
            snprintf(first, cap, "%.*s\\%.*s", (int)(user - line), line,
                     (int)(strchr(user + 1, ':') - user - 1), user + 1);
    }
    explicit_bzero(line, sizeof(line)); /* it held a password */
    fclose(f);
    if (*count == 0) {
        negio__why_text(
            why, "ntlm: the account file %s holds no account (DOMAIN:USER:PASSWORD lines)", file);
        negio__why_advice(why, "add the accounts");
        return -1;
    }
    return 0;
}

int negio__diag_ntlm_client(const char *file, char *account, size_t cap, negio__why *why)
{
    size_t n;
    if (file == NULL)
        file = getenv("NTLM_USER_FILE");
    if (file == NULL || file[0] == '\0') {
        negio__why_text(
            why, "ntlm: no NTLM credentials for the current user (NTLM_USER_FILE is not set)");
        negio__why_advice(why, "give --user and --password-file, or set NTLM_USER_FILE to a "
                               "DOMAIN:USER:PASSWORD file");
        return -1;
    }
    return ntlm_file_read(file, &n, account, cap, why);
}

int negio__diag_ntlm_server(const char *file, size_t *count, negio__why *why)
{
    *count = 0;
    if (file == NULL)
        file = getenv("NTLM_USER_FILE");
    if (file == NULL || file[0] == '\0') {
        negio__why_text(
            why, "ntlm: no NTLM account file (NTLM_USER_FILE is not set): gss-ntlmssp can check "
                 "passwords only through winbind");
        negio__why_advice(why,
                          "set NTLM_USER_FILE to a DOMAIN:USER:PASSWORD file, join the domain with "
                          "winbind, or --mech kerberos");
        return -1;
    }
    return ntlm_file_read(file, count, NULL, 0, why);
}

int negio__diag_ntlm_mech(negio__why *why)
{
    OM_uint32 min;
    gss_OID_set set = GSS_C_NO_OID_SET;
    int present = 0;
    if (!GSS_ERROR(gss_indicate_mechs(&min, &set)))
        gss_test_oid_set_member(&min, &negio__oid_ntlm, set, &present);
    gss_release_oid_set(&min, &set);
    if (present)
        return 0;
    const char *conf = getenv("GSS_MECH_CONFIG");
    negio__why_text(why, "ntlm: the GSS-API library offers no NTLM mechanism (%s)",
                    conf != NULL ? conf : "/etc/gss/mech.d");
    negio__why_advice(why,
                      "install gss-ntlmssp, or add its line (gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 "
                      "PATH/gssntlmssp.so) to the mechanism configuration");
    return -1;
}

static void add(char *out, size_t cap, const negio__why *why)
{
    char one[NEGIO__DETAIL_MAX];
    negio__why_format(why, one, sizeof(one));
    negio__append(out, cap, "%s%s", out[0] ? "; " : "", one);
}

/* A server: the keytab holds the service's key, the NTLM account file (if one is named) is
 * readable; what is found is said when nothing is wrong. */
static int check_server(const negio_config *cfg, char *text, size_t cap)
{
    negio__why why = {"", ""};
    int bad = 0;
    if (cfg->allowed == NEGIO_ALLOW_NTLM && negio__diag_ntlm_mech(&why) < 0) {
        add(text, cap, &why);
        bad = 1;
    }
    if ((cfg->keytab != NULL || cfg->ntlm_file != NULL) && cfg->service == NULL &&
        (cfg->allowed & NEGIO_ALLOW_NTLM)) {
        negio__why_text(&why, "an explicit keytab or NTLM file with NTLM allowed "
                              "needs a service name (gss-ntlmssp limitation)");
        why.advice[0] = '\0';
        add(text, cap, &why);
        bad = 1;
    }
    if (cfg->allowed & NEGIO_ALLOW_KERBEROS) {
        negio__keytab_facts kt;
        if (negio__diag_keytab(cfg->keytab, cfg->service, &kt, &why) < 0) {
            add(text, cap, &why);
            bad = 1;
        } else if (!bad) {
            size_t used = strlen(text);
            snprintf(text + used, cap - used, "%skerberos: the keytab %s holds %zu key%s for %s",
                     used ? "; " : "", kt.name, kt.nkeys + kt.more,
                     kt.nkeys + kt.more == 1 ? "" : "s",
                     kt.principal[0] ? kt.principal : "its principals");
        }
    }
    const char *file = cfg->ntlm_file != NULL ? cfg->ntlm_file : getenv("NTLM_USER_FILE");
    size_t n;
    if ((cfg->allowed & NEGIO_ALLOW_NTLM) && file != NULL &&
        negio__diag_ntlm_server(file, &n, &why) < 0) {
        add(text, cap, &why);
        bad = 1;
    }
    return bad ? NEGIO_ERR_CREDENTIALS : NEGIO_OK;
}

/* A client: some allowed mechanism has credentials here (a password always does). */
static int check_client(const negio_config *cfg, char *text, size_t cap)
{
    negio__why why = {"", ""};
    unsigned allowed = cfg->allowed;
    if (cfg->require_server_auth)
        allowed &= ~NEGIO_ALLOW_NTLM;
    if (cfg->mech == NEGIO_MECH_KERBEROS)
        allowed &= NEGIO_ALLOW_KERBEROS;
    else if (cfg->mech == NEGIO_MECH_NTLM)
        allowed &= NEGIO_ALLOW_NTLM;
    if (cfg->user != NULL || cfg->delegated != NULL)
        return allowed != 0 ? NEGIO_OK : NEGIO_ERR_CREDENTIALS;
    int ok = 0;
    if (allowed & NEGIO_ALLOW_KERBEROS) {
        negio__ccache_facts cc;
        negio__keytab_facts kt;
        const char *ckt = cfg->keytab != NULL ? cfg->keytab : getenv("KRB5_CLIENT_KTNAME");
        if (negio__diag_ccache(cfg->ccache, &cc, &why) == 0 ||
            (ckt != NULL && negio__diag_keytab(ckt, NULL, &kt, &(negio__why){"", ""}) == 0))
            ok = 1;
        else
            add(text, cap, &why);
    }
    char account[256];
    if (allowed & NEGIO_ALLOW_NTLM) {
        if (negio__diag_ntlm_client(cfg->ntlm_file, account, sizeof(account), &why) == 0 &&
            negio__diag_ntlm_mech(&why) == 0)
            ok = 1;
        else
            add(text, cap, &why);
    }
    if (allowed == 0) {
        negio__why_text(&why, "no mechanism is left to authenticate with");
        why.advice[0] = '\0';
        add(text, cap, &why);
    }
    return ok ? NEGIO_OK : NEGIO_ERR_CREDENTIALS;
}

int negio_config_check_credentials(negio_config *cfg, char *detail, size_t cap)
{
    char text[NEGIO__DETAIL_MAX] = "";
    if (cfg == NULL)
        return NEGIO_ERR_INVALID;
    int rc = NEGIO_OK;
    if (cfg->transport != NEGIO_TRANSPORT_TLS)
        rc = cfg->role == NEGIO_ROLE_SERVER ? check_server(cfg, text, sizeof(text))
                                            : check_client(cfg, text, sizeof(text));
    if (rc == NEGIO_OK && cfg->role == NEGIO_ROLE_CLIENT)
        text[0] = '\0'; /* a client's findings are what failed, not the ones that passed */
    if (detail != NULL && cap > 0)
        snprintf(detail, cap, "%s", text);
    return rc;
}
