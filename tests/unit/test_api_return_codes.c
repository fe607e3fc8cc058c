/* Every public function's comment ends with the exact list of codes it can return (the
 * conventions at the top of include/negio/negio.h). This test reads those lists from the public
 * headers themselves and calls each function that returns a code in the situations that produce
 * its errors: missing and bad arguments, wrong states, and each of its own allocations failing
 * (this test links the test build of the library, negio_hook_static, and the engine's objects).
 * Every code a call returns must be in that function's list; every function returning int must
 * have a list; every one of them must be called here. A code a list leaves out, or a "Returns
 * NEGIO_OK" where a NULL argument gives NEGIO_ERR_INVALID, fails the test.
 *
 * Reading the lists: the comment is the last one that starts a line before the declaration
 * (functions declared together share it); the list is the text after its last "Returns" (or,
 * without one, its last "returns"), up to the end of that sentence, outside parentheses. NEGIO_OK,
 * NEGIO_ERR_* and the bare values 0 and 1 are codes; "sticky" or "fatal" there allows any fatal
 * code (at or below NEGIO_ERR_FATAL). The engine's allocations are not counted by the test hook, so
 * its NEGIO_ERR_NOMEM cases are listed from reading the code, not produced here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "negio/engine.h"
#include "negio/identity.h"
#include "negio/negio.h"
#include "support/clock.h"

#ifndef NEGIO_ALLOC_HOOK
#error "test_api_return_codes needs the allocation hook (negio_hook_static)"
#endif

#define MAX_FNS 128
#define MAX_CODES 32

typedef struct doc {
    char name[64];
    char codes[MAX_CODES][32]; /* "NEGIO_OK", "NEGIO_ERR_...", "1" */
    int ncodes;
    int any_fatal; /* the list says "sticky" or "fatal" */
    int has_list;
    int probed;
} doc;

static doc docs[MAX_FNS];
static int ndocs;
static int violations;

static doc *find(const char *name)
{
    for (int i = 0; i < ndocs; i++)
        if (strcmp(docs[i].name, name) == 0)
            return &docs[i];
    return NULL;
}

static int is_ident(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static void add_code(doc *d, const char *code, size_t len)
{
    if (d->ncodes < MAX_CODES && len < sizeof(d->codes[0])) {
        memcpy(d->codes[d->ncodes], code, len);
        d->codes[d->ncodes][len] = '\0';
        d->ncodes++;
    }
}

/* The codes of the "Returns" sentence of comment [C, END). */
static void read_list(doc *d, const char *c, const char *end)
{
    const char *r = NULL, *lower = NULL;
    for (const char *p = c; p + 7 <= end; p++) {
        if (p > c && is_ident(p[-1]))
            continue;
        if (strncmp(p, "Returns", 7) == 0)
            r = p;
        else if (strncmp(p, "returns", 7) == 0)
            lower = p;
    }
    if (r == NULL) /* "send_done returns ..." */
        r = lower;
    if (r == NULL)
        return;
    d->has_list = 1;
    int depth = 0;
    for (const char *p = r + 7; p < end; p++) {
        if (*p == '(') {
            depth++;
        } else if (*p == ')') {
            depth--;
        } else if (*p == '.' && depth == 0 && (p + 1 == end || p[1] == ' ' || p[1] == '\n')) {
            return; /* the end of the sentence */
        } else if (!is_ident(p[-1]) && is_ident(*p)) {
            const char *q = p;
            while (q < end && is_ident(*q))
                q++;
            size_t n = (size_t)(q - p);
            if (strncmp(p, "NEGIO_OK", n) == 0 && n == 8)
                add_code(d, p, n);
            else if (n > 10 && strncmp(p, "NEGIO_ERR_", 10) == 0)
                add_code(d, p, n);
            else if (depth == 0 && n == 1 && *p == '0')
                add_code(d, "NEGIO_OK", 8);
            else if (depth == 0 && n == 1 && *p == '1')
                add_code(d, "1", 1);
            else if ((n == 6 && strncmp(p, "sticky", 6) == 0) ||
                     (n == 5 && strncmp(p, "fatal", 5) == 0))
                d->any_fatal = 1;
            p = q - 1;
        }
    }
}

static void parse_header(const char *file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", NEGIO_PUBLIC_HEADERS, file);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    static char text[1 << 17];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    const char *doc_start = NULL, *doc_end = NULL;
    for (const char *p = text; *p != '\0'; p++) {
        const char *line = p;
        while (line > text && line[-1] != '\n')
            line--;
        int at_line_start = 1;
        for (const char *s = line; s < p; s++)
            if (*s != ' ' && *s != '\t')
                at_line_start = 0;
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (e == NULL)
                break;
            if (at_line_start) {
                doc_start = p + 2;
                doc_end = e;
            }
            p = e + 1;
        } else if (at_line_start && strncmp(p, "NEGIO_API int ", 14) == 0) {
            const char *name = p + 14;
            const char *paren = strchr(name, '(');
            if (paren == NULL || ndocs == MAX_FNS || (size_t)(paren - name) >= 64)
                fail_msg("cannot read the declaration at \"%.40s\"", p);
            doc *d = &docs[ndocs++];
            memset(d, 0, sizeof(*d));
            memcpy(d->name, name, (size_t)(paren - name));
            if (doc_start != NULL)
                read_list(d, doc_start, doc_end);
            p = paren;
        }
    }
}

static int documented(const doc *d, int rc)
{
    if (rc <= NEGIO_ERR_FATAL && d->any_fatal)
        return 1;
    char name[32];
    if (rc > 0)
        snprintf(name, sizeof(name), "%d", rc);
    else
        snprintf(name, sizeof(name), "%s", negio_err_name(rc));
    for (int i = 0; i < d->ncodes; i++)
        if (strcmp(d->codes[i], name) == 0)
            return 1;
    return 0;
}

static void probe(const char *fn, int rc, int line)
{
    doc *d = find(fn);
    if (d == NULL) {
        fprintf(stderr, "line %d: %s is not declared NEGIO_API int in a public header\n", line, fn);
        violations++;
        return;
    }
    d->probed = 1;
    if (!documented(d, rc)) {
        fprintf(stderr, "line %d: %s returned %s (%d), which its comment does not list\n", line, fn,
                negio_err_name(rc), rc);
        violations++;
    }
}

#define PROBE(fn, ...) probe(#fn, fn(__VA_ARGS__), __LINE__)

/* PROBE, where the code must be WANT: listed is not enough when another listed code stands for
 * another cause. */
static void probe_is(const char *fn, int rc, int want, int line)
{
    probe(fn, rc, line);
    if (rc != want) {
        fprintf(stderr, "line %d: %s returned %s, not %s\n", line, fn, negio_err_name(rc),
                negio_err_name(want));
        violations++;
    }
}

#define PROBE_IS(want, fn, ...) probe_is(#fn, fn(__VA_ARGS__), want, __LINE__)

/* Runs BODY with the 1st, 2nd, ... allocation failing (SETUP before each run, CLEANUP after),
 * until a run makes no more allocations than the failing one. */
#define EACH_ALLOCATION(setup, body, cleanup)                                                      \
    do {                                                                                           \
        for (long n_ = 1; n_ < 10000; n_++) {                                                      \
            setup;                                                                                 \
            negio__alloc_fail_after(n_);                                                           \
            body;                                                                                  \
            long failed_ = negio__alloc_injected();                                                \
            negio__alloc_fail_after(0);                                                            \
            cleanup;                                                                               \
            if (failed_ == 0)                                                                      \
                break;                                                                             \
        }                                                                                          \
    } while (0)

static negio_config *cfg(negio_role role)
{
    negio_config *c;
    assert_int_equal(negio_config_new(&c, role), NEGIO_OK);
    if (role == NEGIO_ROLE_CLIENT) {
        assert_int_equal(negio_config_set_service(c, "negio@localhost"), NEGIO_OK);
        assert_int_equal(negio_config_set_deferred_steps(c, 1), NEGIO_OK);
    }
    return c;
}

static negio_config *tls_cfg(negio_role role)
{
    negio_config *c = cfg(role);
    assert_int_equal(negio_config_set_transport(c, NEGIO_TRANSPORT_TLS), NEGIO_OK);
    return c;
}

static void configuration_calls(void)
{
    negio_mech m;
    negio_level lv;
    PROBE(negio_mech_parse, NULL, &m);
    PROBE(negio_mech_parse, "kerberos", &m);
    PROBE(negio_mech_parse, "nonsense", &m);
    PROBE(negio_level_parse, NULL, &lv);
    PROBE(negio_level_parse, "seal", &lv);
    PROBE(negio_level_parse, "nonsense", &lv);

    negio_config *c = NULL;
    PROBE(negio_config_new, NULL, NEGIO_ROLE_CLIENT);
    PROBE(negio_config_new, &c, (negio_role)7);
    EACH_ALLOCATION(c = NULL, PROBE(negio_config_new, &c, NEGIO_ROLE_SERVER), negio_config_del(c));

    negio_config *cc = cfg(NEGIO_ROLE_CLIENT), *sc = cfg(NEGIO_ROLE_SERVER);
    PROBE(negio_config_set_mech, NULL, NEGIO_MECH_NTLM);
    PROBE(negio_config_set_mech, cc, (negio_mech)99);
    PROBE(negio_config_set_mech, cc, NEGIO_MECH_KERBEROS);
    PROBE(negio_config_set_allowed, NULL, NEGIO_ALLOW_ALL);
    PROBE(negio_config_set_allowed, cc, 0);
    PROBE(negio_config_set_allowed, cc, NEGIO_ALLOW_ALL);
    PROBE(negio_config_set_service, NULL, "a@b");
    PROBE(negio_config_set_service, cc, "no-host");
    EACH_ALLOCATION(, PROBE(negio_config_set_service, cc, "negio@localhost"), );
    PROBE(negio_config_set_keytab, NULL, "/k");
    PROBE(negio_config_set_keytab, sc, "");
    EACH_ALLOCATION(, PROBE(negio_config_set_keytab, sc, "/k"), );
    PROBE(negio_config_set_ccache, NULL, "FILE:/c");
    PROBE(negio_config_set_ccache, sc, "FILE:/c");
    EACH_ALLOCATION(, PROBE(negio_config_set_ccache, cc, "FILE:/c"), );
    PROBE(negio_config_set_ntlm_file, NULL, "/n");
    EACH_ALLOCATION(, PROBE(negio_config_set_ntlm_file, sc, "/n"), );
    PROBE(negio_config_set_password, NULL, "u", "p");
    PROBE(negio_config_set_password, cc, NULL, "p");
    EACH_ALLOCATION(, PROBE(negio_config_set_password, cc, "u", "p"), );
    PROBE(negio_config_set_default_level, NULL, NEGIO_LEVEL_SEAL);
    PROBE(negio_config_set_default_level, cc, (negio_level)9);
    PROBE(negio_config_set_default_level, cc, NEGIO_LEVEL_SEAL);
    PROBE(negio_config_set_min_level, NULL, NEGIO_LEVEL_SIGN);
    PROBE(negio_config_set_min_level, cc, (negio_level)9);
    PROBE(negio_config_set_min_level, cc, NEGIO_LEVEL_SIGN);
    PROBE(negio_config_set_require_server_auth, NULL, 1);
    PROBE(negio_config_set_require_server_auth, cc, 1);
    PROBE(negio_config_set_require_server_auth, sc, 1);
    PROBE(negio_config_set_allow_ntlm_fallback, NULL, 1);
    PROBE(negio_config_set_allow_ntlm_fallback, cc, 1);
    PROBE(negio_config_set_allow_ntlm_fallback, sc, 1);
    PROBE(negio_config_set_mutual, NULL, 1);
    PROBE(negio_config_set_mutual, cc, 1);
    PROBE(negio_config_set_delegate, NULL, 1);
    PROBE(negio_config_set_delegate, cc, 0);
    PROBE(negio_config_set_impersonation, NULL, NEGIO_IMPERSONATION_IDENTIFY);
    PROBE(negio_config_set_impersonation, cc, (negio_impersonation)0);
    PROBE(negio_config_set_impersonation, cc, NEGIO_IMPERSONATION_IDENTIFY);
    PROBE(negio_config_set_impersonation, sc, NEGIO_IMPERSONATION_DELEGATE);
    PROBE(negio_config_set_kerberos_fast_path, NULL, 1);
    PROBE(negio_config_set_kerberos_fast_path, cc, 0);
    PROBE(negio_config_set_kerberos_fast_path, sc, 1);
    PROBE(negio_config_add_user_map, NULL, "alice@R", "alice");
    PROBE(negio_config_add_user_map, sc, NULL, "alice");
    EACH_ALLOCATION(, PROBE(negio_config_add_user_map, sc, "alice@R", "alice"), );
    PROBE(negio_config_set_ntlm_domain, NULL, "NEGIO");
    EACH_ALLOCATION(, PROBE(negio_config_set_ntlm_domain, sc, "NEGIO"), );
    PROBE(negio_config_set_profile, NULL, NEGIO_PROFILE_NATIVE);
    PROBE(negio_config_set_profile, cc, (negio_profile)9);
    PROBE(negio_config_set_profile, cc, NEGIO_PROFILE_NNS);
    PROBE(negio_config_set_profile, cc, NEGIO_PROFILE_NATIVE);
    PROBE(negio_config_set_transport, NULL, NEGIO_TRANSPORT_TLS);
    PROBE(negio_config_set_transport, cc, (negio_transport)9);
    EACH_ALLOCATION(c = cfg(NEGIO_ROLE_CLIENT),
                    PROBE(negio_config_set_transport, c, NEGIO_TRANSPORT_TLS_NEGOTIATE),
                    negio_config_del(c));
    PROBE(negio_config_set_limits, NULL, &(negio_limits){0});
    PROBE(negio_config_set_limits, cc, &(negio_limits){.max_frame = 1});
    PROBE(negio_config_set_limits, cc, &(negio_limits){0});
    PROBE(negio_config_set_limits, cc, &(negio_limits){.size = 2});
    negio_limits lim = {.size = sizeof(lim)};
    PROBE(negio_config_get_limits, NULL, &lim);
    PROBE(negio_config_get_limits, cc, NULL);
    PROBE(negio_config_get_limits, cc, &(negio_limits){.size = 5000});
    PROBE(negio_config_get_limits, cc, &lim);
    PROBE(negio_config_set_deferred_steps, NULL, 1);
    PROBE(negio_config_set_deferred_steps, cc, 1);
    PROBE(negio_config_set_half_close, NULL, 1);
    PROBE(negio_config_set_half_close, cc, 0);
    PROBE(negio_config_set_log, NULL, NULL, NULL);
    PROBE(negio_config_set_log, cc, NULL, NULL);
    PROBE(negio_config_dup, NULL, cc);
    PROBE(negio_config_dup, &c, NULL);
    EACH_ALLOCATION(c = NULL, PROBE(negio_config_dup, &c, cc), negio_config_del(c));
    PROBE(negio_config_set_delegated, NULL, NULL);
    PROBE(negio_config_set_delegated, cc, NULL);

    /* TLS settings: each change allocates a fresh holder for the TLS context */
    PROBE(negio_config_set_tls_cert, NULL, "c.pem", "k.pem");
    PROBE(negio_config_set_tls_cert, sc, NULL, "k.pem");
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_SERVER),
                    PROBE(negio_config_set_tls_cert, c, "/nonexistent/c.pem", "/nonexistent/k.pem"),
                    negio_config_del(c));
    PROBE(negio_config_set_tls_ca, NULL, "ca.pem");
    PROBE(negio_config_set_tls_ca, cc, "");
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_CLIENT), PROBE(negio_config_set_tls_ca, c, "ca.pem"),
                    negio_config_del(c));
    PROBE(negio_config_set_tls_host, NULL, "h");
    PROBE(negio_config_set_tls_host, sc, "h");
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_CLIENT), PROBE(negio_config_set_tls_host, c, "h"),
                    negio_config_del(c));
    PROBE(negio_config_set_tls_require_client_cert, NULL, 1);
    PROBE(negio_config_set_tls_require_client_cert, cc, 1);
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_SERVER),
                    PROBE(negio_config_set_tls_require_client_cert, c, 1), negio_config_del(c));
    PROBE(negio_config_set_tls_allow_ntlm, NULL, 1);
    PROBE(negio_config_set_tls_allow_ntlm, cc, 1);
    PROBE(negio_config_set_tls_max_version, NULL, 12);
    PROBE(negio_config_set_tls_max_version, cc, 11);
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_CLIENT), PROBE(negio_config_set_tls_max_version, c, 12),
                    negio_config_del(c));
    char detail[256];
    PROBE(negio_config_tls_check, NULL, detail, sizeof(detail));
    PROBE(negio_config_tls_check, cc, detail, sizeof(detail)); /* no TLS transport */
    EACH_ALLOCATION(c = tls_cfg(NEGIO_ROLE_SERVER), /* no certificate: it cannot be loaded */
                    PROBE(negio_config_tls_check, c, detail, sizeof(detail)), negio_config_del(c));
    PROBE(negio_config_check_credentials, NULL, detail, sizeof(detail));
    c = tls_cfg(NEGIO_ROLE_SERVER); /* certificates alone: nothing of GSS-API to check */
    PROBE(negio_config_check_credentials, c, detail, sizeof(detail));
    negio_config_del(c);
    assert_int_equal(negio_config_new(&c, NEGIO_ROLE_SERVER), NEGIO_OK);
    assert_int_equal(negio_config_set_keytab(c, "/nonexistent/negio.keytab"), NEGIO_OK);
    assert_int_equal(negio_config_set_service(c, "negio@localhost"), NEGIO_OK);
    PROBE(negio_config_check_credentials, c, NULL, 0);
    negio_config_del(c);
    negio_config_del(cc);
    negio_config_del(sc);
}

static void connector_calls(void)
{
    negio_config *sc = cfg(NEGIO_ROLE_SERVER), *cc = cfg(NEGIO_ROLE_CLIENT);
    negio_config *no_target;
    assert_int_equal(negio_config_new(&no_target, NEGIO_ROLE_CLIENT), NEGIO_OK);
    negio_conn *c = NULL;
    negio_event ev;
    negio_auth_info info = {.size = sizeof(info)};
    size_t len;
    static const uint8_t garbage[100] = {9, 9, 9};

    PROBE(negio_conn_new, NULL, sc);
    PROBE(negio_conn_new, &c, NULL);
    PROBE(negio_conn_new, &c, no_target);
    EACH_ALLOCATION(c = NULL, PROBE(negio_conn_new, &c, sc), negio_conn_del(c));
    EACH_ALLOCATION(c = NULL, PROBE(negio_conn_new, &c, cc), negio_conn_del(c));

    /* input */
    PROBE(negio_conn_feed, NULL, garbage, 1);
    assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK);
    PROBE(negio_conn_feed, c, NULL, 1);
    PROBE(negio_conn_recv_done, NULL, 0);
    PROBE(negio_conn_recv_done, c, 5); /* no region was given */
    assert_non_null(negio_conn_recv_buf(c, &len));
    PROBE(negio_conn_feed, c, garbage, 1); /* while the region is outstanding */
    PROBE(negio_conn_next_event, c, &ev);  /* the same */
    PROBE(negio_conn_recv_done, c, 0);
    PROBE(negio_conn_feed_eof, NULL);
    PROBE(negio_conn_feed_eof, c);
    PROBE(negio_conn_feed, c, garbage, 1); /* after the end of the stream */
    PROBE(negio_conn_next_event, c, &ev);  /* the end of the stream, mid-nothing */
    negio_conn_del(c);
    EACH_ALLOCATION(assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK),
                    PROBE(negio_conn_feed, c, garbage, sizeof(garbage)), negio_conn_del(c));
    assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK);
    PROBE(negio_conn_feed, c, garbage, sizeof(garbage));
    PROBE(negio_conn_next_event, c, &ev); /* not a frame */
    PROBE(negio_conn_next_event, c, &ev); /* sticky */
    PROBE(negio_conn_feed, c, garbage, 1);
    PROBE(negio_conn_write, c, "x", 1, NEGIO_LEVEL_DEFAULT);
    PROBE(negio_conn_error, c);
    negio_conn_del(c);

    /* output, writes and close */
    assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK);
    PROBE(negio_conn_next_event, NULL, &ev);
    PROBE(negio_conn_next_event, c, NULL);
    PROBE(negio_conn_next_event, c, &ev); /* nothing yet */
    PROBE(negio_conn_send_done, NULL, 0);
    PROBE(negio_conn_send_done, c, 1); /* nothing is pending */
    PROBE(negio_conn_write, NULL, "x", 1, NEGIO_LEVEL_DEFAULT);
    PROBE(negio_conn_write, c, NULL, 1, NEGIO_LEVEL_DEFAULT);
    PROBE(negio_conn_write, c, "x", 1, (negio_level)9);
    PROBE(negio_conn_write, c, "x", (size_t)1 << 30, NEGIO_LEVEL_DEFAULT);
    PROBE(negio_conn_write, c, "x", 1, NEGIO_LEVEL_DEFAULT); /* queued until established */
    PROBE(negio_conn_step, NULL);
    PROBE(negio_conn_step, c); /* no step pending */
    PROBE(negio_conn_auth_info, NULL, &info);
    PROBE(negio_conn_auth_info, c, NULL);
    PROBE(negio_conn_auth_info, c, &info); /* not established */
    PROBE(negio_conn_error, NULL);
    PROBE(negio_conn_error, c);
    PROBE(negio_conn_is_established, NULL);
    PROBE(negio_conn_is_established, c);
    PROBE(negio_conn_close, NULL, 0, NULL);
    PROBE(negio_conn_close, c, 1, "refused");
    PROBE(negio_conn_close, c, 1, "refused"); /* again */
    PROBE(negio_conn_write, c, "x", 1, NEGIO_LEVEL_DEFAULT);
    PROBE(negio_conn_next_event, c, &ev);
    PROBE(negio_conn_step, c);
    PROBE(negio_conn_error, c);
    negio_conn_del(c);
    EACH_ALLOCATION(assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK),
                    PROBE(negio_conn_write, c, garbage, sizeof(garbage), NEGIO_LEVEL_DEFAULT),
                    negio_conn_del(c));
    EACH_ALLOCATION(assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK),
                    PROBE(negio_conn_close, c, 1, "refused"), negio_conn_del(c));

    /* identity */
    negio_user *u = NULL;
    negio_identity_policy root_allowed = {.allow_root = 1};
    char detail[128];
    PROBE(negio_user_lookup, NULL, "root", &root_allowed, detail, sizeof(detail));
    PROBE(negio_user_lookup, &u, NULL, &root_allowed, detail, sizeof(detail));
    PROBE(negio_user_lookup, &u, "a/b", NULL, detail, sizeof(detail));
    PROBE(negio_user_lookup, &u, "no-such-negio-user", NULL, detail, sizeof(detail));
    PROBE(negio_user_lookup, &u, "root", NULL, detail, sizeof(detail)); /* uid 0 refused */
    PROBE(negio_user_lookup, &u, "root", &(negio_identity_policy){.size = 1}, NULL, 0);
    EACH_ALLOCATION(u = NULL, PROBE(negio_user_lookup, &u, "root", &root_allowed, NULL, 0),
                    negio_user_del(u));
    assert_int_equal(negio_conn_new(&c, sc), NEGIO_OK);
    PROBE(negio_conn_user, NULL, c, NULL, NULL, 0);
    PROBE(negio_conn_user, &u, NULL, NULL, NULL, 0);
    PROBE(negio_conn_user, &u, c, NULL, NULL, 0); /* not established */
    negio_conn_del(c);
    assert_int_equal(negio_user_lookup(&u, "root", &root_allowed, NULL, 0), NEGIO_OK);
    PROBE(negio_impersonate, NULL, NULL, NULL, NULL);
    PROBE(negio_impersonate, u, NULL, NULL, NULL);
    negio__alloc_fail_after(1); /* saving the thread's groups: nothing is switched */
    PROBE(negio_impersonate, u, (int (*)(void *))abort, NULL, NULL);
    negio__alloc_fail_after(0);
    negio_user_del(u);

    negio_config_del(no_target);
    negio_config_del(cc);
    negio_config_del(sc);
}

/* The calls made on a connection that has ended, from its loop thread (on_closed). */
static negio_engine *engine;
static int closed_seen;

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    (void)reason;
    (void)code;
    (void)detail;
    (void)user;
    negio_auth_info info = {.size = sizeof(info)};
    PROBE(negio_econn_auth_info, c, &info);
    PROBE(negio_econn_auth_info, c, NULL);
    PROBE(negio_econn_auth_info, NULL, &info);
    struct sockaddr_storage local;
    PROBE(negio_econn_local_addr, c, &local);
    PROBE(negio_econn_local_addr, c, NULL);
    PROBE(negio_econn_local_addr, NULL, &local);
    PROBE(negio_engine_write, c, "x", 1);
    PROBE(negio_engine_send, engine, c, "x", 1, NEGIO_LEVEL_NONE);
    PROBE(negio_engine_close, c, 0);
    negio_relay_stats st = {.size = sizeof(st)};
    PROBE(negio_econn_relay_stats, c, &st); /* no relay */
    PROBE(negio_econn_relay_stats, c, NULL);
    PROBE(negio_engine_relay, c, 0, NULL); /* ended */
    PROBE(negio_engine_relay, c, -1, NULL);
    PROBE(negio_engine_relay, c, 0, &(negio_relay_options){.size = 3});
    PROBE(negio_engine_relay_connect, c, "127.0.0.1", 1, NULL);
    PROBE(negio_engine_relay_connect, c, NULL, 1, NULL);
    __atomic_store_n(&closed_seen, 1, __ATOMIC_RELEASE);
}

static void engine_calls(void)
{
    negio_engine_options o = {0};
    PROBE(negio_engine_new, NULL, &o);
    PROBE(negio_engine_new, &engine, NULL);
    PROBE(negio_engine_new, &engine, &(negio_engine_options){.size = 3});
    o.loops = 1;
    o.workers = 1;
    o.callbacks.on_closed = on_closed;
    PROBE(negio_engine_new, &engine, &o);
    assert_non_null(engine);

    negio_config *sc = cfg(NEGIO_ROLE_SERVER), *cc = cfg(NEGIO_ROLE_CLIENT);
    uint16_t port = 0;
    PROBE(negio_engine_listen, NULL, "127.0.0.1:0", sc, &port);
    PROBE(negio_engine_listen, engine, "127.0.0.1:0", cc, &port);
    PROBE(negio_engine_listen, engine, "no port", sc, &port);
    PROBE(negio_engine_listen, engine, "127.0.0.1:0", sc, &port);
    PROBE(negio_engine_listen_reconfigure, engine, port, sc);
    PROBE(negio_engine_listen_reconfigure, engine, port, cc);
    PROBE(negio_engine_listen_reconfigure, NULL, port, sc);
    negio_listen_options lo = {.size = sizeof(lo), .accept_proxy_from = "127.0.0.1/8"};
    PROBE(negio_engine_listen_with, engine, "127.0.0.1:0", sc, &lo, NULL);
    lo.accept_proxy_from = "localhost";
    PROBE(negio_engine_listen_with, engine, "127.0.0.1:0", sc, &lo, NULL);
    PROBE(negio_engine_listen_with, NULL, "127.0.0.1:0", sc, NULL, NULL);
    PROBE(negio_engine_listen_with, engine, "no port", sc, NULL, NULL);
    /* what negio_conn_new refuses ([MS-NNS] and gss-sample have no TLS form) is refused by the
     * call, not by dropping each connection later */
    negio_config *nns_sc = tls_cfg(NEGIO_ROLE_SERVER), *nns_cc = tls_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_profile(nns_sc, NEGIO_PROFILE_GSS_SAMPLE), NEGIO_OK);
    assert_int_equal(negio_config_set_profile(nns_cc, NEGIO_PROFILE_NNS), NEGIO_OK);
    PROBE_IS(NEGIO_ERR_INVALID, negio_engine_listen, engine, "127.0.0.1:0", nns_sc, NULL);
    PROBE_IS(NEGIO_ERR_INVALID, negio_engine_listen_with, engine, "127.0.0.1:0", nns_sc, NULL,
             NULL);
    PROBE_IS(NEGIO_ERR_INVALID, negio_engine_listen_reconfigure, engine, port, nns_sc);
    PROBE_IS(NEGIO_ERR_INVALID, negio_engine_connect, engine, "127.0.0.1", 1, nns_cc, NULL, NULL);
    negio_config_del(nns_sc);
    negio_config_del(nns_cc);
    PROBE(negio_engine_connect, NULL, "127.0.0.1", 1, cc, NULL, NULL);
    PROBE(negio_engine_connect, engine, "127.0.0.1", 1, sc, NULL, NULL);
    PROBE(negio_engine_connect_with, NULL, "127.0.0.1", 1, cc, NULL, NULL, NULL);
    PROBE(negio_engine_connect_with, engine, "127.0.0.1", 1, cc,
          &(negio_connect_options){.size = 3}, NULL, NULL);
    PROBE(negio_engine_write, NULL, "x", 1);
    PROBE(negio_engine_send, NULL, NULL, "x", 1, NEGIO_LEVEL_NONE);
    PROBE(negio_engine_close, NULL, 0);
    PROBE(negio_engine_shutdown, NULL);
    /* a connection that ends at once (nothing listens on port 1): on_closed probes it */
    negio_econn *c = NULL;
    PROBE(negio_engine_connect, engine, "127.0.0.1", 1, cc, NULL, &c);
    TEST_POLL_UNTIL(__atomic_load_n(&closed_seen, __ATOMIC_ACQUIRE), 10000);
    assert_true(__atomic_load_n(&closed_seen, __ATOMIC_ACQUIRE));
    PROBE(negio_engine_write, c, "x", 1);
    PROBE(negio_engine_close, c, 0);
    negio_econn_unref(c);
    negio_connect_options co = {.size = sizeof(co), .connect_timeout_ms = 5000};
    PROBE(negio_engine_connect_with, engine, "127.0.0.1", 1, cc, &co, NULL, NULL);
    PROBE(negio_engine_shutdown, engine);
    PROBE(negio_engine_connect, engine, "127.0.0.1", 1, cc, NULL, NULL); /* shutting down */
    PROBE(negio_engine_connect_with, engine, "127.0.0.1", 1, cc, &co, NULL, NULL);
    PROBE(negio_engine_listen, engine, "127.0.0.1:0", sc, &port);
    PROBE(negio_engine_listen_with, engine, "127.0.0.1:0", sc, NULL, &port);
    negio_engine_del(engine);
    negio_config_del(sc);
    negio_config_del(cc);
}

static void every_code_a_public_function_returns_is_in_its_comment(void **state)
{
    (void)state;
    parse_header("negio.h");
    parse_header("engine.h");
    parse_header("identity.h");
    assert_true(ndocs > 40);
    for (int i = 0; i < ndocs; i++)
        if (!docs[i].has_list) {
            fprintf(stderr, "%s: its comment has no list of the codes it returns\n", docs[i].name);
            violations++;
        }
    configuration_calls();
    connector_calls();
    engine_calls();
    for (int i = 0; i < ndocs; i++)
        if (!docs[i].probed) {
            fprintf(stderr, "%s: not called by this test\n", docs[i].name);
            violations++;
        }
    assert_int_equal(violations, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_a_public_function_returns_is_in_its_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
