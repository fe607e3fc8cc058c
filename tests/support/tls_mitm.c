/* The TLS man in the middle (tls_mitm.h): an acceptor thread, and one thread per connection that
 * runs two memory-BIO peers (tls_peer.h) over non-blocking sockets with poll(). The threads are
 * woken for test_mitm_stop by a pipe that is written once and never read, so that it stays
 * readable for every poller. */
#include "support/tls_mitm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "support/clock.h"
#include "support/tls_peer.h"

#define RELAY_CHUNK 16384
#define MAX_PENDING (1u << 20) /* stop reading a leg while the other has this much unsent */
#define CLOSE_WAIT_MS 2000     /* how long a closing connection waits for its peers' FIN */

typedef struct conn_thread {
    struct conn_thread *next;
    pthread_t thread;
} conn_thread;

struct test_mitm {
    test_mitm_opts opts; /* strings owned (strdup) */
    int lfd;
    int stop_pipe[2];
    uint16_t port;
    pthread_t acceptor;
    pthread_mutex_t lock; /* guards what follows */
    conn_thread *threads;
    unsigned accepted, relayed;
    char last_error[1024];
};

enum { CLIENT_LEG = 0, UPSTREAM_LEG = 1 };
static const char *const LEG_NAME[2] = {"client leg", "upstream leg"};

typedef struct leg {
    int fd; /* -1: not connected or closed */
    test_tls_peer *tls;
    int rd_eof;  /* the peer ended its stream (or the socket failed) */
    int wr_dead; /* a write failed: what is queued for this peer is dropped */
    int shut_wr; /* shutdown(SHUT_WR) done */
} leg;

typedef enum phase { HS_CLIENT, HS_UPSTREAM, RELAY, CLOSING } phase;

typedef struct conn {
    test_mitm *m;
    unsigned id;
    int fd; /* the accepted socket, until the thread takes it */
    leg leg[2];
    phase phase;
    int counted;
    int64_t close_deadline; /* CLOCK_MONOTONIC ms */
} conn;

/* ---- helpers --------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

static void set_error(test_mitm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(test_mitm *m, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&m->lock);
    va_start(ap, fmt);
    vsnprintf(m->last_error, sizeof(m->last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&m->lock);
}

static void leg_error(conn *c, int which)
{
    set_error(c->m, "conn %u: %s: %s", c->id, LEG_NAME[which],
              test_tls_peer_error(c->leg[which].tls));
}

static size_t pending(leg *l)
{
    size_t n = 0;
    if (l->tls != NULL)
        test_tls_peer_out(l->tls, &n);
    return n;
}

/* ---- one connection -------------------------------------------------------------------------- */

static int connect_upstream(conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(c->m, "conn %u: upstream socket: %s", c->id, strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->m->opts.upstream_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* a blocking connect: on loopback it completes or is refused at once */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        set_error(c->m, "conn %u: connect to 127.0.0.1:%u: %s", c->id,
                  (unsigned)c->m->opts.upstream_port, strerror(errno));
        close(fd);
        return -1;
    }
    test_tls_opts o = {
        .role = TEST_TLS_CLIENT,
        .cert = c->m->opts.client_cert,
        .key = c->m->opts.client_key,
        .min_version = TLS1_2_VERSION,
        .sni = SSL_get_servername(test_tls_peer_ssl(c->leg[CLIENT_LEG].tls),
                                  TLSEXT_NAMETYPE_host_name),
    };
    if (test_tls_peer_new(&c->leg[UPSTREAM_LEG].tls, &o) != 0) {
        set_error(c->m, "conn %u: upstream TLS setup failed", c->id);
        close(fd);
        return -1;
    }
    c->leg[UPSTREAM_LEG].fd = fd;
    return 0;
}

/* Ends the relay: close_notify on every leg whose TLS still stands, then the sockets close once
 * that is sent and the peers have ended their streams. */
static void start_closing(conn *c)
{
    for (int i = 0; i < 2; i++)
        if (c->leg[i].tls != NULL && SSL_is_init_finished(test_tls_peer_ssl(c->leg[i].tls)))
            test_tls_peer_shutdown(c->leg[i].tls);
    c->phase = CLOSING;
    c->close_deadline = test_now_ms() + CLOSE_WAIT_MS;
}

/* Decrypts what leg FROM holds and encrypts it into the other leg, while the other leg's queue
 * is not too long. Returns 0, or -1 when FROM has ended (the connection then closes). */
static int relay_from(conn *c, int from)
{
    leg *src = &c->leg[from], *dst = &c->leg[!from];
    uint8_t buf[RELAY_CHUNK];
    while (pending(dst) < MAX_PENDING) {
        ssize_t n = test_tls_peer_read(src->tls, buf, sizeof(buf));
        if (n == 0)
            return 0;
        if (n < 0) {
            if (n != TEST_TLS_CLOSED && n != TEST_TLS_EOF)
                leg_error(c, from);
            return -1;
        }
        ssize_t w = test_tls_peer_write(dst->tls, buf, (size_t)n);
        if (w != n) {
            leg_error(c, !from);
            return -1;
        }
        if (!c->counted) {
            c->counted = 1;
            pthread_mutex_lock(&c->m->lock);
            c->m->relayed++;
            pthread_mutex_unlock(&c->m->lock);
        }
    }
    return 0;
}

/* Runs the TLS side of the connection with the input received so far. */
static void advance(conn *c)
{
    if (c->phase == HS_CLIENT) {
        int r = test_tls_peer_handshake(c->leg[CLIENT_LEG].tls);
        if (r < 0) {
            leg_error(c, CLIENT_LEG); /* the alert, if any, is still sent */
            start_closing(c);
        } else if (r == 1) {
            if (connect_upstream(c) == 0) {
                c->phase = HS_UPSTREAM;
            } else {
                start_closing(c);
            }
        }
    }
    if (c->phase == HS_UPSTREAM) {
        int r = test_tls_peer_handshake(c->leg[UPSTREAM_LEG].tls);
        if (r < 0) {
            leg_error(c, UPSTREAM_LEG);
            start_closing(c);
        } else if (r == 1) {
            c->phase = RELAY;
        }
    }
    if (c->phase == RELAY) {
        if (relay_from(c, CLIENT_LEG) != 0 || relay_from(c, UPSTREAM_LEG) != 0)
            start_closing(c);
    }
}

/* Sends what each leg has queued; in CLOSING, shuts a socket down for writing once its queue is
 * empty. */
static void flush(conn *c)
{
    for (int i = 0; i < 2; i++) {
        leg *l = &c->leg[i];
        if (l->fd < 0 || l->tls == NULL)
            continue;
        size_t len;
        const uint8_t *d;
        while ((d = test_tls_peer_out(l->tls, &len)) != NULL) {
            if (l->wr_dead) {
                test_tls_peer_consume(l->tls, len);
                break;
            }
            ssize_t n = send(l->fd, d, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                test_tls_peer_consume(l->tls, (size_t)n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                    l->wr_dead = 1;
                break;
            }
        }
        if (c->phase == CLOSING && !l->shut_wr && (l->wr_dead || pending(l) == 0)) {
            shutdown(l->fd, SHUT_WR);
            l->shut_wr = 1;
        }
    }
}

/* Reads what the socket of leg I has. In CLOSING the bytes are dropped: only the end of the
 * stream is awaited. */
static void receive(conn *c, int i)
{
    leg *l = &c->leg[i];
    uint8_t buf[RELAY_CHUNK];
    for (;;) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            if (c->phase != CLOSING)
                test_tls_peer_feed(l->tls, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        l->rd_eof = 1; /* end of stream, or a reset: either way nothing more comes */
        test_tls_peer_feed_eof(l->tls);
        return;
    }
}

static int closed_cleanly(const conn *c)
{
    for (int i = 0; i < 2; i++)
        if (c->leg[i].fd >= 0 && !(c->leg[i].shut_wr && c->leg[i].rd_eof))
            return 0;
    return 1;
}

static void run_conn(conn *c)
{
    test_tls_opts o = {.role = TEST_TLS_SERVER,
                       .cert = c->m->opts.cert,
                       .key = c->m->opts.key,
                       .min_version = TLS1_2_VERSION};
    if (test_tls_peer_new(&c->leg[CLIENT_LEG].tls, &o) != 0) {
        set_error(c->m, "conn %u: client-side TLS setup failed", c->id);
        return;
    }
    for (;;) {
        advance(c);
        flush(c);
        if (c->phase == CLOSING && (closed_cleanly(c) || test_now_ms() >= c->close_deadline))
            return;

        struct pollfd pfd[3];
        int idx[2] = {-1, -1};
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = c->m->stop_pipe[0], .events = POLLIN};
        for (int i = 0; i < 2; i++) {
            leg *l = &c->leg[i];
            if (l->fd < 0)
                continue;
            short ev = 0;
            /* backpressure: while the other leg cannot send, leave the bytes in the kernel */
            if (!l->rd_eof && !(c->phase == RELAY && pending(&c->leg[!i]) >= MAX_PENDING))
                ev |= POLLIN;
            if (!l->wr_dead && pending(l) > 0)
                ev |= POLLOUT;
            /* nothing wanted from it: leave it out, or a socket that is shut down both ways
             * would report POLLHUP at every call */
            idx[i] = (int)n;
            pfd[n++] = (struct pollfd){.fd = ev ? l->fd : -1, .events = ev};
        }
        int timeout = -1;
        if (c->phase == CLOSING) {
            int64_t left = c->close_deadline - test_now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
            set_error(c->m, "conn %u: poll: %s", c->id, strerror(errno));
            return;
        }
        if (pfd[0].revents)
            return; /* test_mitm_stop */
        for (int i = 0; i < 2; i++)
            if (idx[i] >= 0 && (pfd[idx[i]].revents & (POLLIN | POLLHUP | POLLERR)) &&
                !c->leg[i].rd_eof)
                receive(c, i);
    }
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    c->leg[CLIENT_LEG].fd = c->fd;
    c->leg[UPSTREAM_LEG].fd = -1;
    run_conn(c);
    for (int i = 0; i < 2; i++) {
        if (c->leg[i].fd >= 0)
            close(c->leg[i].fd);
        test_tls_peer_free(c->leg[i].tls);
    }
    free(c);
    return NULL;
}

/* ---- acceptor -------------------------------------------------------------------------------- */

static void *acceptor_main(void *arg)
{
    test_mitm *m = arg;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = m->stop_pipe[0], .events = POLLIN},
                                {.fd = m->lfd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            set_error(m, "poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[0].revents)
            return NULL;
        int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                set_error(m, "accept: %s", strerror(errno));
                /* out of descriptors: the listener stays readable, do not spin on it */
                test_sleep_ms(10);
            }
            continue;
        }
        conn *c = calloc(1, sizeof(*c));
        conn_thread *t = calloc(1, sizeof(*t));
        if (c == NULL || t == NULL)
            abort();
        c->m = m;
        c->fd = fd;
        pthread_mutex_lock(&m->lock);
        c->id = m->accepted++;
        int rc = pthread_create(&t->thread, NULL, conn_main, c);
        if (rc == 0) {
            t->next = m->threads;
            m->threads = t;
        }
        pthread_mutex_unlock(&m->lock);
        if (rc != 0) {
            set_error(m, "conn %u: pthread_create: %s", c->id, strerror(rc));
            close(fd);
            free(c);
            free(t);
        }
    }
}

/* ---- API ------------------------------------------------------------------------------------- */

static void free_mitm(test_mitm *m)
{
    if (m->lfd >= 0)
        close(m->lfd);
    for (int i = 0; i < 2; i++)
        if (m->stop_pipe[i] >= 0)
            close(m->stop_pipe[i]);
    free((char *)m->opts.cert);
    free((char *)m->opts.key);
    free((char *)m->opts.client_cert);
    free((char *)m->opts.client_key);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int test_mitm_start_opts(test_mitm **out, const test_mitm_opts *opts)
{
    *out = NULL;
    /* fail here, not in a connection thread, when the files do not load */
    test_tls_peer *probe;
    test_tls_opts po = {.role = TEST_TLS_SERVER, .cert = opts->cert, .key = opts->key};
    if (test_tls_peer_new(&probe, &po) != 0)
        return -1;
    test_tls_peer_free(probe);
    if (opts->client_cert != NULL) {
        test_tls_opts co = {.cert = opts->client_cert, .key = opts->client_key};
        if (test_tls_peer_new(&probe, &co) != 0)
            return -1;
        test_tls_peer_free(probe);
    }

    test_mitm *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->lfd = m->stop_pipe[0] = m->stop_pipe[1] = -1;
    pthread_mutex_init(&m->lock, NULL);
    m->opts = (test_mitm_opts){
        .cert = dup_or_null(opts->cert),
        .key = dup_or_null(opts->key),
        .upstream_port = opts->upstream_port,
        .client_cert = dup_or_null(opts->client_cert),
        .client_key = dup_or_null(opts->client_key),
    };
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t salen = sizeof(sa);
    if (pipe2(m->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (m->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        bind(m->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(m->lfd, 64) != 0 ||
        getsockname(m->lfd, (struct sockaddr *)&sa, &salen) != 0) {
        fprintf(stderr, "tls mitm: listen: %s\n", strerror(errno));
        free_mitm(m);
        return -1;
    }
    m->port = ntohs(sa.sin_port);
    int rc = pthread_create(&m->acceptor, NULL, acceptor_main, m);
    if (rc != 0) {
        fprintf(stderr, "tls mitm: pthread_create: %s\n", strerror(rc));
        free_mitm(m);
        return -1;
    }
    *out = m;
    return 0;
}

int test_mitm_start(test_mitm **out, const char *cert, const char *key, uint16_t upstream_port)
{
    test_mitm_opts o = {.cert = cert, .key = key, .upstream_port = upstream_port};
    return test_mitm_start_opts(out, &o);
}

uint16_t test_mitm_port(const test_mitm *m)
{
    return m->port;
}

unsigned test_mitm_accepted(const test_mitm *m)
{
    test_mitm *mm = (test_mitm *)m; /* the lock is not part of the value */
    pthread_mutex_lock(&mm->lock);
    unsigned n = mm->accepted;
    pthread_mutex_unlock(&mm->lock);
    return n;
}

unsigned test_mitm_relayed(const test_mitm *m)
{
    test_mitm *mm = (test_mitm *)m;
    pthread_mutex_lock(&mm->lock);
    unsigned n = mm->relayed;
    pthread_mutex_unlock(&mm->lock);
    return n;
}

void test_mitm_last_error(const test_mitm *m, char *buf, size_t cap)
{
    test_mitm *mm = (test_mitm *)m;
    if (cap == 0)
        return;
    pthread_mutex_lock(&mm->lock);
    snprintf(buf, cap, "%s", mm->last_error);
    pthread_mutex_unlock(&mm->lock);
}

void test_mitm_stop(test_mitm *m)
{
    if (m == NULL)
        return;
    /* one byte, never read: every poll() of every thread sees the pipe readable from now on */
    while (write(m->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(m->acceptor, NULL);
    /* the acceptor has returned: the list no longer grows */
    conn_thread *t = m->threads;
    while (t != NULL) {
        conn_thread *next = t->next;
        pthread_join(t->thread, NULL);
        free(t);
        t = next;
    }
    m->threads = NULL;
    free_mitm(m);
}
