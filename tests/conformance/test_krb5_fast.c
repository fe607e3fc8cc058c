/* Conformance: the Kerberos fast path (src/gss/fastpath.c, cfx.c, kcrypto.c) against MIT's own
 * per-message code, on copies of the same contexts.
 *
 * For every enctype the test realm issues here (aes128-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96,
 * aes128-cts-hmac-sha256-128, aes256-cts-hmac-sha384-192: one service principal each, with only
 * that key and that session enctype), directly and through SPNEGO, with and without mutual
 * authentication (with it, the acceptor asserts a subkey of its own; without, both sides use the
 * initiator's), a context pair is established and exported once. Each case imports copies: every
 * side twice, once kept by MIT, once turned into a fast path (negio__gss_fast_take, what a
 * connection does at establishment). Then, in both directions:
 *  - every token the fast path makes, MIT accepts with the same plaintext and confidentiality,
 *    and every token MIT makes, the fast path accepts: MIC, sealed Wrap and Wrap without
 *    confidentiality, messages of 0 bytes to 1 MiB with every size around the AES block and the
 *    CTS boundaries; MIC tokens and unsealed Wrap tokens are the same bytes from both, sealed
 *    ones the same header and length (their confounders are random);
 *  - every single-bit flip, every truncation, a byte too many, a replay, a reordering, a dropped
 *    token, a reflected token and a token of the other kind are refused by both with the same
 *    major status (MIC tokens also against gss_verify_mic_iov, the form negio uses over frame
 *    pieces, which tells a flipped filler byte as a bad checksum where the others call it
 *    malformed), and a refused token changes neither side's sequence state;
 *  - rotated tokens (a non-zero RRC, as Windows sends) and sealed tokens with EC filler bytes
 *    (made here from the context's keys) are accepted by both; an EC that differs from the sealed
 *    copy, or exceeds the plaintext, is refused by both (CVE-2024-37370);
 *  - contexts without the sequence flag, or without replay detection too, judge reordered and
 *    replayed tokens as MIT does.
 * Finally two negio connectors talk with the fast path on one side and off on the other, in both
 * roles, on both Kerberos paths and the gss-sample profile, and the fast path is shown engaged
 * only where it should be. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "conn/conn_internal.h"
#include "gss/gss_internal.h"
#include "gss/kcrypto.h"
#include "support/support.h"

static const struct {
    int32_t enctype;
    const char *name;
} enctypes[] = {
    {17, "aes128-cts-hmac-sha1-96"},
    {18, "aes256-cts-hmac-sha1-96"},
    {19, "aes128-cts-hmac-sha256-128"},
    {20, "aes256-cts-hmac-sha384-192"},
};
#define NENC 4

static gss_OID_desc oid_krb5 = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
static gss_OID_desc oid_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

#define BASE_FLAGS (GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG)

/* One established pair, exported: copies are imported from these. */
typedef struct pair {
    int32_t enctype;
    int spnego, mutual;
    OM_uint32 iflags, aflags;
    gss_buffer_desc init, acc;
    char name[96];
} pair;

#define NPAIRS (NENC * 4)
static pair pairs[NPAIRS];
static char keytab[400];

static void gss_fail(const char *what, OM_uint32 maj, OM_uint32 min)
{
    char text[1024] = "";
    OM_uint32 codes[2] = {maj, min}, more, m2;
    int types[2] = {GSS_C_GSS_CODE, GSS_C_MECH_CODE};
    for (int i = 0; i < 2; i++) {
        more = 0;
        do {
            gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
            if (GSS_ERROR(gss_display_status(&m2, codes[i], types[i], GSS_C_NO_OID, &more, &b)))
                break;
            snprintf(text + strlen(text), sizeof(text) - strlen(text), "%.*s; ", (int)b.length,
                     (const char *)b.value);
            gss_release_buffer(&m2, &b);
        } while (more != 0);
    }
    fail_msg("%s: %s(major 0x%x)", what, text, (unsigned)maj);
}

static gss_name_t service_name(int32_t enctype)
{
    char text[64];
    snprintf(text, sizeof(text), "fast%d@localhost", (int)enctype);
    gss_buffer_desc b = {strlen(text), text};
    gss_name_t n = GSS_C_NO_NAME;
    OM_uint32 min, maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, &n);
    if (maj != GSS_S_COMPLETE)
        gss_fail("gss_import_name", maj, min);
    return n;
}

static void establish(pair *p, OM_uint32 req)
{
    OM_uint32 maj, min;
    gss_name_t target = service_name(p->enctype);
    gss_OID mech = p->spnego ? &oid_spnego : &oid_krb5;
    gss_OID_desc krb5_only = oid_krb5;
    gss_OID_set_desc one = {1, mech}, neg = {1, &krb5_only};
    gss_cred_id_t icred = GSS_C_NO_CREDENTIAL, acred = GSS_C_NO_CREDENTIAL;
    gss_key_value_element_desc el = {"keytab", keytab};
    gss_key_value_set_desc store = {1, &el};
    maj = gss_acquire_cred_from(&min, target, GSS_C_INDEFINITE, &one, GSS_C_ACCEPT, &store, &acred,
                                NULL, NULL);
    if (maj != GSS_S_COMPLETE)
        gss_fail("gss_acquire_cred_from (acceptor)", maj, min);
    maj = gss_acquire_cred(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &one, GSS_C_INITIATE, &icred,
                           NULL, NULL);
    if (maj != GSS_S_COMPLETE)
        gss_fail("gss_acquire_cred (initiator)", maj, min);
    if (p->spnego) {
        assert_int_equal(gss_set_neg_mechs(&min, icred, &neg), GSS_S_COMPLETE);
        assert_int_equal(gss_set_neg_mechs(&min, acred, &neg), GSS_S_COMPLETE);
    }
    /* the initiator offers this enctype alone: for the ticket, and (RFC 4537) for the
     * acceptor's subkey, which would otherwise be the first enctype both support */
    krb5_enctype only = p->enctype;
    maj = gss_krb5_set_allowable_enctypes(&min, icred, 1, &only);
    if (maj != GSS_S_COMPLETE)
        gss_fail("gss_krb5_set_allowable_enctypes", maj, min);
    gss_ctx_id_t ictx = GSS_C_NO_CONTEXT, actx = GSS_C_NO_CONTEXT;
    gss_buffer_desc a2i = GSS_C_EMPTY_BUFFER, i2a = GSS_C_EMPTY_BUFFER;
    int idone = 0, adone = 0;
    for (int round = 0; round < 8 && !(idone && adone); round++) {
        if (!idone) {
            maj = gss_init_sec_context(&min, icred, &ictx, target, mech, req, 0,
                                       GSS_C_NO_CHANNEL_BINDINGS, round ? &a2i : GSS_C_NO_BUFFER,
                                       NULL, &i2a, &p->iflags, NULL);
            gss_release_buffer(&min, &a2i);
            if (GSS_ERROR(maj))
                gss_fail("gss_init_sec_context", maj, min);
            idone = maj == GSS_S_COMPLETE;
        }
        if (i2a.length > 0) {
            maj = gss_accept_sec_context(&min, &actx, acred, &i2a, GSS_C_NO_CHANNEL_BINDINGS, NULL,
                                         NULL, &a2i, &p->aflags, NULL, NULL);
            gss_release_buffer(&min, &i2a);
            if (GSS_ERROR(maj))
                gss_fail("gss_accept_sec_context", maj, min);
            adone = maj == GSS_S_COMPLETE;
        }
    }
    assert_true(idone && adone);
    gss_release_buffer(&min, &a2i);
    assert_int_equal(gss_export_sec_context(&min, &ictx, &p->init), GSS_S_COMPLETE);
    assert_int_equal(gss_export_sec_context(&min, &actx, &p->acc), GSS_S_COMPLETE);
    gss_release_cred(&min, &icred);
    gss_release_cred(&min, &acred);
    gss_release_name(&min, &target);
    snprintf(p->name, sizeof(p->name), "%s%s%s", enctypes[0].name, p->spnego ? ", spnego" : "",
             p->mutual ? ", mutual" : "");
    for (int i = 0; i < NENC; i++)
        if (enctypes[i].enctype == p->enctype)
            snprintf(p->name, sizeof(p->name), "%s%s%s", enctypes[i].name,
                     p->spnego ? ", spnego" : "", p->mutual ? ", mutual (acceptor subkey)" : "");
}

static int setup(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    snprintf(keytab, sizeof(keytab), "%s/fast.keytab", r->dir);
    for (int i = 0; i < NENC; i++) {
        char q[600];
        /* one key of one enctype, and (Debian's KDC otherwise assumes aes256-sha1 for every
         * service) a session key of that enctype only */
        snprintf(q, sizeof(q), "addprinc -randkey -e %s:normal fast%d/localhost", enctypes[i].name,
                 (int)enctypes[i].enctype);
        assert_int_equal(test_realm_kadmin(q), 0);
        snprintf(q, sizeof(q), "setstr fast%d/localhost session_enctypes %s",
                 (int)enctypes[i].enctype, enctypes[i].name);
        assert_int_equal(test_realm_kadmin(q), 0);
        snprintf(q, sizeof(q), "ktadd -k %s -norandkey fast%d/localhost", keytab,
                 (int)enctypes[i].enctype);
        assert_int_equal(test_realm_kadmin(q), 0);
    }
    for (int i = 0; i < NPAIRS; i++) {
        pairs[i].enctype = enctypes[i / 4].enctype;
        pairs[i].spnego = (i / 2) % 2;
        pairs[i].mutual = i % 2;
        establish(&pairs[i], BASE_FLAGS | (pairs[i].mutual ? GSS_C_MUTUAL_FLAG : 0));
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    OM_uint32 min;
    for (int i = 0; i < NPAIRS; i++) {
        gss_release_buffer(&min, &pairs[i].init);
        gss_release_buffer(&min, &pairs[i].acc);
    }
    return 0;
}

/* ---- copies ----------------------------------------------------------------------------- */

/* One side of a context, twice: MIT's and the fast path's, in the same state. */
typedef struct side {
    gss_ctx_id_t mit;
    negio__cfx *fast;
} side;

/* Both sides of P: [0] the initiator, [1] the acceptor. */
static void copies(const pair *p, side s[2])
{
    OM_uint32 maj, min;
    for (int i = 0; i < 2; i++) {
        gss_buffer_desc tok = i == 0 ? p->init : p->acc;
        gss_ctx_id_t tmp = GSS_C_NO_CONTEXT;
        s[i].mit = GSS_C_NO_CONTEXT;
        if ((maj = gss_import_sec_context(&min, &tok, &s[i].mit)) != GSS_S_COMPLETE ||
            (maj = gss_import_sec_context(&min, &tok, &tmp)) != GSS_S_COMPLETE)
            gss_fail("gss_import_sec_context", maj, min);
        char detail[NEGIO__DETAIL_MAX] = "";
        int rc = negio__gss_fast_take(&tmp, i == 0 ? p->iflags : p->aflags, &s[i].fast, detail);
        if (rc != 1)
            fail_msg("[%s] no fast path: %d %s", p->name, rc, detail);
        assert_true(tmp == GSS_C_NO_CONTEXT);
        assert_int_equal(negio__cfx_enctype(s[i].fast), p->enctype);
    }
}

static void copies_free(side s[2])
{
    OM_uint32 min;
    for (int i = 0; i < 2; i++) {
        gss_delete_sec_context(&min, &s[i].mit, GSS_C_NO_BUFFER);
        negio__cfx_del(s[i].fast);
    }
}

/* ---- one token each way ----------------------------------------------------------------- */

enum op { MIC, SEAL, WRAP }; /* a MIC token, a sealed Wrap token, a Wrap token in the clear */
static const char *const op_name[] = {"MIC", "sealed wrap", "wrap"};

typedef struct tok {
    uint8_t *p;
    size_t len;
} tok;

static uint8_t *message(size_t len, unsigned seed)
{
    uint8_t *m = malloc(len ? len : 1);
    assert_non_null(m);
    for (size_t i = 0; i < len; i++)
        m[i] = (uint8_t)test_rand(&seed);
    return m;
}

static tok mit_make(gss_ctx_id_t ctx, enum op op, const uint8_t *m, size_t len)
{
    OM_uint32 maj, min;
    gss_buffer_desc in = {len, (void *)m}, out = GSS_C_EMPTY_BUFFER;
    int conf = -1;
    if (op == MIC)
        maj = gss_get_mic(&min, ctx, GSS_C_QOP_DEFAULT, &in, &out);
    else
        maj = gss_wrap(&min, ctx, op == SEAL, GSS_C_QOP_DEFAULT, &in, &conf, &out);
    if (maj != GSS_S_COMPLETE)
        gss_fail("MIT make", maj, min);
    if (op != MIC)
        assert_int_equal(conf, op == SEAL);
    tok t = {malloc(out.length + 1), out.length};
    memcpy(t.p, out.value, out.length);
    gss_release_buffer(&min, &out);
    return t;
}

static tok fast_make(negio__cfx *c, enum op op, const uint8_t *m, size_t len)
{
    negio__buf b = {0};
    int why = -1;
    OM_uint32 maj;
    if (op == MIC) {
        /* in two pieces where the message allows, as negio makes them over a frame */
        negio__cfx_piece pieces[2] = {{m, len / 3}, {m + len / 3, len - len / 3}};
        maj = negio__cfx_get_mic(c, pieces, 2, &b, &why);
    } else {
        maj = negio__cfx_wrap(c, op == SEAL, m, len, &b, &why);
    }
    assert_int_equal(maj, GSS_S_COMPLETE);
    assert_int_equal(why, NEGIO__CFX_OK);
    tok t = {malloc(negio__buf_size(&b) + 1), negio__buf_size(&b)};
    memcpy(t.p, negio__buf_data(&b), t.len);
    negio__buf_free(&b);
    return t;
}

/* What MIT says of T (M: the message a MIC covers; for a wrap, the plaintext it must give). */
static OM_uint32 mit_take(gss_ctx_id_t ctx, enum op op, const uint8_t *m, size_t len, tok t,
                          int check_plain)
{
    OM_uint32 maj, min;
    /* MIT undoes a rotation and zeroes EC and RRC in the token it is given: a copy */
    uint8_t *copy = malloc(t.len + 1);
    memcpy(copy, t.p, t.len);
    gss_buffer_desc in = {len, (void *)m}, tb = {t.len, copy}, out = GSS_C_EMPTY_BUFFER;
    int conf = -1;
    if (op == MIC) {
        maj = gss_verify_mic(&min, ctx, &in, &tb, NULL);
    } else {
        maj = gss_unwrap(&min, ctx, &tb, &out, &conf, NULL);
        if (maj == GSS_S_COMPLETE && check_plain) {
            assert_int_equal(conf, op == SEAL);
            assert_int_equal(out.length, len);
            if (len > 0)
                assert_memory_equal(out.value, m, len);
        }
        /* MIT's empty plaintext is a malloc(0) block gss_release_buffer does not free */
        if (out.value != NULL && out.length == 0)
            out.length = 1;
        gss_release_buffer(&min, &out);
    }
    free(copy);
    return maj;
}

/* The IOV form of gss_verify_mic, over M in two pieces. */
static OM_uint32 mit_take_iov(gss_ctx_id_t ctx, const uint8_t *m, size_t len, tok t)
{
    OM_uint32 min;
    uint8_t *copy = malloc(t.len + 1);
    memcpy(copy, t.p, t.len);
    gss_iov_buffer_desc iov[3] = {
        {GSS_IOV_BUFFER_TYPE_DATA, {len / 2, (void *)m}},
        {GSS_IOV_BUFFER_TYPE_DATA, {len - len / 2, (void *)(m + len / 2)}},
        {GSS_IOV_BUFFER_TYPE_MIC_TOKEN, {t.len, copy}},
    };
    OM_uint32 maj = gss_verify_mic_iov(&min, ctx, NULL, iov, 3);
    free(copy);
    return maj;
}

static OM_uint32 fast_take(negio__cfx *c, enum op op, const uint8_t *m, size_t len, tok t,
                           int check_plain)
{
    int why = -1;
    OM_uint32 maj;
    if (op == MIC) {
        negio__cfx_piece pieces[2] = {{m, len / 2}, {m + len / 2, len - len / 2}};
        maj = negio__cfx_verify_mic(c, pieces, 2, t.p, t.len, &why);
    } else {
        negio__cfx_plain plain;
        int conf = -1;
        maj = negio__cfx_unwrap(c, t.p, t.len, &plain, &conf, &why);
        if (maj == GSS_S_COMPLETE && check_plain) {
            assert_int_equal(conf, op == SEAL);
            assert_int_equal(plain.len, len);
            if (len > 0)
                assert_memory_equal(plain.msg, m, len);
        }
        if (maj != GSS_S_COMPLETE)
            assert_null(plain.mem);
        negio__cfx_plain_release(&plain);
    }
    return maj;
}

/* FROM sends M both ways (its fast copy and its MIT copy, which stay in step), TO's MIT copy takes
 * the fast path's token and TO's fast copy takes MIT's. Returns the fast path's token. */
static tok exchange(const pair *p, side *from, side *to, enum op op, const uint8_t *m, size_t len)
{
    tok tf = fast_make(from->fast, op, m, len), tm = mit_make(from->mit, op, m, len);
    assert_int_equal(tf.len, tm.len);
    if (op == SEAL)
        assert_memory_equal(tf.p, tm.p, 16); /* the confounder makes the rest differ */
    else
        assert_memory_equal(tf.p, tm.p, tf.len);
    OM_uint32 a = mit_take(to->mit, op, m, len, tf, 1), b = fast_take(to->fast, op, m, len, tm, 1);
    if (a != GSS_S_COMPLETE || b != GSS_S_COMPLETE)
        fail_msg("[%s] %s of %zu bytes: MIT took the fast path's token with 0x%x, the fast path "
                 "took MIT's with 0x%x",
                 p->name, op_name[op], len, (unsigned)a, (unsigned)b);
    free(tm.p);
    return tf;
}

static const size_t sizes[] = {0,     1,     2,     15,    16,    17,      31,     32,   33,
                               47,    48,    49,    63,    64,    65,      100,    127,  128,
                               129,   255,   256,   257,   1000,  4095,    4096,   4097, 16383,
                               16384, 16385, 65535, 65536, 65537, 1048575, 1048576};

static void tokens_cross_both_ways_for_every_enctype_and_size(void **state)
{
    (void)state;
    /* NEGIO_TEST_MAX_MESSAGE: the largest size swept (scripts/valgrind.sh lowers it) */
    const char *cap_env = getenv("NEGIO_TEST_MAX_MESSAGE");
    size_t cap = cap_env != NULL ? (size_t)strtoul(cap_env, NULL, 10) : SIZE_MAX;
    if (cap != SIZE_MAX)
        print_message("messages up to %zu bytes (NEGIO_TEST_MAX_MESSAGE)\n", cap);
    for (int i = 0; i < NPAIRS; i++) {
        side s[2];
        copies(&pairs[i], s);
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && sizes[k] <= cap; k++) {
            uint8_t *m = message(sizes[k], (unsigned)k + 1);
            for (int op = MIC; op <= WRAP; op++) {
                for (int dir = 0; dir < 2; dir++)
                    free(exchange(&pairs[i], &s[dir], &s[1 - dir], (enum op)op, m, sizes[k]).p);
            }
            free(m);
        }
        copies_free(s);
    }
}

/* ---- refusals --------------------------------------------------------------------------- */

/* Both of TO's copies judge T; they must agree and refuse. MIC tokens are also put to the IOV
 * form, which calls a flipped filler byte (4..7) a bad checksum. Neither copy's state changes. */
static void both_refuse(const pair *p, side *to, enum op op, const uint8_t *m, size_t len, tok t,
                        const char *what, int filler)
{
    OM_uint32 a = mit_take(to->mit, op, m, len, t, 0), b = fast_take(to->fast, op, m, len, t, 0);
    if (a == GSS_S_COMPLETE || a != b)
        fail_msg("[%s] %s of %zu bytes, %s: MIT says 0x%x, the fast path 0x%x", p->name,
                 op_name[op], len, what, (unsigned)a, (unsigned)b);
    /* MIT's IOV form aborts the process on a MIC token of exactly 16 bytes (util_cksum.c,
     * checksum_iov_v3: assert(rrc != 0 || trailer != NULL)); message.c refuses those before */
    if (op == MIC && t.len != 16) {
        OM_uint32 c = mit_take_iov(to->mit, m, len, t);
        /* the glue refuses an empty token in the plain form only */
        OM_uint32 want = filler ? GSS_S_BAD_SIG : t.len == 0 ? GSS_S_DEFECTIVE_TOKEN : a;
        if (c != want)
            fail_msg("[%s] MIC of %zu bytes, %s: MIT's IOV form says 0x%x, its plain form 0x%x",
                     p->name, len, what, (unsigned)c, (unsigned)a);
    }
}

/* Both receivers judge the same token and must say the same. */
static void both_say(const pair *p, side *to, enum op op, const uint8_t *m, size_t len, tok t,
                     OM_uint32 want, const char *what)
{
    OM_uint32 a = mit_take(to->mit, op, m, len, t, 1), b = fast_take(to->fast, op, m, len, t, 1);
    if (a != want || b != want)
        fail_msg("[%s] %s, %s: want 0x%x, MIT says 0x%x, the fast path 0x%x", p->name, op_name[op],
                 what, (unsigned)want, (unsigned)a, (unsigned)b);
}

static const size_t tamper_sizes[] = {0, 1, 15, 16, 17, 33};

static void every_flip_truncation_and_extension_is_refused_alike(void **state)
{
    (void)state;
    for (int i = 0; i < NPAIRS; i++) {
        const pair *p = &pairs[i];
        side s[2];
        copies(p, s);
        for (size_t k = 0; k < sizeof(tamper_sizes) / sizeof(tamper_sizes[0]); k++) {
            size_t len = tamper_sizes[k];
            uint8_t *m = message(len, (unsigned)(100 + k));
            for (int op = MIC; op <= WRAP; op++) {
                for (int dir = 0; dir < 2; dir++) {
                    side *from = &s[dir], *to = &s[1 - dir];
                    tok t = fast_make(from->fast, (enum op)op, m, len);
                    tok tm = mit_make(from->mit, (enum op)op, m, len);
                    char what[64];
                    int consumed = 0;
                    for (size_t bit = 0; bit < t.len * 8; bit++) {
                        t.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                        snprintf(what, sizeof(what), "bit %zu flipped", bit);
                        /* RRC is not protected (RFC 4121 section 4.2.5): a rotation by a
                         * multiple of the body's length is the same token, accepted by both
                         * (once; then a replay) */
                        size_t blen = t.len - 16, rrc = (size_t)t.p[6] << 8 | t.p[7];
                        if (op != MIC && (bit / 8 == 6 || bit / 8 == 7) && rrc % blen == 0) {
                            both_say(p, to, (enum op)op, m, len, t,
                                     consumed ? GSS_S_DUPLICATE_TOKEN : GSS_S_COMPLETE, what);
                            consumed = 1;
                        } else {
                            int filler = op == MIC && bit / 8 >= 4 && bit / 8 < 8;
                            both_refuse(p, to, (enum op)op, m, len, t, what, filler);
                        }
                        t.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                    }
                    for (size_t cut = 0; cut < t.len; cut++) {
                        snprintf(what, sizeof(what), "cut to %zu bytes", cut);
                        both_refuse(p, to, (enum op)op, m, len, (tok){t.p, cut}, what, 0);
                    }
                    uint8_t *longer = malloc(t.len + 1);
                    memcpy(longer, t.p, t.len);
                    longer[t.len] = 0;
                    both_refuse(p, to, (enum op)op, m, len, (tok){longer, t.len + 1},
                                "one byte appended", 0);
                    free(longer);
                    /* nothing refused moved a sequence window: the genuine tokens still pass */
                    OM_uint32 want = consumed ? GSS_S_DUPLICATE_TOKEN : GSS_S_COMPLETE;
                    assert_int_equal(mit_take(to->mit, (enum op)op, m, len, t, 1), want);
                    assert_int_equal(fast_take(to->fast, (enum op)op, m, len, tm, 1), want);
                    free(t.p);
                    free(tm.p);
                }
            }
            free(m);
        }
        copies_free(s);
    }
}

static void replays_reorders_drops_and_reflections_are_refused_alike(void **state)
{
    (void)state;
    for (int i = 0; i < NPAIRS; i++) {
        const pair *p = &pairs[i];
        for (int op = MIC; op <= WRAP; op++) {
            for (int dir = 0; dir < 2; dir++) {
                side s[2];
                copies(p, s);
                side *from = &s[dir], *to = &s[1 - dir];
                uint8_t *m = message(40, 7);
                /* the fast copy and the MIT copy of the sender stay in step; only the fast
                 * path's tokens travel */
                tok t[4];
                for (int k = 0; k < 4; k++) {
                    t[k] = fast_make(from->fast, (enum op)op, m, 40);
                    free(mit_make(from->mit, (enum op)op, m, 40).p);
                }
                both_say(p, from, (enum op)op, m, 40, t[0], GSS_S_BAD_SIG, "reflected");
                both_say(p, to, (enum op)op, m, 40, t[0], GSS_S_COMPLETE, "first");
                both_say(p, to, (enum op)op, m, 40, t[0], GSS_S_DUPLICATE_TOKEN, "replayed");
                both_say(p, to, (enum op)op, m, 40, t[2], GSS_S_GAP_TOKEN, "one dropped");
                both_say(p, to, (enum op)op, m, 40, t[1], GSS_S_UNSEQ_TOKEN, "late");
                both_say(p, to, (enum op)op, m, 40, t[1], GSS_S_DUPLICATE_TOKEN, "late, again");
                both_say(p, to, (enum op)op, m, 40, t[3], GSS_S_COMPLETE, "back in order");
                /* a token of the other kind */
                tok other = fast_make(from->fast, op == MIC ? SEAL : MIC, m, 40);
                free(mit_make(from->mit, op == MIC ? SEAL : MIC, m, 40).p);
                both_say(p, to, (enum op)op, m, 40, other, GSS_S_DEFECTIVE_TOKEN, "other kind");
                free(other.p);
                for (int k = 0; k < 4; k++)
                    free(t[k].p);
                free(m);
                copies_free(s);
            }
        }
    }
}

/* The flags MIT's sequence window follows: without GSS_C_SEQUENCE_FLAG order does not matter,
 * without GSS_C_REPLAY_FLAG either nothing is checked. */
static void context_flags_decide_the_checks_as_in_mit(void **state)
{
    (void)state;
    static const OM_uint32 flagsets[] = {GSS_C_REPLAY_FLAG, 0, GSS_C_SEQUENCE_FLAG};
    for (size_t f = 0; f < 3; f++) {
        pair q = pairs[1]; /* aes128-cts-hmac-sha1-96, mutual */
        OM_uint32 min;
        q.init = (gss_buffer_desc)GSS_C_EMPTY_BUFFER;
        q.acc = (gss_buffer_desc)GSS_C_EMPTY_BUFFER;
        q.iflags = q.aflags = 0;
        /* established anew with these flags */
        establish(&q, flagsets[f] | GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG);
        assert_int_equal(q.aflags & (GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG), flagsets[f]);
        snprintf(q.name, sizeof(q.name), "aes128-cts-hmac-sha1-96, flags 0x%x",
                 (unsigned)flagsets[f]);
        side s[2];
        copies(&q, s);
        uint8_t *m = message(20, 3);
        tok t[3];
        for (int k = 0; k < 3; k++) {
            t[k] = fast_make(s[0].fast, SEAL, m, 20);
            free(mit_make(s[0].mit, SEAL, m, 20).p);
        }
        int seq = (flagsets[f] & GSS_C_SEQUENCE_FLAG) != 0;
        int rep = (flagsets[f] & GSS_C_REPLAY_FLAG) != 0;
        both_say(&q, &s[1], SEAL, m, 20, t[1], seq ? GSS_S_GAP_TOKEN : GSS_S_COMPLETE, "early");
        both_say(&q, &s[1], SEAL, m, 20, t[0], seq ? GSS_S_UNSEQ_TOKEN : GSS_S_COMPLETE, "late");
        both_say(&q, &s[1], SEAL, m, 20, t[0],
                 rep   ? GSS_S_DUPLICATE_TOKEN
                 : seq ? GSS_S_UNSEQ_TOKEN
                       : GSS_S_COMPLETE,
                 "again");
        both_say(&q, &s[1], SEAL, m, 20, t[2], GSS_S_COMPLETE, "next");
        for (int k = 0; k < 3; k++)
            free(t[k].p);
        free(m);
        copies_free(s);
        gss_release_buffer(&min, &q.init);
        gss_release_buffer(&min, &q.acc);
    }
}

/* ---- what MIT never sends: rotation and filler ------------------------------------------ */

/* T with everything after the header rotated right by R bytes and RRC set to R (RFC 4121
 * section 4.2.5: the receiver rotates left by RRC). */
static tok rotated(tok t, unsigned r)
{
    size_t blen = t.len - 16;
    tok o = {malloc(t.len + 1), t.len};
    memcpy(o.p, t.p, 16);
    o.p[6] = (uint8_t)(r >> 8);
    o.p[7] = (uint8_t)r;
    for (size_t i = 0; i < blen; i++)
        o.p[16 + (i + r) % blen] = t.p[16 + i];
    return o;
}

static void rotated_tokens_are_accepted_by_both(void **state)
{
    (void)state;
    static const unsigned rrcs[] = {1, 5, 12, 16, 28, 44, 60, 1000, 65535};
    for (int i = 0; i < NPAIRS; i++) {
        const pair *p = &pairs[i];
        side s[2];
        copies(p, s);
        for (int op = SEAL; op <= WRAP; op++) {
            for (int dir = 0; dir < 2; dir++) {
                for (size_t r = 0; r < sizeof(rrcs) / sizeof(rrcs[0]); r++) {
                    size_t len = 3 + r * 7;
                    uint8_t *m = message(len, (unsigned)r);
                    tok tf = fast_make(s[dir].fast, (enum op)op, m, len);
                    tok tm = mit_make(s[dir].mit, (enum op)op, m, len);
                    tok rf = rotated(tf, rrcs[r]), rm = rotated(tm, rrcs[r]);
                    assert_int_equal(mit_take(s[1 - dir].mit, (enum op)op, m, len, rf, 1),
                                     GSS_S_COMPLETE);
                    assert_int_equal(fast_take(s[1 - dir].fast, (enum op)op, m, len, rm, 1),
                                     GSS_S_COMPLETE);
                    free(tf.p);
                    free(tm.p);
                    free(rf.p);
                    free(rm.p);
                    free(m);
                }
            }
        }
        copies_free(s);
    }
}

/* The initiator's sealing key of P and its first sequence number, from a lucid export of another
 * copy (the initiator seals with the acceptor's subkey when there is one). */
static void initiator_seal_key(const pair *p, const negio__kc_type **type, uint8_t *key,
                               uint64_t *seq)
{
    OM_uint32 min;
    gss_ctx_id_t c = GSS_C_NO_CONTEXT;
    gss_buffer_desc t = p->init;
    assert_int_equal(gss_import_sec_context(&min, &t, &c), GSS_S_COMPLETE);
    void *lucid = NULL;
    assert_int_equal(gss_krb5_export_lucid_sec_context(&min, &c, 1, &lucid), GSS_S_COMPLETE);
    const gss_krb5_lucid_context_v1_t *l = lucid;
    assert_int_equal(l->protocol, 1);
    assert_int_equal(l->cfx_kd.have_acceptor_subkey, p->mutual);
    const gss_krb5_lucid_key_t *k =
        l->cfx_kd.have_acceptor_subkey ? &l->cfx_kd.acceptor_subkey : &l->cfx_kd.ctx_key;
    *type = negio__kc_type_of((int32_t)k->type);
    assert_non_null(*type);
    memcpy(key, k->data, k->length);
    *seq = l->send_seq;
    gss_krb5_free_lucid_sec_context(&min, lucid);
}

/* A sealed token as another implementation may make it: FILLER bytes between the plaintext and
 * the sealed header, whose EC field is INNER_EC; the outer one says EC. */
static tok sealed_with_filler(const pair *p, const uint8_t *m, size_t len, unsigned filler,
                              unsigned ec, unsigned inner_ec)
{
    const negio__kc_type *t;
    uint8_t key[32];
    uint64_t seq;
    initiator_seal_key(p, &t, key, &seq);
    uint8_t hdr[16] = {0x05,
                       0x04,
                       (uint8_t)(NEGIO__CFX_SEALED | (p->mutual ? NEGIO__CFX_ACCEPTOR_SUBKEY : 0)),
                       0xff,
                       (uint8_t)(ec >> 8),
                       (uint8_t)ec,
                       0,
                       0};
    for (int i = 0; i < 8; i++)
        hdr[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
    size_t plain = 16 + len + filler + 16;
    tok o = {malloc(16 + plain + t->tag_len), 16 + plain + t->tag_len};
    memcpy(o.p, hdr, 16);
    uint8_t *q = o.p + 16;
    assert_int_equal(negio__kc_confounder(q), 0);
    memcpy(q + 16, m, len);
    memset(q + 16 + len, 'x', filler);
    memcpy(q + 16 + len + filler, hdr, 16);
    q[16 + len + filler + 4] = (uint8_t)(inner_ec >> 8);
    q[16 + len + filler + 5] = (uint8_t)inner_ec;
    negio__kc_key k;
    assert_int_equal(negio__kc_key_init(&k, t, key, 24, 1), 0);
    EVP_MD_CTX *w = EVP_MD_CTX_new();
    assert_int_equal(negio__kc_encrypt(&k, w, q, plain, q + plain), 0);
    EVP_MD_CTX_free(w);
    negio__kc_key_clear(&k);
    OPENSSL_cleanse(key, sizeof(key));
    return o;
}

static void filler_bytes_are_accepted_and_a_false_ec_refused_by_both(void **state)
{
    (void)state;
    for (int i = 0; i < NPAIRS; i++) {
        const pair *p = &pairs[i];
        uint8_t *m = message(21, 9);
        static const unsigned ecs[] = {1, 7, 16, 40, 300};
        for (size_t e = 0; e < sizeof(ecs) / sizeof(ecs[0]); e++) {
            unsigned f = ecs[e];
            side s[2];
            copies(p, s);
            tok t = sealed_with_filler(p, m, 21, f, f, f);
            both_say(p, &s[1], SEAL, m, 21, t, GSS_S_COMPLETE, "EC filler");
            free(t.p);
            copies_free(s);
            /* the outer EC says less than the sealed copy (truncation, CVE-2024-37370) */
            copies(p, s);
            t = sealed_with_filler(p, m, 21, f, f - 1, f);
            both_say(p, &s[1], SEAL, m, 21, t, GSS_S_DEFECTIVE_TOKEN, "EC not as sealed");
            free(t.p);
            /* an EC over the whole plaintext in both places (CVE-2024-37371) */
            t = sealed_with_filler(p, m, 21, f, f + 22, f + 22);
            both_say(p, &s[1], SEAL, m, 21, t, GSS_S_DEFECTIVE_TOKEN, "EC past the plaintext");
            free(t.p);
            copies_free(s);
        }
        free(m);
    }
}

/* ---- through negio's connectors --------------------------------------------------------- */

static int fast_engaged(negio_conn *c)
{
    return c->gss != NULL && c->gss->cfx != NULL;
}

/* An established pair of connectors on PATH with the fast path as asked on each side. */
static void connect_pair(test_pair *p, test_path path, int client_fast, int server_fast,
                         negio_profile profile, test_split split)
{
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    assert_int_equal(negio_config_set_kerberos_fast_path(cc, client_fast), NEGIO_OK);
    assert_int_equal(negio_config_set_kerberos_fast_path(sc, server_fast), NEGIO_OK);
    assert_int_equal(negio_config_set_profile(cc, profile), NEGIO_OK);
    assert_int_equal(negio_config_set_profile(sc, profile), NEGIO_OK);
    test_pair_init(p, cc, sc, split, 5);
    negio_config_del(cc);
    negio_config_del(sc);
    assert_true(test_pair_establish(p));
}

static void talk(test_path path, int client_fast, int server_fast, negio_profile profile)
{
    test_pair p;
    connect_pair(&p, path, client_fast, server_fast, profile, SPLIT_RANDOM);
    int kerberos = test_path_mech(path) != NEGIO_MECH_NTLM && path != PATH_NEG_NTLM;
    assert_int_equal(fast_engaged(p.client.conn), client_fast && kerberos);
    assert_int_equal(fast_engaged(p.server.conn), server_fast && kerberos);
    static const size_t lens[] = {0, 1, 17, 1000, 70000};
    static const negio_level levels[] = {NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL};
    int sent = 0;
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        for (int l = 0; l < 2; l++) {
            uint8_t *m = message(lens[k], (unsigned)k);
            assert_int_equal(negio_conn_write(p.client.conn, m, lens[k], levels[l]), NEGIO_OK);
            if (profile == NEGIO_PROFILE_NATIVE)
                assert_int_equal(negio_conn_write(p.server.conn, m, lens[k], levels[l]), NEGIO_OK);
            test_pair_run(&p);
            assert_int_equal(p.client.err, 0);
            assert_int_equal(p.server.err, 0);
            const test_event *e = test_side_message(&p.server, sent);
            assert_non_null(e);
            assert_int_equal(e->len, lens[k]);
            assert_int_equal(e->level, levels[l]);
            if (lens[k] > 0)
                assert_memory_equal(e->data, m, lens[k]);
            if (profile == NEGIO_PROFILE_NATIVE) {
                e = test_side_message(&p.client, sent);
                assert_non_null(e);
                assert_int_equal(e->len, lens[k]);
                if (lens[k] > 0)
                    assert_memory_equal(e->data, m, lens[k]);
            }
            sent++;
            free(m);
        }
    }
    test_pair_free(&p);
}

static void negio_with_and_without_the_fast_path_talk(void **state)
{
    (void)state;
    static const test_path paths[] = {PATH_KERBEROS, PATH_NEG_KERBEROS, PATH_NEG_NTLM};
    for (size_t i = 0; i < 3; i++) {
        for (int c = 0; c < 2; c++)
            for (int s = 0; s < 2; s++)
                talk(paths[i], c, s, NEGIO_PROFILE_NATIVE);
        if (paths[i] == PATH_NEG_NTLM)
            continue; /* gss-ntlmssp seals what gss-sample only signs */
        talk(paths[i], 1, 0, NEGIO_PROFILE_GSS_SAMPLE);
        talk(paths[i], 0, 1, NEGIO_PROFILE_GSS_SAMPLE);
    }
}

/* A signed frame whose MIC is a bare 16-byte token header: MIT's gss_verify_mic_iov would abort
 * the process on it (util_cksum.c: assert(rrc != 0 || trailer != NULL)), so negio's MIT path
 * refuses it first, like the fast path. */
static void a_bare_mic_header_is_refused_on_both_paths(void **state)
{
    (void)state;
    static const test_path paths[] = {PATH_KERBEROS, PATH_NEG_KERBEROS};
    for (size_t i = 0; i < 2; i++) {
        for (int fast = 0; fast < 2; fast++) {
            test_pair p;
            connect_pair(&p, paths[i], 1, fast, NEGIO_PROFILE_NATIVE, SPLIT_WHOLE);
            assert_int_equal(negio_conn_write(p.client.conn, "payload", 7, NEGIO_LEVEL_SIGN),
                             NEGIO_OK);
            size_t len = 0;
            uint8_t *f = test_take_output(p.client.conn, &len);
            /* header (8), MIC length (4), MIC, payload: keep 16 bytes of the MIC */
            uint32_t mlen = (uint32_t)f[8] << 24 | (uint32_t)f[9] << 16 | f[10] << 8 | f[11];
            assert_true(mlen > 16 && len == 12 + mlen + 7);
            memmove(f + 12 + 16, f + 12 + mlen, 7);
            f[11] = 16, f[10] = f[9] = f[8] = 0;
            uint32_t body = 4 + 16 + 7;
            f[4] = 0, f[5] = 0, f[6] = 0, f[7] = (uint8_t)body;
            assert_int_equal(negio_conn_feed(p.server.conn, f, 8 + body), NEGIO_OK);
            free(f);
            test_side_drain(&p.server);
            assert_int_equal(p.server.err, NEGIO_ERR_INTEGRITY);
            assert_int_equal(test_side_count(&p.server, NEGIO_EV_MESSAGE), 0);
            test_pair_free(&p);
        }
    }
}

/* The heap N established connector pairs hold (client and server in this process), after a
 * signed and a sealed message each way, so that every key a connection uses is made. */
static size_t heap_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#define MEM_PAIRS 200

static double bytes_per_connection(int fast)
{
    static test_pair p[MEM_PAIRS];
    connect_pair(&p[0], PATH_KERBEROS, fast, fast, NEGIO_PROFILE_NATIVE, SPLIT_WHOLE);
    test_pair_free(&p[0]); /* credentials, caches and OpenSSL's tables once */
    size_t before = heap_now();
    for (int i = 0; i < MEM_PAIRS; i++) {
        connect_pair(&p[i], PATH_KERBEROS, fast, fast, NEGIO_PROFILE_NATIVE, SPLIT_WHOLE);
        for (int l = NEGIO_LEVEL_SIGN; l <= NEGIO_LEVEL_SEAL; l++) {
            assert_int_equal(negio_conn_write(p[i].client.conn, "x", 1, (negio_level)l), 0);
            assert_int_equal(negio_conn_write(p[i].server.conn, "y", 1, (negio_level)l), 0);
        }
        test_pair_run(&p[i]);
        assert_int_equal(p[i].client.err, 0);
        assert_int_equal(p[i].server.err, 0);
        assert_int_equal(fast_engaged(p[i].client.conn), fast);
    }
    size_t after = heap_now();
    for (int i = 0; i < MEM_PAIRS; i++)
        test_pair_free(&p[i]);
    return ((double)after - (double)before) / (2.0 * MEM_PAIRS);
}

/* What a connection holds on the fast path against MIT's path: the fast path's keys and OpenSSL
 * contexts replace MIT's context (and its krb5_context); the difference is printed for
 * docs/PERFORMANCE.md and must stay within 2 KiB either way of the per-connection budget. */
static void a_connection_on_the_fast_path_holds_no_more_memory(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip(); /* the sanitizers' allocators do not report through mallinfo2 */
#endif
    double mit = bytes_per_connection(0), fast = bytes_per_connection(1);
    fprintf(stderr,
            "heap per established Kerberos connection (client and server halves): MIT's "
            "path %.0f bytes, fast path %.0f bytes (%+.0f)\n",
            mit, fast, fast - mit);
    assert_true(fast <= mit + 2048);
}

static void the_environment_switches_it_off(void **state)
{
    (void)state;
    /* read when a connection's provider is made, at its first step */
    static const char *const values[] = {"0", "off", "No", "FALSE", "1", "yes", ""};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        setenv("NEGIO_KRB5_FAST_PATH", values[i], 1);
        test_pair p;
        connect_pair(&p, PATH_KERBEROS, 1, 1, NEGIO_PROFILE_NATIVE, SPLIT_WHOLE);
        int on = i >= 4; /* only words for "off" count: anything else leaves the default */
        assert_int_equal(fast_engaged(p.client.conn), on);
        assert_int_equal(fast_engaged(p.server.conn), on);
        test_pair_free(&p);
    }
    unsetenv("NEGIO_KRB5_FAST_PATH");
}

int main(void)
{
    if (test_transport_get() != TRANSPORT_PLAIN) {
        fprintf(stderr, "the fast path's tests run on the bare stream only\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_cross_both_ways_for_every_enctype_and_size),
        cmocka_unit_test(every_flip_truncation_and_extension_is_refused_alike),
        cmocka_unit_test(replays_reorders_drops_and_reflections_are_refused_alike),
        cmocka_unit_test(context_flags_decide_the_checks_as_in_mit),
        cmocka_unit_test(rotated_tokens_are_accepted_by_both),
        cmocka_unit_test(filler_bytes_are_accepted_and_a_false_ec_refused_by_both),
        cmocka_unit_test(negio_with_and_without_the_fast_path_talk),
        cmocka_unit_test(a_bare_mic_header_is_refused_on_both_paths),
        cmocka_unit_test(a_connection_on_the_fast_path_holds_no_more_memory),
        cmocka_unit_test(the_environment_switches_it_off),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
