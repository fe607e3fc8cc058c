/* Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from genuine
 * exchanges in a throwaway realm: on each mechanism path a client and a server authenticate,
 * exchange messages at every level (some split over several frames) and close, and every byte
 * each side sends is recorded. Usage: gen_corpus DIR (docs/FUZZING.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz_support.h"
#include "support/tokens.h"

typedef struct log {
    uint8_t *p;
    size_t len;
} log_t;

static const char *out_dir;

static void append(log_t *l, const uint8_t *p, size_t n)
{
    l->p = realloc(l->p, l->len + n + 1);
    if (l->p == NULL)
        abort();
    if (n > 0)
        memcpy(l->p + l->len, p, n);
    l->len += n;
}

static void write_seed(const char *target, const char *name, uint8_t prefix, int with_prefix,
                       const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        abort();
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (with_prefix && fputc(prefix, f) == EOF) ||
        (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* Moves and records everything each side has for the wire until neither has anything. */
static void pump(test_pair *pr, log_t *c2s, log_t *s2c)
{
    for (int guard = 0; guard < 1000; guard++) {
        test_side_drain(&pr->client);
        test_side_drain(&pr->server);
        size_t n, m;
        uint8_t *a = test_take_output(pr->client.conn, &n);
        append(c2s, a, n);
        if (n > 0)
            negio_conn_feed(pr->server.conn, a, n);
        free(a);
        test_side_drain(&pr->server);
        uint8_t *b = test_take_output(pr->server.conn, &m);
        append(s2c, b, m);
        if (m > 0)
            negio_conn_feed(pr->client.conn, b, m);
        free(b);
        if (n == 0 && m == 0)
            return;
    }
    abort();
}

/* The headers of every frame in a stream, one after another. */
static void headers(const log_t *l, log_t *out)
{
    size_t at = 0;
    while (at + 8 <= l->len) {
        append(out, l->p + at, 8);
        uint32_t len = (uint32_t)l->p[at + 4] << 24 | (uint32_t)l->p[at + 5] << 16 |
                       (uint32_t)l->p[at + 6] << 8 | l->p[at + 7];
        at += 8 + (size_t)len;
    }
}

/* What a server of SC sends to a client of CC, the whole exchange long. */
static log_t server_replies(const negio_config *cc, const negio_config *sc)
{
    test_pair pr;
    test_pair_init(&pr, cc, sc, SPLIT_WHOLE, 1);
    log_t a = {0}, b = {0};
    pump(&pr, &a, &b);
    test_pair_free(&pr);
    free(a.p);
    return b;
}

static void record_path(test_path path, log_t *all_headers)
{
    static uint8_t big[10000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13 + 5);
    const char *name = path == PATH_KERBEROS       ? "kerberos"
                       : path == PATH_NEG_KERBEROS ? "negotiate-kerberos"
                       : path == PATH_NEG_NTLM     ? "negotiate-ntlm"
                                                   : "ntlm";
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    negio_limits lim = {0};
    lim.max_frame = 4096; /* long messages are split into several frames */
    negio_config_set_limits(sc, &lim);
    negio_config_set_limits(cc, &lim);
    negio_config_set_min_level(sc, NEGIO_LEVEL_NONE);
    negio_config_set_min_level(cc, NEGIO_LEVEL_NONE);
    test_pair pr;
    test_pair_init(&pr, cc, sc, SPLIT_WHOLE, 1);
    log_t c2s = {0}, s2c = {0}, first_c = {0}, first_s = {0};

    /* the client's first flight, then the server's first reply, then the rest */
    test_side_drain(&pr.client);
    size_t n;
    uint8_t *t = test_take_output(pr.client.conn, &n);
    append(&first_c, t, n);
    append(&c2s, t, n);
    negio_conn_feed(pr.server.conn, t, n);
    free(t);
    test_side_drain(&pr.server);
    t = test_take_output(pr.server.conn, &n);
    append(&first_s, t, n);
    append(&s2c, t, n);
    negio_conn_feed(pr.client.conn, t, n);
    free(t);
    pump(&pr, &c2s, &s2c);
    if (test_side_count(&pr.client, NEGIO_EV_ESTABLISHED) != 1 ||
        test_side_count(&pr.server, NEGIO_EV_ESTABLISHED) != 1) {
        fprintf(stderr, "%s: no handshake\n", name);
        exit(1);
    }
    size_t c_hs = c2s.len;

    static const struct {
        negio_level level;
        size_t len;
    } msgs[] = {{NEGIO_LEVEL_NONE, 0},    {NEGIO_LEVEL_NONE, 5},    {NEGIO_LEVEL_SIGN, 0},
                {NEGIO_LEVEL_SIGN, 11},   {NEGIO_LEVEL_SEAL, 0},    {NEGIO_LEVEL_SEAL, 11},
                {NEGIO_LEVEL_NONE, 6000}, {NEGIO_LEVEL_SIGN, 6000}, {NEGIO_LEVEL_SEAL, 10000}};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        if (negio_conn_write(pr.client.conn, big, msgs[i].len, msgs[i].level) != 0 ||
            negio_conn_write(pr.server.conn, big, msgs[i].len, msgs[i].level) != 0)
            abort();
        pump(&pr, &c2s, &s2c);
    }
    negio_conn_close(pr.client.conn, 0, "done");
    pump(&pr, &c2s, &s2c);
    negio_conn_close(pr.server.conn, 0, "bye");
    pump(&pr, &c2s, &s2c);
    if (pr.client.err != 0 || pr.server.err != 0) {
        fprintf(stderr, "%s: exchange failed\n", name);
        exit(1);
    }

    char file[128];
    snprintf(file, sizeof(file), "%s-first-flight", name);
    write_seed("fuzz_server_handshake", file, 0, 0, first_c.p, first_c.len);
    snprintf(file, sizeof(file), "%s-handshake", name);
    write_seed("fuzz_server_handshake", file, 0, 0, c2s.p, c_hs);
    snprintf(file, sizeof(file), "%s-session", name);
    write_seed("fuzz_server_handshake", file, 0, 0, c2s.p, c2s.len);

    snprintf(file, sizeof(file), "%s-first-reply", name);
    write_seed("fuzz_client_handshake", file, (uint8_t)path, 1, first_s.p, first_s.len);
    snprintf(file, sizeof(file), "%s-session", name);
    write_seed("fuzz_client_handshake", file, (uint8_t)path, 1, s2c.p, s2c.len);

    /* what the client sent after establishment: DATA at each level, fragments, CLOSE; for a
     * server that requires sign (bit 2 clear) and one that accepts none (bit 2 set) */
    snprintf(file, sizeof(file), "%s-data-min-sign", name);
    write_seed("fuzz_established", file, (uint8_t)path, 1, c2s.p + c_hs, c2s.len - c_hs);
    snprintf(file, sizeof(file), "%s-data-min-none", name);
    write_seed("fuzz_established", file, (uint8_t)(path | 4), 1, c2s.p + c_hs, c2s.len - c_hs);

    headers(&c2s, all_headers);
    headers(&s2c, all_headers);
    test_pair_free(&pr);
    free(c2s.p);
    free(s2c.p);
    free(first_c.p);
    free(first_s.p);

    /* refused: a Kerberos-only server answers an NTLM client with a HANDSHAKE_ERROR */
    if (path == PATH_NTLM) {
        negio_config_set_allowed(sc, NEGIO_ALLOW_KERBEROS);
        log_t b = server_replies(cc, sc);
        write_seed("fuzz_client_handshake", "ntlm-refused", (uint8_t)path, 1, b.p, b.len);
        headers(&b, all_headers);
        free(b.p);
    }
    negio_config_del(cc);
    negio_config_del(sc);
}

/* fuzz_client_handshake: HANDSHAKE_ERROR frames whose token the client must judge (PROTOCOL.md
 * section 4.2): a genuine KRB-ERROR, the server's answer to a client that asked for a service
 * whose key it lacks, on both Kerberos paths (given to GSS there), and a hostile server's
 * CHALLENGE with an empty target name and TARGET_TYPE flags set (gss-ntlmssp 1.2.0 crashed the
 * client on it before protocol version 2, issue 13), raw and inside a NegTokenResp (never given
 * to NTLM). */
static void error_seeds(log_t *all_headers)
{
    static const char *const krb_names[] = {"kerberos-krb-error", "negotiate-kerberos-krb-error"};
    for (int path = PATH_KERBEROS; path <= PATH_NEG_KERBEROS; path++) {
        negio_config *cc = test_client_config((test_path)path);
        negio_config *sc = test_server_config((test_path)path);
        negio_config_set_service(cc, "other@localhost");
        log_t b = server_replies(cc, sc);
        /* one HANDSHAKE_ERROR frame carrying a token (its u32 length is not zero) */
        if (b.len < 12 || b.p[1] != 2 || (b.p[8] | b.p[9] | b.p[10] | b.p[11]) == 0) {
            fprintf(stderr, "%s: the server sent no error token\n", krb_names[path]);
            exit(1);
        }
        write_seed("fuzz_client_handshake", krb_names[path], (uint8_t)path, 1, b.p, b.len);
        headers(&b, all_headers);
        free(b.p);
        negio_config_del(cc);
        negio_config_del(sc);
    }
    uint8_t chal[64], spnego[128];
    size_t n = test_ntlm_challenge(chal, 0);
    size_t m = test_wrap_negtokenresp(spnego, chal, n);
    for (int path = PATH_NEG_NTLM; path <= PATH_NTLM; path++) {
        size_t blen;
        uint8_t *body = test_hs_error_body(path == PATH_NTLM ? chal : spnego,
                                           path == PATH_NTLM ? n : m, "forged", &blen);
        const uint8_t hdr[8] = {NEGIO_PROTOCOL_VERSION, 2, 0, 0, 0, 0, (uint8_t)(blen >> 8),
                                (uint8_t)blen};
        log_t f = {0};
        append(&f, hdr, sizeof(hdr));
        append(&f, body, blen);
        write_seed("fuzz_client_handshake",
                   path == PATH_NTLM ? "ntlm-hostile-error-challenge"
                                     : "negotiate-ntlm-hostile-error-challenge",
                   (uint8_t)path, 1, f.p, f.len);
        free(f.p);
        free(body);
    }
}

/* fuzz_sample: the same path in the gss-sample profile (docs/PROTOCOL.md appendix A): the
 * client's stream to the server (handshake, a message at each level, the closing NOOP) behind
 * the first byte path | 4 (server role), and the server's replies (context tokens, MICs) behind
 * the first byte path (client role); the first flight and first reply alone as well. */
static void record_sample(test_path path)
{
    static const char *const names[] = {"kerberos", "negotiate-kerberos", "negotiate-ntlm", "ntlm"};
    const char *name = names[path];
    negio_config *cc = test_client_config(path), *sc = test_server_config(path);
    negio_config_set_profile(cc, NEGIO_PROFILE_GSS_SAMPLE);
    negio_config_set_profile(sc, NEGIO_PROFILE_GSS_SAMPLE);
    negio_config_set_min_level(sc, NEGIO_LEVEL_NONE);
    negio_config_set_min_level(cc, NEGIO_LEVEL_NONE);
    test_pair pr;
    test_pair_init(&pr, cc, sc, SPLIT_WHOLE, 1);
    log_t c2s = {0}, s2c = {0};
    size_t first_c, first_s;

    test_side_drain(&pr.client);
    size_t n;
    uint8_t *t = test_take_output(pr.client.conn, &n);
    append(&c2s, t, n);
    negio_conn_feed(pr.server.conn, t, n);
    free(t);
    first_c = c2s.len;
    test_side_drain(&pr.server);
    t = test_take_output(pr.server.conn, &n);
    append(&s2c, t, n);
    negio_conn_feed(pr.client.conn, t, n);
    free(t);
    first_s = s2c.len;
    pump(&pr, &c2s, &s2c);
    if (test_side_count(&pr.client, NEGIO_EV_ESTABLISHED) != 1 ||
        test_side_count(&pr.server, NEGIO_EV_ESTABLISHED) != 1) {
        fprintf(stderr, "%s (gss-sample): no handshake\n", name);
        exit(1);
    }
    static const uint8_t msg[] = "a gss-sample message";
    static const negio_level levels[] = {NEGIO_LEVEL_NONE, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_SEAL};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (negio_conn_write(pr.client.conn, msg, sizeof(msg) - 1, levels[i]) != 0)
            abort();
        pump(&pr, &c2s, &s2c);
    }
    negio_conn_close(pr.client.conn, 0, NULL);
    pump(&pr, &c2s, &s2c);
    if (pr.client.err != 0 || pr.server.err != 0 ||
        test_side_count(&pr.client, NEGIO_EV_ACKNOWLEDGED) != 3 ||
        test_side_count(&pr.server, NEGIO_EV_MESSAGE) != 3 ||
        test_side_count(&pr.server, NEGIO_EV_CLOSED) != 1) {
        fprintf(stderr, "%s (gss-sample): exchange failed\n", name);
        exit(1);
    }

    char file[128];
    snprintf(file, sizeof(file), "%s-to-server-first-flight", name);
    write_seed("fuzz_sample", file, (uint8_t)(path | 4), 1, c2s.p, first_c);
    snprintf(file, sizeof(file), "%s-to-server-session", name);
    write_seed("fuzz_sample", file, (uint8_t)(path | 4), 1, c2s.p, c2s.len);
    snprintf(file, sizeof(file), "%s-to-client-first-reply", name);
    write_seed("fuzz_sample", file, (uint8_t)path, 1, s2c.p, first_s);
    snprintf(file, sizeof(file), "%s-to-client-session", name);
    write_seed("fuzz_sample", file, (uint8_t)path, 1, s2c.p, s2c.len);
    test_pair_free(&pr);
    free(c2s.p);
    free(s2c.p);
    negio_config_del(cc);
    negio_config_del(sc);
}

/* fuzz_config operands (see fuzz_config.c): a length byte and the bytes of a string. */
static void op_str(log_t *l, const char *text)
{
    uint8_t n = (uint8_t)strlen(text);
    append(l, &n, 1);
    append(l, (const uint8_t *)text, n);
}

static void op(log_t *l, uint8_t code)
{
    append(l, &code, 1);
}

static void op_u32(log_t *l, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    append(l, b, 4);
}

/* fuzz_config: operation sequences with the values the negio command and the tests use. */
static void config_seeds(void)
{
    log_t c = {0}, s = {0}, e = {0};
    op(&c, 0); /* a client */
    op(&c, 0);
    op_str(&c, "negotiate");
    op(&c, 1);
    op_str(&c, "seal");
    op(&c, 2);
    op_str(&c, "negio@localhost");
    op(&c, 4);
    op_str(&c, "FILE:/tmp/cc");
    op(&c, 12);
    op_str(&c, "127.0.0.1:7000");
    op(&c, 12);
    op_str(&c, "[::1]:7000");
    op(&c, 6);
    op_str(&c, "alice");
    op_str(&c, "password");
    op(&c, 8);
    op(&c, 2);
    op(&c, 1);
    op(&c, 9);
    op(&c, 3);
    op(&c, 1);
    op(&c, 10);
    op(&c, 1);
    op(&c, 11);
    write_seed("fuzz_config", "client-options", 0, 0, c.p, c.len);

    op(&s, 1); /* a server */
    op(&s, 3);
    op_str(&s, "/tmp/service.keytab");
    op(&s, 2);
    op_str(&s, "negio@localhost");
    op(&s, 5);
    op_str(&s, "/tmp/ntlm_users");
    op(&s, 7);
    op_u32(&s, 65536);
    op_u32(&s, 8);
    op_u32(&s, 4096);
    op_u32(&s, 65536);
    op_u32(&s, 0);
    op(&s, 13);
    op_str(&s, "alice@NEGIO.TEST");
    op_str(&s, "alice");
    op(&s, 14);
    op_str(&s, "NEGIO");
    op(&s, 15);
    op_str(&s, "alice@NEGIO.TEST=alice");
    op(&s, 16);
    op_str(&s, "bob");
    op(&s, 11);
    write_seed("fuzz_config", "server-options", 0, 0, s.p, s.len);

    /* the realm's own env file, behind the opcode that hands the rest to the env parser */
    op(&e, 0);
    op(&e, 17);
    char path[400];
    snprintf(path, sizeof(path), "%s/env", fuzz_realm()->dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        abort();
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        append(&e, buf, n);
    fclose(f);
    write_seed("fuzz_config", "realm-env-file", 0, 0, e.p, e.len);
    free(c.p);
    free(s.p);
    free(e.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    fuzz_realm();
    log_t hdrs = {0};
    for (int p = 0; p < PATH_COUNT; p++) {
        record_path((test_path)p, &hdrs);
        record_sample((test_path)p);
    }
    error_seeds(&hdrs);
    write_seed("fuzz_frame", "headers-of-every-recorded-frame", 0, 0, hdrs.p, hdrs.len);
    /* the first header: version 1, which protocol version 2 refuses */
    static const uint8_t bad[] = {1, 1, 0, 0, 0, 0, 0, 1, 1, 6, 0,    0,    0,    0,
                                  0, 0, 1, 4, 3, 0, 0, 0, 0, 0, 1,    4,    0,    2,
                                  0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0,    16,   1,    1,
                                  1, 0, 0, 0, 0, 1, 1, 4, 0, 1, 0xff, 0xff, 0xff, 0xff};
    write_seed("fuzz_frame", "refused-headers", 0, 0, bad, sizeof(bad));
    free(hdrs.p);
    config_seeds();
    return 0;
}
