/* The client side: negio_engine_connect from any thread, then on the connection's loop the name
 * resolved (uv_getaddrinfo) and each of its addresses tried in turn until one connects. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "engine/engine_internal.h"

#define CONNECT_TIMEOUT_MS 10000u /* negio_connect_options.connect_timeout_ms (0) */
/* negio_connect_options as it was first declared (base/sized.h) */
#define CONNECT_OPTIONS_V0 NEGIO__END(negio_connect_options, connect_timeout_ms)

struct addrinfo *negio__copy_addrs(const struct addrinfo *res)
{
    struct addrinfo *head = NULL, **tail = &head;
    for (const struct addrinfo *r = res; r != NULL; r = r->ai_next) {
        struct addrinfo *a = negio__calloc(1, sizeof(*a));
        void *addr = negio__malloc(r->ai_addrlen);
        if (a == NULL || addr == NULL) {
            negio__free(a);
            negio__free(addr);
            break;
        }
        *a = *r;
        memcpy(addr, r->ai_addr, r->ai_addrlen);
        a->ai_addr = addr;
        a->ai_canonname = NULL;
        a->ai_next = NULL;
        *tail = a;
        tail = &a->ai_next;
    }
    return head;
}

void negio__free_addr_list(struct addrinfo **list)
{
    while (*list != NULL) {
        struct addrinfo *a = *list;
        *list = a->ai_next;
        negio__free(a->ai_addr);
        negio__free(a);
    }
}

void negio__free_addrs(negio_econn *c)
{
    negio__free_addr_list(&c->addrs);
}

static int try_next_address(negio_econn *c);

/* A failed connect leaves the TCP handle unusable: close it, make a new one, try the next. */
static void on_retry_closed(uv_handle_t *h)
{
    negio_econn *c = h->data;
    /* the connection ended while the handle was closing (its deadline, a shutdown): the closed
     * handle was the last one it waited for */
    int rc = c->close_started ? UV_ECANCELED : uv_tcp_init(&c->l->uv, &c->tcp);
    if (rc != 0) {
        c->tcp_ready = 0;
        c->handles--;
        if (c->close_started)
            negio__econn_finish(c); /* if the timer is closed too */
        else
            negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "tcp init: %s",
                               uv_strerror(rc));
        return;
    }
    c->tcp.data = c;
    rc = try_next_address(c);
    if (rc < 0)
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", c->host,
                           (unsigned)c->port, uv_strerror(rc));
}

static void on_connected(uv_connect_t *req, int status)
{
    negio_econn *c = req->data;
    if (c->close_started)
        return;
    if (status < 0) {
        /* the next address of the name (IPv6 and IPv4 of localhost, say) may answer */
        if (c->addrs != NULL && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_close((uv_handle_t *)&c->tcp, on_retry_closed);
            return;
        }
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", c->host,
                           (unsigned)c->port, uv_strerror(status));
        return;
    }
    negio__free_addrs(c);
    negio__econn_start(c);
}

/* Connects to the first untried address; 0, or a libuv error when none could be started. */
static int try_next_address(negio_econn *c)
{
    int rc = UV_EADDRNOTAVAIL;
    while (c->addrs != NULL) {
        struct addrinfo *a = c->addrs;
        c->addrs = a->ai_next;
        a->ai_next = NULL;
        c->connect_req.data = c;
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, a->ai_addr, on_connected);
        negio__free(a->ai_addr); /* libuv copied the address */
        negio__free(a);
        if (rc == 0)
            return 0;
    }
    return rc;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    negio_econn *c = req->data;
    if (status < 0 || res == NULL) {
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "resolve %s: %s", c->host,
                           uv_strerror(status));
        if (res)
            uv_freeaddrinfo(res);
        negio_econn_unref(c); /* the resolver's reference */
        return;
    }
    if (!c->close_started) {
        c->addrs = negio__copy_addrs(res);
        int rc = c->addrs == NULL ? UV_ENOMEM : try_next_address(c);
        if (rc < 0)
            negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s",
                               c->host, (unsigned)c->port, uv_strerror(rc));
    }
    uv_freeaddrinfo(res);
    negio_econn_unref(c);
}

/* The TCP connection was not made in time: the name still resolving, or an address that does
 * not answer (a SYN dropped). negio__econn_start sets the handshake deadline in its place. */
static void on_connect_timeout(uv_timer_t *t)
{
    negio_econn *c = t->data;
    negio__econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "connect to %s:%u did not complete within %u ms",
                       c->host, (unsigned)c->port, (unsigned)c->connect_timeout_ms);
}

void negio__start_connect(negio__loop *l, negio_econn *c)
{
    (void)l;
    if (negio__econn_init_handles(c) < 0 ||
        negio__timer_start(c, on_connect_timeout, c->connect_timeout_ms) != 0) {
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM,
                           "tcp init failed (the socket or its timer)");
        return;
    }
    if (atomic_load(&c->e->shutting_down)) {
        negio__econn_close(c, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->resolve_req.data = c;
    negio_econn_ref(c);
    int rc = uv_getaddrinfo(&c->l->uv, &c->resolve_req, on_resolved, c->host, port, &hints);
    if (rc < 0) {
        negio_econn_unref(c);
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "resolve %s: %s", c->host,
                           uv_strerror(rc));
    }
}

int negio_engine_connect(negio_engine *e, const char *host, uint16_t port, const negio_config *cfg,
                         void *conn_user, negio_econn **out)
{
    return negio_engine_connect_with(e, host, port, cfg, NULL, conn_user, out);
}

int negio_engine_connect_with(negio_engine *e, const char *host, uint16_t port,
                              const negio_config *cfg, const negio_connect_options *opts,
                              void *conn_user, negio_econn **out)
{
    negio_connect_options co = {.size = sizeof(co)};
    if (e == NULL || host == NULL || cfg == NULL ||
        negio_config_get_role(cfg) != NEGIO_ROLE_CLIENT || negio_config_get_service(cfg) == NULL ||
        (opts != NULL && negio__sized_in(&co, sizeof(co), opts, CONNECT_OPTIONS_V0) < 0))
        return NEGIO_ERR_INVALID;
    if (atomic_load(&e->shutting_down))
        return NEGIO_ERR_STATE;
    negio__loop *l = &e->loops[atomic_fetch_add(&e->rr, 1) % e->nloops];
    negio_config *deferred;
    if (negio_config_dup(&deferred, cfg) < 0)
        return NEGIO_ERR_NOMEM;
    /* a step may wait on the KDC: it must run on a worker, never on the loop thread */
    negio_config_set_deferred_steps(deferred, 1);
    negio_econn *c;
    int rc = negio__econn_new(&c, e, l, deferred, 1, 0);
    negio_config_del(deferred);
    if (rc < 0)
        return rc; /* NEGIO_ERR_INVALID: a configuration negio_conn_new refuses */
    c->user = conn_user;
    c->port = port;
    c->connect_timeout_ms = co.connect_timeout_ms != 0 ? co.connect_timeout_ms : CONNECT_TIMEOUT_MS;
    c->host = negio__strdup(host);
    negio__cmd *m = negio__new_cmd(CMD_CONNECT, c, 0);
    if (c->host == NULL || m == NULL) {
        negio__free(m);
        atomic_fetch_sub(&e->conns, 1);
        negio_econn_unref(c);
        return NEGIO_ERR_NOMEM;
    }
    negio_econn_ref(c); /* the command's */
    if (out != NULL) {
        negio_econn_ref(c); /* the caller's */
        *out = c;
    }
    negio__post(l, m);
    return NEGIO_OK;
}
