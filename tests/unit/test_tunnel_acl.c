/* The tunnel server's access list (tools/negio/tunnel_acl.c, docs/TUNNEL.md "Access list"):
 * lists built by acl_load, the function the command line and the config file both use, from
 * --allow entries and from an --allow-file, and held against a table of peers as GSS names them
 * (negio_auth_info.peer) with the mechanism that won. The `@REALM` cases are about realm_of: the
 * realm of a Kerberos display name begins at its last '@' that no backslash escapes (MIT writes
 * an '@' inside a component or a realm's name as "\@"), and must equal REALM exactly
 * (SECURITY.md section 8b). No GSS, no realm: compiled with tunnel_acl.c alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tunnel.h"

#define K NEGIO_MECH_KERBEROS
#define N NEGIO_MECH_NTLM

/* One peer against one list: whether it passes. */
struct acl_case {
    const char *entry; /* the only --allow entry */
    const char *peer;
    negio_mech mech;
    int allowed;
};

static struct acl *load_allow(const char *const *entries, size_t n, const char *allow_file)
{
    struct tunnel_def d = {.name = "test", .mode = TUNNEL_SERVER, .allow_file = (char *)allow_file};
    for (size_t i = 0; i < n; i++)
        d.allow[i] = (char *)entries[i];
    d.nallow = n;
    return acl_load(&d);
}

static void check_cases(const struct acl_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct acl_case *c = &cases[i];
        assert_true(acl_valid_entry(c->entry));
        struct acl *a = load_allow(&c->entry, 1, NULL);
        assert_non_null(a);
        char why[300] = "";
        int got = acl_allows(a, c->peer, c->mech, why, sizeof(why));
        if (got != c->allowed)
            fail_msg("--allow '%s': peer '%s' (%s) %s, expected the opposite", c->entry, c->peer,
                     c->mech == K ? "kerberos" : "ntlm", got ? "passed" : "was refused");
        if (!got)
            assert_string_equal(why, "not in the access list (--allow (1))");
        acl_unref(a);
    }
}

/* "u@X\@REALM" is user u of the realm "X@REALM": not in @REALM, though its text ends so. */
static void a_realm_entry_matches_the_realm_after_the_last_unescaped_at_and_nothing_else(void **s)
{
    (void)s;
    static const struct acl_case cases[] = {
        {"@EXAMPLE.COM", "alice@EXAMPLE.COM", K, 1},
        {"@EXAMPLE.COM", "host/web.example.com@EXAMPLE.COM", K, 1},
        /* the realm is compared whole: neither a suffix nor a prefix of another realm */
        {"@EXAMPLE.COM", "alice@XEXAMPLE.COM", K, 0},
        {"@EXAMPLE.COM", "alice@SUB.EXAMPLE.COM", K, 0},
        {"@SUB.EXAMPLE.COM", "alice@EXAMPLE.COM", K, 0},
        {"@EXAMPLE.COM", "alice@EXAMPLE.COM.EVIL", K, 0},
        {"@EXAMPLE", "alice@EXAMPLE.COM", K, 0},
        /* realms and principals are compared as they are: case counts */
        {"@EXAMPLE.COM", "alice@example.com", K, 0},
        /* an escaped '@' is part of a name: the realm of u@X\@EXAMPLE.COM is "X@EXAMPLE.COM" */
        {"@EXAMPLE.COM", "u@X\\@EXAMPLE.COM", K, 0},
        {"@EXAMPLE.COM", "u\\@EXAMPLE.COM", K, 0}, /* no unescaped '@': no realm at all */
        {"@EXAMPLE.COM", "\\@EXAMPLE.COM", K, 0},
        /* ... but an escaped backslash does not escape the '@' after it */
        {"@EXAMPLE.COM", "u\\\\@EXAMPLE.COM", K, 1},
        {"@EXAMPLE.COM", "u\\\\\\@EXAMPLE.COM", K, 0},
        {"@EXAMPLE.COM", "a\\@b@EXAMPLE.COM", K, 1},
        /* the last unescaped '@' counts, not the first */
        {"@EXAMPLE.COM", "alice@EXAMPLE.COM@OTHER", K, 0},
        {"@OTHER", "alice@EXAMPLE.COM@OTHER", K, 1},
        /* an '@' at the very start: a realm with no name before it is no principal */
        {"@EXAMPLE.COM", "@EXAMPLE.COM", K, 0},
        /* a trailing backslash escapes nothing, and the name is read no further than its end:
         * what lies after it in memory ("@EXAMPLE.COM" here) is not its realm */
        {"@EXAMPLE.COM", "alice\\\0@EXAMPLE.COM", K, 0},
        {"@EXAMPLE.COM", "alice@EXAMPLE.COM\\", K, 0},
        {"@EXAMPLE.COM", "alice\\", K, 0},
        {"@EXAMPLE.COM", "\\", K, 0},
        {"@EXAMPLE.COM", "alice", K, 0},
        /* a Kerberos entry never admits an NTLM client, whatever its name looks like */
        {"@EXAMPLE.COM", "alice@EXAMPLE.COM", N, 0},
        {"@EXAMPLE.COM", "EXAMPLE.COM\\alice", N, 0},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void a_principal_entry_matches_that_principal_exactly_over_kerberos(void **s)
{
    (void)s;
    static const struct acl_case cases[] = {
        {"alice@EXAMPLE.COM", "alice@EXAMPLE.COM", K, 1},
        {"alice@EXAMPLE.COM", "alice@EXAMPLE.COM", N, 0},
        {"alice@EXAMPLE.COM", "Alice@EXAMPLE.COM", K, 0},
        {"alice@EXAMPLE.COM", "alice@example.com", K, 0},
        {"alice@EXAMPLE.COM", "xalice@EXAMPLE.COM", K, 0},
        {"alice@EXAMPLE.COM", "alice@EXAMPLE.COMX", K, 0},
        {"alice@EXAMPLE.COM", "alice@EXAMPLE.CO", K, 0},
        {"alice@EXAMPLE.COM", "alice", K, 0},
        {"alice@EXAMPLE.COM", "bob/alice@EXAMPLE.COM", K, 0},
        {"alice@EXAMPLE.COM", "EXAMPLE.COM\\alice", N, 0},
        {"a@b@EXAMPLE.COM", "a@b@EXAMPLE.COM", K, 1},
        {"a@b@EXAMPLE.COM", "a\\@b@EXAMPLE.COM", K, 0},
        {"host/web@EXAMPLE.COM", "host/web@EXAMPLE.COM", K, 1},
        {"host/web@EXAMPLE.COM", "host/web2@EXAMPLE.COM", K, 0},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Windows compares domain and user names without regard to case; so does the list. */
static void an_ntlm_entry_matches_that_user_or_domain_without_regard_to_case_over_ntlm(void **s)
{
    (void)s;
    static const struct acl_case cases[] = {
        {"CORP\\alice", "CORP\\alice", N, 1},
        {"CORP\\alice", "corp\\ALICE", N, 1},
        {"CORP\\alice", "CORP\\alice", K, 0},
        {"CORP\\alice", "CORP\\alice2", N, 0},
        {"CORP\\alice", "CORP\\alic", N, 0},
        {"CORP\\alice", "XCORP\\alice", N, 0},
        {"CORP\\alice", "CORPX\\alice", N, 0},
        {"CORP\\alice", "alice", N, 0},
        {"CORP\\alice", "alice@CORP", N, 0},
        {"CORP\\*", "CORP\\bob", N, 1},
        {"CORP\\*", "corp\\bob", N, 1},
        {"CORP\\*", "CORP\\*", N, 1},
        {"CORP\\*", "CORP\\bob", K, 0},
        {"CORP\\*", "CORPX\\bob", N, 0},
        {"CORP\\*", "COR\\bob", N, 0},
        {"CORP\\*", "XCORP\\bob", N, 0},
        {"CORP\\*", "\\bob", N, 0},
        {"CORP\\*", "CORP", N, 0},
        {"CORP\\*", "bob@CORP", N, 0},
        {"CORP\\*", "CORP/bob", N, 0},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void a_client_without_a_name_never_passes_even_without_a_list(void **s)
{
    (void)s;
    static const char *const entries[] = {"@EXAMPLE.COM", "CORP\\*"};
    struct acl *restricted = load_allow(entries, 2, NULL);
    struct acl *open = load_allow(NULL, 0, NULL);
    assert_non_null(restricted);
    assert_non_null(open);
    struct acl *lists[] = {restricted, open};
    for (size_t i = 0; i < 2; i++)
        for (negio_mech m = NEGIO_MECH_NONE; m <= NEGIO_MECH_NTLM; m++) {
            char why[300] = "";
            assert_false(acl_allows(lists[i], NULL, m, why, sizeof(why)));
            assert_string_equal(why, "no name for the client");
            why[0] = '\0';
            assert_false(acl_allows(lists[i], "", m, why, sizeof(why)));
            assert_string_equal(why, "no name for the client");
        }
    /* without --allow, every named client passes; with it, only those it names */
    char why[300];
    assert_true(acl_allows(open, "anyone@ELSEWHERE", K, why, sizeof(why)));
    assert_true(acl_allows(open, "OTHER\\anyone", N, why, sizeof(why)));
    assert_true(acl_allows(restricted, "bob@EXAMPLE.COM", K, why, sizeof(why)));
    assert_true(acl_allows(restricted, "corp\\bob", N, why, sizeof(why)));
    assert_false(acl_allows(restricted, "bob@EXAMPLE.COM", NEGIO_MECH_NONE, why, sizeof(why)));
    assert_false(acl_allows(restricted, "corp\\bob", NEGIO_MECH_NEGOTIATE, why, sizeof(why)));
    acl_unref(restricted);
    acl_unref(open);
}

static void only_the_four_kinds_of_entry_are_accepted(void **s)
{
    (void)s;
    static const char *const good[] = {"alice@EXAMPLE.COM", "@EXAMPLE.COM", "CORP\\alice",
                                       "CORP\\*", "a@b@EXAMPLE.COM"};
    /* An entry with a backslash is NTLM's DOMAIN\user: a principal whose display name has an
     * escape ("u@X\@EXAMPLE.COM") cannot be listed, nor can its realm ("@X\@EXAMPLE.COM"). */
    static const char *const bad[] = {"",
                                      "alice",
                                      "@",
                                      "alice@",
                                      "\\alice",
                                      "CORP\\",
                                      "C\\a\\b",
                                      "CORP\\a@b",
                                      "a b@EX.COM",
                                      "a\tb@EX.COM",
                                      "a@EX\x01",
                                      "a@EX\x7f",
                                      " @EX.COM",
                                      "@EX.COM\\",
                                      "\\@EX.COM",
                                      "u@X\\@EXAMPLE.COM",
                                      "@X\\@EXAMPLE.COM"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!acl_valid_entry(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (acl_valid_entry(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    char name[CLI_MAX_NAME + 2];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    name[10] = '@';
    assert_false(acl_valid_entry(name)); /* CLI_MAX_NAME + 1 bytes */
    name[CLI_MAX_NAME] = '\0';
    assert_true(acl_valid_entry(name));
}

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/negio-test-acl-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* An --allow-file's lines are the same entries, with comments, blank lines and the spaces
 * around an entry ignored, and its entries add to --allow's. */
static void an_allow_file_adds_its_entries_to_the_allow_options(void **s)
{
    (void)s;
    char *path = write_file("# who may pass\n"
                            "\n"
                            "  @EXAMPLE.COM   # the whole realm\n"
                            "\tCORP\\alice\t\r\n"
                            "bob@OTHER.COM");
    static const char *const entries[] = {"carol@THIRD.COM"};
    struct acl *a = load_allow(entries, 1, path);
    assert_non_null(a);
    char why[600], expect[600];
    snprintf(expect, sizeof(expect), "--allow (1), %s (3)", path);
    assert_string_equal(a->source, expect);
    assert_true(acl_allows(a, "dave@EXAMPLE.COM", K, why, sizeof(why)));
    assert_true(acl_allows(a, "corp\\Alice", N, why, sizeof(why)));
    assert_true(acl_allows(a, "bob@OTHER.COM", K, why, sizeof(why)));
    assert_true(acl_allows(a, "carol@THIRD.COM", K, why, sizeof(why)));
    assert_false(acl_allows(a, "u@X\\@EXAMPLE.COM", K, why, sizeof(why)));
    snprintf(expect, sizeof(expect), "not in the access list (--allow (1), %s (3))", path);
    assert_string_equal(why, expect);
    assert_false(acl_allows(a, "CORP\\bob", N, why, sizeof(why)));
    assert_false(acl_allows(a, "bob@OTHER.COM", N, why, sizeof(why)));
    acl_unref(a);
    unlink(path);
    free(path);

    /* one bad line refuses the whole file */
    path = write_file("@EXAMPLE.COM\nEXAMPLE.COM\n");
    assert_null(load_allow(NULL, 0, path));
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            a_realm_entry_matches_the_realm_after_the_last_unescaped_at_and_nothing_else),
        cmocka_unit_test(a_principal_entry_matches_that_principal_exactly_over_kerberos),
        cmocka_unit_test(
            an_ntlm_entry_matches_that_user_or_domain_without_regard_to_case_over_ntlm),
        cmocka_unit_test(a_client_without_a_name_never_passes_even_without_a_list),
        cmocka_unit_test(only_the_four_kinds_of_entry_are_accepted),
        cmocka_unit_test(an_allow_file_adds_its_entries_to_the_allow_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
