/* The server side: negio_engine_listen, the listening socket polled on loop 0, accepting up to
 * max_connections (then pausing), the accepted sockets handed round-robin to the loops, and
 * what happens when the process runs out of descriptors (a reserve, shedding, a backoff). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "base/config.h" /* the listener logs through its configuration's log function */
#include "engine/engine_internal.h"

void negio__adopt(negio__loop *l, negio__cmd *m)
{
    negio__listener *li = m->listener;
    /* the configuration may be replaced meanwhile (negio_engine_listen_reconfigure) */
    negio_econn *c = NULL;
    pthread_mutex_lock(&li->cfg_lock);
    /* fails only for memory: the configuration passed negio__config_check */
    (void)negio__econn_new(&c, l->e, l, li->cfg, 0, 1);
    pthread_mutex_unlock(&li->cfg_lock);
    if (c != NULL)
        c->listener = li;
    if (c == NULL) {
        close(m->fd);
        negio__uncount(l->e);
        return;
    }
    if (negio__econn_init_handles(c) < 0 || uv_tcp_open(&c->tcp, m->fd) != 0) {
        close(m->fd);
        negio__econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "could not adopt the socket");
        return;
    }
    if (atomic_load(&l->e->shutting_down)) {
        negio__econn_close(c, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
        return;
    }
    negio__econn_start(c);
}

#define BACKOFF_MIN_MS 20u
#define BACKOFF_MAX_MS 1000u

static void on_listen_ready(uv_poll_t *p, int status, int events);

/* One line to the log function of the listener's configuration (negio_config_set_log). */
static void listener_log(const negio__listener *li, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void listener_log(const negio__listener *li, const char *fmt, ...)
{
    char text[DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock((pthread_mutex_t *)&li->cfg_lock);
    if (li->cfg->log_fn != NULL)
        li->cfg->log_fn(li->cfg->log_user, 0, text);
    pthread_mutex_unlock((pthread_mutex_t *)&li->cfg_lock);
}

/* A descriptor held in reserve for the moment the process runs out (libuv's answer to the same
 * problem): /dev/null, or "/" where there is none; -1 if neither opens, and then pausing alone
 * keeps the listener from spinning. */
static int open_reserve(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fd = open("/", O_RDONLY | O_CLOEXEC);
    return fd;
}

/* On loop 0: the listener's poll and backoff timer (CMD_LISTEN), so that no other thread ever
 * touches a handle of a running loop. */
void negio__listener_setup(negio__loop *l, negio__listener *li)
{
    negio_engine *e = l->e;
    li->next = e->listeners;
    e->listeners = li; /* freed by negio_engine_del */
    int rc = atomic_load(&e->shutting_down) ? UV_ECANCELED
                                            : uv_poll_init_socket(&l->uv, &li->poll, li->fd);
    if (rc == 0) {
        li->poll.data = li;
        rc = uv_timer_init(&l->uv, &li->backoff);
        if (rc != 0)
            uv_close((uv_handle_t *)&li->poll, NULL);
    }
    if (rc != 0) {
        if (rc != UV_ECANCELED)
            listener_log(li, "listen: %s: the listener is closed", uv_strerror(rc));
        close(li->fd);
        li->fd = -1;
        return;
    }
    li->backoff.data = li;
    if (!atomic_load(&e->accept_paused))
        negio__listener_start(li);
}

void negio__listener_start(negio__listener *li)
{
    if (uv_poll_start(&li->poll, UV_READABLE, on_listen_ready) == 0)
        li->polling = 1;
}

static void listener_stop(negio__listener *li)
{
    if (li->polling) {
        uv_poll_stop(&li->poll);
        li->polling = 0;
    }
}

static void listener_pause(negio_engine *e)
{
    atomic_store(&e->accept_paused, 1);
    for (negio__listener *li = e->listeners; li; li = li->next)
        listener_stop(li);
}

void negio__listener_resume(negio_engine *e)
{
    negio__signal_loop(&e->loops[0], LOOP_RESUME);
}

void negio__listener_stop_all(negio_engine *e)
{
    for (negio__listener *li = e->listeners; li; li = li->next) {
        if (li->fd >= 0) {
            listener_stop(li);
            uv_close((uv_handle_t *)&li->poll, NULL);
            uv_close((uv_handle_t *)&li->backoff, NULL);
            close(li->fd);
            li->fd = -1;
        }
        if (li->reserve >= 0) {
            close(li->reserve);
            li->reserve = -1;
        }
    }
}

static void on_backoff(uv_timer_t *t)
{
    negio__listener *li = t->data;
    negio_engine *e = li->e;
    if (li->fd >= 0 && !atomic_load(&e->shutting_down) && !atomic_load(&e->accept_paused))
        negio__listener_start(li);
}

/* accept() failed for want of a descriptor (EMFILE: the process's, ENFILE: the system's) or of
 * kernel memory. The connection stays in the backlog and the socket stays readable: going back
 * to the poll would spin at full speed. Instead the connections waiting are shed (accepted into
 * the reserved descriptor, given up for the moment, and closed at once: their clients learn now,
 * not at their own timeout) and accepting pauses, 20 ms doubling up to 1 s while the episode
 * lasts. The first connection accepted ends the episode. Logged once at its start, once at its
 * end.
 * Descriptors can come back while the loop sheds (another thread closes some): each connection
 * accepted into the reserve's slot is shed only if the reserve cannot be opened again. If it can,
 * the process is no longer out of descriptors, and that connection is returned, with its address
 * in *SS, to be served like any other. Returns -1 when accepting has paused. */
static int listener_starved(negio__listener *li, int err, struct sockaddr_storage *ss)
{
    int fds = err == EMFILE || err == ENFILE;
    if (!li->starved) {
        li->starved = 1;
        li->shed = 0;
        li->backoff_ms = BACKOFF_MIN_MS;
        listener_log(li,
                     "accept: %s: out of %s; shedding new connections and pausing accepting "
                     "until some are free",
                     uv_strerror(-err), fds ? "descriptors" : "kernel memory");
    } else {
        li->backoff_ms = li->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : li->backoff_ms * 2;
    }
    if (li->reserve < 0)
        li->reserve = open_reserve();
    if (fds && li->reserve >= 0) {
        close(li->reserve);
        li->reserve = -1;
        for (;;) {
            socklen_t sl = sizeof(*ss);
            int fd = accept4(li->fd, (struct sockaddr *)ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                continue;
            if (fd < 0)
                break; /* none left waiting, or the slot was taken by another thread */
            li->reserve = open_reserve();
            if (li->reserve >= 0)
                return fd; /* descriptors are back: served, not shed */
            close(fd);
            li->shed++;
        }
        li->reserve = open_reserve();
    }
    listener_stop(li);
    uv_timer_start(&li->backoff, on_backoff, li->backoff_ms, 0);
    return -1;
}

static void listener_recovered(negio__listener *li)
{
    li->starved = 0;
    if (li->reserve < 0)
        li->reserve = open_reserve();
    listener_log(li, "accepting again; %lu connection(s) were shed while out of resources",
                 li->shed);
}

static void on_listen_ready(uv_poll_t *p, int status, int events)
{
    (void)events;
    negio__listener *li = p->data;
    negio_engine *e = li->e;
    if (status < 0)
        return;
    for (;;) {
        if (atomic_load(&e->conns) >= e->o.max_connections) {
            listener_pause(e); /* resumed when a connection ends */
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(li->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
                return; /* EAGAIN: nothing more waits */
            fd = listener_starved(li, err, &ss);
            if (fd < 0)
                return;
        }
        if (li->starved)
            listener_recovered(li);
        if (atomic_load(&e->shutting_down) ||
            (e->o.callbacks.on_accept &&
             e->o.callbacks.on_accept(e, (struct sockaddr *)&ss, e->o.user) != 0)) {
            close(fd);
            continue;
        }
        negio__cmd *m = negio__new_cmd(CMD_ADOPT, NULL, 0);
        if (m == NULL) {
            close(fd); /* shed: memory for it may be back for the next one */
            continue;
        }
        atomic_fetch_add(&e->conns, 1); /* counted now, adopted later on its loop */
        m->fd = fd;
        m->listener = li;
        unsigned i = atomic_fetch_add(&e->rr, 1) % e->nloops;
        if (i == 0) {
            negio__adopt(&e->loops[0], m); /* already on loop 0 */
            negio__free(m);
        } else {
            negio__post(&e->loops[i], m);
        }
    }
}

/* "host:port", "[v6]:port" or ":port" (all addresses, IPv6 and IPv4). */
static int parse_addr(const char *addr, char *host, size_t cap, char *port, size_t pcap)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= pcap)
        return NEGIO_ERR_ADDRESS;
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= cap)
        return NEGIO_ERR_ADDRESS;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    char *end;
    long v = strtol(port, &end, 10);
    if (*end != '\0' || v < 0 || v > 65535)
        return NEGIO_ERR_ADDRESS;
    return 0;
}

int negio_engine_listen(negio_engine *e, const char *addr, const negio_config *cfg,
                        uint16_t *out_port)
{
    return negio_engine_listen_with(e, addr, cfg, NULL, out_port);
}

int negio_engine_listen_reconfigure(negio_engine *e, uint16_t port, const negio_config *cfg)
{
    if (e == NULL || cfg == NULL || negio_config_get_role(cfg) != NEGIO_ROLE_SERVER ||
        negio__config_check(cfg) != NEGIO_OK)
        return NEGIO_ERR_INVALID;
    negio_config *copy;
    if (negio_config_dup(&copy, cfg) < 0)
        return NEGIO_ERR_NOMEM;
    negio_config_set_deferred_steps(copy, 1);
    pthread_mutex_lock(&e->lock);
    negio__listener *li = e->registry;
    while (li != NULL && li->port != port)
        li = li->reg_next;
    if (li != NULL) {
        pthread_mutex_lock(&li->cfg_lock);
        negio_config *old = li->cfg;
        li->cfg = copy;
        pthread_mutex_unlock(&li->cfg_lock);
        copy = old;
    }
    pthread_mutex_unlock(&e->lock);
    negio_config_del(copy);
    return li != NULL ? NEGIO_OK : NEGIO_ERR_INVALID;
}

/* NEGIO__END(negio_listen_options, accept_proxy_from): the first layout */
#define LISTEN_OPTIONS_V0 (offsetof(negio_listen_options, accept_proxy_from) + sizeof(char *))

int negio_engine_listen_with(negio_engine *e, const char *addr, const negio_config *cfg,
                             const negio_listen_options *opts, uint16_t *out_port)
{
    /* refused here, not by dropping every connection it accepts (negio__adopt) */
    if (e == NULL || addr == NULL || cfg == NULL ||
        negio_config_get_role(cfg) != NEGIO_ROLE_SERVER || negio__config_check(cfg) != NEGIO_OK)
        return NEGIO_ERR_INVALID;
    negio_listen_options lo = {.size = sizeof(lo)};
    if (opts != NULL && negio__sized_in(&lo, sizeof(lo), opts, LISTEN_OPTIONS_V0) < 0)
        return NEGIO_ERR_INVALID;
    negio__cidr *proxy_from = NULL;
    int nproxy = 0;
    if (lo.accept_proxy_from != NULL &&
        (nproxy = negio__cidr_parse(lo.accept_proxy_from, &proxy_from)) < 0)
        return nproxy;
    if (atomic_load(&e->shutting_down))
        return NEGIO_ERR_STATE;
    char host[256], port[16];
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (parse_addr(addr, host, sizeof(host), port, sizeof(port)) < 0 ||
        getaddrinfo(host[0] ? host : "::", port, &hints, &res) != 0 || res == NULL) {
        negio__free(proxy_from);
        return NEGIO_ERR_ADDRESS;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0, rc = NEGIO_ERR_SYSTEM;
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        (res->ai_family != AF_INET6 || host[0] != '\0' ||
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0))
        rc = bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 1024) == 0
                 ? NEGIO_OK
                 : NEGIO_ERR_ADDRESS;
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (rc == NEGIO_OK && getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        rc = NEGIO_ERR_SYSTEM;
    if (rc != NEGIO_OK) {
        if (fd >= 0)
            close(fd);
        negio__free(proxy_from);
        return rc;
    }
    if (out_port != NULL)
        *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    negio__listener *li = negio__calloc(1, sizeof(*li));
    if (li == NULL || negio_config_dup(&li->cfg, cfg) < 0 ||
        pthread_mutex_init(&li->cfg_lock, NULL) != 0) {
        if (li != NULL)
            negio_config_del(li->cfg);
        negio__free(li);
        negio__free(proxy_from);
        close(fd);
        return NEGIO_ERR_NOMEM;
    }
    li->proxy_from = proxy_from;
    li->nproxy = nproxy > 0 ? (size_t)nproxy : 0;
    /* a step may wait on the KDC: it must run on a worker, never on the loop thread */
    negio_config_set_deferred_steps(li->cfg, 1);
    li->e = e;
    li->fd = fd;
    li->reserve = open_reserve();
    /* the listener's handle and the list belong to loop 0: its thread sets them up
     * (CMD_LISTEN), so no other thread ever touches a handle of a running loop */
    negio__cmd *m = negio__new_cmd(CMD_LISTEN, NULL, 0);
    if (m == NULL) {
        negio_config_del(li->cfg);
        pthread_mutex_destroy(&li->cfg_lock);
        negio__free(li->proxy_from);
        if (li->reserve >= 0)
            close(li->reserve);
        negio__free(li);
        close(fd);
        return NEGIO_ERR_NOMEM;
    }
    m->listener = li;
    li->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    pthread_mutex_lock(&e->lock); /* for negio_engine_listen_reconfigure */
    li->reg_next = e->registry;
    e->registry = li;
    pthread_mutex_unlock(&e->lock);
    negio__post(&e->loops[0], m);
    return NEGIO_OK;
}

void negio__resume_accepting(negio__loop *l)
{
    negio_engine *e = l->e;
    if (atomic_load(&e->shutting_down))
        return;
    atomic_store(&e->accept_paused, 0);
    for (negio__listener *li = e->listeners; li; li = li->next) {
        /* a listener out of descriptors resumes when its backoff ends */
        if (!li->polling && li->fd >= 0 && !uv_is_active((uv_handle_t *)&li->backoff))
            negio__listener_start(li);
    }
}
