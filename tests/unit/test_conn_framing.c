/* Connector behaviour that needs no Kerberos realm: header, limit and ordering checks on input,
 * sticky errors, EOF handling, the zero-copy input path, output bookkeeping, queued writes,
 * handshake errors and close before establishment.
 *
 * Most cases use a SERVER connector: its credentials are only acquired when the first valid
 * handshake token arrives, so frames that fail header, limit or ordering checks never reach
 * GSS-API. Clients use deferred steps so that no GSS work happens either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "negio/negio.h"
#include "support/bytes.h"
#include "support/support.h"
#include "wire/frame.h"

#define T_HANDSHAKE 1
#define T_HS_ERROR 2
#define T_POLICY 3
#define T_DATA 4
#define T_CLOSE 5

#define DEFAULT_MAX_TOKEN 65536u
#define DEFAULT_MAX_FRAME 1048576u
#define REASON_MAX 256u

/* ---- helpers --------------------------------------------------------------------------- */

static int printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* After a fatal error: every call that would do work returns the same code, the detail is
 * a non-empty printable text and the connector wants nothing but possibly WRITE. */
static void assert_sticky(negio_conn *c, int code)
{
    negio_event ev;
    assert_true(code <= NEGIO_ERR_FATAL);
    assert_int_equal(negio_conn_error(c), code);
    size_t out_before = 0, out_after = 0;
    (void)negio_conn_send_buf(c, &out_before);
    for (int i = 0; i < 3; i++)
        assert_int_equal(negio_conn_next_event(c, &ev), code);
    assert_int_equal(ev.type, NEGIO_EV_NONE);
    assert_int_equal(negio_conn_feed(c, "\x02\x04\x00\x00", 4), code);
    assert_int_equal(negio_conn_feed(c, NULL, 0), code);
    assert_int_equal(negio_conn_write(c, "x", 1, NEGIO_LEVEL_DEFAULT), code);
    assert_int_equal(negio_conn_write(c, NULL, 0, NEGIO_LEVEL_SEAL), code);
    assert_int_equal(negio_conn_step(c), code);
    assert_int_equal(negio_conn_next_event(c, &ev), code);
    size_t n = 12345;
    assert_null(negio_conn_recv_buf(c, &n));
    assert_int_equal(n, 0);
    const char *detail = negio_conn_error_detail(c);
    assert_non_null(detail);
    assert_true(detail[0] != '\0');
    assert_true(printable(detail));
    assert_false(negio_conn_is_established(c));
    assert_int_equal(negio_conn_want(c) & ~NEGIO_WANT_WRITE, 0);
    negio_auth_info info = {.size = sizeof(info)};
    assert_int_equal(negio_conn_auth_info(c, &info), NEGIO_ERR_STATE);
    assert_int_equal(negio_conn_error(c), code);
    /* the later calls produced nothing more for the wire */
    (void)negio_conn_send_buf(c, &out_after);
    assert_int_equal(out_after, out_before);
}

static uint8_t *take_output(negio_conn *c, size_t *len);
static const char *expect_hs_error_frame(const uint8_t *out, size_t n);

/* What a connector that failed before establishment owes its peer: one unprotected
 * HANDSHAKE_ERROR frame naming the error, except when the peer itself reported the failure
 * (PEER) or is gone (TRUNCATED), where nothing is sent. */
static void assert_told_peer(negio_conn *c, int code)
{
    size_t n = 0;
    uint8_t *out = take_output(c, &n);
    if (code == NEGIO_ERR_PEER || code == NEGIO_ERR_TRUNCATED) {
        assert_int_equal(n, 0);
        return;
    }
    assert_non_null(out);
    assert_string_equal(expect_hs_error_frame(out, n), negio_strerror(code));
    assert_int_equal(test_get_be32(out + 8), 0); /* no token */
    free(out);
}

/* How input reaches the connector. */
typedef enum feed_mode {
    FEED_WHOLE = 0,      /* one negio_conn_feed() */
    FEED_BYTES,          /* one byte per negio_conn_feed(), next_event after each */
    FEED_RECV_BUF,       /* negio_conn_recv_buf()/recv_done() with everything */
    FEED_RECV_BUF_BYTES, /* recv_buf/recv_done one byte at a time, next_event after each */
    FEED_MODES
} feed_mode;

static void put_bytes(negio_conn *c, const uint8_t *p, size_t n, feed_mode mode)
{
    if (mode == FEED_WHOLE || mode == FEED_BYTES) {
        assert_int_equal(negio_conn_feed(c, p, n), NEGIO_OK);
        return;
    }
    while (n > 0) {
        size_t room = 0;
        uint8_t *r = negio_conn_recv_buf(c, &room);
        assert_non_null(r);
        assert_true(room >= 1);
        size_t k = n < room ? n : room;
        memcpy(r, p, k);
        assert_int_equal(negio_conn_recv_done(c, k), NEGIO_OK);
        p += k;
        n -= k;
    }
}

/* Delivers N bytes and calls next_event (after each byte in the byte modes). Returns the first
 * non-zero next_event result (or 0) and stores in *AT how many bytes had been delivered then;
 * no byte is delivered after a non-zero result. */
static int push(negio_conn *c, const uint8_t *p, size_t n, feed_mode mode, size_t *at)
{
    negio_event ev;
    int bytewise = mode == FEED_BYTES || mode == FEED_RECV_BUF_BYTES;
    size_t step = bytewise ? 1 : n;
    size_t done = 0;
    int rc = 0;
    if (n == 0)
        rc = negio_conn_next_event(c, &ev);
    while (done < n) {
        size_t k = n - done < step ? n - done : step;
        put_bytes(c, p + done, k, mode);
        done += k;
        rc = negio_conn_next_event(c, &ev);
        if (rc != 0)
            break;
    }
    if (at != NULL)
        *at = done;
    return rc;
}

/* One malformed-input case: bytes, the expected error and the byte count at which it must
 * appear when bytes come one at a time. */
typedef struct bad_case {
    const char *name;
    uint8_t bytes[64];
    size_t len;
    int expect;
    size_t fail_at;
} bad_case;

static size_t make_cases(bad_case *cs)
{
    size_t n = 0;
    uint8_t body[16] = {0};
#define ADD(nm, expr, code, at)                                                                    \
    do {                                                                                           \
        cs[n].name = nm;                                                                           \
        cs[n].len = (expr);                                                                        \
        cs[n].expect = code;                                                                       \
        cs[n].fail_at = at;                                                                        \
        n++;                                                                                       \
    } while (0)
    ADD("version 0", test_put_raw_frame(cs[n].bytes, 0, T_HANDSHAKE, 0, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("version 1", test_put_raw_frame(cs[n].bytes, 1, T_HANDSHAKE, 0, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("type 0", test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, 0, 0, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("type 6", test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, 6, 0, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("type 255", test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, 255, 0, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("level 3", test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 3, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("level 255",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 255, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("handshake at sign",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 1, 0, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("policy at none",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_POLICY, 0, 0, 16, body, 16),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("handshake flag MORE",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 1, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("data flag 0x02",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 0, 2, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("data flag 0x80",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 2, 0x81, 1, "x", 1),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("handshake max_token+1",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 0,
                           DEFAULT_MAX_TOKEN + 1, NULL, 0),
        NEGIO_ERR_TOO_LARGE, 8);
    ADD("data 0xffffffff",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 2, 0, 0xffffffffu, NULL, 0),
        NEGIO_ERR_TOO_LARGE, 8);
    ADD("data 0x80000000",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 1, 1, 0x80000000u, NULL, 0),
        NEGIO_ERR_TOO_LARGE, 8);
    ADD("empty handshake", test_put_frame(cs[n].bytes, T_HANDSHAKE, 0, 0, NULL, 0),
        NEGIO_ERR_PROTOCOL, 8);
    /* frames the state does not allow fail on their header: no body is ever buffered for them */
    ADD("data before handshake", test_put_frame(cs[n].bytes, T_DATA, 0, 0, "hello", 5),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("1 MiB of data before handshake",
        test_put_raw_frame(cs[n].bytes, NEGIO_PROTOCOL_VERSION, T_DATA, 0, 0, 1u << 20, NULL, 0),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("policy before handshake", test_put_frame(cs[n].bytes, T_POLICY, 1, 0, body, 16),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("close before handshake", test_put_frame(cs[n].bytes, T_CLOSE, 2, 0, body, 4),
        NEGIO_ERR_PROTOCOL, 8);
    ADD("hs error, token beyond body",
        test_put_frame(cs[n].bytes, T_HS_ERROR, 0, 0, "\0\0\0\x05zz", 6), NEGIO_ERR_PROTOCOL, 14);
    ADD("hs error with reason", test_put_frame(cs[n].bytes, T_HS_ERROR, 0, 0, "\0\0\0\0nope", 8),
        NEGIO_ERR_PEER, 16);
#undef ADD
    return n;
}

/* Every case must give the same error at the same byte, whatever the input path. */
static void run_cases(feed_mode mode)
{
    bad_case cs[32];
    size_t n = make_cases(cs);
    for (size_t i = 0; i < n; i++) {
        negio_conn *c = test_bare_server(NULL);
        size_t at = 0;
        int rc = push(c, cs[i].bytes, cs[i].len, mode, &at);
        if (rc != cs[i].expect)
            fail_msg("case '%s' (mode %d): got %s, expected %s (%s)", cs[i].name, (int)mode,
                     negio_err_name(rc), negio_err_name(cs[i].expect), negio_conn_error_detail(c));
        if (mode == FEED_BYTES || mode == FEED_RECV_BUF_BYTES) {
            if (at != cs[i].fail_at)
                fail_msg("case '%s' (mode %d): failed after %zu bytes, expected %zu", cs[i].name,
                         (int)mode, at, cs[i].fail_at);
        } else {
            assert_int_equal(at, cs[i].len);
        }
        assert_sticky(c, cs[i].expect);
        assert_told_peer(c, cs[i].expect);
        negio_conn_del(c);
    }
}

static uint8_t *take_output(negio_conn *c, size_t *len)
{
    size_t n = 0;
    const uint8_t *p = negio_conn_send_buf(c, &n);
    *len = n;
    if (n == 0) {
        assert_null(p);
        return NULL;
    }
    uint8_t *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, p, n);
    assert_int_equal(negio_conn_send_done(c, n), NEGIO_OK);
    return copy;
}

/* ---- one frame, one verdict ------------------------------------------------------------ */

#define V NEGIO_PROTOCOL_VERSION

/* One frame fed whole to a fresh server connector (with LIMITS, when set) and what must come of
 * it. The header is written as given, valid or not, announcing LENGTH; BODY_LEN bytes of BODY
 * follow it (fewer than announced, or none). EOF: the stream ends after them. next_event must
 * return EXPECT and deliver nothing; EXPECT 0: the connector waits for more, without failing. A
 * failure must be sticky, name DETAIL in its detail text (when set), and be told to the peer as
 * before establishment. */
typedef struct frame_case {
    const char *what;
    unsigned version, type, level, flags;
    uint32_t length;
    const char *body;
    size_t body_len;
    int expect;
    const char *detail;
    int eof;
    const negio_limits *limits;
} frame_case;

static void run_frame_cases(const frame_case *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const frame_case *k = &cs[i];
        negio_conn *c = test_bare_server(k->limits);
        uint8_t f[8 + 32];
        assert_true(k->body_len <= 32);
        size_t len = test_put_raw_frame(f, k->version, k->type, k->level, k->flags, k->length,
                                        k->body, k->body_len);
        assert_int_equal(negio_conn_feed(c, f, len), NEGIO_OK);
        if (k->eof)
            assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
        negio_event ev;
        int rc = negio_conn_next_event(c, &ev);
        if (rc != k->expect)
            fail_msg("%s: got %s, expected %s (%s)", k->what, negio_err_name(rc),
                     negio_err_name(k->expect), negio_conn_error_detail(c));
        assert_int_equal(ev.type, NEGIO_EV_NONE); /* nothing delivered */
        if (k->expect == 0) {
            assert_int_equal(negio_conn_error(c), 0);
        } else {
            assert_sticky(c, k->expect);
            if (k->detail != NULL && strstr(negio_conn_error_detail(c), k->detail) == NULL)
                fail_msg("%s: detail \"%s\" lacks \"%s\"", k->what, negio_conn_error_detail(c),
                         k->detail);
            assert_told_peer(c, k->expect);
        }
        negio_conn_del(c);
    }
}

#define RUN_FRAME_CASES(cs) run_frame_cases(cs, sizeof(cs) / sizeof(cs[0]))

/* ---- header checks --------------------------------------------------------------------- */

static void bad_version_is_a_sticky_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"version 0", 0, T_HANDSHAKE, 0, 0, 4, "abcd", 4, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "version"},
        {"version 1", 1, T_HANDSHAKE, 0, 0, 4, "abcd", 4, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "version"},
        {"version 3", 3, T_HANDSHAKE, 0, 0, 4, "abcd", 4, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "version"},
        {"version 255", 255, T_HANDSHAKE, 0, 0, 4, "abcd", 4, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "version"},
    };
    RUN_FRAME_CASES(cases);
}

static void unknown_type_is_a_sticky_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"type 0", V, 0, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL, .detail = "frame type"},
        {"type 6", V, 6, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL, .detail = "frame type"},
        {"type 7", V, 7, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL, .detail = "frame type"},
        {"type 128", V, 128, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "frame type"},
        {"type 255", V, 255, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "frame type"},
    };
    RUN_FRAME_CASES(cases);
}

static void unknown_level_is_a_sticky_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"level 3", V, T_DATA, 3, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "protection level"},
        {"level 4", V, T_DATA, 4, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "protection level"},
        {"level 127", V, T_DATA, 127, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "protection level"},
        {"level 255", V, T_DATA, 255, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "protection level"},
    };
    RUN_FRAME_CASES(cases);
}

static void reserved_flags_are_a_sticky_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"handshake, flag 0x01", V, T_HANDSHAKE, 0, 1, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "flag"},
        {"handshake error, flag 0x40", V, T_HS_ERROR, 0, 0x40, 0, NULL, 0,
         .expect = NEGIO_ERR_PROTOCOL, .detail = "flag"},
        {"policy, flag 0x01", V, T_POLICY, 1, 1, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "flag"},
        {"data, flag 0x02", V, T_DATA, 0, 2, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "flag"},
        {"data, flag 0x80", V, T_DATA, 2, 0x80, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "flag"},
        {"close, flags 0xff", V, T_CLOSE, 2, 0xff, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "flag"},
    };
    RUN_FRAME_CASES(cases);
}

static void a_bad_header_is_judged_on_its_eight_bytes_alone(void **state)
{
    (void)state;
    /* seven bytes of a bad header: nothing can be decided yet */
    negio_conn *c = test_bare_server(NULL);
    uint8_t f[8];
    test_put_raw_frame(f, 9, 9, 9, 9, 0xffffffffu, NULL, 0);
    assert_int_equal(negio_conn_feed(c, f, 7), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_error(c), 0);
    assert_string_equal(negio_conn_error_detail(c), "");
    assert_int_equal(negio_conn_feed(c, f + 7, 1), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    assert_sticky(c, NEGIO_ERR_PROTOCOL);
    negio_conn_del(c);
}

/* ---- limits ---------------------------------------------------------------------------- */

static void handshake_over_max_token_fails_on_the_header_alone(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    uint8_t f[8];
    test_put_raw_frame(f, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 0, DEFAULT_MAX_TOKEN + 1, NULL,
                       0);
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_OK); /* the header only */
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TOO_LARGE);
    assert_sticky(c, NEGIO_ERR_TOO_LARGE);
    assert_non_null(strstr(negio_conn_error_detail(c), "65537"));
    /* the only output is the handshake error: no body was ever expected or buffered */
    assert_int_equal(negio_conn_pending_bytes(c),
                     8 + 4 + strlen(negio_strerror(NEGIO_ERR_TOO_LARGE)));
    assert_told_peer(c, NEGIO_ERR_TOO_LARGE);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    negio_conn_del(c);
}

static void handshake_of_exactly_max_token_waits_for_its_body(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    uint8_t f[8];
    test_put_raw_frame(f, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 0, DEFAULT_MAX_TOKEN, NULL, 0);
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(ev.type, NEGIO_EV_NONE);
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_error(c), 0);
    assert_true(negio_conn_want(c) & NEGIO_WANT_READ);
    assert_false(negio_conn_want(c) & NEGIO_WANT_STEP);
    /* the stream ending now leaves that frame truncated */
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_sticky(c, NEGIO_ERR_TRUNCATED);
    negio_conn_del(c);
}

static void configured_max_token_is_enforced(void **state)
{
    (void)state;
    static const negio_limits l = {.max_token = 2048};
    static const frame_case cases[] = {
        {"handshake of 2048 bytes", V, T_HANDSHAKE, 0, 0, 2048, NULL, 0, .expect = 0, .limits = &l},
        {"handshake of 2049 bytes", V, T_HANDSHAKE, 0, 0, 2049, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE, .limits = &l},
    };
    RUN_FRAME_CASES(cases);
}

static void data_lengths_over_max_frame_fail_on_the_header_alone(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"data of 0xffffffff bytes at none", V, T_DATA, 0, 0, 0xffffffffu, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of 0xffffffff bytes at sign", V, T_DATA, 1, 0, 0xffffffffu, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of 0xffffffff bytes at seal", V, T_DATA, 2, 0, 0xffffffffu, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of 0x80000000 bytes at none", V, T_DATA, 0, 0, 0x80000000u, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of 0x80000000 bytes at sign", V, T_DATA, 1, 0, 0x80000000u, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of 0x80000000 bytes at seal", V, T_DATA, 2, 0, 0x80000000u, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of max_frame + 1 bytes at none", V, T_DATA, 0, 0, DEFAULT_MAX_FRAME + 1, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of max_frame + 1 bytes at sign", V, T_DATA, 1, 0, DEFAULT_MAX_FRAME + 1, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"data of max_frame + 1 bytes at seal", V, T_DATA, 2, 0, DEFAULT_MAX_FRAME + 1, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
    };
    RUN_FRAME_CASES(cases);
}

static void policy_and_close_lengths_over_max_frame_fail_on_the_header_alone(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"policy of 0xffffffff bytes", V, T_POLICY, 2, 0, 0xffffffffu, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
        {"close of 0xffffffff bytes", V, T_CLOSE, 2, 0, 0xffffffffu, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
    };
    RUN_FRAME_CASES(cases);
}

/* Before establishment a peer can make this side hold at most one handshake token: a DATA
 * header is refused as it arrives, whatever length it announces (PROTOCOL.md section 3.5). */
static void data_before_establishment_fails_on_its_header_whatever_its_length(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"empty data", V, T_DATA, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "before establishment"},
        {"data of 1 byte", V, T_DATA, 0, 0, 1, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "before establishment"},
        {"data of 1 MiB", V, T_DATA, 0, 0, 1u << 20, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .detail = "before establishment"},
        {"data of max_frame", V, T_DATA, 0, 0, DEFAULT_MAX_FRAME, NULL, 0,
         .expect = NEGIO_ERR_PROTOCOL, .detail = "before establishment"},
    };
    RUN_FRAME_CASES(cases);
}

static void handshake_error_frame_limit_is_max_token_plus_reason(void **state)
{
    (void)state;
    enum { LIMIT = DEFAULT_MAX_TOKEN + 4 + REASON_MAX };
    static const frame_case cases[] = {
        {"handshake error at the limit", V, T_HS_ERROR, 0, 0, LIMIT, NULL, 0, .expect = 0},
        {"handshake error over it", V, T_HS_ERROR, 0, 0, LIMIT + 1, NULL, 0,
         .expect = NEGIO_ERR_TOO_LARGE},
    };
    RUN_FRAME_CASES(cases);
}

/* ---- ordering -------------------------------------------------------------------------- */

static void empty_handshake_token_is_a_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"empty handshake", V, T_HANDSHAKE, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL},
    };
    RUN_FRAME_CASES(cases);
}

static void data_before_any_handshake_is_a_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"data at none", V, T_DATA, 0, 0, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"data at none, MORE", V, T_DATA, 0, 1, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"data at sign", V, T_DATA, 1, 0, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"data at sign, MORE", V, T_DATA, 1, 1, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"data at seal", V, T_DATA, 2, 0, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"data at seal, MORE", V, T_DATA, 2, 1, 7, "payload", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"empty data", V, T_DATA, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL},
    };
    RUN_FRAME_CASES(cases);
}

static void policy_before_any_handshake_is_a_protocol_error(void **state)
{
    (void)state;
    static const char body[] = "\1\1\2\0\0\x10\0\0\0\0\x10\0\0\0\0\0";
    static const frame_case cases[] = {
        {"policy at sign", V, T_POLICY, 1, 0, 16, body, 16, .expect = NEGIO_ERR_PROTOCOL},
        {"policy at seal", V, T_POLICY, 2, 0, 16, body, 16, .expect = NEGIO_ERR_PROTOCOL},
    };
    RUN_FRAME_CASES(cases);
}

static void close_before_any_handshake_is_a_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"close at sign", V, T_CLOSE, 1, 0, 7, "\0\0\0\0bye", 7, .expect = NEGIO_ERR_PROTOCOL},
        {"close at seal", V, T_CLOSE, 2, 0, 7, "\0\0\0\0bye", 7, .expect = NEGIO_ERR_PROTOCOL},
    };
    RUN_FRAME_CASES(cases);
}

/* ---- EOF ------------------------------------------------------------------------------- */

static void eof_with_nothing_received_is_truncated(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    assert_int_equal(negio_conn_error(c), 0); /* reported by next_event, not by feed_eof */
    assert_true(negio_conn_want(c) & NEGIO_WANT_EVENT);
    assert_false(negio_conn_want(c) & NEGIO_WANT_READ);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_sticky(c, NEGIO_ERR_TRUNCATED);
    assert_int_equal(negio_conn_want(c), 0);
    negio_conn_del(c);
}

static void eof_inside_a_header_is_truncated(void **state)
{
    (void)state;
    for (size_t cut = 1; cut < 8; cut++) {
        negio_conn *c = test_bare_server(NULL);
        uint8_t f[16];
        test_put_frame(f, T_HANDSHAKE, 0, 0, "abcd", 4);
        assert_int_equal(negio_conn_feed(c, f, cut), NEGIO_OK);
        negio_event ev;
        assert_int_equal(negio_conn_next_event(c, &ev), 0);
        assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
        assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
        assert_sticky(c, NEGIO_ERR_TRUNCATED);
        negio_conn_del(c);
    }
}

static void eof_inside_a_body_is_truncated(void **state)
{
    (void)state;
    /* (DATA cannot arrive before establishment: test_tamper cuts an established stream) */
    static const unsigned types[] = {T_HANDSHAKE, T_HS_ERROR};
    for (size_t i = 0; i < 2; i++) {
        negio_conn *c = test_bare_server(NULL);
        uint8_t body[100];
        memset(body, 'b', sizeof(body));
        uint8_t f[108];
        test_put_frame(f, types[i], 0, 0, body, sizeof(body));
        assert_int_equal(negio_conn_feed(c, f, 8 + 50), NEGIO_OK);
        negio_event ev;
        assert_int_equal(negio_conn_next_event(c, &ev), 0);
        assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
        assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
        assert_sticky(c, NEGIO_ERR_TRUNCATED);
        negio_conn_del(c);
    }
}

static void eof_right_after_the_header_of_a_non_empty_frame_is_truncated(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"handshake header of 1 byte, then EOF", V, T_HANDSHAKE, 0, 0, 1, NULL, 0,
         .expect = NEGIO_ERR_TRUNCATED, .eof = 1},
    };
    RUN_FRAME_CASES(cases);
}

static void a_bad_header_before_eof_is_still_a_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"version 7, then EOF", 7, T_DATA, 0, 0, 0, NULL, 0, .expect = NEGIO_ERR_PROTOCOL,
         .eof = 1},
    };
    RUN_FRAME_CASES(cases);
}

static void eof_cases_give_the_same_result_through_recv_buf(void **state)
{
    (void)state;
    static const size_t cuts[] = {0, 3, 8, 58};
    for (size_t i = 0; i < 4; i++) {
        for (int m = 0; m < FEED_MODES; m++) {
            negio_conn *c = test_bare_server(NULL);
            uint8_t body[100] = {0};
            uint8_t f[108];
            test_put_frame(f, T_HANDSHAKE, 0, 0, body, sizeof(body));
            size_t at;
            assert_int_equal(push(c, f, cuts[i], (feed_mode)m, &at), 0);
            assert_int_equal(at, cuts[i]);
            assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
            negio_event ev;
            assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
            assert_sticky(c, NEGIO_ERR_TRUNCATED);
            negio_conn_del(c);
        }
    }
}

/* ---- same results whatever the input path --------------------------------------------- */

static void malformed_input_fails_the_same_when_fed_whole(void **state)
{
    (void)state;
    run_cases(FEED_WHOLE);
}

static void malformed_input_fails_the_same_when_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    run_cases(FEED_BYTES);
}

static void malformed_input_fails_the_same_through_recv_buf(void **state)
{
    (void)state;
    run_cases(FEED_RECV_BUF);
}

static void malformed_input_fails_the_same_through_recv_buf_one_byte_at_a_time(void **state)
{
    (void)state;
    run_cases(FEED_RECV_BUF_BYTES);
}

/* ---- zero-copy input and output bookkeeping -------------------------------------------- */

static void recv_buf_grants_a_writable_region(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    size_t room = 0;
    uint8_t *r = negio_conn_recv_buf(c, &room);
    assert_non_null(r);
    assert_true(room >= 1);
    memset(r, 0, room); /* the whole region is writable (checked under ASan) */
    assert_int_equal(negio_conn_recv_done(c, 0), NEGIO_OK);
    assert_null(negio_conn_recv_buf(NULL, &room));
    assert_null(negio_conn_recv_buf(c, NULL));
    negio_conn_del(c);
}

static void recv_done_larger_than_granted_is_invalid(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    /* nothing granted yet */
    assert_int_equal(negio_conn_recv_done(c, 1), NEGIO_ERR_INVALID);
    size_t room = 0;
    uint8_t *r = negio_conn_recv_buf(c, &room);
    assert_non_null(r);
    assert_int_equal(negio_conn_recv_done(c, room + 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_recv_done(c, (size_t)-1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_error(c), 0); /* not fatal */
    /* the grant still holds: store a partial header through it */
    memcpy(r, "\x02\x01\x00", 3);
    assert_int_equal(negio_conn_recv_done(c, 3), NEGIO_OK);
    /* a grant is used once */
    assert_int_equal(negio_conn_recv_done(c, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_recv_done(NULL, 0), NEGIO_ERR_INVALID);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_error(c), 0);
    negio_conn_del(c);
}

static void recv_buf_after_a_fatal_error_returns_null(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed(c, "\x07\x01\x00\x00\x00\x00\x00\x01", 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    size_t room = 99;
    assert_null(negio_conn_recv_buf(c, &room));
    assert_int_equal(room, 0);
    negio_conn_del(c);
}

static void send_buf_is_empty_on_a_fresh_connector(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    size_t n = 99;
    assert_null(negio_conn_send_buf(c, &n));
    assert_int_equal(n, 0);
    assert_int_equal(negio_conn_send_done(c, 0), NEGIO_OK);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    negio_conn_del(c);
}

static void send_done_larger_than_pending_is_invalid(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_send_done(c, 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_close(c, 0, "bye"), NEGIO_OK);
    size_t n = 0;
    const uint8_t *p = negio_conn_send_buf(c, &n);
    assert_non_null(p);
    assert_true(n > 8);
    assert_int_equal(negio_conn_send_done(c, n + 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_send_done(c, (size_t)-1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_send_done(NULL, 0), NEGIO_ERR_INVALID);
    /* nothing was consumed by the failed calls */
    size_t n2 = 0;
    assert_non_null(negio_conn_send_buf(c, &n2));
    assert_int_equal(n2, n);
    /* partial sends advance */
    assert_int_equal(negio_conn_send_done(c, 3), NEGIO_OK);
    const uint8_t *p2 = negio_conn_send_buf(c, &n2);
    assert_int_equal(n2, n - 3);
    assert_int_equal(p2[0], 0); /* byte 3 of the header: flags */
    assert_int_equal(negio_conn_send_done(c, n2 + 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_send_done(c, n2), NEGIO_OK);
    assert_null(negio_conn_send_buf(c, &n2));
    assert_int_equal(n2, 0);
    assert_int_equal(negio_conn_send_done(c, 1), NEGIO_ERR_INVALID);
    assert_false(negio_conn_want(c) & NEGIO_WANT_WRITE);
    negio_conn_del(c);
}

/* ---- writes ---------------------------------------------------------------------------- */

static void write_before_establishment_queues(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    assert_int_equal(negio_conn_write(c, "hello", 5, NEGIO_LEVEL_DEFAULT), NEGIO_OK);
    size_t p1 = negio_conn_pending_bytes(c);
    assert_true(p1 >= 5);
    assert_int_equal(negio_conn_write(c, "world!", 6, NEGIO_LEVEL_SIGN), NEGIO_OK);
    size_t p2 = negio_conn_pending_bytes(c);
    assert_true(p2 >= p1 + 6);
    assert_int_equal(negio_conn_write(c, NULL, 0, NEGIO_LEVEL_SEAL), NEGIO_OK);
    assert_true(negio_conn_pending_bytes(c) >= p2);
    /* the peer's minimum is not known yet, so even level none is queued */
    assert_int_equal(negio_conn_write(c, "plain", 5, NEGIO_LEVEL_NONE), NEGIO_OK);
    /* nothing reaches the wire before establishment */
    size_t n = 99;
    assert_null(negio_conn_send_buf(c, &n));
    assert_int_equal(n, 0);
    assert_false(negio_conn_want(c) & NEGIO_WANT_WRITE);
    assert_int_equal(negio_conn_error(c), 0);
    negio_conn_del(c); /* queued data is freed (checked under ASan) */
}

static void write_rejects_bad_arguments_without_failing(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_write(NULL, "x", 1, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_write(c, NULL, 1, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_write(c, "x", 1, (negio_level)3), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_write(c, "x", 1, (negio_level)-2), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    assert_int_equal(negio_conn_error(c), 0);
    negio_conn_del(c);
}

static void write_over_max_message_is_refused_and_not_queued(void **state)
{
    (void)state;
    negio_limits l = {.max_message = 100};
    negio_conn *c = test_bare_server(&l);
    uint8_t buf[101] = {0};
    assert_int_equal(negio_conn_write(c, buf, 101, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_MSG_SIZE);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    assert_int_equal(negio_conn_write(c, buf, 100, NEGIO_LEVEL_DEFAULT), NEGIO_OK);
    assert_true(negio_conn_pending_bytes(c) >= 100);
    assert_int_equal(negio_conn_error(c), 0);
    negio_conn_del(c);
}

static void write_over_max_queued_is_refused_and_not_queued(void **state)
{
    (void)state;
    negio_limits l = {.max_queued = 64};
    negio_conn *c = test_bare_server(&l);
    uint8_t buf[64] = {0};
    assert_int_equal(negio_conn_write(c, buf, 64, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_MSG_SIZE);
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    assert_int_equal(negio_conn_write(c, buf, 20, NEGIO_LEVEL_DEFAULT), NEGIO_OK);
    size_t p = negio_conn_pending_bytes(c);
    assert_int_equal(negio_conn_write(c, buf, 60, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_MSG_SIZE);
    assert_int_equal(negio_conn_pending_bytes(c), p);
    assert_int_equal(negio_conn_error(c), 0);
    negio_conn_del(c);
}

static void write_after_a_fatal_error_returns_the_sticky_error(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_write(c, "queued", 6, NEGIO_LEVEL_DEFAULT), NEGIO_OK);
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_int_equal(negio_conn_write(c, "more", 4, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_TRUNCATED);
    assert_int_equal(negio_conn_write(c, "more", 4, NEGIO_LEVEL_SEAL), NEGIO_ERR_TRUNCATED);
    /* the queued message is dropped: it will never be sent */
    assert_int_equal(negio_conn_pending_bytes(c), 0);
    assert_sticky(c, NEGIO_ERR_TRUNCATED);
    negio_conn_del(c);
}

/* ---- queries --------------------------------------------------------------------------- */

static void auth_info_before_establishment_is_a_state_error(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    negio_auth_info info = {.size = sizeof(info)};
    assert_int_equal(negio_conn_auth_info(c, &info), NEGIO_ERR_STATE);
    assert_int_equal(negio_conn_auth_info(c, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_auth_info(NULL, &info), NEGIO_ERR_INVALID);
    assert_false(negio_conn_is_established(c));
    assert_int_equal(negio_conn_error(c), 0);
    assert_string_equal(negio_conn_error_detail(c), "");
    negio_conn_del(c);

    c = test_deferred_client();
    assert_int_equal(negio_conn_auth_info(c, &info), NEGIO_ERR_STATE);
    negio_conn_del(c);
}

static void queries_on_null_are_safe(void **state)
{
    (void)state;
    assert_int_equal(negio_conn_want(NULL), 0);
    assert_int_equal(negio_conn_error(NULL), NEGIO_ERR_INVALID);
    assert_string_equal(negio_conn_error_detail(NULL), "");
    assert_int_equal(negio_conn_is_established(NULL), 0);
    assert_int_equal(negio_conn_pending_bytes(NULL), 0);
    size_t n = 5;
    assert_null(negio_conn_send_buf(NULL, &n));
    negio_event ev;
    assert_int_equal(negio_conn_next_event(NULL, &ev), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_feed(NULL, "x", 1), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_feed_eof(NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_step(NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_close(NULL, 0, NULL), NEGIO_ERR_INVALID);
}

static void bad_arguments_do_not_fail_the_connector(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed(c, NULL, 3), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_feed(c, NULL, 0), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(c, NULL), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_error(c), 0);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    negio_conn_del(c);
}

static void want_reflects_read_event_and_write(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    /* fresh server: waits for the client's first token */
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_READ);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_READ);
    /* part of a header: still only reading */
    uint8_t f[16];
    test_put_frame(f, T_HANDSHAKE, 0, 0, "abcd", 4);
    assert_int_equal(negio_conn_feed(c, f, 3), NEGIO_OK);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_READ);
    assert_int_equal(negio_conn_next_event(c, &ev), 0);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_READ);
    /* a whole header but not the body: still only reading */
    assert_int_equal(negio_conn_feed(c, f + 3, 5), NEGIO_OK);
    assert_false(negio_conn_want(c) & NEGIO_WANT_EVENT);
    /* the whole frame: next_event has something to look at */
    assert_int_equal(negio_conn_feed(c, f + 8, 4), NEGIO_OK);
    assert_true(negio_conn_want(c) & NEGIO_WANT_EVENT);
    assert_true(negio_conn_want(c) & NEGIO_WANT_READ);
    assert_false(negio_conn_want(c) & (NEGIO_WANT_WRITE | NEGIO_WANT_STEP));
    negio_conn_del(c);

    /* output pending: WRITE, cleared once it has been taken */
    c = test_bare_server(NULL);
    assert_int_equal(negio_conn_close(c, 0, NULL), NEGIO_OK);
    assert_true(negio_conn_want(c) & NEGIO_WANT_WRITE);
    size_t n;
    free(take_output(c, &n));
    assert_true(n > 0);
    assert_false(negio_conn_want(c) & NEGIO_WANT_WRITE);
    negio_conn_del(c);

    /* EOF: no more reading, an event (the truncation) to collect, then nothing */
    c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_EVENT);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_int_equal(negio_conn_want(c), 0);
    negio_conn_del(c);

    /* a failed connector only wants its handshake error sent, even with unread input */
    c = test_bare_server(NULL);
    uint8_t bad[24];
    size_t bn = test_put_raw_frame(bad, 3, T_DATA, 0, 0, 4, "abcd", 4);
    memcpy(bad + bn, bad, bn);
    assert_int_equal(negio_conn_feed(c, bad, 2 * bn), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_WRITE);
    free(take_output(c, &n));
    assert_int_equal(negio_conn_want(c), 0);
    negio_conn_del(c);
}

/* ---- clients --------------------------------------------------------------------------- */

static void client_without_service_cannot_be_created(void **state)
{
    (void)state;
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_CLIENT), NEGIO_OK);
    negio_conn *c = (negio_conn *)0x1;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_ERR_INVALID);
    assert_ptr_equal(c, (negio_conn *)0x1);
    assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cfg, NULL), NEGIO_OK);
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_ERR_INVALID);
    assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
    c = NULL;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_OK);
    assert_non_null(c);
    negio_conn_del(c);
    assert_int_equal(negio_conn_new(NULL, cfg), NEGIO_ERR_INVALID);
    assert_int_equal(negio_conn_new(&c, NULL), NEGIO_ERR_INVALID);
    negio_config_del(cfg);
}

static void deferred_client_wants_a_step_and_next_event_does_no_gss_work(void **state)
{
    (void)state;
    negio_conn *c = test_deferred_client();
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_STEP | NEGIO_WANT_READ);
    negio_event ev;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(negio_conn_next_event(c, &ev), 0);
        assert_int_equal(ev.type, NEGIO_EV_NONE);
    }
    /* no GSS work: no error (there are no credentials here), no output */
    assert_int_equal(negio_conn_error(c), 0);
    size_t n = 9;
    assert_null(negio_conn_send_buf(c, &n));
    assert_int_equal(n, 0);
    assert_int_equal(negio_conn_want(c), NEGIO_WANT_STEP | NEGIO_WANT_READ);
    assert_false(negio_conn_is_established(c));
    /* writes queue on a client too */
    assert_int_equal(negio_conn_write(c, "early", 5, NEGIO_LEVEL_DEFAULT), NEGIO_OK);
    assert_true(negio_conn_pending_bytes(c) >= 5);
    assert_null(negio_conn_send_buf(c, &n));
    negio_conn_del(c);
}

static void deferred_client_does_no_gss_work_when_input_arrives(void **state)
{
    (void)state;
    negio_conn *c = test_deferred_client();
    uint8_t f[16];
    size_t n = test_put_frame(f, T_HANDSHAKE, 0, 0, "tok", 3);
    assert_int_equal(negio_conn_feed(c, f, n), NEGIO_OK);
    negio_event ev;
    int rc = negio_conn_next_event(c, &ev);
    /* either the frame waits for the step (0) or it is refused as premature; no GSS failure
     * such as NEGIO_ERR_CREDENTIALS can show up */
    assert_true(rc == 0 || rc == NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio_conn_error(c), rc);
    if (rc == 0) {
        size_t out = 9;
        assert_null(negio_conn_send_buf(c, &out));
        assert_true(negio_conn_want(c) & NEGIO_WANT_STEP);
    }
    negio_conn_del(c);
}

/* ---- handshake errors from the peer ---------------------------------------------------- */

static void handshake_error_reason_is_made_printable_and_bounded(void **state)
{
    (void)state;
    uint8_t body[4 + 300];
    test_put_be32(body, 0); /* no token */
    uint8_t *reason = body + 4;
    static const char head[] = "evil\n\x1b[31mred\r\x07\x7f\xff";
    memcpy(reason, head, sizeof(head) - 1);
    for (size_t i = sizeof(head) - 1; i < 300; i++)
        reason[i] = (i % 50 == 0) ? (uint8_t)'\0' : (uint8_t)'x';
    uint8_t f[8 + sizeof(body)];
    size_t n = test_put_frame(f, T_HS_ERROR, 0, 0, body, sizeof(body));

    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed(c, f, n), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PEER);
    const char *d = negio_conn_error_detail(c);
    assert_true(printable(d));
    assert_non_null(strstr(d, "evil??[31mred????"));
    /* the reason part holds at most 256 characters of the 300 sent */
    const char *r = strstr(d, "evil");
    assert_true(strlen(r) <= REASON_MAX);
    assert_true(strlen(r) >= 200); /* but it is not dropped */
    assert_sticky(c, NEGIO_ERR_PEER);
    negio_conn_del(c);
}

static void handshake_error_with_a_token_reports_the_reason(void **state)
{
    (void)state;
    static const char body[] = "\0\0\0\x05"
                               "\x60\x03\x02\x01\x00"
                               "server says";
    static const frame_case cases[] = {
        {"handshake error with a token", V, T_HS_ERROR, 0, 0, 20, body, 20,
         .expect = NEGIO_ERR_PEER, .detail = "server says"},
    };
    RUN_FRAME_CASES(cases);
}

static void handshake_error_without_reason_is_still_peer(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"handshake error without reason", V, T_HS_ERROR, 0, 0, 4, "\0\0\0\0", 4,
         .expect = NEGIO_ERR_PEER},
    };
    RUN_FRAME_CASES(cases);
}

static void malformed_handshake_error_is_a_protocol_error(void **state)
{
    (void)state;
    static const frame_case cases[] = {
        {"no token length", V, T_HS_ERROR, 0, 0, 0, "", 0, .expect = NEGIO_ERR_PROTOCOL},
        {"short token length", V, T_HS_ERROR, 0, 0, 3, "\0\0\0", 3, .expect = NEGIO_ERR_PROTOCOL},
        {"token of 1 byte, body ends", V, T_HS_ERROR, 0, 0, 4, "\0\0\0\x01", 4,
         .expect = NEGIO_ERR_PROTOCOL},
        {"token one byte beyond the body", V, T_HS_ERROR, 0, 0, 8,
         "\0\0\0\x05"
         "abcd",
         8, .expect = NEGIO_ERR_PROTOCOL},
        {"token length 0xffffffff", V, T_HS_ERROR, 0, 0, 8,
         "\xff\xff\xff\xff"
         "abcd",
         8, .expect = NEGIO_ERR_PROTOCOL},
        {"token length 0x80000000", V, T_HS_ERROR, 0, 0, 8,
         "\x80\0\0\0"
         "abcd",
         8, .expect = NEGIO_ERR_PROTOCOL},
        {"token length that wraps with + 4", V, T_HS_ERROR, 0, 0, 8,
         "\xff\xff\xff\xfc"
         "abcd",
         8, .expect = NEGIO_ERR_PROTOCOL},
    };
    RUN_FRAME_CASES(cases);
}

/* ---- close before establishment -------------------------------------------------------- */

/* Decodes the single HANDSHAKE_ERROR frame in OUT and returns its reason (static buffer). */
static const char *expect_hs_error_frame(const uint8_t *out, size_t n)
{
    static char reason[REASON_MAX + 1];
    assert_true(n >= 12);
    negio__frame_hdr h;
    const char *why = NULL;
    assert_int_equal(negio__frame_decode(out, &h, &why, 0), 0);
    assert_int_equal(h.version, NEGIO_PROTOCOL_VERSION);
    assert_int_equal(h.type, NEGIO__FT_HS_ERROR);
    assert_int_equal(h.level, NEGIO_LEVEL_NONE); /* unprotected */
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.length, n - 8);
    uint32_t tlen = test_get_be32(out + 8);
    assert_true(tlen <= h.length - 4);
    size_t rlen = h.length - 4 - tlen;
    assert_true(rlen <= REASON_MAX);
    memcpy(reason, out + 12 + tlen, rlen);
    reason[rlen] = '\0';
    assert_int_equal(strlen(reason), rlen); /* no NUL inside */
    return reason;
}

static void close_before_establishment_sends_an_unprotected_handshake_error(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_close(c, 0, "going away"), NEGIO_OK);
    size_t n;
    uint8_t *out = take_output(c, &n);
    assert_non_null(out);
    assert_string_equal(expect_hs_error_frame(out, n), "going away");
    assert_int_equal(test_get_be32(out + 8), 0); /* no token */

    /* the frame is understood by a peer */
    negio_conn *peer = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed(peer, out, n), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(peer, &ev), NEGIO_ERR_PEER);
    assert_non_null(strstr(negio_conn_error_detail(peer), "going away"));
    negio_conn_del(peer);
    free(out);

    /* the connector has ended: closed locally, nothing more to send */
    assert_int_equal(negio_conn_error(c), NEGIO_ERR_CLOSED);
    assert_int_equal(negio_conn_close(c, 0, "again"), NEGIO_ERR_STATE);
    assert_int_equal(negio_conn_write(c, "x", 1, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_CLOSED);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_CLOSED);
    assert_int_equal(negio_conn_want(c), 0);
    size_t m = 1;
    assert_null(negio_conn_send_buf(c, &m));
    negio_conn_del(c);
}

static void close_before_establishment_without_reason_still_gives_one(void **state)
{
    (void)state;
    static const char *reasons[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        negio_conn *c = test_bare_server(NULL);
        assert_int_equal(negio_conn_close(c, 7, reasons[i]), NEGIO_OK);
        size_t n;
        uint8_t *out = take_output(c, &n);
        assert_non_null(out);
        const char *r = expect_hs_error_frame(out, n);
        assert_true(strlen(r) > 0);
        free(out);
        negio_conn_del(c);
    }
}

static void close_before_establishment_truncates_a_long_reason(void **state)
{
    (void)state;
    char reason[400];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_close(c, 1, reason), NEGIO_OK);
    size_t n;
    uint8_t *out = take_output(c, &n);
    const char *r = expect_hs_error_frame(out, n);
    assert_int_equal(strlen(r), REASON_MAX);
    free(out);
    negio_conn_del(c);
}

static void deferred_client_close_before_its_first_step_sends_a_handshake_error(void **state)
{
    (void)state;
    negio_conn *c = test_deferred_client();
    assert_int_equal(negio_conn_close(c, 0, "never mind"), NEGIO_OK);
    size_t n;
    uint8_t *out = take_output(c, &n);
    assert_non_null(out);
    assert_string_equal(expect_hs_error_frame(out, n), "never mind");
    free(out);
    assert_int_equal(negio_conn_write(c, "x", 1, NEGIO_LEVEL_DEFAULT), NEGIO_ERR_CLOSED);
    assert_false(negio_conn_want(c) & NEGIO_WANT_STEP);
    assert_int_equal(negio_conn_step(c), NEGIO_ERR_CLOSED);
    negio_conn_del(c);
}

static void close_after_a_fatal_error_returns_the_sticky_error(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_int_equal(negio_conn_close(c, 0, "bye"), NEGIO_ERR_TRUNCATED);
    size_t n = 3;
    assert_null(negio_conn_send_buf(c, &n)); /* nothing sent after the failure */
    negio_conn_del(c);
}

static void failure_before_establishment_tells_the_peer_once(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    uint8_t f[8];
    test_put_raw_frame(f, NEGIO_PROTOCOL_VERSION, T_DATA, 7, 0, 0, NULL, 0);
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    assert_true(negio_conn_want(c) & NEGIO_WANT_WRITE);
    /* output produced before the failure stays available, the failure adds nothing more */
    assert_int_equal(negio_conn_close(c, 0, "bye"), NEGIO_ERR_PROTOCOL);
    assert_told_peer(c, NEGIO_ERR_PROTOCOL);
    assert_sticky(c, NEGIO_ERR_PROTOCOL);
    size_t n = 1;
    assert_null(negio_conn_send_buf(c, &n));
    negio_conn_del(c);
}

static void peer_reported_and_truncated_failures_send_nothing_back(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    uint8_t f[16];
    size_t n = test_put_frame(f, T_HS_ERROR, 0, 0, "\0\0\0\0why", 7);
    assert_int_equal(negio_conn_feed(c, f, n), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PEER);
    assert_told_peer(c, NEGIO_ERR_PEER);
    negio_conn_del(c);

    c = test_bare_server(NULL);
    assert_int_equal(negio_conn_feed(c, f, 5), NEGIO_OK);
    assert_int_equal(negio_conn_feed_eof(c), NEGIO_OK);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TRUNCATED);
    assert_told_peer(c, NEGIO_ERR_TRUNCATED);
    negio_conn_del(c);
}

static void failure_after_close_before_establishment_sends_no_second_handshake_error(void **state)
{
    (void)state;
    negio_conn *c = test_bare_server(NULL);
    assert_int_equal(negio_conn_close(c, 0, "first"), NEGIO_OK);
    uint8_t f[8];
    test_put_raw_frame(f, 2, T_DATA, 0, 0, 0, NULL, 0);
    /* the local close ended the connector: later input is refused, not parsed */
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_ERR_CLOSED);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_CLOSED);
    size_t n;
    uint8_t *out = take_output(c, &n);
    assert_string_equal(expect_hs_error_frame(out, n), "first"); /* exactly one frame */
    free(out);
    negio_conn_del(c);
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void del_of_null_is_a_noop(void **state)
{
    (void)state;
    negio_conn_del(NULL);
    negio_config_del(NULL);
}

static void connector_keeps_its_own_copy_of_the_config(void **state)
{
    (void)state;
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_SERVER), NEGIO_OK);
    negio_limits small = {.max_token = 2048};
    assert_int_equal(negio_config_set_limits(cfg, &small), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cfg, "negio@localhost"), NEGIO_OK);
    negio_conn *c = NULL;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_OK);
    /* changing and freeing the config afterwards does not affect the connector */
    negio_limits big = {.max_token = 1u << 20};
    assert_int_equal(negio_config_set_limits(cfg, &big), NEGIO_OK);
    assert_int_equal(negio_config_set_service(cfg, "other@elsewhere"), NEGIO_OK);
    negio_config_del(cfg);
    uint8_t f[8];
    test_put_raw_frame(f, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 0, 2049, NULL, 0);
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TOO_LARGE);
    negio_conn_del(c);
}

static void rejected_limits_leave_the_previous_limits_in_place(void **state)
{
    (void)state;
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_SERVER), NEGIO_OK);
    negio_limits small = {.max_token = 2048};
    assert_int_equal(negio_config_set_limits(cfg, &small), NEGIO_OK);
    negio_limits bad = {.max_token = 1u << 20, .max_frame = 100};
    assert_int_equal(negio_config_set_limits(cfg, &bad), NEGIO_ERR_INVALID);
    negio_conn *c = NULL;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_OK);
    negio_config_del(cfg);
    uint8_t f[8];
    test_put_raw_frame(f, NEGIO_PROTOCOL_VERSION, T_HANDSHAKE, 0, 0, 2049, NULL, 0);
    assert_int_equal(negio_conn_feed(c, f, 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_TOO_LARGE);
    negio_conn_del(c);
}

static int log_calls;
static char log_last[1024];

static void log_cb(void *user, int level, const char *message)
{
    (void)level;
    assert_ptr_equal(user, &log_calls);
    log_calls++;
    snprintf(log_last, sizeof(log_last), "%s", message);
}

static void log_callback_hears_about_a_fatal_error(void **state)
{
    (void)state;
    negio_config *cfg = NULL;
    assert_int_equal(negio_config_new(&cfg, NEGIO_ROLE_SERVER), NEGIO_OK);
    assert_int_equal(negio_config_set_log(cfg, log_cb, &log_calls), NEGIO_OK);
    negio_conn *c = NULL;
    assert_int_equal(negio_conn_new(&c, cfg), NEGIO_OK);
    negio_config_del(cfg);
    log_calls = 0;
    log_last[0] = '\0';
    assert_int_equal(negio_conn_feed(c, "\x09\x01\x00\x00\x00\x00\x00\x00", 8), NEGIO_OK);
    negio_event ev;
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    assert_int_equal(negio_conn_next_event(c, &ev), NEGIO_ERR_PROTOCOL);
    assert_int_equal(log_calls, 1); /* logged once, when it happened */
    assert_non_null(strstr(log_last, "NEGIO_ERR_PROTOCOL"));
    negio_conn_del(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_version_is_a_sticky_protocol_error),
        cmocka_unit_test(unknown_type_is_a_sticky_protocol_error),
        cmocka_unit_test(unknown_level_is_a_sticky_protocol_error),
        cmocka_unit_test(reserved_flags_are_a_sticky_protocol_error),
        cmocka_unit_test(a_bad_header_is_judged_on_its_eight_bytes_alone),
        cmocka_unit_test(handshake_over_max_token_fails_on_the_header_alone),
        cmocka_unit_test(handshake_of_exactly_max_token_waits_for_its_body),
        cmocka_unit_test(configured_max_token_is_enforced),
        cmocka_unit_test(data_lengths_over_max_frame_fail_on_the_header_alone),
        cmocka_unit_test(policy_and_close_lengths_over_max_frame_fail_on_the_header_alone),
        cmocka_unit_test(data_before_establishment_fails_on_its_header_whatever_its_length),
        cmocka_unit_test(handshake_error_frame_limit_is_max_token_plus_reason),
        cmocka_unit_test(empty_handshake_token_is_a_protocol_error),
        cmocka_unit_test(data_before_any_handshake_is_a_protocol_error),
        cmocka_unit_test(policy_before_any_handshake_is_a_protocol_error),
        cmocka_unit_test(close_before_any_handshake_is_a_protocol_error),
        cmocka_unit_test(eof_with_nothing_received_is_truncated),
        cmocka_unit_test(eof_inside_a_header_is_truncated),
        cmocka_unit_test(eof_inside_a_body_is_truncated),
        cmocka_unit_test(eof_right_after_the_header_of_a_non_empty_frame_is_truncated),
        cmocka_unit_test(a_bad_header_before_eof_is_still_a_protocol_error),
        cmocka_unit_test(eof_cases_give_the_same_result_through_recv_buf),
        cmocka_unit_test(malformed_input_fails_the_same_when_fed_whole),
        cmocka_unit_test(malformed_input_fails_the_same_when_fed_one_byte_at_a_time),
        cmocka_unit_test(malformed_input_fails_the_same_through_recv_buf),
        cmocka_unit_test(malformed_input_fails_the_same_through_recv_buf_one_byte_at_a_time),
        cmocka_unit_test(recv_buf_grants_a_writable_region),
        cmocka_unit_test(recv_done_larger_than_granted_is_invalid),
        cmocka_unit_test(recv_buf_after_a_fatal_error_returns_null),
        cmocka_unit_test(send_buf_is_empty_on_a_fresh_connector),
        cmocka_unit_test(send_done_larger_than_pending_is_invalid),
        cmocka_unit_test(write_before_establishment_queues),
        cmocka_unit_test(write_rejects_bad_arguments_without_failing),
        cmocka_unit_test(write_over_max_message_is_refused_and_not_queued),
        cmocka_unit_test(write_over_max_queued_is_refused_and_not_queued),
        cmocka_unit_test(write_after_a_fatal_error_returns_the_sticky_error),
        cmocka_unit_test(auth_info_before_establishment_is_a_state_error),
        cmocka_unit_test(queries_on_null_are_safe),
        cmocka_unit_test(bad_arguments_do_not_fail_the_connector),
        cmocka_unit_test(want_reflects_read_event_and_write),
        cmocka_unit_test(client_without_service_cannot_be_created),
        cmocka_unit_test(deferred_client_wants_a_step_and_next_event_does_no_gss_work),
        cmocka_unit_test(deferred_client_does_no_gss_work_when_input_arrives),
        cmocka_unit_test(handshake_error_reason_is_made_printable_and_bounded),
        cmocka_unit_test(handshake_error_with_a_token_reports_the_reason),
        cmocka_unit_test(handshake_error_without_reason_is_still_peer),
        cmocka_unit_test(malformed_handshake_error_is_a_protocol_error),
        cmocka_unit_test(close_before_establishment_sends_an_unprotected_handshake_error),
        cmocka_unit_test(close_before_establishment_without_reason_still_gives_one),
        cmocka_unit_test(close_before_establishment_truncates_a_long_reason),
        cmocka_unit_test(deferred_client_close_before_its_first_step_sends_a_handshake_error),
        cmocka_unit_test(close_after_a_fatal_error_returns_the_sticky_error),
        cmocka_unit_test(failure_before_establishment_tells_the_peer_once),
        cmocka_unit_test(peer_reported_and_truncated_failures_send_nothing_back),
        cmocka_unit_test(failure_after_close_before_establishment_sends_no_second_handshake_error),
        cmocka_unit_test(del_of_null_is_a_noop),
        cmocka_unit_test(connector_keeps_its_own_copy_of_the_config),
        cmocka_unit_test(rejected_limits_leave_the_previous_limits_in_place),
        cmocka_unit_test(log_callback_hears_about_a_fatal_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
