/* RFC 4121 per-message tokens on kcrypto.c; see cfx.h. The order of the checks on a received
 * token follows MIT's gss_krb5int_unseal_token_v3 (k5sealv3.c), so that a token both refuse is
 * refused with the same major status. */
#include <errno.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/config.h"
#include "gss/cfx.h"
#include "gss/kcrypto.h"

enum { SEND = 0, RECV = 1 };

/* One base key and what is made from it, for each direction: the keys of a direction differ by
 * their usage (RFC 4121 section 2: the sender's role picks 22/23 or 24/25). */
struct keyset {
    const negio__kc_type *type; /* NULL: no such key, or an enctype not implemented */
    uint8_t base[NEGIO__KC_MAX_KEY];
    negio__kc_key seal[2];    /* Ke and Ki of the seal usage: sealed Wrap tokens */
    negio__kc_mac wrapsum[2]; /* Kc of the seal usage: Wrap tokens without confidentiality */
    negio__kc_mac mic[2];     /* Kc of the sign usage: MIC tokens */
};

/* MIT's g_seqstate (util_seqstate.c) for 64-bit sequence numbers: the expected next number and a
 * map of the 64 before it, relative to the first one. */
struct seqstate {
    uint64_t base, next, recvmap;
    int do_replay, do_sequence;
};

struct negio__cfx {
    int initiator;
    int acceptor_subkey;
    struct keyset keys[2]; /* [0] the context key, [1] the acceptor's subkey */
    uint64_t send_seq;
    struct seqstate recv;
    EVP_MD_CTX *work; /* the hash state every HMAC of this context runs in */
};

int negio__cfx_supported(int32_t enctype)
{
    return negio__kc_type_of(enctype) != NULL;
}

static int keyset_set(struct keyset *k, int32_t enctype, const uint8_t *key, size_t len)
{
    const negio__kc_type *t = negio__kc_type_of(enctype);
    if (t == NULL || len != t->key_len || key == NULL)
        return -1;
    k->type = t;
    memcpy(k->base, key, len);
    return 0;
}

int negio__cfx_new(negio__cfx **out, const negio__cfx_params *p)
{
    *out = NULL;
    negio__cfx *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    c->initiator = p->initiator != 0;
    c->acceptor_subkey = p->acceptor_subkey != 0;
    int ctx_ok = keyset_set(&c->keys[0], p->ctx_enctype, p->ctx_key, p->ctx_key_len) == 0;
    int acc_ok = c->acceptor_subkey &&
                 keyset_set(&c->keys[1], p->acc_enctype, p->acc_key, p->acc_key_len) == 0;
    /* this side's own tokens are protected with the acceptor's subkey once there is one */
    if (c->acceptor_subkey ? !acc_ok : !ctx_ok) {
        negio__cfx_del(c);
        return NEGIO_ERR_INVALID;
    }
    c->send_seq = p->send_seq;
    c->recv = (struct seqstate){p->recv_seq, 0, 0, p->do_replay != 0, p->do_sequence != 0};
    *out = c;
    return 0;
}

int negio__cfx_dup(negio__cfx **out, const negio__cfx *c)
{
    negio__cfx *d = negio__calloc(1, sizeof(*d));
    *out = d;
    if (d == NULL)
        return NEGIO_ERR_NOMEM;
    d->initiator = c->initiator;
    d->acceptor_subkey = c->acceptor_subkey;
    for (int i = 0; i < 2; i++) {
        d->keys[i].type = c->keys[i].type;
        memcpy(d->keys[i].base, c->keys[i].base, sizeof(d->keys[i].base));
    }
    d->send_seq = c->send_seq;
    d->recv = c->recv;
    return 0;
}

void negio__cfx_del(negio__cfx *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        for (int d = 0; d < 2; d++) {
            negio__kc_key_clear(&c->keys[i].seal[d]);
            negio__kc_mac_clear(&c->keys[i].wrapsum[d]);
            negio__kc_mac_clear(&c->keys[i].mic[d]);
        }
    }
    EVP_MD_CTX_free(c->work);
    OPENSSL_cleanse(c, sizeof(*c));
    negio__free(c);
}

int32_t negio__cfx_enctype(const negio__cfx *c)
{
    const struct keyset *k = &c->keys[c->acceptor_subkey ? 1 : 0];
    return k->type != NULL ? k->type->enctype : 0;
}

uint64_t negio__cfx_recv_next(const negio__cfx *c)
{
    return c->recv.base + c->recv.next; /* wraps, as the numbers do */
}

size_t negio__cfx_mic_length(const negio__cfx *c)
{
    const struct keyset *k = &c->keys[c->acceptor_subkey ? 1 : 0];
    return NEGIO__CFX_HEADER + (k->type != NULL ? k->type->tag_len : 0);
}

/* ---- keys, made on first use ------------------------------------------------------------ */

/* The key usage of RFC 4121 section 2 for tokens travelling in direction DIR: the sender's role
 * decides (22 acceptor seal, 23 acceptor sign, 24 initiator seal, 25 initiator sign). */
static uint32_t usage(const negio__cfx *c, int dir, int sign)
{
    int from_initiator = dir == SEND ? c->initiator : !c->initiator;
    return (from_initiator ? 24u : 22u) + (sign ? 1u : 0u);
}

static EVP_MD_CTX *work(negio__cfx *c)
{
    if (c->work == NULL)
        c->work = EVP_MD_CTX_new();
    return c->work;
}

static negio__kc_key *seal_key(negio__cfx *c, struct keyset *k, int dir)
{
    if (k->type == NULL)
        return NULL;
    if (k->seal[dir].cipher == NULL &&
        negio__kc_key_init(&k->seal[dir], k->type, k->base, usage(c, dir, 0), dir == SEND) < 0)
        return NULL;
    return &k->seal[dir];
}

static negio__kc_mac *sum_key(negio__cfx *c, struct keyset *k, int dir, int sign)
{
    if (k->type == NULL)
        return NULL;
    negio__kc_mac *m = sign ? &k->mic[dir] : &k->wrapsum[dir];
    if (m->inner == NULL &&
        negio__kc_mac_init_checksum(m, k->type, k->base, usage(c, dir, sign)) < 0)
        return NULL;
    return m;
}

/* The keys this side's tokens use, and the flags they carry (RFC 4121 section 4.2.2). */
static struct keyset *send_keys(negio__cfx *c, uint8_t *flags)
{
    *flags = (uint8_t)((c->initiator ? 0 : NEGIO__CFX_SENT_BY_ACCEPTOR) |
                       (c->acceptor_subkey ? NEGIO__CFX_ACCEPTOR_SUBKEY : 0));
    return &c->keys[c->acceptor_subkey ? 1 : 0];
}

/* The keys a received token with FLAGS was made with: the acceptor's subkey when the context has
 * one and the token says so; otherwise the context key (MIT ignores the flag on a context without
 * an acceptor subkey, and the acceptor may have received tokens made before the subkey). */
static struct keyset *recv_keys(negio__cfx *c, uint8_t flags)
{
    return &c->keys[c->acceptor_subkey && (flags & NEGIO__CFX_ACCEPTOR_SUBKEY) ? 1 : 0];
}

/* ---- the sequence window ---------------------------------------------------------------- */

/* g_seqstate_check: where SEQ lies against what was received, with the context's flags. */
static uint32_t seq_check(struct seqstate *s, uint64_t seq)
{
    if (!s->do_replay && !s->do_sequence)
        return GSS_S_COMPLETE;
    uint64_t rel = seq - s->base; /* wraps, as the relative number is meant to */
    if (rel >= s->next) {
        uint64_t gap = rel - s->next;
        /* MIT shifts by gap + 1 even when that is 64 or more (undefined in C); all the window
         * holds then is the new number */
        s->recvmap = gap >= 63 ? 1 : (s->recvmap << (gap + 1)) | 1;
        s->next = rel + 1;
        return gap > 0 && s->do_sequence ? GSS_S_GAP_TOKEN : GSS_S_COMPLETE;
    }
    uint64_t back = s->next - rel;
    if (back > 64)
        return s->do_sequence ? GSS_S_UNSEQ_TOKEN : GSS_S_OLD_TOKEN;
    uint64_t bit = (uint64_t)1 << (back - 1);
    if (s->do_replay && (s->recvmap & bit))
        return GSS_S_DUPLICATE_TOKEN;
    s->recvmap |= bit;
    return s->do_sequence ? GSS_S_UNSEQ_TOKEN : GSS_S_COMPLETE;
}

/* ---- making tokens ---------------------------------------------------------------------- */

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* RFC 4121 section 4.2.6: TOK_ID, flags, a filler byte, then EC and RRC (Wrap) or four more
 * filler bytes (MIC: 0xFF in both 16-bit fields), and the sequence number. */
static void header(uint8_t *h, unsigned tok_id, uint8_t flags, unsigned ec, unsigned rrc,
                   uint64_t seq)
{
    put16(h, tok_id);
    h[2] = flags;
    h[3] = 0xff;
    put16(h + 4, ec);
    put16(h + 6, rrc);
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static uint32_t fail(int *why, int cause, uint32_t major)
{
    if (why != NULL)
        *why = cause;
    return major;
}

/* The checksum of the pieces followed by HDR, into TAG. 0 or -1. */
static int checksum(negio__cfx *c, const negio__kc_mac *m, const negio__cfx_piece *pieces, size_t n,
                    const uint8_t *hdr, uint8_t *tag)
{
    EVP_MD_CTX *w = work(c);
    if (w == NULL || negio__kc_mac_start(m, w) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (negio__kc_mac_update(w, pieces[i].p, pieces[i].len) < 0)
            return -1;
    if (negio__kc_mac_update(w, hdr, NEGIO__CFX_HEADER) < 0)
        return -1;
    return negio__kc_mac_finish(m, w, tag);
}

uint32_t negio__cfx_get_mic(negio__cfx *c, const negio__cfx_piece *pieces, size_t n,
                            negio__buf *out, int *why)
{
    uint8_t flags, hdr[NEGIO__CFX_HEADER], tag[NEGIO__KC_MAX_TAG];
    struct keyset *k = send_keys(c, &flags);
    negio__kc_mac *m = sum_key(c, k, SEND, 1);
    /* section 4.2.6.1: the checksum covers the message, then the token's header */
    header(hdr, NEGIO__CFX_TOK_MIC, flags, 0xffff, 0xffff, c->send_seq);
    if (m == NULL || checksum(c, m, pieces, n, hdr, tag) < 0)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_FAILURE);
    if (negio__buf_reserve(out, sizeof(hdr) + k->type->tag_len) < 0)
        return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
    negio__buf_append(out, hdr, sizeof(hdr));
    negio__buf_append(out, tag, k->type->tag_len);
    c->send_seq++;
    return fail(why, NEGIO__CFX_OK, GSS_S_COMPLETE);
}

static uint32_t wrap_sealed(negio__cfx *c, const uint8_t *msg, size_t len, negio__buf *out,
                            int *why)
{
    uint8_t flags, hdr[NEGIO__CFX_HEADER];
    struct keyset *k = send_keys(c, &flags);
    negio__kc_key *key = seal_key(c, k, SEND);
    EVP_MD_CTX *w = work(c);
    if (key == NULL || w == NULL)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_FAILURE);
    /* section 4.2.4: {"header" | encrypt(plaintext | filler | "header")}; EC 0 (AES-CTS needs
     * no filler) and RRC 0, as MIT sends them */
    size_t plain = NEGIO__KC_CONFOUNDER + len + NEGIO__CFX_HEADER, tl = k->type->tag_len;
    if (len > SIZE_MAX / 2 || negio__buf_reserve(out, NEGIO__CFX_HEADER + plain + tl) < 0)
        return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
    header(hdr, NEGIO__CFX_TOK_WRAP, (uint8_t)(flags | NEGIO__CFX_SEALED), 0, 0, c->send_seq);
    uint8_t *t = out->p + out->len, *p = t + NEGIO__CFX_HEADER;
    memcpy(t, hdr, sizeof(hdr));
    if (negio__kc_confounder(p) < 0)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_FAILURE);
    if (len > 0)
        memcpy(p + NEGIO__KC_CONFOUNDER, msg, len);
    memcpy(p + NEGIO__KC_CONFOUNDER + len, hdr, sizeof(hdr));
    if (negio__kc_encrypt(key, w, p, plain, p + plain) < 0) {
        OPENSSL_cleanse(p, plain); /* the plaintext never stays in OUT */
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_FAILURE);
    }
    out->len += NEGIO__CFX_HEADER + plain + tl;
    c->send_seq++;
    return fail(why, NEGIO__CFX_OK, GSS_S_COMPLETE);
}

static uint32_t wrap_signed(negio__cfx *c, const uint8_t *msg, size_t len, negio__buf *out,
                            int *why)
{
    uint8_t flags, hdr[NEGIO__CFX_HEADER], tag[NEGIO__KC_MAX_TAG];
    struct keyset *k = send_keys(c, &flags);
    negio__kc_mac *m = sum_key(c, k, SEND, 0);
    /* section 4.2.4: the checksum covers the plaintext, then the header with EC and RRC 0; EC
     * then says how long the checksum is */
    header(hdr, NEGIO__CFX_TOK_WRAP, flags, 0, 0, c->send_seq);
    negio__cfx_piece piece = {msg, len};
    if (m == NULL || checksum(c, m, &piece, 1, hdr, tag) < 0)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_FAILURE);
    size_t tl = k->type->tag_len;
    if (len > SIZE_MAX / 2 || negio__buf_reserve(out, sizeof(hdr) + len + tl) < 0)
        return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
    put16(hdr + 4, (unsigned)tl);
    negio__buf_append(out, hdr, sizeof(hdr));
    negio__buf_append(out, msg, len);
    negio__buf_append(out, tag, tl);
    c->send_seq++;
    return fail(why, NEGIO__CFX_OK, GSS_S_COMPLETE);
}

uint32_t negio__cfx_wrap(negio__cfx *c, int conf, const uint8_t *msg, size_t len, negio__buf *out,
                         int *why)
{
    return conf ? wrap_sealed(c, msg, len, out, why) : wrap_signed(c, msg, len, out, why);
}

/* ---- checking tokens -------------------------------------------------------------------- */

/* The checks every received token passes first, in MIT's order (kg_unseal, then
 * gss_krb5int_unseal_token_v3): a CFX token identifier (RFC 1964 ones included, MIT refuses those
 * on a CFX context as malformed), the 16-byte header, the direction (a token of this side's own
 * direction is a reflection: GSS_S_BAD_SIG), then the identifier the call expects and the filler
 * byte. On GSS_S_COMPLETE *KEYS is the key set the token names. RFC 4121 tokens carry no
 * RFC 2743 framing (section 4.4), so a token starting with one is malformed here, where MIT
 * would look inside it. */
static uint32_t check_header(negio__cfx *c, const uint8_t *tok, size_t len, unsigned want,
                             struct keyset **keys)
{
    if (len == 0) /* what the GSS-API mechanism glue answers before any mechanism sees it */
        return GSS_S_CALL_INACCESSIBLE_READ;
    if (len < 2)
        return GSS_S_DEFECTIVE_TOKEN;
    unsigned id = get16(tok);
    if (id != NEGIO__CFX_TOK_MIC && id != NEGIO__CFX_TOK_WRAP && id != NEGIO__CFX_TOK_DELETE)
        return GSS_S_DEFECTIVE_TOKEN;
    if (len < NEGIO__CFX_HEADER)
        return GSS_S_DEFECTIVE_TOKEN;
    if ((tok[2] & NEGIO__CFX_SENT_BY_ACCEPTOR) != (c->initiator ? NEGIO__CFX_SENT_BY_ACCEPTOR : 0))
        return GSS_S_BAD_SIG;
    *keys = recv_keys(c, tok[2]);
    if (id != want || tok[3] != 0xff)
        return GSS_S_DEFECTIVE_TOKEN;
    return GSS_S_COMPLETE;
}

uint32_t negio__cfx_verify_mic(negio__cfx *c, const negio__cfx_piece *pieces, size_t n,
                               const uint8_t *tok, size_t len, int *why)
{
    struct keyset *k = NULL;
    uint32_t st = check_header(c, tok, len, NEGIO__CFX_TOK_MIC, &k);
    if (st != GSS_S_COMPLETE)
        return fail(why, NEGIO__CFX_OK, st);
    /* the other four filler bytes; MIT's IOV form leaves them to the checksum */
    if (tok[4] != 0xff || tok[5] != 0xff || tok[6] != 0xff || tok[7] != 0xff)
        return fail(why, NEGIO__CFX_OK, GSS_S_DEFECTIVE_TOKEN);
    negio__kc_mac *m = sum_key(c, k, RECV, 1);
    if (m == NULL)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG);
    uint8_t tag[NEGIO__KC_MAX_TAG];
    size_t tl = k->type->tag_len;
    if (len - NEGIO__CFX_HEADER != tl)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    if (checksum(c, m, pieces, n, tok, tag) < 0)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG);
    if (CRYPTO_memcmp(tag, tok + NEGIO__CFX_HEADER, tl) != 0)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    return fail(why, NEGIO__CFX_OK, seq_check(&c->recv, get64(tok + 8)));
}

void negio__cfx_plain_release(negio__cfx_plain *p)
{
    if (p->mem != NULL) {
        OPENSSL_cleanse(p->mem, p->mem_len);
        negio__free(p->mem);
    }
    memset(p, 0, sizeof(*p));
}

/* A sealed Wrap token's BODY (BLEN bytes after the header, rotated back), decrypted into OUT and
 * its sealed copy of the header HDR compared (section 4.2.4, with MIT's CVE-2024-37370 check of
 * EC). */
static uint32_t open_sealed(negio__cfx *c, struct keyset *k, const uint8_t *hdr,
                            const uint8_t *body, size_t blen, negio__cfx_plain *out, int *why)
{
    negio__kc_key *key = seal_key(c, k, RECV);
    EVP_MD_CTX *w = work(c);
    if (key == NULL || w == NULL)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG);
    size_t tl = k->type->tag_len;
    /* too short to hold a confounder and a tag: krb5_k_decrypt's KRB5_BAD_MSIZE */
    if (blen < NEGIO__KC_CONFOUNDER + tl)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    size_t clen = blen - tl;
    out->mem = negio__malloc(clen);
    if (out->mem == NULL)
        return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
    out->mem_len = clen;
    if (negio__kc_decrypt(key, w, body, clen, body + clen, out->mem) < 0)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    const uint8_t *p = out->mem + NEGIO__KC_CONFOUNDER;
    size_t plen = clen - NEGIO__KC_CONFOUNDER, ec = get16(hdr + 4);
    if (plen < NEGIO__CFX_HEADER + ec)
        return fail(why, NEGIO__CFX_OK, GSS_S_DEFECTIVE_TOKEN);
    /* the copy's RRC is not compared: the sender rotated the token after sealing it */
    const uint8_t *alt = p + plen - NEGIO__CFX_HEADER;
    if (get16(alt) != NEGIO__CFX_TOK_WRAP || alt[2] != hdr[2] || alt[3] != hdr[3] ||
        get16(alt + 4) != ec || memcmp(alt + 8, hdr + 8, 8) != 0)
        return fail(why, NEGIO__CFX_OK, GSS_S_DEFECTIVE_TOKEN);
    out->msg = p;
    out->len = plen - ec - NEGIO__CFX_HEADER;
    return fail(why, NEGIO__CFX_OK, GSS_S_COMPLETE);
}

/* A Wrap token without confidentiality: plaintext, then the checksum EC says is there. */
static uint32_t open_signed(negio__cfx *c, struct keyset *k, const uint8_t *tok, size_t len,
                            const uint8_t *body, size_t blen, negio__cfx_plain *out, int *why)
{
    size_t ec = get16(tok + 4);
    if (ec + NEGIO__CFX_HEADER > len)
        return fail(why, NEGIO__CFX_OK, GSS_S_DEFECTIVE_TOKEN);
    negio__kc_mac *m = sum_key(c, k, RECV, 0);
    if (m == NULL)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG);
    if (ec != k->type->tag_len)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    uint8_t hdr[NEGIO__CFX_HEADER], tag[NEGIO__KC_MAX_TAG];
    memcpy(hdr, tok, sizeof(hdr));
    put16(hdr + 4, 0); /* as the sender computed it */
    put16(hdr + 6, 0);
    size_t mlen = blen - ec;
    negio__cfx_piece piece = {body, mlen};
    if (checksum(c, m, &piece, 1, hdr, tag) < 0)
        return fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG);
    if (CRYPTO_memcmp(tag, body + mlen, ec) != 0)
        return fail(why, NEGIO__CFX_OK, GSS_S_BAD_SIG);
    out->mem = negio__malloc(mlen > 0 ? mlen : 1);
    if (out->mem == NULL)
        return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
    out->mem_len = mlen;
    if (mlen > 0)
        memcpy(out->mem, body, mlen);
    out->msg = out->mem;
    out->len = mlen;
    return fail(why, NEGIO__CFX_OK, GSS_S_COMPLETE);
}

uint32_t negio__cfx_unwrap(negio__cfx *c, const uint8_t *tok, size_t len, negio__cfx_plain *out,
                           int *conf, int *why)
{
    memset(out, 0, sizeof(*out));
    *conf = 0;
    struct keyset *k = NULL;
    uint32_t st = check_header(c, tok, len, NEGIO__CFX_TOK_WRAP, &k);
    if (st != GSS_S_COMPLETE)
        return fail(why, NEGIO__CFX_OK, st);
    /* section 4.2.5: the sender may have rotated everything after the header right by RRC
     * bytes; MIT sends 0, Windows does not */
    const uint8_t *body = tok + NEGIO__CFX_HEADER;
    size_t blen = len - NEGIO__CFX_HEADER, rot = blen > 0 ? get16(tok + 6) % blen : 0;
    uint8_t *turned = NULL;
    if (rot != 0) {
        if ((turned = negio__malloc(blen)) == NULL)
            return fail(why, NEGIO__CFX_NOMEM, GSS_S_FAILURE);
        memcpy(turned, body + rot, blen - rot);
        memcpy(turned + blen - rot, body, rot);
        body = turned;
    }
    if (tok[2] & NEGIO__CFX_SEALED) {
        *conf = 1;
        st = open_sealed(c, k, tok, body, blen, out, why);
    } else {
        st = k->type == NULL ? fail(why, NEGIO__CFX_CRYPTO, GSS_S_BAD_SIG)
                             : open_signed(c, k, tok, len, body, blen, out, why);
    }
    if (turned != NULL) {
        OPENSSL_cleanse(turned, blen);
        negio__free(turned);
    }
    if (st == GSS_S_COMPLETE)
        st = seq_check(&c->recv, get64(tok + 8));
    if (st != GSS_S_COMPLETE)
        negio__cfx_plain_release(out);
    return st;
}
