/* The ABI promises of docs/ARCHITECTURE.md section 17 that a program can observe:
 *  - the library reports the version of the headers it was built with;
 *  - the growable structures (the conventions of negio.h): the library reads and writes no more
 *    of a caller's structure than its size says (each older, smaller structure below sits at the
 *    very end of a page followed by an inaccessible one, so one byte more is a crash), treats
 *    what the caller does not have as defaults, takes 0 for the 0.2 layout, and refuses a larger
 *    structure that sets bytes this library has no field for.
 * No realm: the established connection whose facts are read runs over plain TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "negio/engine.h"
#include "negio/identity.h"
#include "negio/negio.h"
#include "support/certs.h"
#include "support/support.h"

/* ---- version -------------------------------------------------------------------------------- */

static void the_library_reports_the_version_of_its_headers(void **state)
{
    (void)state;
    char text[32];
    snprintf(text, sizeof(text), "%d.%d.%d", NEGIO_VERSION_MAJOR, NEGIO_VERSION_MINOR,
             NEGIO_VERSION_PATCH);
    assert_string_equal(NEGIO_VERSION_STRING, text);
    assert_int_equal(NEGIO_VERSION_NUMBER,
                     NEGIO_VERSION_MAJOR << 16 | NEGIO_VERSION_MINOR << 8 | NEGIO_VERSION_PATCH);
    assert_int_equal(negio_version(), NEGIO_VERSION_NUMBER);
    assert_string_equal(negio_version_string(), NEGIO_VERSION_STRING);
}

/* ---- growable structures -------------------------------------------------------------------- */

#define END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* LEN bytes that end where an inaccessible page begins: reading or writing one byte past them
 * crashes the test. */
typedef struct fenced {
    uint8_t *map;
    size_t page;
    void *p;
} fenced;

static fenced fence(size_t len)
{
    fenced f;
    f.page = (size_t)sysconf(_SC_PAGESIZE);
    f.map = mmap(NULL, 2 * f.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f.map != MAP_FAILED);
    assert_int_equal(mprotect(f.map + f.page, f.page, PROT_NONE), 0);
    f.p = f.map + f.page - len;
    memset(f.p, 0, len);
    return f;
}

static void unfence(fenced *f)
{
    munmap(f->map, 2 * f->page);
}

/* Declarations of the structures as an older, smaller version of the headers could have made
 * them: the same fields in the same places, fewer of them. */
typedef struct limits_older {
    uint32_t size;
    uint32_t max_token;
} limits_older;
_Static_assert(offsetof(limits_older, max_token) == offsetof(negio_limits, max_token), "prefix");

typedef struct auth_info_older {
    uint32_t size;
    negio_mech mech;
    int negotiated;
    const char *peer;
} auth_info_older;
_Static_assert(offsetof(auth_info_older, peer) == offsetof(negio_auth_info, peer), "prefix");

typedef struct engine_options_older {
    uint32_t size;
    unsigned loops;
    unsigned workers;
} engine_options_older;
_Static_assert(offsetof(engine_options_older, workers) == offsetof(negio_engine_options, workers),
               "prefix");

typedef struct identity_policy_older {
    uint32_t size;
    uid_t min_uid;
} identity_policy_older;
_Static_assert(offsetof(identity_policy_older, min_uid) == offsetof(negio_identity_policy, min_uid),
               "prefix");

/* ...and as a newer, larger version could: one field more. */
typedef struct limits_newer {
    negio_limits now;
    uint32_t later;
} limits_newer;

typedef struct auth_info_newer {
    negio_auth_info now;
    uint64_t later;
} auth_info_newer;

typedef struct engine_options_newer {
    negio_engine_options now;
    uint64_t later;
} engine_options_newer;

static negio_config *server_cfg(void)
{
    negio_config *cfg;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_SERVER), NEGIO_OK);
    return cfg;
}

static negio_limits limits_of(const negio_config *cfg)
{
    negio_limits l = {.size = sizeof(l)};
    assert_int_equal(negio_config_get_limits(cfg, &l), NEGIO_OK);
    assert_int_equal(l.size, sizeof(l));
    return l;
}

static void an_older_limits_is_read_no_further_than_its_size(void **state)
{
    (void)state;
    negio_config *cfg = server_cfg();
    fenced f = fence(sizeof(limits_older));
    limits_older *old = f.p;
    old->size = sizeof(*old);
    old->max_token = 2048;
    assert_int_equal(negio_config_set_limits(cfg, f.p), NEGIO_OK);
    negio_limits l = limits_of(cfg);
    assert_int_equal(l.max_token, 2048);
    assert_int_equal(l.max_rounds, 8); /* beyond the caller's size: the defaults */
    assert_int_equal(l.max_frame, 1048576);
    assert_int_equal(l.max_queued, 16777216);
    unfence(&f);
    negio_config_del(cfg);
}

static void fields_beyond_the_callers_size_take_their_defaults(void **state)
{
    (void)state;
    negio_config *cfg = server_cfg();
    negio_limits in = {.size = END(negio_limits, max_token), .max_token = 4096, .max_rounds = 3};
    assert_int_equal(negio_config_set_limits(cfg, &in), NEGIO_OK);
    negio_limits l = limits_of(cfg);
    assert_int_equal(l.max_token, 4096);
    assert_int_equal(l.max_rounds, 8);
    negio_config_del(cfg);
}

static void a_zero_size_stands_for_the_0_2_layout(void **state)
{
    (void)state;
    negio_config *cfg = server_cfg();
    negio_limits in = {.max_token = 4096, .max_rounds = 3, .max_queued = 5000}; /* size 0 */
    assert_int_equal(negio_config_set_limits(cfg, &in), NEGIO_OK);
    negio_limits l = limits_of(cfg);
    assert_int_equal(l.max_token, 4096);
    assert_int_equal(l.max_rounds, 3);
    assert_int_equal(l.max_queued, 5000);
    negio_limits out = {0};
    assert_int_equal(negio_config_get_limits(cfg, &out), NEGIO_OK);
    assert_int_equal(out.size, END(negio_limits, max_queued));
    assert_int_equal(out.max_queued, 5000);
    negio_config_del(cfg);
}

static void a_newer_limits_is_accepted_only_with_zeros_where_this_library_has_no_field(void **st)
{
    (void)st;
    negio_config *cfg = server_cfg();
    limits_newer in = {.now = {.size = sizeof(in), .max_token = 4096}};
    assert_int_equal(negio_config_set_limits(cfg, &in.now), NEGIO_OK);
    assert_int_equal(limits_of(cfg).max_token, 4096);
    in.now.max_token = 8192;
    in.later = 1; /* something this library cannot do: refused, nothing changed */
    assert_int_equal(negio_config_set_limits(cfg, &in.now), NEGIO_ERR_INVALID);
    assert_int_equal(limits_of(cfg).max_token, 4096);
    negio_config_del(cfg);
}

static void sizes_below_the_size_field_or_over_4096_are_refused(void **state)
{
    (void)state;
    negio_config *cfg = server_cfg();
    static const uint32_t bad[] = {1, 2, 3, 4097, 0xffffffffu};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        negio_limits l = {.size = bad[i], .max_token = 4096};
        assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_get_limits(cfg, &l), NEGIO_ERR_INVALID);
        assert_int_equal(l.size, bad[i]); /* untouched */
        assert_int_equal(l.max_token, 4096);
        assert_int_equal(negio_user_lookup(&(negio_user *){NULL}, "root",
                                           &(negio_identity_policy){.size = bad[i]}, NULL, 0),
                         NEGIO_ERR_INVALID);
        negio_engine *e = NULL;
        assert_int_equal(negio_engine_new(&e, &(negio_engine_options){.size = bad[i]}),
                         NEGIO_ERR_INVALID);
        assert_null(e);
    }
    assert_int_equal(limits_of(cfg).max_token, 65536);
    negio_config_del(cfg);
}

static void limits_are_filled_no_further_than_the_callers_size(void **state)
{
    (void)state;
    negio_config *cfg = server_cfg();
    fenced f = fence(sizeof(limits_older));
    limits_older *old = f.p;
    old->size = sizeof(*old);
    assert_int_equal(negio_config_get_limits(cfg, f.p), NEGIO_OK);
    assert_int_equal(old->size, sizeof(*old));
    assert_int_equal(old->max_token, 65536);
    unfence(&f);
    /* a newer caller: what this library has no field for comes back zero, size says so */
    limits_newer out;
    memset(&out, 0xa5, sizeof(out));
    out.now.size = sizeof(out);
    assert_int_equal(negio_config_get_limits(cfg, &out.now), NEGIO_OK);
    assert_int_equal(out.now.size, sizeof(negio_limits));
    assert_int_equal(out.now.max_queued, 16777216);
    assert_int_equal(out.later, 0);
    negio_config_del(cfg);
}

/* A connection over plain TLS, established in memory (no realm needed). */
static void tls_pair(test_pair *p)
{
    const test_certs *c = test_certs_get();
    negio_config *cc, *sc;
    assert_int_equal(negio_config_new(&cc, NEGIO_ROLE_CLIENT), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cc, "negio@localhost"), NEGIO_OK);
    assert_int_equal(negio_config_set_transport(cc, NEGIO_TRANSPORT_TLS), NEGIO_OK);
    assert_int_equal(negio_config_set_tls_ca(cc, c->ca_cert), NEGIO_OK);
    sc = server_cfg();
    assert_int_equal(negio_config_set_transport(sc, NEGIO_TRANSPORT_TLS), NEGIO_OK);
    assert_int_equal(negio_config_set_tls_cert(sc, c->server_cert, c->server_key), NEGIO_OK);
    test_pair_init(p, cc, sc, SPLIT_WHOLE, 1);
    negio_config_del(cc);
    negio_config_del(sc);
    test_pair_run(p);
    assert_true(negio_conn_is_established(p->client.conn));
}

static void auth_info_is_filled_no_further_than_the_callers_size(void **state)
{
    (void)state;
    test_pair p;
    tls_pair(&p);
    fenced f = fence(sizeof(auth_info_older));
    auth_info_older *old = f.p;
    old->size = sizeof(*old);
    assert_int_equal(negio_conn_auth_info(p.client.conn, f.p), NEGIO_OK);
    assert_int_equal(old->size, sizeof(*old));
    assert_int_equal(old->mech, NEGIO_MECH_NONE); /* plain TLS: no GSS mechanism */
    assert_non_null(old->peer);                   /* the server certificate's subject */
    unfence(&f);

    negio_auth_info whole = {.size = sizeof(whole)};
    assert_int_equal(negio_conn_auth_info(p.client.conn, &whole), NEGIO_OK);
    assert_int_equal(whole.size, sizeof(whole));
    assert_string_equal(whole.tls_version, "TLSv1.3");
    assert_int_equal(whole.server_authenticated, 1);

    negio_auth_info zero = {0}; /* the 0.2 layout */
    assert_int_equal(negio_conn_auth_info(p.client.conn, &zero), NEGIO_OK);
    assert_int_equal(zero.size, END(negio_auth_info, channel_bound));
    assert_string_equal(zero.tls_version, "TLSv1.3");

    auth_info_newer newer;
    memset(&newer, 0xa5, sizeof(newer));
    newer.now.size = sizeof(newer);
    assert_int_equal(negio_conn_auth_info(p.client.conn, &newer.now), NEGIO_OK);
    assert_int_equal(newer.now.size, sizeof(negio_auth_info));
    assert_int_equal(newer.later, 0);
    assert_int_equal(newer.now.tls_peer_verified, 1);

    negio_auth_info bad = {.size = 3};
    assert_int_equal(negio_conn_auth_info(p.client.conn, &bad), NEGIO_ERR_INVALID);
    test_pair_free(&p);
}

static void an_older_engine_options_is_read_no_further_than_its_size(void **state)
{
    (void)state;
    fenced f = fence(sizeof(engine_options_older));
    engine_options_older *old = f.p;
    old->size = sizeof(*old);
    old->loops = 1;
    old->workers = 1;
    negio_engine *e = NULL;
    assert_int_equal(negio_engine_new(&e, f.p), NEGIO_OK);
    negio_engine_del(e);
    unfence(&f);

    engine_options_newer newer = {.now = {.size = sizeof(newer), .loops = 1, .workers = 1}};
    assert_int_equal(negio_engine_new(&e, &newer.now), NEGIO_OK);
    negio_engine_del(e);
    newer.later = 1;
    e = NULL;
    assert_int_equal(negio_engine_new(&e, &newer.now), NEGIO_ERR_INVALID);
    assert_null(e);
}

static void identity_policy_fields_beyond_the_callers_size_are_not_read(void **state)
{
    (void)state;
    negio_user *u = NULL;
    /* allow_root lies beyond the size: not read, so root stays refused */
    negio_identity_policy p = {.size = END(negio_identity_policy, min_uid), .allow_root = 1};
    assert_int_equal(negio_user_lookup(&u, "root", &p, NULL, 0), NEGIO_ERR_IDENTITY);
    p.size = 0; /* the 0.2 layout: allow_root is there */
    assert_int_equal(negio_user_lookup(&u, "root", &p, NULL, 0), NEGIO_OK);
    negio_user_del(u);

    fenced f = fence(sizeof(identity_policy_older));
    identity_policy_older *old = f.p;
    old->size = sizeof(*old);
    u = NULL;
    assert_int_equal(negio_user_lookup(&u, "root", f.p, NULL, 0), NEGIO_ERR_IDENTITY);
    assert_null(u);
    unfence(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_library_reports_the_version_of_its_headers),
        cmocka_unit_test(an_older_limits_is_read_no_further_than_its_size),
        cmocka_unit_test(fields_beyond_the_callers_size_take_their_defaults),
        cmocka_unit_test(a_zero_size_stands_for_the_0_2_layout),
        cmocka_unit_test(
            a_newer_limits_is_accepted_only_with_zeros_where_this_library_has_no_field),
        cmocka_unit_test(sizes_below_the_size_field_or_over_4096_are_refused),
        cmocka_unit_test(limits_are_filled_no_further_than_the_callers_size),
        cmocka_unit_test(auth_info_is_filled_no_further_than_the_callers_size),
        cmocka_unit_test(an_older_engine_options_is_read_no_further_than_its_size),
        cmocka_unit_test(identity_policy_fields_beyond_the_callers_size_are_not_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
