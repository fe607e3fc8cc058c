/*
 * negio server: the engine's callbacks. Each reports its event (one line, human-readable or
 * JSON) and hands a message to what the server does with messages: --echo here, --files
 * (server_files.c) or --forward (server_forward.c); a backend connection of --forward has its
 * own callbacks there.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"
#include "server.h"

#define TEXT_PREVIEW 200 /* bytes of a message shown in human-readable output */

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

void server_remote(negio_econn *c, char *out, size_t cap)
{
    format_addr(negio_econn_peer_addr(c), out, cap);
}

int server_event_begin(struct server *s, json_writer *w, const char *event, const char *remote)
{
    pthread_mutex_lock(&s->out_mu);
    if (!s->json)
        return 0;
    json_init(w, stdout);
    json_begin_object(w);
    json_kv_string(w, "event", event);
    if (remote != NULL)
        json_kv_string(w, "remote", remote);
    return 1;
}

void server_event_end(struct server *s, json_writer *w)
{
    if (s->json) {
        json_end_object(w);
        fputc('\n', stdout);
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->out_mu);
}

void server_event_why(json_writer *w, int json, const char *reason, const char *error,
                      const char *detail)
{
    if (detail != NULL && detail[0] == '\0')
        detail = NULL;
    if (json) {
        json_kv_string(w, "reason", reason);
        json_kv_string(w, "error", error);
        json_kv_string(w, "detail", detail);
        return;
    }
    printf(", %s", reason);
    if (error != NULL)
        printf(", %s", error);
    if (detail != NULL)
        printf(": %s", detail);
    putchar('\n');
}

void server_print_quoted(const char *s)
{
    if (s == NULL)
        fputs("null", stdout);
    else
        json_quote(stdout, s, strlen(s));
}

void server_send(struct server *s, negio_econn *c, negio_level level, const void *data, size_t len)
{
    int rc = level == NEGIO_LEVEL_DEFAULT ? negio_engine_write(c, data, len)
                                          : negio_engine_send(s->engine, c, data, len, level);
    if (rc < 0 && rc != NEGIO_ERR_CLOSED) {
        char remote[80];
        server_remote(c, remote, sizeof(remote));
        fprintf(stderr, "negio server: %s: reply of %zu bytes failed: %s: %s\n", remote, len,
                negio_err_name(rc), negio_strerror(rc));
    }
}

void server_reply(struct server *s, negio_econn *c, negio_level level, const char *fmt, ...)
{
    char *text;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        static const char oom[] = "error: out of memory";
        server_send(s, c, level, oom, sizeof(oom) - 1);
        return;
    }
    server_send(s, c, level, text, (size_t)n);
    free(text);
}

/* ---- callbacks ----------------------------------------------------------------------------- */

static enum conn_kind kind_of(negio_econn *c)
{
    const enum conn_kind *kind = negio_econn_user(c);
    return kind != NULL ? *kind : 0;
}

static void client_free(struct client *cl)
{
    if (cl == NULL)
        return;
    free(cl->peer);
    negio_user_del(cl->user);
    free(cl->refusal);
    free(cl);
}

int server_on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND)
        return server_backend_authenticated(s, negio_econn_user(c), info);
    struct client *cl = NULL;
    if (s->files_fd >= 0 || s->forward != NULL) {
        cl = calloc(1, sizeof(*cl));
        if (cl == NULL || (cl->peer = strdup(info->peer != NULL ? info->peer : "?")) == NULL ||
            (s->impersonate && server_find_user(s, cl, info) < 0)) {
            client_free(cl);
            fprintf(stderr, "negio server: out of memory: refusing a client\n");
            return 1;
        }
        cl->kind = CONN_CLIENT;
        negio_econn_set_user(c, cl);
    }
    char remote[80];
    server_remote(c, remote, sizeof(remote));
    json_writer w;
    if (server_event_begin(s, &w, "authenticated", remote)) {
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
    } else if (info->mech == NEGIO_MECH_NONE) {
        printf("%s: authenticated by TLS only, ", remote);
        cli_tls_print(stdout, NEGIO_ROLE_SERVER, info);
        putchar('\n');
    } else {
        printf("%s: authenticated ", remote);
        server_print_quoted(info->peer != NULL ? info->peer : "");
        printf(" with %s%s", negio_mech_name(info->mech), info->negotiated ? " (negotiated)" : "");
        if (s->transport != NEGIO_TRANSPORT_PLAIN) {
            printf(", ");
            cli_tls_print(stdout, NEGIO_ROLE_SERVER, info);
        }
        if (info->local_name != NULL) {
            printf(", local user ");
            server_print_quoted(info->local_name);
        }
        if (info->delegated)
            printf(", credentials delegated");
        if (s->impersonate && cl->user != NULL)
            printf(", acting as uid %ld", (long)negio_user_uid(cl->user));
        else if (s->impersonate)
            printf(", no local account: %s", cl->refusal);
        putchar('\n');
    }
    server_event_end(s, &w);
    if (s->forward != NULL) {
        negio_delegated *d = negio_econn_delegated(c);
        if (d != NULL && server_link_start(s, c, cl, d) < 0) {
            fprintf(stderr, "negio server: out of memory: refusing a client\n");
            return 1; /* on_closed frees the client */
        }
    }
    return 0;
}

void server_on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND) {
        server_backend_message(s, negio_econn_user(c), data, len);
        return;
    }
    char remote[80];
    server_remote(c, remote, sizeof(remote));
    json_writer w;
    if (server_event_begin(s, &w, "message", remote)) {
        json_kv_string(&w, "level", negio_level_name(level));
        json_kv_int(&w, "bytes", (long long)len);
    } else {
        printf("%s: message, %s, %zu bytes: ", remote, negio_level_name(level), len);
        json_quote(stdout, data, len > TEXT_PREVIEW ? TEXT_PREVIEW : len);
        puts(len > TEXT_PREVIEW ? "..." : "");
    }
    server_event_end(s, &w);
    struct client *cl = negio_econn_user(c);
    if (s->echo) {
        int rc = negio_engine_send(s->engine, c, data, len, level);
        if (rc < 0) {
            fprintf(stderr, "negio server: %s: echo of %zu bytes failed: %s: %s\n", remote, len,
                    negio_err_name(rc), negio_strerror(rc));
            /* the client waits for an answer that cannot come (its own minimum level or
             * message size forbids it): end the connection so that it hears why */
            if (rc == NEGIO_ERR_LEVEL || rc == NEGIO_ERR_MSG_SIZE)
                (void)negio_engine_close(c, SERVER_STATUS_NO_ECHO);
        }
    } else if (s->files_fd >= 0 && cl != NULL)
        server_file_request(s, c, cl, data, len, level);
    else if (s->forward != NULL && cl != NULL)
        server_forward_request(s, c, cl, data, len, level);
}

void server_on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    struct server *s = user;
    if (kind_of(c) == CONN_BACKEND) {
        server_backend_closed(s, negio_econn_user(c), reason, code, detail);
        return;
    }
    char remote[80];
    server_remote(c, remote, sizeof(remote));
    json_writer w;
    int json = server_event_begin(s, &w, "closed", remote);
    if (!json)
        printf("%s: closed", remote);
    server_event_why(&w, json, negio_close_reason_name(reason),
                     code != 0 ? negio_err_name(code) : NULL, detail);
    server_event_end(s, &w);
    struct client *cl = negio_econn_user(c);
    if (cl == NULL)
        return;
    negio_econn_set_user(c, NULL);
    if (cl->link != NULL)
        server_link_end(cl->link);
    client_free(cl);
}
