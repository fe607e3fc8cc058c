/*
 * negio client: one connection through the engine (one loop thread). Authenticates, sends each
 * message and waits for its reply before the next, then closes with a protected close and waits
 * for the engine to report the end. Callbacks run on the engine's loop thread; they record what
 * happened under a mutex and wake the main thread through a pipe, which it polls together with
 * stdin (messages read from stdin) and the run's deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "opt.h"
#include "negio/engine.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_LINE (16u << 20) /* the connector's default message limit */
#define CLOSE_GRACE_MS 2000  /* after a failure: how long the close may take */

/* ---- options --------------------------------------------------------------------------------- */

enum {
    OPT_CONNECT = CLI_GROUP_BASE(CLI_G_CLIENT),
    OPT_TIMEOUT,
};

/* What the command line asks for. */
struct client_cmdline {
    const char *connect;
    long timeout; /* seconds, 0: none */
    struct cli_connection conn;
    int json;
    /* found by client_validate() */
    char host[256];
    uint16_t port;
    char **messages; /* the MESSAGE arguments */
    int nmessages;
};

static const struct cli_option client_options[] = {
    {"connect", required_argument, OPT_CONNECT, CLI_ALL, "HOST:PORT",
     "the server ([::1]:PORT for IPv6)"},
    {"timeout", required_argument, OPT_TIMEOUT, CLI_ALL, "SECONDS",
     "give up after this long in all (default 30; 0: never)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis client_synopsis[] = {
    {CLI_ALL, "--connect HOST:PORT"},
    {CLI_ALL, "[--timeout SECONDS]"},
    {0, NULL},
};

static void client_init(void *state)
{
    struct client_cmdline *o = state;
    o->connect = NULL;
    o->timeout = DEFAULT_TIMEOUT_S;
}

static int client_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct client_cmdline *o = state;
    if (id == OPT_TIMEOUT)
        return cli_parse_long(c, "--timeout", arg, 0, 86400, " seconds", &o->timeout);
    o->connect = arg;
    return 0;
}

static const struct cli_group client_group = {
    .no = CLI_G_CLIENT,
    .options = client_options,
    .synopsis = client_synopsis,
    .init = client_init,
    .take = client_take,
};

static const struct cli_command client_command = {
    .name = "client",
    .role = CLI_INITIATOR,
    .operands = "[MESSAGE ...]",
    .about =
        "Authenticates to a negio server, sends each MESSAGE and waits for its reply before "
        "the\nnext, then closes. A MESSAGE starting with none:, sign: or seal: is sent at that "
        "level\n(the prefix removed); others at the --protect level. Without MESSAGE "
        "arguments, each line\nof stdin is a message.\n",
    .footer = "Exit status: 0 if every step succeeded, 1 if authentication or the exchange failed "
              "(or\na TLS file could not be loaded), 2 for a usage error.\n",
    .column = 25,
};

/* The lowest level among the messages' prefixes and DEFAULT_LEVEL. */
static negio_level lowest_level(char **messages, int n, negio_level default_level)
{
    negio_level low = default_level;
    for (int i = 0; i < n; i++)
        if (strncmp(messages[i], "none:", 5) == 0)
            low = NEGIO_LEVEL_NONE;
        else if (strncmp(messages[i], "sign:", 5) == 0 && low > NEGIO_LEVEL_SIGN)
            low = NEGIO_LEVEL_SIGN;
    return low;
}

static int client_parse(struct cli *c, struct client_cmdline *o, int argc, char **argv)
{
    const struct cli_use uses[] = {
        {&client_group, o},
        CLI_CONNECTION_USES(&o->conn),
        {&cli_output_group, &o->json},
    };
    return cli_parse(c, &client_command, uses, sizeof(uses) / sizeof(uses[0]), argc, argv);
}

/* The combinations, the server's address, and the lowest level to accept. */
static int client_validate(const struct cli *c, struct client_cmdline *o)
{
    if (o->connect == NULL)
        return cli_error(c, "--connect HOST:PORT is required");
    if (cli_split_hostport(o->connect, o->host, sizeof(o->host), &o->port) < 0 ||
        o->host[0] == '\0' || o->port == 0)
        return cli_error(c, "--connect: expected HOST:PORT, got '%s'", o->connect);
    if (cli_connection_validate(c, &o->conn, NULL, 0) < 0)
        return -1;
    o->messages = c->args;
    o->nmessages = c->nargs;
    struct cli_protect *p = &o->conn.protect;
    if (!p->have_min) {
        negio_level low = lowest_level(o->messages, o->nmessages, p->protect);
        if (low < p->min)
            p->min = low;
    }
    return 0;
}

/* ---- the run --------------------------------------------------------------------------------- */

struct reply {
    struct reply *next;
    negio_level level;
    size_t len;
    uint8_t data[];
};

/* What the callbacks saw; guarded by mu. */
struct shared {
    pthread_mutex_t mu;
    int wake_w;
    int authenticated;
    negio_mech mech;
    int negotiated, server_authenticated;
    unsigned flags;
    negio_level peer_min;
    char *peer;
    negio_auth_info tls; /* a TLS transport: the TLS facts, strings copied */
    struct reply *replies, **tail;
    int oom;
    int closed;
    negio_close_reason reason;
    int code;
    char *detail;
};

/* One message and what came back. */
struct exchange {
    char *sent;
    size_t sent_len;
    negio_level sent_level;
    struct reply *reply; /* NULL if none */
    const char *error;   /* NULL, or the run's error if it failed at this message */
};

/* The run, on the main thread. */
struct run {
    struct shared sh;
    int wake_r;
    negio_engine *engine;
    negio_econn *conn;
    long long deadline; /* monotonic ms; -1: none */
    int json;
    int delegate;              /* --delegate */
    negio_transport transport; /* --tls, --tls-negotiate */
    negio_level protect;
    struct exchange *ex;
    size_t nex, capex;
    const char *error; /* the first failure: a NEGIO_ERR_* name or "timeout" */
    char *detail;
    /* stdin, when messages come from it */
    char *in;
    size_t inlen, incap, inused; /* inused: the line last returned, dropped on the next call */
    int ineof;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct shared *sh)
{
    /* non-blocking: if the pipe is full the main thread has wake-ups pending anyway */
    ssize_t n = write(sh->wake_w, "", 1);
    (void)n;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* ---- callbacks (the engine's loop thread) ------------------------------------------------- */

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    struct shared *sh = user;
    (void)c;
    pthread_mutex_lock(&sh->mu);
    sh->authenticated = 1;
    sh->mech = info->mech;
    sh->negotiated = info->negotiated;
    sh->server_authenticated = info->server_authenticated;
    sh->flags = info->flags;
    sh->peer_min = info->peer_min_level;
    sh->peer = dup_or_null(info->peer);
    if (info->peer != NULL && sh->peer == NULL)
        sh->oom = 1;
    if (info->tls_version != NULL) {
        /* the strings live as long as the connector: copied for after the engine is gone */
        sh->tls = *info;
        sh->tls.peer = sh->tls.local_name = NULL;
        sh->tls.tls_version = dup_or_null(info->tls_version);
        sh->tls.tls_cipher = dup_or_null(info->tls_cipher);
        sh->tls.tls_peer = dup_or_null(info->tls_peer);
        if (sh->tls.tls_version == NULL || (info->tls_cipher && sh->tls.tls_cipher == NULL) ||
            (info->tls_peer != NULL && sh->tls.tls_peer == NULL))
            sh->oom = 1;
    }
    pthread_mutex_unlock(&sh->mu);
    wake(sh);
    return 0;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    struct shared *sh = user;
    (void)c;
    struct reply *r = malloc(sizeof(*r) + len + 1);
    pthread_mutex_lock(&sh->mu);
    if (r == NULL)
        sh->oom = 1;
    else {
        r->next = NULL;
        r->level = level;
        r->len = len;
        if (len > 0)
            memcpy(r->data, data, len);
        r->data[len] = '\0';
        *sh->tail = r;
        sh->tail = &r->next;
    }
    pthread_mutex_unlock(&sh->mu);
    wake(sh);
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    struct shared *sh = user;
    (void)c;
    pthread_mutex_lock(&sh->mu);
    if (!sh->closed) {
        sh->closed = 1;
        sh->reason = reason;
        sh->code = code;
        sh->detail = strdup(detail != NULL ? detail : "");
    }
    pthread_mutex_unlock(&sh->mu);
    wake(sh);
}

/* ---- the main thread --------------------------------------------------------------------- */

/* Whether the credentials went to the server, as the mechanism reports it (with SH->mu held).
 * Kerberos grants the flag once a forwarded ticket went along; gss-ntlmssp grants whatever the
 * initiator asked for, though NTLM cannot delegate, so NTLM never counts. */
static int delegated(const struct shared *sh)
{
    return sh->mech == NEGIO_MECH_KERBEROS && (sh->flags & NEGIO_FLAG_DELEG) != 0;
}

static int fail(struct run *r, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct run *r, const char *error, const char *fmt, ...)
{
    if (r->error != NULL)
        return -1; /* the first failure is the one to report */
    r->error = error;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&r->detail, fmt, ap) < 0)
        r->detail = NULL;
    va_end(ap);
    return -1;
}

/* The connection ended while waiting for WHAT. */
static int fail_closed(struct run *r, const char *what)
{
    struct shared *sh = &r->sh;
    const char *error = sh->code != 0                         ? negio_err_name(sh->code)
                        : sh->reason == NEGIO_CLOSE_TRUNCATED ? negio_err_name(NEGIO_ERR_TRUNCATED)
                        : sh->reason == NEGIO_CLOSE_TIMEOUT   ? "timeout"
                                                              : negio_err_name(NEGIO_ERR_CLOSED);
    return fail(r, error, "connection closed (%s) while waiting for %s: %s",
                negio_close_reason_name(sh->reason), what, sh->detail ? sh->detail : "");
}

/* Waits until a callback wakes us (1), stdin is readable (2, with WATCH_STDIN) or the deadline
 * passes (0). */
static int wait_wake(struct run *r, int watch_stdin)
{
    struct pollfd p[2] = {{r->wake_r, POLLIN, 0}, {0, POLLIN, 0}};
    for (;;) {
        int timeout = -1;
        if (r->deadline >= 0) {
            long long left = r->deadline - now_ms();
            if (left <= 0)
                return 0;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        int n = poll(p, watch_stdin ? 2 : 1, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        if (p[0].revents) {
            char buf[64];
            while (read(r->wake_r, buf, sizeof(buf)) > 0)
                ;
            return 1;
        }
        if (watch_stdin && p[1].revents)
            return 2;
    }
}

/* Waits until authenticated. */
static int wait_authenticated(struct run *r)
{
    for (;;) {
        pthread_mutex_lock(&r->sh.mu);
        int done = r->sh.authenticated, closed = r->sh.closed;
        pthread_mutex_unlock(&r->sh.mu);
        if (done)
            return 0;
        if (closed)
            return fail_closed(r, "authentication");
        if (wait_wake(r, 0) == 0)
            return fail(r, "timeout", "not authenticated within the --timeout");
    }
}

static struct exchange *new_exchange(struct run *r)
{
    if (r->nex == r->capex) {
        size_t cap = r->capex ? r->capex * 2 : 8;
        struct exchange *ex = realloc(r->ex, cap * sizeof(*ex));
        if (ex == NULL)
            return NULL;
        r->ex = ex;
        r->capex = cap;
    }
    struct exchange *x = &r->ex[r->nex++];
    memset(x, 0, sizeof(*x));
    return x;
}

static void print_exchange(const struct exchange *x)
{
    printf("%s ", negio_level_name(x->sent_level));
    json_quote(stdout, x->sent, x->sent_len);
    if (x->reply != NULL) {
        printf(" -> %s ", negio_level_name(x->reply->level));
        json_quote(stdout, x->reply->data, x->reply->len);
    }
    putchar('\n');
    fflush(stdout);
}

/* Sends X and waits for its reply. */
static int send_and_wait(struct run *r, struct exchange *x)
{
    /* checked here: the engine would take the message and drop it on its loop thread, where
     * the connector refuses it */
    if (r->transport == NEGIO_TRANSPORT_TLS && x->sent_level != NEGIO_LEVEL_NONE)
        return fail(r, negio_err_name(NEGIO_ERR_INVALID),
                    "message %zu not sent at level %s: plain TLS has no GSS-API context to sign "
                    "or seal with (every message travels at level none inside TLS)",
                    r->nex, negio_level_name(x->sent_level));
    int rc = negio_engine_send(r->engine, r->conn, x->sent, x->sent_len, x->sent_level);
    if (rc < 0) {
        pthread_mutex_lock(&r->sh.mu);
        int closed = r->sh.closed;
        negio_level peer_min = r->sh.peer_min;
        pthread_mutex_unlock(&r->sh.mu);
        /* the engine refuses writes as soon as the connection is closing, before on_closed
         * has told why (the peer's CLOSE and its status): wait for it, and report that */
        while (rc == NEGIO_ERR_CLOSED && !closed) {
            if (wait_wake(r, 0) == 0)
                break;
            pthread_mutex_lock(&r->sh.mu);
            closed = r->sh.closed;
            pthread_mutex_unlock(&r->sh.mu);
        }
        if (rc == NEGIO_ERR_CLOSED && closed)
            return fail_closed(r, "a reply");
        if (rc == NEGIO_ERR_LEVEL)
            return fail(r, negio_err_name(rc),
                        "message %zu not sent at level %s: %s (the server's minimum is %s)", r->nex,
                        negio_level_name(x->sent_level), negio_strerror(rc),
                        negio_level_name(peer_min));
        return fail(r, negio_err_name(rc), "message %zu (%zu bytes at level %s) not sent: %s",
                    r->nex, x->sent_len, negio_level_name(x->sent_level), negio_strerror(rc));
    }
    for (;;) {
        pthread_mutex_lock(&r->sh.mu);
        struct reply *reply = r->sh.replies;
        if (reply != NULL) {
            r->sh.replies = reply->next;
            if (r->sh.replies == NULL)
                r->sh.tail = &r->sh.replies;
        }
        int closed = r->sh.closed, oom = r->sh.oom;
        pthread_mutex_unlock(&r->sh.mu);
        if (reply != NULL) {
            x->reply = reply;
            return 0;
        }
        if (oom)
            return fail(r, negio_err_name(NEGIO_ERR_NOMEM), "out of memory for a reply");
        if (closed)
            return fail_closed(r, "a reply");
        if (wait_wake(r, 0) == 0)
            return fail(r, "timeout", "no reply to message %zu within the --timeout", r->nex);
    }
}

/* Sends one MESSAGE (with an optional level prefix) and waits for its reply. */
static int exchange(struct run *r, const char *msg, size_t len)
{
    negio_level level = r->protect;
    static const struct {
        const char *prefix;
        negio_level level;
    } prefixes[] = {
        {"none:", NEGIO_LEVEL_NONE}, {"sign:", NEGIO_LEVEL_SIGN}, {"seal:", NEGIO_LEVEL_SEAL}};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (len >= 5 && memcmp(msg, prefixes[i].prefix, 5) == 0) {
            level = prefixes[i].level;
            msg += 5;
            len -= 5;
            break;
        }
    struct exchange *x = new_exchange(r);
    if (x == NULL || (x->sent = malloc(len + 1)) == NULL)
        return fail(r, negio_err_name(NEGIO_ERR_NOMEM), "out of memory");
    memcpy(x->sent, msg, len);
    x->sent[len] = '\0';
    x->sent_len = len;
    x->sent_level = level;
    if (send_and_wait(r, x) < 0) {
        x->error = r->error;
        return -1;
    }
    if (!r->json)
        print_exchange(x);
    return 0;
}

/* The next line of stdin (without its newline) in *LINE and *LEN: 1, or 0 at the end of input,
 * or -1 on failure. A line stays valid until the next call. */
static int next_line(struct run *r, char **line, size_t *len)
{
    if (r->inused > 0) {
        memmove(r->in, r->in + r->inused, r->inlen - r->inused);
        r->inlen -= r->inused;
        r->inused = 0;
    }
    for (;;) {
        char *nl = r->inlen > 0 ? memchr(r->in, '\n', r->inlen) : NULL;
        if (nl != NULL || (r->ineof && r->inlen > 0)) {
            size_t n = nl != NULL ? (size_t)(nl - r->in) : r->inlen;
            r->inused = nl != NULL ? n + 1 : n;
            if (n > 0 && r->in[n - 1] == '\r')
                n--;
            r->in[n] = '\0';
            *line = r->in;
            *len = n;
            return 1;
        }
        if (r->ineof)
            return 0;
        if (r->inlen > MAX_LINE)
            return fail(r, negio_err_name(NEGIO_ERR_MSG_SIZE), "a line of stdin is over %u bytes",
                        MAX_LINE);
        int w = wait_wake(r, 1);
        if (w == 0)
            return fail(r, "timeout", "no complete line on stdin within the --timeout");
        if (w == 1) {
            pthread_mutex_lock(&r->sh.mu);
            int closed = r->sh.closed;
            pthread_mutex_unlock(&r->sh.mu);
            if (closed)
                return fail_closed(r, "input on stdin");
            continue;
        }
        if (r->incap - r->inlen < 4096 + 1) {
            size_t cap = r->incap * 2 + 8192;
            char *in = realloc(r->in, cap);
            if (in == NULL)
                return fail(r, negio_err_name(NEGIO_ERR_NOMEM), "out of memory");
            r->in = in;
            r->incap = cap;
        }
        ssize_t n = read(0, r->in + r->inlen, r->incap - r->inlen - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return fail(r, negio_err_name(NEGIO_ERR_SYSTEM), "reading stdin: %s", strerror(errno));
        if (n == 0)
            r->ineof = 1;
        r->inlen += (size_t)n;
    }
}

/* Closes the connection and waits for the engine to report it closed, until DEADLINE. */
static int close_and_wait(struct run *r, long long deadline)
{
    int rc = negio_engine_close(r->conn, 0);
    if (rc < 0 && rc != NEGIO_ERR_CLOSED)
        return fail(r, negio_err_name(rc), "close: %s", negio_strerror(rc));
    long long saved = r->deadline;
    r->deadline = deadline;
    for (;;) {
        pthread_mutex_lock(&r->sh.mu);
        int closed = r->sh.closed;
        pthread_mutex_unlock(&r->sh.mu);
        if (closed)
            break;
        if (wait_wake(r, 0) == 0) {
            r->deadline = saved;
            return fail(r, "timeout", "the connection did not close within the --timeout");
        }
    }
    r->deadline = saved;
    if (r->sh.reason != NEGIO_CLOSE_CLEAN || r->sh.code != 0)
        return fail_closed(r, "the close to complete");
    return 0;
}

static int run_client(struct run *r, char **messages, int nmessages)
{
    if (wait_authenticated(r) < 0)
        return -1;
    if (!r->json) {
        pthread_mutex_lock(&r->sh.mu);
        if (r->sh.mech == NEGIO_MECH_NONE) { /* plain TLS */
            printf("connected by TLS only, ");
            cli_tls_print(stdout, NEGIO_ROLE_CLIENT, &r->sh.tls);
            putchar('\n');
        } else {
            printf("authenticated to %s with %s%s, server %sauthenticated%s\n",
                   r->sh.peer ? r->sh.peer : "?", negio_mech_name(r->sh.mech),
                   r->sh.negotiated ? " (negotiated)" : "",
                   r->sh.server_authenticated ? "" : "not ",
                   !r->delegate        ? ""
                   : delegated(&r->sh) ? ", credentials delegated"
                                       : ", delegation asked for but not granted");
            if (r->transport != NEGIO_TRANSPORT_PLAIN) {
                printf("  ");
                cli_tls_print(stdout, NEGIO_ROLE_CLIENT, &r->sh.tls);
                putchar('\n');
            }
        }
        pthread_mutex_unlock(&r->sh.mu);
        fflush(stdout);
    }
    if (nmessages > 0) {
        for (int i = 0; i < nmessages; i++)
            if (exchange(r, messages[i], strlen(messages[i])) < 0)
                return -1;
    } else {
        char *line = NULL;
        size_t len = 0;
        int got;
        while ((got = next_line(r, &line, &len)) > 0)
            if (exchange(r, line, len) < 0)
                return -1;
        if (got < 0)
            return -1;
    }
    if (close_and_wait(r, r->deadline) < 0)
        return -1;
    if (!r->json) {
        printf("closed\n");
        fflush(stdout);
    }
    return 0;
}

static void print_json(struct run *r)
{
    json_writer w;
    json_init(&w, stdout);
    json_begin_object(&w);
    json_kv_bool(&w, "ok", r->error == NULL);
    if (r->error != NULL) {
        json_kv_string(&w, "error", r->error);
        json_kv_string(&w, "detail", r->detail != NULL ? r->detail : "");
    }
    json_kv_bool(&w, "delegate", r->delegate);
    pthread_mutex_lock(&r->sh.mu);
    if (r->sh.authenticated) {
        /* plain TLS: no GSS mechanism */
        json_kv_string(&w, "mech",
                       r->sh.mech != NEGIO_MECH_NONE ? negio_mech_name(r->sh.mech) : NULL);
        json_kv_bool(&w, "negotiated", r->sh.negotiated);
        json_kv_string(&w, "peer", r->sh.peer);
        json_kv_bool(&w, "server_authenticated", r->sh.server_authenticated);
        json_kv_bool(&w, "delegated", delegated(&r->sh));
        if (r->transport != NEGIO_TRANSPORT_PLAIN)
            cli_tls_json(&w, r->transport, &r->sh.tls);
    }
    pthread_mutex_unlock(&r->sh.mu);
    json_key(&w, "messages");
    json_begin_array(&w);
    for (size_t i = 0; i < r->nex; i++) {
        const struct exchange *x = &r->ex[i];
        json_begin_object(&w);
        json_key(&w, "sent");
        json_bytes(&w, x->sent, x->sent_len);
        json_kv_string(&w, "sent_level", negio_level_name(x->sent_level));
        if (x->reply != NULL) {
            json_kv_string(&w, "reply_level", negio_level_name(x->reply->level));
            json_key(&w, "reply");
            json_bytes(&w, x->reply->data, x->reply->len);
        }
        json_kv_bool(&w, "ok", x->reply != NULL);
        if (x->error != NULL)
            json_kv_string(&w, "error", x->error);
        json_end_object(&w);
    }
    json_end_array(&w);
    json_end_object(&w);
    fputc('\n', stdout);
    fflush(stdout);
}

static void free_run(struct run *r)
{
    for (size_t i = 0; i < r->nex; i++) {
        free(r->ex[i].sent);
        free(r->ex[i].reply);
    }
    free(r->ex);
    for (struct reply *p = r->sh.replies, *next; p != NULL; p = next) {
        next = p->next;
        free(p);
    }
    free(r->sh.peer);
    free((char *)r->sh.tls.tls_version);
    free((char *)r->sh.tls.tls_cipher);
    free((char *)r->sh.tls.tls_peer);
    free(r->sh.detail);
    free(r->detail);
    free(r->in);
}

/* One connection through the engine, reported on stdout; the status is the outcome's. */
static int client_run(const struct cli *c, const struct client_cmdline *o)
{
    negio_config *cfg = NULL;
    int status = cli_connection_config(c, &o->conn, &cfg);
    if (status != CLI_EXIT_OK)
        return status;
    if (cli_tls_load(c, cfg, &o->conn.tls) < 0) {
        negio_config_del(cfg);
        return CLI_EXIT_FAIL;
    }

    struct run r;
    memset(&r, 0, sizeof(r));
    r.json = o->json;
    r.delegate = o->conn.auth.delegate;
    r.transport = o->conn.tls.transport;
    r.protect = o->conn.protect.protect;
    r.deadline = o->timeout > 0 ? now_ms() + o->timeout * 1000 : -1;
    r.sh.tail = &r.sh.replies;
    r.wake_r = -1;
    r.sh.wake_w = -1;
    pthread_mutex_init(&r.sh.mu, NULL);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
        fail(&r, negio_err_name(NEGIO_ERR_SYSTEM), "pipe: %s", strerror(errno));
        goto report;
    }
    r.wake_r = pipefd[0];
    r.sh.wake_w = pipefd[1];

    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.loops = 1;
    eo.workers = 1;
    eo.shutdown_timeout_ms = CLOSE_GRACE_MS;
    eo.callbacks.on_authenticated = on_authenticated;
    eo.callbacks.on_message = on_message;
    /* gss-sample: the server's verified MIC of a message is that message's reply */
    eo.callbacks.on_acknowledged = on_message;
    eo.callbacks.on_closed = on_closed;
    eo.user = &r.sh;
    int rc = negio_engine_new(&r.engine, &eo);
    if (rc < 0) {
        fail(&r, negio_err_name(rc), "cannot start the engine: %s", negio_strerror(rc));
        goto report;
    }
    rc = negio_engine_connect(r.engine, o->host, o->port, cfg, NULL, &r.conn);
    if (rc < 0) {
        fail(&r, negio_err_name(rc), "cannot connect to %s: %s", o->connect, negio_strerror(rc));
        goto report;
    }
    if (run_client(&r, o->messages, o->nmessages) < 0) {
        /* end the connection politely if it is still open, but never wait long for it */
        pthread_mutex_lock(&r.sh.mu);
        int closed = r.sh.closed;
        pthread_mutex_unlock(&r.sh.mu);
        if (!closed)
            close_and_wait(&r, now_ms() + CLOSE_GRACE_MS);
    }

report:
    if (r.engine != NULL)
        negio_engine_shutdown(r.engine); /* no callback runs after this */
    if (r.conn != NULL)
        negio_econn_unref(r.conn);
    negio_engine_del(r.engine);
    if (r.json)
        print_json(&r);
    if (r.error != NULL)
        fprintf(stderr, "negio client: %s: %s\n", r.error, r.detail != NULL ? r.detail : "");
    status = r.error == NULL ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    free_run(&r);
    if (r.wake_r >= 0)
        close(r.wake_r);
    if (r.sh.wake_w >= 0)
        close(r.sh.wake_w);
    pthread_mutex_destroy(&r.sh.mu);
    negio_config_del(cfg);
    return status;
}

int cli_client(int argc, char **argv)
{
    struct client_cmdline o;
    struct cli c;
    memset(&o, 0, sizeof(o));
    if (client_parse(&c, &o, argc, argv) < 0)
        return CLI_EXIT_USAGE;
    if (c.help)
        return CLI_EXIT_OK;
    if (client_validate(&c, &o) < 0)
        return CLI_EXIT_USAGE;
    return client_run(&c, &o);
}
