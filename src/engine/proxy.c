/* The PROXY protocol (HAProxy's "proxy-protocol.txt", versions 1 and 2) on accepted connections,
 * from the sources a listener names (negio_listen_options.accept_proxy_from): behind a TCP load
 * balancer the connection's own source is the balancer, and the header that begins the stream
 * carries the client's. Read before the connector sees a byte: the header goes into a buffer of
 * its own, and what follows it in the same read is fed to the connector. A header from a source
 * that is not listed is refused, so that no client can claim another's address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define V2_SIG_LEN 12
#define V2_MAX_BODY 1024 /* addresses and TLVs: more than any balancer sends */
#define V1_MAX 107       /* the longest version 1 line, CRLF included (the specification) */
#define HDR_BUF (16 + V2_MAX_BODY)

/* ---- address lists ----------------------------------------------------------------------------
 */

static int parse_one(const char *item, negio__cidr *out)
{
    char text[INET6_ADDRSTRLEN + 8];
    if (strlen(item) >= sizeof(text))
        return NEGIO_ERR_INVALID;
    strcpy(text, item);
    char *slash = strchr(text, '/');
    long bits = -1;
    if (slash != NULL) {
        char *end;
        *slash = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || bits < 0)
            return NEGIO_ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = AF_INET;
        if (bits > 32)
            return NEGIO_ERR_INVALID;
        out->bits = bits < 0 ? 32 : (unsigned)bits;
    } else if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = AF_INET6;
        if (bits > 128)
            return NEGIO_ERR_INVALID;
        out->bits = bits < 0 ? 128 : (unsigned)bits;
    } else {
        return NEGIO_ERR_INVALID;
    }
    return 0;
}

int negio__cidr_parse(const char *list, negio__cidr **out)
{
    const char *sep = ", \t";
    size_t n = 0;
    for (const char *p = list + strspn(list, sep); *p != '\0'; p += strspn(p, sep)) {
        p += strcspn(p, sep);
        n++;
    }
    if (n == 0)
        return NEGIO_ERR_INVALID;
    negio__cidr *v = negio__calloc(n, sizeof(*v));
    if (v == NULL)
        return NEGIO_ERR_NOMEM;
    size_t i = 0;
    for (const char *p = list + strspn(list, sep); *p != '\0'; p += strspn(p, sep)) {
        size_t len = strcspn(p, sep);
        char item[INET6_ADDRSTRLEN + 8];
        if (len >= sizeof(item) ||
            (memcpy(item, p, len), item[len] = '\0', parse_one(item, &v[i]) < 0)) {
            negio__free(v);
            return NEGIO_ERR_INVALID;
        }
        i++;
        p += len;
    }
    *out = v;
    return (int)n;
}

/* Whether the first BITS bits of A and B agree. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    return rest == 0 || ((a[whole] ^ b[whole]) & (0xffu << (8 - rest)) & 0xff) == 0;
}

/* An IPv4 source is matched in both of its forms: as itself against the IPv4 blocks, and mapped
 * into IPv6 (::ffff:a.b.c.d, what a dual-stack listener sees) against the IPv6 ones, so that
 * "::ffff:10.0.0.0/104" is 10.0.0.0/8 and "::/0" every source. A mapped source is the same. */
int negio__cidr_match(const negio__cidr *list, size_t n, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t v6[16];
    int v4 = 0; /* the IPv4 form is in v6 + 12 */
    if (sa->sa_family == AF_INET) {
        memcpy(v6, mapped, 12);
        memcpy(v6 + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        v4 = 1;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(v6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
        v4 = memcmp(v6, mapped, 12) == 0;
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == AF_INET ? v4 && prefix_equal(v6 + 12, list[i].addr, list[i].bits)
                                      : prefix_equal(v6, list[i].addr, list[i].bits))
            return 1;
    }
    return 0;
}

/* ---- the header ------------------------------------------------------------------------------ */

void negio__peer_host(const negio_econn *c, char *out, size_t cap)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    snprintf(out, cap, "?");
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static void proxy_fail(negio_econn *c, const char *what)
{
    negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_PROTOCOL, "PROXY protocol header: %s", what);
}

void negio__proxy_alloc(negio_econn *c, uv_buf_t *buf)
{
    if (c->proxy_buf == NULL)
        c->proxy_buf = negio__malloc(HDR_BUF);
    if (c->proxy_buf == NULL) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->proxy_buf + c->proxy_len, (unsigned)(HDR_BUF - c->proxy_len));
}

/* A version 1 port: decimal 0..65535 without a heading zero (proxy-protocol.txt, section 2.1:
 * "Heading zeroes are not permitted in front of numbers"), in network order into *OUT. */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = htons((uint16_t)v);
    return 0;
}

/* proxy-protocol.txt, section 2.1: "PROXY", then exactly one space before each of the protocol
 * (TCP4, TCP6 or UNKNOWN), the source and the destination address (both in the protocol's
 * family, in the form inet_pton reads: dotted quads without heading zeroes, or IPv6 text), the
 * source and the destination port; after UNKNOWN, anything up to the CRLF is ignored. */
int negio__proxy_v1_parse(const uint8_t *line, size_t len, struct sockaddr_storage *src)
{
    static const char unknown[] = "PROXY UNKNOWN";
    const char *p = (const char *)line;
    if (memchr(p, '\0', len) != NULL)
        return -1;
    if (len >= sizeof(unknown) - 1 && memcmp(p, unknown, sizeof(unknown) - 1) == 0 &&
        (len == sizeof(unknown) - 1 || p[sizeof(unknown) - 1] == ' '))
        return 0;
    /* the six fields: "PROXY", protocol, source, destination, source port, destination port */
    char field[6][INET6_ADDRSTRLEN];
    size_t flen[6];
    const char *end = p + len;
    for (int i = 0; i < 6; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *stop = sp != NULL ? sp : end;
        flen[i] = (size_t)(stop - p);
        if (flen[i] == 0 || flen[i] >= sizeof(field[i]) || (sp != NULL) != (i < 5))
            return -1;
        memcpy(field[i], p, flen[i]);
        field[i][flen[i]] = '\0';
        p = stop + (sp != NULL);
    }
    int family = strcmp(field[1], "TCP4") == 0   ? AF_INET
                 : strcmp(field[1], "TCP6") == 0 ? AF_INET6
                                                 : 0;
    uint8_t dst[16];
    uint16_t sport, dport;
    memset(src, 0, sizeof(*src));
    if (strcmp(field[0], "PROXY") != 0 || family == 0 || v1_port(field[4], flen[4], &sport) < 0 ||
        v1_port(field[5], flen[5], &dport) < 0 || inet_pton(family, field[3], dst) != 1)
        return -1;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)src;
        in->sin_family = AF_INET;
        in->sin_port = sport;
        if (inet_pton(AF_INET, field[2], &in->sin_addr) != 1)
            return -1;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)src;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = sport;
        if (inet_pton(AF_INET6, field[2], &in6->sin6_addr) != 1)
            return -1;
    }
    return 1;
}

/* Version 1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n". Returns the header's length,
 * 0 while incomplete, -1 if malformed. */
static int parse_v1(negio_econn *c, const uint8_t *p, size_t n)
{
    const uint8_t *crlf = NULL;
    for (size_t i = 0; i + 1 < n && i + 1 < V1_MAX; i++)
        if (p[i] == '\r' && p[i + 1] == '\n') {
            crlf = p + i;
            break;
        }
    if (crlf == NULL)
        return n >= V1_MAX ? -1 : 0;
    size_t len = (size_t)(crlf - p);
    struct sockaddr_storage ss;
    int rc = negio__proxy_v1_parse(p, len, &ss);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        c->via = c->peer;
        c->peer = ss;
    }
    return (int)len + 2;
}

/* Version 2: the signature, version and command, family, length, addresses, TLVs (ignored).
 * Returns the header's length, 0 while incomplete, -1 if malformed. */
static int parse_v2(negio_econn *c, const uint8_t *p, size_t n)
{
    if (n < 16)
        return 0;
    unsigned ver_cmd = p[12], fam = p[13];
    size_t body = (size_t)p[14] << 8 | p[15];
    if ((ver_cmd >> 4) != 2 || (ver_cmd & 0xf) > 1 || body > V2_MAX_BODY)
        return -1;
    if (n < 16 + body)
        return 0;
    if ((ver_cmd & 0xf) == 0) /* LOCAL: the balancer's own connection (a health check) */
        return (int)(16 + body);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    const uint8_t *a = p + 16;
    if (fam == 0x11) { /* TCP over IPv4 */
        if (body < 12)
            return -1;
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a, 4);
        memcpy(&in->sin_port, a + 8, 2);
    } else if (fam == 0x21) { /* TCP over IPv6 */
        if (body < 36)
            return -1;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
    } else if (fam == 0x00) { /* UNSPEC: the connection's own address stays */
        return (int)(16 + body);
    } else {
        return -1; /* UDP or Unix sockets: not a TCP client */
    }
    c->via = c->peer;
    c->peer = ss;
    return (int)(16 + body);
}

int negio__proxy_read(negio_econn *c, size_t n)
{
    c->proxy_len += n;
    const uint8_t *p = c->proxy_buf;
    size_t have = c->proxy_len;
    int len;
    size_t cmp = have < V2_SIG_LEN ? have : V2_SIG_LEN;
    if (memcmp(p, V2_SIG, cmp) == 0)
        len = have < V2_SIG_LEN ? 0 : parse_v2(c, p, have);
    else if (memcmp(p, "PROXY ", have < 6 ? have : 6) == 0)
        len = have < 6 ? 0 : parse_v1(c, p, have);
    else
        len = -2;
    if (len == 0 && have == HDR_BUF)
        len = -1;
    if (len == 0)
        return 0;
    if (len < 0) {
        char why[160], from[INET6_ADDRSTRLEN];
        negio__peer_host(c, from, sizeof(from));
        snprintf(why, sizeof(why), "%s from %s, a source that must send one",
                 len == -2 ? "missing" : "malformed", from);
        proxy_fail(c, why);
        return -1;
    }
    c->proxy_state = 0;
    int rc = NEGIO_OK;
    if (have > (size_t)len)
        rc = negio_conn_feed(c->conn, p + len, have - (size_t)len);
    negio__free(c->proxy_buf);
    c->proxy_buf = NULL;
    c->proxy_len = 0;
    if (rc < 0) {
        negio__econn_close(c, NEGIO_CLOSE_ERROR, rc, "%s", negio_strerror(rc));
        return -1;
    }
    return 1;
}
