/* The adversarial proxy (proxy.h): one thread, poll(), non-blocking sockets. All state belongs
 * to the proxy thread and is guarded by one mutex that the thread holds while it works; the test
 * thread takes it to add rules and to read what happened. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/bytes.h"
#include "support/clock.h"
#include "support/net.h"
#include "support/support.h" /* test_rand */

#define HDR 8
#define MAX_PARSED_FRAME (16u << 20) /* longer announced lengths are forwarded unparsed */
#define MAX_LOGGED 128               /* frames kept per direction of a connection */

typedef struct chunk {
    struct chunk *next;
    uint8_t *data;
    size_t len, off;
    int64_t not_before; /* monotonic microseconds; 0: at once */
    uint32_t rand_cut;  /* fragmented: random pieces of 1..rand_cut bytes */
    int one_byte;       /* fragmented: one byte per write */
    uint32_t gap_us;    /* fragmented: pause between pieces */
    int end_after;      /* TRUNCATE: end the connection once this chunk is out */
} chunk;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

/* One direction of a relay: what was read from its source, parsed into frames, and the queue of
 * bytes for its destination. */
typedef struct half {
    uint8_t *in;
    size_t in_len, in_cap;
    int raw;       /* stopped parsing (an implausible length): forward everything as is */
    int eof;       /* the source ended */
    int shut;      /* FIN sent to the destination */
    int dest_dead; /* the destination refused a write: drop what is queued for it */
    chunk *head, *tail;
    blob held; /* SWAP_NEXT: bytes waiting for the next frame */
    int have_held;
    int n_all, n_type[256];
    blob log[MAX_LOGGED];
    int nlog;
} half;

typedef struct relay {
    int fd[2]; /* [0] toward the client, [1] toward the server; -1 once closed */
    half h[2]; /* h[C2S] reads fd[0] and writes fd[1]; h[S2C] the reverse */
    uint16_t up_port;
    int ending; /* a TRUNCATE fired: discard input, end both directions */
    int done;
} relay;

typedef struct rule_entry {
    proxy_rule r;
    uint8_t *bytes;
    int fired;
} rule_entry;

struct proxy {
    pthread_t thread;
    pthread_mutex_t lock;
    int wake[2];
    int stop;
    int lfd;
    uint16_t up_port;
    unsigned seed;
    rule_entry *rules;
    int nrules, cap_rules;
    relay **relays;
    int nrelays, cap_relays;
    blob slots[PROXY_SLOTS];
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q == NULL)
        abort(); /* a test helper: running out of memory is not a case it handles */
    return q;
}

static void blob_append(blob *b, const uint8_t *d, size_t n)
{
    uint8_t *c = realloc(b->data, b->len + n + 1);
    if (c == NULL)
        abort();
    if (n)
        memcpy(c + b->len, d, n);
    b->data = c;
    b->len += n;
}

static void blob_free(blob *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static int dest_fd(const relay *r, int d)
{
    return r->fd[d == PROXY_C2S ? 1 : 0];
}

static int src_fd(const relay *r, int d)
{
    return r->fd[d == PROXY_C2S ? 0 : 1];
}

static void set_socket_options(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- output queues --------------------------------------------------------------------------- */

typedef struct emit_opts {
    int64_t not_before;
    int one_byte;
    uint32_t rand_cut;
    uint32_t gap_us;
    int end_after;
} emit_opts;

static void enqueue(half *h, const uint8_t *data, size_t len, const emit_opts *o)
{
    if (h->dest_dead || h->shut)
        return;
    chunk *c = xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->data = test_memdup(data, len);
    c->len = len;
    if (o != NULL) {
        c->not_before = o->not_before;
        c->one_byte = o->one_byte;
        c->rand_cut = o->rand_cut;
        c->gap_us = o->gap_us;
        c->end_after = o->end_after;
    }
    if (h->tail != NULL)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
}

static void drop_queue(half *h)
{
    for (chunk *c = h->head, *n; c != NULL; c = n) {
        n = c->next;
        free(c->data);
        free(c);
    }
    h->head = h->tail = NULL;
}

static void close_fd(relay *r, int i)
{
    if (r->fd[i] >= 0)
        close(r->fd[i]);
    r->fd[i] = -1;
}

/* A TRUNCATE chunk went out: both peers get a FIN now, whatever was still queued is dropped,
 * and anything they send from now on is read and discarded. */
static void end_relay(relay *r)
{
    r->ending = 1;
    for (int d = 0; d < 2; d++) {
        drop_queue(&r->h[d]);
        blob_free(&r->h[d].held);
        r->h[d].have_held = 0;
        if (!r->h[d].shut && dest_fd(r, d) >= 0)
            (void)shutdown(dest_fd(r, d), SHUT_WR);
        r->h[d].shut = 1;
    }
}

/* Writes what is due from the queue of direction D; returns the microseconds until the next
 * piece is due (-1: nothing waiting on time). */
static int64_t flush_half(proxy *p, relay *r, int d)
{
    half *h = &r->h[d];
    int fd = dest_fd(r, d);
    while (h->head != NULL && fd >= 0) {
        chunk *c = h->head;
        int64_t now = test_now_us();
        if (c->not_before > now)
            return c->not_before - now;
        size_t left = c->len - c->off, amt = left;
        int pieces = c->one_byte || c->rand_cut;
        if (c->one_byte)
            amt = 1;
        else if (c->rand_cut)
            amt = 1 + test_rand(&p->seed) % c->rand_cut;
        if (amt > left)
            amt = left;
        ssize_t n = amt ? send(fd, c->data + c->off, amt, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -1; /* POLLOUT will tell */
            h->dest_dead = 1;
            drop_queue(h);
            break;
        }
        c->off += (size_t)n;
        if (c->off < c->len) {
            if (pieces && c->gap_us)
                c->not_before = test_now_us() + c->gap_us;
            continue;
        }
        int end = c->end_after;
        h->head = c->next;
        if (h->head == NULL)
            h->tail = NULL;
        free(c->data);
        free(c);
        if (end) {
            end_relay(r);
            return -1;
        }
    }
    if (h->head == NULL && h->eof && !h->shut) {
        if (fd >= 0)
            (void)shutdown(fd, SHUT_WR);
        h->shut = 1;
    }
    return -1;
}

/* ---- frames ---------------------------------------------------------------------------------- */

static int rule_matches(const proxy_rule *ru, int conn, int d, int type, int idx_all, int idx_type)
{
    if (ru->conn >= 0 && ru->conn != conn)
        return 0;
    if ((int)ru->dir != d)
        return 0;
    if (ru->type != PROXY_ANY_TYPE && ru->type != type)
        return 0;
    if (ru->nth < 0)
        return 1;
    return ru->nth == (ru->type == PROXY_ANY_TYPE ? idx_all : idx_type);
}

/* Applies the rules to one whole frame F of direction D and queues what results. */
static void process_frame(proxy *p, relay *r, int conn, int d, const uint8_t *f, size_t n)
{
    half *h = &r->h[d];
    if (h->nlog < MAX_LOGGED) {
        h->log[h->nlog].data = test_memdup(f, n);
        h->log[h->nlog].len = n;
        h->nlog++;
    }
    int type = f[1];
    int idx_all = h->n_all++, idx_type = h->n_type[type]++;

    blob cur = {test_memdup(f, n), n}, before = {0}, after = {0};
    int drop = 0, copies = 1, swap = 0, reflect = 0;
    long trunc_keep = -1;
    emit_opts frag = {0};
    int64_t delay_us = 0;
    for (int i = 0; i < p->nrules; i++) {
        rule_entry *re = &p->rules[i];
        const proxy_rule *ru = &re->r;
        if (!rule_matches(ru, conn, d, type, idx_all, idx_type))
            continue;
        re->fired++;
        switch (ru->act) {
        case PROXY_PASS:
            break;
        case PROXY_FRAGMENT:
            frag.one_byte = ru->cut == 0;
            frag.rand_cut = ru->cut;
            frag.gap_us = ru->gap_us;
            break;
        case PROXY_DELAY:
            delay_us = (int64_t)ru->delay_ms * 1000;
            break;
        case PROXY_DROP:
            drop = 1;
            break;
        case PROXY_DUPLICATE:
            copies++;
            break;
        case PROXY_SWAP_NEXT:
            swap = 1;
            break;
        case PROXY_FLIP:
            for (int k = 0; k < ru->nflips && k < PROXY_MAX_FLIPS; k++) {
                long off = ru->flip_off[k] < 0 ? (long)cur.len + ru->flip_off[k] : ru->flip_off[k];
                if (off >= 0 && (size_t)off < cur.len)
                    cur.data[off] ^= ru->flip_xor[k];
            }
            break;
        case PROXY_INJECT_BEFORE:
            blob_append(&before, re->bytes, ru->nbytes);
            break;
        case PROXY_INJECT_AFTER:
            blob_append(&after, re->bytes, ru->nbytes);
            break;
        case PROXY_REPLACE:
            blob_free(&cur);
            cur.data = test_memdup(re->bytes, ru->nbytes);
            cur.len = ru->nbytes;
            break;
        case PROXY_TRUNCATE:
            trunc_keep = ru->keep >= 0 ? ru->keep : (long)cur.len + ru->keep;
            if (trunc_keep < 0)
                trunc_keep = 0;
            break;
        case PROXY_CUT_BODY: {
            long body = cur.len >= HDR ? (long)(cur.len - HDR) : 0;
            long keep = ru->keep >= 0 ? ru->keep : body + ru->keep;
            if (cur.len >= HDR && keep >= 0 && keep < body) {
                cur.len = HDR + (size_t)keep;
                test_put_be32(cur.data + 4, (uint32_t)keep);
            }
            break;
        }
        case PROXY_SET_LENGTH:
            if (cur.len >= HDR)
                test_put_be32(cur.data + 4, ru->length);
            break;
        case PROXY_RECORD:
            if (ru->slot >= 0 && ru->slot < PROXY_SLOTS) {
                blob_free(&p->slots[ru->slot]);
                blob_append(&p->slots[ru->slot], cur.data, cur.len);
            }
            break;
        case PROXY_SPLICE:
            if (ru->slot >= 0 && ru->slot < PROXY_SLOTS && p->slots[ru->slot].data != NULL) {
                blob_free(&cur);
                cur.data = test_memdup(p->slots[ru->slot].data, p->slots[ru->slot].len);
                cur.len = p->slots[ru->slot].len;
            }
            break;
        case PROXY_REFLECT:
            reflect = 1;
            break;
        case PROXY_EDIT:
            ru->edit(&cur.data, &cur.len, ru->edit_user);
            break;
        }
    }

    /* what this frame becomes on the wire */
    blob out = {0};
    blob_append(&out, before.data, before.len);
    for (int k = 0; !drop && k < copies; k++)
        blob_append(&out, cur.data, cur.len);
    blob_append(&out, after.data, after.len);
    blob_free(&cur);
    blob_free(&before);
    blob_free(&after);

    half *target = reflect ? &r->h[1 - d] : h;
    if (trunc_keep >= 0) {
        size_t keep = (size_t)trunc_keep < out.len ? (size_t)trunc_keep : out.len;
        emit_opts o = frag;
        o.end_after = 1;
        if (delay_us)
            o.not_before = test_now_us() + delay_us;
        enqueue(target, out.data, keep, &o);
        r->ending = 1; /* nothing after this is forwarded */
        blob_free(&out);
        return;
    }
    if (swap && !h->have_held) {
        h->held = out; /* forwarded after the next frame */
        h->have_held = 1;
        return;
    }
    emit_opts o = frag;
    if (delay_us)
        o.not_before = test_now_us() + delay_us;
    if (out.len > 0)
        enqueue(target, out.data, out.len, &o);
    blob_free(&out);
    if (h->have_held) {
        enqueue(h, h->held.data, h->held.len, NULL);
        blob_free(&h->held);
        h->have_held = 0;
    }
}

/* Parses whole frames off the front of direction D's input. */
static void parse(proxy *p, relay *r, int conn, int d)
{
    half *h = &r->h[d];
    size_t pos = 0;
    while (!h->raw && !r->ending && h->in_len - pos >= HDR) {
        uint32_t len = test_get_be32(h->in + pos + 4);
        if (len > MAX_PARSED_FRAME) {
            h->raw = 1;
            break;
        }
        if (h->in_len - pos < HDR + (size_t)len)
            break;
        process_frame(p, r, conn, d, h->in + pos, HDR + (size_t)len);
        pos += HDR + (size_t)len;
    }
    if ((h->raw || h->eof) && !r->ending && h->in_len > pos) {
        enqueue(h, h->in + pos, h->in_len - pos, NULL);
        pos = h->in_len;
    }
    if (r->ending)
        pos = h->in_len;
    memmove(h->in, h->in + pos, h->in_len - pos);
    h->in_len -= pos;
}

/* Reads what direction D's source has; at its end, flushes a held frame and a partial one. */
static void do_read(proxy *p, relay *r, int conn, int d)
{
    half *h = &r->h[d];
    int fd = src_fd(r, d);
    if (h->eof || fd < 0)
        return;
    for (;;) {
        if (h->in_cap - h->in_len < 16384) {
            size_t cap = h->in_cap ? h->in_cap * 2 : 65536;
            uint8_t *b = realloc(h->in, cap);
            if (b == NULL)
                abort();
            h->in = b;
            h->in_cap = cap;
        }
        ssize_t n = recv(fd, h->in + h->in_len, h->in_cap - h->in_len, MSG_DONTWAIT);
        if (n > 0) {
            h->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        h->eof = 1; /* EOF, or a reset: passed on as the end of the stream */
        break;
    }
    parse(p, r, conn, d);
    if (h->eof && h->have_held && !r->ending) {
        enqueue(h, h->held.data, h->held.len, NULL);
        blob_free(&h->held);
        h->have_held = 0;
    }
}

/* ---- the thread ------------------------------------------------------------------------------ */

static void accept_all(proxy *p)
{
    for (;;) {
        int cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        int ufd = test_tcp_connect(p->up_port);
        if (ufd < 0) {
            close(cfd);
            continue;
        }
        struct sockaddr_in local;
        socklen_t sl = sizeof(local);
        memset(&local, 0, sizeof(local));
        (void)getsockname(ufd, (struct sockaddr *)&local, &sl);
        set_socket_options(cfd);
        set_socket_options(ufd);
        relay *r = xmalloc(sizeof(*r));
        memset(r, 0, sizeof(*r));
        r->fd[0] = cfd;
        r->fd[1] = ufd;
        r->up_port = ntohs(local.sin_port);
        if (p->nrelays == p->cap_relays) {
            int cap = p->cap_relays ? p->cap_relays * 2 : 16;
            relay **a = realloc(p->relays, (size_t)cap * sizeof(*a));
            if (a == NULL)
                abort();
            p->relays = a;
            p->cap_relays = cap;
        }
        p->relays[p->nrelays++] = r;
    }
}

static void maybe_finish(relay *r)
{
    if (r->done)
        return;
    for (int d = 0; d < 2; d++) {
        if (!r->h[d].eof || (!r->h[d].shut && !r->h[d].dest_dead))
            return;
    }
    close_fd(r, 0);
    close_fd(r, 1);
    r->done = 1;
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    struct pollfd *pfd = NULL;
    int cap = 0;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        int need = 2 + 2 * p->nrelays;
        if (need > cap) {
            cap = need * 2;
            pfd = realloc(pfd, (size_t)cap * sizeof(*pfd));
            if (pfd == NULL)
                abort();
        }
        int np = 0;
        pfd[np++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        pfd[np++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        int64_t timeout = -1;
        for (int i = 0; i < p->nrelays; i++) {
            relay *r = p->relays[i];
            if (r->done)
                continue;
            for (int k = 0; k < 2; k++) {
                if (r->fd[k] < 0)
                    continue;
                /* fd[k] is the source of direction k (C2S reads fd[0]) and the destination of
                 * direction 1-k */
                short ev = 0;
                if (!r->h[k].eof)
                    ev |= POLLIN;
                chunk *c = r->h[1 - k].head;
                if (c != NULL) {
                    int64_t wait = c->not_before - test_now_us();
                    if (wait <= 0)
                        ev |= POLLOUT;
                    else if (timeout < 0 || wait < timeout)
                        timeout = wait;
                }
                if (ev == 0)
                    continue;
                pfd[np++] = (struct pollfd){.fd = r->fd[k], .events = ev};
            }
        }
        pthread_mutex_unlock(&p->lock);
        struct timespec ts, *tp = NULL;
        if (timeout >= 0) {
            ts.tv_sec = (time_t)(timeout / 1000000);
            ts.tv_nsec = (long)(timeout % 1000000) * 1000;
            tp = &ts;
        }
        int rc = ppoll(pfd, (nfds_t)np, tp, NULL);
        pthread_mutex_lock(&p->lock);
        if (rc < 0 && errno != EINTR)
            break;
        if (pfd[0].revents) {
            char b[64];
            while (read(p->wake[0], b, sizeof(b)) > 0)
                ;
        }
        if (pfd[1].revents)
            accept_all(p);
        for (int i = 0; i < p->nrelays; i++) {
            relay *r = p->relays[i];
            if (r->done)
                continue;
            for (int d = 0; d < 2; d++)
                do_read(p, r, i, d);
            for (int d = 0; d < 2; d++)
                (void)flush_half(p, r, d);
            maybe_finish(r);
        }
    }
    pthread_mutex_unlock(&p->lock);
    free(pfd);
    return NULL;
}

/* ---- API ------------------------------------------------------------------------------------- */

int proxy_start(proxy **out, uint16_t upstream_port, unsigned seed, uint16_t *port)
{
    proxy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    p->up_port = upstream_port;
    p->seed = seed ? seed : 1;
    pthread_mutex_init(&p->lock, NULL);
    p->lfd = test_tcp_listen(port);
    if (p->lfd < 0 || fcntl(p->lfd, F_SETFL, fcntl(p->lfd, F_GETFL) | O_NONBLOCK) != 0 ||
        pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        int e = errno;
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        errno = e;
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void proxy_stop(proxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_mutex_unlock(&p->lock);
    (void)!write(p->wake[1], "x", 1);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->nrelays; i++) {
        relay *r = p->relays[i];
        close_fd(r, 0);
        close_fd(r, 1);
        for (int d = 0; d < 2; d++) {
            half *h = &r->h[d];
            drop_queue(h);
            blob_free(&h->held);
            free(h->in);
            for (int k = 0; k < h->nlog; k++)
                free(h->log[k].data);
        }
        free(r);
    }
    free(p->relays);
    for (int i = 0; i < p->nrules; i++)
        free(p->rules[i].bytes);
    free(p->rules);
    for (int i = 0; i < PROXY_SLOTS; i++)
        blob_free(&p->slots[i]);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int proxy_add_rule(proxy *p, const proxy_rule *rule)
{
    pthread_mutex_lock(&p->lock);
    if (p->nrules == p->cap_rules) {
        int cap = p->cap_rules ? p->cap_rules * 2 : 16;
        rule_entry *a = realloc(p->rules, (size_t)cap * sizeof(*a));
        if (a == NULL)
            abort();
        p->rules = a;
        p->cap_rules = cap;
    }
    rule_entry *re = &p->rules[p->nrules];
    memset(re, 0, sizeof(*re));
    re->r = *rule;
    re->bytes = test_memdup(rule->bytes, rule->bytes ? rule->nbytes : 0);
    if (rule->bytes == NULL)
        re->r.nbytes = 0;
    re->r.bytes = NULL;
    int id = p->nrules++;
    pthread_mutex_unlock(&p->lock);
    return id;
}

int proxy_fired(proxy *p, int id)
{
    pthread_mutex_lock(&p->lock);
    int n = id >= 0 && id < p->nrules ? p->rules[id].fired : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int proxy_connections(proxy *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->nrelays;
    pthread_mutex_unlock(&p->lock);
    return n;
}

uint16_t proxy_upstream_port(proxy *p, int conn)
{
    pthread_mutex_lock(&p->lock);
    uint16_t port = conn >= 0 && conn < p->nrelays ? p->relays[conn]->up_port : 0;
    pthread_mutex_unlock(&p->lock);
    return port;
}

int proxy_frame_count(proxy *p, int conn, proxy_dir dir)
{
    pthread_mutex_lock(&p->lock);
    int n = conn >= 0 && conn < p->nrelays ? p->relays[conn]->h[dir].nlog : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

uint8_t *proxy_frame_copy(proxy *p, int conn, proxy_dir dir, int n, size_t *len)
{
    uint8_t *c = NULL;
    *len = 0;
    pthread_mutex_lock(&p->lock);
    if (conn >= 0 && conn < p->nrelays && n >= 0 && n < p->relays[conn]->h[dir].nlog) {
        const blob *b = &p->relays[conn]->h[dir].log[n];
        c = test_memdup(b->data, b->len);
        *len = b->len;
    }
    pthread_mutex_unlock(&p->lock);
    return c;
}

int proxy_conn_done(proxy *p, int conn)
{
    pthread_mutex_lock(&p->lock);
    int done = conn >= 0 && conn < p->nrelays && p->relays[conn]->done;
    pthread_mutex_unlock(&p->lock);
    return done;
}

uint8_t *proxy_frame_make(uint8_t type, uint8_t level, uint8_t flags, const void *body,
                          size_t nbody, size_t *len)
{
    uint8_t *f = xmalloc(HDR + nbody);
    *len = test_put_frame(f, type, level, flags, body, nbody);
    return f;
}
