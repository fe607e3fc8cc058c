/* Unit tests for configuration setters, name/parse helpers and error texts (public API only). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "negio/negio.h"

static const int all_codes[] = {
    NEGIO_OK,
    NEGIO_ERR_INVALID,
    NEGIO_ERR_STATE,
    NEGIO_ERR_LEVEL,
    NEGIO_ERR_MSG_SIZE,
    NEGIO_ERR_FATAL,
    NEGIO_ERR_NOMEM,
    NEGIO_ERR_PROTOCOL,
    NEGIO_ERR_TOO_LARGE,
    NEGIO_ERR_TRUNCATED,
    NEGIO_ERR_HANDSHAKE,
    NEGIO_ERR_PEER,
    NEGIO_ERR_POLICY,
    NEGIO_ERR_DOWNGRADE,
    NEGIO_ERR_INTEGRITY,
    NEGIO_ERR_CREDENTIALS,
    NEGIO_ERR_CLOSED,
    NEGIO_ERR_REJECTED,
    NEGIO_ERR_BINDING,
};
#define N_CODES (sizeof(all_codes) / sizeof(all_codes[0]))

static negio_config *new_cfg(negio_role role)
{
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, role), NEGIO_OK);
    assert_non_null(cfg);
    return cfg;
}

/* ---- creation ------------------------------------------------------------------------- */

static void config_new_accepts_both_roles(void **state)
{
    (void)state;
    negio_config *c = new_cfg(NEGIO_ROLE_CLIENT), *s = new_cfg(NEGIO_ROLE_SERVER);
    negio_config_del(c);
    negio_config_del(s);
}

static void config_new_rejects_null_out_and_unknown_roles(void **state)
{
    (void)state;
    negio_config *cfg = (negio_config *)0x1;
    assert_int_equal(negio_config_new(NULL, NEGIO_ROLE_CLIENT), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_new(&cfg, (negio_role)0), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_new(&cfg, (negio_role)3), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_new(&cfg, (negio_role)-1), NEGIO_ERR_INVALID);
    assert_ptr_equal(cfg, (negio_config *)0x1); /* untouched on failure */
}

static void config_del_null_is_a_noop(void **state)
{
    (void)state;
    negio_config_del(NULL);
}

/* ---- every setter rejects a NULL config ------------------------------------------------ */

static void every_setter_rejects_a_null_config(void **state)
{
    (void)state;
    negio_limits l = {0};
    assert_int_equal(negio_config_set_mech(NULL, NEGIO_MECH_KERBEROS), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_allowed(NULL, NEGIO_ALLOW_ALL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_service(NULL, "negio@localhost"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_service(NULL, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_keytab(NULL, "/tmp/kt"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_keytab(NULL, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_ccache(NULL, "FILE:/tmp/cc"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_ccache(NULL, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_ntlm_file(NULL, "/tmp/ntlm"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_ntlm_file(NULL, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(NULL, "alice", "pw"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(NULL, NULL, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_default_level(NULL, NEGIO_LEVEL_SEAL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_min_level(NULL, NEGIO_LEVEL_SIGN), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_require_server_auth(NULL, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_mutual(NULL, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_delegate(NULL, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_limits(NULL, &l), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_deferred_steps(NULL, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_log(NULL, NULL, NULL), NEGIO_ERR_INVALID);
}

/* ---- mechanism and allowed mask -------------------------------------------------------- */

static void set_mech_accepts_the_three_mechanisms_on_both_roles(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_mech(cfg, NEGIO_MECH_NEGOTIATE), NEGIO_OK);
        assert_int_equal(negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS), NEGIO_OK);
        assert_int_equal(negio_config_set_mech(cfg, NEGIO_MECH_NTLM), NEGIO_OK);
        negio_config_del(cfg);
    }
}

static void set_mech_rejects_none_and_out_of_range(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_mech(cfg, NEGIO_MECH_NONE), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_mech(cfg, (negio_mech)4), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_mech(cfg, (negio_mech)-1), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

static void set_allowed_accepts_every_non_empty_known_mask(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_allowed(cfg, NEGIO_ALLOW_KERBEROS), NEGIO_OK);
        assert_int_equal(negio_config_set_allowed(cfg, NEGIO_ALLOW_NTLM), NEGIO_OK);
        assert_int_equal(negio_config_set_allowed(cfg, NEGIO_ALLOW_ALL), NEGIO_OK);
        negio_config_del(cfg);
    }
}

static void set_allowed_rejects_zero_and_unknown_bits(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    assert_int_equal(negio_config_set_allowed(cfg, 0), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_allowed(cfg, 0x4), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_allowed(cfg, NEGIO_ALLOW_ALL | 0x4), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_allowed(cfg, NEGIO_ALLOW_KERBEROS | 0x80000000u),
                     NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_allowed(cfg, ~0u), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

/* ---- strings --------------------------------------------------------------------------- */

static void set_service_accepts_service_at_host(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
        assert_int_equal(negio_config_set_service(cfg, "HTTP@www.example.com"), NEGIO_OK);
        /* replacing a value frees the old one (checked under ASan) */
        assert_int_equal(negio_config_set_service(cfg, "other@localhost"), NEGIO_OK);
        negio_config_del(cfg);
    }
}

static void set_service_null_on_server_accepts_any_key(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cfg, NULL), NEGIO_OK);
    negio_config_del(cfg);
}

static void set_service_rejects_empty_and_names_without_at(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_service(cfg, ""), NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_set_service(cfg, "negio"), NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_set_service(cfg, "negio/localhost"), NEGIO_ERR_INVALID);
        negio_config_del(cfg);
    }
}

static void path_setters_accept_paths_and_null_on_both_roles(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_keytab(cfg, "/tmp/negio.keytab"), NEGIO_OK);
        assert_int_equal(negio_config_set_keytab(cfg, "/tmp/other.keytab"), NEGIO_OK);
        assert_int_equal(negio_config_set_keytab(cfg, NULL), NEGIO_OK);
        assert_int_equal(negio_config_set_ntlm_file(cfg, "/tmp/ntlm.users"), NEGIO_OK);
        assert_int_equal(negio_config_set_ntlm_file(cfg, NULL), NEGIO_OK);
        assert_int_equal(negio_config_set_ntlm_file(cfg, "/tmp/ntlm.users"), NEGIO_OK);
        negio_config_del(cfg);
    }
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_ccache(cfg, "FILE:/tmp/cc"), NEGIO_OK);
    assert_int_equal(negio_config_set_ccache(cfg, "MEMORY:x"), NEGIO_OK);
    assert_int_equal(negio_config_set_ccache(cfg, NULL), NEGIO_OK);
    assert_int_equal(negio_config_set_ccache(cfg, "FILE:/tmp/cc"), NEGIO_OK);
    negio_config_del(cfg);
}

static void path_setters_reject_empty_strings(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_keytab(cfg, ""), NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_set_ntlm_file(cfg, ""), NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_set_ccache(cfg, ""), NEGIO_ERR_INVALID);
        negio_config_del(cfg);
    }
}

static void set_password_accepts_user_and_password_on_a_client(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_password(cfg, "alice", "s3cret"), NEGIO_OK);
    assert_int_equal(negio_config_set_password(cfg, "DOMAIN\\alice", "other"), NEGIO_OK);
    assert_int_equal(negio_config_set_password(cfg, NULL, NULL), NEGIO_OK); /* back to default */
    assert_int_equal(negio_config_set_password(cfg, "alice@EXAMPLE.COM", "pw"), NEGIO_OK);
    negio_config_del(cfg);
}

static void set_password_rejects_half_pairs_and_empty_user(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_password(cfg, "alice", NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(cfg, NULL, "pw"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(cfg, "", "pw"), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

/* ---- role-specific setters -------------------------------------------------------------- */

static void client_only_setters_accept_on_a_client(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    assert_int_equal(negio_config_set_require_server_auth(cfg, 1), NEGIO_OK);
    assert_int_equal(negio_config_set_require_server_auth(cfg, 0), NEGIO_OK);
    assert_int_equal(negio_config_set_require_server_auth(cfg, 42), NEGIO_OK);
    assert_int_equal(negio_config_set_mutual(cfg, 0), NEGIO_OK);
    assert_int_equal(negio_config_set_mutual(cfg, 1), NEGIO_OK);
    assert_int_equal(negio_config_set_delegate(cfg, 1), NEGIO_OK);
    assert_int_equal(negio_config_set_delegate(cfg, 0), NEGIO_OK);
    negio_config_del(cfg);
}

static void client_only_setters_reject_a_server(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    assert_int_equal(negio_config_set_require_server_auth(cfg, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_require_server_auth(cfg, 0), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_mutual(cfg, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_mutual(cfg, 0), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_delegate(cfg, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_delegate(cfg, 0), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(cfg, "alice", "pw"), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_password(cfg, NULL, NULL), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

/* ---- levels ---------------------------------------------------------------------------- */

static void level_setters_accept_none_sign_seal(void **state)
{
    (void)state;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        for (int l = NEGIO_LEVEL_NONE; l <= NEGIO_LEVEL_SEAL; l++) {
            assert_int_equal(negio_config_set_default_level(cfg, (negio_level)l), NEGIO_OK);
            assert_int_equal(negio_config_set_min_level(cfg, (negio_level)l), NEGIO_OK);
        }
        negio_config_del(cfg);
    }
}

static void level_setters_reject_default_and_out_of_range(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    static const int bad[] = {NEGIO_LEVEL_DEFAULT, -2, 3, 255, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(negio_config_set_default_level(cfg, (negio_level)bad[i]),
                         NEGIO_ERR_INVALID);
        assert_int_equal(negio_config_set_min_level(cfg, (negio_level)bad[i]), NEGIO_ERR_INVALID);
    }
    negio_config_del(cfg);
}

/* ---- limits ---------------------------------------------------------------------------- */

static void set_limits_accepts_zeroes_as_defaults(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    negio_limits l = {0};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_OK);
    negio_config_del(cfg);
}

static void set_limits_accepts_the_minimums_and_maximums(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_CLIENT);
    negio_limits lo = {
        .max_token = 1024, .max_rounds = 1, .max_frame = 4096, .max_message = 1, .max_queued = 1};
    assert_int_equal(negio_config_set_limits(cfg, &lo), NEGIO_OK);
    negio_limits hi = {.max_token = 1u << 20,
                       .max_rounds = 100,
                       .max_frame = 0x7fffffffu,
                       .max_message = 0x7fffffffu,
                       .max_queued = 0xffffffffu};
    assert_int_equal(negio_config_set_limits(cfg, &hi), NEGIO_OK);
    negio_config_del(cfg);
}

static void set_limits_rejects_null_and_values_below_minimums(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    assert_int_equal(negio_config_set_limits(cfg, NULL), NEGIO_ERR_INVALID);
    negio_limits l = {.max_frame = 4095};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_frame = 1};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_token = 1023};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_token = 1};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

static void set_limits_rejects_frame_and_message_limits_over_2_gib(void **state)
{
    (void)state;
    negio_config *cfg = new_cfg(NEGIO_ROLE_SERVER);
    negio_limits l = {.max_frame = 0x80000000u};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_frame = 0xffffffffu};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_message = 0x80000000u};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    l = (negio_limits){.max_message = 0xffffffffu};
    assert_int_equal(negio_config_set_limits(cfg, &l), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

/* ---- deferred steps and log ------------------------------------------------------------ */

static void log_cb(void *user, int level, const char *message)
{
    (void)user;
    (void)level;
    (void)message;
}

static void deferred_steps_and_log_accept_any_value_on_both_roles(void **state)
{
    (void)state;
    int user = 0;
    for (int role = NEGIO_ROLE_CLIENT; role <= NEGIO_ROLE_SERVER; role++) {
        negio_config *cfg = new_cfg((negio_role)role);
        assert_int_equal(negio_config_set_deferred_steps(cfg, 1), NEGIO_OK);
        assert_int_equal(negio_config_set_deferred_steps(cfg, 0), NEGIO_OK);
        assert_int_equal(negio_config_set_deferred_steps(cfg, -7), NEGIO_OK);
        assert_int_equal(negio_config_set_log(cfg, log_cb, &user), NEGIO_OK);
        assert_int_equal(negio_config_set_log(cfg, NULL, NULL), NEGIO_OK);
        negio_config_del(cfg);
    }
}

/* ---- names and parsing ----------------------------------------------------------------- */

static void mech_names_and_parse_round_trip(void **state)
{
    (void)state;
    static const struct {
        negio_mech mech;
        const char *name;
    } t[] = {{NEGIO_MECH_NEGOTIATE, "negotiate"},
             {NEGIO_MECH_KERBEROS, "kerberos"},
             {NEGIO_MECH_NTLM, "ntlm"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(negio_mech_name(t[i].mech), t[i].name);
        negio_mech m = NEGIO_MECH_NONE;
        assert_int_equal(negio_mech_parse(t[i].name, &m), NEGIO_OK);
        assert_int_equal(m, t[i].mech);
        assert_int_equal(negio_mech_parse(negio_mech_name(m), &m), NEGIO_OK);
        assert_int_equal(m, t[i].mech);
    }
    assert_string_equal(negio_mech_name(NEGIO_MECH_NONE), "none");
}

static void mech_parse_rejects_unknown_names(void **state)
{
    (void)state;
    negio_mech m = NEGIO_MECH_KERBEROS;
    static const char *bad[] = {"",     "none",  "NEGOTIATE", "Kerberos", "spnego",
                                "krb5", "ntlm ", " ntlm",     "negotiat", "kerberos5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(negio_mech_parse(bad[i], &m), NEGIO_ERR_INVALID);
    assert_int_equal(m, NEGIO_MECH_KERBEROS); /* untouched */
    assert_int_equal(negio_mech_parse(NULL, &m), NEGIO_ERR_INVALID);
    assert_int_equal(negio_mech_parse("ntlm", NULL), NEGIO_ERR_INVALID);
}

static void level_names_and_parse_round_trip(void **state)
{
    (void)state;
    static const struct {
        negio_level level;
        const char *name;
    } t[] = {{NEGIO_LEVEL_NONE, "none"}, {NEGIO_LEVEL_SIGN, "sign"}, {NEGIO_LEVEL_SEAL, "seal"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(negio_level_name(t[i].level), t[i].name);
        negio_level l = NEGIO_LEVEL_DEFAULT;
        assert_int_equal(negio_level_parse(t[i].name, &l), NEGIO_OK);
        assert_int_equal(l, t[i].level);
        assert_int_equal(negio_level_parse(negio_level_name(l), &l), NEGIO_OK);
        assert_int_equal(l, t[i].level);
    }
}

static void level_parse_rejects_unknown_names(void **state)
{
    (void)state;
    negio_level l = NEGIO_LEVEL_SIGN;
    static const char *bad[] = {"",          "default", "SEAL", "Sign", "encrypt",
                                "integrity", "seal\n",  "0",    "1",    "2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(negio_level_parse(bad[i], &l), NEGIO_ERR_INVALID);
    assert_int_equal(l, NEGIO_LEVEL_SIGN); /* untouched */
    assert_int_equal(negio_level_parse(NULL, &l), NEGIO_ERR_INVALID);
    assert_int_equal(negio_level_parse("seal", NULL), NEGIO_ERR_INVALID);
}

/* ---- error texts ----------------------------------------------------------------------- */

static void strerror_is_distinct_and_known_for_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *t = negio_strerror(all_codes[i]);
        assert_non_null(t);
        assert_true(t[0] != '\0');
        assert_string_not_equal(t, "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(t, negio_strerror(all_codes[j]));
    }
}

static void err_name_is_the_symbolic_name_of_every_code(void **state)
{
    (void)state;
    static const char *names[] = {
        "NEGIO_OK",
        "NEGIO_ERR_INVALID",
        "NEGIO_ERR_STATE",
        "NEGIO_ERR_LEVEL",
        "NEGIO_ERR_MSG_SIZE",
        "NEGIO_ERR_FATAL",
        "NEGIO_ERR_NOMEM",
        "NEGIO_ERR_PROTOCOL",
        "NEGIO_ERR_TOO_LARGE",
        "NEGIO_ERR_TRUNCATED",
        "NEGIO_ERR_HANDSHAKE",
        "NEGIO_ERR_PEER",
        "NEGIO_ERR_POLICY",
        "NEGIO_ERR_DOWNGRADE",
        "NEGIO_ERR_INTEGRITY",
        "NEGIO_ERR_CREDENTIALS",
        "NEGIO_ERR_CLOSED",
        "NEGIO_ERR_REJECTED",
        "NEGIO_ERR_BINDING",
    };
    assert_int_equal(sizeof(names) / sizeof(names[0]), N_CODES);
    for (size_t i = 0; i < N_CODES; i++) {
        assert_string_equal(negio_err_name(all_codes[i]), names[i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(negio_err_name(all_codes[i]), negio_err_name(all_codes[j]));
    }
}

static void strerror_says_unknown_error_for_other_codes(void **state)
{
    (void)state;
    static const int others[] = {1, 2, -5, -6, -50, -99, -114, -200, 1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        assert_string_equal(negio_strerror(others[i]), "unknown error");
        const char *n = negio_err_name(others[i]);
        assert_non_null(n);
        for (size_t j = 0; j < N_CODES; j++)
            assert_string_not_equal(n, negio_err_name(all_codes[j]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_new_accepts_both_roles),
        cmocka_unit_test(config_new_rejects_null_out_and_unknown_roles),
        cmocka_unit_test(config_del_null_is_a_noop),
        cmocka_unit_test(every_setter_rejects_a_null_config),
        cmocka_unit_test(set_mech_accepts_the_three_mechanisms_on_both_roles),
        cmocka_unit_test(set_mech_rejects_none_and_out_of_range),
        cmocka_unit_test(set_allowed_accepts_every_non_empty_known_mask),
        cmocka_unit_test(set_allowed_rejects_zero_and_unknown_bits),
        cmocka_unit_test(set_service_accepts_service_at_host),
        cmocka_unit_test(set_service_null_on_server_accepts_any_key),
        cmocka_unit_test(set_service_rejects_empty_and_names_without_at),
        cmocka_unit_test(path_setters_accept_paths_and_null_on_both_roles),
        cmocka_unit_test(path_setters_reject_empty_strings),
        cmocka_unit_test(set_password_accepts_user_and_password_on_a_client),
        cmocka_unit_test(set_password_rejects_half_pairs_and_empty_user),
        cmocka_unit_test(client_only_setters_accept_on_a_client),
        cmocka_unit_test(client_only_setters_reject_a_server),
        cmocka_unit_test(level_setters_accept_none_sign_seal),
        cmocka_unit_test(level_setters_reject_default_and_out_of_range),
        cmocka_unit_test(set_limits_accepts_zeroes_as_defaults),
        cmocka_unit_test(set_limits_accepts_the_minimums_and_maximums),
        cmocka_unit_test(set_limits_rejects_null_and_values_below_minimums),
        cmocka_unit_test(set_limits_rejects_frame_and_message_limits_over_2_gib),
        cmocka_unit_test(deferred_steps_and_log_accept_any_value_on_both_roles),
        cmocka_unit_test(mech_names_and_parse_round_trip),
        cmocka_unit_test(mech_parse_rejects_unknown_names),
        cmocka_unit_test(level_names_and_parse_round_trip),
        cmocka_unit_test(level_parse_rejects_unknown_names),
        cmocka_unit_test(strerror_is_distinct_and_known_for_every_code),
        cmocka_unit_test(err_name_is_the_symbolic_name_of_every_code),
        cmocka_unit_test(strerror_says_unknown_error_for_other_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
