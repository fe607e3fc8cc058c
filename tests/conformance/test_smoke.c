/* Smoke: one handshake and one message per level per path (developer aid while building). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static void run_path(test_path path)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    test_pair p;
    test_pair_init(&p, cc, sc, SPLIT_WHOLE, 1);
    int ok = test_pair_establish(&p);
    if (!ok)
        fprintf(stderr, "%s: client %s (%s) server %s (%s)\n", test_path_name(path),
                negio_err_name(p.client.err), negio_conn_error_detail(p.client.conn),
                negio_err_name(p.server.err), negio_conn_error_detail(p.server.conn));
    assert_true(ok);
    negio_auth_info ci, si;
    assert_int_equal(negio_conn_auth_info(p.client.conn, &ci), 0);
    assert_int_equal(negio_conn_auth_info(p.server.conn, &si), 0);
    fprintf(stderr, "%s: client sees %s mech %s neg %d sa %d flags %x; server sees %s local %s mech %s neg %d\n",
            test_path_name(path), ci.peer, negio_mech_name(ci.mech), ci.negotiated,
            ci.server_authenticated, ci.flags, si.peer, si.local_name ? si.local_name : "-",
            negio_mech_name(si.mech), si.negotiated);
    for (int l = NEGIO_LEVEL_NONE; l <= NEGIO_LEVEL_SEAL; l++)
        assert_int_equal(negio_conn_write(p.client.conn, "hello", 5, (negio_level)l),
                         l == 0 ? NEGIO_ERR_LEVEL : 0);
    test_pair_run(&p);
    fprintf(stderr, "server err %s %s\n", negio_err_name(p.server.err), negio_conn_error_detail(p.server.conn));
    assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 2);
    test_pair_free(&p);
    negio_config_del(cc);
    negio_config_del(sc);
}

static void smoke_kerberos(void **s) { (void)s; run_path(PATH_KERBEROS); }
static void smoke_neg_kerberos(void **s) { (void)s; run_path(PATH_NEG_KERBEROS); }
static void smoke_neg_ntlm(void **s) { (void)s; run_path(PATH_NEG_NTLM); }
static void smoke_ntlm(void **s) { (void)s; run_path(PATH_NTLM); }

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(smoke_kerberos),
        cmocka_unit_test(smoke_neg_kerberos),
        cmocka_unit_test(smoke_neg_ntlm),
        cmocka_unit_test(smoke_ntlm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
