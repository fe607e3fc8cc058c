/* Tampering with protected frames (CHECKLIST "Per-message protection", and the header rules of
 * "Framing"): every modified, injected, replayed, reordered, dropped, spliced, reflected or
 * truncated frame after establishment is fatal with a specific error code, is never delivered,
 * and nothing is delivered after it — not even a frame that would have been valid.
 *
 * Every case runs over every mechanism path (kerberos, negotiate->kerberos, negotiate->ntlm,
 * ntlm) and, where it applies, for signed and for sealed frames. A failing check prints the
 * path, level and variant it was checking.
 *
 * Wire format (src/conn/native.c, src/wire/frame.h): 8-byte header [version 2][type][level][flags]
 * [u32 BE body length]; types HANDSHAKE=1 HS_ERROR=2 POLICY=3 DATA=4 CLOSE=5; levels none=0
 * sign=1 seal=2; DATA flag 0x01 = MORE. sign body = [u32 mic len][MIC(PH || payload)][payload];
 * seal body = GSS_Wrap(conf) of (PH || payload), PH being the first 4 header bytes. The frame
 * layout is written out here independently of the library's internal headers on purpose.
 *
 * NEGIO_TEST_FILTER='replay/ntlm' (a cmocka glob) runs only the matching tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <openssl/evp.h>

#include "conn/conn_internal.h" /* a server put back to "complete, no peer POLICY yet" */
#include "support/bytes.h"
#include "support/support.h"

#define HDR_LEN 8
#define PH_LEN 4
#define VERSION NEGIO_PROTOCOL_VERSION
#define FT_HANDSHAKE 1
#define FT_HS_ERROR 2
#define FT_POLICY 3
#define FT_DATA 4
#define FT_CLOSE 5
#define FLAG_MORE 0x01u
#define MAX_FRAME_DEFAULT 1048576u /* negio_limits.max_frame default */

/* What the server does with a tampered frame. WAIT: nothing yet (the header announces more
 * bytes than were sent); the stream must then end in NEGIO_ERR_TRUNCATED. */
#define OUTCOME_WAIT 1

static negio_config *client_cfg[PATH_COUNT];
static negio_config *server_cfg[PATH_COUNT];      /* defaults: min sign, default seal */
static negio_config *server_seal_cfg[PATH_COUNT]; /* min seal */
static uint8_t msg40[40];
static char where[256];

static const negio_level levels[] = {NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL};
/* Each case is one cmocka test per path; the state points at the path. */
static test_path state_path(void **state)
{
    return *(const test_path *)*state;
}

static void set_where(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_where(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof(where), fmt, ap);
    va_end(ap);
}

/* Asserts COND about SIDE; on failure names the case being checked and the side's error. */
#define CHECK(side, cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("[%s] check failed: %s (err %s, detail \"%s\")", where, #cond,                \
                     negio_err_name((side)->err), negio_conn_error_detail((side)->conn));          \
    } while (0)

/* ---- wire helpers ---------------------------------------------------------------------- */

/* A..B concatenated (caller frees). */
static uint8_t *concat(const uint8_t *a, size_t na, const uint8_t *b, size_t nb, size_t *n)
{
    uint8_t *c = malloc(na + nb + 1);
    assert_non_null(c);
    memcpy(c, a, na);
    memcpy(c + na, b, nb);
    *n = na + nb;
    return c;
}

/* ---- connector helpers ----------------------------------------------------------------- */

static int messages(const test_side *s)
{
    return test_side_count(s, NEGIO_EV_MESSAGE);
}

static void establish(test_pair *p, test_path path, const negio_config *server)
{
    test_pair_init(p, client_cfg[path], server ? server : server_cfg[path], SPLIT_WHOLE, 1);
    if (!test_pair_establish(p))
        fail_msg("[%s] handshake failed: client %s (%s), server %s (%s)", where,
                 negio_err_name(p->client.err), negio_conn_error_detail(p->client.conn),
                 negio_err_name(p->server.err), negio_conn_error_detail(p->server.conn));
}

/* SIDE writes one message at LEVEL; returns exactly the bytes that went to the wire for it. */
static uint8_t *write_frame(test_side *s, const void *msg, size_t len, negio_level level, size_t *n)
{
    int rc = negio_conn_write(s->conn, msg, len, level);
    CHECK(s, rc == NEGIO_OK);
    uint8_t *f = test_take_output(s->conn, n);
    CHECK(s, *n > HDR_LEN);
    CHECK(s, f[0] == VERSION && f[1] == FT_DATA && f[2] == (uint8_t)level && f[3] == 0 &&
                 test_get_be32(f + 4) == *n - HDR_LEN);
    return f;
}

/* Feeds bytes to a healthy side and processes them. */
static void feed(test_side *s, const uint8_t *b, size_t n)
{
    int rc = negio_conn_feed(s->conn, b, n);
    CHECK(s, rc == NEGIO_OK);
    test_side_drain(s);
}

/* The detail of a fatal error names its cause; for integrity failures: the GSS call that
 * failed, or which protection check (sealed / signed frame) rejected the frame. */
static void check_detail(const test_side *s)
{
    const char *d = negio_conn_error_detail(s->conn);
    CHECK(s, d != NULL && d[0] != '\0');
    if (s->err == NEGIO_ERR_INTEGRITY)
        CHECK(s, strstr(d, "gss_unwrap") != NULL || strstr(d, "gss_verify_mic") != NULL ||
                     strstr(d, "sealed") != NULL || strstr(d, "signed") != NULL);
}

/* S failed with CODE (or ALT when non-zero), delivered no message beyond BEFORE and no close. */
static void expect_fatal(const test_side *s, int before, int code, int alt)
{
    CHECK(s, s->err == code || (alt != 0 && s->err == alt));
    CHECK(s, negio_conn_error(s->conn) == s->err);
    CHECK(s, messages(s) == before);
    CHECK(s, test_side_count(s, NEGIO_EV_CLOSED) == 0);
    CHECK(s, !negio_conn_is_established(s->conn));
    check_detail(s);
}

/* After the fatal error, feeding VALID (a frame the side would otherwise have accepted) changes
 * nothing: the feed reports the sticky error, no event comes out, writes are refused. */
static void expect_sticky(test_side *s, const uint8_t *valid, size_t n)
{
    int err = s->err;
    int before = messages(s);
    int closed = test_side_count(s, NEGIO_EV_CLOSED);
    CHECK(s, err <= NEGIO_ERR_FATAL);
    CHECK(s, negio_conn_feed(s->conn, valid, n) == err);
    test_side_drain(s);
    CHECK(s, s->err == err);
    CHECK(s, messages(s) == before);
    CHECK(s, test_side_count(s, NEGIO_EV_CLOSED) == closed);
    negio_event ev;
    CHECK(s, negio_conn_next_event(s->conn, &ev) == err);
    CHECK(s, ev.type == NEGIO_EV_NONE);
    size_t room = 1;
    CHECK(s, negio_conn_recv_buf(s->conn, &room) == NULL && room == 0);
    CHECK(s, negio_conn_write(s->conn, "x", 1, NEGIO_LEVEL_DEFAULT) == err);
    CHECK(s, negio_conn_error(s->conn) == err);
}

/* The client writes another (valid) message after the server failed; it is not delivered. */
static void expect_sticky_next(test_pair *p, negio_level level)
{
    size_t n;
    uint8_t *f = write_frame(&p->client, "after the failure", 17, level, &n);
    expect_sticky(&p->server, f, n);
    free(f);
}

/* ---- 1. one byte flipped at every offset ---------------------------------------------- */

/* The only acceptable outcome of frame F (a signed or sealed DATA frame) with byte OFF xor X. */
static int flip_outcome(const uint8_t *f, size_t off, uint8_t x)
{
    uint8_t b = (uint8_t)(f[off] ^ x);
    switch (off) {
    case 0: /* version */
        return NEGIO_ERR_PROTOCOL;
    case 1: /* type: CLOSE is a legal type after establishment, caught by the protection */
        if (b == FT_CLOSE)
            return NEGIO_ERR_INTEGRITY;
        return NEGIO_ERR_PROTOCOL; /* unknown, handshake with a level, second policy */
    case 2:                        /* level */
        if (b > NEGIO_LEVEL_SEAL)
            return NEGIO_ERR_PROTOCOL;
        if (b < NEGIO_LEVEL_SIGN)
            return NEGIO_ERR_DOWNGRADE;
        return NEGIO_ERR_INTEGRITY;
    case 3: /* flags: MORE is legal for DATA, anything else is reserved */
        return (b & ~FLAG_MORE) ? NEGIO_ERR_PROTOCOL : NEGIO_ERR_INTEGRITY;
    case 4:
    case 5:
    case 6:
    case 7: {
        uint8_t h[HDR_LEN];
        memcpy(h, f, HDR_LEN);
        h[off] = b;
        uint32_t was = test_get_be32(f + 4), now = test_get_be32(h + 4);
        if (now > MAX_FRAME_DEFAULT)
            return NEGIO_ERR_TOO_LARGE;
        if (now > was)
            return OUTCOME_WAIT;
        return NEGIO_ERR_INTEGRITY;
    }
    default: /* the body: MIC length, MIC, payload, or the wrap token */
        return NEGIO_ERR_INTEGRITY;
    }
}

/* One fresh pair: the client writes a 40-byte message at LEVEL, byte OFF of its frame is
 * xored with X and fed to the server. Returns the frame length. */
static size_t flip_one(test_path path, negio_level level, size_t off, uint8_t x)
{
    test_pair p;
    set_where("%s, %s frame, offset %zu xor 0x%02x", test_path_name(path), negio_level_name(level),
              off, x);
    establish(&p, path, NULL);
    size_t n;
    uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), level, &n);
    if (off >= n) {
        free(f);
        test_pair_free(&p);
        return n;
    }
    uint8_t *t = test_memdup(f, n);
    t[off] ^= x;
    int want = flip_outcome(f, off, x);
    feed(&p.server, t, n);
    if (want == OUTCOME_WAIT) {
        /* the enlarged length makes the server wait for the rest of the frame */
        CHECK(&p.server, p.server.err == 0);
        CHECK(&p.server, messages(&p.server) == 0);
        CHECK(&p.server, (negio_conn_want(p.server.conn) & NEGIO_WANT_READ) != 0);
        CHECK(&p.server, negio_conn_feed_eof(p.server.conn) == NEGIO_OK);
        test_side_drain(&p.server);
        want = NEGIO_ERR_TRUNCATED;
    }
    expect_fatal(&p.server, 0, want, 0);
    /* the untampered frame — exactly what the server expected next — is not processed */
    expect_sticky(&p.server, f, n);
    expect_sticky_next(&p, level);
    free(t);
    free(f);
    test_pair_free(&p);
    return n;
}

static void flip_every_byte(test_path path, negio_level level)
{
    static const uint8_t xors[] = {0xFF, 0x01};
    for (size_t k = 0; k < sizeof(xors); k++) {
        size_t n = flip_one(path, level, 0, xors[k]);
        for (size_t off = 1; off < n; off++) {
            size_t again = flip_one(path, level, off, xors[k]);
            set_where("%s, %s frame, offset %zu", test_path_name(path), negio_level_name(level),
                      off);
            if (again != n)
                fail_msg("[%s] frame length changed between pairs: %zu then %zu", where, n, again);
        }
    }
}

static void flip_every_byte_sealed(void **state)
{
    flip_every_byte(state_path(state), NEGIO_LEVEL_SEAL);
}

static void flip_every_byte_signed(void **state)
{
    flip_every_byte(state_path(state), NEGIO_LEVEL_SIGN);
}

/* ---- 2. an injected level-none DATA frame ---------------------------------------------- */

static void injected_none_frame(void **state)
{
    test_path path = state_path(state);
    for (int strict = 0; strict <= 1; strict++) {
        const negio_config *sc = strict ? server_seal_cfg[path] : server_cfg[path];
        const char *min = strict ? "seal" : "sign";
        static const char text[] = "injected";
        uint8_t none[HDR_LEN + sizeof(text)];
        test_put_header(none, VERSION, FT_DATA, NEGIO_LEVEL_NONE, 0, sizeof(text));
        memcpy(none + HDR_LEN, text, sizeof(text));

        /* alone */
        test_pair p;
        set_where("%s, min %s, injected none frame", test_path_name(path), min);
        establish(&p, path, sc);
        feed(&p.server, none, sizeof(none));
        expect_fatal(&p.server, 0, NEGIO_ERR_DOWNGRADE, 0);
        expect_sticky_next(&p, NEGIO_LEVEL_SEAL);
        test_pair_free(&p);

        /* empty, and as the first fragment of a message (MORE) */
        for (int more = 0; more <= 1; more++) {
            set_where("%s, min %s, injected empty none frame, more %d", test_path_name(path), min,
                      more);
            uint8_t empty[HDR_LEN];
            test_put_header(empty, VERSION, FT_DATA, NEGIO_LEVEL_NONE, more ? FLAG_MORE : 0, 0);
            establish(&p, path, sc);
            feed(&p.server, empty, sizeof(empty));
            expect_fatal(&p.server, 0, NEGIO_ERR_DOWNGRADE, 0);
            expect_sticky_next(&p, NEGIO_LEVEL_SEAL);
            test_pair_free(&p);
        }

        /* between two valid frames, all in one read: the first is delivered, nothing after */
        set_where("%s, min %s, none frame between valid frames", test_path_name(path), min);
        establish(&p, path, sc);
        size_t n1, n2, n12, nall;
        uint8_t *f1 = write_frame(&p.client, "first", 5, NEGIO_LEVEL_SEAL, &n1);
        uint8_t *f2 = write_frame(&p.client, "second", 6, NEGIO_LEVEL_SEAL, &n2);
        uint8_t *a = concat(f1, n1, none, sizeof(none), &n12);
        uint8_t *all = concat(a, n12, f2, n2, &nall);
        feed(&p.server, all, nall);
        expect_fatal(&p.server, 1, NEGIO_ERR_DOWNGRADE, 0);
        const test_event *m = test_side_message(&p.server, 0);
        CHECK(&p.server, m != NULL && m->len == 5 && memcmp(m->data, "first", 5) == 0);
        expect_sticky(&p.server, f2, n2);
        free(all);
        free(a);
        free(f1);
        free(f2);
        test_pair_free(&p);
    }
}

/* ---- 3. the level byte changed --------------------------------------------------------- */

static void level_flip_case(test_path path, int strict, negio_level from, uint8_t to, int want)
{
    test_pair p;
    set_where("%s, min %s, %s frame relabelled level %u", test_path_name(path),
              strict ? "seal" : "sign", negio_level_name(from), to);
    establish(&p, path, strict ? server_seal_cfg[path] : server_cfg[path]);
    size_t n;
    uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), from, &n);
    uint8_t *t = test_memdup(f, n);
    t[2] = to;
    feed(&p.server, t, n);
    expect_fatal(&p.server, 0, want, 0);
    expect_sticky(&p.server, f, n);
    expect_sticky_next(&p, from);
    free(t);
    free(f);
    test_pair_free(&p);
}

static void level_flip(void **state)
{
    test_path path = state_path(state);
    /* minimum sign */
    level_flip_case(path, 0, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_NONE, NEGIO_ERR_DOWNGRADE);
    level_flip_case(path, 0, NEGIO_LEVEL_SEAL, NEGIO_LEVEL_NONE, NEGIO_ERR_DOWNGRADE);
    /* the sign parser sees a wrap token: its "MIC length" does not fit or the MIC fails */
    level_flip_case(path, 0, NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_ERR_INTEGRITY);
    /* the unwrap sees [mic length][MIC][payload] */
    level_flip_case(path, 0, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL, NEGIO_ERR_INTEGRITY);
    /* minimum seal: a relabelled sign is below the minimum */
    level_flip_case(path, 1, NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_ERR_DOWNGRADE);
    level_flip_case(path, 1, NEGIO_LEVEL_SEAL, NEGIO_LEVEL_NONE, NEGIO_ERR_DOWNGRADE);
    /* an unknown level is a framing error, whatever the minimum */
    level_flip_case(path, 0, NEGIO_LEVEL_SEAL, 3, NEGIO_ERR_PROTOCOL);
    level_flip_case(path, 1, NEGIO_LEVEL_SEAL, 0xFF, NEGIO_ERR_PROTOCOL);
}

/* ---- 4. frames forged with a GSS context of our own ------------------------------------ *
 * The client connector's GSS context is not reachable through the public API, so a "seal"
 * frame carrying an integrity-only wrap token (conf_state 0) cannot be made with a connector.
 * Instead the test is its own client here: it runs gss_init_sec_context itself against a
 * server connector, speaks the negio handshake and policy frames by hand, and then builds
 * frames with gss_wrap/gss_get_mic. The server must reject the integrity-only token (the
 * conf_state check in negio__gss_unseal, src/gss/message.c, src/gss/message.c) and a sealed header
 * that does not match the clear one (the memcmp in conn.c unprotect). */

static gss_OID_desc oid_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
static gss_OID_desc oid_ntlm = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};
static gss_OID_desc oid_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

typedef struct forger {
    gss_OID mech;
    gss_cred_id_t cred;
    gss_name_t target;
    gss_ctx_id_t ctx;
    int complete;
    test_side server;
    EVP_MD_CTX *transcript; /* SHA-256 of every HANDSHAKE frame, both ways (PROTOCOL.md 4.3) */
} forger;

#define GSS_CHECK(maj, min, what)                                                                  \
    do {                                                                                           \
        if (GSS_ERROR(maj))                                                                        \
            fail_msg("[%s] %s failed: major 0x%08x minor %u", where, what, (unsigned)(maj),        \
                     (unsigned)(min));                                                             \
    } while (0)

static void forger_frame(forger *f, uint8_t type, uint8_t level, uint8_t flags, const void *body,
                         size_t len)
{
    uint8_t *b = malloc(HDR_LEN + len);
    assert_non_null(b);
    test_put_header(b, VERSION, type, level, flags, (uint32_t)len);
    if (len)
        memcpy(b + HDR_LEN, body, len);
    if (type == FT_HANDSHAKE)
        CHECK(&f->server, EVP_DigestUpdate(f->transcript, b, HDR_LEN + len) == 1);
    CHECK(&f->server, negio_conn_feed(f->server.conn, b, HDR_LEN + len) == NEGIO_OK);
    free(b);
}

static void forger_init_step(forger *f, const uint8_t *tok, size_t len)
{
    OM_uint32 maj, min, min2;
    gss_buffer_desc in = {len, (void *)tok}, out = GSS_C_EMPTY_BUFFER;
    CHECK(&f->server, !f->complete);
    maj = gss_init_sec_context(&min, f->cred, &f->ctx, f->target, f->mech,
                               GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG |
                                   GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG,
                               0, GSS_C_NO_CHANNEL_BINDINGS, tok ? &in : GSS_C_NO_BUFFER, NULL,
                               &out, NULL, NULL);
    if (GSS_ERROR(maj))
        gss_release_buffer(&min2, &out);
    GSS_CHECK(maj, min, "gss_init_sec_context");
    if (out.length > 0)
        forger_frame(f, FT_HANDSHAKE, NEGIO_LEVEL_NONE, 0, out.value, out.length);
    gss_release_buffer(&min2, &out);
    f->complete = maj == GSS_S_COMPLETE;
}

/* A signed frame with header PH (type, level, flags) whose MIC covers PH || PAYLOAD. */
static uint8_t *forger_sign(forger *f, const uint8_t ph[PH_LEN], const void *payload, size_t len,
                            size_t *n)
{
    OM_uint32 maj, min, min2;
    uint8_t *in = malloc(PH_LEN + len + 1);
    assert_non_null(in);
    memcpy(in, ph, PH_LEN);
    if (len)
        memcpy(in + PH_LEN, payload, len);
    gss_buffer_desc m = {PH_LEN + len, in}, mic = GSS_C_EMPTY_BUFFER;
    maj = gss_get_mic(&min, f->ctx, GSS_C_QOP_DEFAULT, &m, &mic);
    free(in);
    GSS_CHECK(maj, min, "gss_get_mic");
    *n = HDR_LEN + 4 + mic.length + len;
    uint8_t *b = malloc(*n);
    assert_non_null(b);
    test_put_header(b, VERSION, ph[1], ph[2], ph[3], (uint32_t)(*n - HDR_LEN));
    test_put_be32(b + HDR_LEN, (uint32_t)mic.length);
    memcpy(b + HDR_LEN + 4, mic.value, mic.length);
    if (len)
        memcpy(b + HDR_LEN + 4 + mic.length, payload, len);
    gss_release_buffer(&min2, &mic);
    return b;
}

/* A frame with clear header HDR (type, level, flags) whose body is gss_wrap(CONF_REQ) of
 * INNER (the sealed plaintext, normally PH || payload). *CONF is the conf_state. */
static uint8_t *forger_wrap(forger *f, const uint8_t hdr[PH_LEN], int conf_req, const void *inner,
                            size_t len, int *conf, size_t *n)
{
    OM_uint32 maj, min, min2;
    gss_buffer_desc m = {len, (void *)inner}, tok = GSS_C_EMPTY_BUFFER;
    *conf = -1;
    maj = gss_wrap(&min, f->ctx, conf_req, GSS_C_QOP_DEFAULT, &m, conf, &tok);
    GSS_CHECK(maj, min, "gss_wrap");
    *n = HDR_LEN + tok.length;
    uint8_t *b = malloc(*n);
    assert_non_null(b);
    test_put_header(b, VERSION, hdr[1], hdr[2], hdr[3], (uint32_t)tok.length);
    memcpy(b + HDR_LEN, tok.value, tok.length);
    gss_release_buffer(&min2, &tok);
    return b;
}

/* A sealed DATA frame of PAYLOAD with the correct protected header. */
static uint8_t *forger_seal_data(forger *f, int conf_req, const char *payload, int *conf, size_t *n)
{
    size_t len = strlen(payload);
    uint8_t ph[PH_LEN] = {VERSION, FT_DATA, NEGIO_LEVEL_SEAL, 0};
    uint8_t *inner = malloc(PH_LEN + len);
    assert_non_null(inner);
    memcpy(inner, ph, PH_LEN);
    memcpy(inner + PH_LEN, payload, len);
    uint8_t *b = forger_wrap(f, ph, conf_req, inner, PH_LEN + len, conf, n);
    free(inner);
    return b;
}

/* Verifies the server's signed POLICY frame with our context (keeps both directions honest). */
static void forger_check_policy(forger *f, const uint8_t *frame, size_t n)
{
    OM_uint32 maj, min;
    CHECK(&f->server, f->complete && frame[2] == NEGIO_LEVEL_SIGN && n >= HDR_LEN + 4);
    const uint8_t *body = frame + HDR_LEN;
    size_t blen = n - HDR_LEN;
    size_t mlen = test_get_be32(body);
    CHECK(&f->server, mlen <= blen - 4);
    size_t plen = blen - 4 - mlen;
    uint8_t *in = malloc(PH_LEN + plen + 1);
    assert_non_null(in);
    memcpy(in, frame, PH_LEN);
    memcpy(in + PH_LEN, body + 4 + mlen, plen);
    gss_buffer_desc m = {PH_LEN + plen, in}, t = {mlen, (void *)(body + 4)};
    maj = gss_verify_mic(&min, f->ctx, &m, &t, NULL);
    free(in);
    if (maj != GSS_S_COMPLETE)
        fail_msg("[%s] the server's policy MIC does not verify: 0x%08x/%u", where, (unsigned)maj,
                 (unsigned)min);
    CHECK(&f->server, plen == 48);
}

/* Authenticates to a fresh server connector as the path's client, by hand. */
static void forger_start(forger *f, test_path path)
{
    const test_realm *r = test_realm_get();
    OM_uint32 maj, min;
    memset(f, 0, sizeof(*f));
    f->cred = GSS_C_NO_CREDENTIAL;
    f->target = GSS_C_NO_NAME;
    f->ctx = GSS_C_NO_CONTEXT;
    f->mech = path == PATH_KERBEROS ? &oid_krb5 : path == PATH_NTLM ? &oid_ntlm : &oid_spnego;
    f->transcript = EVP_MD_CTX_new();
    assert_true(f->transcript != NULL && EVP_DigestInit_ex(f->transcript, EVP_sha256(), NULL) == 1);

    /* the same credentials the path's client connector uses (see src/gss/cred.c) */
    gss_OID_set_desc mechs = {1, f->mech};
    gss_key_value_element_desc el[2];
    gss_key_value_set_desc store = {0, el};
    if (path == PATH_KERBEROS || path == PATH_NEG_KERBEROS)
        el[store.count++] = (gss_key_value_element_desc){"ccache", r->ccache};
    if (path == PATH_NEG_NTLM)
        el[store.count++] = (gss_key_value_element_desc){"ccache", r->empty_ccache};
    if (path == PATH_NEG_KERBEROS || path == PATH_NEG_NTLM)
        el[store.count++] = (gss_key_value_element_desc){"ntlmssp_keyfile", r->ntlm_file};
    maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                store.count ? &store : GSS_C_NO_CRED_STORE, &f->cred, NULL, NULL);
    GSS_CHECK(maj, min, "gss_acquire_cred_from");
    if (f->mech == &oid_spnego) {
        gss_OID_desc both[2] = {oid_krb5, oid_ntlm};
        gss_OID_set_desc neg = {2, both};
        maj = gss_set_neg_mechs(&min, f->cred, &neg);
        GSS_CHECK(maj, min, "gss_set_neg_mechs");
    }
    static const char service[] = "negio@localhost";
    gss_buffer_desc nb = {sizeof(service) - 1, (void *)service};
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &f->target);
    GSS_CHECK(maj, min, "gss_import_name");
    assert_int_equal(negio_conn_new(&f->server.conn, server_cfg[path]), NEGIO_OK);

    int policy_sent = 0, policy_seen = 0;
    forger_init_step(f, NULL, 0);
    for (int round = 0; round < 16; round++) {
        if (f->complete && !policy_sent) {
            uint8_t pol[48] = {2, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL, 0};
            test_put_be32(pol + 4, MAX_FRAME_DEFAULT);
            test_put_be32(pol + 8, 16777216u);
            unsigned hlen = 0;
            CHECK(&f->server,
                  EVP_DigestFinal_ex(f->transcript, pol + 16, &hlen) == 1 && hlen == 32);
            uint8_t ph[PH_LEN] = {VERSION, FT_POLICY, NEGIO_LEVEL_SIGN, 0};
            size_t n;
            uint8_t *b = forger_sign(f, ph, pol, sizeof(pol), &n);
            CHECK(&f->server, negio_conn_feed(f->server.conn, b, n) == NEGIO_OK);
            free(b);
            policy_sent = 1;
        }
        test_side_drain(&f->server);
        CHECK(&f->server, f->server.err == 0);
        size_t n;
        uint8_t *out = test_take_output(f->server.conn, &n);
        if (n == 0) {
            free(out);
            break;
        }
        for (size_t at = 0; at < n;) {
            CHECK(&f->server, n - at >= HDR_LEN && test_get_be32(out + at + 4) <= n - at - HDR_LEN);
            size_t len = test_get_be32(out + at + 4);
            if (out[at + 1] == FT_HANDSHAKE) {
                CHECK(&f->server, EVP_DigestUpdate(f->transcript, out + at, HDR_LEN + len) == 1);
                forger_init_step(f, out + at + HDR_LEN, len);
            } else if (out[at + 1] == FT_POLICY) {
                forger_check_policy(f, out + at, HDR_LEN + len);
                policy_seen = 1;
            } else {
                fail_msg("[%s] unexpected frame type %u from the server", where, out[at + 1]);
            }
            at += HDR_LEN + len;
        }
        free(out);
    }
    CHECK(&f->server, f->complete && policy_sent && policy_seen);
    CHECK(&f->server, test_side_count(&f->server, NEGIO_EV_ESTABLISHED) == 1);
}

static void forger_free(forger *f)
{
    OM_uint32 min;
    if (f->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min, &f->ctx, GSS_C_NO_BUFFER);
    if (f->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &f->cred);
    if (f->target != GSS_C_NO_NAME)
        gss_release_name(&min, &f->target);
    for (int i = 0; i < f->server.nevents; i++)
        free(f->server.events[i].data);
    negio_conn_del(f->server.conn);
    EVP_MD_CTX_free(f->transcript);
    memset(f, 0, sizeof(*f));
}

static void integrity_only_seal(void **state)
{
    test_path path = state_path(state);
    forger f;
    int conf;
    size_t n, n2;
    set_where("%s, forged client", test_path_name(path));
    forger_start(&f, path);

    /* control: a correctly sealed frame from the hand-made client is delivered */
    uint8_t *ok = forger_seal_data(&f, 1, "control", &conf, &n);
    CHECK(&f.server, conf == 1);
    feed(&f.server, ok, n);
    CHECK(&f.server, f.server.err == 0 && messages(&f.server) == 1);
    const test_event *m = test_side_message(&f.server, 0);
    CHECK(&f.server,
          m->level == NEGIO_LEVEL_SEAL && m->len == 7 && memcmp(m->data, "control", 7) == 0);
    free(ok);

    /* a signed frame made by hand is delivered too (the forger speaks the format) */
    uint8_t sph[PH_LEN] = {VERSION, FT_DATA, NEGIO_LEVEL_SIGN, 0};
    ok = forger_sign(&f, sph, "signed", 6, &n);
    feed(&f.server, ok, n);
    CHECK(&f.server, f.server.err == 0 && messages(&f.server) == 2);
    free(ok);

    set_where("%s, seal frame with an integrity-only wrap token", test_path_name(path));
    uint8_t *bad = forger_seal_data(&f, 0, "integrity only", &conf, &n);
    if (conf == 0) {
        feed(&f.server, bad, n);
        expect_fatal(&f.server, 2, NEGIO_ERR_INTEGRITY, 0);
        CHECK(&f.server, strstr(negio_conn_error_detail(f.server.conn), "not encrypted") != NULL);
        uint8_t *after = forger_seal_data(&f, 1, "after", &conf, &n2);
        expect_sticky(&f.server, after, n2);
        free(after);
    } else {
        /* the mechanism encrypts regardless of conf_req (gss-ntlmssp always seals): there
         * is no integrity-only token to test, and this one is legitimately sealed */
        print_message("%s: gss_wrap(conf_req=0) returned conf_state %d; integrity-only "
                      "token not producible on this mechanism\n",
                      test_path_name(path), conf);
        feed(&f.server, bad, n);
        CHECK(&f.server, f.server.err == 0 && messages(&f.server) == 3);
    }
    free(bad);
    forger_free(&f);
}

/* A genuinely sealed token whose sealed copy of the header differs from the clear header. */
static void sealed_header_mismatch(void **state)
{
    static const struct {
        const char *name;
        uint8_t inner[PH_LEN];
        size_t inner_len; /* bytes of the sealed plaintext (< 4: no room for the header) */
    } cases[] = {
        {"inner level sign", {VERSION, FT_DATA, NEGIO_LEVEL_SIGN, 0}, 0},
        {"inner level none", {VERSION, FT_DATA, NEGIO_LEVEL_NONE, 0}, 0},
        {"inner type close", {VERSION, FT_CLOSE, NEGIO_LEVEL_SEAL, 0}, 0},
        {"inner flags more", {VERSION, FT_DATA, NEGIO_LEVEL_SEAL, FLAG_MORE}, 0},
        {"inner version 1", {1, FT_DATA, NEGIO_LEVEL_SEAL, 0}, 0},
        {"sealed plaintext of 3 bytes", {VERSION, FT_DATA, NEGIO_LEVEL_SEAL, 0}, 3},
        {"sealed plaintext of 1 byte", {VERSION, FT_DATA, NEGIO_LEVEL_SEAL, 0}, 1},
    };
    static const uint8_t outer[PH_LEN] = {VERSION, FT_DATA, NEGIO_LEVEL_SEAL, 0};
    test_path path = state_path(state);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        forger f;
        int conf;
        size_t n, n2;
        set_where("%s, forged client", test_path_name(path));
        forger_start(&f, path);
        set_where("%s, sealed frame, %s", test_path_name(path), cases[k].name);
        uint8_t inner[PH_LEN + 7];
        memcpy(inner, cases[k].inner, PH_LEN);
        memcpy(inner + PH_LEN, "payload", 7);
        size_t len = cases[k].inner_len ? cases[k].inner_len : sizeof(inner);
        uint8_t *bad = forger_wrap(&f, outer, 1, inner, len, &conf, &n);
        CHECK(&f.server, conf == 1);
        feed(&f.server, bad, n);
        expect_fatal(&f.server, 0, NEGIO_ERR_INTEGRITY, 0);
        CHECK(&f.server, strstr(negio_conn_error_detail(f.server.conn), "sealed") != NULL);
        uint8_t *after = forger_seal_data(&f, 1, "after", &conf, &n2);
        expect_sticky(&f.server, after, n2);
        free(after);
        free(bad);
        forger_free(&f);
    }
}

/* ---- 5. replay, 6. reorder, 7. drop ---------------------------------------------------- */

static void replay(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        for (int one_read = 0; one_read <= 1; one_read++) {
            test_pair p;
            set_where("%s, %s frame replayed%s", test_path_name(path), negio_level_name(levels[l]),
                      one_read ? " in the same read" : "");
            establish(&p, path, NULL);
            size_t n;
            uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), levels[l], &n);
            if (one_read) {
                size_t n2;
                uint8_t *twice = concat(f, n, f, n, &n2);
                feed(&p.server, twice, n2);
                free(twice);
            } else {
                feed(&p.server, f, n);
                CHECK(&p.server, p.server.err == 0 && messages(&p.server) == 1);
                feed(&p.server, f, n);
            }
            expect_fatal(&p.server, 1, NEGIO_ERR_INTEGRITY, 0);
            /* Kerberos reports the replay as such (GSS_S_DUPLICATE_TOKEN, a supplementary
             * bit that must count as failure); NTLM only sees a bad signature. Either way the
             * detail says it in words before the mechanism's own text. */
            const char *why = negio_conn_error_detail(p.server.conn);
            if (test_path_mech(path) == NEGIO_MECH_KERBEROS)
                CHECK(&p.server, strncmp(why, "a replayed frame", 16) == 0 &&
                                     strstr(why, "duplicate") != NULL);
            else
                CHECK(&p.server, strncmp(why,
                                         "the frame does not verify: it was altered, "
                                         "replayed",
                                         51) == 0 &&
                                     strstr(why, "Unknown Error") == NULL);
            const test_event *m = test_side_message(&p.server, 0);
            CHECK(&p.server, m->len == sizeof(msg40) && memcmp(m->data, msg40, m->len) == 0);
            expect_sticky_next(&p, levels[l]);
            free(f);
            test_pair_free(&p);
        }
    }
}

static void reorder(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        for (int one_read = 0; one_read <= 1; one_read++) {
            test_pair p;
            set_where("%s, %s frames m2 before m1%s", test_path_name(path),
                      negio_level_name(levels[l]), one_read ? " in one read" : "");
            establish(&p, path, NULL);
            size_t n1, n2;
            uint8_t *f1 = write_frame(&p.client, "message one", 11, levels[l], &n1);
            uint8_t *f2 = write_frame(&p.client, "message two", 11, levels[l], &n2);
            if (one_read) {
                size_t n;
                uint8_t *both = concat(f2, n2, f1, n1, &n);
                feed(&p.server, both, n);
                free(both);
                expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
            } else {
                feed(&p.server, f2, n2);
                expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
                expect_sticky(&p.server, f1, n1); /* m1, late, is not delivered either */
            }
            expect_sticky(&p.server, f2, n2);
            free(f1);
            free(f2);
            test_pair_free(&p);
        }
    }
}

static void drop(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        test_pair p;
        size_t n1, n2, n3;

        /* the first message dropped */
        set_where("%s, %s frame m1 dropped", test_path_name(path), negio_level_name(levels[l]));
        establish(&p, path, NULL);
        uint8_t *f1 = write_frame(&p.client, "message one", 11, levels[l], &n1);
        uint8_t *f2 = write_frame(&p.client, "message two", 11, levels[l], &n2);
        feed(&p.server, f2, n2);
        expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
        expect_sticky_next(&p, levels[l]);
        free(f1);
        free(f2);
        test_pair_free(&p);

        /* one in the middle dropped */
        set_where("%s, %s frame m2 of 3 dropped", test_path_name(path),
                  negio_level_name(levels[l]));
        establish(&p, path, NULL);
        f1 = write_frame(&p.client, "message one", 11, levels[l], &n1);
        f2 = write_frame(&p.client, "message two", 11, levels[l], &n2);
        uint8_t *f3 = write_frame(&p.client, "message three", 13, levels[l], &n3);
        feed(&p.server, f1, n1);
        CHECK(&p.server, p.server.err == 0 && messages(&p.server) == 1);
        feed(&p.server, f3, n3);
        expect_fatal(&p.server, 1, NEGIO_ERR_INTEGRITY, 0);
        expect_sticky(&p.server, f2, n2);
        free(f1);
        free(f2);
        free(f3);
        test_pair_free(&p);
    }
}

/* ---- 8. splice from another connection, 9. reflection ---------------------------------- */

static void splice(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        test_pair a, b;
        size_t nac, nbc, nas, nbs;
        /* same user, same service, same position in the sequence: only the keys differ */
        set_where("%s, %s frames of two connections", test_path_name(path),
                  negio_level_name(levels[l]));
        establish(&a, path, NULL);
        establish(&b, path, NULL);
        uint8_t *fac = write_frame(&a.client, msg40, sizeof(msg40), levels[l], &nac);
        uint8_t *fbc = write_frame(&b.client, msg40, sizeof(msg40), levels[l], &nbc);
        uint8_t *fas = write_frame(&a.server, msg40, sizeof(msg40), levels[l], &nas);
        uint8_t *fbs = write_frame(&b.server, msg40, sizeof(msg40), levels[l], &nbs);

        set_where("%s, %s frame from another connection's client", test_path_name(path),
                  negio_level_name(levels[l]));
        feed(&b.server, fac, nac);
        expect_fatal(&b.server, 0, NEGIO_ERR_INTEGRITY, 0);
        expect_sticky(&b.server, fbc, nbc); /* B's own, valid frame */

        /* the other direction: another connection's server frame to this client */
        set_where("%s, %s frame from another connection's server", test_path_name(path),
                  negio_level_name(levels[l]));
        feed(&a.client, fbs, nbs);
        expect_fatal(&a.client, 0, NEGIO_ERR_INTEGRITY, 0);
        expect_sticky(&a.client, fas, nas);
        free(fac);
        free(fbc);
        free(fas);
        free(fbs);
        test_pair_free(&a);
        test_pair_free(&b);
    }
}

static void reflection(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        for (int side = 0; side <= 1; side++) {
            test_pair p;
            size_t n, nv;
            set_where("%s, %s frame reflected to the %s", test_path_name(path),
                      negio_level_name(levels[l]), side ? "client" : "server");
            establish(&p, path, NULL);
            test_side *self = side ? &p.client : &p.server;
            test_side *peer = side ? &p.server : &p.client;
            uint8_t *own = write_frame(self, msg40, sizeof(msg40), levels[l], &n);
            /* a frame the peer really sent, held back */
            uint8_t *valid = write_frame(peer, "genuine", 7, levels[l], &nv);
            feed(self, own, n);
            expect_fatal(self, 0, NEGIO_ERR_INTEGRITY, 0);
            expect_sticky(self, valid, nv);
            free(own);
            free(valid);
            test_pair_free(&p);
        }
    }
}

/* ---- 10. truncated tokens --------------------------------------------------------------- */

static void truncation(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        size_t body = 0;
        size_t cuts[6] = {0, 1, 15, 16, 17, 0};
        for (size_t k = 0; k < 6; k++) {
            for (int fixed = 1; fixed >= 0; fixed--) {
                test_pair p;
                size_t n;
                establish(&p, path, NULL);
                uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), levels[l], &n);
                body = n - HDR_LEN;
                cuts[5] = body - 1;
                size_t cut = cuts[k];
                set_where("%s, %s frame body cut to %zu of %zu bytes, %s", test_path_name(path),
                          negio_level_name(levels[l]), cut, body,
                          fixed ? "length fixed" : "length kept, then EOF");
                CHECK(&p.server, cut < body);
                uint8_t *t = test_memdup(f, HDR_LEN + cut);
                if (fixed)
                    test_put_be32(t + 4, (uint32_t)cut);
                feed(&p.server, t, HDR_LEN + cut);
                if (fixed) {
                    /* seal: gss_unwrap fails; sign: the MIC length does not fit (mapped to
                     * INTEGRITY by conn.c) or the MIC fails */
                    expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
                } else {
                    CHECK(&p.server, p.server.err == 0 && messages(&p.server) == 0);
                    CHECK(&p.server, negio_conn_feed_eof(p.server.conn) == NEGIO_OK);
                    test_side_drain(&p.server);
                    expect_fatal(&p.server, 0, NEGIO_ERR_TRUNCATED, 0);
                }
                expect_sticky(&p.server, f, n);
                free(t);
                free(f);
                test_pair_free(&p);
            }
        }
    }
}

/* A signed frame whose MIC length field claims fewer bytes than any real MIC: the rest of the
 * body becomes "payload". Mechanisms must be handed the token with its real length only. */
static void short_mic(void **state)
{
    test_path path = state_path(state);
    static const uint32_t lens[] = {0, 1, 15};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        test_pair p;
        size_t n;
        set_where("%s, sign frame with MIC length field %u", test_path_name(path),
                  (unsigned)lens[k]);
        establish(&p, path, NULL);
        uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), NEGIO_LEVEL_SIGN, &n);
        uint8_t *t = test_memdup(f, n);
        test_put_be32(t + HDR_LEN, lens[k]);
        feed(&p.server, t, n);
        expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
        expect_sticky(&p.server, f, n);
        free(t);
        free(f);
        test_pair_free(&p);
    }

    /* The same with a one-byte MIC that ends exactly at the end of the server's receive buffer
     * (filled through negio_conn_recv_buf after two valid frames). gss-ntlmssp compares a
     * 16-byte signature whatever the token's length, so unless negio refuses MICs shorter than
     * that, this reads 15 bytes past the buffer: valgrind reports it (AddressSanitizer cannot,
     * the read is an inlined memcmp inside gssntlmssp.so). */
    test_pair p;
    size_t n0, n1, room;
    set_where("%s, one-byte MIC at the end of the receive buffer", test_path_name(path));
    establish(&p, path, NULL);
    uint8_t *f0 = write_frame(&p.client, msg40, sizeof(msg40), NEGIO_LEVEL_SIGN, &n0);
    size_t overhead = n0 - sizeof(msg40);
    uint8_t tail[HDR_LEN + 5];
    test_put_header(tail, VERSION, FT_DATA, NEGIO_LEVEL_SIGN, 0, 5);
    test_put_be32(tail + HDR_LEN, 1);
    tail[HDR_LEN + 4] = 0x5a;
    uint8_t *r = negio_conn_recv_buf(p.server.conn, &room);
    CHECK(&p.server, r != NULL && room > n0 + overhead + sizeof(tail));
    size_t big = room - n0 - overhead - sizeof(tail);
    uint8_t *payload = calloc(1, big);
    assert_non_null(payload);
    uint8_t *f1 = write_frame(&p.client, payload, big, NEGIO_LEVEL_SIGN, &n1);
    CHECK(&p.server, n0 + n1 + sizeof(tail) == room);
    memcpy(r, f0, n0);
    memcpy(r + n0, f1, n1);
    memcpy(r + n0 + n1, tail, sizeof(tail));
    CHECK(&p.server, negio_conn_recv_done(p.server.conn, room) == NEGIO_OK);
    test_side_drain(&p.server);
    expect_fatal(&p.server, 2, NEGIO_ERR_INTEGRITY, 0);
    expect_sticky_next(&p, NEGIO_LEVEL_SIGN);
    free(payload);
    free(f0);
    free(f1);
    test_pair_free(&p);
}

/* ---- 11. the MIC covers payload and header ---------------------------------------------- */

static void payload_and_header_covered(void **state)
{
    test_path path = state_path(state);
    for (size_t l = 0; l < 2; l++) {
        for (int what = 0; what < 3; what++) {
            static const char *names[] = {"last payload byte changed",
                                          "flags set to MORE (legal for DATA)",
                                          "type changed to CLOSE"};
            test_pair p;
            size_t n;
            set_where("%s, %s frame, %s", test_path_name(path), negio_level_name(levels[l]),
                      names[what]);
            establish(&p, path, NULL);
            uint8_t *f = write_frame(&p.client, msg40, sizeof(msg40), levels[l], &n);
            uint8_t *t = test_memdup(f, n);
            if (what == 0)
                t[n - 1] ^= 0x20; /* for a signed frame: the last payload byte, in clear */
            else if (what == 1)
                t[3] = FLAG_MORE;
            else
                t[1] = FT_CLOSE;
            if (what == 0 && levels[l] == NEGIO_LEVEL_SIGN)
                CHECK(&p.server, f[n - 1] == msg40[sizeof(msg40) - 1]);
            feed(&p.server, t, n);
            expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
            const char *d = negio_conn_error_detail(p.server.conn);
            if (levels[l] == NEGIO_LEVEL_SIGN)
                CHECK(&p.server, strstr(d, "gss_verify_mic") != NULL);
            else if (what == 0)
                CHECK(&p.server, strstr(d, "gss_unwrap") != NULL);
            else /* the token itself is intact: the sealed header copy must catch it */
                CHECK(&p.server, strstr(d, "sealed") != NULL);
            expect_sticky(&p.server, f, n);
            expect_sticky_next(&p, levels[l]);
            free(t);
            free(f);
            test_pair_free(&p);
        }
    }
}

/* ---- 12. forged close ------------------------------------------------------------------ */

static void forged_close(void **state)
{
    test_path path = state_path(state);
    test_pair p, other;
    size_t n, nc;

    /* control: the pair's own protected close is reported as a clean close */
    set_where("%s, genuine close (control)", test_path_name(path));
    establish(&p, path, NULL);
    CHECK(&p.client, negio_conn_close(p.client.conn, 0, "bye") == NEGIO_OK);
    uint8_t *genuine = test_take_output(p.client.conn, &nc);
    feed(&p.server, genuine, nc);
    CHECK(&p.server, p.server.err == 0 && test_side_count(&p.server, NEGIO_EV_CLOSED) == 1);
    free(genuine);
    test_pair_free(&p);

    /* an unprotected close, normal status and with a rejection status */
    for (int status = 0; status <= 1; status++) {
        set_where("%s, forged unprotected close, status %d", test_path_name(path), status);
        establish(&p, path, NULL);
        uint8_t fc[HDR_LEN + 4 + 3];
        test_put_header(fc, VERSION, FT_CLOSE, NEGIO_LEVEL_NONE, 0, 4 + 3);
        test_put_be32(fc + HDR_LEN, (uint32_t)status);
        memcpy(fc + HDR_LEN + 4, "bye", 3);
        feed(&p.server, fc, sizeof(fc));
        expect_fatal(&p.server, 0, NEGIO_ERR_PROTOCOL, 0);
        /* the client's real close that follows is not reported either */
        CHECK(&p.client, negio_conn_close(p.client.conn, 0, "bye") == NEGIO_OK);
        genuine = test_take_output(p.client.conn, &nc);
        expect_sticky(&p.server, genuine, nc);
        CHECK(&p.server, test_side_count(&p.server, NEGIO_EV_CLOSED) == 0);
        free(genuine);
        test_pair_free(&p);
    }

    /* a real protected close, from another connection */
    set_where("%s, close frame from another connection", test_path_name(path));
    establish(&p, path, NULL);
    establish(&other, path, NULL);
    CHECK(&other.client, negio_conn_close(other.client.conn, 0, "bye") == NEGIO_OK);
    uint8_t *foreign = test_take_output(other.client.conn, &n);
    feed(&p.server, foreign, n);
    expect_fatal(&p.server, 0, NEGIO_ERR_INTEGRITY, 0);
    CHECK(&p.client, negio_conn_close(p.client.conn, 0, "bye") == NEGIO_OK);
    genuine = test_take_output(p.client.conn, &nc);
    expect_sticky(&p.server, genuine, nc);
    CHECK(&p.server, test_side_count(&p.server, NEGIO_EV_CLOSED) == 0);
    free(genuine);
    free(foreign);
    test_pair_free(&p);
    test_pair_free(&other);

    /* A verified CLOSE where the peer's POLICY belongs (section 6.3: complete, no peer POLICY
     * yet). No conforming peer sends one with status 0 (its POLICY goes first); a peer that
     * refuses this side's POLICY closes with a non-zero status, a rejection. The server is put
     * back in that state after it verified the client's POLICY, so that the client's genuine
     * CLOSE is the frame its sequence numbers expect next. */
    for (uint32_t status = 0; status <= 7; status += 7) {
        set_where("%s, close with status %u before the peer's policy", test_path_name(path),
                  (unsigned)status);
        establish(&p, path, NULL);
        p.server.conn->phase = PHASE_COMPLETE;
        p.server.conn->peer_policy = 0;
        CHECK(&p.client, negio_conn_close(p.client.conn, status, "bye") == NEGIO_OK);
        genuine = test_take_output(p.client.conn, &nc);
        feed(&p.server, genuine, nc);
        expect_fatal(&p.server, 0, status == 0 ? NEGIO_ERR_PROTOCOL : NEGIO_ERR_REJECTED, 0);
        free(genuine);
        test_pair_free(&p);
    }
}

/* ---- setup ----------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(msg40); i++)
        msg40[i] = (uint8_t)('A' + i % 26);
    for (int path = 0; path < PATH_COUNT; path++) {
        client_cfg[path] = test_client_config(path);
        server_cfg[path] = test_server_config(path);
        server_seal_cfg[path] = test_server_config(path);
        if (negio_config_set_min_level(server_seal_cfg[path], NEGIO_LEVEL_SEAL) != NEGIO_OK)
            return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int path = 0; path < PATH_COUNT; path++) {
        negio_config_del(client_cfg[path]);
        negio_config_del(server_cfg[path]);
        negio_config_del(server_seal_cfg[path]);
    }
    return 0;
}

int main(void)
{
    test_realm_get();
    /* one test per case and path, so that a crash on one path does not hide the others */
#define PER_PATH(fn) TEST_PER_PATH(fn, NULL, NULL)
    const struct CMUnitTest tests[] = {
        PER_PATH(flip_every_byte_sealed),
        PER_PATH(flip_every_byte_signed),
        PER_PATH(injected_none_frame),
        PER_PATH(level_flip),
        PER_PATH(integrity_only_seal),
        PER_PATH(sealed_header_mismatch),
        PER_PATH(replay),
        PER_PATH(reorder),
        PER_PATH(drop),
        PER_PATH(splice),
        PER_PATH(reflection),
        PER_PATH(truncation),
        PER_PATH(short_mic),
        PER_PATH(payload_and_header_covered),
        PER_PATH(forged_close),
    };
    if (getenv("NEGIO_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("NEGIO_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
