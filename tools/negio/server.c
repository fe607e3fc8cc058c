/*
 * negio server: accepts authenticated connections with the engine, reports what happens on each
 * (one line per event, human-readable or JSON) and does one of three things with messages:
 *  --echo     sends every message back at the level it arrived;
 *  --files    a tiny file service ("write NAME TEXT", "read NAME") in one directory, with
 *             --impersonate done as the local account the client maps to (identity.h);
 *  --forward  sends every message on to a backend over a connection made with the client's
 *             delegated credentials, and the backend's reply back to the client.
 * Runs until SIGINT or SIGTERM, then shuts the engine down gracefully.
 *
 * Threads: the engine calls back on several loop threads, each connection always on the same
 * one. Per-connection state hangs off the connection (negio_econn_set_user) and is only touched
 * on its thread, except a forward's link, which both of its connections share under a mutex.
 * Impersonation switches the loop thread alone, around one file operation, and switches back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "negio/engine.h"
#include "negio/identity.h"

/* --profile: the wire profile of every connection (a gss-sample server answers by itself) */
static negio_profile server_profile = NEGIO_PROFILE_NATIVE;

static const char usage_text[] =
    "usage: negio server [--listen ADDR:PORT] [--mech negotiate|kerberos|ntlm] [--keytab FILE]\n"
    "                    [--spn SERVICE@HOST] [--protect LEVEL] [--min-protect LEVEL]\n"
    "                    [--map PRINCIPAL=LOCALUSER ...] [--ntlm-domain DOMAIN] [--json]\n"
    "                    [--close-at-expiry]\n"
    "                    [--profile native|gss-sample]\n"
    "                    [--tls | --tls-negotiate] [--cert FILE [--key FILE]] [--ca FILE]\n"
    "                    [--require-client-cert] [--tls-allow-ntlm]\n"
    "                    [--echo | --files DIR [--impersonate [--allow-root] [--allow-system]]\n"
    "                     | --forward HOST:PORT --forward-spn SERVICE@HOST]\n"
    "\n"
    "Accepts connections until SIGINT or SIGTERM and prints one line per event.\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT   where to listen (default 127.0.0.1:7000; port 0 picks a free one;\n"
    "                       [::1]:PORT for IPv6, :PORT for every address)\n"
    "  --mech MECH          what clients may authenticate with: negotiate (Kerberos or NTLM,\n"
    "                       the default), kerberos (Kerberos only) or ntlm (NTLM only)\n"
    "  --keytab FILE        the service's keytab (default: KRB5_KTNAME)\n"
    "  --spn SERVICE@HOST   the service name to accept for (default negio@localhost)\n"
    "  --protect LEVEL      the level of the server's own messages: none, sign or seal\n"
    "                       (default seal)\n"
    "  --min-protect LEVEL  the lowest level accepted from clients (default sign)\n"
    "  --map PRINCIPAL=LOCALUSER\n"
    "                       map a client (alice@REALM, or DOMAIN\\user for NTLM) to a local\n"
    "                       account, before the realm's auth_to_local rules (repeatable)\n"
    "  --ntlm-domain DOMAIN NTLM clients DOMAIN\\user map to the local account user (default:\n"
    "                       $NETBIOS_DOMAIN_NAME; other NTLM names map to nothing)\n"
    "  --profile PROFILE    native (default) or gss-sample: serve MIT's gss-client, which gets\n"
    "                       a MIC of each message as its answer (no --echo, --files or\n"
    "                       --forward then)\n"
    "  --close-at-expiry    close a connection when its Kerberos context ends (the ticket's\n"
    "                       end time plus the allowed clock skew), with a protected close of\n"
    "                       status 120; by default connections outlive their tickets\n"
    "  --json               one JSON object per line: listening, authenticated, message,\n"
    "                       closed, and request / forwarded / forward_closed\n"
    "  -h, --help           this text\n"
    "\n"
    "TLS (a TLS transport makes none the default of --protect and --min-protect):\n"
    "  --tls                TLS only: clients are authenticated by their certificate, if\n"
    "                       --ca asks for one, and by nothing else (no Kerberos or NTLM;\n"
    "                       messages at level none); needs --cert\n"
    "  --tls-negotiate      TLS, then Kerberos or NTLM inside it, bound to that TLS channel\n"
    "                       (a man in the middle terminating TLS fails). Without --cert:\n"
    "                       certificate-free, an ephemeral self-signed certificate; clients\n"
    "                       must then prove the server with Kerberos, so NTLM is refused\n"
    "  --cert FILE          the server's certificate chain (PEM)\n"
    "  --key FILE           its private key (PEM; default: in the --cert file)\n"
    "  --ca FILE            ask clients for a certificate and verify it against these CAs\n"
    "  --require-client-cert\n"
    "                       refuse clients without a certificate that verifies (with --ca)\n"
    "  --tls-allow-ntlm     certificate-free --tls-negotiate: allow NTLM anyway (the server\n"
    "                       is then authenticated by nothing)\n"
    "\n"
    "what to do with messages (one of):\n"
    "  --echo               send each message back at the level it arrived\n"
    "  --files DIR          a file service in DIR: 'write NAME TEXT' creates DIR/NAME holding\n"
    "                       TEXT, 'read NAME' returns its content; NAME is a plain file name.\n"
    "                       Replies 'ok ...' or 'error: ...'. Without --impersonate, done as\n"
    "                       this server's own identity\n"
    "  --impersonate        do each request as the local account the client maps to (needs\n"
    "                       root or CAP_SETUID and CAP_SETGID); clients that map to none, to\n"
    "                       root or to a system account get an error for every request unless\n"
    "  --allow-root         root (uid 0), or\n"
    "  --allow-system       accounts below the login range (UID_MIN), are allowed\n"
    "  --forward HOST:PORT  send each message on to HOST:PORT as the client, with the\n"
    "                       credentials it delegated (negio client --delegate, Kerberos), and\n"
    "  --forward-spn SERVICE@HOST\n"
    "                       the backend's service name; the backend's reply comes back\n"
    "\n"
    "NTLM accounts come from NTLM_USER_FILE. Exit status: 0 after a signal, 1 if the server\n"
    "could not start, 2 for a usage error.\n";

#define TEXT_PREVIEW 200    /* bytes of a message shown in human-readable output */
#define MAX_READ (1u << 20) /* the largest file 'read' returns */
#define NO_DELEGATION                                                                              \
    "error: no delegated credentials (the client did not delegate, its ticket is not "             \
    "forwardable, or the mechanism was ntlm)"

struct server {
    negio_engine *engine;
    negio_transport transport; /* --tls, --tls-negotiate */
    int json, echo;
    int files_fd; /* --files: the directory, or -1 */
    int impersonate;
    negio_identity_policy policy; /* --impersonate: who may be acted as */
    const char *forward;          /* --forward HOST:PORT as given, or NULL */
    char fwd_host[256];
    uint16_t fwd_port;
    negio_config *fwd_cfg;  /* --forward: the onward client configuration, no credentials */
    pthread_mutex_t out_mu; /* callbacks run on several loop threads: one line at a time */
};

/* Connections carry a struct client (accepted) or a struct link (made by --forward) as their
 * user pointer; both start with their kind. */
enum conn_kind { CONN_CLIENT = 1, CONN_BACKEND = 2 };

/* An accepted connection, from on_authenticated to on_closed. */
struct client {
    enum conn_kind kind;
    char *peer;
    negio_user *user;  /* --impersonate: the local account requests run as */
    char *refusal;     /* --impersonate: why there is none */
    struct link *link; /* --forward: NULL if the client delegated nothing */
};

/* A forward: a client connection and the backend connection made as its principal. Both
 * connections' callbacks (on different loop threads) use it; freed when both have ended. */
struct link {
    enum conn_kind kind;
    struct server *s;
    pthread_mutex_t mu;
    int refs;                  /* one per connection still open */
    negio_econn *front, *back; /* references; BACK is NULL until negio_engine_connect returns */
    char remote[80];           /* the client's address */
    char *principal;           /* whose credentials */
    negio_level *pending;      /* levels of the requests awaiting a reply, oldest first */
    size_t npending, cap;
    int back_closed;
    char *back_error; /* why the backend connection ended */
};

/* "ADDR:PORT" of a peer, "[ADDR]:PORT" for IPv6. */
static void format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    } else
        snprintf(out, cap, "?");
}

static void remote_of(negio_econn *c, char *out, size_t cap)
{
    format_addr(negio_econn_peer_addr(c), out, cap);
}

/* Starts a JSON event line with its "event" and "remote" members. */
static void json_event(json_writer *w, const char *event, const char *remote)
{
    json_init(w, stdout);
    json_begin_object(w);
    json_kv_string(w, "event", event);
    if (remote != NULL)
        json_kv_string(w, "remote", remote);
}

static void json_event_end(json_writer *w)
{
    json_end_object(w);
    fputc('\n', stdout);
}

/* A string quoted for human-readable output (NULL as null). */
static void print_quoted(const char *s)
{
    if (s == NULL)
        fputs("null", stdout);
    else
        json_quote(stdout, s, strlen(s));
}

static enum conn_kind kind_of(negio_econn *c)
{
    const enum conn_kind *kind = negio_econn_user(c);
    return kind != NULL ? *kind : 0;
}

/* Sends LEN bytes to C at LEVEL (NEGIO_LEVEL_DEFAULT: the --protect level). A connection that
 * has ended meanwhile is not an error worth reporting. */
static void send_bytes(struct server *s, negio_econn *c, negio_level level, const void *data,
                       size_t len)
{
    int rc = level == NEGIO_LEVEL_DEFAULT ? negio_engine_write(c, data, len)
                                          : negio_engine_send(s->engine, c, data, len, level);
    if (rc < 0 && rc != NEGIO_ERR_CLOSED) {
        char remote[80];
        remote_of(c, remote, sizeof(remote));
        fprintf(stderr, "negio server: %s: reply of %zu bytes failed: %s: %s\n", remote, len,
                negio_err_name(rc), negio_strerror(rc));
    }
}

static void reply(struct server *s, negio_econn *c, negio_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply(struct server *s, negio_econn *c, negio_level level, const char *fmt, ...)
{
    char *text;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        static const char oom[] = "error: out of memory";
        send_bytes(s, c, level, oom, sizeof(oom) - 1);
        return;
    }
    send_bytes(s, c, level, text, (size_t)n);
    free(text);
}

/* ---- --forward: the link between a client and its backend connection ---------------------- */

static void link_unref(struct link *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last)
        return;
    if (l->front != NULL)
        negio_econn_unref(l->front);
    if (l->back != NULL)
        negio_econn_unref(l->back);
    pthread_mutex_destroy(&l->mu);
    free(l->principal);
    free(l->pending);
    free(l->back_error);
    free(l);
}

static void print_forward_closed(struct server *s, const struct link *l, const char *reason,
                                 const char *error, const char *detail)
{
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "forward_closed", l->remote);
        json_kv_string(&w, "backend", s->forward);
        json_kv_string(&w, "reason", reason);
        json_kv_string(&w, "error", error);
        json_kv_string(&w, "detail", detail != NULL && detail[0] != '\0' ? detail : NULL);
        json_event_end(&w);
    } else {
        printf("%s: forward to %s closed, %s", l->remote, s->forward, reason);
        if (error != NULL)
            printf(", %s", error);
        if (detail != NULL && detail[0] != '\0')
            printf(": %s", detail);
        putchar('\n');
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
}

/* Opens the backend connection for client C with the credentials D it delegated. The engine
 * connection gets its own reference to D through the configuration it copies; nothing else
 * keeps them. Returns 0, or -1 when out of memory (then the client is refused). */
static int link_start(struct server *s, negio_econn *c, struct client *cl, negio_delegated *d)
{
    struct link *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->principal = strdup(negio_delegated_principal(d))) == NULL) {
        free(l);
        return -1;
    }
    l->kind = CONN_BACKEND;
    l->s = s;
    pthread_mutex_init(&l->mu, NULL);
    l->refs = 2; /* the backend's callbacks may run on another loop thread before connect returns */
    negio_econn_ref(c);
    l->front = c;
    remote_of(c, l->remote, sizeof(l->remote));
    cl->link = l;

    negio_config *cfg = NULL;
    negio_econn *back = NULL;
    int rc = negio_config_dup(&cfg, s->fwd_cfg);
    if (rc == 0)
        rc = negio_config_set_delegated(cfg, d);
    if (rc == 0)
        rc = negio_engine_connect(s->engine, s->fwd_host, s->fwd_port, cfg, l, &back);
    negio_config_del(cfg);
    pthread_mutex_lock(&l->mu);
    if (rc < 0) { /* no callback comes for the backend */
        l->refs--;
        l->back_closed = 1;
        if (asprintf(&l->back_error, "cannot connect: %s", negio_strerror(rc)) < 0)
            l->back_error = NULL;
    } else
        l->back = back;
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        print_forward_closed(s, l, "error", negio_err_name(rc), l->back_error);
    return 0;
}

/* A client's request: on to the backend, the level it came at queued for the reply. */
static void forward_request(struct server *s, negio_econn *c, struct client *cl,
                            const uint8_t *data, size_t len, negio_level level)
{
    struct link *l = cl->link;
    if (l == NULL) {
        reply(s, c, level, "%s", NO_DELEGATION);
        return;
    }
    pthread_mutex_lock(&l->mu);
    if (l->back_closed) {
        char *why = strdup(l->back_error != NULL ? l->back_error : "closed");
        pthread_mutex_unlock(&l->mu);
        reply(s, c, level, "error: backend %s: %s", s->forward, why != NULL ? why : "closed");
        free(why);
        return;
    }
    if (l->npending == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        negio_level *p = realloc(l->pending, cap * sizeof(*p));
        if (p == NULL) {
            pthread_mutex_unlock(&l->mu);
            reply(s, c, level, "error: backend %s: out of memory", s->forward);
            return;
        }
        l->pending = p;
        l->cap = cap;
    }
    l->pending[l->npending++] = level;
    negio_econn *back = l->back;
    pthread_mutex_unlock(&l->mu);
    /* at the server's own level (--protect): the backend's minimum applies to this hop */
    int rc = negio_engine_write(back, data, len);
    if (rc < 0) {
        pthread_mutex_lock(&l->mu);
        /* unless the backend's end already answered it */
        int answer = !l->back_closed && l->npending > 0;
        if (answer)
            l->npending--;
        pthread_mutex_unlock(&l->mu);
        if (answer)
            reply(s, c, level, "error: backend %s: not sent: %s: %s", s->forward,
                  negio_err_name(rc), negio_strerror(rc));
    }
}

static int backend_authenticated(struct server *s, struct link *l, const negio_auth_info *info)
{
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "forwarded", l->remote);
        json_kv_string(&w, "backend", s->forward);
        json_kv_string(&w, "principal", l->principal);
        json_kv_string(&w, "backend_peer", info->peer);
        json_kv_string(&w, "mech", negio_mech_name(info->mech));
        json_kv_bool(&w, "server_authenticated", info->server_authenticated);
        json_event_end(&w);
    } else {
        printf("%s: forwarding to %s (", l->remote, s->forward);
        print_quoted(info->peer);
        printf(") as ");
        print_quoted(l->principal);
        printf(" with %s\n", negio_mech_name(info->mech));
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
    return 0;
}

/* The backend's reply: back to the client at the level its request came at. */
static void backend_message(struct server *s, struct link *l, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&l->mu);
    negio_level level = NEGIO_LEVEL_DEFAULT; /* a message nobody asked for */
    if (l->npending > 0) {
        level = l->pending[0];
        memmove(l->pending, l->pending + 1, --l->npending * sizeof(*l->pending));
    }
    pthread_mutex_unlock(&l->mu);
    send_bytes(s, l->front, level, data, len);
}

static void backend_closed(struct server *s, struct link *l, negio_close_reason reason, int code,
                           const char *detail)
{
    const char *error = code != 0 ? negio_err_name(code) : NULL;
    char *why = NULL;
    if (asprintf(&why, "connection closed (%s)%s%s%s%s", negio_close_reason_name(reason),
                 error != NULL ? ": " : "", error != NULL ? error : "",
                 detail != NULL && detail[0] != '\0' ? ": " : "", detail != NULL ? detail : "") < 0)
        why = NULL;
    pthread_mutex_lock(&l->mu);
    l->back_closed = 1;
    l->back_error = why;
    negio_level *pending = l->pending;
    size_t npending = l->npending;
    l->pending = NULL;
    l->npending = l->cap = 0;
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < npending; i++)
        reply(s, l->front, pending[i], "error: backend %s: %s", s->forward,
              why != NULL ? why : "connection closed");
    free(pending);
    print_forward_closed(s, l, negio_close_reason_name(reason), error, detail);
    link_unref(l);
}

/* ---- --files --------------------------------------------------------------------------------- */

/* One file operation, run as the client's account (or the server's own). */
struct file_job {
    int dirfd;
    int write; /* 1: write TEXT, 0: read into CONTENT */
    const char *name;
    const uint8_t *text;
    size_t len;
    char *content; /* read: malloc'd, CONTENT_LEN bytes */
    size_t content_len;
    int err;         /* errno of the failure, or 0 */
    const char *why; /* a failure that is no errno */
};

static int file_fail(struct file_job *j, int fd, int err, const char *why)
{
    if (fd >= 0)
        close(fd);
    j->err = err;
    j->why = why;
    return -1;
}

/* No symbolic links are followed and nothing but regular files is read or written (a FIFO would
 * block the loop thread); every permission check is the kernel's, for the thread's identity. */
static int file_op(void *arg)
{
    struct file_job *j = arg;
    int flags =
        O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (j->write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
    int fd = openat(j->dirfd, j->name, flags, 0644);
    if (fd < 0)
        return file_fail(j, -1, errno, errno == ELOOP ? "a symbolic link (not followed)" : NULL);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return file_fail(j, fd, errno, NULL);
    if (!S_ISREG(st.st_mode))
        return file_fail(j, fd, 0, "not a regular file");
    if (j->write) {
        for (size_t off = 0; off < j->len;) {
            ssize_t n = write(fd, j->text + off, j->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return file_fail(j, fd, errno, NULL);
            off += (size_t)n;
        }
        return close(fd) < 0 ? file_fail(j, -1, errno, NULL) : 0;
    }
    if (st.st_size > (off_t)MAX_READ)
        return file_fail(j, fd, EFBIG, NULL);
    j->content = malloc(MAX_READ + 1);
    if (j->content == NULL)
        return file_fail(j, fd, ENOMEM, NULL);
    for (;;) {
        ssize_t n = read(fd, j->content + j->content_len, MAX_READ + 1 - j->content_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return file_fail(j, fd, errno, NULL);
        if (n == 0)
            break;
        j->content_len += (size_t)n;
        if (j->content_len > MAX_READ) /* it grew meanwhile */
            return file_fail(j, fd, EFBIG, NULL);
    }
    close(fd);
    return 0;
}

/* NAME is one file name in the directory: no '/', not "." or "..", at most NAME_MAX bytes, and
 * no NUL or other control character. */
static int plain_name(const uint8_t *name, size_t len)
{
    if (len == 0 || len > NAME_MAX || (len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

static void print_request(struct server *s, negio_econn *c, const char *op, const char *name,
                          const struct client *cl, const char *error)
{
    char remote[80];
    remote_of(c, remote, sizeof(remote));
    const char *as = s->impersonate && cl->user != NULL ? negio_user_name(cl->user) : NULL;
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "request", remote);
        json_kv_string(&w, "op", op);
        json_kv_string(&w, "name", name);
        json_kv_string(&w, "as", as);
        if (as != NULL)
            json_kv_int(&w, "uid", (long long)negio_user_uid(cl->user));
        json_kv_bool(&w, "ok", error == NULL);
        json_kv_string(&w, "error", error);
        json_event_end(&w);
    } else {
        printf("%s: %s ", remote, op);
        print_quoted(name);
        if (s->impersonate) {
            printf(" as ");
            print_quoted(as);
        }
        printf(": %s\n", error != NULL ? error : "ok");
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
}

/* Why negio_impersonate() failed with RC and ERR (errno). negio_strerror() has no text for
 * NEGIO_ERR_PERMISSION in this version of the library, hence our own. */
static const char *switch_error(int rc, int err)
{
    return rc == NEGIO_ERR_PERMISSION ? strerror(err) : negio_strerror(rc);
}

/* "write NAME TEXT" (TEXT: the rest of the message, possibly empty) or "read NAME". */
static void file_request(struct server *s, negio_econn *c, struct client *cl, const uint8_t *data,
                         size_t len, negio_level level)
{
    struct file_job j;
    memset(&j, 0, sizeof(j));
    j.dirfd = s->files_fd;
    const uint8_t *name;
    size_t name_len;
    if (len >= 6 && memcmp(data, "write ", 6) == 0) {
        j.write = 1;
        name = data + 6;
        const uint8_t *sp = memchr(name, ' ', len - 6);
        name_len = sp != NULL ? (size_t)(sp - name) : len - 6;
        j.text = sp != NULL ? sp + 1 : name + name_len;
        j.len = sp != NULL ? len - 6 - name_len - 1 : 0;
    } else if (len >= 5 && memcmp(data, "read ", 5) == 0) {
        name = data + 5;
        name_len = len - 5;
    } else {
        reply(s, c, level, "error: unknown request (expected 'write NAME TEXT' or 'read NAME')");
        print_request(s, c, "unknown", NULL, cl, "unknown request");
        return;
    }
    const char *op = j.write ? "write" : "read";
    /* the name as text (control characters and NUL shown as '?'); for a plain name, the name */
    char shown[NAME_MAX + 1];
    size_t n = name_len < NAME_MAX ? name_len : NAME_MAX;
    for (size_t i = 0; i < n; i++)
        shown[i] = name[i] < 0x20 || name[i] == 0x7f ? '?' : (char)name[i];
    shown[n] = '\0';
    if (!plain_name(name, name_len)) {
        reply(s, c, level,
              "error: %s %s: not a plain file name (no '/' or control characters, not '.' or "
              "'..', at most %d bytes)",
              op, shown, NAME_MAX);
        print_request(s, c, op, shown, cl, "not a plain file name");
        return;
    }
    j.name = shown;
    if (s->impersonate && cl->user == NULL) {
        reply(s, c, level, "error: no local account for %s: %s", cl->peer, cl->refusal);
        print_request(s, c, op, shown, cl, cl->refusal);
        return;
    }
    if (s->impersonate) {
        int rc = negio_impersonate(cl->user, file_op, &j, NULL);
        if (rc < 0) {
            const char *why = switch_error(rc, errno);
            reply(s, c, level, "error: %s %s: cannot act as %s: %s", op, shown,
                  negio_user_name(cl->user), why);
            print_request(s, c, op, shown, cl, why);
            return;
        }
    } else
        file_op(&j);
    if (j.err != 0 || j.why != NULL) {
        const char *what = j.why != NULL ? j.why : strerror(j.err);
        reply(s, c, level, "error: %s %s: %s", op, shown, what);
        print_request(s, c, op, shown, cl, what);
    } else if (j.write) {
        reply(s, c, level, "ok wrote %zu bytes to %s", j.len, shown);
        print_request(s, c, op, shown, cl, NULL);
    } else {
        /* the content as it is, bytes and all */
        char *out = malloc(3 + j.content_len);
        if (out == NULL)
            reply(s, c, level, "error: %s %s: %s", op, shown, strerror(ENOMEM));
        else {
            memcpy(out, "ok ", 3);
            if (j.content_len > 0)
                memcpy(out + 3, j.content, j.content_len);
            send_bytes(s, c, level, out, 3 + j.content_len);
            free(out);
        }
        print_request(s, c, op, shown, cl, out == NULL ? strerror(ENOMEM) : NULL);
    }
    free(j.content);
}

/* ---- callbacks ----------------------------------------------------------------------------- */

static void client_free(struct client *cl)
{
    if (cl == NULL)
        return;
    free(cl->peer);
    negio_user_del(cl->user);
    free(cl->refusal);
    free(cl);
}

/* --impersonate: the account the peer maps to, under the policy, or why there is none. */
static int find_user(struct server *s, struct client *cl, const negio_auth_info *info)
{
    char why[512] = "";
    if (info->flags & NEGIO_FLAG_ANON)
        snprintf(why, sizeof(why), "anonymous peers are never impersonated");
    else if (info->local_name == NULL)
        snprintf(why, sizeof(why), "it maps to no local account name");
    else {
        int rc = negio_user_lookup(&cl->user, info->local_name, &s->policy, why, sizeof(why));
        if (rc == NEGIO_ERR_NOMEM)
            return -1;
        if (rc < 0 && why[0] == '\0')
            snprintf(why, sizeof(why), "%s", negio_strerror(rc));
    }
    if (cl->user == NULL && (cl->refusal = strdup(why)) == NULL)
        return -1;
    return 0;
}

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND)
        return backend_authenticated(s, negio_econn_user(c), info);
    struct client *cl = NULL;
    if (s->files_fd >= 0 || s->forward != NULL) {
        cl = calloc(1, sizeof(*cl));
        if (cl == NULL || (cl->peer = strdup(info->peer != NULL ? info->peer : "?")) == NULL ||
            (s->impersonate && find_user(s, cl, info) < 0)) {
            client_free(cl);
            fprintf(stderr, "negio server: out of memory: refusing a client\n");
            return 1;
        }
        cl->kind = CONN_CLIENT;
        negio_econn_set_user(c, cl);
    }
    char remote[80];
    remote_of(c, remote, sizeof(remote));
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "authenticated", remote);
        json_kv_string(&w, "peer", info->peer);
        /* plain TLS: no GSS mechanism */
        json_kv_string(&w, "mech",
                       info->mech != NEGIO_MECH_NONE ? negio_mech_name(info->mech) : NULL);
        json_kv_bool(&w, "negotiated", info->negotiated);
        json_kv_bool(&w, "server_authenticated", info->server_authenticated);
        json_kv_string(&w, "local_name", info->local_name);
        json_kv_bool(&w, "delegated", info->delegated);
        if (s->impersonate) {
            json_kv_string(&w, "acts_as", cl->user != NULL ? negio_user_name(cl->user) : NULL);
            if (cl->user != NULL)
                json_kv_int(&w, "uid", (long long)negio_user_uid(cl->user));
            else
                json_kv_string(&w, "refused", cl->refusal);
        }
        if (s->transport != NEGIO_TRANSPORT_PLAIN)
            cli_tls_json(&w, s->transport, info);
        json_event_end(&w);
    } else if (info->mech == NEGIO_MECH_NONE) {
        printf("%s: authenticated by TLS only, ", remote);
        cli_tls_print(stdout, NEGIO_ROLE_SERVER, info);
        putchar('\n');
    } else {
        printf("%s: authenticated ", remote);
        print_quoted(info->peer != NULL ? info->peer : "");
        printf(" with %s%s", negio_mech_name(info->mech), info->negotiated ? " (negotiated)" : "");
        if (s->transport != NEGIO_TRANSPORT_PLAIN) {
            printf(", ");
            cli_tls_print(stdout, NEGIO_ROLE_SERVER, info);
        }
        if (info->local_name != NULL) {
            printf(", local user ");
            print_quoted(info->local_name);
        }
        if (info->delegated)
            printf(", credentials delegated");
        if (s->impersonate && cl->user != NULL)
            printf(", acting as uid %ld", (long)negio_user_uid(cl->user));
        else if (s->impersonate)
            printf(", no local account: %s", cl->refusal);
        putchar('\n');
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
    if (s->forward != NULL) {
        negio_delegated *d = negio_econn_delegated(c);
        if (d != NULL && link_start(s, c, cl, d) < 0) {
            fprintf(stderr, "negio server: out of memory: refusing a client\n");
            return 1; /* on_closed frees the client */
        }
    }
    return 0;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND) {
        backend_message(s, negio_econn_user(c), data, len);
        return;
    }
    char remote[80];
    remote_of(c, remote, sizeof(remote));
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "message", remote);
        json_kv_string(&w, "level", negio_level_name(level));
        json_kv_int(&w, "bytes", (long long)len);
        json_event_end(&w);
    } else {
        printf("%s: message, %s, %zu bytes: ", remote, negio_level_name(level), len);
        json_quote(stdout, data, len > TEXT_PREVIEW ? TEXT_PREVIEW : len);
        puts(len > TEXT_PREVIEW ? "..." : "");
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
    struct client *cl = negio_econn_user(c);
    if (s->echo) {
        int rc = negio_engine_send(s->engine, c, data, len, level);
        if (rc < 0)
            fprintf(stderr, "negio server: %s: echo of %zu bytes failed: %s: %s\n", remote, len,
                    negio_err_name(rc), negio_strerror(rc));
    } else if (s->files_fd >= 0 && cl != NULL)
        file_request(s, c, cl, data, len, level);
    else if (s->forward != NULL && cl != NULL)
        forward_request(s, c, cl, data, len, level);
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND) {
        backend_closed(s, negio_econn_user(c), reason, code, detail);
        return;
    }
    char remote[80];
    remote_of(c, remote, sizeof(remote));
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "closed", remote);
        json_kv_string(&w, "reason", negio_close_reason_name(reason));
        json_kv_string(&w, "error", code != 0 ? negio_err_name(code) : NULL);
        json_kv_string(&w, "detail", detail != NULL && detail[0] != '\0' ? detail : NULL);
        json_event_end(&w);
    } else {
        printf("%s: closed, %s", remote, negio_close_reason_name(reason));
        if (code != 0)
            printf(", %s", negio_err_name(code));
        if (detail != NULL && detail[0] != '\0')
            printf(": %s", detail);
        putchar('\n');
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
    struct client *cl = negio_econn_user(c);
    if (cl == NULL)
        return;
    negio_econn_set_user(c, NULL);
    if (cl->link != NULL) {
        struct link *l = cl->link;
        pthread_mutex_lock(&l->mu);
        negio_econn *back = l->back_closed ? NULL : l->back;
        pthread_mutex_unlock(&l->mu);
        if (back != NULL)
            negio_engine_close(back, 0); /* the link holds a reference: BACK is still valid */
        link_unref(l);
    }
    client_free(cl);
}

/* ---- startup ------------------------------------------------------------------------------- */

/* The server's connector configuration from the options. */
static int make_config(negio_config **out, const struct cli_tls *tls, unsigned allowed,
                       const char *keytab, const char *spn, negio_level protect, int have_protect,
                       negio_level min, int have_min, const struct cli_map *maps, size_t nmaps,
                       const char *ntlm_domain)
{
    /* a TLS transport chose level none for both: only what the user asked for changes that */
    int plain = tls->transport == NEGIO_TRANSPORT_PLAIN;
    negio_config *cfg;
    int rc = negio_config_new(&cfg, NEGIO_ROLE_SERVER);
    if (rc < 0)
        return rc;
    /* a service name is always set: with an explicit keytab and NTLM allowed, gss-ntlmssp 1.2.0
     * needs one (see README, known limitations) */
    if ((rc = negio_config_set_allowed(cfg, allowed)) < 0 ||
        (rc = negio_config_set_profile(cfg, server_profile)) < 0 ||
        (rc = negio_config_set_service(cfg, spn)) < 0 ||
        (keytab != NULL && (rc = negio_config_set_keytab(cfg, keytab)) < 0) ||
        (rc = cli_tls_apply(cfg, tls)) < 0 ||
        ((plain || have_protect) && (rc = negio_config_set_default_level(cfg, protect)) < 0) ||
        ((plain || have_min) && (rc = negio_config_set_min_level(cfg, min)) < 0) ||
        (ntlm_domain != NULL && (rc = negio_config_set_ntlm_domain(cfg, ntlm_domain)) < 0)) {
        negio_config_del(cfg);
        return rc;
    }
    for (size_t i = 0; i < nmaps; i++)
        if ((rc = negio_config_add_user_map(cfg, maps[i].principal, maps[i].local)) < 0) {
            negio_config_del(cfg);
            return rc;
        }
    *out = cfg;
    return 0;
}

/* --forward: the onward connection's configuration; the credentials are added per client. The
 * delegated credentials are a Kerberos credential: Kerberos only, the backend authenticated. */
static int make_forward_config(negio_config **out, const char *spn, negio_level protect,
                               negio_level min)
{
    negio_config *cfg;
    int rc = negio_config_new(&cfg, NEGIO_ROLE_CLIENT);
    if (rc < 0)
        return rc;
    if ((rc = negio_config_set_mech(cfg, NEGIO_MECH_KERBEROS)) < 0 ||
        (rc = negio_config_set_allowed(cfg, NEGIO_ALLOW_KERBEROS)) < 0 ||
        (rc = negio_config_set_service(cfg, spn)) < 0 ||
        (rc = negio_config_set_require_server_auth(cfg, 1)) < 0 ||
        (rc = negio_config_set_default_level(cfg, protect)) < 0 ||
        (rc = negio_config_set_min_level(cfg, min)) < 0) {
        negio_config_del(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* --impersonate: whether this process may switch identities at all, by a trial switch to its
 * own account (the check negio_impersonate makes for every client's). */
static int check_impersonation(void)
{
    uid_t euid = geteuid();
    struct passwd pw, *res = NULL;
    char buf[16384];
    if (getpwuid_r(euid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
        fprintf(stderr,
                "negio server: --impersonate: cannot check whether this process may switch "
                "identities: uid %ld has no account\n",
                (long)euid);
        return -1;
    }
    negio_identity_policy any = {.allow_root = 1, .allow_system = 1};
    negio_user *self = NULL;
    char why[512] = "";
    int rc = negio_user_lookup(&self, pw.pw_name, &any, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "negio server: --impersonate: cannot look up this process's account: %s\n",
                why[0] != '\0' ? why : negio_strerror(rc));
        return -1;
    }
    rc = negio_impersonate(self, nothing, NULL, NULL);
    const char *failed = switch_error(rc, errno);
    negio_user_del(self);
    if (rc < 0) {
        fprintf(stderr,
                "negio server: --impersonate needs root or the capabilities CAP_SETUID and "
                "CAP_SETGID; this process (uid %ld) cannot switch identities: %s\n",
                (long)euid, failed);
        return -1;
    }
    return 0;
}

int cli_server(int argc, char **argv)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"mech", required_argument, NULL, 'm'},
        {"keytab", required_argument, NULL, 'k'},
        {"spn", required_argument, NULL, 's'},
        {"protect", required_argument, NULL, 'p'},
        {"min-protect", required_argument, NULL, 'n'},
        {"echo", no_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"close-at-expiry", no_argument, NULL, 'X'},
        {"files", required_argument, NULL, 'f'},
        {"impersonate", no_argument, NULL, 'I'},
        {"allow-root", no_argument, NULL, 'R'},
        {"allow-system", no_argument, NULL, 'S'},
        {"map", required_argument, NULL, 'M'},
        {"ntlm-domain", required_argument, NULL, 'D'},
        {"forward", required_argument, NULL, 'F'},
        {"forward-spn", required_argument, NULL, 'P'},
        {"profile", required_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},
        {"tls", no_argument, NULL, CLI_OPT_TLS},
        {"tls-negotiate", no_argument, NULL, CLI_OPT_TLS_NEGOTIATE},
        {"cert", required_argument, NULL, CLI_OPT_CERT},
        {"key", required_argument, NULL, CLI_OPT_KEY},
        {"ca", required_argument, NULL, CLI_OPT_CA},
        {"require-client-cert", no_argument, NULL, CLI_OPT_REQUIRE_CLIENT_CERT},
        {"tls-allow-ntlm", no_argument, NULL, CLI_OPT_TLS_ALLOW_NTLM},
        {NULL, 0, NULL, 0},
    };
    static struct cli_map maps[CLI_MAX_MAPS];
    int close_at_expiry = 0;
    size_t nmaps = 0;
    const char *listen = "127.0.0.1:7000", *keytab = NULL, *spn = "negio@localhost";
    const char *files = NULL, *forward_spn = NULL, *ntlm_domain = getenv("NETBIOS_DOMAIN_NAME");
    negio_mech mech = NEGIO_MECH_NEGOTIATE;
    negio_level protect = NEGIO_LEVEL_SEAL, min = NEGIO_LEVEL_SIGN;
    int have_protect = 0, have_min = 0, have_mech = 0;
    struct cli_tls tls = {.transport = NEGIO_TRANSPORT_PLAIN};
    struct server s;
    memset(&s, 0, sizeof(s));
    s.files_fd = -1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int taken = cli_tls_option("server", usage_text, opt, optarg, &tls);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (taken > 0)
            continue;
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'm':
            if (negio_mech_parse(optarg, &mech) < 0)
                return cli_usage_error("server", usage_text,
                                       "--mech: expected negotiate, kerberos or ntlm, got '%s'",
                                       optarg);
            have_mech = 1;
            break;
        case 'k':
            keytab = optarg;
            break;
        case 's':
            spn = optarg;
            break;
        case 'p':
            if (cli_parse_level("server", usage_text, "--protect", optarg, &protect) < 0)
                return CLI_EXIT_USAGE;
            have_protect = 1;
            break;
        case 'n':
            if (cli_parse_level("server", usage_text, "--min-protect", optarg, &min) < 0)
                return CLI_EXIT_USAGE;
            have_min = 1;
            break;
        case 'e':
            s.echo = 1;
            break;
        case 'Q':
            if (strcmp(optarg, "native") == 0)
                server_profile = NEGIO_PROFILE_NATIVE;
            else if (strcmp(optarg, "gss-sample") == 0)
                server_profile = NEGIO_PROFILE_GSS_SAMPLE;
            else
                return cli_usage_error("server", usage_text,
                                       "--profile must be native or gss-sample");
            break;
        case 'j':
            s.json = 1;
            break;
        case 'X':
            close_at_expiry = 1;
            break;
        case 'f':
            files = optarg;
            break;
        case 'I':
            s.impersonate = 1;
            break;
        case 'R':
            s.policy.allow_root = 1;
            break;
        case 'S':
            s.policy.allow_system = 1;
            break;
        case 'M':
            if (nmaps == CLI_MAX_MAPS)
                return cli_usage_error("server", usage_text, "--map: at most %d mappings",
                                       CLI_MAX_MAPS);
            if (cli_parse_map("server", usage_text, "--map", optarg, &maps[nmaps]) < 0)
                return CLI_EXIT_USAGE;
            nmaps++;
            break;
        case 'D':
            ntlm_domain = optarg;
            if (optarg[0] == '\0' || strlen(optarg) > CLI_MAX_NAME)
                return cli_usage_error("server", usage_text,
                                       "--ntlm-domain: expected a domain name, got '%s'", optarg);
            break;
        case 'F':
            s.forward = optarg;
            break;
        case 'P':
            forward_spn = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CLI_EXIT_OK;
        default:
            cli_usage_short("server", usage_text);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("server", usage_text, "unexpected argument '%s'", argv[optind]);
    char host[256];
    uint16_t port;
    if (cli_split_hostport(listen, host, sizeof(host), &port) < 0)
        return cli_usage_error("server", usage_text, "--listen: expected ADDR:PORT, got '%s'",
                               listen);
    if (strchr(spn, '@') == NULL)
        return cli_usage_error("server", usage_text, "--spn: expected SERVICE@HOST, got '%s'", spn);
    if (server_profile == NEGIO_PROFILE_GSS_SAMPLE &&
        (s.echo || files != NULL || s.forward != NULL))
        return cli_usage_error("server", usage_text,
                               "--profile gss-sample answers by itself: no --echo, --files or "
                               "--forward");
    if (s.echo + (files != NULL) + (s.forward != NULL) > 1)
        return cli_usage_error("server", usage_text,
                               "--echo, --files and --forward exclude each other");
    if (s.impersonate && files == NULL)
        return cli_usage_error("server", usage_text, "--impersonate goes with --files DIR");
    if ((s.policy.allow_root || s.policy.allow_system) && !s.impersonate)
        return cli_usage_error("server", usage_text,
                               "--allow-root and --allow-system go with --impersonate");
    if ((s.forward != NULL) != (forward_spn != NULL))
        return cli_usage_error("server", usage_text,
                               "--forward HOST:PORT and --forward-spn SERVICE@HOST go together");
    if (s.forward != NULL &&
        (cli_split_hostport(s.forward, s.fwd_host, sizeof(s.fwd_host), &s.fwd_port) < 0 ||
         s.fwd_host[0] == '\0' || s.fwd_port == 0))
        return cli_usage_error("server", usage_text, "--forward: expected HOST:PORT, got '%s'",
                               s.forward);
    if (forward_spn != NULL && strchr(forward_spn, '@') == NULL)
        return cli_usage_error("server", usage_text,
                               "--forward-spn: expected SERVICE@HOST, got '%s'", forward_spn);
    if (cli_tls_validate("server", usage_text, NEGIO_ROLE_SERVER, &tls) < 0)
        return CLI_EXIT_USAGE;
    s.transport = tls.transport;
    if (cli_tls_levels("server", usage_text, &tls, server_profile, &have_protect, &protect,
                       &have_min, &min) < 0)
        return CLI_EXIT_USAGE;
    if (mech == NEGIO_MECH_NTLM && cli_tls_cert_free(NEGIO_ROLE_SERVER, &tls) && !tls.allow_ntlm)
        return cli_usage_error("server", usage_text,
                               "--mech ntlm: certificate-free --tls-negotiate refuses NTLM, "
                               "which cannot authenticate the server (--cert FILE, or "
                               "--tls-allow-ntlm)");
    if (tls.transport == NEGIO_TRANSPORT_TLS) {
        if (have_mech || s.forward != NULL)
            return cli_usage_error("server", usage_text,
                                   "--tls authenticates with certificates only: no --mech or "
                                   "--forward (use --tls-negotiate for Kerberos or NTLM)");
    }
    if (ntlm_domain != NULL && ntlm_domain[0] == '\0')
        ntlm_domain = NULL; /* an empty NETBIOS_DOMAIN_NAME */
    unsigned allowed = mech == NEGIO_MECH_KERBEROS ? NEGIO_ALLOW_KERBEROS
                       : mech == NEGIO_MECH_NTLM   ? NEGIO_ALLOW_NTLM
                                                   : NEGIO_ALLOW_ALL;
    negio_config *cfg = NULL;
    int rc = make_config(&cfg, &tls, allowed, keytab, spn, protect, have_protect, min, have_min,
                         maps, nmaps, ntlm_domain);
    if (rc == 0 && forward_spn != NULL) {
        rc = make_forward_config(&s.fwd_cfg, forward_spn, protect, min);
        if (rc < 0)
            negio_config_del(cfg);
    }
    if (rc < 0) {
        fprintf(stderr, "negio server: invalid configuration: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        return rc == NEGIO_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    int status = CLI_EXIT_FAIL;
    if (files != NULL) {
        s.files_fd = open(files, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s.files_fd < 0) {
            fprintf(stderr, "negio server: --files %s: %s\n", files, strerror(errno));
            goto out;
        }
    }
    /* before any thread exists: a failure leaves nothing half-started */
    if (s.impersonate && check_impersonation() < 0)
        goto out;
    if (cli_tls_load("server", cfg, &tls) < 0)
        goto out;

    /* SIGINT and SIGTERM are taken by sigwait() below; block them before the engine starts its
     * threads so that they inherit the mask and never receive them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* a shell starts background jobs with SIGINT ignored; this server is stopped by it */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    pthread_mutex_init(&s.out_mu, NULL);
    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.callbacks.on_authenticated = on_authenticated;
    eo.callbacks.on_message = on_message;
    eo.callbacks.on_closed = on_closed;
    eo.close_at_context_expiry = close_at_expiry;
    eo.user = &s;
    rc = negio_engine_new(&s.engine, &eo);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot start the engine: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        goto out_mutex;
    }
    uint16_t bound = 0;
    rc = negio_engine_listen(s.engine, listen, cfg, &bound);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot listen on %s: %s: %s\n", listen, negio_err_name(rc),
                negio_strerror(rc));
        goto out_mutex;
    }
    const char *mode = s.echo              ? ", echo"
                       : files != NULL     ? (s.impersonate ? ", files as each client" : ", files")
                       : s.forward != NULL ? ", forward"
                                           : "";
    pthread_mutex_lock(&s.out_mu);
    if (s.json) {
        json_writer w;
        json_event(&w, "listening", NULL);
        json_kv_string(&w, "address", host);
        json_kv_int(&w, "port", bound);
        if (tls.transport != NEGIO_TRANSPORT_PLAIN) {
            json_kv_string(&w, "transport", cli_transport_name(tls.transport));
            json_kv_bool(&w, "certificate_free", cli_tls_cert_free(NEGIO_ROLE_SERVER, &tls));
        }
        json_event_end(&w);
    } else {
        char transport[64] = "";
        if (tls.transport != NEGIO_TRANSPORT_PLAIN)
            snprintf(transport, sizeof(transport), "%s%s, ", cli_transport_name(tls.transport),
                     cli_tls_cert_free(NEGIO_ROLE_SERVER, &tls) ? " certificate-free" : "");
        printf("listening on %s%s%s:%u (%s%s, protect %s, min %s%s)\n",
               strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", bound, transport,
               tls.transport == NEGIO_TRANSPORT_TLS ? "certificates" : negio_mech_name(mech),
               negio_level_name(protect), negio_level_name(min), mode);
    }
    fflush(stdout);
    pthread_mutex_unlock(&s.out_mu);

    int sig;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (!s.json) {
        pthread_mutex_lock(&s.out_mu);
        printf("%s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        fflush(stdout);
        pthread_mutex_unlock(&s.out_mu);
    }
    negio_engine_shutdown(s.engine);
    status = CLI_EXIT_OK;
out_mutex:
    negio_engine_del(s.engine);
    pthread_mutex_destroy(&s.out_mu);
out:
    if (s.files_fd >= 0)
        close(s.files_fd);
    negio_config_del(s.fwd_cfg);
    negio_config_del(cfg);
    return status;
}
