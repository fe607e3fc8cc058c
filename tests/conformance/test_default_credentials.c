/* Conformance: a client without a credential cache of its own, whose default cache (KRB5CCNAME)
 * cannot be read, as when the process is out of descriptors (EMFILE) or the file is damaged, fails
 * its handshake with a credentials error and never crashes. Two MIT krb5 bugs lie on this path,
 * and negio stays off both (src/gss/cred.c, docs/ARCHITECTURE.md section 8.1):
 *
 *   - krb5_cccol_have_content (MIT krb5 before 1.21.3) frees a principal it never set when it
 *     cannot read a cache of the collection; gss_acquire_cred_from calls it for a credential with
 *     neither a name nor a cache. The pointer is whatever the stack held: a crash (SIGSEGV; the
 *     `negio tunnel` client out of descriptors), a double free, or nothing. Which of them is
 *     chance, so the test watches for the call itself: negio names the default cache, and MIT
 *     then reads that cache instead of walking the collection.
 *   - a credential acquired without a name or a cache is resolved by the first
 *     gss_init_sec_context made with it; if reading the cache fails there, MIT keeps the cache
 *     without the principal, and every later gss_init_sec_context with that credential stops the
 *     process on an assertion (kg_cred_resolve). negio shares a configuration's credential
 *     between its connectors (a tunnel's connections on two workers: SIGABRT). negio has MIT
 *     resolve the credential while acquiring it, so that one that cannot be resolved is never
 *     acquired, never shared: the failure is the acquisition's (NEGIO_ERR_CREDENTIALS), not a
 *     handshake's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <krb5/krb5.h>

#include "support/checks.h"
#include "support/support.h"

static char saved_ccname[1024], saved_ktname[1024], saved_ntlm[1024];
static char damaged[512];

/* libgssapi_krb5 calls libkrb5's krb5_cccol_have_content through the dynamic linker: this
 * definition in the test program comes first, counts the calls and passes them on. */
static int have_content_calls;

krb5_error_code KRB5_CALLCONV krb5_cccol_have_content(krb5_context context)
{
    krb5_error_code (*real)(krb5_context) =
        (krb5_error_code(*)(krb5_context))dlsym(RTLD_NEXT, "krb5_cccol_have_content");
    have_content_calls++;
    return real != NULL ? real(context) : KRB5_CC_NOTFOUND;
}

/* KRB5CCNAME at a file that is not a credential cache, and the client keytab at KEYTAB (NULL: a
 * file that does not exist, so that no initial credentials can be had from it either). */
static void use_damaged_cache(const char *keytab)
{
    const test_realm *r = test_realm_get();
    snprintf(damaged, sizeof(damaged), "%s/damaged.cc", r->dir);
    FILE *f = fopen(damaged, "w");
    assert_non_null(f);
    fputs("not a credential cache\n", f);
    fclose(f);
    char name[600];
    snprintf(name, sizeof(name), "FILE:%s", damaged);
    setenv("KRB5CCNAME", name, 1);
    if (keytab != NULL) {
        setenv("KRB5_CLIENT_KTNAME", keytab, 1);
    } else {
        snprintf(name, sizeof(name), "FILE:%s/no-such.keytab", r->dir);
        setenv("KRB5_CLIENT_KTNAME", name, 1);
    }
}

static void save(const char *var, char *out, size_t cap)
{
    const char *v = getenv(var);
    snprintf(out, cap, "%s", v != NULL ? v : "");
}

static void restore(const char *var, const char *v)
{
    if (v[0] != '\0')
        setenv(var, v, 1);
    else
        unsetenv(var);
}

static int save_env(void **state)
{
    (void)state;
    test_realm_get();
    save("KRB5CCNAME", saved_ccname, sizeof(saved_ccname));
    save("KRB5_CLIENT_KTNAME", saved_ktname, sizeof(saved_ktname));
    save("NTLM_USER_FILE", saved_ntlm, sizeof(saved_ntlm));
    have_content_calls = 0;
    return 0;
}

static int restore_env(void **state)
{
    (void)state;
    restore("KRB5CCNAME", saved_ccname);
    restore("KRB5_CLIENT_KTNAME", saved_ktname);
    restore("NTLM_USER_FILE", saved_ntlm);
    if (damaged[0] != '\0')
        remove(damaged);
    return 0;
}

/* A client of MECH with no cache of its own: the default one. */
static negio_config *default_client(negio_mech mech)
{
    negio_config *cfg;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_CLIENT), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
    assert_int_equal(negio_config_set_mech(cfg, mech), NEGIO_OK);
    return cfg;
}

/* A handshake of CLIENT that must fail in acquiring its credentials. */
static void expect_acquisition_fails(const negio_config *client)
{
    negio_config *server = test_server_config(PATH_KERBEROS);
    test_pair p;
    test_pair_init(&p, client, server, SPLIT_WHOLE, 1);
    negio_config_del(server);
    test_pair_run(&p);
    test_pair_report(&p, "damaged default cache");
    assert_int_equal(test_side_count(&p.client, NEGIO_EV_ESTABLISHED), 0);
    assert_int_equal(p.client.err, NEGIO_ERR_CREDENTIALS);
    test_assert_detail_has(p.client.conn, "gss_acquire_cred_from");
    test_pair_free(&p);
}

static void the_default_cache_is_read_by_name_not_through_the_collection(void **state)
{
    (void)state;
    use_damaged_cache(NULL);
    negio_config *client = default_client(NEGIO_MECH_KERBEROS);
    expect_acquisition_fails(client);
    assert_int_equal(have_content_calls, 0);
    negio_config_del(client);
    /* negotiate, Kerberos alone allowed */
    client = default_client(NEGIO_MECH_NEGOTIATE);
    assert_int_equal(negio_config_set_allowed(client, NEGIO_ALLOW_KERBEROS), NEGIO_OK);
    expect_acquisition_fails(client);
    assert_int_equal(have_content_calls, 0);
    negio_config_del(client);
}

static void a_credential_that_cannot_be_resolved_is_never_acquired(void **state)
{
    (void)state;
    /* a client keytab with keys: MIT then acquires without reading the cache, which the
     * resolution reads */
    use_damaged_cache(test_realm_get()->client_keytab);
    negio_config *client = default_client(NEGIO_MECH_KERBEROS);
    for (int i = 0; i < 2; i++) /* the connectors of one configuration share its credential */
        expect_acquisition_fails(client);
    negio_config_del(client);
    /* negotiate with NTLM allowed and no NTLM account file: the default cache is not named
     * (gss-ntlmssp would then find no default account), and resolving it is what keeps it safe */
    unsetenv("NTLM_USER_FILE");
    client = default_client(NEGIO_MECH_NEGOTIATE);
    for (int i = 0; i < 2; i++)
        expect_acquisition_fails(client);
    negio_config_del(client);
}

int main(void)
{
    if (test_transport_get() == TRANSPORT_TLS) {
        fprintf(stderr, "no GSS-API credentials under plain TLS\n");
        return 0;
    }
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            the_default_cache_is_read_by_name_not_through_the_collection, save_env, restore_env),
        cmocka_unit_test_setup_teardown(a_credential_that_cannot_be_resolved_is_never_acquired,
                                        save_env, restore_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
