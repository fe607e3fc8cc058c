/* The values of the tunnel's text log lines (log_text_value, tools/negio/tunnel_log.c): a peer
 * chooses some of them (its name, the text of its CLOSE), so whatever bytes they hold, a value
 * stays on its line, starts no terminal escape and cannot pass for another key=value
 * (SECURITY.md section 8b). Plain ASCII is written bare; anything else is quoted by json_quote,
 * which writes well-formed UTF-8 as it is but escapes the C0 and C1 controls, DEL, U+2028,
 * U+2029 and every byte that is not UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel.h"

/* What log_text_value writes for KEY and V. Freed by the caller. */
static char *value_text(const char *key, const char *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    log_text_value(f, key, v);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void check(const char *v, const char *expect)
{
    char *got = value_text("who", v);
    if (strcmp(got, expect) != 0)
        fail_msg("value written as [%s], expected [%s]", got, expect);
    free(got);
}

/* Whether every byte of S is printable ASCII: nothing a terminal or a line reader acts on. */
static int printable_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

/* Byte B at the start, in the middle and at the end of a value: quoted, and written with
 * printable ASCII alone. */
static void check_quoted_and_ascii_at_each_place(unsigned b)
{
    char v[3][8];
    snprintf(v[0], sizeof(v[0]), "%cab", b);
    snprintf(v[1], sizeof(v[1]), "a%cb", b);
    snprintf(v[2], sizeof(v[2]), "ab%c", b);
    for (int i = 0; i < 3; i++) {
        char *got = value_text("who", v[i]);
        if (!printable_ascii(got) || strncmp(got, " who=\"", 6) != 0)
            fail_msg("byte 0x%02x at place %d written as [%s]", b, i, got);
        free(got);
    }
}

static void a_plain_value_is_written_bare_and_an_empty_or_missing_one_not_at_all(void **s)
{
    (void)s;
    check("alice@EXAMPLE.COM", " who=alice@EXAMPLE.COM");
    check("127.0.0.1:5000", " who=127.0.0.1:5000");
    check("x", " who=x");
    check("", "");
    check(NULL, "");
}

static void a_space_quote_equals_sign_or_backslash_anywhere_quotes_the_value(void **s)
{
    (void)s;
    check("a b", " who=\"a b\"");
    check(" ab", " who=\" ab\"");
    check("ab ", " who=\"ab \"");
    check("a\"b", " who=\"a\\\"b\"");
    check("\"", " who=\"\\\"\"");
    check("a=b", " who=\"a=b\"");
    check("ab=", " who=\"ab=\"");
    check("CORP\\alice", " who=\"CORP\\\\alice\"");
    check("alice\\", " who=\"alice\\\\\"");
    /* a name that would otherwise read as more keys of the line stays one value */
    check("x close=clean who=admin", " who=\"x close=clean who=admin\"");
}

/* The bug fixed on 2026-12-07: only the first byte was checked. */
static void a_control_character_at_the_start_middle_or_end_is_escaped(void **s)
{
    (void)s;
    check("\x1b[31mred", " who=\"\\u001b[31mred\"");
    check("re\x1b[0md", " who=\"re\\u001b[0md\"");
    check("red\x1b", " who=\"red\\u001b\"");
    check("a\nt: connection who=admin", " who=\"a\\nt: connection who=admin\"");
    check("ab\r", " who=\"ab\\r\"");
    check("\ta", " who=\"\\ta\"");
    check("a\x7f", " who=\"a\\u007f\"");
    check("\x7f", " who=\"\\u007f\"");
    /* every control byte and DEL, at each place */
    for (unsigned b = 1; b < 0x80; b++) {
        if (b >= 0x20 && b < 0x7f)
            continue;
        check_quoted_and_ascii_at_each_place(b);
    }
}

/* UTF-8 is kept, quoted, so that a reader sees the name; nothing from 0x80 up is ever written
 * bare, where a lone 0x9b is CSI to a terminal reading 8-bit controls. */
static void bytes_from_0x80_up_are_quoted_and_only_well_formed_text_passes_raw(void **s)
{
    (void)s;
    check("jos\xc3\xa9@EXAMPLE.COM", " who=\"jos\xc3\xa9@EXAMPLE.COM\"");
    check("\xe2\x9c\x93", " who=\"\xe2\x9c\x93\"");
    check("\xf0\x9f\x94\x91", " who=\"\xf0\x9f\x94\x91\"");
    /* not UTF-8: each byte as \u00XX */
    check("\x9b"
          "31m",
          " who=\"\\u009b31m\"");
    check("a\xff", " who=\"a\\u00ff\"");
    check("\xc3", " who=\"\\u00c3\"");
    check("\xed\xa0\x80", " who=\"\\u00ed\\u00a0\\u0080\"");
    /* well-formed but acted on: the C1 controls (CSI, NEL) and Unicode's line separators */
    check("a\xc2\x9b"
          "31mb",
          " who=\"a\\u009b31mb\"");
    check("a\xc2\x85t: b", " who=\"a\\u0085t: b\"");
    check("a\xe2\x80\xa8"
          "b\xe2\x80\xa9",
          " who=\"a\\u2028b\\u2029\"");
    /* any single byte from 0x80 up, at each place, and every C1 control */
    for (unsigned b = 0x80; b <= 0xff; b++) {
        check_quoted_and_ascii_at_each_place(b);
        if (b <= 0x9f) {
            char c1[4] = {(char)0xc2, (char)b, 'x', '\0'}, expect[32];
            snprintf(expect, sizeof(expect), " who=\"\\u%04xx\"", b);
            check(c1, expect);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_plain_value_is_written_bare_and_an_empty_or_missing_one_not_at_all),
        cmocka_unit_test(a_space_quote_equals_sign_or_backslash_anywhere_quotes_the_value),
        cmocka_unit_test(a_control_character_at_the_start_middle_or_end_is_escaped),
        cmocka_unit_test(bytes_from_0x80_up_are_quoted_and_only_well_formed_text_passes_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
