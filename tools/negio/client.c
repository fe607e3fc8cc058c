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

#include "cli.h"
#include "json.h"
#include "negio/engine.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_LINE (16u << 20) /* the connector's default message limit */
#define CLOSE_GRACE_MS 2000  /* after a failure: how long the close may take */

static const char usage_text[] =
    "usage: negio client --connect HOST:PORT [--spn SERVICE@HOST] [--mech MECH]\n"
    "                    [--user NAME --password-file FILE] [--protect LEVEL]\n"
    "                    [--min-protect LEVEL] [--require-mutual] [--allow-ntlm-fallback]\n"
    "                    [--delegate]\n"
    "                    [--profile native|gss-sample]\n"
    "                    [--tls | --tls-negotiate] [--ca FILE] [--tls-host NAME]\n"
    "                    [--cert FILE [--key FILE]] [--tls-allow-ntlm]\n"
    "                    [--timeout SECONDS] [--json] [MESSAGE ...]\n"
    "\n"
    "Authenticates to a negio server, sends each MESSAGE and waits for its reply before the\n"
    "next, then closes. A MESSAGE starting with none:, sign: or seal: is sent at that level\n"
    "(the prefix removed); others at the --protect level. Without MESSAGE arguments, each line\n"
    "of stdin is a message.\n"
    "\n"
    "options:\n"
    "  --connect HOST:PORT    the server ([::1]:PORT for IPv6)\n"
    "  --spn SERVICE@HOST     the server's service name (default negio@localhost)\n"
    "  --mech MECH            negotiate (SPNEGO: Kerberos, else NTLM; the default), kerberos\n"
    "                         or ntlm\n"
    "  --user NAME            authenticate as NAME (Kerberos: user or user@REALM; NTLM:\n"
    "                         user or DOMAIN\\user) with the password in the first line of\n"
    "  --password-file FILE   FILE; without them: the credential cache (KRB5CCNAME) and the\n"
    "                         NTLM account file (NTLM_USER_FILE)\n"
    "  --protect LEVEL        the default level of messages: none, sign or seal (default seal)\n"
    "  --min-protect LEVEL    the lowest level accepted in replies (default: sign, or the\n"
    "                         lowest level among --protect and the MESSAGE prefixes if lower)\n"
    "  --require-mutual       fail unless the server is authenticated (Kerberos only)\n"
    "  --allow-ntlm-fallback  let negotiate end on NTLM even after this client offered a\n"
    "                         Kerberos ticket for the server (refused by default: it is what\n"
    "                         a downgrade attack, or a server without the service's key, does)\n"
    "  --profile PROFILE      native (default) or gss-sample: talk to MIT's gss-server; each\n"
    "                         message's reply is the server's verified MIC of it (level sign)\n"
    "  --delegate             delegate this client's credentials to the server (Kerberos\n"
    "                         with a forwardable ticket; NTLM cannot delegate)\n"
    "  --timeout SECONDS      give up after this long in all (default 30; 0: never)\n"
    "  --json                 print one JSON object with the outcome\n"
    "  -h, --help             this text\n"
    "\n"
    "TLS (a TLS transport makes none the default of --protect and --min-protect):\n"
    "  --tls                  TLS only: the server is authenticated by its certificate (--ca,\n"
    "                         else the system's trusted CAs), no Kerberos or NTLM; messages\n"
    "                         at level none\n"
    "  --tls-negotiate        TLS, then Kerberos or NTLM inside it, bound to that TLS channel\n"
    "                         (a man in the middle terminating TLS fails). Without --ca:\n"
    "                         certificate-free, the server's certificate is not checked and\n"
    "                         Kerberos mutual authentication must prove the server (no NTLM)\n"
    "  --ca FILE              verify the server's certificate against these CAs (PEM)\n"
    "  --tls-host NAME        the name the server's certificate must hold (default: the HOST\n"
    "                         of --spn)\n"
    "  --cert FILE            a client certificate chain (PEM), sent if the server asks\n"
    "  --key FILE             its private key (PEM; default: in the --cert file)\n"
    "  --tls-allow-ntlm       certificate-free --tls-negotiate: allow NTLM anyway (the server\n"
    "                         is then authenticated by nothing)\n"
    "\n"
    "Exit status: 0 if every step succeeded, 1 if authentication or the exchange failed (or\n"
    "a TLS file could not be loaded), 2 for a usage error.\n";

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

/* The first line of FILE, without its newline, in OUT (wiped by the caller). */
static int read_password(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "negio client: --password-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int got = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!got) {
        fprintf(stderr, "negio client: --password-file %s is empty\n", path);
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

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

int cli_client(int argc, char **argv)
{
    static const struct option options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"spn", required_argument, NULL, 's'},
        {"mech", required_argument, NULL, 'm'},
        {"user", required_argument, NULL, 'u'},
        {"password-file", required_argument, NULL, 'P'},
        {"protect", required_argument, NULL, 'p'},
        {"min-protect", required_argument, NULL, 'n'},
        {"require-mutual", no_argument, NULL, 'M'},
        {"allow-ntlm-fallback", no_argument, NULL, 'F'},
        {"delegate", no_argument, NULL, 'd'},
        {"profile", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"tls", no_argument, NULL, CLI_OPT_TLS},
        {"tls-negotiate", no_argument, NULL, CLI_OPT_TLS_NEGOTIATE},
        {"cert", required_argument, NULL, CLI_OPT_CERT},
        {"key", required_argument, NULL, CLI_OPT_KEY},
        {"ca", required_argument, NULL, CLI_OPT_CA},
        {"tls-host", required_argument, NULL, CLI_OPT_TLS_HOST},
        {"tls-allow-ntlm", no_argument, NULL, CLI_OPT_TLS_ALLOW_NTLM},
        {NULL, 0, NULL, 0},
    };
    const char *connect = NULL, *spn = "negio@localhost", *user = NULL, *pwfile = NULL;
    negio_mech mech = NEGIO_MECH_NEGOTIATE;
    negio_level protect = NEGIO_LEVEL_SEAL, min = NEGIO_LEVEL_SIGN;
    int have_min = 0, have_protect = 0, have_mech = 0, require_mutual = 0, json = 0, delegate = 0;
    int ntlm_fallback = 0;
    negio_profile profile = NEGIO_PROFILE_NATIVE;
    struct cli_tls tls = {.transport = NEGIO_TRANSPORT_PLAIN};
    long timeout = DEFAULT_TIMEOUT_S;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int taken = cli_tls_option("client", usage_text, opt, optarg, &tls);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'c':
            connect = optarg;
            break;
        case 'R':
            if (strcmp(optarg, "native") == 0)
                profile = NEGIO_PROFILE_NATIVE;
            else if (strcmp(optarg, "gss-sample") == 0)
                profile = NEGIO_PROFILE_GSS_SAMPLE;
            else
                return cli_usage_error("client", usage_text,
                                       "--profile must be native or gss-sample");
            break;
        case 's':
            spn = optarg;
            break;
        case 'm':
            if (negio_mech_parse(optarg, &mech) < 0)
                return cli_usage_error("client", usage_text,
                                       "--mech: expected negotiate, kerberos or ntlm, got '%s'",
                                       optarg);
            have_mech = 1;
            break;
        case 'u':
            user = optarg;
            break;
        case 'P':
            pwfile = optarg;
            break;
        case 'p':
            if (cli_parse_level("client", usage_text, "--protect", optarg, &protect) < 0)
                return CLI_EXIT_USAGE;
            have_protect = 1;
            break;
        case 'n':
            if (cli_parse_level("client", usage_text, "--min-protect", optarg, &min) < 0)
                return CLI_EXIT_USAGE;
            have_min = 1;
            break;
        case 'M':
            require_mutual = 1;
            break;
        case 'F':
            ntlm_fallback = 1;
            break;
        case 'd':
            delegate = 1;
            break;
        case 't': {
            char *end;
            errno = 0;
            timeout = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || timeout < 0 || timeout > 86400)
                return cli_usage_error("client", usage_text,
                                       "--timeout: expected 0..86400 seconds, got '%s'", optarg);
            break;
        }
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CLI_EXIT_OK;
        default:
            cli_usage_short("client", usage_text);
            return CLI_EXIT_USAGE;
        }
    }
    if (connect == NULL)
        return cli_usage_error("client", usage_text, "--connect HOST:PORT is required");
    char host[256];
    uint16_t port;
    if (cli_split_hostport(connect, host, sizeof(host), &port) < 0 || host[0] == '\0' || port == 0)
        return cli_usage_error("client", usage_text, "--connect: expected HOST:PORT, got '%s'",
                               connect);
    if (strchr(spn, '@') == NULL)
        return cli_usage_error("client", usage_text, "--spn: expected SERVICE@HOST, got '%s'", spn);
    if ((user == NULL) != (pwfile == NULL))
        return cli_usage_error("client", usage_text, "--user and --password-file go together");
    if (cli_tls_validate("client", usage_text, NEGIO_ROLE_CLIENT, &tls) < 0)
        return CLI_EXIT_USAGE;
    if (cli_tls_levels("client", usage_text, &tls, profile, &have_protect, &protect, &have_min,
                       &min) < 0)
        return CLI_EXIT_USAGE;
    if (tls.transport == NEGIO_TRANSPORT_TLS) {
        if (have_mech || user != NULL || require_mutual || delegate)
            return cli_usage_error("client", usage_text,
                                   "--tls authenticates with certificates only: no --mech, "
                                   "--user, --require-mutual or --delegate (use --tls-negotiate "
                                   "for Kerberos or NTLM)");
    }
    char **messages = argv + optind;
    int nmessages = argc - optind;
    if (!have_min) {
        negio_level low = lowest_level(messages, nmessages, protect);
        if (low < min)
            min = low;
    }

    negio_config *cfg = NULL;
    char password[1024] = {0};
    int rc = negio_config_new(&cfg, NEGIO_ROLE_CLIENT);
    /* the transport before the levels: choosing a TLS transport resets them to none */
    if (rc == 0 && (rc = negio_config_set_mech(cfg, mech)) == 0 &&
        (rc = negio_config_set_service(cfg, spn)) == 0 && (rc = cli_tls_apply(cfg, &tls)) == 0 &&
        (rc = negio_config_set_default_level(cfg, protect)) == 0 &&
        (rc = negio_config_set_min_level(cfg, min)) == 0 &&
        (rc = negio_config_set_require_server_auth(cfg, require_mutual)) == 0 &&
        (rc = negio_config_set_allow_ntlm_fallback(cfg, ntlm_fallback)) == 0 &&
        (rc = negio_config_set_delegate(cfg, delegate)) == 0 &&
        (rc = negio_config_set_profile(cfg, profile)) == 0 && user != NULL) {
        if (read_password(pwfile, password, sizeof(password)) < 0) {
            explicit_bzero(password, sizeof(password));
            negio_config_del(cfg);
            return CLI_EXIT_USAGE;
        }
        rc = negio_config_set_password(cfg, user, password);
        explicit_bzero(password, sizeof(password));
    }
    if (rc < 0) {
        fprintf(stderr, "negio client: invalid configuration: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        negio_config_del(cfg);
        return rc == NEGIO_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }

    if (cli_tls_load("client", cfg, &tls) < 0) {
        negio_config_del(cfg);
        return CLI_EXIT_FAIL;
    }

    struct run r;
    memset(&r, 0, sizeof(r));
    r.json = json;
    r.delegate = delegate;
    r.transport = tls.transport;
    r.protect = protect;
    r.deadline = timeout > 0 ? now_ms() + timeout * 1000 : -1;
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
    rc = negio_engine_new(&r.engine, &eo);
    if (rc < 0) {
        fail(&r, negio_err_name(rc), "cannot start the engine: %s", negio_strerror(rc));
        goto report;
    }
    rc = negio_engine_connect(r.engine, host, port, cfg, NULL, &r.conn);
    if (rc < 0) {
        fail(&r, negio_err_name(rc), "cannot connect to %s: %s", connect, negio_strerror(rc));
        goto report;
    }
    if (run_client(&r, messages, nmessages) < 0) {
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
    if (json)
        print_json(&r);
    if (r.error != NULL)
        fprintf(stderr, "negio client: %s: %s\n", r.error, r.detail != NULL ? r.detail : "");
    int status = r.error == NULL ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    free_run(&r);
    if (r.wake_r >= 0)
        close(r.wake_r);
    if (r.sh.wake_w >= 0)
        close(r.sh.wake_w);
    pthread_mutex_destroy(&r.sh.mu);
    negio_config_del(cfg);
    return status;
}
