/*
 * negio tunnel: the command line (negio tunnel client|server OPTIONS) and the config file
 * (negio tunnel --config FILE), which use one vocabulary: every key of a [section] is a long
 * option of that tunnel's side, taken by the same option groups (opt.h) and checked by the same
 * code. The file is INI as stunnel's and many others are, read by Debian's libinih; every error
 * names the file and the line.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel.h"

enum {
    OPT_LISTEN = CLI_GROUP_BASE(CLI_G_TUNNEL),
    OPT_CONNECT,
    OPT_BACKEND,
    OPT_ALLOW,
    OPT_ALLOW_FILE,
    OPT_PROXY_PROTOCOL,
    OPT_ACCEPT_PROXY_FROM,
    OPT_CONNECT_TIMEOUT,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_CONNECTIONS,
    OPT_NAME,
    OPT_LOG,
    OPT_METRICS,
};

/* What the tunnel group's options go into. */
struct tunnel_state {
    struct tunnel_def *d;
    struct tunnel_global *g;
    int have_log, have_metrics;
};

static const struct cli_option tunnel_options[] = {
    {"listen", required_argument, OPT_LISTEN, CLI_INITIATOR, "ADDR:PORT",
     "where local programs connect, in plain TCP (e.g. 127.0.0.1:6380)"},
    {"listen", required_argument, OPT_LISTEN, CLI_ACCEPTOR, "ADDR:PORT",
     "where tunnel clients connect (e.g. 0.0.0.0:7000; [::]:PORT for IPv6)"},
    {"connect", required_argument, OPT_CONNECT, CLI_INITIATOR, "HOST:PORT",
     "the tunnel server; one negio connection per local connection, with this user's "
     "credentials"},
    {"backend", required_argument, OPT_BACKEND, CLI_ACCEPTOR, "HOST:PORT",
     "the service each authenticated client is relayed to, in plain TCP"},
    {"allow", required_argument, OPT_ALLOW, CLI_ACCEPTOR, "WHO",
     "let WHO through: a principal (alice@REALM), a realm (@REALM), an NTLM user (DOMAIN\\user) "
     "or domain (DOMAIN\\*); repeatable. Without --allow or --allow-file every authenticated "
     "client passes. Others get a protected close of status 121 (--profile nns: a "
     "HandshakeError with ERROR_ACCESS_DENIED) and a log line"},
    {"allow-file", required_argument, OPT_ALLOW_FILE, CLI_ACCEPTOR, "FILE",
     "more WHO entries, one per line ('#' comments); read again on SIGHUP"},
    {"proxy-protocol", required_argument, OPT_PROXY_PROTOCOL, CLI_ACCEPTOR, "v2",
     "begin each backend connection with a PROXY protocol v2 header: the client's address, "
     "and its principal, mechanism, level and local name in TLVs 0xE0..0xE3"},
    {"accept-proxy-from", required_argument, OPT_ACCEPT_PROXY_FROM, CLI_ACCEPTOR, "CIDR,...",
     "load balancers whose connections begin with a PROXY header (v1 or v2) naming the real "
     "client; refused from any other source"},
    {"connect-timeout", required_argument, OPT_CONNECT_TIMEOUT, CLI_ALL, "DURATION",
     "for the connection onward (default 10s; 500ms, 10s, 2m, 1h; a bare number is seconds)"},
    {"handshake-timeout", required_argument, OPT_HANDSHAKE_TIMEOUT, CLI_ALL, "DURATION",
     "authentication must be done within it (default 30s)"},
    {"idle-timeout", required_argument, OPT_IDLE_TIMEOUT, CLI_ALL, "DURATION",
     "close a tunnel after this long without a byte either way (default, or 0: never)"},
    {"max-connections", required_argument, OPT_MAX_CONNECTIONS, CLI_ALL, "N",
     "tunnels open at once; more wait (server) or are refused (client) (default 10000)"},
    {"name", required_argument, OPT_NAME, CLI_ALL, "NAME",
     "the tunnel's name in log lines and metrics (default: the side)"},
    {"log", required_argument, OPT_LOG, CLI_ALL, "text|json",
     "one line per connection when it ends (who, from where, mechanism, level, bytes each way, "
     "duration, why it closed), as key=value text (default) or JSON"},
    {"metrics", required_argument, OPT_METRICS, CLI_ALL, "ADDR:PORT",
     "serve Prometheus metrics over HTTP there (e.g. 127.0.0.1:9100)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis tunnel_synopsis[] = {
    {CLI_ALL, "--listen ADDR:PORT"},
    {CLI_INITIATOR, "--connect HOST:PORT"},
    {CLI_ACCEPTOR, "--backend HOST:PORT"},
    {CLI_ACCEPTOR, "[--allow WHO ... | --allow-file FILE]"},
    {CLI_ACCEPTOR, "[--proxy-protocol v2]"},
    {CLI_ACCEPTOR, "[--accept-proxy-from CIDR,...]"},
    {CLI_ALL, "[--connect-timeout D]"},
    {CLI_ALL, "[--handshake-timeout D]"},
    {CLI_ALL, "[--idle-timeout D]"},
    {CLI_ALL, "[--max-connections N]"},
    {CLI_ALL, "[--name NAME]"},
    {CLI_ALL, "[--log text|json]"},
    {CLI_ALL, "[--metrics ADDR:PORT]"},
    {0, NULL},
};

static void tunnel_init(void *state)
{
    struct tunnel_state *t = state;
    struct tunnel_def *d = t->d;
    d->connect_timeout_ms = 10000;
    d->handshake_timeout_ms = 30000;
    d->idle_timeout_ms = 0;
    d->max_connections = 10000;
}

/* "500ms", "10s", "2m", "1h", or seconds; 0 only if ZERO_OK (elsewhere the engine would read it
 * as its default). */
static int parse_duration(const struct cli *c, const char *opt, const char *arg, uint32_t *ms,
                          int zero_ok)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    unsigned long long mult = 1000;
    if (end == arg || errno != 0)
        goto bad;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        goto bad;
    if (v > 0xffffffffull / mult)
        goto bad;
    if (v == 0 && !zero_ok)
        return cli_error(c, "%s: must be more than 0, got '%s'", opt, arg);
    *ms = (uint32_t)(v * mult);
    return 0;
bad:
    return cli_error(c, "%s: expected a duration such as 500ms, 10s, 2m or 1h, got '%s'", opt, arg);
}

/* A tunnel's name (--name, or its section in a config file): it goes into log lines and
 * Prometheus labels as it is. */
static int name_valid(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len < TUNNEL_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static int tunnel_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct tunnel_state *t = state;
    struct tunnel_def *d = t->d;
    long v;
    switch (id) {
    case OPT_LISTEN:
        if (strlen(arg) >= sizeof(d->listen) ||
            cli_split_hostport(arg, d->listen_host, sizeof(d->listen_host), &d->listen_port) < 0)
            return cli_error(c, "--listen: expected ADDR:PORT, got '%s'", arg);
        snprintf(d->listen, sizeof(d->listen), "%s", arg);
        return 0;
    case OPT_CONNECT:
    case OPT_BACKEND: {
        const char *opt = id == OPT_CONNECT ? "--connect" : "--backend";
        if (cli_split_hostport(arg, d->host, sizeof(d->host), &d->port) < 0 || d->host[0] == '\0' ||
            d->port == 0)
            return cli_error(c, "%s: expected HOST:PORT, got '%s'", opt, arg);
        return 0;
    }
    case OPT_ALLOW:
        if (!acl_valid_entry(arg))
            return cli_error(c,
                             "--allow: expected a principal (alice@REALM), @REALM, DOMAIN\\user "
                             "or DOMAIN\\*, got '%s'",
                             arg);
        if (d->nallow == sizeof(d->allow) / sizeof(d->allow[0]))
            return cli_error(c, "--allow: at most %zu entries (use --allow-file)",
                             sizeof(d->allow) / sizeof(d->allow[0]));
        d->allow[d->nallow++] = (char *)arg;
        return 0;
    case OPT_ALLOW_FILE:
        d->allow_file = (char *)arg;
        return 0;
    case OPT_PROXY_PROTOCOL:
        if (strcmp(arg, "v2") != 0 && strcmp(arg, "none") != 0)
            return cli_error(c, "--proxy-protocol: expected v2 (or none), got '%s'", arg);
        d->proxy_v2 = strcmp(arg, "v2") == 0;
        return 0;
    case OPT_ACCEPT_PROXY_FROM:
        if (!cidr_list_valid(arg))
            return cli_error(c,
                             "--accept-proxy-from: expected addresses or CIDR blocks separated "
                             "by commas (10.0.0.0/8,192.0.2.7), got '%s'",
                             arg);
        d->accept_proxy_from = (char *)arg;
        return 0;
    case OPT_CONNECT_TIMEOUT:
        return parse_duration(c, "--connect-timeout", arg, &d->connect_timeout_ms, 0);
    case OPT_HANDSHAKE_TIMEOUT:
        return parse_duration(c, "--handshake-timeout", arg, &d->handshake_timeout_ms, 0);
    case OPT_IDLE_TIMEOUT:
        return parse_duration(c, "--idle-timeout", arg, &d->idle_timeout_ms, 1);
    case OPT_MAX_CONNECTIONS:
        if (cli_parse_long(c, "--max-connections", arg, 1, 1000000, "", &v) < 0)
            return -1;
        d->max_connections = (unsigned)v;
        return 0;
    case OPT_NAME:
        if (!name_valid(arg))
            return cli_error(c, "--name: 1..%d letters, digits, '.', '_' or '-', got '%s'",
                             TUNNEL_NAME_MAX - 1, arg);
        snprintf(d->name, sizeof(d->name), "%s", arg);
        return 0;
    case OPT_LOG:
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
            return cli_error(c, "--log: expected text or json, got '%s'", arg);
        if (t->g != NULL) {
            t->g->log = strcmp(arg, "json") == 0 ? LOG_JSON : LOG_TEXT;
            t->have_log = 1;
        }
        return 0;
    default: /* OPT_METRICS */ {
        char host[256];
        uint16_t port;
        if (strlen(arg) >= sizeof(t->g->metrics) ||
            cli_split_hostport(arg, host, sizeof(host), &port) < 0)
            return cli_error(c, "--metrics: expected ADDR:PORT, got '%s'", arg);
        if (t->g != NULL) {
            snprintf(t->g->metrics, sizeof(t->g->metrics), "%s", arg);
            t->have_metrics = 1;
        }
        return 0;
    }
    }
}

static const struct cli_group tunnel_group = {
    .no = CLI_G_TUNNEL,
    .options = tunnel_options,
    .synopsis = tunnel_synopsis,
    .init = tunnel_init,
    .take = tunnel_take,
};

static const struct cli_command client_command = {
    .name = "tunnel client",
    .role = CLI_INITIATOR,
    .about = "Accepts plain TCP on --listen and relays each connection over its own negio\n"
             "connection to a tunnel server (--connect), authenticated with this user's own\n"
             "credentials: the ticket cache, --user with --password-file, or a client keytab\n"
             "(KRB5_CLIENT_KTNAME). Runs until SIGTERM; SIGHUP takes up new credentials.\n",
    .footer = "See docs/TUNNEL.md and negio(1). Exit status: 0 after SIGTERM or SIGINT, 1 if the\n"
              "tunnel could not start, 2 for a usage error.\n",
    .column = 25,
};

static const struct cli_command server_command = {
    .name = "tunnel server",
    .role = CLI_ACCEPTOR,
    .about = "Accepts negio connections on --listen, authenticates each client, applies the\n"
             "access list and relays the connection to --backend in plain TCP. Runs until\n"
             "SIGTERM; SIGHUP reads the access list and the keytab again without dropping\n"
             "established tunnels.\n",
    .footer = "See docs/TUNNEL.md and negio(1). Exit status: 0 after SIGTERM or SIGINT, 1 if the\n"
              "tunnel could not start, 2 for a usage error.\n",
    .column = 25,
};

/* The checks across options, for either source. C's messages name the source. */
static int tunnel_validate(const struct cli *c, struct tunnel_def *d)
{
    if (d->listen[0] == '\0')
        return cli_error(c, "--listen ADDR:PORT is required");
    if (d->host[0] == '\0')
        return cli_error(c, d->mode == TUNNEL_CLIENT ? "--connect HOST:PORT is required"
                                                     : "--backend HOST:PORT is required");
    if (d->conn.profile == NEGIO_PROFILE_GSS_SAMPLE)
        return cli_error(c, "--profile gss-sample cannot carry a tunnel (no close for one "
                            "direction alone): use native or nns");
    if (d->conn.profile == NEGIO_PROFILE_NNS && d->conn.tls.transport != NEGIO_TRANSPORT_PLAIN)
        return cli_error(c, "--profile nns has no TLS form ([MS-NNS] runs on the bare TCP "
                            "stream): drop --tls and --tls-negotiate, or use --profile native");
    if (d->conn.tls.transport == NEGIO_TRANSPORT_TLS)
        return cli_error(c, "--tls identifies no user: use --tls-negotiate for Kerberos or NTLM "
                            "inside TLS");
    if (d->name[0] == '\0')
        snprintf(d->name, sizeof(d->name), "%s", d->mode == TUNNEL_CLIENT ? "client" : "server");
    return cli_connection_validate(c, &d->conn, NULL, 0);
}

static int add_owned(struct tunnel_def *d, char *s)
{
    if (s == NULL || d->nowned == sizeof(d->owned) / sizeof(d->owned[0])) {
        free(s);
        return -1;
    }
    d->owned[d->nowned++] = s;
    return 0;
}

void tunnel_def_free(struct tunnel_def *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nowned; i++)
        free(d->owned[i]);
    free(d);
}

int tunnel_def_config(const struct tunnel_def *d, negio_config **out)
{
    struct cli c;
    memset(&c, 0, sizeof(c));
    c.cmd = d->mode == TUNNEL_CLIENT ? &client_command : &server_command;
    int st = cli_connection_config(&c, &d->conn, out);
    if (st != CLI_EXIT_OK)
        return -1;
    int rc = negio_config_set_half_close(*out, 1);
    if (rc == 0 && cli_tls_load(&c, *out, &d->conn.tls) < 0)
        rc = -1;
    if (rc < 0) {
        negio_config_del(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* ---- the command line -------------------------------------------------------------------------
 */

static int run_side(enum tunnel_mode mode, int argc, char **argv)
{
    struct tunnel_def *d = calloc(1, sizeof(*d));
    struct tunnel_global g = {.log = LOG_TEXT};
    if (d == NULL)
        return CLI_EXIT_FAIL;
    d->mode = mode;
    struct tunnel_state ts = {.d = d, .g = &g};
    const struct cli_use uses[] = {
        {&tunnel_group, &ts},
        CLI_TUNNEL_CONNECTION_USES(&d->conn),
    };
    struct cli c;
    const struct cli_command *cmd = mode == TUNNEL_CLIENT ? &client_command : &server_command;
    if (cli_parse(&c, cmd, uses, sizeof(uses) / sizeof(uses[0]), argc, argv) < 0) {
        tunnel_def_free(d);
        return CLI_EXIT_USAGE;
    }
    if (c.help) {
        tunnel_def_free(d);
        return CLI_EXIT_OK;
    }
    if (c.nargs > 0) {
        cli_error(&c, "unexpected argument '%s'", c.args[0]);
        tunnel_def_free(d);
        return CLI_EXIT_USAGE;
    }
    if (tunnel_validate(&c, d) < 0) {
        tunnel_def_free(d);
        return CLI_EXIT_USAGE;
    }
    struct tunnel_def *defs[1] = {d};
    return tunnel_run(defs, 1, &g, NULL);
}

/* ---- the config file --------------------------------------------------------------------------
 */

#define MAX_KEYS 1024
#define LINE_MAX_BYTES 4094 /* libinih's buffer is one line plus CR, LF and NUL */

struct kv {
    char *section, *name, *value;
    int line;
};

struct section_seen {
    char name[TUNNEL_NAME_MAX];
    size_t len; /* the whole name's, which NAME holds only below TUNNEL_NAME_MAX */
    int line;
};

/* What the reader and the handler share. */
struct ini_state {
    FILE *f;
    const char *path;
    int line; /* of the line last handed to libinih */
    int errors;
    struct kv kv[MAX_KEYS];
    size_t nkv;
    struct section_seen sections[TUNNEL_MAX];
    size_t nsections;
    int in_seen; /* the keys read now are of sections[nsections - 1] */
};

static void file_error(struct ini_state *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void file_error(struct ini_state *st, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "negio tunnel: %s:%d: ", st->path, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    st->errors++;
}

/* libinih's reader: one whole line per call, so that its line numbers are the file's; leading
 * white space removed (no continuation lines: an indented line is a line of its own); a line
 * too long for its buffer is reported here and handed on as an empty line. */
static char *line_reader(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, st->f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    st->line++;
    char *p = line + strspn(line, " \t");
    size_t len = strlen(p);
    if (len + 1 > (size_t)num || len > LINE_MAX_BYTES) {
        file_error(st, st->line, "line longer than %d bytes", LINE_MAX_BYTES);
        p = "\n";
        len = 1;
    } else if (p[0] == '[') {
        /* sections are remembered here: libinih calls back for keys only */
        char *end = strchr(p, ']');
        st->in_seen = end != NULL && st->nsections < TUNNEL_MAX;
        if (st->in_seen) {
            size_t nl = (size_t)(end - p - 1);
            struct section_seen *s = &st->sections[st->nsections++];
            snprintf(s->name, sizeof(s->name), "%.*s",
                     (int)(nl < sizeof(s->name) - 1 ? nl : sizeof(s->name) - 1), p + 1);
            s->len = nl;
            s->line = st->line;
        }
    }
    memcpy(str, p, len + 1);
    free(line);
    return str;
}

static int key_handler(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    if (st->nkv == MAX_KEYS) {
        file_error(st, st->line, "more than %d keys", MAX_KEYS);
        return 0;
    }
    struct kv *kv = &st->kv[st->nkv];
    /* the section as line_reader saw it: libinih's copy stops at 49 bytes */
    kv->section = strdup(st->in_seen ? st->sections[st->nsections - 1].name : section);
    kv->name = strdup(name);
    kv->value = strdup(value);
    kv->line = st->line;
    if (kv->section == NULL || kv->name == NULL || kv->value == NULL) {
        free(kv->section), free(kv->name), free(kv->value);
        file_error(st, st->line, "out of memory");
        return 0;
    }
    st->nkv++;
    return 1;
}

static int is_true(const char *v)
{
    return strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0 ||
           strcmp(v, "1") == 0;
}

static int is_false(const char *v)
{
    return strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "off") == 0 ||
           strcmp(v, "0") == 0;
}

/* One key of a tunnel's section, given to the group that owns the option of that name. */
static int take_key(struct cli *c, const struct cli_use *uses, size_t nuses, struct tunnel_def *d,
                    const struct kv *kv, struct ini_state *st)
{
    for (size_t i = 0; i < nuses; i++) {
        const struct cli_group *g = uses[i].group;
        for (const struct cli_option *o = g->options; o->name != NULL; o++) {
            if (strcmp(o->name, kv->name) != 0 || (o->roles & c->cmd->role) == 0)
                continue;
            if (o->has_arg == no_argument) {
                if (is_false(kv->value))
                    return 0;
                if (!is_true(kv->value)) {
                    file_error(st, kv->line, "[%s] %s: expected yes or no, got '%s'", d->name,
                               kv->name, kv->value);
                    return -1;
                }
                return g->take(c, uses[i].state, o->id, NULL);
            }
            char *copy = strdup(kv->value);
            if (add_owned(d, copy) < 0) {
                file_error(st, kv->line, "out of memory, or too many values");
                return -1;
            }
            return g->take(c, uses[i].state, o->id, copy);
        }
    }
    file_error(st, kv->line,
               "[%s] unknown option '%s' for a %s tunnel (see negio tunnel %s --help)", d->name,
               kv->name, d->mode == TUNNEL_CLIENT ? "client" : "server",
               d->mode == TUNNEL_CLIENT ? "client" : "server");
    return -1;
}

/* A section's keys into a new definition. */
static struct tunnel_def *section_def(struct ini_state *st, const struct section_seen *sec)
{
    const struct kv *mode = NULL;
    for (size_t i = 0; i < st->nkv; i++)
        if (strcmp(st->kv[i].section, sec->name) == 0 && strcmp(st->kv[i].name, "mode") == 0)
            mode = &st->kv[i];
    if (mode == NULL) {
        file_error(st, sec->line, "[%s] has no 'mode = client' or 'mode = server'", sec->name);
        return NULL;
    }
    struct tunnel_def *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    snprintf(d->name, sizeof(d->name), "%s", sec->name);
    d->file = st->path;
    d->line = sec->line;
    if (strcmp(mode->value, "client") == 0) {
        d->mode = TUNNEL_CLIENT;
    } else if (strcmp(mode->value, "server") == 0) {
        d->mode = TUNNEL_SERVER;
    } else {
        file_error(st, mode->line, "[%s] mode: expected client or server, got '%s'", sec->name,
                   mode->value);
        free(d);
        return NULL;
    }
    /* messages from the option groups name the file and line: "negio tunnel: F:L: [s]: ..."
     * without the synopsis (an empty usage) */
    struct cli_command cmd = *(d->mode == TUNNEL_CLIENT ? &client_command : &server_command);
    char cmdname[512];
    cmd.name = cmdname;
    struct cli c;
    memset(&c, 0, sizeof(c));
    c.cmd = &cmd;
    struct tunnel_state ts = {.d = d, .g = NULL};
    const struct cli_use uses[] = {
        {&tunnel_group, &ts},
        CLI_TUNNEL_CONNECTION_USES(&d->conn),
    };
    size_t nuses = sizeof(uses) / sizeof(uses[0]);
    for (size_t i = 0; i < nuses; i++)
        if (uses[i].group->init != NULL)
            uses[i].group->init(uses[i].state);
    int bad = 0;
    for (size_t i = 0; i < st->nkv; i++) {
        const struct kv *kv = &st->kv[i];
        if (strcmp(kv->section, sec->name) != 0 || kv == mode)
            continue;
        if (strcmp(kv->name, "name") == 0 || strcmp(kv->name, "log") == 0 ||
            strcmp(kv->name, "metrics") == 0) {
            file_error(st, kv->line, "[%s] %s: set %s", sec->name, kv->name,
                       strcmp(kv->name, "name") == 0 ? "by the section's name"
                                                     : "in [global], for the whole process");
            bad = 1;
            continue;
        }
        snprintf(cmdname, sizeof(cmdname), "tunnel: %s:%d: [%s]", st->path, kv->line, sec->name);
        int before = st->errors;
        if (take_key(&c, uses, nuses, d, kv, st) < 0) {
            if (st->errors == before)
                st->errors++; /* the group printed it */
            bad = 1;
        }
    }
    snprintf(cmdname, sizeof(cmdname), "tunnel: %s:%d: [%s]", st->path, sec->line, sec->name);
    if (!bad && tunnel_validate(&c, d) < 0) {
        st->errors++;
        bad = 1;
    }
    if (bad) {
        tunnel_def_free(d);
        return NULL;
    }
    return d;
}

int tunnel_config_read(const char *path, struct tunnel_def **defs, size_t *n,
                       struct tunnel_global *g)
{
    struct ini_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    st->path = path;
    *n = 0;
    *g = (struct tunnel_global){.log = LOG_TEXT};
    st->f = fopen(path, "r");
    if (st->f == NULL) {
        fprintf(stderr, "negio tunnel: %s: %s\n", path, strerror(errno));
        free(st);
        return -1;
    }
    int rc = ini_parse_stream(line_reader, st, key_handler, st);
    fclose(st->f);
    if (rc > 0) /* the first line libinih could not read (it reads on past it) */
        file_error(st, rc,
                   "expected [section], NAME = VALUE, or a comment starting with ';' or '#'");
    else if (rc < 0)
        file_error(st, 0, "cannot read the file");
    for (size_t i = 0; i < st->nsections; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(st->sections[i].name, st->sections[j].name) == 0)
                file_error(st, st->sections[i].line, "[%s] again (first on line %d)",
                           st->sections[i].name, st->sections[j].line);
    /* [global], or keys before any section */
    for (size_t i = 0; i < st->nkv; i++) {
        const struct kv *kv = &st->kv[i];
        if (kv->section[0] != '\0' && strcmp(kv->section, "global") != 0)
            continue;
        struct tunnel_def scratch;
        memset(&scratch, 0, sizeof(scratch));
        struct tunnel_state ts = {.d = &scratch, .g = g};
        struct cli_command cmd = client_command;
        char cmdname[512];
        snprintf(cmdname, sizeof(cmdname), "tunnel: %s:%d: [global]", path, kv->line);
        cmd.name = cmdname;
        struct cli c;
        memset(&c, 0, sizeof(c));
        c.cmd = &cmd;
        if (strcmp(kv->name, "log") == 0) {
            if (tunnel_take(&c, &ts, OPT_LOG, kv->value) < 0)
                st->errors++;
        } else if (strcmp(kv->name, "metrics") == 0) {
            if (tunnel_take(&c, &ts, OPT_METRICS, kv->value) < 0)
                st->errors++;
        } else {
            file_error(st, kv->line, "[global] unknown option '%s' (log, metrics)", kv->name);
        }
    }
    size_t count = 0;
    for (size_t i = 0; i < st->nsections; i++) {
        if (strcmp(st->sections[i].name, "global") == 0)
            continue;
        if (count == TUNNEL_MAX) {
            file_error(st, st->sections[i].line, "more than %d tunnels", TUNNEL_MAX);
            break;
        }
        if (st->sections[i].len >= TUNNEL_NAME_MAX || !name_valid(st->sections[i].name)) {
            file_error(st, st->sections[i].line,
                       "[%s%s]: a tunnel's name (its section's) is 1..%d letters, digits, '.', "
                       "'_' or '-'",
                       st->sections[i].name, st->sections[i].len >= TUNNEL_NAME_MAX ? "..." : "",
                       TUNNEL_NAME_MAX - 1);
            continue;
        }
        struct tunnel_def *d = section_def(st, &st->sections[i]);
        if (d != NULL)
            defs[count++] = d;
    }
    if (count == 0 && st->errors == 0)
        file_error(st, st->line, "no tunnel: add a [NAME] section with mode = client or server");
    int errors = st->errors;
    for (size_t i = 0; i < st->nkv; i++) {
        free(st->kv[i].section);
        free(st->kv[i].name);
        free(st->kv[i].value);
    }
    free(st);
    if (errors > 0) {
        for (size_t i = 0; i < count; i++)
            tunnel_def_free(defs[i]);
        return -1;
    }
    *n = count;
    return 0;
}

/* ---- negio tunnel -----------------------------------------------------------------------------
 */

static const char tunnel_usage[] =
    "usage: negio tunnel client --listen ADDR:PORT --connect HOST:PORT [OPTIONS]\n"
    "       negio tunnel server --listen ADDR:PORT --backend HOST:PORT [OPTIONS]\n"
    "       negio tunnel --config FILE [--check]\n"
    "\n"
    "Kerberos or Negotiate single sign-on and per-message protection for any TCP service,\n"
    "without changing it: a tunnel client beside the program that connects, a tunnel server\n"
    "beside the service. --config runs every [section] of FILE in one process; --check only\n"
    "reads it and reports what is wrong, with line numbers. 'negio tunnel client --help' and\n"
    "'negio tunnel server --help' list the options; docs/TUNNEL.md and negio(1) say more.\n";

int cli_tunnel(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "client") == 0) {
        static char name[] = "negio tunnel client";
        argv[1] = name;
        return run_side(TUNNEL_CLIENT, argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "server") == 0) {
        static char name[] = "negio tunnel server";
        argv[1] = name;
        return run_side(TUNNEL_SERVER, argc - 1, argv + 1);
    }
    const char *config = NULL;
    int check = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(tunnel_usage, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else {
            return cli_usage_error("tunnel", tunnel_usage, "unknown argument '%s'", argv[i]);
        }
    }
    if (config == NULL)
        return cli_usage_error("tunnel", tunnel_usage, "expected client, server or --config FILE");
    struct tunnel_def *defs[TUNNEL_MAX];
    size_t n;
    struct tunnel_global g;
    if (tunnel_config_read(config, defs, &n, &g) < 0)
        return CLI_EXIT_USAGE;
    if (check) {
        printf("%s: %zu tunnel%s, ok\n", config, n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++)
            tunnel_def_free(defs[i]);
        return CLI_EXIT_OK;
    }
    return tunnel_run(defs, n, &g, config);
}
