/* Unit tests for the growable byte buffer (src/base/buf.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "negio/negio.h"

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void zero_initialised_buffer_is_empty(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_size(&b), 0);
    assert_null(b.p);
    negio__buf_free(&b); /* freeing a never-used buffer is fine */
    assert_null(b.p);
}

/* Callers pass negio__buf_data() of an empty, never-allocated buffer on (for example an empty
 * GSS token): it must be NULL, computed without NULL + 0, which C leaves undefined (clang's
 * -fsanitize=pointer-overflow reports it; the fuzz build runs with it). */
static void data_of_a_never_allocated_buffer_is_null(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_null(negio__buf_data(&b));
    assert_int_equal(negio__buf_append(&b, "ab", 2), 0);
    negio__buf_consume(&b, 1);
    assert_memory_equal(negio__buf_data(&b), "b", 1);
    negio__buf_free(&b);
    assert_null(negio__buf_data(&b));
}

static void append_zero_bytes_allocates_nothing(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, NULL, 0), 0);
    assert_int_equal(negio__buf_size(&b), 0);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);
}

static void append_then_read_back(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "hello", 5), 0);
    assert_int_equal(negio__buf_append(&b, ", world", 7), 0);
    assert_int_equal(negio__buf_size(&b), 12);
    assert_memory_equal(negio__buf_data(&b), "hello, world", 12);
    negio__buf_free(&b);
}

static void consume_advances_the_read_cursor(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "abcdefgh", 8), 0);
    negio__buf_consume(&b, 3);
    assert_int_equal(negio__buf_size(&b), 5);
    assert_memory_equal(negio__buf_data(&b), "defgh", 5);
    negio__buf_consume(&b, 0);
    assert_int_equal(negio__buf_size(&b), 5);
    negio__buf_consume(&b, 4);
    assert_int_equal(negio__buf_size(&b), 1);
    assert_memory_equal(negio__buf_data(&b), "h", 1);
    negio__buf_free(&b);
}

static void consuming_everything_rewinds_and_wipes(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "secret!!", 8), 0);
    uint8_t *p = b.p;
    size_t cap = b.cap;
    negio__buf_consume(&b, 2);
    negio__buf_consume(&b, 6);
    assert_int_equal(negio__buf_size(&b), 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, p); /* allocation kept */
    assert_int_equal(b.cap, cap);
    assert_true(all_zero(b.p, 8));
    /* the next append starts at the beginning of the allocation */
    assert_int_equal(negio__buf_append(&b, "xy", 2), 0);
    assert_ptr_equal(negio__buf_data(&b), p);
    assert_memory_equal(negio__buf_data(&b), "xy", 2);
    negio__buf_free(&b);
}

static void reserve_guarantees_room_without_changing_content(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_reserve(&b, 0), 0);
    assert_int_equal(negio__buf_reserve(&b, 10), 0);
    assert_non_null(b.p);
    assert_true(b.cap - b.len >= 10);
    assert_int_equal(negio__buf_size(&b), 0);
    assert_int_equal(negio__buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(negio__buf_reserve(&b, 5000), 0);
    assert_true(b.cap - b.len >= 5000);
    assert_int_equal(negio__buf_size(&b), 10);
    assert_memory_equal(negio__buf_data(&b), "0123456789", 10);
    negio__buf_free(&b);
}

static void reserve_with_enough_room_keeps_the_allocation(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_reserve(&b, 100), 0);
    uint8_t *p = b.p;
    size_t cap = b.cap;
    assert_int_equal(negio__buf_append(&b, "abc", 3), 0);
    assert_int_equal(negio__buf_reserve(&b, 50), 0);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    negio__buf_free(&b);
}

static void reserve_compacts_unread_bytes_to_the_front(void **state)
{
    (void)state;
    negio__buf b = {0};
    uint8_t data[200];
    fill_pattern(data, sizeof(data), 7);
    assert_int_equal(negio__buf_append(&b, data, sizeof(data)), 0);
    uint8_t *p = b.p;
    size_t cap = b.cap;
    assert_true(cap >= 200);
    negio__buf_consume(&b, 150);
    size_t need = cap - 200 + 1;   /* one more than the tail room: compaction is needed */
    assert_true(need <= cap - 50); /* and sufficient */
    assert_int_equal(negio__buf_reserve(&b, need), 0);
    assert_ptr_equal(b.p, p); /* compaction, not growth */
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.off, 0);
    assert_int_equal(negio__buf_size(&b), 50);
    assert_memory_equal(negio__buf_data(&b), data + 150, 50);
    assert_true(b.cap - b.len >= need);
    negio__buf_free(&b);
}

static void compaction_wipes_the_stale_tail(void **state)
{
    (void)state;
    negio__buf b = {0};
    uint8_t data[200];
    memset(data, 0xA5, sizeof(data));
    assert_int_equal(negio__buf_append(&b, data, sizeof(data)), 0);
    size_t cap = b.cap;
    negio__buf_consume(&b, 150);
    assert_int_equal(negio__buf_reserve(&b, cap - 200 + 1), 0);
    assert_int_equal(b.cap, cap);
    /* bytes 50..200 held already-consumed data and must not linger */
    assert_true(all_zero(b.p + 50, 150));
    negio__buf_free(&b);
}

static void reserve_does_not_compact_when_the_tail_has_room(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "0123456789", 10), 0);
    negio__buf_consume(&b, 4);
    assert_int_equal(negio__buf_reserve(&b, 16), 0);
    assert_int_equal(b.off, 4);
    assert_memory_equal(negio__buf_data(&b), "456789", 6);
    negio__buf_free(&b);
}

static void growth_preserves_unread_bytes_after_consume(void **state)
{
    (void)state;
    negio__buf b = {0};
    uint8_t a[300], c[5000];
    fill_pattern(a, sizeof(a), 1);
    fill_pattern(c, sizeof(c), 2);
    assert_int_equal(negio__buf_append(&b, a, sizeof(a)), 0);
    negio__buf_consume(&b, 100);
    assert_int_equal(negio__buf_append(&b, c, sizeof(c)), 0);
    assert_int_equal(negio__buf_size(&b), 200 + sizeof(c));
    assert_memory_equal(negio__buf_data(&b), a + 100, 200);
    assert_memory_equal(negio__buf_data(&b) + 200, c, sizeof(c));
    negio__buf_free(&b);
}

static void big_appends_keep_every_byte(void **state)
{
    (void)state;
    const size_t big = 16u << 20; /* 16 MiB */
    uint8_t *src = malloc(big);
    assert_non_null(src);
    fill_pattern(src, big, 3);
    negio__buf b = {0};
    /* one big append, then many medium ones */
    assert_int_equal(negio__buf_append(&b, src, big / 2), 0);
    size_t off = big / 2;
    while (off < big) {
        size_t n = big - off < 65537 ? big - off : 65537;
        assert_int_equal(negio__buf_append(&b, src + off, n), 0);
        off += n;
    }
    assert_int_equal(negio__buf_size(&b), big);
    assert_true(b.cap >= big);
    assert_memory_equal(negio__buf_data(&b), src, big);
    negio__buf_consume(&b, big - 10);
    assert_memory_equal(negio__buf_data(&b), src + big - 10, 10);
    negio__buf_free(&b);
    free(src);
}

static void interleaved_append_and_consume_is_a_fifo(void **state)
{
    (void)state;
    negio__buf b = {0};
    uint8_t src[4096];
    fill_pattern(src, sizeof(src), 9);
    size_t written = 0, read = 0, max_size = 0;
    unsigned r = 12345;
    for (int i = 0; i < 2000; i++) {
        r = r * 1103515245u + 12345u;
        size_t n = (r >> 16) % 97;
        uint8_t chunk[97];
        for (size_t k = 0; k < n; k++)
            chunk[k] = src[(written + k) % sizeof(src)];
        assert_int_equal(negio__buf_append(&b, chunk, n), 0);
        written += n;
        r = r * 1103515245u + 12345u;
        size_t m = (r >> 16) % 101;
        if (m > negio__buf_size(&b))
            m = negio__buf_size(&b);
        for (size_t k = 0; k < m; k++)
            assert_int_equal(negio__buf_data(&b)[k], src[(read + k) % sizeof(src)]);
        negio__buf_consume(&b, m);
        read += m;
        assert_int_equal(negio__buf_size(&b), written - read);
        if (negio__buf_size(&b) > max_size)
            max_size = negio__buf_size(&b);
    }
    /* compaction keeps the allocation proportional to the most ever buffered, not to the
     * total that went through (about 100 KB here) */
    assert_true(written > 50000);
    assert_true(b.cap <= 2 * (max_size + 256));
    negio__buf_free(&b);
}

static void reserve_of_an_impossible_size_fails_cleanly(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "keep", 4), 0);
    uint8_t *p = b.p;
    size_t cap = b.cap;
    assert_int_equal(negio__buf_reserve(&b, SIZE_MAX), NEGIO_ERR_NOMEM);
    assert_int_equal(negio__buf_reserve(&b, SIZE_MAX / 2 + 1), NEGIO_ERR_NOMEM);
    assert_int_equal(negio__buf_append(&b, "x", SIZE_MAX), NEGIO_ERR_NOMEM);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    assert_int_equal(negio__buf_size(&b), 4);
    assert_memory_equal(negio__buf_data(&b), "keep", 4);
    negio__buf_free(&b);
}

static void append_u32_is_big_endian(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append_u32(&b, 0x01020304u), 0);
    assert_int_equal(negio__buf_append_u32(&b, 0), 0);
    assert_int_equal(negio__buf_append_u32(&b, 0xffffffffu), 0);
    static const uint8_t expect[12] = {1, 2, 3, 4, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(negio__buf_size(&b), 12);
    assert_memory_equal(negio__buf_data(&b), expect, 12);
    assert_int_equal(negio__get_u32(negio__buf_data(&b)), 0x01020304u);
    assert_int_equal(negio__get_u32(negio__buf_data(&b) + 8), 0xffffffffu);
    negio__buf_free(&b);
}

static void put_and_get_u32_round_trip(void **state)
{
    (void)state;
    static const uint32_t values[] = {0,           1,           0xff,        0x100,
                                      0x7fffffffu, 0x80000000u, 0xdeadbeefu, 0xffffffffu};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t p[6] = {0x77, 0, 0, 0, 0, 0x77};
        negio__put_u32(p + 1, values[i]);
        assert_int_equal(negio__get_u32(p + 1), values[i]);
        assert_int_equal(p[0], 0x77); /* exactly four bytes written */
        assert_int_equal(p[5], 0x77);
        assert_int_equal(p[1], (uint8_t)(values[i] >> 24));
        assert_int_equal(p[4], (uint8_t)values[i]);
    }
    static const uint8_t high[4] = {0x80, 0, 0, 1};
    assert_int_equal(negio__get_u32(high), 0x80000001u);
}

static void clear_empties_wipes_and_keeps_the_allocation(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "password", 8), 0);
    negio__buf_consume(&b, 3);
    uint8_t *p = b.p;
    size_t cap = b.cap;
    negio__buf_clear(&b);
    assert_int_equal(negio__buf_size(&b), 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    assert_true(all_zero(b.p, 8));
    /* reusable */
    assert_int_equal(negio__buf_append(&b, "again", 5), 0);
    assert_int_equal(negio__buf_size(&b), 5);
    assert_memory_equal(negio__buf_data(&b), "again", 5);
    negio__buf_free(&b);
}

static void clear_of_an_unused_buffer_is_harmless(void **state)
{
    (void)state;
    negio__buf b = {0};
    negio__buf_clear(&b);
    assert_int_equal(negio__buf_size(&b), 0);
    assert_null(b.p);
}

static void free_releases_everything_and_is_reusable(void **state)
{
    (void)state;
    negio__buf b = {0};
    assert_int_equal(negio__buf_append(&b, "data", 4), 0);
    negio__buf_consume(&b, 1);
    negio__buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(negio__buf_size(&b), 0);
    negio__buf_free(&b); /* twice is harmless */
    assert_null(b.p);
    assert_int_equal(negio__buf_append(&b, "fresh", 5), 0);
    assert_int_equal(negio__buf_size(&b), 5);
    assert_memory_equal(negio__buf_data(&b), "fresh", 5);
    negio__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zero_initialised_buffer_is_empty),
        cmocka_unit_test(data_of_a_never_allocated_buffer_is_null),
        cmocka_unit_test(append_zero_bytes_allocates_nothing),
        cmocka_unit_test(append_then_read_back),
        cmocka_unit_test(consume_advances_the_read_cursor),
        cmocka_unit_test(consuming_everything_rewinds_and_wipes),
        cmocka_unit_test(reserve_guarantees_room_without_changing_content),
        cmocka_unit_test(reserve_with_enough_room_keeps_the_allocation),
        cmocka_unit_test(reserve_compacts_unread_bytes_to_the_front),
        cmocka_unit_test(compaction_wipes_the_stale_tail),
        cmocka_unit_test(reserve_does_not_compact_when_the_tail_has_room),
        cmocka_unit_test(growth_preserves_unread_bytes_after_consume),
        cmocka_unit_test(big_appends_keep_every_byte),
        cmocka_unit_test(interleaved_append_and_consume_is_a_fifo),
        cmocka_unit_test(reserve_of_an_impossible_size_fails_cleanly),
        cmocka_unit_test(append_u32_is_big_endian),
        cmocka_unit_test(put_and_get_u32_round_trip),
        cmocka_unit_test(clear_empties_wipes_and_keeps_the_allocation),
        cmocka_unit_test(clear_of_an_unused_buffer_is_harmless),
        cmocka_unit_test(free_releases_everything_and_is_reusable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
