/*
 * negio server: accepts authenticated connections with the engine, reports what happens on each
 * (one line per event, human-readable or JSON) and, with --echo, sends every message back at the
 * level it arrived. Runs until SIGINT or SIGTERM, then shuts the engine down gracefully.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "negio/engine.h"

static const char usage_text[] =
    "usage: negio server [--listen ADDR:PORT] [--mech negotiate|kerberos|ntlm] [--keytab FILE]\n"
    "                    [--spn SERVICE@HOST] [--protect LEVEL] [--min-protect LEVEL]\n"
    "                    [--echo] [--json]\n"
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
    "  --echo               send each message back at the level it arrived\n"
    "  --json               one JSON object per line: listening, authenticated, message, closed\n"
    "  -h, --help           this text\n"
    "\n"
    "NTLM accounts come from NTLM_USER_FILE. Exit status: 0 after a signal, 1 if the server\n"
    "could not start, 2 for a usage error.\n";

#define TEXT_PREVIEW 200 /* bytes of a message shown in human-readable output */

struct server {
    negio_engine *engine;
    int json, echo;
    pthread_mutex_t out_mu; /* callbacks run on several loop threads: one line at a time */
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

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    struct server *s = user;
    char remote[80];
    remote_of(c, remote, sizeof(remote));
    pthread_mutex_lock(&s->out_mu);
    if (s->json) {
        json_writer w;
        json_event(&w, "authenticated", remote);
        json_kv_string(&w, "peer", info->peer);
        json_kv_string(&w, "mech", negio_mech_name(info->mech));
        json_kv_bool(&w, "negotiated", info->negotiated);
        json_kv_bool(&w, "server_authenticated", info->server_authenticated);
        json_kv_string(&w, "local_name", info->local_name);
        json_event_end(&w);
    } else {
        printf("%s: authenticated ", remote);
        json_quote(stdout, info->peer != NULL ? info->peer : "",
                   info->peer != NULL ? strlen(info->peer) : 0);
        printf(" with %s%s", negio_mech_name(info->mech), info->negotiated ? " (negotiated)" : "");
        if (info->local_name != NULL) {
            printf(", local user ");
            json_quote(stdout, info->local_name, strlen(info->local_name));
        }
        putchar('\n');
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
    return 0;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    struct server *s = user;
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
    if (s->echo) {
        int rc = negio_engine_send(s->engine, c, data, len, level);
        if (rc < 0)
            fprintf(stderr, "negio server: %s: echo of %zu bytes failed: %s: %s\n", remote, len,
                    negio_err_name(rc), negio_strerror(rc));
    }
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    struct server *s = user;
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
}

/* The server's connector configuration from the options. */
static int make_config(negio_config **out, unsigned allowed, const char *keytab, const char *spn,
                       negio_level protect, negio_level min)
{
    negio_config *cfg;
    int rc = negio_config_new(&cfg, NEGIO_ROLE_SERVER);
    if (rc < 0)
        return rc;
    /* a service name is always set: with an explicit keytab and NTLM allowed, gss-ntlmssp 1.2.0
     * needs one (see README, known limitations) */
    if ((rc = negio_config_set_allowed(cfg, allowed)) < 0 ||
        (rc = negio_config_set_service(cfg, spn)) < 0 ||
        (keytab != NULL && (rc = negio_config_set_keytab(cfg, keytab)) < 0) ||
        (rc = negio_config_set_default_level(cfg, protect)) < 0 ||
        (rc = negio_config_set_min_level(cfg, min)) < 0) {
        negio_config_del(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int cli_server(int argc, char **argv)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},  {"mech", required_argument, NULL, 'm'},
        {"keytab", required_argument, NULL, 'k'},  {"spn", required_argument, NULL, 's'},
        {"protect", required_argument, NULL, 'p'}, {"min-protect", required_argument, NULL, 'n'},
        {"echo", no_argument, NULL, 'e'},          {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:7000", *keytab = NULL, *spn = "negio@localhost";
    negio_mech mech = NEGIO_MECH_NEGOTIATE;
    negio_level protect = NEGIO_LEVEL_SEAL, min = NEGIO_LEVEL_SIGN;
    struct server s;
    memset(&s, 0, sizeof(s));
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'm':
            if (negio_mech_parse(optarg, &mech) < 0)
                return cli_usage_error("server", usage_text,
                                       "--mech: expected negotiate, kerberos or ntlm, got '%s'",
                                       optarg);
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
            break;
        case 'n':
            if (cli_parse_level("server", usage_text, "--min-protect", optarg, &min) < 0)
                return CLI_EXIT_USAGE;
            break;
        case 'e':
            s.echo = 1;
            break;
        case 'j':
            s.json = 1;
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
    unsigned allowed = mech == NEGIO_MECH_KERBEROS ? NEGIO_ALLOW_KERBEROS
                       : mech == NEGIO_MECH_NTLM   ? NEGIO_ALLOW_NTLM
                                                   : NEGIO_ALLOW_ALL;
    negio_config *cfg = NULL;
    int rc = make_config(&cfg, allowed, keytab, spn, protect, min);
    if (rc < 0) {
        fprintf(stderr, "negio server: invalid configuration: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        return rc == NEGIO_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }

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
    eo.user = &s;
    int status = CLI_EXIT_FAIL;
    rc = negio_engine_new(&s.engine, &eo);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot start the engine: %s: %s\n", negio_err_name(rc),
                negio_strerror(rc));
        goto out;
    }
    uint16_t bound = 0;
    rc = negio_engine_listen(s.engine, listen, cfg, &bound);
    if (rc < 0) {
        fprintf(stderr, "negio server: cannot listen on %s: %s: %s\n", listen, negio_err_name(rc),
                negio_strerror(rc));
        goto out;
    }
    pthread_mutex_lock(&s.out_mu);
    if (s.json) {
        json_writer w;
        json_event(&w, "listening", NULL);
        json_kv_string(&w, "address", host);
        json_kv_int(&w, "port", bound);
        json_event_end(&w);
    } else
        printf("listening on %s%s%s:%u (%s, protect %s, min %s%s)\n", strchr(host, ':') ? "[" : "",
               host, strchr(host, ':') ? "]" : "", bound, negio_mech_name(mech),
               negio_level_name(protect), negio_level_name(min), s.echo ? ", echo" : "");
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
out:
    negio_engine_del(s.engine);
    negio_config_del(cfg);
    pthread_mutex_destroy(&s.out_mu);
    return status;
}
