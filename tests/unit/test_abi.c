/* The ABI promises of docs/ARCHITECTURE.md section 17 that a program can observe:
 *  - the library reports the version of the headers it was built with;
 *  - one error table (include/negio/negio.h): every code the public headers declare has a name
 *    and a text, lies in the range of its layer, and the fatal ones keep the numbers that are
 *    CLOSE statuses on the wire (docs/PROTOCOL.md section 6.8);
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

/* ---- the error table ------------------------------------------------------------------------ */

#define MAX_CODES 64

typedef struct code {
    char name[48];
    int value;
} code;

/* The "NEGIO_OK = 0," and "NEGIO_ERR_X = -N," enumerators of a public header. */
static int read_codes(const char *file, code *out, int max)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", NEGIO_PUBLIC_HEADERS, file);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[48];
        int value;
        if (sscanf(line, " %47[A-Z_] = %d ,", name, &value) == 2 &&
            (strcmp(name, "NEGIO_OK") == 0 || strncmp(name, "NEGIO_ERR_", 10) == 0)) {
            if (n == max)
                fail_msg("more than %d codes in %s", max, file);
            snprintf(out[n].name, sizeof(out[n].name), "%s", name);
            out[n++].value = value;
        }
    }
    fclose(f);
    return n;
}

static int in(const char *name, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(name, *names) == 0)
            return 1;
    return 0;
}

static void every_code_is_in_the_one_table_with_a_name_and_a_text(void **state)
{
    (void)state;
    code codes[MAX_CODES];
    int n = read_codes("negio.h", codes, MAX_CODES);
    assert_true(n >= 24); /* 24 in 0.2 */
    code other[MAX_CODES];
    assert_int_equal(read_codes("engine.h", other, MAX_CODES), 0);
    assert_int_equal(read_codes("identity.h", other, MAX_CODES), 0);
    for (int i = 0; i < n; i++) {
        assert_string_equal(negio_err_name(codes[i].value), codes[i].name);
        assert_string_not_equal(negio_strerror(codes[i].value), "unknown error");
        for (int j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].value, codes[j].value);
            assert_string_not_equal(negio_strerror(codes[i].value), negio_strerror(codes[j].value));
        }
    }
    /* and the library knows no code the headers do not declare */
    for (int v = -300; v <= 300; v++) {
        int declared = 0;
        for (int i = 0; i < n; i++)
            declared |= codes[i].value == v;
        if (!declared) {
            assert_string_equal(negio_strerror(v), "unknown error");
            assert_string_equal(negio_err_name(v), "NEGIO_ERR_UNKNOWN");
        }
    }
}

static void each_code_lies_in_the_range_of_its_layer(void **state)
{
    (void)state;
    static const char *const connector[] = {"NEGIO_ERR_INVALID", "NEGIO_ERR_STATE",
                                            "NEGIO_ERR_LEVEL", "NEGIO_ERR_MSG_SIZE", NULL};
    static const char *const engine[] = {"NEGIO_ERR_BUSY", "NEGIO_ERR_ADDRESS", "NEGIO_ERR_SYSTEM",
                                         NULL};
    static const char *const identity[] = {"NEGIO_ERR_IDENTITY", "NEGIO_ERR_PERMISSION", NULL};
    code codes[MAX_CODES];
    int n = read_codes("negio.h", codes, MAX_CODES);
    for (int i = 0; i < n; i++) {
        const char *name = codes[i].name;
        int v = codes[i].value, lo, hi;
        if (strcmp(name, "NEGIO_OK") == 0)
            lo = hi = 0;
        else if (strcmp(name, "NEGIO_ERR_FATAL") == 0)
            lo = hi = -100;
        else if (in(name, connector))
            lo = -19, hi = -1;
        else if (in(name, engine))
            lo = -39, hi = -20;
        else if (in(name, identity))
            lo = -59, hi = -40;
        else /* everything else is fatal: the connector's and its providers' */
            lo = -199, hi = -101;
        if (v < lo || v > hi)
            fail_msg("%s = %d lies outside its layer's range %d..%d", name, v, lo, hi);
    }
}

/* The negated codes are CLOSE statuses (docs/PROTOCOL.md section 6.8): peers built with other
 * versions read them, so they never move. */
static void the_fatal_codes_keep_their_wire_numbers(void **state)
{
    (void)state;
    static const struct {
        int code;
        int status;
    } wire[] = {
        {NEGIO_ERR_NOMEM, 101},       {NEGIO_ERR_PROTOCOL, 102},  {NEGIO_ERR_TOO_LARGE, 103},
        {NEGIO_ERR_TRUNCATED, 104},   {NEGIO_ERR_HANDSHAKE, 105}, {NEGIO_ERR_PEER, 106},
        {NEGIO_ERR_POLICY, 107},      {NEGIO_ERR_DOWNGRADE, 108}, {NEGIO_ERR_INTEGRITY, 109},
        {NEGIO_ERR_CREDENTIALS, 110}, {NEGIO_ERR_CLOSED, 111},    {NEGIO_ERR_REJECTED, 112},
        {NEGIO_ERR_BINDING, 113},
    };
    assert_int_equal(NEGIO_ERR_FATAL, -100);
    for (size_t i = 0; i < sizeof(wire) / sizeof(wire[0]); i++)
        assert_int_equal(-wire[i].code, wire[i].status);
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
        cmocka_unit_test(every_code_is_in_the_one_table_with_a_name_and_a_text),
        cmocka_unit_test(each_code_lies_in_the_range_of_its_layer),
        cmocka_unit_test(the_fatal_codes_keep_their_wire_numbers),
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
