/* Kerberos asked directly (libkrb5): what a password, a credential cache, a keytab, a service
 * principal and the KDC's clock look like, in words a person can act on (diag.h). GSS-API
 * reduces all of it to a status code, and drops it altogether where MIT's mechglue or SPNEGO
 * hide the mechanism's answer. Each inquiry opens a krb5 context of its own, with the process's
 * configuration (KRB5_CONFIG), and records which KDC addresses it contacted. */
#include <errno.h>
#include <profile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gss/der.h"
#include "gss/kerberos.h"

#include <stdarg.h>

void negio__why_format(const negio__why *w, char *out, size_t cap)
{
    out[0] = '\0';
    negio__append(out, cap, "%s%s%s", w->text, w->advice[0] ? ": " : "", w->advice);
}

void negio__why_text(negio__why *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof(w->text), fmt, ap);
    va_end(ap);
}

void negio__why_advice(negio__why *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->advice, sizeof(w->advice), fmt, ap);
    va_end(ap);
}

void negio__append(char *out, size_t cap, const char *fmt, ...)
{
    size_t used = strnlen(out, cap);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, cap - used, fmt, ap);
    va_end(ap);
}

static const char *config_files(void)
{
    const char *f = getenv("KRB5_CONFIG");
    return f != NULL && f[0] != '\0' ? f : "/etc/krb5.conf";
}

/* "tcp 127.0.0.1:88" for each KDC address a request went to (the trace messages of MIT's
 * sendto_kdc.c: "Initiating TCP connection to stream ADDR", "Sending initial UDP request to dgram
 * ADDR", "Sending HTTPS request to https ADDR"). */
static void KRB5_CALLCONV on_trace(krb5_context ctx, const krb5_trace_info *info, void *data)
{
    (void)ctx;
    negio__krb5 *k = data;
    static const struct {
        const char *mark, *proto;
    } kinds[] = {{" to stream ", "tcp"}, {" to dgram ", "udp"}, {" to https ", "https"}};
    if (info == NULL || info->message == NULL)
        return;
    const char *m = info->message;
    if (strstr(m, "Initiating TCP") == NULL && strstr(m, "Sending initial") == NULL &&
        strstr(m, "Sending HTTPS") == NULL)
        return;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const char *at = strstr(m, kinds[i].mark);
        if (at == NULL)
            continue;
        at += strlen(kinds[i].mark);
        char one[96];
        snprintf(one, sizeof(one), "%s %.*s", kinds[i].proto, (int)strcspn(at, " \n"), at);
        if (strstr(k->tried, one) != NULL)
            return;
        size_t used = strlen(k->tried);
        if (used + strlen(one) + 3 < sizeof(k->tried))
            snprintf(k->tried + used, sizeof(k->tried) - used, "%s%s", used ? ", " : "", one);
        return;
    }
}

int negio__krb5_open(negio__krb5 *k, negio__why *why)
{
    memset(k, 0, sizeof(*k));
    krb5_error_code code = krb5_init_context(&k->ctx);
    if (code != 0) {
        k->ctx = NULL;
        negio__why_text(why, "kerberos: the configuration cannot be read (%s): %s", config_files(),
                        code == ENOMEM ? "out of memory" : strerror(code > 0 ? (int)code : EINVAL));
        negio__why_advice(why, "fix the file, or point KRB5_CONFIG at the right one");
        return -1;
    }
    krb5_set_trace_callback(k->ctx, on_trace, k);
    return 0;
}

void negio__krb5_close(negio__krb5 *k)
{
    if (k->ctx != NULL)
        krb5_free_context(k->ctx);
    k->ctx = NULL;
}

int negio__krb5_default_ccache(char *out, size_t cap)
{
    krb5_context ctx = NULL;
    if (krb5_init_context(&ctx) != 0)
        return -1;
    const char *name = krb5_cc_default_name(ctx);
    int n = name != NULL ? snprintf(out, cap, "%s", name) : -1;
    krb5_free_context(ctx);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int negio__krb5_is_code(uint32_t code)
{
    /* the com_err table "krb5": ERROR_TABLE_BASE_krb5 .. + 255 */
    return (code & 0xffffff00u) == ((uint32_t)ERROR_TABLE_BASE_krb5 & 0xffffff00u);
}

static void unparse(krb5_context ctx, krb5_const_principal p, char *out, size_t cap)
{
    char *s = NULL;
    if (p != NULL && krb5_unparse_name(ctx, p, &s) == 0) {
        snprintf(out, cap, "%s", s);
        krb5_free_unparsed_name(ctx, s);
    } else {
        snprintf(out, cap, "?");
    }
}

static void when(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (localtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "%lld", t);
}

static long profile_int(krb5_context ctx, const char *section, const char *name, long def)
{
    profile_t prof = NULL;
    int v = (int)def;
    if (krb5_get_profile(ctx, &prof) == 0) {
        if (profile_get_integer(prof, section, name, NULL, (int)def, &v) != 0)
            v = (int)def;
        profile_release(prof);
    }
    return v;
}

/* The realm of a principal's text "x@REALM", else the default realm. */
static void realm_of(krb5_context ctx, const char *a, const char *b, char *out, size_t cap)
{
    const char *names[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const char *at = names[i] != NULL ? strrchr(names[i], '@') : NULL;
        if (at != NULL && at[1] != '\0') {
            snprintf(out, cap, "%s", at + 1);
            return;
        }
    }
    char *def = NULL;
    if (krb5_get_default_realm(ctx, &def) == 0) {
        snprintf(out, cap, "%s", def);
        krb5_free_default_realm(ctx, def);
    } else {
        snprintf(out, cap, "(no default realm)");
    }
}

/* A clock skew reported to WHOSE side, measured against the KDC of REALM (NULL or "": the
 * default realm); -1 when the KDC's time cannot be learned. */
static int skew_words(const char *realm, const char *whose, negio__why *why)
{
    long offset = 0, allowed = 300;
    negio__why probe;
    if (realm != NULL && realm[0] == '\0')
        realm = NULL;
    int rc = negio__diag_kdc_clock(realm, &offset, &allowed, &probe);
    if (rc == -2)
        return -1;
    if (rc == 0) /* this side agrees with the KDC: the other side's clock is off */
        negio__why_text(
            why,
            "kerberos: clock skew: the other side's clock is off (%s clock is within %ld s of "
            "the KDC's of %s; at most %ld s are allowed)",
            whose, labs(offset), realm != NULL ? realm : "the default realm", allowed);
    else
        negio__why_text(
            why,
            "kerberos: clock skew: %s clock is %ld s %s the KDC's of %s (at most %ld s are "
            "allowed)",
            whose, labs(offset), offset > 0 ? "behind" : "ahead of",
            realm != NULL ? realm : "the default realm", allowed);
    negio__why_advice(why, "set the clocks right (NTP)");
    return 0;
}

void negio__krb5_say(negio__krb5 *k, krb5_error_code code, const char *client, const char *server,
                     const char *realm_in, negio__why *why)
{
    char realm[128];
    if (realm_in != NULL)
        snprintf(realm, sizeof(realm), "%s", realm_in);
    else
        realm_of(k->ctx, server, client, realm, sizeof(realm));
    const char *who = client != NULL ? client : "the user";
    why->advice[0] = '\0';
    switch (code) {
    case KRB5_KDC_UNREACH:
        negio__why_text(why, "kerberos: no KDC of realm %s answered (%s%s)", realm,
                        k->tried[0] ? "tried " : "no address to try", k->tried);
        negio__why_advice(
            why, "check that the KDC runs and can be reached, and the realm's kdc entries in %s",
            config_files());
        return;
    case KRB5_REALM_CANT_RESOLVE:
        negio__why_text(why, "kerberos: the KDC addresses of realm %s cannot be resolved", realm);
        negio__why_advice(why, "check the realm's kdc entries in %s and DNS", config_files());
        return;
    case KRB5_REALM_UNKNOWN:
        negio__why_text(why,
                        "kerberos: realm %s is unknown: no kdc entry in %s, and DNS names none",
                        realm, config_files());
        negio__why_advice(why,
                          "add the realm with its kdc to [realms], or set dns_lookup_kdc = true");
        return;
    case KRB5_CONFIG_NODEFREALM:
        negio__why_text(why, "kerberos: no default realm is configured (%s)", config_files());
        negio__why_advice(why,
                          "set default_realm in [libdefaults], or name the user as user@REALM");
        return;
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
        negio__why_text(why, "kerberos: server not found in Kerberos database (%s)",
                        server != NULL ? server : "?");
        negio__why_advice(why,
                          "check the service name (SERVICE@HOST; 'negio doctor' shows how HOST "
                          "canonicalises), or create the principal and put its key in the server's "
                          "keytab");
        return;
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        negio__why_text(why, "kerberos: client not found in Kerberos database (%s)", who);
        negio__why_advice(why, "check the user name, or create the account");
        return;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
        if (server == NULL) {
            negio__why_text(
                why, "kerberos: wrong password for %s (the KDC refused the pre-authentication)",
                who);
            negio__why_advice(why, "check the password, and the user name");
            return;
        }
        break;
    case KRB5KDC_ERR_KEY_EXP:
        negio__why_text(why, "kerberos: the password of %s has expired", who);
        negio__why_advice(why, "change it (kpasswd)");
        return;
    case KRB5KDC_ERR_CLIENT_REVOKED:
        negio__why_text(why, "kerberos: the account %s is disabled or locked out", who);
        negio__why_advice(why, "ask the realm's administrator");
        return;
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
        negio__why_text(why, "kerberos: the ticket-granting ticket of %s has expired", who);
        negio__why_advice(why, "run kinit again");
        return;
    case KRB5KRB_AP_ERR_SKEW:
        if (skew_words(realm, "this host's", why) == 0)
            return;
        negio__why_text(
            why, "kerberos: clock skew: this host's clock and the KDC's of %s differ too much",
            realm);
        negio__why_advice(why, "set the clocks right (NTP)");
        return;
    case KRB5KDC_ERR_ETYPE_NOSUPP:
        negio__why_text(why, "kerberos: no encryption type in common with the KDC for %s",
                        server != NULL ? server : who);
        negio__why_advice(why,
                          "compare permitted_enctypes in %s with the principal's keys (kadmin "
                          "getprinc)",
                          config_files());
        return;
    case KRB5KDC_ERR_POLICY:
        negio__why_text(why, "kerberos: the KDC's policy refuses this request (%s%s%s)", who,
                        server ? " for " : "", server ? server : "");
        negio__why_advice(why, "ask the realm's administrator");
        return;
    default:
        break;
    }
    const char *msg = krb5_get_error_message(k->ctx, code);
    negio__why_text(why, "kerberos: %s", msg);
    krb5_free_error_message(k->ctx, msg);
}

/* SERVICE "service@host" as the principal MIT's GSS mechanism makes of it. */
static krb5_error_code service_principal(krb5_context ctx, const char *service, krb5_principal *p)
{
    char svc[256];
    snprintf(svc, sizeof(svc), "%s", service);
    char *at = strrchr(svc, '@');
    const char *host = NULL;
    if (at != NULL) {
        *at = '\0';
        host = at + 1;
    }
    return krb5_sname_to_principal(ctx, host, svc, KRB5_NT_SRV_HST, p);
}

int negio__diag_service_principal(const char *service, char *out, size_t cap, negio__why *why)
{
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_principal p = NULL;
    krb5_error_code code = service_principal(k.ctx, service, &p);
    int rc = 0;
    if (code != 0) {
        negio__krb5_say(&k, code, NULL, service, NULL, why);
        rc = -1;
    } else {
        unparse(k.ctx, p, out, cap);
        krb5_free_principal(k.ctx, p);
    }
    negio__krb5_close(&k);
    return rc;
}

static void ticket_facts(krb5_context ctx, const krb5_creds *c, negio__diag_ticket *t)
{
    memset(t, 0, sizeof(*t));
    unparse(ctx, c->server, t->server, sizeof(t->server));
    t->start = c->times.starttime ? c->times.starttime : c->times.authtime;
    t->end = c->times.endtime;
    t->renew = c->times.renew_till;
    krb5_ticket *tkt = NULL;
    if (krb5_decode_ticket(&c->ticket, &tkt) == 0) {
        t->kvno = (int)tkt->enc_part.kvno;
        if (krb5_enctype_to_name(tkt->enc_part.enctype, FALSE, t->enctype, sizeof(t->enctype)))
            snprintf(t->enctype, sizeof(t->enctype), "enctype %d", (int)tkt->enc_part.enctype);
        krb5_free_ticket(ctx, tkt);
    }
}

static int is_tgt(krb5_const_principal server, krb5_const_principal client)
{
    return server->length == 2 && server->data[0].length == 6 &&
           memcmp(server->data[0].data, "krbtgt", 6) == 0 &&
           server->data[1].length == client->realm.length &&
           memcmp(server->data[1].data, client->realm.data, client->realm.length) == 0;
}

/* Reads the cache CC into OUT; 0 when it holds a valid TGT. */
static int ccache_read(negio__krb5 *k, krb5_ccache cc, negio__ccache_facts *out, negio__why *why)
{
    krb5_principal client = NULL;
    char *full = NULL;
    if (krb5_cc_get_full_name(k->ctx, cc, &full) == 0) {
        snprintf(out->name, sizeof(out->name), "%s", full);
        krb5_free_string(k->ctx, full);
    }
    krb5_error_code code = krb5_cc_get_principal(k->ctx, cc, &client);
    if (code == KRB5_FCC_NOFILE || code == KRB5_CC_NOTFOUND || code == ENOENT) {
        negio__why_text(why, "kerberos: no ticket: the credential cache %s does not exist",
                        out->name);
        negio__why_advice(why, "run kinit (or give --user and --password-file)");
        return -1;
    }
    if (code != 0) {
        const char *msg = krb5_get_error_message(k->ctx, code);
        negio__why_text(why, "kerberos: the credential cache %s cannot be read: %s", out->name,
                        msg);
        krb5_free_error_message(k->ctx, msg);
        negio__why_advice(why, "run kinit to make it again");
        return -1;
    }
    unparse(k->ctx, client, out->principal, sizeof(out->principal));
    krb5_cc_cursor cur;
    if (krb5_cc_start_seq_get(k->ctx, cc, &cur) == 0) {
        krb5_creds c;
        while (krb5_cc_next_cred(k->ctx, cc, &cur, &c) == 0) {
            if (!krb5_is_config_principal(k->ctx, c.server)) {
                negio__diag_ticket t;
                ticket_facts(k->ctx, &c, &t);
                if (is_tgt(c.server, client) && t.end > out->tgt.end)
                    out->tgt = t;
                if (out->ntickets < NEGIO__DIAG_TICKETS)
                    out->tickets[out->ntickets++] = t;
                else
                    out->more++;
            }
            krb5_free_cred_contents(k->ctx, &c);
        }
        krb5_cc_end_seq_get(k->ctx, cc, &cur);
    }
    krb5_free_principal(k->ctx, client);
    char at[40], renew[40];
    if (out->tgt.server[0] == '\0') {
        negio__why_text(why, "kerberos: no ticket-granting ticket for %s in %s", out->principal,
                        out->name);
        negio__why_advice(why, "run kinit");
        return -1;
    }
    if (out->tgt.end <= (long long)time(NULL)) {
        when(out->tgt.end, at, sizeof(at));
        negio__why_text(why, "kerberos: the ticket-granting ticket of %s in %s expired at %s",
                        out->principal, out->name, at);
        if (out->tgt.renew > (long long)time(NULL)) {
            when(out->tgt.renew, renew, sizeof(renew));
            negio__why_advice(why, "run kinit again (kinit -R renews it until %s)", renew);
        } else {
            negio__why_advice(why, "run kinit again");
        }
        return -1;
    }
    return 0;
}

static krb5_error_code resolve_cc(negio__krb5 *k, const char *name, krb5_ccache *cc)
{
    return name != NULL ? krb5_cc_resolve(k->ctx, name, cc) : krb5_cc_default(k->ctx, cc);
}

int negio__diag_ccache(const char *name, negio__ccache_facts *out, negio__why *why)
{
    memset(out, 0, sizeof(*out));
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_ccache cc = NULL;
    krb5_error_code code = resolve_cc(&k, name, &cc);
    int rc;
    if (code != 0) {
        snprintf(out->name, sizeof(out->name), "%s", name != NULL ? name : "(default)");
        negio__krb5_say(&k, code, NULL, NULL, NULL, why);
        rc = -1;
    } else {
        rc = ccache_read(&k, cc, out, why);
        krb5_cc_close(k.ctx, cc);
    }
    negio__krb5_close(&k);
    return rc;
}

/* An AS exchange for USER with PASSWORD; the credentials in *CREDS (on success). */
static int password_creds(negio__krb5 *k, const char *user, const char *password, krb5_creds *creds,
                          krb5_principal *princ, negio__why *why)
{
    krb5_error_code code = krb5_parse_name(k->ctx, user, princ);
    if (code != 0) {
        negio__krb5_say(k, code, user, NULL, NULL, why);
        return -1;
    }
    char name[NEGIO__DIAG_NAME];
    unparse(k->ctx, *princ, name, sizeof(name));
    krb5_get_init_creds_opt *opt = NULL;
    code = krb5_get_init_creds_opt_alloc(k->ctx, &opt);
    if (code == 0)
        code =
            krb5_get_init_creds_password(k->ctx, creds, *princ, password, NULL, NULL, 0, NULL, opt);
    krb5_get_init_creds_opt_free(k->ctx, opt);
    if (code != 0) {
        negio__krb5_say(k, code, name, NULL, NULL, why);
        return -1;
    }
    return 0;
}

int negio__diag_password(const char *user, const char *password, negio__why *why)
{
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_creds creds;
    krb5_principal princ = NULL;
    memset(&creds, 0, sizeof(creds));
    int rc = password_creds(&k, user, password, &creds, &princ, why);
    if (rc == 0)
        krb5_free_cred_contents(k.ctx, &creds);
    krb5_free_principal(k.ctx, princ);
    negio__krb5_close(&k);
    return rc;
}

/* The ticket-granting tickets of FROM, stored into TO. */
static krb5_error_code copy_tgts(negio__krb5 *k, krb5_ccache from, krb5_ccache to,
                                 krb5_const_principal client)
{
    krb5_cc_cursor cur;
    krb5_creds c;
    krb5_error_code code = krb5_cc_start_seq_get(k->ctx, from, &cur);
    if (code != 0)
        return code;
    while (code == 0 && krb5_cc_next_cred(k->ctx, from, &cur, &c) == 0) {
        if (!krb5_is_config_principal(k->ctx, c.server) && is_tgt(c.server, client))
            code = krb5_cc_store_cred(k->ctx, to, &c);
        krb5_free_cred_contents(k->ctx, &c);
    }
    krb5_cc_end_seq_get(k->ctx, from, &cur);
    return code;
}

int negio__krb5_ticket(negio__krb5 *k, krb5_ccache cc, const char *service, negio__diag_ticket *t,
                       negio__why *why)
{
    krb5_creds in, *out = NULL;
    memset(&in, 0, sizeof(in));
    memset(t, 0, sizeof(*t));
    char client[NEGIO__DIAG_NAME] = "", server[NEGIO__DIAG_NAME] = "";
    krb5_error_code code = service_principal(k->ctx, service, &in.server);
    if (code == 0)
        unparse(k->ctx, in.server, server, sizeof(server));
    if (code == 0 && (code = krb5_cc_get_principal(k->ctx, cc, &in.client)) == 0)
        unparse(k->ctx, in.client, client, sizeof(client));
    /* from the ticket-granting tickets alone, so that the KDC is asked now: a service ticket in
     * the cache would tell what the KDC said when it was issued */
    krb5_ccache fresh = NULL;
    if (code == 0 && (code = krb5_cc_new_unique(k->ctx, "MEMORY", NULL, &fresh)) == 0 &&
        (code = krb5_cc_initialize(k->ctx, fresh, in.client)) == 0)
        code = copy_tgts(k, cc, fresh, in.client);
    if (code == 0)
        code = krb5_get_credentials(k->ctx, 0, fresh, &in, &out);
    if (fresh != NULL)
        krb5_cc_destroy(k->ctx, fresh);
    int rc = 0;
    if (code != 0) {
        /* a referral principal has no realm of its own: name it with the client's */
        if (server[0] != '\0' && server[strlen(server) - 1] == '@' && strrchr(client, '@'))
            snprintf(server + strlen(server) - 1, sizeof(server) - strlen(server) + 1, "%s",
                     strrchr(client, '@'));
        negio__krb5_say(k, code, client[0] ? client : NULL, server[0] ? server : service, NULL,
                        why);
        rc = -1;
    } else {
        ticket_facts(k->ctx, out, t);
        krb5_free_creds(k->ctx, out);
    }
    krb5_free_cred_contents(k->ctx, &in);
    return rc;
}

/* A memory cache holding CREDS for PRINC. */
static krb5_error_code memory_cc(negio__krb5 *k, krb5_principal princ, krb5_creds *creds,
                                 krb5_ccache *cc)
{
    krb5_error_code code = krb5_cc_new_unique(k->ctx, "MEMORY", NULL, cc);
    if (code == 0 && (code = krb5_cc_initialize(k->ctx, *cc, princ)) == 0)
        code = krb5_cc_store_cred(k->ctx, *cc, creds);
    return code;
}

/* Initial credentials from the client keytab (what MIT's GSS mechanism does when the cache has
 * nothing): its first principal. */
static int client_keytab_cc(negio__krb5 *k, const char *path, krb5_ccache *cc)
{
    krb5_keytab kt = NULL;
    krb5_error_code code =
        path != NULL ? krb5_kt_resolve(k->ctx, path, &kt) : krb5_kt_client_default(k->ctx, &kt);
    if (code != 0)
        return -1;
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    krb5_principal princ = NULL;
    if (krb5_kt_start_seq_get(k->ctx, kt, &cur) == 0) {
        if (krb5_kt_next_entry(k->ctx, kt, &e, &cur) == 0) {
            krb5_copy_principal(k->ctx, e.principal, &princ);
            krb5_free_keytab_entry_contents(k->ctx, &e);
        }
        krb5_kt_end_seq_get(k->ctx, kt, &cur);
    }
    int rc = -1;
    krb5_creds creds;
    memset(&creds, 0, sizeof(creds));
    if (princ != NULL &&
        krb5_get_init_creds_keytab(k->ctx, &creds, princ, kt, 0, NULL, NULL) == 0) {
        rc = memory_cc(k, princ, &creds, cc) == 0 ? 0 : -1;
        krb5_free_cred_contents(k->ctx, &creds);
    }
    krb5_free_principal(k->ctx, princ);
    krb5_kt_close(k->ctx, kt);
    return rc;
}

int negio__diag_service_ticket(const char *service, const char *ccache, const char *client_keytab,
                               const char *user, const char *password, negio__diag_ticket *t,
                               negio__why *why)
{
    memset(t, 0, sizeof(*t));
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_ccache cc = NULL;
    int rc = 0;
    if (user != NULL) {
        krb5_creds creds;
        krb5_principal princ = NULL;
        memset(&creds, 0, sizeof(creds));
        rc = password_creds(&k, user, password, &creds, &princ, why);
        if (rc == 0) {
            krb5_error_code code = memory_cc(&k, princ, &creds, &cc);
            krb5_free_cred_contents(k.ctx, &creds);
            if (code != 0) {
                negio__krb5_say(&k, code, user, NULL, NULL, why);
                rc = -1;
            }
        }
        krb5_free_principal(k.ctx, princ);
    } else {
        negio__ccache_facts facts;
        memset(&facts, 0, sizeof(facts));
        krb5_error_code code = resolve_cc(&k, ccache, &cc);
        if (code != 0) {
            negio__krb5_say(&k, code, NULL, NULL, NULL, why);
            rc = -1;
        } else if (ccache_read(&k, cc, &facts, why) < 0) {
            krb5_cc_close(k.ctx, cc);
            cc = NULL;
            rc = client_keytab_cc(&k, client_keytab, &cc); /* WHY stays the cache's */
        }
    }
    if (rc == 0)
        rc = negio__krb5_ticket(&k, cc, service, t, why);
    if (cc != NULL) {
        if (strcmp(krb5_cc_get_type(k.ctx, cc), "MEMORY") == 0)
            krb5_cc_destroy(k.ctx, cc);
        else
            krb5_cc_close(k.ctx, cc);
    }
    negio__krb5_close(&k);
    return rc;
}

int negio__diag_kdc_key(const char *service, const char *keytab, const char *ccache,
                        negio__diag_ticket *t, char *how, size_t hcap, negio__why *why)
{
    memset(t, 0, sizeof(*t));
    negio__ccache_facts facts;
    negio__why none;
    memset(&facts, 0, sizeof(facts));
    if (negio__diag_ccache(ccache, &facts, &none) == 0) {
        snprintf(how, hcap, "a service ticket with the credentials of %s", facts.principal);
        return negio__diag_service_ticket(service, ccache, NULL, NULL, NULL, t, why);
    }
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_principal princ = NULL;
    krb5_keytab kt = NULL;
    krb5_creds creds;
    memset(&creds, 0, sizeof(creds));
    char name[NEGIO__DIAG_NAME] = "";
    int rc = -1;
    krb5_error_code code = service_principal(k.ctx, service, &princ);
    if (code == 0 && princ->realm.length == 0) { /* a referral name: ask the default realm */
        char *def = NULL;
        if ((code = krb5_get_default_realm(k.ctx, &def)) == 0) {
            code = krb5_set_principal_realm(k.ctx, princ, def);
            krb5_free_default_realm(k.ctx, def);
        }
    }
    if (code == 0) {
        unparse(k.ctx, princ, name, sizeof(name));
        snprintf(how, hcap, "an AS exchange with the keytab's own key for %s", name);
        code = keytab != NULL ? krb5_kt_resolve(k.ctx, keytab, &kt) : krb5_kt_default(k.ctx, &kt);
    }
    if (code == 0)
        code = krb5_get_init_creds_keytab(k.ctx, &creds, princ, kt, 0, name, NULL);
    if (code == 0) {
        ticket_facts(k.ctx, &creds, t);
        krb5_free_cred_contents(k.ctx, &creds);
        rc = 0;
    } else if (code == KRB5KDC_ERR_PREAUTH_FAILED || code == KRB5KRB_AP_ERR_BAD_INTEGRITY ||
               code == KRB5_PREAUTH_FAILED) {
        negio__why_text(why, "kerberos: the keytab's key for %s is not the one the KDC has", name);
        negio__why_advice(
            why, "the key changed at the KDC after the keytab was written: export it again "
                 "(kadmin ktadd; ktpass on Windows)");
    } else if (code == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN) {
        negio__why_text(why, "kerberos: the KDC has no principal %s", name);
        negio__why_advice(
            why, "create it (kadmin addprinc -randkey; setspn -S on Windows) and export its "
                 "key into the keytab");
    } else if (code == KRB5_KT_NOTFOUND) {
        negio__why_text(why, "kerberos: the keytab holds no key for %s", name);
        negio__why_advice(why, "export it (kadmin ktadd)");
    } else {
        negio__krb5_say(&k, code, name[0] ? name : NULL, NULL, NULL, why);
        negio__why_advice(
            why,
            "the KDC would not give %s a ticket to itself; with a ticket-granting ticket in "
            "the cache (kinit as any user) the key version is read from a service ticket",
            name[0] ? name : service);
    }
    if (kt != NULL)
        krb5_kt_close(k.ctx, kt);
    krb5_free_principal(k.ctx, princ);
    negio__krb5_close(&k);
    return rc;
}

int negio__diag_kdc_clock(const char *realm_in, long *offset, long *allowed, negio__why *why)
{
    *offset = 0;
    *allowed = 300;
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    *allowed = profile_int(k.ctx, "libdefaults", "clockskew", 300);
    char realm[128];
    char *def = NULL;
    krb5_error_code code = 0;
    if (realm_in != NULL) {
        snprintf(realm, sizeof(realm), "%s", realm_in);
    } else if ((code = krb5_get_default_realm(k.ctx, &def)) == 0) {
        snprintf(realm, sizeof(realm), "%s", def);
        krb5_free_default_realm(k.ctx, def);
    }
    krb5_principal probe = NULL;
    krb5_init_creds_context icc = NULL;
    krb5_error *err = NULL;
    int rc = -1;
    /* a name no realm holds: the KDC answers with an error, which carries its time */
    if (code == 0)
        code = krb5_build_principal(k.ctx, &probe, (unsigned)strlen(realm), realm,
                                    "negio-clock-probe", (char *)NULL);
    if (code == 0)
        code = krb5_init_creds_init(k.ctx, probe, NULL, NULL, 0, NULL, &icc);
    if (code == 0) {
        code = krb5_init_creds_get(k.ctx, icc);
        if (krb5_init_creds_get_error(k.ctx, icc, &err) == 0 && err != NULL) {
            *offset = (long)((long long)err->stime - (long long)time(NULL));
            rc = labs(*offset) <= *allowed ? 0 : 1;
            krb5_free_error(k.ctx, err);
        }
    }
    if (rc == 1) {
        negio__why_text(
            why,
            "kerberos: clock skew: the KDC's clock of %s is %ld s %s this host's (at most "
            "%ld s are allowed)",
            realm, labs(*offset), *offset > 0 ? "ahead of" : "behind", *allowed);
        negio__why_advice(why, "set the clocks right (NTP)");
        rc = -1;
    } else if (rc < 0) {
        negio__krb5_say(&k, code, NULL, NULL, code == KRB5_CONFIG_NODEFREALM ? "" : realm, why);
        rc = -2;
    }
    if (icc != NULL)
        krb5_init_creds_free(k.ctx, icc);
    krb5_free_principal(k.ctx, probe);
    negio__krb5_close(&k);
    return rc;
}

/* The keytab KT's keys for PRINC (NULL: all) into OUT. */
static int keytab_read(negio__krb5 *k, krb5_keytab kt, krb5_const_principal princ,
                       negio__keytab_facts *out, negio__why *why)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    krb5_error_code code = krb5_kt_start_seq_get(k->ctx, kt, &cur);
    if (code != 0) {
        const char *msg = krb5_get_error_message(k->ctx, code);
        negio__why_text(why, "kerberos: the keytab %s cannot be read: %s", out->name, msg);
        krb5_free_error_message(k->ctx, msg);
        negio__why_advice(why, "point --keytab or KRB5_KTNAME at the service's keytab");
        return -1;
    }
    size_t total = 0;
    while (krb5_kt_next_entry(k->ctx, kt, &e, &cur) == 0) {
        total++;
        char name[NEGIO__DIAG_NAME];
        unparse(k->ctx, e.principal, name, sizeof(name));
        if (princ == NULL || krb5_principal_compare_any_realm(k->ctx, princ, e.principal)) {
            if (out->nkeys < NEGIO__DIAG_KEYS) {
                negio__key_facts *key = &out->keys[out->nkeys++];
                snprintf(key->principal, sizeof(key->principal), "%s", name);
                key->kvno = (int)e.vno;
                if (krb5_enctype_to_name(e.key.enctype, FALSE, key->enctype, sizeof(key->enctype)))
                    snprintf(key->enctype, sizeof(key->enctype), "enctype %d", (int)e.key.enctype);
            } else {
                out->more++;
            }
        } else if (strstr(out->others, name) == NULL) {
            size_t used = strlen(out->others);
            if (used + strlen(name) + 8 < sizeof(out->others))
                snprintf(out->others + used, sizeof(out->others) - used, "%s%s", used ? ", " : "",
                         name);
        }
        krb5_free_keytab_entry_contents(k->ctx, &e);
    }
    krb5_kt_end_seq_get(k->ctx, kt, &cur);
    if (total == 0) {
        negio__why_text(why, "kerberos: the keytab %s is empty", out->name);
        negio__why_advice(
            why, "export the service's key into it (kadmin ktadd -k FILE PRINCIPAL; ktpass on "
                 "Windows)");
        return -1;
    }
    if (out->nkeys == 0) {
        negio__why_text(why, "kerberos: the keytab %s holds no key for %s (it holds %s)", out->name,
                        out->principal, out->others);
        negio__why_advice(
            why, "export that principal's key into it, or give the service name the keytab "
                 "is for (--spn)");
        return -1;
    }
    return 0;
}

/* Whether some key in OUT has an enctype krb5.conf permits. */
static int some_permitted(negio__krb5 *k, krb5_keytab kt, krb5_const_principal princ)
{
    krb5_enctype *permitted = NULL;
    if (krb5_get_permitted_enctypes(k->ctx, &permitted) != 0)
        return 1; /* cannot tell: not a finding */
    int ok = 0;
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    if (krb5_kt_start_seq_get(k->ctx, kt, &cur) == 0) {
        while (!ok && krb5_kt_next_entry(k->ctx, kt, &e, &cur) == 0) {
            if (princ == NULL || krb5_principal_compare_any_realm(k->ctx, princ, e.principal))
                for (size_t i = 0; permitted[i] != 0; i++)
                    ok |= permitted[i] == e.key.enctype;
            krb5_free_keytab_entry_contents(k->ctx, &e);
        }
        krb5_kt_end_seq_get(k->ctx, kt, &cur);
    }
    krb5_free_enctypes(k->ctx, permitted);
    return ok;
}

/* The keytab's file name when it is a FILE: keytab (its type prefix removed), else NULL. */
static const char *keytab_file(const char *name)
{
    if (strncmp(name, "FILE:", 5) == 0)
        return name + 5;
    if (strncmp(name, "WRFILE:", 7) == 0)
        return name + 7;
    return strchr(name, ':') == NULL || name[0] == '/' ? name : NULL;
}

static int keytab_check(negio__krb5 *k, const char *path, krb5_const_principal princ,
                        negio__keytab_facts *out, negio__why *why)
{
    krb5_keytab kt = NULL;
    krb5_error_code code =
        path != NULL ? krb5_kt_resolve(k->ctx, path, &kt) : krb5_kt_default(k->ctx, &kt);
    if (code != 0) {
        snprintf(out->name, sizeof(out->name), "%s", path != NULL ? path : "(default)");
        const char *msg = krb5_get_error_message(k->ctx, code);
        negio__why_text(why, "kerberos: the keytab %s cannot be opened: %s", out->name, msg);
        krb5_free_error_message(k->ctx, msg);
        negio__why_advice(why, "point --keytab or KRB5_KTNAME at the service's keytab");
        return -1;
    }
    char full[300];
    if (krb5_kt_get_name(k->ctx, kt, full, sizeof(full)) == 0)
        snprintf(out->name, sizeof(out->name), "%s", full);
    const char *file = keytab_file(out->name);
    struct stat st;
    int rc = 0;
    if (file != NULL && stat(file, &st) != 0) {
        negio__why_text(why, "kerberos: the keytab %s does not exist", out->name);
        negio__why_advice(
            why, "export the service's key into it (kadmin ktadd -k FILE PRINCIPAL; ktpass on "
                 "Windows), or point --keytab or KRB5_KTNAME at the right file");
        rc = -1;
    } else if (file != NULL && access(file, R_OK) != 0) {
        negio__why_text(why, "kerberos: the keytab %s cannot be read by this process (uid %u): %s",
                        out->name, (unsigned)geteuid(), strerror(errno));
        negio__why_advice(why, "let the service's account read it (and nobody else)");
        rc = -1;
    } else {
        rc = keytab_read(k, kt, princ, out, why);
    }
    if (rc == 0 && !some_permitted(k, kt, princ)) {
        negio__why_text(
            why,
            "kerberos: the keytab %s holds keys for %s only of encryption types krb5.conf does "
            "not permit (%s)",
            out->name, out->principal[0] ? out->principal : "any principal", out->keys[0].enctype);
        negio__why_advice(why,
                          "export keys of a permitted type (aes256-cts-hmac-sha1-96), or adjust "
                          "permitted_enctypes in %s",
                          config_files());
        rc = -1;
    }
    krb5_kt_close(k->ctx, kt);
    return rc;
}

int negio__diag_keytab(const char *path, const char *service, negio__keytab_facts *out,
                       negio__why *why)
{
    memset(out, 0, sizeof(*out));
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    krb5_principal princ = NULL;
    int rc = 0;
    if (service != NULL) {
        krb5_error_code code = service_principal(k.ctx, service, &princ);
        if (code != 0) {
            negio__krb5_say(&k, code, NULL, service, NULL, why);
            rc = -1;
        } else {
            unparse(k.ctx, princ, out->principal, sizeof(out->principal));
        }
    }
    if (rc == 0)
        rc = keytab_check(&k, path, princ, out, why);
    krb5_free_principal(k.ctx, princ);
    negio__krb5_close(&k);
    return rc;
}

int negio__diag_keytab_has(const negio__keytab_facts *kt, int kvno, const char *enctype)
{
    for (size_t i = 0; i < kt->nkeys; i++)
        if (kt->keys[i].kvno == kvno && strcmp(kt->keys[i].enctype, enctype) == 0)
            return 1;
    return 0;
}

int negio__diag_config_read(negio__diag_config *out, negio__why *why)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->files, sizeof(out->files), "%s", config_files());
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return -1;
    out->clockskew = profile_int(k.ctx, "libdefaults", "clockskew", 300);
    profile_t prof = NULL;
    if (krb5_get_profile(k.ctx, &prof) == 0) {
        char *v = NULL;
        if (profile_get_string(prof, "libdefaults", "dns_canonicalize_hostname", NULL, "true",
                               &v) == 0 &&
            v != NULL) {
            snprintf(out->canonicalize, sizeof(out->canonicalize), "%s", v);
            profile_release_string(v);
        }
        v = NULL;
        if (profile_get_string(prof, "libdefaults", "rdns", NULL, "true", &v) == 0 && v != NULL) {
            snprintf(out->rdns, sizeof(out->rdns), "%s", v);
            profile_release_string(v);
        }
    }
    char *def = NULL;
    int rc = 0;
    if (krb5_get_default_realm(k.ctx, &def) == 0) {
        snprintf(out->default_realm, sizeof(out->default_realm), "%s", def);
        krb5_free_default_realm(k.ctx, def);
        const char *names[] = {"realms", out->default_realm, "kdc", NULL};
        char **vals = NULL;
        if (prof != NULL && profile_get_values(prof, names, &vals) == 0) {
            for (size_t i = 0; vals[i] != NULL; i++) {
                size_t used = strlen(out->kdcs);
                snprintf(out->kdcs + used, sizeof(out->kdcs) - used, "%s%s", used ? ", " : "",
                         vals[i]);
            }
            profile_free_list(vals);
        }
    } else {
        negio__why_text(why, "kerberos: no default realm is configured (%s)", out->files);
        negio__why_advice(why,
                          "set default_realm in [libdefaults], or point KRB5_CONFIG at the realm's "
                          "krb5.conf");
        rc = -1;
    }
    if (prof != NULL)
        profile_release(prof);
    negio__krb5_close(&k);
    return rc;
}

/* ---- tokens ---------------------------------------------------------------------------- */

int negio__krb5_error_read(const uint8_t *msg, size_t len, krb5_error_code *code, long long *stime)
{
    negio__krb5 k;
    negio__why why;
    if (negio__krb5_open(&k, &why) < 0)
        return -1;
    krb5_data d = {0, (unsigned)len, (char *)msg};
    krb5_error *err = NULL;
    int rc = -1;
    if (krb5_rd_error(k.ctx, &d, &err) == 0) {
        *code = err->error == 0 ? 0 : (krb5_error_code)(ERROR_TABLE_BASE_krb5 + err->error);
        *stime = err->stime;
        krb5_free_error(k.ctx, err);
        rc = 0;
    }
    negio__krb5_close(&k);
    return rc;
}

int negio__krb5_ap_req_ticket(const uint8_t *ap_req, size_t len, negio__diag_ticket *t)
{
    /* AP-REQ ::= [APPLICATION 14] SEQUENCE { pvno [0], msg-type [1], ap-options [2],
     * ticket [3] Ticket, authenticator [4] } */
    const uint8_t *body, *seq, *el, *p;
    size_t blen, slen, elen;
    uint8_t tag;
    memset(t, 0, sizeof(*t));
    if (!negio__der_exact(ap_req, ap_req + len, 0x6e, &body, &blen) ||
        !negio__der_exact(body, body + blen, 0x30, &seq, &slen))
        return -1;
    p = seq;
    while (p < seq + slen) {
        if (!negio__der_next(&p, seq + slen, &tag, &el, &elen))
            return -1;
        if (tag != 0xa3)
            continue;
        negio__krb5 k;
        negio__why why;
        if (negio__krb5_open(&k, &why) < 0)
            return -1;
        krb5_data d = {0, (unsigned)elen, (char *)el};
        krb5_ticket *tkt = NULL;
        int rc = -1;
        if (krb5_decode_ticket(&d, &tkt) == 0) {
            unparse(k.ctx, tkt->server, t->server, sizeof(t->server));
            t->kvno = (int)tkt->enc_part.kvno;
            if (krb5_enctype_to_name(tkt->enc_part.enctype, FALSE, t->enctype, sizeof(t->enctype)))
                snprintf(t->enctype, sizeof(t->enctype), "enctype %d", (int)tkt->enc_part.enctype);
            krb5_free_ticket(k.ctx, tkt);
            rc = 0;
        }
        negio__krb5_close(&k);
        return rc;
    }
    return -1;
}

/* "2 (aes256-cts-hmac-sha1-96), 3 (...)" : the keys of KT, in short. */
static void key_list(const negio__keytab_facts *kt, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < kt->nkeys; i++) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%sversion %d %s", i ? ", " : "", kt->keys[i].kvno,
                 kt->keys[i].enctype);
    }
}

void negio__krb5_acceptor_why(const negio__diag_ticket *t, krb5_error_code code, const char *keytab,
                              const char *service, negio__why *why)
{
    why->text[0] = why->advice[0] = '\0';
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return;
    negio__keytab_facts kt;
    memset(&kt, 0, sizeof(kt));
    krb5_principal princ = NULL, mine = NULL;
    int have = 0;
    if (t->server[0] != '\0' && krb5_parse_name(k.ctx, t->server, &princ) == 0) {
        snprintf(kt.principal, sizeof(kt.principal), "%s", t->server);
        have = 1;
    } else if (service != NULL && service_principal(k.ctx, service, &princ) == 0) {
        unparse(k.ctx, princ, kt.principal, sizeof(kt.principal));
        have = 1;
    }
    char realm[128] = "";
    if (princ != NULL)
        snprintf(realm, sizeof(realm), "%.*s", (int)princ->realm.length, princ->realm.data);
    negio__why kwhy;
    if (code == KRB5KRB_AP_ERR_SKEW) {
        if (skew_words(realm[0] ? realm : NULL, "this server's", why) < 0) {
            negio__why_text(
                why, "kerberos: clock skew: the client's clock and this server's differ too much");
            negio__why_advice(why, "set the clocks right (NTP)");
        }
    } else if (code == KRB5KRB_AP_ERR_TKT_EXPIRED) {
        negio__why_text(why, "kerberos: the client's ticket for %s has expired", kt.principal);
        negio__why_advice(why, "the client must get a new one (kinit)");
    } else if (code == KRB5KRB_AP_ERR_REPEAT) {
        negio__why_text(why, "kerberos: a replayed request: this authenticator was seen before");
        negio__why_advice(why,
                          "someone replayed a client's first message, or a client sent it twice");
    } else if (have && service != NULL && t->server[0] != '\0' &&
               service_principal(k.ctx, service, &mine) == 0 &&
               !krb5_principal_compare_any_realm(k.ctx, mine, princ)) {
        char name[NEGIO__DIAG_NAME];
        unparse(k.ctx, mine, name, sizeof(name));
        negio__why_text(why, "kerberos: the client asked for %s, but this server is %s", t->server,
                        name);
        negio__why_advice(why, "the client must ask for this server's name (--spn)");
    } else if (have && keytab_check(&k, keytab, princ, &kt, &kwhy) < 0) {
        *why = kwhy;
    } else if (have && t->kvno != 0 && t->enctype[0] != '\0' &&
               !negio__diag_keytab_has(&kt, t->kvno, t->enctype)) {
        char keys[200];
        key_list(&kt, keys, sizeof(keys));
        negio__why_text(
            why,
            "kerberos: the ticket for %s needs key version %d (%s), which the keytab %s does "
            "not hold (it holds %s)",
            kt.principal, t->kvno, t->enctype, kt.name, keys);
        negio__why_advice(
            why, "the key changed at the KDC after the keytab was written: export it again "
                 "(kadmin ktadd; ktpass on Windows), keeping the old version until tickets "
                 "for it expire");
    } else if (code == KRB5KRB_AP_ERR_MODIFIED || code == KRB5KRB_AP_ERR_BAD_INTEGRITY) {
        negio__why_text(
            why,
            "kerberos: the ticket for %s does not decrypt with the keytab %s's key (version "
            "%d, %s)",
            kt.principal, kt.name, t->kvno, t->enctype);
        negio__why_advice(
            why, "the keytab's key is not the KDC's (the key was reset without a new version, "
                 "or the keytab is another realm's): export it again");
    } else if (code != 0) {
        negio__krb5_say(&k, code, NULL, kt.principal[0] ? kt.principal : NULL, NULL, why);
    }
    krb5_free_principal(k.ctx, mine);
    krb5_free_principal(k.ctx, princ);
    negio__krb5_close(&k);
}

void negio__krb5_peer_error_why(krb5_error_code code, long long stime, const char *service,
                                negio__why *why)
{
    why->text[0] = why->advice[0] = '\0';
    negio__krb5 k;
    if (negio__krb5_open(&k, why) < 0)
        return;
    char server[NEGIO__DIAG_NAME], realm[128];
    krb5_principal p = NULL;
    if (service_principal(k.ctx, service, &p) == 0) {
        unparse(k.ctx, p, server, sizeof(server));
        snprintf(realm, sizeof(realm), "%.*s", (int)p->realm.length, p->realm.data);
        krb5_free_principal(k.ctx, p);
    } else {
        snprintf(server, sizeof(server), "%s", service);
        realm[0] = '\0';
    }
    switch (code) {
    case KRB5KRB_AP_ERR_SKEW: {
        long offset = 0, allowed = 300;
        negio__why probe;
        int rc = negio__diag_kdc_clock(realm[0] ? realm : NULL, &offset, &allowed, &probe);
        /* MIT clients put the KDC's time in their requests (kdc_timesync): compare the server's
         * clock with the KDC's when it answers, else with this host's */
        long d = (long)(stime - (long long)time(NULL) - (rc == -2 ? 0 : offset));
        negio__why_text(
            why,
            "kerberos: clock skew: the server's clock is %ld s %s %s (at most %ld s are "
            "allowed)",
            labs(d), d > 0 ? "ahead of" : "behind",
            rc == -2 ? "this host's" : "the KDC's, whose time this client's request carried",
            allowed);
        negio__why_advice(why, "set the clocks right (NTP)");
        break;
    }
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
        negio__why_text(why, "kerberos: the server found this client's ticket for %s expired",
                        server);
        negio__why_advice(why, "run kinit again");
        break;
    case KRB5KRB_AP_ERR_REPEAT:
        negio__why_text(why, "kerberos: the server saw this client's request before (a replay)");
        break;
    case KRB5KRB_AP_ERR_NOT_US:
    case KRB5KRB_AP_WRONG_PRINC: {
        const char *msg = krb5_get_error_message(k.ctx, code);
        negio__why_text(why, "kerberos: the server does not take tickets for %s (%s)", server, msg);
        krb5_free_error_message(k.ctx, msg);
        negio__why_advice(why, "check the service name (--spn): the server's log names the one "
                               "it is, 'negio doctor server' the names its keytab holds");
        break;
    }
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_ERR_GENERIC: {
        const char *msg = krb5_get_error_message(k.ctx, code);
        negio__why_text(why, "kerberos: the server cannot use this client's ticket for %s (%s)",
                        server, msg);
        krb5_free_error_message(k.ctx, msg);
        negio__why_advice(why,
                          "its keytab lacks the key the KDC uses now for that name: 'negio doctor "
                          "server' on the server says which");
        break;
    }
    default: {
        const char *msg = krb5_get_error_message(k.ctx, code);
        negio__why_text(why, "kerberos: the server refused this client's ticket for %s: %s", server,
                        msg);
        krb5_free_error_message(k.ctx, msg);
        break;
    }
    }
    negio__krb5_close(&k);
}
