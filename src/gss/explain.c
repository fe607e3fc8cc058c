/* A failed handshake step or credential acquisition in words a person can act on, put before the
 * mechanism's own status text in the detail (docs/ARCHITECTURE.md section 8.4). GSS-API reports a
 * failure as status codes, and through SPNEGO often not even the right mechanism's: MIT's SPNEGO
 * falls back from a failed Kerberos to NTLM silently and keeps only the last mechanism's status,
 * and MIT's mechglue drops the minor status of gss_acquire_cred_with_password. Where the status
 * does not say enough, the words come from asking again directly (src/gss/kerberos.c: the
 * credential cache, the KDC, the keytab; the NTLM account file) or from the tokens of the
 * conversation (the server's name in an NTLM CHALLENGE, the user of an AUTHENTICATE, the code and
 * time of a KRB-ERROR, the ticket in an AP-REQ). Failure paths only: a question may go to the
 * KDC, and blocks as long as it takes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gss/diag.h"
#include "gss/gss_internal.h"
#include "gss/kerberos.h"
#include "gss/ntlm_check.h"

/* The findings of one failure, "kerberos: ...; ntlm: ...". */
typedef struct words {
    char text[NEGIO__DETAIL_MAX];
} words;

static void add(words *w, const negio__why *why)
{
    if (why->text[0] == '\0')
        return;
    char one[NEGIO__DETAIL_MAX];
    negio__why_format(why, one, sizeof(one));
    negio__append(w->text, sizeof(w->text), "%s%s", w->text[0] ? "; " : "", one);
}

static int kerberos_in_play(const negio__gss *g)
{
    return g->deleg_in == GSS_C_NO_CREDENTIAL &&
           (g->want == NEGIO_MECH_KERBEROS ||
            (g->want == NEGIO_MECH_NEGOTIATE && (g->allowed & NEGIO_ALLOW_KERBEROS)));
}

static int ntlm_in_play(const negio__gss *g)
{
    return g->want == NEGIO_MECH_NTLM ||
           (g->want == NEGIO_MECH_NEGOTIATE && (g->allowed & NEGIO_ALLOW_NTLM));
}

/* The account an NTLM client authenticates as, for the words. */
static void ntlm_account(const negio__gss *g, char *out, size_t cap)
{
    negio__why none;
    if (g->cfg->user != NULL)
        snprintf(out, cap, "%s", g->cfg->user);
    else if (negio__diag_ntlm_client(g->cfg->ntlm_file, out, cap, &none) < 0)
        snprintf(out, cap, "this client's account");
}

/* A negotiating client that requires server authentication never offers NTLM: say so where
 * Kerberos failed, since nothing else was tried. */
static void ntlm_not_offered(const negio__gss *g, words *w)
{
    if (g->want != NEGIO_MECH_NEGOTIATE || !g->require_server_auth ||
        !(g->cfg->allowed & NEGIO_ALLOW_NTLM))
        return;
    negio__why why = {"", ""};
    negio__why_text(&why, "ntlm: not offered, since server authentication is required and ntlm "
                          "cannot authenticate a server");
    add(w, &why);
}

/* What Kerberos says about a ticket for the target with this client's credentials: 0 when it
 * would get one. With a password (wiped since the credential was acquired), the tickets the
 * credential holds are asked with. */
static int kerberos_client(negio__gss *g, negio__why *why)
{
    const negio_config *cfg = g->cfg;
    negio__diag_ticket t;
    if (cfg->user == NULL)
        return negio__diag_service_ticket(cfg->service, cfg->ccache, cfg->keytab, NULL, NULL, &t,
                                          why);
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_ccache cc = NULL;
    OM_uint32 min;
    int rc = -1;
    if (krb5_cc_new_unique(k.ctx, "MEMORY", NULL, &cc) == 0) {
        if (!GSS_ERROR(gss_krb5_copy_ccache(&min, g->cred, cc))) {
            rc = negio__krb5_ticket(&k, cc, cfg->service, &t, why);
        } else {
            negio__why_text(
                why, "kerberos: no ticket-granting ticket was obtained with the password of %s",
                cfg->user);
            negio__why_advice(
                why, "'negio doctor client --user %s' says why (the KDC, the password)", cfg->user);
        }
        krb5_cc_destroy(k.ctx, cc);
    }
    negio__krb5_close(&k);
    return rc;
}

/* "service/host" for the service name "service@host" (how gss-ntlmssp names the target). */
static void ntlm_spn(const char *service, char *out, size_t cap)
{
    snprintf(out, cap, "%s", service != NULL ? service : "");
    char *at = strrchr(out, '@');
    if (at != NULL)
        *at = '/';
}

static void client_words(negio__gss *g, OM_uint32 min, gss_OID mech, const uint8_t *in,
                         size_t in_len, words *w)
{
    negio__why why = {"", ""};
    negio_mech m = NEGIO_MECH_NONE;
    const uint8_t *inner = NULL;
    size_t ilen = 0;
    if (in != NULL)
        negio__peer_token_inner(in, in_len, &m, &inner, &ilen);
    /* Kerberos failed if it was the mechanism under way, or SPNEGO went past it (the first
     * step failed whole, or the conversation is on NTLM) */
    int krb_failed = kerberos_in_play(g) &&
                     (in == NULL || g->want == NEGIO_MECH_KERBEROS ||
                      (g->tokens.inner != NEGIO_MECH_KERBEROS && !g->tokens.offered_kerberos));
    if (krb_failed) {
        if (kerberos_client(g, &why) == 0 && negio__krb5_is_code(min)) {
            negio__krb5 k; /* Kerberos works for the target: the mechanism's own code says why */
            if (negio__krb5_open(&k, &why) == 0) {
                negio__krb5_say(&k, (krb5_error_code)min, g->cfg->user, g->cfg->service, NULL,
                                &why);
                negio__krb5_close(&k);
            }
        }
        add(w, &why);
        ntlm_not_offered(g, w);
    }
    if (!ntlm_in_play(g))
        return;
    why.text[0] = why.advice[0] = '\0';
    char name[256], spn[300];
    if (m == NEGIO_MECH_NTLM &&
        negio__ntlm_challenge_target(inner, ilen, name, sizeof(name)) == 0) {
        ntlm_spn(g->cfg->service, spn, sizeof(spn));
        if (strcasecmp(name, spn) != 0) {
            negio__why_text(&why, "ntlm: the server is %s, not %s as asked", name, spn);
            negio__why_advice(&why, "check the service name (--spn)");
        }
    } else if (in == NULL && g->cfg->user == NULL) {
        char account[256];
        negio__diag_ntlm_client(g->cfg->ntlm_file, account, sizeof(account), &why);
    }
    (void)mech;
    add(w, &why);
}

static void server_words(negio__gss *g, OM_uint32 maj, OM_uint32 min, gss_OID mech,
                         const uint8_t *in, size_t in_len, words *w)
{
    negio__why why = {"", ""};
    negio_mech m = NEGIO_MECH_NONE;
    const uint8_t *inner = NULL, *body;
    size_t ilen = 0, blen;
    unsigned id;
    negio__peer_token_inner(in, in_len, &m, &inner, &ilen);
    const negio_config *cfg = g->cfg;
    if (m == NEGIO_MECH_KERBEROS && negio__peer_token_krb5(inner, ilen, &id, &body, &blen) == 0 &&
        id == 0x0100) {
        negio__diag_ticket t;
        if (negio__krb5_ap_req_ticket(body, blen, &t) < 0)
            memset(&t, 0, sizeof(t));
        negio__krb5_acceptor_why(&t, negio__krb5_is_code(min) ? (krb5_error_code)min : 0,
                                 cfg->keytab, cfg->service, &why);
    } else if (m == NEGIO_MECH_NTLM && g->tokens.ntlm_seen >= 2) {
        char user[256];
        if (negio__ntlm_auth_user(inner, ilen, user, sizeof(user)) < 0)
            snprintf(user, sizeof(user), "(no user name)");
        const char *file = cfg->ntlm_file != NULL ? cfg->ntlm_file : getenv("NTLM_USER_FILE");
        /* gss-ntlmssp: ENOENT for a user without a domain that is not in the file, EACCES for
         * a DOMAIN\user that is not, EINVAL for a response that does not verify */
        if (negio__gss_minor_is_errno(min, mech, ENOENT) ||
            negio__gss_minor_is_errno(min, mech, EACCES)) {
            negio__why_text(&why, "ntlm: unknown user %s (not in %s)", user,
                            file != NULL ? file : "the NTLM accounts: NTLM_USER_FILE is not set");
            negio__why_advice(&why, "check the user name, or add the account");
        } else if (negio__gss_minor_is_errno(min, mech, EINVAL)) {
            negio__why_text(
                &why,
                "ntlm: logon failure for %s: wrong password (the response does not verify "
                "with the account's password)",
                user);
            negio__why_advice(&why, "check the password");
        }
    }
    if (why.text[0] == '\0' && GSS_ROUTINE_ERROR(maj) == GSS_S_BAD_MECH) {
        negio__why_text(&why, "the client offered no mechanism this server accepts (it allows %s)",
                        cfg->allowed == NEGIO_ALLOW_ALL   ? "kerberos and ntlm"
                        : cfg->allowed & NEGIO_ALLOW_NTLM ? "ntlm only"
                                                          : "kerberos only");
        negio__why_advice(&why, "compare the client's --mech (and --require-mutual, which rules "
                                "out ntlm) with this server's --mech");
    }
    if (why.text[0] == '\0' && GSS_ROUTINE_ERROR(maj) == GSS_S_NO_CRED &&
        (cfg->allowed & NEGIO_ALLOW_KERBEROS)) {
        negio__keytab_facts kt;
        negio__diag_keytab(cfg->keytab, cfg->service, &kt, &why);
    }
    add(w, &why);
}

void negio__gss_explain_step(negio__gss *g, const char *call, OM_uint32 maj, OM_uint32 min,
                             gss_OID mech, const uint8_t *in, size_t in_len, char *detail)
{
    words w = {""};
    if (g->role == NEGIO_ROLE_CLIENT)
        client_words(g, min, mech, in, in_len, &w);
    else if (in != NULL)
        server_words(g, maj, min, mech, in, in_len, &w);
    negio__gss_detail_why(detail, w.text, call, maj, min, mech);
}

void negio__gss_explain_acquire(negio__gss *g, const negio_config *cfg, const char *call,
                                OM_uint32 maj, OM_uint32 min, char *detail)
{
    words w = {""};
    negio__why why = {"", ""};
    char account[256];
    if (g->role == NEGIO_ROLE_CLIENT && cfg->user != NULL) {
        if (kerberos_in_play(g) && negio__diag_password(cfg->user, cfg->password, &why) < 0)
            add(&w, &why);
    } else if (g->role == NEGIO_ROLE_CLIENT) {
        negio__ccache_facts facts;
        if (kerberos_in_play(g) && negio__diag_ccache(cfg->ccache, &facts, &why) < 0)
            add(&w, &why);
        if (ntlm_in_play(g) &&
            negio__diag_ntlm_client(cfg->ntlm_file, account, sizeof(account), &why) < 0)
            add(&w, &why);
        ntlm_not_offered(g, &w);
    } else {
        negio__keytab_facts kt;
        size_t n;
        if ((cfg->allowed & NEGIO_ALLOW_KERBEROS) &&
            negio__diag_keytab(cfg->keytab, cfg->service, &kt, &why) < 0)
            add(&w, &why);
        if ((cfg->allowed & NEGIO_ALLOW_NTLM) && cfg->ntlm_file != NULL &&
            negio__diag_ntlm_server(cfg->ntlm_file, &n, &why) < 0)
            add(&w, &why);
    }
    negio__gss_detail_why(detail, w.text, call, maj, min, GSS_C_NO_OID);
}

/* The client's view of the server's failure report: REASON its text, TOK its error token. */
void negio__gss_explain_peer(negio__gss *g, const uint8_t *tok, size_t len, const char *reason,
                             char *out, size_t cap)
{
    words w = {""};
    negio__why why = {"", ""};
    negio_mech m = NEGIO_MECH_NONE;
    const uint8_t *inner = NULL, *body;
    size_t ilen = 0, blen;
    unsigned id;
    out[0] = '\0';
    /* an NTLM client's context is complete once it sent its AUTHENTICATE: the server's verdict
     * on it comes after */
    if (g == NULL || g->role != NEGIO_ROLE_CLIENT)
        return;
    if (!g->complete && len > 0 && negio__peer_error_token_ok(&g->tokens, tok, len))
        negio__peer_token_inner(tok, len, &m, &inner, &ilen);
    krb5_error_code code;
    long long stime;
    if (m == NEGIO_MECH_KERBEROS && negio__peer_token_krb5(inner, ilen, &id, &body, &blen) == 0 &&
        id == 0x0300 && negio__krb5_error_read(body, blen, &code, &stime) == 0) {
        negio__krb5_peer_error_why(code, stime, g->cfg->service, &why);
    } else if (strcmp(reason, negio_strerror(NEGIO_ERR_HANDSHAKE)) == 0 &&
               g->tokens.ntlm_seen >= 1 &&
               (g->want == NEGIO_MECH_NTLM || g->tokens.inner == NEGIO_MECH_NTLM)) {
        char account[256];
        ntlm_account(g, account, sizeof(account));
        negio__why_text(&why,
                        "ntlm: the server refused the logon as %s: wrong password or unknown user",
                        account);
        negio__why_advice(&why,
                          "check the user name and the password (the server's log says which)");
    } else if (g->tokens.seen == 0 && len > 0 && negio__peer_token_rejects(tok, len)) {
        negio__why_text(&why, "the server accepts none of the mechanisms this client offered (%s)",
                        g->allowed == NEGIO_ALLOW_ALL   ? "kerberos, ntlm"
                        : g->allowed & NEGIO_ALLOW_NTLM ? "ntlm"
                                                        : "kerberos");
        if (g->require_server_auth && (g->cfg->allowed & NEGIO_ALLOW_NTLM))
            negio__why_advice(&why, "ntlm was not offered: server authentication is required, "
                                    "and ntlm cannot authenticate a server");
        else
            negio__why_advice(&why, "compare the server's --mech with this one");
    } else if (strcmp(reason, negio_strerror(NEGIO_ERR_POLICY)) == 0 && g->tokens.seen == 0 &&
               g->want != NEGIO_MECH_NEGOTIATE) {
        negio__why_text(&why, "the server does not accept %s", negio_mech_name(g->want));
        negio__why_advice(&why, "use --mech negotiate, or a mechanism the server allows");
    }
    add(&w, &why);
    snprintf(out, cap, "%s", w.text);
}
