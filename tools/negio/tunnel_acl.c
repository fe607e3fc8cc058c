/*
 * negio tunnel server: who may pass (--allow, --allow-file), and the PROXY protocol v2 header
 * that tells the backend who came (--proxy-protocol v2; docs/TUNNEL.md, "Identity to the
 * backend").
 *
 * Entries: "alice@REALM" (that principal exactly), "@REALM" (every principal of the realm),
 * "DOMAIN\alice" (that NTLM user; domain and user compared without regard to case, as Windows
 * does) and "DOMAIN\*" (every NTLM user of the domain). A Kerberos entry never matches an NTLM
 * client and the other way round: "alice@REALM" and "REALM\alice" are different proofs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tunnel.h"

static int printable_name(const char *s)
{
    if (s[0] == '\0' || strlen(s) > CLI_MAX_NAME)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* The kind of entry TEXT is, or -1. */
static int entry_kind(const char *text)
{
    if (!printable_name(text))
        return -1;
    const char *bs = strchr(text, '\\');
    if (bs != NULL) {
        if (bs == text || bs[1] == '\0' || strchr(bs + 1, '\\') != NULL || strchr(text, '@'))
            return -1;
        return strcmp(bs + 1, "*") == 0 ? ACL_NTLM_DOMAIN : ACL_NTLM_USER;
    }
    const char *at = strrchr(text, '@');
    if (at == NULL || at[1] == '\0')
        return -1;
    return at == text ? ACL_REALM : ACL_PRINCIPAL;
}

int acl_valid_entry(const char *text)
{
    return entry_kind(text) >= 0;
}

static int acl_add(struct acl *a, const char *text)
{
    int kind = entry_kind(text);
    struct acl_entry *e = realloc(a->e, (a->n + 1) * sizeof(*e));
    if (e == NULL)
        return -1;
    a->e = e;
    e[a->n].kind = kind;
    e[a->n].text = strdup(text);
    if (e[a->n].text == NULL)
        return -1;
    if (kind == ACL_NTLM_DOMAIN) /* "DOMAIN\*" is kept as "DOMAIN" */
        *strchr(e[a->n].text, '\\') = '\0';
    a->n++;
    return 0;
}

void acl_ref(struct acl *a)
{
    atomic_fetch_add(&a->refs, 1);
}

void acl_unref(struct acl *a)
{
    if (a == NULL || atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->e[i].text);
    free(a->e);
    free(a);
}

struct acl *acl_load(const struct tunnel_def *d)
{
    struct acl *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    atomic_init(&a->refs, 1);
    a->restricted = d->nallow > 0 || d->allow_file != NULL;
    for (size_t i = 0; i < d->nallow; i++)
        if (acl_add(a, d->allow[i]) < 0)
            goto oom;
    int len = snprintf(a->source, sizeof(a->source), "--allow (%zu)", d->nallow);
    if (d->allow_file != NULL) {
        FILE *f = fopen(d->allow_file, "r");
        if (f == NULL) {
            fprintf(stderr, "negio tunnel: [%s] --allow-file %s: %s\n", d->name, d->allow_file,
                    strerror(errno));
            acl_unref(a);
            return NULL;
        }
        char line[1024];
        int lineno = 0, bad = 0;
        size_t before = a->n;
        while (fgets(line, sizeof(line), f) != NULL) {
            lineno++;
            if (strchr(line, '\n') == NULL && !feof(f)) {
                fprintf(stderr, "negio tunnel: %s:%d: line longer than %zu bytes\n", d->allow_file,
                        lineno, sizeof(line) - 2);
                bad = 1;
                int ch;
                while ((ch = fgetc(f)) != EOF && ch != '\n')
                    ;
                continue;
            }
            char *p = line + strspn(line, " \t");
            p[strcspn(p, "\r\n")] = '\0';
            char *hash = strchr(p, '#');
            if (hash != NULL)
                *hash = '\0';
            size_t n = strlen(p);
            while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                p[--n] = '\0';
            if (n == 0)
                continue;
            if (!acl_valid_entry(p)) {
                fprintf(stderr,
                        "negio tunnel: %s:%d: expected a principal (alice@REALM), @REALM, "
                        "DOMAIN\\user or DOMAIN\\*, got '%s'\n",
                        d->allow_file, lineno, p);
                bad = 1;
                continue;
            }
            if (acl_add(a, p) < 0) {
                fclose(f);
                goto oom;
            }
        }
        fclose(f);
        if (bad) {
            acl_unref(a);
            return NULL;
        }
        if (len > 0 && (size_t)len < sizeof(a->source))
            snprintf(a->source + len, sizeof(a->source) - (size_t)len, ", %s (%zu)", d->allow_file,
                     a->n - before);
    }
    return a;
oom:
    fprintf(stderr, "negio tunnel: [%s] out of memory reading the access list\n", d->name);
    acl_unref(a);
    return NULL;
}

/* Where the realm of a Kerberos display name begins: its last '@' that no backslash escapes (MIT
 * shows an '@' inside a component or a realm's name as "\\@"), or NULL. */
static const char *realm_of(const char *name)
{
    const char *at = NULL;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '@')
            at = p;
    }
    return at;
}

int acl_allows(const struct acl *a, const char *peer, negio_mech mech, char *why, size_t cap)
{
    if (peer == NULL || peer[0] == '\0') {
        snprintf(why, cap, "no name for the client");
        return 0;
    }
    if (!a->restricted)
        return 1;
    const char *bs = strchr(peer, '\\');
    for (size_t i = 0; i < a->n; i++) {
        const struct acl_entry *e = &a->e[i];
        switch (e->kind) {
        case ACL_PRINCIPAL:
            if (mech == NEGIO_MECH_KERBEROS && strcmp(peer, e->text) == 0)
                return 1;
            break;
        case ACL_REALM: { /* the whole realm, not a suffix: "u@X\\@REALM" is not in @REALM */
            const char *realm = realm_of(peer);
            if (mech == NEGIO_MECH_KERBEROS && realm != NULL && realm != peer &&
                strcmp(realm, e->text) == 0)
                return 1;
            break;
        }
        case ACL_NTLM_USER:
            if (mech == NEGIO_MECH_NTLM && strcasecmp(peer, e->text) == 0)
                return 1;
            break;
        case ACL_NTLM_DOMAIN:
            if (mech == NEGIO_MECH_NTLM && bs != NULL && (size_t)(bs - peer) == strlen(e->text) &&
                strncasecmp(peer, e->text, (size_t)(bs - peer)) == 0)
                return 1;
            break;
        }
    }
    snprintf(why, cap, "not in the access list (%s)", a->source);
    return 0;
}

int cidr_list_valid(const char *text)
{
    const char *sep = ", \t";
    int n = 0;
    for (const char *p = text + strspn(text, sep); *p != '\0'; p += strspn(p, sep)) {
        size_t len = strcspn(p, sep);
        char item[64], addr[16];
        if (len >= sizeof(item))
            return 0;
        memcpy(item, p, len);
        item[len] = '\0';
        char *slash = strchr(item, '/');
        long bits = -1, max;
        if (slash != NULL) {
            char *end;
            *slash = '\0';
            bits = strtol(slash + 1, &end, 10);
            if (slash[1] == '\0' || *end != '\0')
                return 0;
        }
        if (inet_pton(AF_INET, item, addr) == 1)
            max = 32;
        else if (inet_pton(AF_INET6, item, addr) == 1)
            max = 128;
        else
            return 0;
        if (slash != NULL && (bits < 0 || bits > max))
            return 0;
        n++;
        p += len;
    }
    return n > 0;
}

/* ---- PROXY protocol v2 (HAProxy's proxy-protocol.txt, section 2.2) ------------------------- */

static size_t put_tlv(uint8_t *out, size_t at, size_t cap, uint8_t type, const char *value)
{
    size_t len = value != NULL ? strlen(value) : 0;
    if (value == NULL || len > 0xffff || at + 3 + len > cap)
        return value == NULL ? at : 0;
    out[at] = type;
    out[at + 1] = (uint8_t)(len >> 8);
    out[at + 2] = (uint8_t)len;
    memcpy(out + at + 3, value, len);
    return at + 3 + len;
}

/* SA as a header carries it, into *OUT: an IPv4-mapped IPv6 address (how a dual-stack listener
 * sees an IPv4 peer, and its own address on that connection) back in IPv4, so that a client and
 * the address it reached share a family; AF_UNSPEC for NULL or another family. */
static void header_addr(const struct sockaddr *sa, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
    if (sa != NULL && sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)out;
        a4->sin_family = AF_INET;
        memcpy(&a4->sin_addr, a6->sin6_addr.s6_addr + 12, 4);
        a4->sin_port = a6->sin6_port;
    } else if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(out, sa, sizeof(struct sockaddr_in));
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        memcpy(out, sa, sizeof(struct sockaddr_in6));
    }
}

/* An IPv4 address in *SS turned into its mapped IPv6 form (::ffff:a.b.c.d), for a header whose
 * other address is IPv6. */
static void map_to_v6(struct sockaddr_storage *ss)
{
    if (ss->ss_family != AF_INET)
        return;
    struct sockaddr_in a4 = *(const struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    a6->sin6_family = AF_INET6;
    a6->sin6_addr.s6_addr[10] = a6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(a6->sin6_addr.s6_addr + 12, &a4.sin_addr, 4);
    a6->sin6_port = a4.sin_port;
}

size_t proxy_v2_header(uint8_t *out, size_t cap, const struct sockaddr *src,
                       const struct sockaddr *dst, const char *principal, const char *mech,
                       const char *level, const char *local)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    if (cap < 16 + 36)
        return 0;
    memcpy(out, sig, sizeof(sig));
    out[12] = 0x21; /* version 2, PROXY */
    size_t at = 16;
    struct sockaddr_storage ss, ds; /* DST unknown (AF_UNSPEC): zeros of SRC's family */
    header_addr(src, &ss);
    header_addr(dst, &ds);
    if (ss.ss_family == AF_INET6 || ds.ss_family == AF_INET6) {
        /* families that differ even so (a client's address from a balancer's PROXY header):
         * both as IPv6, the IPv4 one mapped */
        map_to_v6(&ss);
        map_to_v6(&ds);
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&ss;
        const struct sockaddr_in *d = (const struct sockaddr_in *)&ds;
        out[13] = 0x11; /* TCP over IPv4 */
        memcpy(out + at, &s->sin_addr, 4);
        memcpy(out + at + 4, &d->sin_addr, 4);
        memcpy(out + at + 8, &s->sin_port, 2);
        memcpy(out + at + 10, &d->sin_port, 2);
        at += 12;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&ss;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&ds;
        out[13] = 0x21; /* TCP over IPv6 */
        memcpy(out + at, &s->sin6_addr, 16);
        memcpy(out + at + 16, &d->sin6_addr, 16);
        memcpy(out + at + 32, &s->sin6_port, 2);
        memcpy(out + at + 34, &d->sin6_port, 2);
        at += 36;
    } else {
        out[13] = 0x00; /* UNSPEC: the backend keeps the connection's own address */
    }
    if ((at = put_tlv(out, at, cap, TLV_PRINCIPAL, principal)) == 0 ||
        (at = put_tlv(out, at, cap, TLV_MECH, mech)) == 0 ||
        (at = put_tlv(out, at, cap, TLV_LEVEL, level)) == 0 ||
        (at = put_tlv(out, at, cap, TLV_LOCAL_NAME, local)) == 0)
        return 0;
    size_t body = at - 16;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    return at;
}
