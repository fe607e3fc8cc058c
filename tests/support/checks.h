/* Test support: checks for cmocka tests (header-only: tests/support itself does not link
 * cmocka, which the soak program and the fuzz targets do not have). */
#ifndef NEGIO_TEST_CHECKS_H
#define NEGIO_TEST_CHECKS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "negio/negio.h"

/* Fails the test unless C's error detail contains TEXT, saying what the detail was. */
static inline void test_assert_detail_has(const negio_conn *c, const char *text)
{
    const char *d = negio_conn_error_detail(c);
    if (strstr(d, text) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", d, text);
}

#endif
