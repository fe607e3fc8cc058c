/* Conformance: how peers map to local accounts, and delegation (the double hop), against the
 * real KDC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "negio/identity.h"
#include "support/support.h"

static void establish(test_pair *p, negio_config *cc, negio_config *sc)
{
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    if (!test_pair_establish(p))
        fail_msg("handshake: client %s (%s), server %s (%s)", negio_err_name(p->client.err),
                 negio_conn_error_detail(p->client.conn), negio_err_name(p->server.err),
                 negio_conn_error_detail(p->server.conn));
}

static const char *local_name(test_pair *p)
{
    negio_auth_info si = {.size = sizeof(si)};
    assert_int_equal(negio_conn_auth_info(p->server.conn, &si), 0);
    return si.local_name;
}

/* Kerberos: auth_to_local (the realm's default rule strips the realm); an explicit entry wins. */
static void kerberos_principals_map_through_auth_to_local_or_an_explicit_entry(void **state)
{
    (void)state;
    test_pair p;
    establish(&p, test_client_config(PATH_KERBEROS), test_server_config(PATH_KERBEROS));
    assert_string_equal(local_name(&p), "alice");
    test_pair_free(&p);

    char alice[128];
    snprintf(alice, sizeof(alice), "alice@%s", test_realm_get()->realm);
    negio_config *sc = test_server_config(PATH_KERBEROS);
    assert_int_equal(negio_config_add_user_map(sc, alice, "alice-local"), 0);
    establish(&p, test_client_config(PATH_NEG_KERBEROS), sc);
    assert_string_equal(local_name(&p), "alice-local");
    test_pair_free(&p);

    /* an explicit entry naming something no account may be called maps to nothing */
    sc = test_server_config(PATH_KERBEROS);
    assert_int_equal(negio_config_add_user_map(sc, alice, "../etc"), 0);
    establish(&p, test_client_config(PATH_KERBEROS), sc);
    assert_null(local_name(&p));
    test_pair_free(&p);
}

/* NTLM: DOMAIN\user maps to user only for the configured domain (any case); OTHER\user, a user
 * without a domain, and any NTLM name when no domain is configured map to nothing. */
static void ntlm_names_map_only_within_the_configured_domain(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    test_pair p;
    establish(&p, test_client_config(PATH_NTLM), test_server_config(PATH_NTLM));
    assert_null(local_name(&p)); /* no NTLM domain configured */
    test_pair_free(&p);

    negio_config *sc = test_server_config(PATH_NTLM);
    assert_int_equal(negio_config_set_ntlm_domain(sc, "negio"), 0);
    establish(&p, test_client_config(PATH_NTLM), sc);
    assert_string_equal(local_name(&p), "alice");
    test_pair_free(&p);

    sc = test_server_config(PATH_NTLM);
    assert_int_equal(negio_config_set_ntlm_domain(sc, "NEGIO"), 0);
    assert_int_equal(negio_config_add_user_map(sc, "negio\\ALICE", "alice-ntlm"), 0);
    establish(&p, test_client_config(PATH_NEG_NTLM), sc);
    assert_string_equal(local_name(&p), "alice-ntlm");
    test_pair_free(&p);

    /* the same account, named without its domain or in another domain */
    const char *names[] = {"alice", "OTHER\\alice"};
    for (size_t i = 0; i < 2; i++) {
        sc = test_server_config(PATH_NTLM);
        assert_int_equal(negio_config_set_ntlm_domain(sc, "NEGIO"), 0);
        test_pair q;
        negio_config *cc = test_password_client(NEGIO_MECH_NTLM, names[i], r->alice_pw);
        test_pair_init(&q, cc, sc, SPLIT_WHOLE, 1);
        negio_config_del(cc);
        negio_config_del(sc);
        if (test_pair_establish(&q)) {
            negio_auth_info si = {.size = sizeof(si)};
            negio_conn_auth_info(q.server.conn, &si);
            fprintf(stderr, "NTLM \"%s\" authenticated as \"%s\": local name %s\n", names[i],
                    si.peer, si.local_name ? si.local_name : "(none)");
            assert_null(si.local_name);
        } /* gss-ntlmssp may also refuse the other domain outright: equally fine */
        test_pair_free(&q);
    }
}

/* root@REALM maps to the name "root", which is refused as uid 0; never impersonated. */
static void root_at_realm_is_never_impersonated(void **state)
{
    (void)state;
    char path[400], pw[128];
    snprintf(path, sizeof(path), "%s/root.password", test_realm_get()->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(pw, sizeof(pw), f));
    fclose(f);
    pw[strcspn(pw, "\n")] = '\0';
    test_pair p;
    establish(&p, test_password_client(NEGIO_MECH_KERBEROS, "root", pw),
              test_server_config(PATH_KERBEROS));
    assert_string_equal(local_name(&p), "root");
    negio_user *u = NULL;
    char why[256] = "";
    assert_int_equal(negio_conn_user(&u, p.server.conn, NULL, why, sizeof(why)),
                     NEGIO_ERR_IDENTITY);
    assert_null(u);
    assert_non_null(strstr(why, "uid 0"));
    test_pair_free(&p);
}

static long file_size(const char *ccache)
{
    struct stat st;
    return stat(ccache + 5, &st) == 0 ? (long)st.st_size : -1; /* skip "FILE:" */
}

/* The double hop: the client delegates, the middle server connects onward to another service
 * as the client, and that backend sees the original client. The process's own credential cache
 * is not touched. */
static void delegated_credentials_make_the_double_hop(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    long cc_before = file_size(r->ccache);
    for (int path = PATH_KERBEROS; path <= PATH_NEG_KERBEROS; path++) {
        negio_config *cc = test_client_config((test_path)path);
        assert_int_equal(negio_config_set_delegate(cc, 1), 0);
        test_pair front;
        establish(&front, cc, test_server_config((test_path)path));
        negio_auth_info si = {.size = sizeof(si)};
        assert_int_equal(negio_conn_auth_info(front.server.conn, &si), 0);
        assert_int_equal(si.delegated, 1);
        assert_true(si.flags & NEGIO_FLAG_DELEG);
        negio_delegated *d = negio_conn_delegated(front.server.conn);
        assert_non_null(d);
        assert_string_equal(negio_delegated_principal(d), si.peer);
        negio_delegated_ref(d);
        test_pair_free(&front); /* the credentials outlive the connection only by our reference */

        /* the middle server, as alice, towards other/localhost; its own ccache has nothing */
        negio_config *onward = test_client_config(PATH_KERBEROS);
        negio_config_set_service(onward, "other@localhost");
        negio_config_set_ccache(onward, r->empty_ccache);
        assert_int_equal(negio_config_set_delegated(onward, d), 0);
        negio_delegated_unref(d); /* the config holds it now */
        negio_config *backend = test_server_config(PATH_KERBEROS);
        negio_config_set_service(backend, "other@localhost");
        negio_config_set_keytab(backend, r->other_keytab);
        test_pair hop;
        establish(&hop, onward, backend);
        negio_auth_info bi = {.size = sizeof(bi)};
        assert_int_equal(negio_conn_auth_info(hop.server.conn, &bi), 0);
        char alice[128];
        snprintf(alice, sizeof(alice), "alice@%s", r->realm);
        assert_string_equal(bi.peer, alice);
        assert_int_equal(negio_conn_write(hop.client.conn, "as alice", 8, NEGIO_LEVEL_SEAL), 0);
        test_pair_run(&hop);
        assert_int_equal(test_side_count(&hop.server, NEGIO_EV_MESSAGE), 1);
        test_pair_free(&hop);
    }
    assert_int_equal(file_size(r->ccache), cc_before); /* delegation lives in memory only */
}

/* Delegation asked for but impossible (a ticket that is not forwardable, or NTLM): no delegated
 * credentials, a clear status, and no error. */
static void delegation_without_a_forwardable_ticket_or_with_ntlm_goes_on_without_it(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    char ccache[400], cmd[1200];
    snprintf(ccache, sizeof(ccache), "FILE:%s/cc-not-forwardable", r->dir);
    snprintf(cmd, sizeof(cmd), "kinit -F -c '%s' alice < '%s/alice.password' >/dev/null 2>&1",
             ccache, r->dir);
    assert_int_equal(system(cmd), 0);
    negio_config *cc = test_client_config(PATH_KERBEROS);
    negio_config_set_ccache(cc, ccache);
    negio_config_set_delegate(cc, 1);
    test_pair p;
    establish(&p, cc, test_server_config(PATH_KERBEROS));
    negio_auth_info si = {.size = sizeof(si)};
    assert_int_equal(negio_conn_auth_info(p.server.conn, &si), 0);
    assert_int_equal(si.delegated, 0);
    assert_null(negio_conn_delegated(p.server.conn));
    test_pair_free(&p);

    cc = test_client_config(PATH_NTLM);
    negio_config_set_delegate(cc, 1);
    establish(&p, cc, test_server_config(PATH_NTLM));
    assert_int_equal(negio_conn_auth_info(p.server.conn, &si), 0);
    assert_int_equal(si.delegated, 0);
    assert_null(negio_conn_delegated(p.server.conn));
    test_pair_free(&p);
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kerberos_principals_map_through_auth_to_local_or_an_explicit_entry),
        cmocka_unit_test(ntlm_names_map_only_within_the_configured_domain),
        cmocka_unit_test(root_at_realm_is_never_impersonated),
        cmocka_unit_test(delegated_credentials_make_the_double_hop),
        cmocka_unit_test(delegation_without_a_forwardable_ticket_or_with_ntlm_goes_on_without_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
