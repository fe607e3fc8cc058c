/* Fuzz target: configuration. The `negio` command parses its options inside cli_server() and
 * cli_client(), which go on to start an engine, so its argument parsing cannot be driven on its
 * own; what can be reached is fuzzed here instead:
 *  - the parsers and setters it is built on: negio_mech_parse, negio_level_parse and every
 *    negio_config_set_* with fuzzed strings, levels, flags and limits, checked against a model of
 *    their documented rules, then negio_config_dup and negio_conn_new on the result;
 *  - the command's own parsers in tools/negio/main.c, each checked against a model:
 *    cli_split_hostport (--listen, --connect), cli_parse_map and cli_valid_local_user (--map);
 *  - the realm env-file parser of tests/support/realm.c (test_env_parse).
 * The input is a sequence of operations: an opcode byte, then its operands (strings are a length
 * byte and that many bytes; a length of 255 means NULL). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/negio/cli.h"
#include "fuzz/fuzz_support.h"

#define MAX_OPS 64

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t u8(reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static uint32_t u32(reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | u8(r);
    return v;
}

/* A NUL-terminated copy of the next string operand (embedded NULs shorten it), or NULL: a length
 * byte, 254 for a 16-bit length that follows, 255 for NULL. */
static char *str(reader *r)
{
    size_t len = u8(r);
    if (len == 255)
        return NULL;
    if (len == 254)
        len = (size_t)u8(r) << 8 | u8(r);
    size_t n = len < r->n ? len : r->n;
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->n -= n;
    return s;
}

static void expect(int ok, int rc, const char *what)
{
    if (ok ? rc != NEGIO_OK : rc != NEGIO_ERR_INVALID) {
        fprintf(stderr, "%s: returned %d, the model expects %s\n", what, rc,
                ok ? "NEGIO_OK" : "NEGIO_ERR_INVALID");
        abort();
    }
}

static void check_mech(const char *s)
{
    negio_mech m = NEGIO_MECH_NONE;
    int rc = negio_mech_parse(s, &m);
    int known = s != NULL && (strcmp(s, "negotiate") == 0 || strcmp(s, "kerberos") == 0 ||
                              strcmp(s, "ntlm") == 0);
    expect(known, rc, "negio_mech_parse");
    if (known && strcmp(negio_mech_name(m), s) != 0)
        abort();
}

static void check_level(const char *s)
{
    negio_level l = NEGIO_LEVEL_DEFAULT;
    int rc = negio_level_parse(s, &l);
    int known =
        s != NULL && (strcmp(s, "none") == 0 || strcmp(s, "sign") == 0 || strcmp(s, "seal") == 0);
    expect(known, rc, "negio_level_parse");
    if (known && strcmp(negio_level_name(l), s) != 0)
        abort();
}

/* negio.h: "service@host", both parts non-empty; NULL clears it. */
static void check_service(negio_config *cfg, const char *s)
{
    const char *before = negio_config_get_service(cfg);
    char *saved = before != NULL ? strdup(before) : NULL;
    const char *at = s != NULL ? strchr(s, '@') : NULL;
    int ok = s == NULL || (at != NULL && at != s && at[1] != '\0');
    expect(ok, negio_config_set_service(cfg, s), "negio_config_set_service");
    const char *now = negio_config_get_service(cfg);
    const char *want = ok ? s : saved;
    if ((want == NULL) != (now == NULL) || (want != NULL && strcmp(want, now) != 0))
        abort();
    free(saved);
}

static negio_limits limits_of(const negio_config *cfg)
{
    negio_limits l = {.size = sizeof(l)};
    if (negio_config_get_limits(cfg, &l) != NEGIO_OK)
        abort();
    return l;
}

/* negio.h negio_limits: zero keeps the default; max_frame >= 4096, 1024 <= max_token <= 16 MiB,
 * max_frame and max_message < 2^31. A refused call changes nothing. */
static void check_limits(negio_config *cfg, reader *r)
{
    static const negio_limits defaults = {
        sizeof(negio_limits), 65536, 8, 1048576, 16777216, 16777216};
    negio_limits in = {sizeof(negio_limits), u32(r), u32(r), u32(r), u32(r), u32(r)};
    /* small values matter most: fold half of the inputs into the interesting range */
    if (in.max_rounds & 1) {
        in.max_token %= 20000;
        in.max_frame %= 20000;
    }
    negio_limits before = limits_of(cfg), want = in;
    if (want.max_token == 0)
        want.max_token = defaults.max_token;
    if (want.max_rounds == 0)
        want.max_rounds = defaults.max_rounds;
    if (want.max_frame == 0)
        want.max_frame = defaults.max_frame;
    if (want.max_message == 0)
        want.max_message = defaults.max_message;
    if (want.max_queued == 0)
        want.max_queued = defaults.max_queued;
    int ok = want.max_frame >= 4096 && want.max_token >= 1024 && want.max_token <= (16u << 20) &&
             want.max_frame <= 0x7fffffffu && want.max_message <= 0x7fffffffu;
    expect(ok, negio_config_set_limits(cfg, &in), "negio_config_set_limits");
    negio_limits now = limits_of(cfg);
    if (memcmp(&now, ok ? &want : &before, sizeof(now)) != 0)
        abort();
}

static void check_level_setters(negio_config *cfg, reader *r)
{
    int v = (int)(int8_t)u8(r);
    negio_level before = negio_config_get_default_level(cfg);
    int ok = v >= NEGIO_LEVEL_NONE && v <= NEGIO_LEVEL_SEAL;
    expect(ok, negio_config_set_default_level(cfg, (negio_level)v), "set_default_level");
    if (negio_config_get_default_level(cfg) != (ok ? (negio_level)v : before))
        abort();
    v = (int)(int8_t)u8(r);
    ok = v >= NEGIO_LEVEL_NONE && v <= NEGIO_LEVEL_SEAL;
    expect(ok, negio_config_set_min_level(cfg, (negio_level)v), "set_min_level");
}

/* A copy reads back the same, and a connector can be made from it (no GSS call yet). */
static void check_dup_and_conn(const negio_config *cfg)
{
    negio_config *copy;
    if (negio_config_dup(&copy, cfg) != NEGIO_OK)
        abort();
    negio_limits a = limits_of(cfg), b = limits_of(copy);
    const char *s1 = negio_config_get_service(cfg), *s2 = negio_config_get_service(copy);
    if (negio_config_get_role(copy) != negio_config_get_role(cfg) ||
        negio_config_get_default_level(copy) != negio_config_get_default_level(cfg) ||
        memcmp(&a, &b, sizeof(a)) != 0 || (s1 == NULL) != (s2 == NULL) ||
        (s1 != NULL && (s1 == s2 || strcmp(s1, s2) != 0)))
        abort();
    negio_conn *c = NULL;
    int rc = negio_conn_new(&c, copy);
    int client_without_target = negio_config_get_role(copy) == NEGIO_ROLE_CLIENT && s2 == NULL;
    expect(!client_without_target, rc, "negio_conn_new");
    negio_conn_del(c);
    negio_config_del(copy);
}

/* tools/negio/cli.h: "HOST:PORT" or "[V6]:PORT"; a port of 1 to 5 digits up to 65535; HOST
 * without ':' unless bracketed, shorter than the buffer. */
static void check_hostport(const char *s)
{
    if (s == NULL)
        return;
    char host[64];
    uint16_t port = 0;
    int rc = cli_split_hostport(s, host, sizeof(host), &port);
    const char *h = s, *colon;
    size_t hlen;
    int ok = 1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        ok = close != NULL && close[1] == ':';
        h = s + 1;
        hlen = ok ? (size_t)(close - h) : 0;
        colon = ok ? close + 1 : NULL;
    } else {
        colon = strrchr(s, ':');
        ok = colon != NULL;
        hlen = ok ? (size_t)(colon - s) : 0;
        ok = ok && memchr(s, ':', hlen) == NULL;
    }
    const char *digits = ok ? colon + 1 : "";
    size_t nd = strlen(digits);
    ok = ok && hlen < sizeof(host) && nd >= 1 && nd <= 5 && strspn(digits, "0123456789") == nd &&
         atol(digits) <= 65535;
    if ((rc == 0) != ok) {
        fprintf(stderr, "cli_split_hostport(\"%s\") returned %d\n", s, rc);
        abort();
    }
    if (ok && (strlen(host) != hlen || memcmp(host, h, hlen) != 0 || port != atol(digits)))
        abort();
}

/* tools/negio/cli.h: 1..CLI_MAX_NAME letters, digits, '.', '_', '-'; not "-..."; not "." or "..".
 */
static int model_local_user(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CLI_MAX_NAME || name[0] == '-' || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void check_local_user(const char *s)
{
    if (s != NULL && (cli_valid_local_user(s) != 0) != model_local_user(s))
        abort();
}

/* --map PRINCIPAL=LOCALUSER: split at the last '='; the principal 1..CLI_MAX_NAME bytes without
 * white space, control characters or braces. cli_parse_map prints its usage errors to stderr,
 * which is silenced meanwhile. */
static void check_map(const char *s)
{
    if (s == NULL)
        return;
    const char *eq = strrchr(s, '=');
    size_t plen = eq != NULL ? (size_t)(eq - s) : 0;
    int ok = eq != NULL && plen > 0 && plen <= CLI_MAX_NAME && model_local_user(eq + 1);
    for (size_t i = 0; ok && i < plen; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = c > ' ' && c != 0x7f && c != '{' && c != '}';
    }
    struct cli_map m;
    memset(&m, 0xa5, sizeof(m));
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved < 0 || null < 0 || dup2(null, 2) < 0)
        abort();
    int rc = cli_parse_map("server", "usage: negio server\n\n", "--map", s, &m);
    fflush(stderr);
    if (dup2(saved, 2) < 0)
        abort();
    close(saved);
    close(null);
    if ((rc == 0) != ok) {
        fprintf(stderr, "cli_parse_map(\"%s\") returned %d\n", s, rc);
        abort();
    }
    if (ok && (strlen(m.principal) != plen || memcmp(m.principal, s, plen) != 0 ||
               strcmp(m.local, eq + 1) != 0))
        abort();
}

static void on_env(const char *name, const char *value, void *user)
{
    const char *end = (const char *)user;
    /* both point into the line buffer and hold no line break; the name holds no '=' */
    if (strchr(name, '=') != NULL || strpbrk(name, "\r\n") != NULL ||
        strpbrk(value, "\r\n") != NULL || end == NULL)
        abort();
}

static void check_env(reader *r)
{
    /* the rest of the input is an env file */
    if (r->n == 0)
        return;
    FILE *f = fmemopen((void *)r->p, r->n, "r");
    if (f == NULL)
        abort();
    test_env_parse(f, on_env, (void *)(r->p + r->n));
    fclose(f);
    r->p += r->n;
    r->n = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    reader r = {data, size};
    negio_role role = (u8(&r) & 1) ? NEGIO_ROLE_SERVER : NEGIO_ROLE_CLIENT;
    int client = role == NEGIO_ROLE_CLIENT;
    negio_config *cfg;
    if (negio_config_new(&cfg, role) != NEGIO_OK)
        abort();
    for (int op = 0; op < MAX_OPS && r.n > 0; op++) {
        uint8_t code = u8(&r);
        char *a = NULL, *b = NULL;
        switch (code % 18) {
        case 0:
            check_mech(a = str(&r));
            break;
        case 1:
            check_level(a = str(&r));
            break;
        case 2:
            check_service(cfg, a = str(&r));
            break;
        case 3:
            a = str(&r);
            expect(a == NULL || a[0] != '\0', negio_config_set_keytab(cfg, a), "set_keytab");
            break;
        case 4:
            a = str(&r);
            expect(client && (a == NULL || a[0] != '\0'), negio_config_set_ccache(cfg, a),
                   "set_ccache");
            break;
        case 5:
            a = str(&r);
            expect(a == NULL || a[0] != '\0', negio_config_set_ntlm_file(cfg, a), "set_ntlm_file");
            break;
        case 6:
            a = str(&r);
            b = str(&r);
            expect(client && (a == NULL) == (b == NULL) && (a == NULL || a[0] != '\0'),
                   negio_config_set_password(cfg, a, b), "set_password");
            break;
        case 7:
            check_limits(cfg, &r);
            break;
        case 8:
            check_level_setters(cfg, &r);
            break;
        case 9: {
            unsigned allowed = u8(&r);
            expect(allowed != 0 && (allowed & ~NEGIO_ALLOW_ALL) == 0,
                   negio_config_set_allowed(cfg, allowed), "set_allowed");
            int m = (int)(int8_t)u8(&r);
            expect(m >= NEGIO_MECH_NEGOTIATE && m <= NEGIO_MECH_NTLM,
                   negio_config_set_mech(cfg, (negio_mech)m), "set_mech");
            break;
        }
        case 10: {
            int on = u8(&r);
            expect(client, negio_config_set_require_server_auth(cfg, on), "require_server_auth");
            expect(client, negio_config_set_mutual(cfg, on), "set_mutual");
            expect(client, negio_config_set_delegate(cfg, on), "set_delegate");
            expect(1, negio_config_set_deferred_steps(cfg, on), "set_deferred_steps");
            break;
        }
        case 11:
            check_dup_and_conn(cfg);
            break;
        case 12:
            check_hostport(a = str(&r));
            break;
        case 13:
            a = str(&r);
            b = str(&r);
            expect(!client && a != NULL && b != NULL && a[0] != '\0' && b[0] != '\0',
                   negio_config_add_user_map(cfg, a, b), "add_user_map");
            break;
        case 14:
            a = str(&r);
            expect(!client && (a == NULL || a[0] != '\0'), negio_config_set_ntlm_domain(cfg, a),
                   "set_ntlm_domain");
            break;
        case 15:
            check_map(a = str(&r));
            break;
        case 16:
            check_local_user(a = str(&r));
            break;
        default:
            check_env(&r);
            break;
        }
        free(a);
        free(b);
    }
    check_dup_and_conn(cfg);
    negio_config_del(cfg);
    return 0;
}
