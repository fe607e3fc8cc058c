/*
 * negio tunnel: Kerberos/Negotiate single sign-on and sealing for any TCP service (docs/TUNNEL.md).
 *
 *   tunnel.c         the command line and the config file (one struct tunnel_def per tunnel)
 *   tunnel_acl.c     the access list (--allow, --allow-file) and the PROXY v2 header to backends
 *   tunnel_run.c     the running process: one engine per tunnel, the client side's plain
 *                    listeners, the callbacks, log lines, reload (SIGHUP) and shutdown (SIGTERM)
 *   tunnel_log.c     the values of the text log lines
 *   tunnel_metrics.c the Prometheus text endpoint (--metrics)
 *
 * Threads: the main thread runs a libuv loop of its own (signals, the client side's plain
 * listeners, the metrics endpoint); each tunnel's engine calls back on its loop threads. What
 * both read (a tunnel's definition, configuration and access list) is swapped on a reload under
 * the tunnel's mutex and reference-counted, so a connection keeps the rules it started with.
 */
#ifndef NEGIO_CLI_TUNNEL_H
#define NEGIO_CLI_TUNNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "negio/engine.h"
#include "opt.h"

#define TUNNEL_NAME_MAX 64
#define TUNNEL_MAX 64 /* tunnels in one process */

enum tunnel_mode { TUNNEL_CLIENT = 1, TUNNEL_SERVER = 2 };
enum tunnel_log { LOG_TEXT = 0, LOG_JSON = 1 };

/* One entry of an access list. */
struct acl_entry {
    enum { ACL_PRINCIPAL, ACL_REALM, ACL_NTLM_USER, ACL_NTLM_DOMAIN } kind;
    char *text; /* the principal, "@REALM", "DOMAIN\user" or "DOMAIN" */
};

/* An access list: empty (n == 0 and !restricted) allows every authenticated client. */
struct acl {
    atomic_int refs;
    int restricted; /* --allow or --allow-file given */
    size_t n;
    struct acl_entry *e;
    char source[256]; /* "--allow (2), /etc/negio/redis.allow (14)": for the log */
};

/* What one tunnel is, as given on the command line or in one [section] of the config file. */
struct tunnel_def {
    char name[TUNNEL_NAME_MAX];
    enum tunnel_mode mode;
    const char *file; /* the config file and the section's line, for messages; NULL: argv */
    int line;
    struct cli_connection conn; /* mechanism, credentials, protection, TLS, --map */
    char listen[300];
    char host[256]; /* client: --connect's host, server: --backend's */
    uint16_t port;
    char listen_host[256];
    uint16_t listen_port;
    /* server */
    char *allow[64];
    size_t nallow;
    char *allow_file;
    int proxy_v2;            /* --proxy-protocol v2: a PROXY v2 header to the backend */
    char *accept_proxy_from; /* --accept-proxy-from CIDR,... */
    /* both */
    uint32_t connect_timeout_ms, handshake_timeout_ms, idle_timeout_ms;
    unsigned max_connections;
    /* strings the definition owns (config file values, --allow arguments) */
    char *owned[256];
    size_t nowned;
};

/* Process-wide settings: [global] in the file, or options beside a tunnel's. */
struct tunnel_global {
    enum tunnel_log log;
    char metrics[300]; /* ADDR:PORT, or "" */
};

/* ---- tunnel.c -------------------------------------------------------------------------------- */

int cli_tunnel(int argc, char **argv);
/* Reads the config file PATH into DEFS (*N of them) and G. Prints each error as
 * "negio tunnel: PATH:LINE: ..." to stderr. Returns 0, or -1 after an error. */
int tunnel_config_read(const char *path, struct tunnel_def **defs, size_t *n,
                       struct tunnel_global *g);
void tunnel_def_free(struct tunnel_def *d);
/* The connector configuration of D (a fresh one: credentials acquired anew, the keytab read
 * again). Prints why on failure. Returns 0 or -1. */
int tunnel_def_config(const struct tunnel_def *d, negio_config **out);

/* ---- tunnel_acl.c ---------------------------------------------------------------------------- */

/* The access list of D: its --allow entries and --allow-file's lines. Prints errors as
 * "FILE:LINE: ..." and returns NULL on one. */
struct acl *acl_load(const struct tunnel_def *d);
void acl_ref(struct acl *a);
void acl_unref(struct acl *a);
/* Whether PEER (negio_auth_info.peer, with MECH) may pass; WHY receives the reason if not. */
int acl_allows(const struct acl *a, const char *peer, negio_mech mech, char *why, size_t cap);
/* Whether TEXT is an entry acl_load accepts: PRINCIPAL, @REALM, DOMAIN\user or DOMAIN\*. */
int acl_valid_entry(const char *text);

/* Whether TEXT is a list of addresses and CIDR blocks (commas or spaces between them). */
int cidr_list_valid(const char *text);

/* The PROXY protocol v2 header for a connection from SRC to DST carrying the client's
 * PRINCIPAL, MECH, LEVEL and LOCAL name (may be NULL) in TLVs 0xE0..0xE3 (docs/TUNNEL.md). IPv4
 * addresses in their mapped IPv6 form go as IPv4; if SRC and DST still differ in family, both go
 * as IPv6, the IPv4 one mapped. DST may be NULL or AF_UNSPEC (zeros are sent).
 * Returns its length (at most CAP), or 0 if it does not fit. */
size_t proxy_v2_header(uint8_t *out, size_t cap, const struct sockaddr *src,
                       const struct sockaddr *dst, const char *principal, const char *mech,
                       const char *level, const char *local);

#define TLV_PRINCIPAL 0xE0
#define TLV_MECH 0xE1
#define TLV_LEVEL 0xE2
#define TLV_LOCAL_NAME 0xE3

/* ---- tunnel_run.c ---------------------------------------------------------------------------- */

/* Runs DEFS (N of them) until SIGTERM or SIGINT; reloads CONFIG_PATH (or, without one, the
 * definitions' files: access lists, keytabs) on SIGHUP. Takes DEFS. Returns an exit status. */
int tunnel_run(struct tunnel_def **defs, size_t n, const struct tunnel_global *g,
               const char *config_path);

/* ---- tunnel_log.c ---------------------------------------------------------------------------- */

/* Writes " KEY=V" to OUT for a text log line, nothing if V is NULL or empty. V is bare if it is
 * printable ASCII without space, '"', '=' or '\\'; otherwise it is quoted by json_quote, which
 * escapes control characters (C0, DEL and C1), Unicode's line separators and bytes that are not
 * UTF-8: nothing in V can end the line, start a terminal escape or pass for another key. */
void log_text_value(FILE *out, const char *key, const char *v);

/* ---- tunnel_metrics.c ------------------------------------------------------------------------ */

/* Counters of one tunnel, updated from any thread. */
#define HS_BUCKETS 12
struct tunnel_metrics {
    atomic_ulong open, total;
    atomic_ulong hs_ok[3], hs_failed, hs_refused; /* ok by mechanism: none, kerberos, ntlm */
    atomic_ulong bytes_in, bytes_out;             /* in: peer -> socket, out: socket -> peer */
    atomic_ulong hs_bucket[HS_BUCKETS + 1];       /* handshake latency, cumulative at output */
    atomic_ulong hs_sum_us, hs_count;
};
void metrics_observe_handshake(struct tunnel_metrics *m, uint64_t us);
/* A growing string. */
struct strbuf {
    char *p;
    size_t len, cap;
};
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One tunnel's counters as the endpoint shows them. */
struct metrics_view {
    const char *name;
    enum tunnel_mode mode;
    const struct tunnel_metrics *m;
};
/* The text exposition of N tunnels' counters, appended to B. */
void metrics_render(struct strbuf *b, size_t n, const struct metrics_view *v);

#endif /* NEGIO_CLI_TUNNEL_H */
