/* The engine: connectors driven by libuv loops (docs/ARCHITECTURE.md, "Engine").
 *
 * Threads: the owner (who created the engine), N loop threads, M step workers. Each connection
 * belongs to one loop and is touched only by that loop's thread, except its connector while a
 * handshake step runs on a worker (the loop then leaves the connector alone: it stops reading
 * and defers everything that would call into it). Other threads talk to a loop by posting
 * commands to its queue and waking it with uv_async_send.
 *
 * No path here aborts the process or allocates where a failure could not be reported: what a
 * worker and a shutdown must post is allocated before (the step's completion with the step) or
 * needs no memory (the loop signals). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/config.h" /* the listener logs through its configuration's log function */
#include "base/sized.h"
#include "conn/write_check.h"
#include "negio/engine.h"
#include "negio/identity.h"

#define DETAIL_MAX 768

enum cmd_type {
    CMD_ADOPT,     /* an accepted socket for this loop */
    CMD_CONNECT,   /* start a client connection */
    CMD_WRITE,     /* an application message from another thread */
    CMD_CLOSE,     /* close a connection gracefully */
    CMD_STEP_DONE, /* a step ended: allocated with the step (submit_step), so it is always sent */
    CMD_LISTEN,    /* loop 0: a new listener to set up and start */
};

/* What the engine as a whole asks of a loop: bits set under the loop's lock, run after the
 * commands posted before them. They carry no data, so asking cannot fail for lack of memory. */
enum {
    LOOP_RESUME = 1,   /* loop 0: resume accepting */
    LOOP_SHUTDOWN = 2, /* close everything gracefully */
    LOOP_FORCE = 4,    /* close everything now */
    LOOP_STOP = 8,     /* end the loop thread */
};

typedef struct cmd {
    struct cmd *next;
    enum cmd_type type;
    negio_econn *conn;
    int fd;
    struct listener *listener;
    uint32_t status;
    negio_level level;
    size_t len;
    uint8_t data[];
} cmd;

typedef struct wreq wreq;

typedef struct loop {
    negio_engine *e;
    unsigned index;
    uv_loop_t uv;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t lock;
    cmd *head, *tail;
    unsigned signals;   /* LOOP_* (under lock) */
    negio_econn *conns; /* doubly linked through econn.prev/next; loop thread only */
    int stopping;
    /* Output is written once per loop iteration (see "output" below): connections with output
     * waiting, linked through econn.dirty_next, each holding a reference; flushed by FLUSHER
     * after the poll phase. SPIN, an idle handle, is active while the list is not empty so that
     * the loop does not sleep in poll with output that was produced outside the poll phase. */
    negio_econn *dirty;
    uv_check_t flusher;
    uv_idle_t spin;
    wreq *spare; /* one write request kept for reuse (loop thread only) */
} loop;

typedef struct listener {
    struct listener *next;
    negio_engine *e;
    int fd;
    uv_poll_t poll;
    int polling;
    negio_config *cfg;
    /* Out of descriptors (see listener_starved): a descriptor held in reserve, given up for a
     * moment to accept and close the connections waiting; the pause before the next try. */
    int reserve;
    uv_timer_t backoff;
    uint32_t backoff_ms;
    int starved;        /* an episode is on: said once, at its start */
    unsigned long shed; /* connections accepted and closed during the episode */
} listener;

enum conn_state { ST_CONNECTING, ST_OPEN, ST_CLOSING, ST_DONE };

/* peer_policy: 0 until established, then PEER_KNOWN | min level << 32 | max_message */
#define PEER_KNOWN (1ull << 63)

struct negio_econn {
    atomic_int refs;
    atomic_int closed; /* no more application writes */
    /* What the connection holds for sending, the quantity hard_limit bounds: QUEUED, messages
     * accepted by negio_engine_send and not yet in the connector (commands not run, writes held),
     * and UNSENT, the bytes in the connector and in uv_write requests. A message leaves QUEUED
     * only after it is counted in UNSENT. */
    atomic_size_t queued;
    atomic_size_t unsent;
    /* The peer's POLICY as negio_engine_send checks it from any thread (conn/write_check.h),
     * published once when the connection is established. */
    _Atomic uint64_t peer_policy;
    negio_engine *e;
    loop *l;
    negio_econn *prev, *next;
    void *user;
    int is_client;
    enum conn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;     /* the handshake deadline; once established, idle and expiry */
    uint64_t last_active; /* loop time of the last read, for the idle timeout */
    uint64_t expires_at;  /* loop time the security context ends (0: never, or not asked) */
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_shutdown_t shutdown_req;
    struct addrinfo *addrs; /* resolved addresses not yet tried (client) */
    int handles;            /* open uv handles */
    int timer_ready;
    int tcp_ready;
    negio_conn *conn;
    negio_level default_level;
    int tls_only; /* NEGIO_TRANSPORT_TLS: level none is all there is */
    uint32_t max_message;
    int step_running;
    /* writes the connector cannot take yet, in order: made before establishment (the peer's
     * POLICY decides whether each may be sent), or while a step runs on a worker */
    struct cmd *held;
    struct cmd **held_tail;
    int processing;    /* inside econn_process: callbacks must not re-enter it */
    int read_paused;   /* by backpressure */
    int local_closing; /* our CLOSE is out; waiting for the peer's */
    int reading;
    int established;
    int above_hw;
    size_t inflight; /* bytes in uv_write requests (loop thread) */
    int dirty;       /* on the loop's dirty list */
    negio_econn *dirty_next;
    int close_started;
    negio_close_reason reason;
    int code;
    char detail[DETAIL_MAX];
    char *host;
    uint16_t port;
    struct sockaddr_storage peer;
};

struct negio_engine {
    negio_engine_options o;
    unsigned nloops;
    loop *loops;
    listener *listeners;
    atomic_uint conns;
    atomic_uint rr;
    atomic_int shutting_down;
    atomic_int forced;
    atomic_int accept_paused;
    int sync_ready;         /* how many of lock, done, wlock, wcond are initialised */
    unsigned loops_ready;   /* loops initialised (negio_engine_new, negio_engine_del) */
    unsigned loops_running; /* loop threads started */
    pthread_mutex_t lock;   /* with done (CLOCK_MONOTONIC): waiting for connections to drain */
    pthread_cond_t done;
    /* step workers; the jobs are the steps' CMD_STEP_DONE commands, linked through next */
    unsigned nworkers;
    pthread_t *workers;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    cmd *jhead, *jtail;
    int wstop;
};

static void econn_process(negio_econn *c);
static void uncount(negio_engine *e);
static void free_addrs(negio_econn *c);
static int try_next_address(negio_econn *c);
static void econn_close(negio_econn *c, negio_close_reason reason, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void listener_resume(negio_engine *e);
static void flush(negio_econn *c);

const char *negio_close_reason_name(negio_close_reason reason)
{
    switch (reason) {
    case NEGIO_CLOSE_CLEAN:
        return "clean";
    case NEGIO_CLOSE_TRUNCATED:
        return "truncated";
    case NEGIO_CLOSE_TIMEOUT:
        return "timeout";
    case NEGIO_CLOSE_ERROR:
        return "error";
    case NEGIO_CLOSE_REFUSED:
        return "refused";
    case NEGIO_CLOSE_EXPIRED:
        return "expired";
    default:
        return "unknown";
    }
}

/* ---- commands ------------------------------------------------------------------------------ */

static void post(loop *l, cmd *m)
{
    m->next = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    pthread_mutex_unlock(&l->lock);
    uv_async_send(&l->async);
}

/* Asks loop L for SIGNALS (LOOP_*): run after every command posted before. */
static void signal_loop(loop *l, unsigned signals)
{
    pthread_mutex_lock(&l->lock);
    l->signals |= signals;
    pthread_mutex_unlock(&l->lock);
    uv_async_send(&l->async);
}

static void signal_all(negio_engine *e, unsigned signals)
{
    for (unsigned i = 0; i < e->loops_running; i++)
        signal_loop(&e->loops[i], signals);
}

static cmd *new_cmd(enum cmd_type type, negio_econn *c, size_t len)
{
    cmd *m = negio__calloc(1, sizeof(*m) + len);
    if (m != NULL) {
        m->type = type;
        m->conn = c;
        m->len = len;
    }
    return m;
}

static int on_loop_thread(const loop *l)
{
    return pthread_equal(pthread_self(), l->thread);
}

/* ---- references ---------------------------------------------------------------------------- */

void negio_econn_ref(negio_econn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void negio_econn_unref(negio_econn *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    free_addrs(c);
    negio_conn_del(c->conn);
    negio__free(c->host);
    negio__free(c);
}

void *negio_econn_user(const negio_econn *c)
{
    return c->user;
}

void negio_econn_set_user(negio_econn *c, void *user)
{
    c->user = user;
}

const struct sockaddr *negio_econn_peer_addr(const negio_econn *c)
{
    return (const struct sockaddr *)&c->peer;
}

size_t negio_econn_queued(const negio_econn *c)
{
    return atomic_load(&c->queued) + atomic_load(&c->unsent);
}

int negio_econn_auth_info(const negio_econn *c, negio_auth_info *info)
{
    if (c->conn == NULL || c->step_running)
        return NEGIO_ERR_STATE;
    return negio_conn_auth_info(c->conn, info);
}

negio_delegated *negio_econn_delegated(const negio_econn *c)
{
    if (c->conn == NULL || c->step_running)
        return NULL;
    return negio_conn_delegated(c->conn);
}

unsigned negio_engine_connections(const negio_engine *e)
{
    return atomic_load(&e->conns);
}

/* ---- step workers -------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    negio_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->wlock);
        while (e->jhead == NULL && !e->wstop)
            pthread_cond_wait(&e->wcond, &e->wlock);
        if (e->jhead == NULL) {
            pthread_mutex_unlock(&e->wlock);
            return NULL;
        }
        cmd *done = e->jhead;
        e->jhead = done->next;
        if (e->jhead == NULL)
            e->jtail = NULL;
        pthread_mutex_unlock(&e->wlock);
        negio_econn *c = done->conn;
        /* the loop leaves the connector alone until CMD_STEP_DONE */
        (void)negio_conn_step(c->conn);
        post(c->l, done);
    }
}

/* The job is the step's completion itself, so that nothing the worker does can fail: the loop
 * waits for that command, and leaves the connector to the worker until it arrives. */
static int submit_step(negio_econn *c)
{
    cmd *done = new_cmd(CMD_STEP_DONE, c, 0);
    if (done == NULL)
        return NEGIO_ERR_NOMEM;
    negio_econn_ref(c); /* the job's, dropped when CMD_STEP_DONE has run */
    done->next = NULL;
    pthread_mutex_lock(&c->e->wlock);
    if (c->e->jtail)
        c->e->jtail->next = done;
    else
        c->e->jhead = done;
    c->e->jtail = done;
    pthread_cond_signal(&c->e->wcond);
    pthread_mutex_unlock(&c->e->wlock);
    return 0;
}

/* ---- connection lifecycle ------------------------------------------------------------------ */

/* COUNTED: the listener already counted this connection when it accepted it (so that a burst of
 * accepts handed to other loops cannot overshoot max_connections). */
static negio_econn *econn_new(negio_engine *e, loop *l, const negio_config *cfg, int is_client,
                              int counted)
{
    negio_econn *c = negio__calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (negio_conn_new(&c->conn, cfg) != NEGIO_OK) {
        negio__free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1); /* the engine's reference, dropped after on_closed */
    atomic_init(&c->closed, 0);
    atomic_init(&c->queued, 0);
    atomic_init(&c->unsent, 0);
    atomic_init(&c->peer_policy, 0);
    c->e = e;
    c->l = l;
    c->is_client = is_client;
    c->default_level = negio_config_get_default_level(cfg);
    c->tls_only = negio_config_get_transport(cfg) == NEGIO_TRANSPORT_TLS;
    negio_limits limits = {.size = sizeof(limits)};
    (void)negio_config_get_limits(cfg, &limits); /* cannot fail: both are there */
    c->max_message = limits.max_message;
    c->held_tail = &c->held;
    c->state = ST_CONNECTING;
    if (!counted)
        atomic_fetch_add(&e->conns, 1);
    return c;
}

static void link_conn(negio_econn *c)
{
    loop *l = c->l;
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
}

static void unlink_conn(negio_econn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->l->conns == c)
        c->l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Called when the last handle closed: report and release. A step still blocked in a worker (on
 * an unreachable KDC, say) does not delay the report: the worker's reference keeps the connector
 * alive until the step returns, and nothing reads its result. */
static void econn_finish(negio_econn *c)
{
    if (c->state == ST_DONE || c->handles > 0)
        return;
    c->state = ST_DONE;
    atomic_store(&c->closed, 1);
    unlink_conn(c);
    negio_engine *e = c->e;
    if (e->o.callbacks.on_closed)
        e->o.callbacks.on_closed(c, c->reason, c->code, c->detail, e->o.user);
    /* the connector is freed with the last reference; nothing touches it any more */
    uncount(e);
    pthread_mutex_lock(&e->lock);
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->lock);
    negio_econn_unref(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    negio_econn *c = h->data;
    c->handles--;
    econn_finish(c);
}

static void close_handles(negio_econn *c)
{
    if (c->tcp_ready && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->timer_ready && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->handles == 0) /* none was ever opened */
        econn_finish(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_handles(req->data);
}

static void on_close_deadline(uv_timer_t *t)
{
    close_handles(t->data);
}

/* Ends the connection: pending output (a protected close, a handshake error) is flushed first,
 * bounded by the shutdown deadline. The first reason wins. */
/* Writes held during a step that will never be made: the connection is ending. */
static void drop_held(negio_econn *c)
{
    while (c->held != NULL) {
        cmd *m = c->held;
        c->held = m->next;
        atomic_fetch_sub(&c->queued, m->len);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c);
        negio__free(m);
    }
    c->held_tail = &c->held;
}

/* Must a write wait in c->held rather than go to the connector now? Until the connection is
 * established the peer's POLICY is unknown, so the write could not be checked; while a step
 * runs the connector is the worker's; and a write may not overtake those already waiting. */
static int must_hold(const negio_econn *c)
{
    return c->step_running || !c->established || c->held != NULL;
}

static void hold(negio_econn *c, cmd *m)
{
    m->next = NULL;
    *c->held_tail = m;
    c->held_tail = &m->next;
}

static void econn_close(negio_econn *c, negio_close_reason reason, int code, const char *fmt, ...)
{
    if (c->close_started)
        return;
    c->close_started = 1;
    atomic_store(&c->closed, 1);
    drop_held(c);
    c->reason = reason;
    c->code = code;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
        va_end(ap);
    }
    int connected = c->state != ST_CONNECTING;
    c->state = ST_CLOSING;
    /* a socket still resolving or connecting has nothing to flush: uv_shutdown would never
     * complete on it */
    if (!c->tcp_ready || !connected) {
        close_handles(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    /* output a round left for the loop's flush pass goes before the shutdown */
    if (!c->step_running && c->conn != NULL)
        flush(c);
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_close_deadline, c->e->o.shutdown_timeout_ms, 0);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        close_handles(c);
}

/* ---- output -------------------------------------------------------------------------------- */

/* The output path. The connector's output buffer holds only bytes for the wire (frame headers,
 * tokens, MICs, ciphertext, TLS records, and the payload of frames at level none, which is sent
 * in the clear): nothing here is wiped, as the same bytes sit unwiped in the kernel's socket
 * buffers and cross the network as they are.
 *
 * Writes are coalesced per loop iteration. The end of a round only puts the connection on the
 * loop's dirty list; the loop's check handle, after the poll phase (every read, command and write
 * callback of the iteration), flushes each dirty connection once, so that the messages written
 * in one iteration leave in one system call. Output past FLUSH_BATCH is flushed at once instead:
 * bigger batches measured no cheaper, and bytes written soon after they were made are still in
 * the cache.
 *
 * A flush writes straight from the connector's buffer (uv_try_write) when no write request is in
 * flight; what the socket did not take, or everything while a request is in flight, leaves
 * through negio_conn_send_take(): the connector's output block itself when the output fills it
 * at least half (no copy; the connector goes on in a new block, so no buffer stays at the size a
 * burst gave it), else a copy of its own size. Only when that fails for lack of memory is the
 * output copied into the request. Flow control is unchanged: output in the connector and in
 * write requests is what negio_econn_queued() counts and the high-water mark bounds. */

#define FLUSH_BATCH (64u * 1024)
#define SPARE_MAX (256u * 1024) /* the largest write request kept for reuse, one per loop */

struct wreq {
    uv_write_t req;
    negio_econn *c;
    size_t len;
    void *block; /* the connector's output block being written (negio_conn_send_take), or NULL:
                    the bytes are in DATA */
    size_t cap;
    uint8_t data[];
};

/* What negio_econn_queued() reports besides the commands not yet run; returns it. */
static size_t note_unsent(negio_econn *c)
{
    size_t unsent = c->inflight + (c->conn ? negio_conn_pending_bytes(c->conn) : 0);
    atomic_store(&c->unsent, unsent);
    return unsent;
}

static void update_backpressure(negio_econn *c)
{
    /* the connector belongs to the worker while a step runs (negio.h: one caller at a time) */
    if (c->step_running)
        return;
    size_t unsent = note_unsent(c);
    size_t pending = unsent + atomic_load(&c->queued);
    negio_engine *e = c->e;
    /* Before establishment the connector holds early writes (bounded by its max_queued and the
     * hard limit): pausing reads then would stall the very handshake they wait for. */
    if (!c->established)
        return;
    if (!c->above_hw && pending > e->o.high_water) {
        c->above_hw = 1;
        c->read_paused = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (e->o.callbacks.on_backpressure)
            e->o.callbacks.on_backpressure(c, 1, e->o.user);
    } else if (c->above_hw && pending <= e->o.high_water / 2 && !c->processing) {
        /* Never inside a round: what the application writes from this callback must be counted
         * as it writes (each write a round of its own), or it could write without bound. A
         * direct write at the end of a round leaves the connection on the dirty list while it
         * is above the mark, so the flush pass comes here, outside the round. */
        c->above_hw = 0;
        c->read_paused = 0;
        if (e->o.callbacks.on_backpressure)
            e->o.callbacks.on_backpressure(c, 0, e->o.user);
        econn_process(c); /* restarts reading */
    }
}

/* After each delivered message: has what the callback wrote crossed the mark? */
static void check_high_water(negio_econn *c)
{
    if (c->above_hw || c->state != ST_OPEN || !c->established)
        return;
    if (c->inflight + negio_conn_pending_bytes(c->conn) + atomic_load(&c->queued) >
        c->e->o.high_water)
        update_backpressure(c);
}

static wreq *wreq_get(loop *l, size_t len)
{
    wreq *w = l->spare;
    if (w != NULL && w->cap >= len) {
        l->spare = NULL;
        return w;
    }
    w = negio__malloc(sizeof(*w) + len);
    if (w != NULL)
        w->cap = len;
    return w;
}

static void wreq_put(loop *l, wreq *w)
{
    if (w->cap <= SPARE_MAX && (l->spare == NULL || l->spare->cap < w->cap)) {
        negio__free(l->spare);
        l->spare = w;
    } else {
        negio__free(w);
    }
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    negio_econn *c = w->c;
    c->inflight -= w->len;
    negio_conn_send_release(w->block);
    w->block = NULL;
    wreq_put(c->l, w);
    if (status < 0 && status != UV_ECANCELED)
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "write: %s", uv_strerror(status));
    else if (c->state == ST_OPEN)
        update_backpressure(c);
}

/* Hands all of the connector's output to the socket (see "The output path" above). */
static void flush(negio_econn *c)
{
    size_t len;
    const uint8_t *out = negio_conn_send_buf(c->conn, &len);
    if (len == 0 || !c->tcp_ready || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->inflight == 0) { /* libuv's write queue is empty: nothing to overtake */
        uv_buf_t b = {.base = (char *)out, .len = len};
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        /* an error other than EAGAIN is left to uv_write below, which reports it through
         * on_written like any write failure */
        if (n > 0) {
            negio_conn_send_done(c->conn, (size_t)n);
            out += n;
            len -= (size_t)n;
            if (len == 0) {
                note_unsent(c);
                return;
            }
        }
    }
    const uint8_t *taken = NULL;
    size_t taken_len = 0;
    void *block = negio_conn_send_take(c->conn, &taken, &taken_len);
    wreq *w = wreq_get(c->l, block != NULL ? 0 : len);
    if (w == NULL) {
        negio_conn_send_release(block);
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "out of memory for output");
        return;
    }
    w->block = block;
    if (block != NULL) {
        out = taken;
        len = taken_len;
    } else {
        memcpy(w->data, out, len);
        negio_conn_send_done(c->conn, len);
        out = w->data;
    }
    w->c = c;
    w->len = len;
    uv_buf_t b = {.base = (char *)out, .len = len};
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        negio_conn_send_release(w->block);
        w->block = NULL;
        wreq_put(c->l, w);
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "write: %s", uv_strerror(rc));
        return;
    }
    c->inflight += len;
    note_unsent(c);
}

static void on_spin(uv_idle_t *h)
{
    (void)h; /* only there to keep the loop from sleeping in poll: on_flush_pass does the work */
}

/* The end of a round: the output goes now if there is a lot of it, else with the loop's flush
 * pass. A connection above the high-water mark goes on the list even without output: the pass
 * checks, outside the round, whether it has fallen under the low-water mark. */
static void flush_soon(negio_econn *c)
{
    /* sizes only: negio_conn_send_buf() would also make the TLS records, which flush() makes
     * once for the whole batch */
    if (negio_conn_pending_bytes(c->conn) >= FLUSH_BATCH)
        flush(c);
    int waiting = (negio_conn_want(c->conn) & NEGIO_WANT_WRITE) != 0;
    if ((!waiting && !c->above_hw) || c->dirty || c->state != ST_OPEN)
        return;
    loop *l = c->l;
    c->dirty = 1;
    negio_econn_ref(c); /* the list's */
    c->dirty_next = l->dirty;
    l->dirty = c;
    uv_idle_start(&l->spin, on_spin);
}

static void on_flush_pass(uv_check_t *h)
{
    loop *l = h->data;
    negio_econn *list = l->dirty;
    l->dirty = NULL; /* what the pass itself makes dirty waits for the next iteration */
    while (list != NULL) {
        negio_econn *c = list;
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        if (c->state == ST_OPEN && !c->step_running) {
            flush(c);
            if (c->state == ST_OPEN)
                update_backpressure(c); /* a direct write lowers what is queued */
        }
        negio_econn_unref(c);
    }
    if (l->dirty == NULL)
        uv_idle_stop(&l->spin);
}

/* The loop is stopping and every connection has ended: drop the list's references. */
static void drop_dirty(loop *l)
{
    while (l->dirty != NULL) {
        negio_econn *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        negio_econn_unref(c);
    }
    uv_idle_stop(&l->spin);
}

/* ---- input --------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    negio_econn *c = h->data;
    size_t len = 0;
    uint8_t *p = negio_conn_recv_buf(c->conn, &len);
    *buf = uv_buf_init((char *)p, p ? (unsigned)len : 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    negio_econn *c = s->data;
    (void)buf;
    if (n > 0) {
        negio_conn_recv_done(c->conn, (size_t)n);
        c->last_active = uv_now(&c->l->uv); /* the idle timer looks at this when it fires */
    } else if (n == UV_EOF) {
        negio_conn_recv_done(c->conn, 0);
        negio_conn_feed_eof(c->conn);
    } else if (n < 0) {
        negio_conn_recv_done(c->conn, 0);
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "read: %s", uv_strerror((int)n));
        return;
    } else {
        negio_conn_recv_done(c->conn, 0);
        if (buf->base == NULL) {
            econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "no input buffer");
            return;
        }
    }
    econn_process(c);
}

static void on_timeout(uv_timer_t *t);

/* Established: the timer is due at the earlier of the idle deadline (from the last read) and the
 * context's end. Nothing to do per read but note the time. */
static void arm_established_timer(negio_econn *c)
{
    uint64_t now = uv_now(&c->l->uv), due = UINT64_MAX;
    uint32_t idle = c->e->o.idle_timeout_ms;
    if (idle)
        due = c->last_active + idle;
    if (c->expires_at && c->expires_at < due)
        due = c->expires_at;
    if (due != UINT64_MAX)
        uv_timer_start(&c->timer, on_timeout, due > now ? due - now : 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    negio_econn *c = t->data;
    if (!c->established) {
        /* a step still on a worker is a GSS call, most often one waiting on the KDC */
        econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "handshake did not complete within %u ms%s",
                    (unsigned)c->e->o.handshake_timeout_ms,
                    c->step_running ? " (a GSS-API step was still running: waiting on the KDC, or "
                                      "on credentials)"
                                    : "");
        return;
    }
    uint64_t now = uv_now(&c->l->uv);
    uint32_t idle = c->e->o.idle_timeout_ms;
    if (c->expires_at && now >= c->expires_at) {
        /* the peer hears it in a protected close with a status of its own (PROTOCOL.md 6.8) */
        negio_conn_close(c->conn, NEGIO_STATUS_EXPIRED, "the security context expired");
        flush(c);
        econn_close(c, NEGIO_CLOSE_EXPIRED, 0,
                    "the security context expired (its Kerberos ticket ended); the peer must "
                    "authenticate again");
    } else if (idle && now - c->last_active >= idle) {
        econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "idle for %u ms", (unsigned)idle);
    } else {
        arm_established_timer(c);
    }
}

static void release_held(negio_econn *c);

static void on_established(negio_econn *c)
{
    negio_engine *e = c->e;
    negio_auth_info info = {.size = sizeof(info)};
    int rc = negio_conn_auth_info(c->conn, &info);
    if (rc < 0) {
        econn_close(c, NEGIO_CLOSE_ERROR, rc, "established without its facts: %s",
                    negio_strerror(rc));
        return;
    }
    c->established = 1;
    /* from now on negio_engine_send checks every write against the peer's POLICY itself */
    atomic_store(&c->peer_policy, PEER_KNOWN | (uint64_t)info.peer_min_level << 32 |
                                      (uint64_t)info.peer_max_message);
    uv_timer_stop(&c->timer);
    c->last_active = uv_now(&c->l->uv);
    /* GSS_C_INDEFINITE (NTLM): no end */
    if (e->o.close_at_context_expiry && info.lifetime != UINT32_MAX)
        c->expires_at = c->last_active + (uint64_t)info.lifetime * 1000 + 1;
    arm_established_timer(c);
    if (e->o.callbacks.on_authenticated) {
        int status = e->o.callbacks.on_authenticated(c, &info, e->o.user);
        if (status != 0) {
            /* the writes made before are dropped with the connection: a rejected peer gets
             * nothing but the rejection */
            negio_conn_close(c->conn, (uint32_t)status, "rejected by the application");
            flush(c);
            econn_close(c, NEGIO_CLOSE_REFUSED, 0, "rejected by the application (status %d)",
                        status);
            return;
        }
    }
    /* the writes made before establishment, then those made in on_authenticated, in order:
     * each is now sent or refused under the peer's POLICY */
    release_held(c);
}

/* Runs the connector until it needs input, a step or the socket: the heart of the engine. */
static void econn_process_loop(negio_econn *c);

/* A callback that sends or closes runs inside this function; it must not start another round,
 * which would release the event the callback is still looking at and nest the callbacks. What
 * it writes goes out when the running round flushes. */
static void econn_process(negio_econn *c)
{
    if (c->processing)
        return;
    c->processing = 1;
    econn_process_loop(c);
    c->processing = 0;
}

static void econn_process_loop(negio_econn *c)
{
    if (c->step_running || c->state == ST_DONE || c->conn == NULL)
        return;
    negio_engine *e = c->e;
    while (c->state == ST_OPEN) {
        /* over the high-water mark, input already buffered waits as well: a read can bring
         * several frames, and answering them all could queue that much more (their output
         * is counted after each message, below) */
        if (c->read_paused)
            break;
        negio_event ev;
        int rc = negio_conn_next_event(c->conn, &ev);
        if (rc < 0) {
            flush(c); /* a handshake error frame may be waiting */
            negio_close_reason r =
                rc == NEGIO_ERR_TRUNCATED ? NEGIO_CLOSE_TRUNCATED : NEGIO_CLOSE_ERROR;
            econn_close(c, r, rc, "%s", negio_conn_error_detail(c->conn));
            return;
        }
        if (rc == 0) {
            if (negio_conn_want(c->conn) & NEGIO_WANT_STEP) {
                /* the connector is the worker's until the step is done */
                flush(c);
                if (c->state != ST_OPEN)
                    return;
                if (c->reading) {
                    uv_read_stop((uv_stream_t *)&c->tcp);
                    c->reading = 0;
                }
                if (submit_step(c) < 0) {
                    econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_NOMEM, "out of memory");
                    return;
                }
                c->step_running = 1;
                return;
            }
            break;
        }
        if (ev.type == NEGIO_EV_ESTABLISHED) {
            on_established(c);
            check_high_water(c);
        } else if (ev.type == NEGIO_EV_MESSAGE) {
            if (e->o.callbacks.on_message)
                e->o.callbacks.on_message(c, ev.data, ev.len, ev.level, e->o.user);
            check_high_water(c);
        } else if (ev.type == NEGIO_EV_ACKNOWLEDGED) {
            if (e->o.callbacks.on_acknowledged)
                e->o.callbacks.on_acknowledged(c, ev.data, ev.len, ev.level, e->o.user);
            check_high_water(c);
        } else if (ev.type == NEGIO_EV_CLOSED) {
            flush(c); /* our answering CLOSE */
            if (c->local_closing)
                econn_close(c, NEGIO_CLOSE_CLEAN, 0, "closed; the peer answered");
            else
                econn_close(c, NEGIO_CLOSE_CLEAN, 0, "peer closed: %s",
                            ev.reason && ev.reason[0] ? ev.reason : "normal close");
            return;
        }
    }
    if (c->state != ST_OPEN)
        return;
    /* above the mark as the application wrote, before a direct write lowers what is queued */
    update_backpressure(c);
    flush_soon(c);
    if (c->state == ST_OPEN && !c->reading && !c->read_paused &&
        (negio_conn_want(c->conn) & NEGIO_WANT_READ)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* Common start of a connected socket, server or client side. */
static void econn_start(negio_econn *c)
{
    c->state = ST_OPEN;
    int len = sizeof(c->peer);
    /* fails only if the peer is already gone (ENOTCONN): the address stays unspecified
     * (AF_UNSPEC, engine.h) and the first read reports the end */
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len) != 0)
        memset(&c->peer, 0, sizeof(c->peer));
    int rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0)
        rc = uv_timer_start(&c->timer, on_timeout, c->e->o.handshake_timeout_ms, 0);
    if (rc != 0) {
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "socket setup: %s", uv_strerror(rc));
        return;
    }
    econn_process(c);
}

static int econn_init_handles(negio_econn *c)
{
    if (uv_timer_init(&c->l->uv, &c->timer) != 0)
        return -1;
    c->timer.data = c;
    c->timer_ready = 1;
    c->handles++;
    if (uv_tcp_init(&c->l->uv, &c->tcp) != 0)
        return -1;
    c->tcp.data = c;
    c->tcp_ready = 1;
    c->handles++;
    link_conn(c);
    return 0;
}

/* ---- commands on the loop ------------------------------------------------------------------ */

static void uncount(negio_engine *e)
{
    unsigned left = atomic_fetch_sub(&e->conns, 1) - 1;
    if (atomic_load(&e->accept_paused) && left < e->o.max_connections &&
        !atomic_load(&e->shutting_down))
        listener_resume(e);
}

static void adopt(loop *l, cmd *m)
{
    negio_econn *c = econn_new(l->e, l, m->listener->cfg, 0, 1);
    if (c == NULL) {
        close(m->fd);
        uncount(l->e);
        return;
    }
    if (econn_init_handles(c) < 0 || uv_tcp_open(&c->tcp, m->fd) != 0) {
        close(m->fd);
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "could not adopt the socket");
        return;
    }
    if (atomic_load(&l->e->shutting_down)) {
        econn_close(c, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
        return;
    }
    econn_start(c);
}

/* A private copy of a resolved address list, freed with freeaddrinfo-compatible frees. */
static struct addrinfo *copy_addrs(const struct addrinfo *res)
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

static void free_addrs(negio_econn *c)
{
    while (c->addrs != NULL) {
        struct addrinfo *a = c->addrs;
        c->addrs = a->ai_next;
        negio__free(a->ai_addr);
        negio__free(a);
    }
}

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
            econn_finish(c); /* if the timer is closed too */
        else
            econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "tcp init: %s", uv_strerror(rc));
        return;
    }
    c->tcp.data = c;
    rc = try_next_address(c);
    if (rc < 0)
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", c->host,
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
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", c->host,
                    (unsigned)c->port, uv_strerror(status));
        return;
    }
    free_addrs(c);
    econn_start(c);
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
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "resolve %s: %s", c->host,
                    uv_strerror(status));
        if (res)
            uv_freeaddrinfo(res);
        negio_econn_unref(c); /* the resolver's reference */
        return;
    }
    if (!c->close_started) {
        c->addrs = copy_addrs(res);
        int rc = c->addrs == NULL ? UV_ENOMEM : try_next_address(c);
        if (rc < 0)
            econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "connect to %s:%u: %s", c->host,
                        (unsigned)c->port, uv_strerror(rc));
    }
    uv_freeaddrinfo(res);
    negio_econn_unref(c);
}

static void start_connect(loop *l, negio_econn *c)
{
    (void)l;
    if (econn_init_handles(c) < 0) {
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_SYSTEM, "tcp init failed");
        return;
    }
    if (atomic_load(&c->e->shutting_down)) {
        econn_close(c, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
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
        econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_ADDRESS, "resolve %s: %s", c->host,
                    uv_strerror(rc));
    }
}

/* A write that negio_engine_send accepted and the connector then refused: it was made before
 * the peer's POLICY was known (or on another thread as it arrived) and the POLICY forbids it.
 * The application hears of it through on_write_failed, and the connection stays up
 * (PROTOCOL.md section 4.3). Without that callback nothing would tell it that the message was
 * not sent, so the connection ends instead, the peer told by a protected CLOSE with the status
 * of NEGIO_ERR_POLICY (section 6.7). */
static void write_refused(negio_econn *c, int code, const uint8_t *data, size_t len,
                          negio_level level)
{
    negio_engine *e = c->e;
    if (e->o.callbacks.on_write_failed != NULL) {
        e->o.callbacks.on_write_failed(c, code, data, len, level, e->o.user);
        return;
    }
    uint64_t peer = atomic_load(&c->peer_policy);
    (void)negio_conn_close(c->conn, (uint32_t)-NEGIO_ERR_POLICY,
                           "a message could not be sent under this side's policy");
    flush(c);
    econn_close(c, NEGIO_CLOSE_ERROR, NEGIO_ERR_POLICY,
                "a message of %zu bytes at level %s could not be sent: %s (the peer takes at "
                "most %u bytes at level %s or above), and no on_write_failed callback is set",
                len, negio_level_name(level), negio_strerror(code), (unsigned)(uint32_t)peer,
                negio_level_name((negio_level)(peer >> 32 & 0xff)));
}

/* Hands one accepted write to the connector (never while must_hold). Its bytes leave QUEUED
 * only once UNSENT counts them, so that the hard limit never loses sight of them. A write that
 * reaches the loop once the connection is closing is not sent: on_closed reports the end. */
static void do_write(negio_econn *c, const uint8_t *data, size_t len, negio_level level)
{
    if (c->state != ST_OPEN || c->close_started || c->local_closing) {
        atomic_fetch_sub(&c->queued, len);
        return;
    }
    int rc = negio_conn_write(c->conn, data, len, level);
    if (rc == NEGIO_OK)
        note_unsent(c);
    atomic_fetch_sub(&c->queued, len);
    if (rc == NEGIO_OK) {
        econn_process(c);
    } else if (rc <= NEGIO_ERR_FATAL) {
        flush(c); /* the connector's CLOSE */
        econn_close(c, NEGIO_CLOSE_ERROR, rc, "%s", negio_conn_error_detail(c->conn));
    } else {
        write_refused(c, rc, data, len, level);
    }
}

/* Hands the held writes to the connector in their order, once it can take them. */
static void release_held(negio_econn *c)
{
    while (c->held != NULL && c->established && !c->step_running && !c->close_started) {
        cmd *m = c->held;
        c->held = m->next;
        if (c->held == NULL)
            c->held_tail = &c->held;
        do_write(c, m->data, m->len, m->level);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c); /* the command's */
        negio__free(m);
    }
}

static void on_close_unanswered(uv_timer_t *t)
{
    negio_econn *c = t->data;
    econn_close(c, NEGIO_CLOSE_TIMEOUT, 0, "the peer did not answer the close within %u ms",
                (unsigned)c->e->o.shutdown_timeout_ms);
}

/* A normal close sends CLOSE and keeps reading until the peer's own CLOSE (every side sends one;
 * a rejection that crossed ours arrives this way), the end of the stream, or the close deadline;
 * what arrives decides how the connection is reported. A rejection, or a connection not yet
 * established, ends at once. */
static void do_graceful_close(negio_econn *c, uint32_t status)
{
    if (c->close_started || c->state == ST_DONE || c->local_closing)
        return;
    if (c->step_running || c->state != ST_OPEN) {
        econn_close(c, NEGIO_CLOSE_REFUSED, 0, "closed locally");
        return;
    }
    if (status != 0 || !c->established) {
        negio_conn_close(c->conn, status, status ? "closed by the application" : "");
        flush(c);
        econn_close(c, status ? NEGIO_CLOSE_REFUSED : NEGIO_CLOSE_CLEAN, 0, "closed locally");
        return;
    }
    release_held(c); /* writes made before the close go out before it */
    if (c->close_started)
        return;
    negio_conn_close(c->conn, 0, "");
    atomic_store(&c->closed, 1); /* no more application writes */
    c->local_closing = 1;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_close_unanswered, c->e->o.shutdown_timeout_ms, 0);
    econn_process(c); /* flushes the CLOSE, keeps reading */
}

static void listener_stop_all(negio_engine *e);
static void listener_start(listener *li);
static void listener_setup(loop *l, listener *li);

/* Runs M; returns 1 if M was kept (a write held until the running step ends), else 0. */
static int run_cmd(loop *l, cmd *m)
{
    negio_econn *c = m->conn;
    switch (m->type) {
    case CMD_ADOPT:
        adopt(l, m);
        break;
    case CMD_CONNECT:
        start_connect(l, c);
        negio_econn_unref(c); /* the command's reference */
        break;
    case CMD_WRITE:
        if (must_hold(c) && c->state != ST_DONE && !c->close_started) {
            hold(c, m);
            return 1;
        }
        do_write(c, m->data, m->len, m->level);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c);
        break;
    case CMD_CLOSE:
        do_graceful_close(c, m->status);
        negio_econn_unref(c);
        break;
    case CMD_STEP_DONE:
        c->step_running = 0;
        release_held(c); /* the writes made meanwhile, if established */
        if (!c->close_started)
            econn_process(c);
        negio_econn_unref(c); /* the job's reference */
        break;
    case CMD_LISTEN:
        listener_setup(l, m->listener);
        break;
    }
    return 0;
}

/* ---- what the engine asks of every loop (LOOP_*) ------------------------------------------- */

static void resume_accepting(loop *l)
{
    negio_engine *e = l->e;
    if (atomic_load(&e->shutting_down))
        return;
    atomic_store(&e->accept_paused, 0);
    for (listener *li = e->listeners; li; li = li->next) {
        /* a listener out of descriptors resumes when its backoff ends */
        if (!li->polling && li->fd >= 0 && !uv_is_active((uv_handle_t *)&li->backoff))
            listener_start(li);
    }
}

static void shutdown_conns(loop *l)
{
    if (l->index == 0)
        listener_stop_all(l->e);
    for (negio_econn *x = l->conns, *next; x != NULL; x = next) {
        next = x->next;
        if (x->established)
            do_graceful_close(x, 0);
        else
            econn_close(x, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
    }
}

static void force_conns(loop *l)
{
    for (negio_econn *x = l->conns, *next; x != NULL; x = next) {
        next = x->next;
        if (!x->close_started)
            econn_close(x, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
        close_handles(x);
    }
}

static void stop_loop(loop *l)
{
    l->stopping = 1;
    drop_dirty(l);
    uv_close((uv_handle_t *)&l->flusher, NULL);
    uv_close((uv_handle_t *)&l->spin, NULL);
    uv_close((uv_handle_t *)&l->async, NULL);
}

/* Takes the commands posted to L and the signals asked of it, together, so that a signal runs
 * after every command posted before it. */
static cmd *take_posted(loop *l, unsigned *signals)
{
    pthread_mutex_lock(&l->lock);
    cmd *m = l->head;
    l->head = l->tail = NULL;
    *signals = l->signals;
    l->signals = 0;
    pthread_mutex_unlock(&l->lock);
    return m;
}

static void run_cmds(loop *l, cmd *m)
{
    while (m != NULL) {
        cmd *next = m->next;
        if (!run_cmd(l, m))
            negio__free(m);
        m = next;
    }
}

static void on_async(uv_async_t *a)
{
    loop *l = a->data;
    unsigned signals;
    run_cmds(l, take_posted(l, &signals));
    if (signals & LOOP_RESUME)
        resume_accepting(l);
    if (signals & LOOP_SHUTDOWN)
        shutdown_conns(l);
    if (signals & LOOP_FORCE)
        force_conns(l);
    if (signals & LOOP_STOP)
        stop_loop(l);
}

static void *loop_main(void *arg)
{
    loop *l = arg;
    uv_run(&l->uv, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- listening ----------------------------------------------------------------------------- */

#define BACKOFF_MIN_MS 20u
#define BACKOFF_MAX_MS 1000u

static void on_listen_ready(uv_poll_t *p, int status, int events);

/* One line to the log function of the listener's configuration (negio_config_set_log). */
static void listener_log(const listener *li, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void listener_log(const listener *li, const char *fmt, ...)
{
    if (li->cfg->log_fn == NULL)
        return;
    char text[DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    li->cfg->log_fn(li->cfg->log_user, 0, text);
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
static void listener_setup(loop *l, listener *li)
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
        listener_start(li);
}

static void listener_start(listener *li)
{
    if (uv_poll_start(&li->poll, UV_READABLE, on_listen_ready) == 0)
        li->polling = 1;
}

static void listener_stop(listener *li)
{
    if (li->polling) {
        uv_poll_stop(&li->poll);
        li->polling = 0;
    }
}

static void listener_pause(negio_engine *e)
{
    atomic_store(&e->accept_paused, 1);
    for (listener *li = e->listeners; li; li = li->next)
        listener_stop(li);
}

static void listener_resume(negio_engine *e)
{
    signal_loop(&e->loops[0], LOOP_RESUME);
}

static void listener_stop_all(negio_engine *e)
{
    for (listener *li = e->listeners; li; li = li->next) {
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
    listener *li = t->data;
    negio_engine *e = li->e;
    if (li->fd >= 0 && !atomic_load(&e->shutting_down) && !atomic_load(&e->accept_paused))
        listener_start(li);
}

/* accept() failed for want of a descriptor (EMFILE: the process's, ENFILE: the system's) or of
 * kernel memory. The connection stays in the backlog and the socket stays readable: going back
 * to the poll would spin at full speed. Instead the connections waiting are shed (accepted into
 * the reserved descriptor, given up for the moment, and closed at once: their clients learn now,
 * not at their own timeout) and accepting pauses, 20 ms doubling up to 1 s while the episode
 * lasts. The first connection accepted ends the episode. Logged once at its start, once at its
 * end. */
static void listener_starved(listener *li, int err)
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
            int fd = accept4(li->fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                continue;
            if (fd < 0)
                break; /* none left waiting, or the slot was taken by another thread */
            close(fd);
            li->shed++;
        }
        li->reserve = open_reserve();
    }
    listener_stop(li);
    uv_timer_start(&li->backoff, on_backoff, li->backoff_ms, 0);
}

static void listener_recovered(listener *li)
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
    listener *li = p->data;
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
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                listener_starved(li, err);
            return; /* EAGAIN: nothing more waits */
        }
        if (li->starved)
            listener_recovered(li);
        if (atomic_load(&e->shutting_down) ||
            (e->o.callbacks.on_accept &&
             e->o.callbacks.on_accept(e, (struct sockaddr *)&ss, e->o.user) != 0)) {
            close(fd);
            continue;
        }
        cmd *m = new_cmd(CMD_ADOPT, NULL, 0);
        if (m == NULL) {
            close(fd); /* shed: memory for it may be back for the next one */
            continue;
        }
        atomic_fetch_add(&e->conns, 1); /* counted now, adopted later on its loop */
        m->fd = fd;
        m->listener = li;
        unsigned i = atomic_fetch_add(&e->rr, 1) % e->nloops;
        if (i == 0) {
            adopt(&e->loops[0], m); /* already on loop 0 */
            negio__free(m);
        } else {
            post(&e->loops[i], m);
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
    if (e == NULL || addr == NULL || cfg == NULL || negio_config_get_role(cfg) != NEGIO_ROLE_SERVER)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&e->shutting_down))
        return NEGIO_ERR_STATE;
    char host[256], port[16];
    if (parse_addr(addr, host, sizeof(host), port, sizeof(port)) < 0)
        return NEGIO_ERR_ADDRESS;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : "::", port, &hints, &res) != 0 || res == NULL)
        return NEGIO_ERR_ADDRESS;
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
        return rc;
    }
    if (out_port != NULL)
        *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    listener *li = negio__calloc(1, sizeof(*li));
    if (li == NULL || negio_config_dup(&li->cfg, cfg) < 0) {
        negio__free(li);
        close(fd);
        return NEGIO_ERR_NOMEM;
    }
    /* a step may wait on the KDC: it must run on a worker, never on the loop thread */
    negio_config_set_deferred_steps(li->cfg, 1);
    li->e = e;
    li->fd = fd;
    li->reserve = open_reserve();
    /* the listener's handle and the list belong to loop 0: its thread sets them up
     * (CMD_LISTEN), so no other thread ever touches a handle of a running loop */
    cmd *m = new_cmd(CMD_LISTEN, NULL, 0);
    if (m == NULL) {
        negio_config_del(li->cfg);
        if (li->reserve >= 0)
            close(li->reserve);
        negio__free(li);
        close(fd);
        return NEGIO_ERR_NOMEM;
    }
    m->listener = li;
    post(&e->loops[0], m);
    return NEGIO_OK;
}

/* ---- public calls from any thread ---------------------------------------------------------- */

int negio_engine_connect(negio_engine *e, const char *host, uint16_t port, const negio_config *cfg,
                         void *conn_user, negio_econn **out)
{
    if (e == NULL || host == NULL || cfg == NULL ||
        negio_config_get_role(cfg) != NEGIO_ROLE_CLIENT || negio_config_get_service(cfg) == NULL)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&e->shutting_down))
        return NEGIO_ERR_STATE;
    loop *l = &e->loops[atomic_fetch_add(&e->rr, 1) % e->nloops];
    negio_config *deferred;
    if (negio_config_dup(&deferred, cfg) < 0)
        return NEGIO_ERR_NOMEM;
    /* a step may wait on the KDC: it must run on a worker, never on the loop thread */
    negio_config_set_deferred_steps(deferred, 1);
    negio_econn *c = econn_new(e, l, deferred, 1, 0);
    negio_config_del(deferred);
    if (c == NULL)
        return NEGIO_ERR_NOMEM;
    c->user = conn_user;
    c->port = port;
    c->host = negio__strdup(host);
    cmd *m = new_cmd(CMD_CONNECT, c, 0);
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
    post(l, m);
    return NEGIO_OK;
}

/* The facts negio__write_check needs, as any thread sees them. */
static negio__write_limits write_limits(const negio_econn *c)
{
    uint64_t peer = atomic_load(&c->peer_policy);
    negio__write_limits l = {
        .tls_only = c->tls_only,
        .max_message = c->max_message,
        .peer_known = (peer & PEER_KNOWN) != 0,
        .peer_min = (negio_level)(peer >> 32 & 0xff),
        .peer_max_message = (uint32_t)peer,
    };
    return l;
}

/* Counts LEN more bytes as held by C unless that passes the hard limit; 0 if it would. Writers
 * on several threads each see the others' bytes: the count is raised first, then checked. */
static int reserve(negio_econn *c, size_t len)
{
    size_t before = atomic_fetch_add(&c->queued, len);
    if (before + len + atomic_load(&c->unsent) <= c->e->o.hard_limit)
        return 1;
    atomic_fetch_sub(&c->queued, len);
    return 0;
}

int negio_engine_send(negio_engine *e, negio_econn *c, const void *data, size_t len,
                      negio_level level)
{
    if (e == NULL || c == NULL || c->e != e || (data == NULL && len > 0) ||
        level < NEGIO_LEVEL_DEFAULT || level > NEGIO_LEVEL_SEAL)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&c->closed))
        return NEGIO_ERR_CLOSED;
    if (level == NEGIO_LEVEL_DEFAULT)
        level = c->default_level;
    negio__write_limits limits = write_limits(c);
    int rc = negio__write_check(&limits, len, level);
    if (rc < 0)
        return rc;
    if (len > e->o.hard_limit)
        return NEGIO_ERR_MSG_SIZE; /* it would never fit */
    if (!reserve(c, len))
        return NEGIO_ERR_BUSY;
    int here = on_loop_thread(c->l);
    if (here && !must_hold(c)) {
        do_write(c, data, len, level);
        return NEGIO_OK;
    }
    cmd *m = new_cmd(CMD_WRITE, c, len);
    if (m == NULL) {
        atomic_fetch_sub(&c->queued, len);
        return NEGIO_ERR_NOMEM;
    }
    if (len)
        memcpy(m->data, data, len);
    m->level = level;
    negio_econn_ref(c); /* the command's */
    if (here)
        hold(c, m);
    else
        post(c->l, m);
    return NEGIO_OK;
}

int negio_engine_write(negio_econn *c, const void *data, size_t len)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    return negio_engine_send(c->e, c, data, len, NEGIO_LEVEL_DEFAULT);
}

int negio_engine_close(negio_econn *c, uint32_t status)
{
    if (c == NULL)
        return NEGIO_ERR_INVALID;
    if (atomic_load(&c->closed))
        return NEGIO_ERR_CLOSED;
    if (on_loop_thread(c->l)) {
        do_graceful_close(c, status);
        return NEGIO_OK;
    }
    cmd *m = new_cmd(CMD_CLOSE, c, 0);
    if (m == NULL)
        return NEGIO_ERR_NOMEM;
    m->status = status;
    negio_econn_ref(c);
    post(c->l, m);
    return NEGIO_OK;
}

/* ---- engine -------------------------------------------------------------------------------- */

/* Starts a thread with SIGPIPE blocked in it (and in the threads it starts, such as libuv's
 * resolver pool). libuv writes to sockets with write()/writev(), which raise SIGPIPE when the
 * peer has reset the connection; blocked, the signal stays pending on that thread, never
 * delivered, and the write fails with EPIPE as it should. The process's own disposition of
 * SIGPIPE is the application's and is left alone. (Never with UV_LOOP_BLOCK_SIGPROF, whose
 * epoll_pwait mask would unblock it while the loop waits.) */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    int rc = pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    if (rc != 0)
        return rc;
    rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int sync_init(negio_engine *e)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return NEGIO_ERR_SYSTEM;
    /* the drain deadline must not move with the wall clock */
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0 && (rc = pthread_mutex_init(&e->lock, NULL)) == 0)
        e->sync_ready = 1;
    if (rc == 0 && (rc = pthread_cond_init(&e->done, &attr)) == 0)
        e->sync_ready = 2;
    if (rc == 0 && (rc = pthread_mutex_init(&e->wlock, NULL)) == 0)
        e->sync_ready = 3;
    if (rc == 0 && (rc = pthread_cond_init(&e->wcond, NULL)) == 0)
        e->sync_ready = 4;
    pthread_condattr_destroy(&attr);
    return rc == 0 ? NEGIO_OK : NEGIO_ERR_SYSTEM;
}

static void sync_fini(negio_engine *e)
{
    if (e->sync_ready >= 4)
        pthread_cond_destroy(&e->wcond);
    if (e->sync_ready >= 3)
        pthread_mutex_destroy(&e->wlock);
    if (e->sync_ready >= 2)
        pthread_cond_destroy(&e->done);
    if (e->sync_ready >= 1)
        pthread_mutex_destroy(&e->lock);
}

/* Closes the first N of L's own handles and L's libuv loop, on the calling thread (L's thread
 * has ended or never ran). */
static void loop_fini(loop *l, int n)
{
    uv_handle_t *h[3] = {(uv_handle_t *)&l->async, (uv_handle_t *)&l->flusher,
                         (uv_handle_t *)&l->spin};
    for (int i = 0; i < n; i++) {
        if (!uv_is_closing(h[i]))
            uv_close(h[i], NULL);
    }
    uv_run(&l->uv, UV_RUN_DEFAULT); /* the close callbacks; nothing is left active */
    (void)uv_loop_close(&l->uv);
    negio__free(l->spare);
    pthread_mutex_destroy(&l->lock);
}

/* L's libuv loop and own handles; on failure nothing of them is left. */
static int loop_init(negio_engine *e, loop *l, unsigned index)
{
    l->e = e;
    l->index = index;
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        return NEGIO_ERR_SYSTEM;
    int rc = uv_loop_init(&l->uv);
    if (rc != 0) {
        pthread_mutex_destroy(&l->lock);
        return rc == UV_ENOMEM ? NEGIO_ERR_NOMEM : NEGIO_ERR_SYSTEM;
    }
    int n = 0;
    if ((rc = uv_async_init(&l->uv, &l->async, on_async)) == 0)
        n = 1;
    if (rc == 0 && (rc = uv_check_init(&l->uv, &l->flusher)) == 0)
        n = 2;
    if (rc == 0 && (rc = uv_idle_init(&l->uv, &l->spin)) == 0)
        n = 3;
    if (rc == 0)
        rc = uv_check_start(&l->flusher, on_flush_pass);
    if (rc != 0) {
        loop_fini(l, n);
        return NEGIO_ERR_SYSTEM;
    }
    l->async.data = l;
    l->flusher.data = l;
    l->spin.data = l;
    uv_unref((uv_handle_t *)&l->flusher); /* the loop runs for its async handle alone */
    uv_unref((uv_handle_t *)&l->spin);
    return NEGIO_OK;
}

/* Everything negio_engine_new sets up, counted as it goes so that engine_free undoes exactly
 * what was done. */
static int engine_init(negio_engine *e)
{
    int rc = sync_init(e);
    if (rc < 0)
        return rc;
    e->loops = negio__calloc(e->nloops, sizeof(loop));
    e->workers = negio__calloc(e->o.workers, sizeof(pthread_t));
    if (e->loops == NULL || e->workers == NULL)
        return NEGIO_ERR_NOMEM;
    for (; e->loops_ready < e->nloops; e->loops_ready++) {
        if ((rc = loop_init(e, &e->loops[e->loops_ready], e->loops_ready)) < 0)
            return rc;
    }
    for (; e->loops_running < e->nloops; e->loops_running++) {
        loop *l = &e->loops[e->loops_running];
        if (start_thread(&l->thread, loop_main, l) != 0)
            return NEGIO_ERR_SYSTEM;
    }
    for (; e->nworkers < e->o.workers; e->nworkers++) {
        if (start_thread(&e->workers[e->nworkers], worker_main, e) != 0)
            return NEGIO_ERR_SYSTEM;
    }
    return NEGIO_OK;
}

/* Stops what engine_init started and frees what it made. Workers first: a step still running
 * posts its completion to a loop that must be alive (this waits for a step blocked on an
 * unreachable KDC to give up). */
static void engine_free(negio_engine *e)
{
    if (e->sync_ready >= 4) {
        pthread_mutex_lock(&e->wlock);
        e->wstop = 1;
        pthread_cond_broadcast(&e->wcond);
        pthread_mutex_unlock(&e->wlock);
    }
    for (unsigned i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i], NULL);
    signal_all(e, LOOP_STOP);
    for (unsigned i = 0; i < e->loops_running; i++)
        pthread_join(e->loops[i].thread, NULL);
    for (unsigned i = 0; i < e->loops_ready; i++) {
        loop *l = &e->loops[i];
        unsigned ignored;
        run_cmds(l, take_posted(l, &ignored)); /* what was posted after the stop */
        loop_fini(l, 3);
    }
    while (e->listeners) {
        listener *li = e->listeners;
        e->listeners = li->next;
        if (li->reserve >= 0)
            close(li->reserve);
        negio_config_del(li->cfg);
        negio__free(li);
    }
    negio__free(e->loops);
    negio__free(e->workers);
    sync_fini(e);
    negio__free(e);
}

/* negio_engine_options as negio 0.2 declared it ends with user, without padding (base/sized.h,
 * docs/ARCHITECTURE.md section 17.4) */
#define OPTIONS_SIZE_0_2 NEGIO__END(negio_engine_options, user)
_Static_assert(sizeof(negio_engine_options) == NEGIO__END(negio_engine_options, user),
               "negio_engine_options grew: keep OPTIONS_SIZE_0_2, move this to the new last field");

int negio_engine_new(negio_engine **out, const negio_engine_options *opts)
{
    negio_engine_options o;
    if (out == NULL || opts == NULL || negio__sized_in(&o, sizeof(o), opts, OPTIONS_SIZE_0_2) < 0)
        return NEGIO_ERR_INVALID;
    negio_engine *e = negio__calloc(1, sizeof(*e));
    if (e == NULL)
        return NEGIO_ERR_NOMEM;
    e->o = o;
    if (e->o.loops == 0)
        e->o.loops = uv_available_parallelism();
    if (e->o.workers == 0)
        e->o.workers = 4;
    if (e->o.handshake_timeout_ms == 0)
        e->o.handshake_timeout_ms = 30000;
    if (e->o.max_connections == 0)
        e->o.max_connections = 65536;
    if (e->o.high_water == 0)
        e->o.high_water = 1u << 20;
    if (e->o.hard_limit == 0)
        e->o.hard_limit = 16u << 20;
    if (e->o.shutdown_timeout_ms == 0)
        e->o.shutdown_timeout_ms = 5000;
    e->nloops = e->o.loops;
    int rc = engine_init(e);
    if (rc < 0) {
        engine_free(e);
        return rc;
    }
    *out = e;
    return NEGIO_OK;
}

/* Waits until no connection is left or MS pass; returns whether none is left. */
static int wait_drained(negio_engine *e, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    int rc = 0;
    while (atomic_load(&e->conns) > 0 && rc == 0)
        rc = pthread_cond_timedwait(&e->done, &e->lock, &ts);
    pthread_mutex_unlock(&e->lock);
    return atomic_load(&e->conns) == 0;
}

/* Graceful for shutdown_timeout_ms, then forced for as long again: a forced close needs only
 * the loop threads, so what is left after that waits on an application callback that has not
 * returned. */
int negio_engine_shutdown(negio_engine *e)
{
    if (e == NULL)
        return NEGIO_ERR_INVALID;
    if (atomic_exchange(&e->shutting_down, 1) == 0)
        signal_all(e, LOOP_SHUTDOWN);
    if (wait_drained(e, e->o.shutdown_timeout_ms))
        return NEGIO_OK;
    if (atomic_exchange(&e->forced, 1) == 0)
        signal_all(e, LOOP_FORCE);
    return wait_drained(e, e->o.shutdown_timeout_ms) ? NEGIO_OK : NEGIO_ERR_BUSY;
}

void negio_engine_del(negio_engine *e)
{
    if (e == NULL)
        return;
    /* NEGIO_ERR_BUSY: the joins in engine_free wait for the callbacks still running */
    (void)negio_engine_shutdown(e);
    engine_free(e);
}
