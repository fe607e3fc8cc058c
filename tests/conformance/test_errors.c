/* Conformance: every common failure is named in words a person can act on, first in the error
 * detail, with the GSS status after them (docs/ARCHITECTURE.md section 8.4): each test breaks one
 * thing in a throwaway realm (its KDC stopped or skewed, a key rotated, a keytab emptied, a wrong
 * password, a wrong name) and asserts the sentence a person reads on the side that reads it, not
 * only the code. Also negio_config_check_credentials, the start-up check. Plain transport only:
 * the words do not depend on the transport, and test_handshake covers the transports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <krb5.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/clock.h"
#include "support/net.h"
#include "support/support.h"
#include "support/tokens.h"

static void has(const char *detail, const char *text)
{
    if (strstr(detail, text) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", detail, text);
}

static void client_has(const test_pair *p, const char *text)
{
    has(negio_conn_error_detail(p->client.conn), text);
}

static void server_has(const test_pair *p, const char *text)
{
    has(negio_conn_error_detail(p->server.conn), text);
}

/* The words come first; the GSS status stays after them, for experts. */
static void words_before_status(const char *detail, const char *words, const char *call)
{
    const char *w = strstr(detail, words), *c = strstr(detail, call);
    if (w == NULL || c == NULL || w > c || strstr(c, "(major 0x") == NULL)
        fail_msg("detail \"%s\": \"%s\" should come before \"%s ... (major ...)\"", detail, words,
                 call);
}

static negio_config *server_for(const char *service, const char *keytab)
{
    negio_config *sc = test_server_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_service(sc, service), 0);
    assert_int_equal(negio_config_set_keytab(sc, keytab), 0);
    return sc;
}

/* The number in "WORDS<number>" inside DETAIL. */
static long number_after(const char *detail, const char *words)
{
    const char *at = strstr(detail, words);
    if (at == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", detail, words);
    return strtol(at + strlen(words), NULL, 10);
}

static void an_unknown_service_principal_is_named_with_the_name_asked_for(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char name[128];
    snprintf(name, sizeof(name), "(nosuch/localhost@%s)", r->realm);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_service(cc, "nosuch@localhost"), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "unknown service, kerberos");
    assert_int_equal(p.client.err, NEGIO_ERR_HANDSHAKE);
    client_has(&p, "kerberos: server not found in Kerberos database");
    client_has(&p, name);
    client_has(&p, "check the service name");
    words_before_status(negio_conn_error_detail(p.client.conn), "kerberos: server not found",
                        "gss_init_sec_context");
    test_pair_free(&p);
}

/* SPNEGO falls back from the failed Kerberos to NTLM and keeps only NTLM's bare errno: the
 * detail says what each mechanism did. */
static void negotiate_says_what_each_mechanism_did(void **state)
{
    (void)state;
    negio_config *cc = test_client_config(PATH_NEG_KERBEROS);
    assert_int_equal(negio_config_set_service(cc, "nosuch@localhost"), 0);
    assert_int_equal(negio_config_set_ntlm_file(cc, test_realm_get()->ntlm_file), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, test_server_config(PATH_NEG_KERBEROS),
                          "unknown service, negotiate");
    assert_int_equal(p.client.err, NEGIO_ERR_HANDSHAKE);
    const char *d = negio_conn_error_detail(p.client.conn);
    has(d, "kerberos: server not found in Kerberos database (nosuch/localhost@");
    has(d, "; ntlm: the server is negio/localhost, not nosuch/localhost as asked");
    words_before_status(d, "ntlm: the server is", "gss_init_sec_context");
    test_pair_free(&p);
}

static void a_wrong_kerberos_password_is_named(void **state)
{
    (void)state;
    test_pair p;
    test_pair_run_configs(&p, test_password_client(NEGIO_MECH_KERBEROS, "alice", "wrong-password"),
                          test_server_config(PATH_KERBEROS), "wrong password, kerberos");
    assert_int_equal(p.client.err, NEGIO_ERR_CREDENTIALS);
    client_has(&p, "kerberos: wrong password for alice@");
    words_before_status(negio_conn_error_detail(p.client.conn), "wrong password",
                        "gss_acquire_cred_with_password: No credentials");
    test_pair_free(&p);
}

static void an_unknown_kerberos_user_is_named(void **state)
{
    (void)state;
    test_pair p;
    test_pair_run_configs(&p, test_password_client(NEGIO_MECH_KERBEROS, "nosuchuser", "x"),
                          test_server_config(PATH_KERBEROS), "unknown user, kerberos");
    assert_int_equal(p.client.err, NEGIO_ERR_CREDENTIALS);
    client_has(&p, "kerberos: client not found in Kerberos database (nosuchuser@");
    test_pair_free(&p);
}

/* NTLM fails at the server, which knows which; the client is told that its logon was refused. */
static void a_wrong_ntlm_password_is_named_on_both_sides(void **state)
{
    (void)state;
    for (int mech = NEGIO_MECH_NEGOTIATE; mech <= NEGIO_MECH_NTLM; mech += 2) {
        negio_config *cc = test_password_client((negio_mech)mech, "bob", "wrong-password");
        assert_int_equal(negio_config_set_ccache(cc, test_realm_get()->empty_ccache), 0);
        test_pair p;
        test_pair_run_configs(&p, cc, test_server_config(PATH_NTLM), "wrong password, ntlm");
        assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
        server_has(&p, "ntlm: logon failure for bob: wrong password");
        assert_int_equal(p.client.err, NEGIO_ERR_PEER);
        client_has(&p, "ntlm: the server refused the logon as bob: wrong password or unknown user");
        test_pair_free(&p);
    }
}

static void an_unknown_ntlm_user_is_named_by_the_server(void **state)
{
    (void)state;
    char text[400];
    snprintf(text, sizeof(text), "ntlm: unknown user NEGIO\\nobody (not in %s)",
             test_realm_get()->ntlm_file);
    test_pair p;
    test_pair_run_configs(&p, test_password_client(NEGIO_MECH_NTLM, "NEGIO\\nobody", "x"),
                          test_server_config(PATH_NTLM), "unknown user, ntlm");
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    server_has(&p, text);
    client_has(&p, "the server refused the logon as NEGIO\\nobody");
    test_pair_free(&p);
}

/* A KDC that refuses connections: which realm, which addresses were tried; for a password (the
 * AS exchange hidden inside gss_acquire_cred_with_password) and for a service ticket. */
static void an_unreachable_kdc_is_named_with_the_addresses_tried(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char tried[128];
    snprintf(tried, sizeof(tried), "kerberos: no KDC of realm %s answered (tried tcp 127.0.0.1:%d",
             r->realm, r->kdc_port);
    test_realm_stop_kdc();
    test_pair p;
    negio_config *cc = test_password_client(NEGIO_MECH_KERBEROS, "alice", r->alice_pw);
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "KDC down, password");
    assert_int_equal(p.client.err, NEGIO_ERR_CREDENTIALS);
    client_has(&p, tried);
    client_has(&p, "check that the KDC runs");
    test_pair_free(&p);

    cc = test_client_config(PATH_KERBEROS); /* a ticket-granting ticket, no service ticket */
    assert_int_equal(negio_config_set_service(cc, "kdcdown@localhost"), 0);
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "KDC down, service ticket");
    test_realm_restart_kdc(0);
    assert_int_equal(p.client.err, NEGIO_ERR_HANDSHAKE);
    client_has(&p, tried);
    test_pair_free(&p);
}

static void no_ticket_is_named_with_the_cache(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char text[400];
    snprintf(text, sizeof(text), "kerberos: no ticket: the credential cache %s does not exist",
             r->empty_ccache);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_ccache(cc, r->empty_ccache), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "no ticket");
    assert_true(p.client.err == NEGIO_ERR_CREDENTIALS || p.client.err == NEGIO_ERR_HANDSHAKE);
    client_has(&p, text);
    client_has(&p, "run kinit");
    test_pair_free(&p);

    /* negotiate without either mechanism's credentials: both are named */
    cc = test_client_config(PATH_NEG_NTLM);
    assert_int_equal(negio_config_set_ntlm_file(cc, "/nonexistent/ntlm_users"), 0);
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "no credentials at all");
    client_has(&p, text);
    client_has(&p, "ntlm: the account file /nonexistent/ntlm_users cannot be read");
    test_pair_free(&p);
}

static void an_expired_ticket_is_named_with_its_end(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char ccache[400], cmd[1200], text[1000];
    snprintf(ccache, sizeof(ccache), "FILE:%s/cc-errors-short", r->dir);
    snprintf(cmd, sizeof(cmd), "kinit -l 2s -c '%s' alice < '%s/alice.password' >/dev/null 2>&1",
             ccache, r->dir);
    assert_int_equal(system(cmd), 0);
    assert_true(test_wait_ticket_expired(ccache, 10000));
    snprintf(text, sizeof(text),
             "kerberos: the ticket-granting ticket of alice@%s in %s expired at", r->realm, ccache);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_ccache(cc, ccache), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "expired ticket");
    client_has(&p, text);
    client_has(&p, "run kinit again");
    test_pair_free(&p);
}

/* The KDC an hour behind: the server measures its own clock against the KDC's, and the client
 * reads the server's time in its KRB-ERROR and compares it with the KDC's. */
static void clock_skew_is_measured_on_both_sides(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char realm[100];
    snprintf(realm, sizeof(realm), " s ahead of the KDC's of %s", r->realm);
    test_realm_restart_kdc(-3600);
    test_pair p;
    test_pair_run_configs(&p, test_password_client(NEGIO_MECH_KERBEROS, "alice", r->alice_pw),
                          test_server_config(PATH_KERBEROS), "clock skew");
    const char *s = negio_conn_error_detail(p.server.conn),
               *c = negio_conn_error_detail(p.client.conn);
    long measured_s = number_after(s, "kerberos: clock skew: this server's clock is ");
    long measured_c = number_after(c, "kerberos: clock skew: the server's clock is ");
    test_realm_restart_kdc(0);
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    has(s, realm);
    has(s, "(at most 300 s are allowed): set the clocks right (NTP)");
    assert_true(measured_s >= 3590 && measured_s <= 3610);
    assert_int_equal(p.client.err, NEGIO_ERR_PEER);
    has(c, " s ahead of the KDC's");
    assert_true(measured_c >= 3590 && measured_c <= 3610);
    test_pair_free(&p);
}

/* A KRB-ERROR of CODE stamped STIME, from negio/localhost, in the RFC 2743 framing with the
 * Kerberos OID and TOK_ID 03 00 (RFC 4121 section 4.1): what anyone on the path can forge, no key
 * needed. Caller frees. */
/* A forged HANDSHAKE_ERROR carrying a clock-skew KRB-ERROR, with the KDC stopped (it accepts and
 * never answers): parsing it asks neither the KDC nor anything else that can block. The client
 * holds it for a step (the engine's worker), and the step explains it as the real one is
 * explained: the server's clock against the KDC's. */
static void a_peer_error_is_explained_in_a_step_never_while_parsing(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    negio_config *cfg = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_deferred_steps(cfg, 1), 0);
    negio_conn *c;
    assert_int_equal(negio_conn_new(&c, cfg), 0);
    negio_config_del(cfg);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_step(c), 0); /* the AP-REQ, the KDC still answering */
    size_t n;
    free(test_take_output(c, &n));
    assert_true(n > 0);
    assert_null(negio_conn_peer_refusal(c)); /* nothing refused yet */
    assert_null(negio_conn_peer_refusal(NULL));

    size_t tlen, blen;
    uint8_t *tok = test_krb_error_token(KRB5KRB_AP_ERR_SKEW, (long)time(NULL) + 3600, &tlen);
    assert_non_null(tok);
    uint8_t *body = test_hs_error_body(tok, tlen, "clock skew", &blen);
    const uint8_t hdr[8] = {NEGIO_PROTOCOL_VERSION, 2, 0, 0, 0, 0, (uint8_t)(blen >> 8),
                            (uint8_t)blen};
    assert_int_equal(negio_conn_feed(c, hdr, sizeof(hdr)), 0);
    assert_int_equal(negio_conn_feed(c, body, blen), 0);
    free(tok);
    free(body);

    pid_t kdc = test_realm_kdc_pid();
    assert_int_equal(kill(kdc, SIGSTOP), 0);
    double t0 = test_now_s();
    int rc = negio_conn_next_event(c, &ev);
    double took = test_now_s() - t0;
    int sockets;
    long unread = test_tcp_unread_at((uint16_t)r->kdc_port, &sockets);
    kill(kdc, SIGCONT); /* before any assertion can end the test */
    fprintf(stderr, "parsing the forged error took %.3f s; %ld bytes waited at the KDC\n", took,
            unread);
    assert_int_equal(rc, 0);
    assert_true(ev.want & NEGIO_WANT_STEP);
    assert_int_equal(unread, 0);
    assert_true(took < 0.5);
    /* the refusal itself is known before the step that explains it */
    assert_string_equal(negio_conn_peer_refusal(c), "clock skew");

    assert_int_equal(negio_conn_step(c), NEGIO_ERR_PEER);
    const char *d = negio_conn_error_detail(c);
    has(d, "peer reported: clock skew; kerberos: clock skew: the server's clock is ");
    long measured = number_after(d, "kerberos: clock skew: the server's clock is ");
    assert_true(measured >= 3590 && measured <= 3610);
    has(d, " s ahead of the KDC's");
    negio_conn_del(c);
}

static void a_missing_keytab_is_named(void **state)
{
    (void)state;
    test_pair p;
    test_pair_run_configs(&p, test_client_config(PATH_KERBEROS),
                          server_for("negio@localhost", "/nonexistent/negio.keytab"),
                          "missing keytab");
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    server_has(&p, "kerberos: the keytab FILE:/nonexistent/negio.keytab does not exist");
    server_has(&p, "export the service's key into it");
    test_pair_free(&p);
}

static void a_keytab_without_the_principal_is_named(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char text[1000];
    snprintf(text, sizeof(text),
             "kerberos: the keytab FILE:%s holds no key for negio/localhost@%s (it holds "
             "other/localhost@%s)",
             r->other_keytab, r->realm, r->realm);
    test_pair p;
    test_pair_run_configs(&p, test_client_config(PATH_KERBEROS),
                          server_for("negio@localhost", r->other_keytab),
                          "keytab without the principal");
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    server_has(&p, text);
    test_pair_free(&p);

    /* the client asked for another service than the server's */
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_service(cc, "other@localhost"), 0);
    test_pair_run_configs(&p, cc, test_server_config(PATH_KERBEROS), "another service");
    server_has(&p, "kerberos: the client asked for other/localhost@");
    server_has(&p, "but this server is negio/localhost@");
    client_has(&p, "kerberos: the server does not take tickets for other/localhost@");
    test_pair_free(&p);
}

/* A key rotated at the KDC after the keytab was written: the ticket needs a version the keytab
 * does not hold; the same with a keytab that lacks the ticket's enctype. */
static void a_keytab_without_the_key_version_or_enctype_is_named(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char q[600], kt[400], full[400], cmd[2400];
    snprintf(kt, sizeof(kt), "%s/stale.keytab", r->dir);
    assert_int_equal(test_realm_kadmin("addprinc -randkey stale/localhost"), 0);
    snprintf(q, sizeof(q), "ktadd -k %s stale/localhost", kt);
    assert_int_equal(test_realm_kadmin(q), 0);
    assert_int_equal(test_realm_kadmin("cpw -randkey stale/localhost"), 0);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_service(cc, "stale@localhost"), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, server_for("stale@localhost", kt), "stale keytab");
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    server_has(&p, "kerberos: the ticket for stale/localhost@");
    server_has(&p, "needs key version 3 (aes256-cts-hmac-sha1-96), which the keytab");
    server_has(&p, "does not hold (it holds version 2 aes256-cts-hmac-sha1-96");
    server_has(&p, "the key changed at the KDC after the keytab was written");
    client_has(&p, "kerberos: the server cannot use this client's ticket for stale/localhost@");
    test_pair_free(&p);

    /* the keys of the current version, without the aes256 one the ticket is encrypted in */
    snprintf(full, sizeof(full), "%s/etype-full.keytab", r->dir);
    snprintf(kt, sizeof(kt), "%s/etype.keytab", r->dir);
    assert_int_equal(test_realm_kadmin("addprinc -randkey etype/localhost"), 0);
    snprintf(q, sizeof(q), "ktadd -k %s etype/localhost", full);
    assert_int_equal(test_realm_kadmin(q), 0);
    snprintf(cmd, sizeof(cmd),
             "printf 'rkt %s\\ndelent 1\\nwkt %s\\nquit\\n' | ktutil >/dev/null 2>&1 && "
             "klist -ke %s | grep -q aes128 && ! klist -ke %s | grep -q aes256",
             full, kt, kt, kt);
    assert_int_equal(system(cmd), 0);
    cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(negio_config_set_service(cc, "etype@localhost"), 0);
    test_pair_run_configs(&p, cc, server_for("etype@localhost", kt), "keytab without the enctype");
    assert_int_equal(p.server.err, NEGIO_ERR_HANDSHAKE);
    server_has(&p, "needs key version 2 (aes256-cts-hmac-sha1-96), which the keytab");
    server_has(&p, "(it holds version 2 aes128-cts-hmac-sha1-96)");
    test_pair_free(&p);
}

/* Refused mechanisms: the client names what the server would not take. */
static void a_mechanism_the_server_does_not_offer_is_named(void **state)
{
    (void)state;
    negio_config *sc = test_server_config(PATH_NTLM);
    assert_int_equal(negio_config_set_allowed(sc, NEGIO_ALLOW_NTLM), 0);
    test_pair p;
    test_pair_run_configs(&p, test_client_config(PATH_KERBEROS), sc,
                          "kerberos to an ntlm-only server");
    assert_int_equal(p.server.err, NEGIO_ERR_POLICY);
    server_has(&p, "client offered kerberos, which is not allowed");
    assert_int_equal(p.client.err, NEGIO_ERR_PEER);
    client_has(&p, "the server does not accept kerberos: use --mech negotiate");
    test_pair_free(&p);

    /* mutual authentication required: only Kerberos is offered, and the server takes NTLM only */
    negio_config *cc = test_client_config(PATH_NEG_KERBEROS);
    assert_int_equal(negio_config_set_require_server_auth(cc, 1), 0);
    sc = test_server_config(PATH_NTLM);
    assert_int_equal(negio_config_set_allowed(sc, NEGIO_ALLOW_NTLM), 0);
    test_pair_run_configs(&p, cc, sc, "mutual required, ntlm-only server");
    server_has(&p, "the client offered no mechanism this server accepts (it allows ntlm only)");
    client_has(&p, "the server accepts none of the mechanisms this client offered (kerberos): "
                   "ntlm was not offered: server authentication is required");
    test_pair_free(&p);
}

/* Mutual authentication required and no Kerberos ticket: NTLM, which cannot authenticate the
 * server, was not tried, and the detail says so. */
static void mutual_authentication_without_kerberos_says_ntlm_was_not_offered(void **state)
{
    (void)state;
    negio_config *cc = test_client_config(PATH_NEG_NTLM);
    assert_int_equal(negio_config_set_require_server_auth(cc, 1), 0);
    test_pair p;
    test_pair_run_configs(&p, cc, test_server_config(PATH_NEG_NTLM), "mutual required, no ticket");
    assert_true(p.client.err == NEGIO_ERR_CREDENTIALS || p.client.err == NEGIO_ERR_HANDSHAKE);
    client_has(&p, "kerberos: no ticket");
    client_has(&p, "ntlm: not offered, since server authentication is required and ntlm cannot "
                   "authenticate a server");
    test_pair_free(&p);
}

/* ---- negio_config_check_credentials ---------------------------------------------------- */

static int check(negio_config *cfg, char *detail, size_t cap)
{
    int rc = negio_config_check_credentials(cfg, detail, cap);
    fprintf(stderr, "[check] %s: %s\n", negio_err_name(rc), detail);
    negio_config_del(cfg);
    return rc;
}

static void the_credential_check_passes_a_server_that_holds_its_key(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char detail[1024], text[500];
    snprintf(text, sizeof(text), "kerberos: the keytab FILE:%s holds ", r->keytab);
    assert_int_equal(check(test_server_config(PATH_KERBEROS), detail, sizeof(detail)), NEGIO_OK);
    has(detail, text);
    has(detail, "keys for negio/localhost@");
    /* and a client with a ticket-granting ticket, or a password */
    assert_int_equal(check(test_client_config(PATH_KERBEROS), detail, sizeof(detail)), NEGIO_OK);
    assert_int_equal(
        check(test_password_client(NEGIO_MECH_KERBEROS, "alice", "any"), detail, sizeof(detail)),
        NEGIO_OK);
}

static void the_credential_check_names_what_a_server_lacks(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char detail[1024], empty[400], text[500];
    assert_int_equal(
        check(server_for("negio@localhost", "/nonexistent.keytab"), detail, sizeof(detail)),
        NEGIO_ERR_CREDENTIALS);
    has(detail, "kerberos: the keytab FILE:/nonexistent.keytab does not exist");

    assert_int_equal(check(server_for("negio@localhost", r->other_keytab), detail, sizeof(detail)),
                     NEGIO_ERR_CREDENTIALS);
    has(detail, "holds no key for negio/localhost@");

    snprintf(empty, sizeof(empty), "%s/empty-dir.keytab", r->dir);
    mkdir(empty, 0700);
    assert_int_equal(check(server_for("negio@localhost", empty), detail, sizeof(detail)),
                     NEGIO_ERR_CREDENTIALS);
    snprintf(text, sizeof(text), "kerberos: the keytab FILE:%s cannot be read", empty);
    has(detail, text);

    negio_config *sc = test_server_config(PATH_NTLM);
    assert_int_equal(negio_config_set_ntlm_file(sc, "/nonexistent/ntlm_users"), 0);
    assert_int_equal(check(sc, detail, sizeof(detail)), NEGIO_ERR_CREDENTIALS);
    has(detail, "ntlm: the account file /nonexistent/ntlm_users cannot be read");

    /* NTLM alone needs no keytab */
    sc = server_for("negio@localhost", "/nonexistent.keytab");
    assert_int_equal(negio_config_set_allowed(sc, NEGIO_ALLOW_NTLM), 0);
    assert_int_equal(check(sc, detail, sizeof(detail)), NEGIO_OK);
}

/* A keytab this process may not read: run as nobody when the test runs as root (root reads
 * everything). */
static void the_credential_check_names_a_keytab_it_cannot_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/negio-unreadable-XXXXXX", kt[100];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(kt, sizeof(kt), "%s/service.keytab", dir);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 000 '%s'", test_realm_get()->keytab, kt, kt);
    assert_int_equal(system(cmd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        setenv("KRB5_CONFIG", "/dev/null", 1); /* the realm's folder is not nobody's to read */
        negio_config *sc;
        char detail[1024];
        if (negio_config_new(&sc, NEGIO_ROLE_SERVER) < 0 || negio_config_set_keytab(sc, kt) < 0 ||
            negio_config_set_allowed(sc, NEGIO_ALLOW_KERBEROS) < 0)
            _exit(4);
        int rc = negio_config_check_credentials(sc, detail, sizeof(detail));
        negio_config_del(sc); /* the child is checked for leaks at its exit too (valgrind) */
        fprintf(stderr, "[unreadable] %s\n", detail);
        _exit(rc == NEGIO_ERR_CREDENTIALS &&
                      strstr(detail, "cannot be read by this process (uid ") != NULL &&
                      strstr(detail, "Permission denied") != NULL
                  ? 0
                  : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void the_credential_check_names_what_a_client_lacks(void **state)
{
    (void)state;
    char detail[1024];
    negio_config *cc = test_client_config(PATH_NEG_NTLM);
    assert_int_equal(negio_config_set_ntlm_file(cc, "/nonexistent/ntlm_users"), 0);
    assert_int_equal(check(cc, detail, sizeof(detail)), NEGIO_ERR_CREDENTIALS);
    has(detail, "kerberos: no ticket: the credential cache");
    has(detail, "ntlm: the account file /nonexistent/ntlm_users cannot be read");
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_unknown_service_principal_is_named_with_the_name_asked_for),
        cmocka_unit_test(negotiate_says_what_each_mechanism_did),
        cmocka_unit_test(a_wrong_kerberos_password_is_named),
        cmocka_unit_test(an_unknown_kerberos_user_is_named),
        cmocka_unit_test(a_wrong_ntlm_password_is_named_on_both_sides),
        cmocka_unit_test(an_unknown_ntlm_user_is_named_by_the_server),
        cmocka_unit_test(an_unreachable_kdc_is_named_with_the_addresses_tried),
        cmocka_unit_test(no_ticket_is_named_with_the_cache),
        cmocka_unit_test(an_expired_ticket_is_named_with_its_end),
        cmocka_unit_test(clock_skew_is_measured_on_both_sides),
        cmocka_unit_test(a_peer_error_is_explained_in_a_step_never_while_parsing),
        cmocka_unit_test(a_missing_keytab_is_named),
        cmocka_unit_test(a_keytab_without_the_principal_is_named),
        cmocka_unit_test(a_keytab_without_the_key_version_or_enctype_is_named),
        cmocka_unit_test(a_mechanism_the_server_does_not_offer_is_named),
        cmocka_unit_test(mutual_authentication_without_kerberos_says_ntlm_was_not_offered),
        cmocka_unit_test(the_credential_check_passes_a_server_that_holds_its_key),
        cmocka_unit_test(the_credential_check_names_what_a_server_lacks),
        cmocka_unit_test(the_credential_check_names_a_keytab_it_cannot_read),
        cmocka_unit_test(the_credential_check_names_what_a_client_lacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
