/* Fuzz target: the Kerberos fast path's token parser and checks (src/gss/cfx.c), with fixed keys
 * and no realm. First byte: bits 0-1 the enctype (17-20), bit 2 an acceptor subkey asserted,
 * bits 3-4 the replay and sequence flags, bits 5-7 the mode; second byte: bit 0 who sends (set:
 * the acceptor). Every input starts from fresh copies of a context pair made at start-up.
 *  0, 1: the rest is a Wrap token (0) or, after a length byte and that many message bytes, a MIC
 *     token (1), given as it is to the receiver: it must be refused, or, only if it is a genuine
 *     token (seeds made with these keys, and what the fuzzer derives from them), accepted with a
 *     plaintext no longer than the token; a second delivery is never accepted;
 *  2, 3, 4: the fields of a token the target builds itself with the sender's real keys: a sealed
 *     Wrap token (2), a Wrap token in the clear (3), a MIC token (4), with fuzzed flags, EC, RRC,
 *     sequence number, filler bytes and (sealed) a fuzzed copy of the header inside; a model of
 *     RFC 4121 section 4.2 and MIT's checks, written here apart from cfx.c, says what the
 *     receiver must answer, down to the major status and the plaintext;
 *  5, 6, 7: the sender makes a genuine token of the rest (sealed, in the clear, MIC); the receiver
 *     must accept it as it is and with its body rotated (RRC) by a fuzzed amount, and refuse it
 *     with one fuzzed bit flipped outside the RRC field.
 * The seeds (tests/fuzz/corpus/fuzz_cfx) are written by this target itself:
 * NEGIO_FUZZ_CFX_SEEDS=DIR fuzz_cfx writes genuine tokens of every enctype for modes 0 and 1 and
 * an input of each other mode into DIR, and exits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gssapi/gssapi.h>
#include <openssl/evp.h>

#include "fuzz/fuzz_support.h"
#include "gss/cfx.h"
#include "gss/kcrypto.h"

static const uint8_t ctx_key[32] = {
    0x8d, 0x51, 0x3e, 0x12, 0x07, 0xa9, 0x44, 0xc0, 0x5b, 0x6f, 0x21, 0x90, 0xee, 0x03, 0x7c, 0xd8,
    0x36, 0x1a, 0xf5, 0x62, 0x4e, 0xb7, 0x09, 0x83, 0x2c, 0xd1, 0x58, 0x6a, 0x13, 0xfe, 0x47, 0x9b};
static const uint8_t acc_key[32] = {
    0x2f, 0xc4, 0x71, 0x0a, 0x95, 0x38, 0xe6, 0x4d, 0xb2, 0x1c, 0x67, 0xfa, 0x80, 0x3d, 0x59, 0x06,
    0xcb, 0x74, 0x1e, 0xa3, 0x42, 0xd9, 0x8f, 0x65, 0x30, 0xbe, 0x17, 0x5c, 0xe2, 0x49, 0x01, 0x7d};
static const int32_t enctypes[4] = {17, 18, 19, 20};
#define INIT_SEQ 1000u                /* the initiator's first sequence number */
#define ACC_SEQ 0xfffffffffffffff0ull /* the acceptor's: its numbers wrap past 2^64 */

/* [enctype][subkey][flags][0 initiator, 1 acceptor] */
static negio__cfx *templates[4][2][4][2];

static void write_seed(const char *dir, const char *name, const uint8_t *head, size_t hlen,
                       const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(head, 1, hlen, f) != hlen || (n > 0 && fwrite(p, 1, n, f) != n) ||
        fclose(f) != 0)
        abort();
}

/* Genuine tokens from the initiator's templates for the raw modes (0: wrap, sealed and clear;
 * 1: a MIC over a 10-byte message), and an input for each other mode. */
static void write_seeds(const char *dir)
{
    static const uint8_t msg[10] = "seed msg!!";
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        abort();
    for (int e = 0; e < 4; e++) {
        for (int sub = 0; sub < 2; sub++) {
            for (int kind = 0; kind < 3; kind++) {
                negio__cfx *c = NULL;
                negio__buf b = {0};
                int why;
                if (negio__cfx_dup(&c, templates[e][sub][3][0]) != 0)
                    abort();
                negio__cfx_piece piece = {msg, sizeof(msg)};
                uint32_t st = kind == 2 ? negio__cfx_get_mic(c, &piece, 1, &b, &why)
                                        : negio__cfx_wrap(c, kind == 0, msg, sizeof(msg), &b, &why);
                if (st != GSS_S_COMPLETE)
                    abort();
                uint8_t head[13] = {(uint8_t)(e | sub << 2 | 3 << 3 | (kind == 2 ? 1 : 0) << 5), 0,
                                    sizeof(msg)};
                size_t hlen = 2;
                if (kind == 2) {
                    memcpy(head + 3, msg, sizeof(msg));
                    hlen = 13;
                }
                char name[64];
                snprintf(name, sizeof(name), "raw-%d-%s%s", (int)enctypes[e],
                         kind == 0   ? "sealed"
                         : kind == 1 ? "clear"
                                     : "mic",
                         sub ? "-subkey" : "");
                write_seed(dir, name, head, hlen, negio__buf_data(&b), negio__buf_size(&b));
                negio__buf_free(&b);
                negio__cfx_del(c);
            }
        }
    }
    /* modes 2-7 for aes256-cts-hmac-sha1-96 with both flags: the fields (as a genuine sender
     * would put them), then a message */
    for (int mode = 2; mode <= 7; mode++) {
        uint8_t head[2] = {(uint8_t)(1 | 3 << 3 | mode << 5), 0};
        uint8_t fields[14] = {0};
        char name[32];
        snprintf(name, sizeof(name), "mode-%d", mode);
        uint8_t input[sizeof(fields) + sizeof(msg)];
        memcpy(input, fields, sizeof(fields));
        memcpy(input + sizeof(fields), msg, sizeof(msg));
        write_seed(dir, name, head, sizeof(head), input,
                   mode <= 4 ? sizeof(input) : sizeof(msg) + 4);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    for (int e = 0; e < 4; e++) {
        size_t len = negio__kc_type_of(enctypes[e])->key_len;
        for (int sub = 0; sub < 2; sub++) {
            for (int f = 0; f < 4; f++) {
                for (int side = 0; side < 2; side++) {
                    negio__cfx_params p = {
                        .initiator = side == 0,
                        .ctx_enctype = enctypes[e],
                        .ctx_key = ctx_key,
                        .ctx_key_len = len,
                        .acceptor_subkey = sub,
                        .acc_enctype = enctypes[e],
                        .acc_key = acc_key,
                        .acc_key_len = len,
                        .send_seq = side == 0 ? INIT_SEQ : ACC_SEQ,
                        .recv_seq = side == 0 ? ACC_SEQ : INIT_SEQ,
                        .do_replay = f & 1,
                        .do_sequence = (f >> 1) & 1,
                    };
                    if (negio__cfx_new(&templates[e][sub][f][side], &p) != 0)
                        abort();
                }
            }
        }
    }
    const char *seeds = getenv("NEGIO_FUZZ_CFX_SEEDS");
    if (seeds != NULL) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static unsigned take8(input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static unsigned take16(input *in)
{
    unsigned hi = take8(in);
    return hi << 8 | take8(in);
}

static int refused(uint32_t st)
{
    return st == GSS_S_DEFECTIVE_TOKEN || st == GSS_S_BAD_SIG || st == GSS_S_DUPLICATE_TOKEN ||
           st == GSS_S_OLD_TOKEN || st == GSS_S_UNSEQ_TOKEN || st == GSS_S_GAP_TOKEN ||
           st == GSS_S_CALL_INACCESSIBLE_READ;
}

/* The receiver's answer to TOK: refused with a known status, or accepted; with the plaintext
 * (if a wrap) in *OUT, which the caller releases. */
static uint32_t receive(negio__cfx *rcv, int mic, const uint8_t *m, size_t mlen, const uint8_t *tok,
                        size_t len, negio__cfx_plain *out, int *conf)
{
    int why = -1;
    uint32_t st;
    memset(out, 0, sizeof(*out));
    *conf = -1;
    if (mic) {
        negio__cfx_piece piece = {m, mlen};
        st = negio__cfx_verify_mic(rcv, &piece, 1, tok, len, &why);
    } else {
        st = negio__cfx_unwrap(rcv, tok, len, out, conf, &why);
        if (st != GSS_S_COMPLETE && (out->mem != NULL || out->len != 0))
            abort(); /* nothing comes out of a refused token */
    }
    if (st != GSS_S_COMPLETE && !refused(st))
        abort();
    if (why != NEGIO__CFX_OK)
        abort(); /* never short of memory or of OpenSSL here */
    return st;
}

/* ---- 0, 1: raw tokens ----------------------------------------------------------------- */

static void raw(negio__cfx *rcv, int mic, int flags, input in)
{
    const uint8_t *m = NULL;
    size_t mlen = 0;
    if (mic) {
        mlen = take8(&in);
        if (mlen > in.n)
            mlen = in.n;
        m = in.p;
        in.p += mlen;
        in.n -= mlen;
    }
    negio__cfx_plain out;
    int conf;
    uint32_t st = receive(rcv, mic, m, mlen, in.p, in.n, &out, &conf);
    if (st == GSS_S_COMPLETE) {
        if (!mic && (out.len > in.n || conf != ((in.p[2] & NEGIO__CFX_SEALED) != 0)))
            abort();
        negio__cfx_plain_release(&out);
        /* a replay passes only where the context checks neither replays nor order */
        if (receive(rcv, mic, m, mlen, in.p, in.n, &out, &conf) == GSS_S_COMPLETE && flags != 0)
            abort();
    }
    negio__cfx_plain_release(&out);
}

/* ---- 2, 3, 4: tokens built here, judged by a model ------------------------------------- */

/* MIT's g_seqstate_check on a fresh window (nothing received yet) whose first number is BASE. */
static uint32_t model_first_seq(uint64_t seq, uint64_t base, int flags)
{
    if ((flags & 3) == 0)
        return GSS_S_COMPLETE;
    return seq - base != 0 && (flags & 2) ? GSS_S_GAP_TOKEN : GSS_S_COMPLETE;
}

/* A byte as a small signed offset, mostly 0 (the expected number), -32 to 31 otherwise. */
static uint64_t near(unsigned byte)
{
    int d = (int)(byte & 0xff);
    if (d & 0x80)
        d -= 256;
    return (uint64_t)(int64_t)(d / 4);
}

static void put_seq(uint8_t *h, uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static void built(negio__cfx *rcv, int e, int sub, int flags, int sender_acc, int kind, input in)
{
    const negio__kc_type *t = negio__kc_type_of(enctypes[e]);
    /* the fields of the token */
    unsigned tok_flags = take8(&in), ec = take16(&in), rrc = take16(&in);
    unsigned seq_delta = take8(&in), filler_len = take8(&in), sel = take8(&in);
    unsigned inner_flags = take8(&in), inner_ec = take16(&in), inner_seq_delta = take8(&in);
    unsigned tail = take8(&in);        /* MIC: bytes 3-7; sealed: the inner TOK_ID's second byte */
    int use_subkey = sub && (sel & 1); /* the key the sender really used */
    if ((sel & 2) == 0) {              /* most tokens: the fields a genuine sender would put */
        tok_flags = (sender_acc ? NEGIO__CFX_SENT_BY_ACCEPTOR : 0) |
                    (kind == 2 ? NEGIO__CFX_SEALED : 0) |
                    (use_subkey ? NEGIO__CFX_ACCEPTOR_SUBKEY : 0);
        inner_flags = tok_flags;
        inner_ec = ec;
        inner_seq_delta = seq_delta;
    }
    uint64_t base = sender_acc ? ACC_SEQ : INIT_SEQ;
    uint64_t seq = base + near(seq_delta), inner_seq = base + near(inner_seq_delta);
    const uint8_t *m = in.p;
    size_t mlen = in.n;
    const uint8_t *key = use_subkey ? acc_key : ctx_key;
    uint32_t usage = (sender_acc ? 22u : 24u) + (kind == 4 ? 1u : 0u);

    uint8_t h[16] = {kind == 4 ? 0x04 : 0x05, 0x04,        (uint8_t)tok_flags,  0xff,
                     (uint8_t)(ec >> 8),      (uint8_t)ec, (uint8_t)(rrc >> 8), (uint8_t)rrc};
    put_seq(h, seq);
    if (kind == 4) {
        /* MIC: the filler bytes 3-7 from the input only when asked */
        memset(h + 3, 0xff, 5);
        if (sel & 4)
            h[3 + tail % 5] = (uint8_t)(tail >> 3);
    }
    size_t body_len;
    uint8_t *tok;
    EVP_MD_CTX *w = EVP_MD_CTX_new();
    if (w == NULL)
        abort();
    if (kind == 2) {
        size_t plain = 16 + mlen + filler_len + 16;
        body_len = plain + t->tag_len;
        tok = malloc(16 + body_len);
        uint8_t *q = tok + 16;
        if (tok == NULL || negio__kc_confounder(q) < 0)
            abort();
        memcpy(q + 16, m, mlen);
        memset(q + 16 + mlen, 'f', filler_len);
        uint8_t *alt = q + 16 + mlen + filler_len;
        memcpy(alt, h, 16);
        alt[1] = (sel & 8) ? (uint8_t)tail : 0x04;
        alt[2] = (uint8_t)inner_flags;
        alt[4] = (uint8_t)(inner_ec >> 8), alt[5] = (uint8_t)inner_ec;
        alt[6] = alt[7] = 0;
        put_seq(alt, inner_seq);
        negio__kc_key k;
        if (negio__kc_key_init(&k, t, key, usage, 1) < 0 ||
            negio__kc_encrypt(&k, w, q, plain, q + plain) < 0)
            abort();
        negio__kc_key_clear(&k);
    } else {
        /* a checksum over the message and the header, EC and RRC 0 for a Wrap token */
        uint8_t hz[16], tag[NEGIO__KC_MAX_TAG];
        memcpy(hz, h, 16);
        if (kind == 3)
            memset(hz + 4, 0, 4);
        negio__kc_mac mac;
        if (negio__kc_mac_init_checksum(&mac, t, key, usage) < 0 ||
            negio__kc_mac_start(&mac, w) < 0 || negio__kc_mac_update(w, m, mlen) < 0 ||
            negio__kc_mac_update(w, hz, 16) < 0 || negio__kc_mac_finish(&mac, w, tag) < 0)
            abort();
        negio__kc_mac_clear(&mac);
        body_len = (kind == 3 ? mlen : 0) + t->tag_len;
        tok = malloc(16 + body_len + 1);
        if (tok == NULL)
            abort();
        if (kind == 3)
            memcpy(tok + 16, m, mlen);
        memcpy(tok + 16 + body_len - t->tag_len, tag, t->tag_len);
    }
    EVP_MD_CTX_free(w);
    memcpy(tok, h, 16);
    size_t len = 16 + body_len;
    /* RFC 4121 section 4.2.5: the sender rotates the body right by RRC */
    if (kind != 4 && body_len > 0 && rrc % body_len != 0) {
        uint8_t *turned = malloc(body_len);
        if (turned == NULL)
            abort();
        for (size_t i = 0; i < body_len; i++)
            turned[(i + rrc) % body_len] = tok[16 + i];
        memcpy(tok + 16, turned, body_len);
        free(turned);
    }

    /* the model: RFC 4121 section 4.2 with MIT's order of checks (written apart from cfx.c) */
    uint32_t want;
    int rcv_subkey = sub && (tok_flags & NEGIO__CFX_ACCEPTOR_SUBKEY);
    int key_ok = rcv_subkey == use_subkey;
    int dir_ok = (tok_flags & NEGIO__CFX_SENT_BY_ACCEPTOR) == (sender_acc ? 1u : 0u);
    size_t out_len = 0;
    if (!dir_ok) {
        want = GSS_S_BAD_SIG;
    } else if (kind == 4) {
        int filler_ok = memcmp(h + 3, "\xff\xff\xff\xff\xff", 5) == 0;
        want = !filler_ok ? GSS_S_DEFECTIVE_TOKEN
               : !key_ok  ? GSS_S_BAD_SIG
                          : model_first_seq(seq, base, flags);
    } else if (kind == 2 && (tok_flags & NEGIO__CFX_SEALED)) {
        size_t plen = mlen + filler_len + 16;
        int inner_ok = (sel & 8 ? (tail & 0xff) == 0x04 : 1) && inner_flags == tok_flags &&
                       inner_ec == ec && inner_seq == seq;
        want = !key_ok                  ? GSS_S_BAD_SIG
               : plen < 16 + (size_t)ec ? GSS_S_DEFECTIVE_TOKEN
               : !inner_ok              ? GSS_S_DEFECTIVE_TOKEN
                                        : model_first_seq(seq, base, flags);
        out_len = plen - ec - 16;
    } else if (kind == 3 && !(tok_flags & NEGIO__CFX_SEALED)) {
        want = (size_t)ec + 16 > len         ? GSS_S_DEFECTIVE_TOKEN
               : ec != t->tag_len || !key_ok ? GSS_S_BAD_SIG
                                             : model_first_seq(seq, base, flags);
        out_len = mlen;
    } else {
        /* a sealed token whose flag says clear, or the reverse: never accepted */
        want = 0xffffffff;
    }

    negio__cfx_plain out;
    int conf;
    uint32_t st = receive(rcv, kind == 4, m, mlen, tok, len, &out, &conf);
    if (want == 0xffffffff ? st == GSS_S_COMPLETE : st != want) {
        fprintf(stderr, "kind %d flags %02x ec %u rrc %u: the model says 0x%x, cfx.c 0x%x\n", kind,
                tok_flags, ec, rrc, (unsigned)want, (unsigned)st);
        abort();
    }
    if (st == GSS_S_COMPLETE && kind != 4) {
        /* the message, then the filler up to what EC leaves */
        if (out.len != out_len || conf != (kind == 2) ||
            (mlen > 0 && memcmp(out.msg, m, out_len < mlen ? out_len : mlen) != 0))
            abort();
        for (size_t i = mlen; i < out_len; i++)
            if (out.msg[i] != 'f')
                abort();
    }
    negio__cfx_plain_release(&out);
    free(tok);
}

/* ---- 5, 6, 7: genuine tokens ----------------------------------------------------------- */

static void genuine(negio__cfx *snd, negio__cfx *rcv, int kind, input in)
{
    unsigned rrc = take16(&in), flip = take16(&in);
    const uint8_t *m = in.p;
    size_t mlen = in.n;
    negio__buf b = {0};
    int why = -1;
    uint32_t st;
    if (kind == 7) {
        negio__cfx_piece pieces[2] = {{m, mlen / 2}, {m + mlen / 2, mlen - mlen / 2}};
        st = negio__cfx_get_mic(snd, pieces, 2, &b, &why);
    } else {
        st = negio__cfx_wrap(snd, kind == 5, m, mlen, &b, &why);
    }
    if (st != GSS_S_COMPLETE)
        abort();
    size_t len = negio__buf_size(&b);
    uint8_t *tok = malloc(len);
    if (tok == NULL)
        abort();
    memcpy(tok, negio__buf_data(&b), len);
    negio__buf_free(&b);

    /* one bit flipped outside RRC (which no check covers) is refused */
    size_t bit = flip % (len * 8);
    if (bit / 8 != 6 && bit / 8 != 7) {
        negio__cfx_plain out;
        int conf;
        tok[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (receive(rcv, kind == 7, m, mlen, tok, len, &out, &conf) == GSS_S_COMPLETE)
            abort();
        tok[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* rotated (Wrap tokens), then accepted */
    if (kind != 7) {
        size_t blen = len - 16;
        uint8_t *turned = malloc(blen);
        if (turned == NULL)
            abort();
        for (size_t i = 0; i < blen; i++)
            turned[(i + rrc) % blen] = tok[16 + i];
        memcpy(tok + 16, turned, blen);
        free(turned);
        tok[6] = (uint8_t)(rrc >> 8), tok[7] = (uint8_t)rrc;
    }
    negio__cfx_plain out;
    int conf;
    if (receive(rcv, kind == 7, m, mlen, tok, len, &out, &conf) != GSS_S_COMPLETE)
        abort();
    if (kind != 7 &&
        (out.len != mlen || (mlen > 0 && memcmp(out.msg, m, mlen) != 0) || conf != (kind == 5)))
        abort();
    negio__cfx_plain_release(&out);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    if (size < 2)
        return 0;
    int e = data[0] & 3, sub = (data[0] >> 2) & 1, flags = (data[0] >> 3) & 3, mode = data[0] >> 5;
    int sender_acc = data[1] & 1;
    negio__cfx *snd = NULL, *rcv = NULL;
    if (negio__cfx_dup(&snd, templates[e][sub][flags][sender_acc]) != 0 ||
        negio__cfx_dup(&rcv, templates[e][sub][flags][!sender_acc]) != 0)
        abort();
    input in = {data + 2, size - 2};
    if (mode <= 1)
        raw(rcv, mode == 1, flags, in);
    else if (mode <= 4)
        built(rcv, e, sub, flags, sender_acc, mode, in);
    else
        genuine(snd, rcv, mode, in);
    negio__cfx_del(snd);
    negio__cfx_del(rcv);
    return 0;
}
