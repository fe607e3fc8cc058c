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
 * This file holds the command: its options (parse), their checks (validate) and the run
 * (start-up, waiting for a signal, shutdown). What happens on connections is in server_*.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opt.h"
#include "server.h"

/* ---- options --------------------------------------------------------------------------------- */

enum {
    OPT_LISTEN = CLI_GROUP_BASE(CLI_G_SERVER),
    OPT_CLOSE_AT_EXPIRY,
};

enum {
    OPT_ECHO = CLI_GROUP_BASE(CLI_G_SERVER_MESSAGES),
    OPT_FILES,
    OPT_IMPERSONATE,
    OPT_ALLOW_ROOT,
    OPT_ALLOW_SYSTEM,
    OPT_FORWARD,
    OPT_FORWARD_SPN,
};

/* What the command line asks for. */
struct server_cmdline {
    const char *listen;
    int close_at_expiry;
    struct cli_connection conn;
    int json;
    /* what to do with messages */
    int echo;
    const char *files;
    int impersonate;
    negio_identity_policy policy;
    const char *forward, *forward_spn;
    /* found by server_validate() */
    char host[256];
    uint16_t port;
    char fwd_host[256];
    uint16_t fwd_port;
};

static const struct cli_option server_options[] = {
    {"listen", required_argument, OPT_LISTEN, CLI_ALL, "ADDR:PORT",
     "where to listen (default 127.0.0.1:7000; port 0 picks a free one; [::1]:PORT for IPv6, "
     ":PORT for every address)"},
    {"close-at-expiry", no_argument, OPT_CLOSE_AT_EXPIRY, CLI_ALL, NULL,
     "close a connection when its Kerberos context ends (the ticket's end time plus the allowed "
     "clock skew), with a protected close of status 120; by default connections outlive their "
     "tickets"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis server_synopsis[] = {
    {CLI_ALL, "[--listen ADDR:PORT]"},
    {CLI_ALL, "[--close-at-expiry]"},
    {0, NULL},
};

static void server_init(void *state)
{
    struct server_cmdline *o = state;
    o->listen = "127.0.0.1:7000";
    o->close_at_expiry = 0;
}

static int server_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct server_cmdline *o = state;
    (void)c;
    if (id == OPT_LISTEN)
        o->listen = arg;
    else
        o->close_at_expiry = 1;
    return 0;
}

static const struct cli_group server_group = {
    .no = CLI_G_SERVER,
    .options = server_options,
    .synopsis = server_synopsis,
    .init = server_init,
    .take = server_take,
};

static const struct cli_option messages_options[] = {
    {"echo", no_argument, OPT_ECHO, CLI_ALL, NULL,
     "send each message back at the level it arrived"},
    {"files", required_argument, OPT_FILES, CLI_ALL, "DIR",
     "a file service in DIR: 'write NAME TEXT' creates DIR/NAME holding TEXT, 'read NAME' returns "
     "its content; NAME is a plain file name. Replies 'ok ...' or 'error: ...'. Without "
     "--impersonate, done as this server's own identity"},
    {"impersonate", no_argument, OPT_IMPERSONATE, CLI_ALL, NULL,
     "do each request as the local account the client maps to (needs root or CAP_SETUID and "
     "CAP_SETGID); clients that map to none, to root or to a system account get an error for "
     "every request unless"},
    {"allow-root", no_argument, OPT_ALLOW_ROOT, CLI_ALL, NULL, "root (uid 0), or"},
    {"allow-system", no_argument, OPT_ALLOW_SYSTEM, CLI_ALL, NULL,
     "accounts below the login range (UID_MIN), are allowed"},
    {"forward", required_argument, OPT_FORWARD, CLI_ALL, "HOST:PORT",
     "send each message on to HOST:PORT as the client, with the credentials it delegated (negio "
     "client --delegate, Kerberos), and"},
    {"forward-spn", required_argument, OPT_FORWARD_SPN, CLI_ALL, "SERVICE@HOST",
     "the backend's service name; the backend's reply comes back"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis messages_synopsis[] = {
    {CLI_ALL, "[--echo | --files DIR [--impersonate [--allow-root] [--allow-system]]"},
    {CLI_ALL, "| --forward HOST:PORT --forward-spn SERVICE@HOST]"},
    {0, NULL},
};

static void messages_init(void *state)
{
    struct server_cmdline *o = state;
    o->echo = o->impersonate = 0;
    o->files = o->forward = o->forward_spn = NULL;
    memset(&o->policy, 0, sizeof(o->policy));
}

static int messages_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct server_cmdline *o = state;
    (void)c;
    switch (id) {
    case OPT_ECHO:
        o->echo = 1;
        break;
    case OPT_FILES:
        o->files = arg;
        break;
    case OPT_IMPERSONATE:
        o->impersonate = 1;
        break;
    case OPT_ALLOW_ROOT:
        o->policy.allow_root = 1;
        break;
    case OPT_ALLOW_SYSTEM:
        o->policy.allow_system = 1;
        break;
    case OPT_FORWARD:
        o->forward = arg;
        break;
    default: /* OPT_FORWARD_SPN */
        o->forward_spn = arg;
        break;
    }
    return 0;
}

static const struct cli_group messages_group = {
    .no = CLI_G_SERVER_MESSAGES,
    .title = "what to do with messages (one of):",
    .options = messages_options,
    .synopsis = messages_synopsis,
    .init = messages_init,
    .take = messages_take,
};

static const struct cli_command server_command = {
    .name = "server",
    .role = CLI_ACCEPTOR,
    .about = "Accepts connections until SIGINT or SIGTERM and prints one line per event.\n",
    .footer = "NTLM accounts come from NTLM_USER_FILE. Exit status: 0 after a signal, 1 if the "
              "server\ncould not start, 2 for a usage error.\n",
    .column = 23,
};

static int server_parse(struct cli *c, struct server_cmdline *o, int argc, char **argv)
{
    const struct cli_use uses[] = {
        {&server_group, o},
        CLI_CONNECTION_USES(&o->conn),
        {&cli_output_group, &o->json},
        {&messages_group, o},
    };
    return cli_parse(c, &server_command, uses, sizeof(uses) / sizeof(uses[0]), argc, argv);
}

/* The combinations, and the addresses split into host and port. */
static int server_validate(const struct cli *c, struct server_cmdline *o)
{
    if (c->nargs > 0)
        return cli_error(c, "unexpected argument '%s'", c->args[0]);
    if (cli_split_hostport(o->listen, o->host, sizeof(o->host), &o->port) < 0)
        return cli_error(c, "--listen: expected ADDR:PORT, got '%s'", o->listen);
    if (o->conn.profile == NEGIO_PROFILE_GSS_SAMPLE &&
        (o->echo || o->files != NULL || o->forward != NULL))
        return cli_error(c, "--profile gss-sample answers by itself: no --echo, --files or "
                            "--forward");
    if (o->echo + (o->files != NULL) + (o->forward != NULL) > 1)
        return cli_error(c, "--echo, --files and --forward exclude each other");
    if (o->impersonate && o->files == NULL)
        return cli_error(c, "--impersonate goes with --files DIR");
    if ((o->policy.allow_root || o->policy.allow_system) && !o->impersonate)
        return cli_error(c, "--allow-root and --allow-system go with --impersonate");
    if ((o->forward != NULL) != (o->forward_spn != NULL))
        return cli_error(c, "--forward HOST:PORT and --forward-spn SERVICE@HOST go together");
    if (o->forward != NULL &&
        (cli_split_hostport(o->forward, o->fwd_host, sizeof(o->fwd_host), &o->fwd_port) < 0 ||
         o->fwd_host[0] == '\0' || o->fwd_port == 0))
        return cli_error(c, "--forward: expected HOST:PORT, got '%s'", o->forward);
    if (o->forward_spn != NULL && strchr(o->forward_spn, '@') == NULL)
        return cli_error(c, "--forward-spn: expected SERVICE@HOST, got '%s'", o->forward_spn);
    return cli_connection_validate(c, &o->conn, "--forward", o->forward != NULL);
}

/* ---- the run --------------------------------------------------------------------------------- */

static void print_listening(struct server *s, const struct server_cmdline *o, uint16_t bound)
{
    const struct cli_tls *tls = &o->conn.tls;
    int cert_free = cli_tls_cert_free(NEGIO_ROLE_SERVER, tls);
    json_writer w;
    if (server_event_begin(s, &w, "listening", NULL)) {
        json_kv_string(&w, "address", o->host);
        json_kv_int(&w, "port", bound);
        if (tls->transport != NEGIO_TRANSPORT_PLAIN) {
            json_kv_string(&w, "transport", cli_transport_name(tls->transport));
            json_kv_bool(&w, "certificate_free", cert_free);
        }
    } else {
        const char *mode = o->echo ? ", echo"
                           : o->files != NULL
                               ? (o->impersonate ? ", files as each client" : ", files")
                           : o->forward != NULL ? ", forward"
                                                : "";
        char transport[64] = "";
        if (tls->transport != NEGIO_TRANSPORT_PLAIN)
            snprintf(transport, sizeof(transport), "%s%s, ", cli_transport_name(tls->transport),
                     cert_free ? " certificate-free" : "");
        int v6 = strchr(o->host, ':') != NULL;
        printf("listening on %s%s%s:%u (%s%s, protect %s, min %s%s)\n", v6 ? "[" : "", o->host,
               v6 ? "]" : "", bound, transport,
               tls->transport == NEGIO_TRANSPORT_TLS ? "certificates"
                                                     : negio_mech_name(o->conn.auth.mech),
               negio_level_name(o->conn.protect.protect), negio_level_name(o->conn.protect.min),
               mode);
    }
    server_event_end(s, &w);
}

/* Serves with CFG until SIGINT or SIGTERM. */
static int serve(struct server *s, const struct server_cmdline *o, negio_config *cfg)
{
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

    negio_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.callbacks.on_authenticated = server_on_authenticated;
    eo.callbacks.on_message = server_on_message;
    eo.callbacks.on_closed = server_on_closed;
    eo.close_at_context_expiry = o->close_at_expiry;
    eo.user = s;
    int rc = negio_engine_new(&s->engine, &eo);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot start the engine: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    uint16_t bound = 0;
    rc = negio_engine_listen(s->engine, o->listen, cfg, &bound);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot listen on %s: %s: %s\n", o->listen,
                negio_err_name(rc), negio_strerror(rc));
        negio_engine_del(s->engine);
        return CLI_EXIT_FAIL;
    }
    print_listening(s, o, bound);

    int sig;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (!s->json) {
        pthread_mutex_lock(&s->out_mu);
        printf("%s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        fflush(stdout);
        pthread_mutex_unlock(&s->out_mu);
    }
    negio_engine_shutdown(s->engine);
    negio_engine_del(s->engine);
    return CLI_EXIT_OK;
}

/* The configurations, then everything that can fail before any thread exists (a failure leaves
 * nothing half-started), then serve(). */
static int server_run(const struct cli *c, const struct server_cmdline *o)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    s.files_fd = -1;
    s.transport = o->conn.tls.transport;
    s.json = o->json;
    s.echo = o->echo;
    s.impersonate = o->impersonate;
    s.policy = o->policy;
    s.forward = o->forward;
    memcpy(s.fwd_host, o->fwd_host, sizeof(s.fwd_host));
    s.fwd_port = o->fwd_port;

    negio_config *cfg = NULL;
    int status = cli_connection_config(c, &o->conn, &cfg);
    if (status != CLI_EXIT_OK)
        return status;
    if (o->forward_spn != NULL) {
        int rc = server_forward_config(&s.fwd_cfg, o->forward_spn, o->conn.protect.protect,
                                       o->conn.protect.min);
        if (rc < 0) {
            negio_config_del(cfg);
            return cli_config_failed(c, rc);
        }
    }
    status = CLI_EXIT_FAIL;
    if (o->files != NULL) {
        s.files_fd = open(o->files, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s.files_fd < 0) {
            fprintf(stderr, "negio server: --files %s: %s\n", o->files, strerror(errno));
            goto out;
        }
    }
    if ((o->impersonate && server_check_impersonation() < 0) ||
        cli_tls_load(c, cfg, &o->conn.tls) < 0 || cli_auth_check(c, cfg, &o->conn.auth) < 0)
        goto out;
    pthread_mutex_init(&s.out_mu, NULL);
    status = serve(&s, o, cfg);
    pthread_mutex_destroy(&s.out_mu);
out:
    if (s.files_fd >= 0)
        close(s.files_fd);
    negio_config_del(s.fwd_cfg);
    negio_config_del(cfg);
    return status;
}

int cli_server(int argc, char **argv)
{
    static struct server_cmdline o; /* large (the --map entries): not on the stack */
    struct cli c;
    memset(&o, 0, sizeof(o));
    if (server_parse(&c, &o, argc, argv) < 0)
        return CLI_EXIT_USAGE;
    if (c.help)
        return CLI_EXIT_OK;
    if (server_validate(&c, &o) < 0)
        return CLI_EXIT_USAGE;
    return server_run(&c, &o);
}
