/*
 * negio doctor client|server: what klist, kvno, klist -ke and Windows' setspn -Q tell an
 * administrator, in one command, each finding with what to do about it. It checks, in order:
 *   config      the Kerberos configuration in effect (KRB5_CONFIG, the default realm, its KDCs,
 *               the allowed clock skew, host name canonicalisation) and the mechanism and NTLM
 *               settings (GSS_MECH_CONFIG, NTLM_USER_FILE)
 *   host        how the host of SERVICE@HOST resolves and canonicalises, and the principal
 *               Kerberos makes of it (the usual cause of "wrong principal" errors)
 *   kdc         that the realm's KDC answers, and its clock against this host's
 * then, for a client:
 *   credentials the credential cache and its tickets' times (or: a password gets a TGT)
 *   service     that a ticket for the service can be obtained, with its enctype and key version
 *   ntlm        the NTLM mechanism, and the account NTLM would use
 * and for a server:
 *   keytab      the keytab exists, can be read, holds keys for the service principal
 *   kdc_key     the key version (and enctype) the KDC uses now for the service is in the keytab
 *   ntlm        the NTLM mechanism, and the account file passwords are checked against
 * The facts come from the library's own diagnostics (src/gss/diag.h, linked from the static
 * library: the same words its error details use). Exit status: 0 when every check passed (or
 * was skipped), 1 when one failed, 2 for a usage error.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gss/diag.h"
#include "json.h"
#include "opt.h"

enum {
    OPT_JSON = CLI_GROUP_BASE(CLI_G_DOCTOR),
};

struct doctor_cmdline {
    struct cli_connection conn; /* only its mechanism and credential options are offered */
    int json;
    int server;
};

static const struct cli_option doctor_options[] = {
    {"json", no_argument, OPT_JSON, CLI_CONNECTING, NULL,
     "print one JSON object: the checks, each with its status, summary and advice"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis doctor_synopsis[] = {
    {CLI_CONNECTING, "[--json]"},
    {0, NULL},
};

static int doctor_take(const struct cli *c, void *state, int id, const char *arg)
{
    (void)c;
    (void)id;
    (void)arg;
    ((struct doctor_cmdline *)state)->json = 1;
    return 0;
}

static const struct cli_group doctor_group = {
    .no = CLI_G_DOCTOR,
    .options = doctor_options,
    .synopsis = doctor_synopsis,
    .take = doctor_take,
};

#define DOCTOR_FOOTER                                                                              \
    "Exit status: 0 if every check passed (or did not apply), 1 if one failed, 2 for a usage\n"    \
    "error. See negio(1), DOCTOR.\n"

static const struct cli_command doctor_client_command = {
    .name = "doctor",
    .role = CLI_INITIATOR,
    .lead = "client",
    .more = "negio doctor server [OPTIONS]",
    .about =
        "Checks what a client needs to authenticate to SERVICE@HOST, the way klist, kvno and\n"
        "setspn -Q would, and says for each check what is wrong and what to do: the "
        "Kerberos\nconfiguration, how HOST resolves and the principal it becomes, the KDC "
        "and its clock,\nthe credential cache and its tickets, a service ticket (enctype, "
        "key version), and\nthe NTLM account. 'negio doctor server' checks the server's side.\n",
    .footer = DOCTOR_FOOTER,
    .column = 25,
};

static const struct cli_command doctor_server_command = {
    .name = "doctor",
    .role = CLI_ACCEPTOR,
    .lead = "server",
    .more = "negio doctor client [OPTIONS]",
    .about = "Checks what a server needs to accept clients for SERVICE@HOST, the way klist -ke, "
             "kvno\nand setspn -Q would, and says for each check what is wrong and what to do: "
             "the\nKerberos configuration, how HOST resolves and the principal it becomes, the "
             "KDC and its\nclock, the keytab and its keys, whether it holds the key version the "
             "KDC uses now, and\nthe NTLM accounts. 'negio doctor client' checks a client's "
             "side.\n",
    .footer = DOCTOR_FOOTER,
    .column = 25,
};

/* ---- the checks ------------------------------------------------------------------------------ */

enum status { ST_OK, ST_FAIL, ST_SKIP };
static const char *const status_word[] = {"OK", "FAIL", "SKIP"};
static const char *const status_json[] = {"ok", "fail", "skipped"};

#define MAX_LINES 24

struct check {
    const char *name;
    enum status status;
    char summary[768];
    char advice[256];
    char note[256];             /* for a check that passed: worth knowing */
    char lines[MAX_LINES][200]; /* the facts behind it: tickets, keys, addresses */
    size_t nlines;
    long offset, allowed; /* kdc */
    int has_clock;
    negio__diag_ticket ticket; /* service, kdc_key */
    int has_ticket;
};

#define MAX_CHECKS 8

struct report {
    struct check checks[MAX_CHECKS];
    size_t n;
};

static struct check *begin(struct report *r, const char *name)
{
    struct check *k = &r->checks[r->n++];
    memset(k, 0, sizeof(*k));
    k->name = name;
    return k;
}

static void summary(struct check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void summary(struct check *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->summary, sizeof(k->summary), fmt, ap);
    va_end(ap);
}

static void note(struct check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct check *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->note, sizeof(k->note), fmt, ap);
    va_end(ap);
}

static void fail_with(struct check *k, const negio__why *why)
{
    k->status = ST_FAIL;
    summary(k, "%s", why->text);
    snprintf(k->advice, sizeof(k->advice), "%s", why->advice);
}

static void skip(struct check *k, const char *why)
{
    k->status = ST_SKIP;
    summary(k, "%s", why);
}

static void line(struct check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct check *k, const char *fmt, ...)
{
    if (k->nlines == MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->lines[k->nlines++], sizeof(k->lines[0]), fmt, ap);
    va_end(ap);
}

static void when(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || localtime_r(&tt, &tm) == NULL ||
        strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "-");
}

static void ticket_line(struct check *k, const negio__diag_ticket *t)
{
    char start[32], end[32], renew[32];
    when(t->start, start, sizeof(start));
    when(t->end, end, sizeof(end));
    when(t->renew, renew, sizeof(renew));
    line(k, "%s  %s .. %s%s%s%s  %s, key version %d%s", t->server, start, end,
         t->end <= (long long)time(NULL) ? " (expired)" : "", t->renew ? ", renew until " : "",
         t->renew ? renew : "", t->enctype[0] ? t->enctype : "enctype ?", t->kvno,
         t->kvno == 0 ? " (not given)" : "");
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : dflt;
}

static void check_config(struct report *r, int kerberos)
{
    struct check *k = begin(r, "config");
    negio__diag_config cf;
    negio__why why = {"", ""};
    int rc = negio__diag_config_read(&cf, &why);
    char files[512];
    snprintf(files, sizeof(files), "%s", cf.files);
    for (char *f = strtok(files, ":"); f != NULL; f = strtok(NULL, ":"))
        if (access(f, R_OK) != 0 && rc == 0) {
            negio__why_text(&why,
                            "kerberos: the configuration file %s (KRB5_CONFIG) cannot be read", f);
            negio__why_advice(&why, "point KRB5_CONFIG at the realm's krb5.conf");
            rc = -1;
        }
    line(k, "krb5.conf: %s", cf.files);
    line(k, "default realm: %s", cf.default_realm[0] ? cf.default_realm : "(none)");
    line(k, "its KDCs: %s", cf.kdcs[0] ? cf.kdcs : "(no kdc entry: found through DNS, if at all)");
    line(k, "clock skew allowed: %ld s; dns_canonicalize_hostname = %s; rdns = %s", cf.clockskew,
         cf.canonicalize, cf.rdns);
    line(k, "KRB5CCNAME=%s KRB5_KTNAME=%s KRB5_CLIENT_KTNAME=%s", env_or("KRB5CCNAME", "(default)"),
         env_or("KRB5_KTNAME", "(default)"), env_or("KRB5_CLIENT_KTNAME", "(default)"));
    line(k, "GSS_MECH_CONFIG=%s NTLM_USER_FILE=%s", env_or("GSS_MECH_CONFIG", "(/etc/gss/mech.d)"),
         env_or("NTLM_USER_FILE", "(not set)"));
    if (rc < 0 && kerberos) {
        fail_with(k, &why);
        return;
    }
    summary(k, "realm %s, KDC %s, from %s", cf.default_realm[0] ? cf.default_realm : "(none)",
            cf.kdcs[0] ? cf.kdcs : "by DNS", cf.files);
}

/* The addresses of HOST, its canonical name, and the reverse name of the first address. */
static int resolve(const char *host, char *addrs, size_t acap, char *canon, size_t ccap,
                   char *rname, size_t rcap, const char **err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_CANONNAME;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0) {
        *err = gai_strerror(e);
        return -1;
    }
    addrs[0] = '\0';
    snprintf(canon, ccap, "%s", res->ai_canonname != NULL ? res->ai_canonname : host);
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        char num[INET6_ADDRSTRLEN + 1];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, num, sizeof(num), NULL, 0, NI_NUMERICHOST))
            continue;
        if (strstr(addrs, num) == NULL)
            negio__append(addrs, acap, "%s%s", addrs[0] ? ", " : "", num);
    }
    if (getnameinfo(res->ai_addr, res->ai_addrlen, rname, (socklen_t)rcap, NULL, 0, NI_NAMEREQD))
        snprintf(rname, rcap, "(none)");
    freeaddrinfo(res);
    return 0;
}

static void check_host(struct report *r, const char *spn, int server)
{
    struct check *k = begin(r, "host");
    const char *host = strrchr(spn, '@') + 1; /* validated: SERVICE@HOST */
    char addrs[256], canon[256], rname[256], principal[NEGIO__DIAG_NAME] = "";
    const char *err = NULL;
    negio__why why = {"", ""};
    if (resolve(host, addrs, sizeof(addrs), canon, sizeof(canon), rname, sizeof(rname), &err) < 0) {
        negio__why_text(&why, "the host name %s does not resolve: %s", host, err);
        negio__why_advice(&why, "check the name in --spn SERVICE@HOST, DNS and /etc/hosts");
        fail_with(k, &why);
        return;
    }
    line(k, "%s resolves to %s", host, addrs);
    line(k, "canonical name: %s; reverse name of %.*s: %s", canon, (int)strcspn(addrs, ","), addrs,
         rname);
    if (negio__diag_service_principal(spn, principal, sizeof(principal), &why) < 0) {
        fail_with(k, &why);
        return;
    }
    line(k, "Kerberos asks for %s", principal);
    summary(k, "%s is %s to Kerberos", spn, principal);
    const char *slash = strchr(principal, '/');
    size_t hlen = slash != NULL ? strcspn(slash + 1, "@") : 0;
    if (slash != NULL && (strlen(host) != hlen || strncasecmp(slash + 1, host, hlen) != 0))
        note(k,
             "Kerberos canonicalises %s to %.*s (dns_canonicalize_hostname): the KDC and the "
             "server's keytab must know %s",
             host, (int)hlen, slash + 1, principal);
    if (server) {
        char me[256] = "", mine[256] = "", a2[256], r2[256];
        if (gethostname(me, sizeof(me) - 1) == 0 &&
            resolve(me, a2, sizeof(a2), mine, sizeof(mine), r2, sizeof(r2), &err) == 0) {
            line(k, "this machine: %s (canonical name %s)", me, mine);
            if (strcasecmp(mine, canon) != 0 && strcasecmp(host, "localhost") != 0 &&
                k->note[0] == '\0')
                note(k,
                     "%s is not this machine's name (%s): right for a service name shared by "
                     "several machines (a load balancer), else check --spn",
                     host, mine);
        }
    }
}

static void check_kdc(struct report *r)
{
    struct check *k = begin(r, "kdc");
    negio__why why = {"", ""};
    int rc = negio__diag_kdc_clock(NULL, &k->offset, &k->allowed, &why);
    k->has_clock = rc != -2;
    if (rc < 0) {
        fail_with(k, &why);
        return;
    }
    if (labs(k->offset) <= 1)
        summary(k,
                "the KDC answers; its clock agrees with this host's (at most %ld s apart "
                "allowed)",
                k->allowed);
    else
        summary(k, "the KDC answers; its clock is %ld s %s this host's (at most %ld s allowed)",
                labs(k->offset), k->offset > 0 ? "ahead of" : "behind", k->allowed);
}

static void check_credentials(struct report *r, const char *user, const char *password)
{
    struct check *k = begin(r, "credentials");
    negio__why why = {"", ""};
    if (user != NULL) {
        if (negio__diag_password(user, password, &why) < 0)
            fail_with(k, &why);
        else
            summary(k, "the KDC gives %s a ticket-granting ticket for the password", user);
        return;
    }
    negio__ccache_facts cc;
    int rc = negio__diag_ccache(NULL, &cc, &why);
    for (size_t i = 0; i < cc.ntickets; i++)
        ticket_line(k, &cc.tickets[i]);
    if (cc.more > 0)
        line(k, "and %zu more", cc.more);
    if (rc < 0) {
        fail_with(k, &why);
        return;
    }
    char end[32];
    when(cc.tgt.end, end, sizeof(end));
    summary(k, "%s in %s, its ticket-granting ticket valid until %s", cc.principal, cc.name, end);
}

static void check_service(struct report *r, const char *spn, const char *user, const char *password,
                          int have_credentials)
{
    struct check *k = begin(r, "service");
    negio__why why = {"", ""};
    if (!have_credentials) {
        skip(k, "needs Kerberos credentials (see above)");
        return;
    }
    if (negio__diag_service_ticket(spn, NULL, NULL, user, password, &k->ticket, &why) < 0) {
        fail_with(k, &why);
        return;
    }
    k->has_ticket = 1;
    ticket_line(k, &k->ticket);
    summary(k, "a ticket for %s: %s, key version %d", k->ticket.server, k->ticket.enctype,
            k->ticket.kvno);
}

static void check_ntlm_client(struct report *r, const struct cli_auth *a)
{
    struct check *k = begin(r, "ntlm");
    negio__why why = {"", ""};
    char account[256];
    if (a->mech == NEGIO_MECH_KERBEROS)
        skip(k, "--mech kerberos");
    else if (a->require_mutual)
        skip(k, "--require-mutual: NTLM cannot authenticate a server, so it is not offered");
    else if (negio__diag_ntlm_mech(&why) < 0)
        fail_with(k, &why);
    else if (a->user != NULL)
        summary(k, "NTLM authenticates as %s with the password (only the server can check it)",
                a->user);
    else if (negio__diag_ntlm_client(NULL, account, sizeof(account), &why) < 0)
        fail_with(k, &why);
    else
        summary(k, "NTLM authenticates as %s (the first account of %s)", account,
                getenv("NTLM_USER_FILE"));
}

static void check_keytab(struct report *r, const struct cli_auth *a, negio__keytab_facts *kt)
{
    struct check *k = begin(r, "keytab");
    negio__why why = {"", ""};
    int rc = negio__diag_keytab(a->keytab, a->spn, kt, &why);
    for (size_t i = 0; i < kt->nkeys; i++)
        line(k, "%s  key version %d  %s", kt->keys[i].principal, kt->keys[i].kvno,
             kt->keys[i].enctype);
    if (kt->others[0] != '\0')
        line(k, "also: %s", kt->others);
    if (rc < 0) {
        fail_with(k, &why);
        return;
    }
    summary(k, "%s holds %zu key%s for %s", kt->name, kt->nkeys + kt->more,
            kt->nkeys + kt->more == 1 ? "" : "s", kt->principal);
}

static void check_kdc_key(struct report *r, const struct cli_auth *a, const negio__keytab_facts *kt,
                          int keytab_ok)
{
    struct check *k = begin(r, "kdc_key");
    negio__why why = {"", ""};
    char how[300] = "";
    if (!keytab_ok) {
        skip(k, "needs a keytab with the service's keys (see above)");
        return;
    }
    if (negio__diag_kdc_key(a->spn, a->keytab, NULL, &k->ticket, how, sizeof(how), &why) < 0) {
        fail_with(k, &why);
        line(k, "asked with %s", how);
        return;
    }
    k->has_ticket = 1;
    line(k, "learned from %s", how);
    if (!negio__diag_keytab_has(kt, k->ticket.kvno, k->ticket.enctype)) {
        negio__why_text(&why,
                        "kerberos: the KDC encrypts tickets for %s with key version %d (%s), "
                        "which the keytab %s does not hold",
                        k->ticket.server, k->ticket.kvno, k->ticket.enctype, kt->name);
        negio__why_advice(&why, "the key changed at the KDC after the keytab was written: export "
                                "it again (kadmin ktadd; ktpass on Windows)");
        fail_with(k, &why);
        return;
    }
    summary(k, "the KDC encrypts tickets for %s with key version %d (%s): the keytab holds it",
            k->ticket.server, k->ticket.kvno, k->ticket.enctype);
}

static void check_ntlm_server(struct report *r, const struct cli_auth *a)
{
    struct check *k = begin(r, "ntlm");
    negio__why why = {"", ""};
    size_t n = 0;
    if (a->mech == NEGIO_MECH_KERBEROS)
        skip(k, "--mech kerberos");
    else if (negio__diag_ntlm_mech(&why) < 0 || negio__diag_ntlm_server(NULL, &n, &why) < 0)
        fail_with(k, &why);
    else
        summary(k, "%zu account%s in %s", n, n == 1 ? "" : "s", getenv("NTLM_USER_FILE"));
}

/* ---- output ---------------------------------------------------------------------------------- */

static void print_text(const struct report *r, const char *mode, const struct cli_auth *a,
                       int failed)
{
    printf("negio doctor %s: %s (mech %s)\n", mode, a->spn, negio_mech_name(a->mech));
    for (size_t i = 0; i < r->n; i++) {
        const struct check *k = &r->checks[i];
        printf("%-5s %-12s %s\n", status_word[k->status], k->name, k->summary);
        for (size_t j = 0; j < k->nlines; j++)
            printf("%19s%s\n", "", k->lines[j]);
        if (k->status == ST_FAIL && k->advice[0] != '\0')
            printf("%19sto do: %s\n", "", k->advice);
        if (k->status == ST_OK && k->note[0] != '\0')
            printf("%19snote: %s\n", "", k->note);
    }
    if (failed == 0)
        printf("all %zu checks passed\n", r->n);
    else
        printf("%d of %zu checks failed\n", failed, r->n);
}

static void json_ticket(json_writer *w, const negio__diag_ticket *t)
{
    json_kv_string(w, "server", t->server);
    json_kv_string(w, "enctype", t->enctype);
    json_kv_int(w, "kvno", t->kvno);
    json_kv_int(w, "end", t->end);
}

static void print_json(const struct report *r, const char *mode, const struct cli_auth *a,
                       int failed)
{
    json_writer w;
    json_init(&w, stdout);
    json_begin_object(&w);
    json_kv_string(&w, "mode", mode);
    json_kv_string(&w, "service", a->spn);
    json_kv_string(&w, "mech", negio_mech_name(a->mech));
    json_kv_bool(&w, "ok", failed == 0);
    json_key(&w, "checks");
    json_begin_array(&w);
    for (size_t i = 0; i < r->n; i++) {
        const struct check *k = &r->checks[i];
        json_begin_object(&w);
        json_kv_string(&w, "check", k->name);
        json_kv_string(&w, "status", status_json[k->status]);
        json_kv_string(&w, "summary", k->summary);
        json_kv_string(&w, "advice", k->status == ST_FAIL && k->advice[0] ? k->advice : NULL);
        json_kv_string(&w, "note", k->status == ST_OK && k->note[0] ? k->note : NULL);
        json_key(&w, "details");
        json_begin_array(&w);
        for (size_t j = 0; j < k->nlines; j++)
            json_string(&w, k->lines[j]);
        json_end_array(&w);
        if (k->has_clock) {
            json_kv_int(&w, "kdc_offset", k->offset);
            json_kv_int(&w, "allowed_skew", k->allowed);
        }
        if (k->has_ticket) {
            json_key(&w, "ticket");
            json_begin_object(&w);
            json_ticket(&w, &k->ticket);
            json_end_object(&w);
        }
        json_end_object(&w);
    }
    json_end_array(&w);
    json_end_object(&w);
    fputc('\n', stdout);
}

/* ---- the command ----------------------------------------------------------------------------- */

static int doctor_run(const struct cli *c, const struct doctor_cmdline *o)
{
    const struct cli_auth *a = &o->conn.auth;
    int kerberos = a->mech != NEGIO_MECH_NTLM;
    char password[1024] = "";
    if (a->user != NULL && cli_read_password(c, a->password_file, password, sizeof(password)) < 0)
        return CLI_EXIT_USAGE;
    static struct report r;
    memset(&r, 0, sizeof(r));
    check_config(&r, kerberos);
    check_host(&r, a->spn, o->server);
    if (kerberos) {
        check_kdc(&r);
    } else {
        skip(begin(&r, "kdc"), "--mech ntlm");
    }
    if (!o->server) {
        if (kerberos) {
            check_credentials(&r, a->user, password);
            check_service(&r, a->spn, a->user, password, r.checks[r.n - 1].status == ST_OK);
        } else {
            skip(begin(&r, "credentials"), "--mech ntlm");
            skip(begin(&r, "service"), "--mech ntlm");
        }
        check_ntlm_client(&r, a);
    } else {
        static negio__keytab_facts kt;
        if (kerberos) {
            check_keytab(&r, a, &kt);
            check_kdc_key(&r, a, &kt, r.checks[r.n - 1].status == ST_OK);
        } else {
            skip(begin(&r, "keytab"), "--mech ntlm");
            skip(begin(&r, "kdc_key"), "--mech ntlm");
        }
        check_ntlm_server(&r, a);
    }
    explicit_bzero(password, sizeof(password));
    int failed = 0;
    for (size_t i = 0; i < r.n; i++)
        failed += r.checks[i].status == ST_FAIL;
    const char *mode = o->server ? "server" : "client";
    if (o->json)
        print_json(&r, mode, a, failed);
    else
        print_text(&r, mode, a, failed);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_doctor(int argc, char **argv)
{
    static struct doctor_cmdline o;
    struct cli c;
    memset(&o, 0, sizeof(o));
    if (argc < 2 || (strcmp(argv[1], "client") != 0 && strcmp(argv[1], "server") != 0)) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs("usage: negio doctor client [OPTIONS]\n       negio doctor server [OPTIONS]\n"
                  "run 'negio doctor client --help' or 'negio doctor server --help' for the "
                  "options\n",
                  stdout);
            return CLI_EXIT_OK;
        }
        fputs("negio doctor: expected client or server\nusage: negio doctor client "
              "[OPTIONS]\n       negio doctor server [OPTIONS]\n",
              stderr);
        return CLI_EXIT_USAGE;
    }
    o.server = strcmp(argv[1], "server") == 0;
    static char client_name[] = "negio doctor client", server_name[] = "negio doctor server";
    argv[1] = o.server ? server_name : client_name;
    const struct cli_use uses[] = {
        {&cli_auth_group, &o.conn.auth},
        {&doctor_group, &o},
    };
    if (cli_parse(&c, o.server ? &doctor_server_command : &doctor_client_command, uses,
                  sizeof(uses) / sizeof(uses[0]), argc - 1, argv + 1) < 0)
        return CLI_EXIT_USAGE;
    if (c.help)
        return CLI_EXIT_OK;
    if (c.nargs > 0)
        return cli_error(&c, "unexpected argument '%s'", c.args[0]), CLI_EXIT_USAGE;
    if (cli_connection_validate(&c, &o.conn, NULL, 0) < 0)
        return CLI_EXIT_USAGE;
    return doctor_run(&c, &o);
}
