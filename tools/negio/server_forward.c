/*
 * negio server --forward: each client's messages go on to a backend over a connection made with
 * the credentials the client delegated, and the backend's replies come back at the level of the
 * request they answer (the double hop of Kerberos delegation).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define NO_DELEGATION                                                                              \
    "error: no delegated credentials (the client did not delegate, its ticket is not "             \
    "forwardable, or the mechanism was ntlm)"

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
    json_writer w;
    int json = server_event_begin(s, &w, "forward_closed", l->remote);
    if (json)
        json_kv_string(&w, "backend", s->forward);
    else
        printf("%s: forward to %s closed", l->remote, s->forward);
    server_event_why(&w, json, reason, error, detail);
    server_event_end(s, &w);
}

/* Opens the backend connection for client C with the credentials D it delegated. The engine
 * connection gets its own reference to D through the configuration it copies; nothing else
 * keeps them. Returns 0, or -1 when out of memory (then the client is refused). */
int server_link_start(struct server *s, negio_econn *c, struct client *cl, negio_delegated *d)
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
    server_remote(c, l->remote, sizeof(l->remote));
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
void server_forward_request(struct server *s, negio_econn *c, struct client *cl,
                            const uint8_t *data, size_t len, negio_level level)
{
    struct link *l = cl->link;
    if (l == NULL) {
        server_reply(s, c, level, "%s", NO_DELEGATION);
        return;
    }
    pthread_mutex_lock(&l->mu);
    if (l->back_closed) {
        char *why = strdup(l->back_error != NULL ? l->back_error : "closed");
        pthread_mutex_unlock(&l->mu);
        server_reply(s, c, level, "error: backend %s: %s", s->forward,
                     why != NULL ? why : "closed");
        free(why);
        return;
    }
    if (l->npending == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        negio_level *p = realloc(l->pending, cap * sizeof(*p));
        if (p == NULL) {
            pthread_mutex_unlock(&l->mu);
            server_reply(s, c, level, "error: backend %s: out of memory", s->forward);
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
            server_reply(s, c, level, "error: backend %s: not sent: %s: %s", s->forward,
                         negio_err_name(rc), negio_strerror(rc));
    }
}

int server_backend_authenticated(struct server *s, struct link *l, const negio_auth_info *info)
{
    json_writer w;
    if (server_event_begin(s, &w, "forwarded", l->remote)) {
        json_kv_string(&w, "backend", s->forward);
        json_kv_string(&w, "principal", l->principal);
        json_kv_string(&w, "backend_peer", info->peer);
        json_kv_string(&w, "mech", negio_mech_name(info->mech));
        json_kv_bool(&w, "server_authenticated", info->server_authenticated);
    } else {
        printf("%s: forwarding to %s (", l->remote, s->forward);
        server_print_quoted(info->peer);
        printf(") as ");
        server_print_quoted(l->principal);
        printf(" with %s\n", negio_mech_name(info->mech));
    }
    server_event_end(s, &w);
    return 0;
}

/* The backend's reply: back to the client at the level its request came at. */
void server_backend_message(struct server *s, struct link *l, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&l->mu);
    negio_level level = NEGIO_LEVEL_DEFAULT; /* a message nobody asked for */
    if (l->npending > 0) {
        level = l->pending[0];
        memmove(l->pending, l->pending + 1, --l->npending * sizeof(*l->pending));
    }
    pthread_mutex_unlock(&l->mu);
    server_send(s, l->front, level, data, len);
}

void server_backend_closed(struct server *s, struct link *l, negio_close_reason reason, int code,
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
        server_reply(s, l->front, pending[i], "error: backend %s: %s", s->forward,
                     why != NULL ? why : "connection closed");
    free(pending);
    print_forward_closed(s, l, negio_close_reason_name(reason), error, detail);
    link_unref(l);
}

void server_link_end(struct link *l)
{
    pthread_mutex_lock(&l->mu);
    negio_econn *back = l->back_closed ? NULL : l->back;
    pthread_mutex_unlock(&l->mu);
    if (back != NULL)
        negio_engine_close(back, 0); /* the link holds a reference: BACK is still valid */
    link_unref(l);
}

/* --forward: the onward connection's configuration; the credentials are added per client. The
 * delegated credentials are a Kerberos credential: Kerberos only, the backend authenticated. */
int server_forward_config(negio_config **out, const char *spn, negio_level protect, negio_level min)
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
