/* What the engine's files share (docs/ARCHITECTURE.md section 14): the engine, its loops, a
 * connection, a listener and the commands that go from any thread to a loop; the functions one
 * file calls in another, named negio__*. Everything else in src/engine is static to its file.
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
#ifndef NEGIO_ENGINE_INTERNAL_H
#define NEGIO_ENGINE_INTERNAL_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "negio/engine.h"

#define DETAIL_MAX 768

enum negio__cmd_type {
    CMD_ADOPT,     /* an accepted socket for this loop */
    CMD_CONNECT,   /* start a client connection */
    CMD_WRITE,     /* an application message from another thread */
    CMD_CLOSE,     /* close a connection gracefully */
    CMD_STEP_DONE, /* a step ended: allocated with the step (negio__submit_step), so it is always
                      sent */
    CMD_LISTEN,    /* loop 0: a new listener to set up and start */
    CMD_RELAY,     /* attach a relay (relay.c) to a connection */
};

/* What the engine as a whole asks of a loop: bits set under the loop's lock, run after the
 * commands posted before them. They carry no data, so asking cannot fail for lack of memory. */
enum {
    LOOP_RESUME = 1,   /* loop 0: resume accepting */
    LOOP_SHUTDOWN = 2, /* close everything gracefully */
    LOOP_FORCE = 4,    /* close everything now */
    LOOP_STOP = 8,     /* end the loop thread */
    LOOP_CLOCK = 16,   /* test build only: move the loop's clock (negio__engine_advance_clock) */
};

typedef struct negio__cmd {
    struct negio__cmd *next;
    enum negio__cmd_type type;
    negio_econn *conn;
    int fd;
    struct negio__listener *listener;
    struct negio__relay *relay;
    uint32_t status;
    negio_level level;
    size_t len;
    uint8_t data[];
} negio__cmd;

typedef struct negio__wreq negio__wreq;

typedef struct negio__loop {
    negio_engine *e;
    unsigned index;
    uv_loop_t uv;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t lock;
    negio__cmd *head, *tail;
    unsigned signals;   /* LOOP_* (under lock) */
    negio_econn *conns; /* doubly linked through econn.prev/next; loop thread only */
    int stopping;
    /* Output is written once per loop iteration (output.c): connections with output
     * waiting, linked through econn.dirty_next, each holding a reference; flushed by FLUSHER
     * after the poll phase. SPIN, an idle handle, is active while the list is not empty so that
     * the loop does not sleep in poll with output that was produced outside the poll phase. */
    negio_econn *dirty;
    uv_check_t flusher;
    uv_idle_t spin;
    /* Connections whose application writes or close were made on this thread outside their own
     * callbacks (in another connection's, say), in order, linked through econn.turn_next, each
     * holding a reference: their turn comes in the check phase, before the flush pass, so that
     * none of their callbacks runs inside the callback that wrote (write.c). */
    negio_econn *turns, *turns_tail;
#ifdef NEGIO_TEST_HOOKS
    uint64_t clock_skew; /* added to uv_now: the test clock (timer.c; loop thread) */
    uint64_t clock_ask;  /* milliseconds to add at the next LOOP_CLOCK (under lock) */
#endif
    negio__wreq *spare; /* one write request kept for reuse (loop thread only) */
    uint8_t *relay_buf; /* what relays on this loop read into, one read at a time (relay.c) */
} negio__loop;

typedef struct negio__listener {
    struct negio__listener *next;
    negio_engine *e;
    int fd;
    uv_poll_t poll;
    int polling;
    negio_config *cfg; /* what accepted connections are made with; replaced under cfg_lock */
    pthread_mutex_t cfg_lock;
    uint16_t port;
    struct negio__cidr *proxy_from; /* sources whose connections begin with a PROXY header */
    size_t nproxy;
    struct negio__listener *reg_next; /* every listener, for negio_engine_listen_reconfigure */
    /* Out of descriptors (listener.c, listener_starved): a descriptor held in reserve, given up for
     * a moment to accept and close the connections waiting; the pause before the next try. */
    int reserve;
    uv_timer_t backoff;
    uint32_t backoff_ms;
    int starved;        /* an episode is on: said once, at its start */
    unsigned long shed; /* connections accepted and closed during the episode */
} negio__listener;

enum negio__conn_state { ST_CONNECTING, ST_OPEN, ST_CLOSING, ST_DONE };

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
    negio__loop *l;
    negio_econn *prev, *next;
    void *user;
    int is_client;
    enum negio__conn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;     /* a client's connect deadline, the handshake deadline; once
                             established, idle and expiry */
    uv_timer_cb timer_cb; /* what the timer runs when due (negio__timer_start) */
    uint64_t last_active; /* negio__now of the last read, for the idle timeout */
    uint64_t expires_at;  /* negio__now the security context ends (0: never, or not asked) */
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
    struct negio__cmd *held;
    struct negio__cmd **held_tail;
    int processing;  /* inside negio__econn_process: callbacks must not re-enter it */
    int in_callback; /* the application's callbacks of this connection running (loop thread) */
    int turn;        /* on the loop's turns list */
    negio_econn *turn_next;
    int close_asked; /* a close made on the loop thread outside a callback of this connection */
    uint32_t close_status;
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
    uint32_t connect_timeout_ms; /* client: the TCP connection's deadline (negio_connect_options) */
    struct sockaddr_storage peer;
    /* half-close (negio_config_set_half_close): the peer's CLOSE arrived and was not answered */
    int half_close;
    int peer_closed;
    /* this side's end as the stream's FIN (NEGIO_WANT_SHUTDOWN): 1 while the shutdown of the
     * socket's sending half (shutdown_req) is under way, 2 once it is done or failed */
    int send_shut;
    struct negio__relay *relay; /* relay.c, or NULL */
    atomic_int relay_attached;
    /* PROXY protocol (proxy.c): 1 while a header is expected, 2 when one must be refused; the
     * header read so far; the balancer's address once one was accepted */
    int proxy_state;
    uint8_t *proxy_buf;
    size_t proxy_len;
    const struct negio__listener *listener;
    struct sockaddr_storage via;
};

struct negio_engine {
    negio_engine_options o;
    unsigned nloops;
    negio__loop *loops;
    negio__listener *listeners;
    negio__listener *registry; /* the same listeners, from the call that made each (under lock) */
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
    negio__cmd *jhead, *jtail;
    int wstop;
#ifdef NEGIO_TEST_HOOKS
    unsigned clock_pending; /* loops yet to move their clock (under lock, with done) */
#endif
};

/* ---- loop.c: a loop thread, its command queue and signals ---------------------------------- */

/* Appends M to L's command queue and wakes L (any thread). */
void negio__post(negio__loop *l, negio__cmd *m);
/* Asks loop L for SIGNALS (LOOP_*), run after every command posted before (any thread). */
void negio__signal_loop(negio__loop *l, unsigned signals);
void negio__signal_all(negio_engine *e, unsigned signals);
negio__cmd *negio__new_cmd(enum negio__cmd_type type, negio_econn *c, size_t len);
int negio__on_loop_thread(const negio__loop *l);
/* Takes what was posted to L: the commands, and the signals into *SIGNALS. */
negio__cmd *negio__take_posted(negio__loop *l, unsigned *signals);
void negio__run_cmds(negio__loop *l, negio__cmd *m);
void *negio__loop_main(void *arg);
/* Keeps L from sleeping in poll until its check phase has run (loop thread). */
void negio__keep_awake(negio__loop *l);
/* L's libuv loop and own handles; on failure nothing of them is left. */
int negio__loop_init(negio_engine *e, negio__loop *l, unsigned index);
/* Closes the first N of L's own handles and its libuv loop (L's thread has ended or never ran). */
void negio__loop_fini(negio__loop *l, int n);

/* ---- worker.c: threads and the step pool ---------------------------------------------------- */

/* pthread_create with SIGPIPE blocked in the new thread; 0 or an errno value. */
int negio__start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
void *negio__worker_main(void *arg);
/* Hands C's pending step to a worker; NEGIO_ERR_NOMEM, or 0. */
int negio__submit_step(negio_econn *c);

/* ---- conn.c: a connection's life ------------------------------------------------------------ */

/* A connection in *OUT: NEGIO_OK, or negio_conn_new's refusal of CFG (NEGIO_ERR_INVALID,
 * NEGIO_ERR_NOMEM), or NEGIO_ERR_NOMEM. */
int negio__econn_new(negio_econn **out, negio_engine *e, negio__loop *l, const negio_config *cfg,
                     int is_client, int counted);
int negio__econn_init_handles(negio_econn *c);
/* A connected socket, server or client side: the handshake deadline, then the first round. */
void negio__econn_start(negio_econn *c);
/* Ends C (the first reason wins): pending output is flushed first, bounded by the shutdown
 * deadline; on_closed runs once both handles are closed. */
void negio__econn_close(negio_econn *c, negio_close_reason reason, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void negio__close_handles(negio_econn *c);
void negio__close_all_handles(negio_econn *c);
void negio__econn_finish(negio_econn *c);
/* A close asked by the application (or a shutdown): CLOSE, then wait for the peer's. */
void negio__do_graceful_close(negio_econn *c, uint32_t status);
/* The connector's close is the stream's FIN (NEGIO_WANT_SHUTDOWN): its output, then the shutdown
 * of the socket's sending half; reading goes on until the peer's end. */
void negio__shut_send(negio_econn *c);
/* One connection less; accepting resumes if it had paused at max_connections. */
void negio__uncount(negio_engine *e);

/* ---- input.c: reading and the process loop -------------------------------------------------- */

/* Runs the connector until it needs input, a step or the socket: the heart of the engine. */
void negio__econn_process(negio_econn *c);

/* ---- output.c: from the connector to the socket --------------------------------------------- */

size_t negio__note_unsent(negio_econn *c);
void negio__update_backpressure(negio_econn *c);
void negio__check_high_water(negio_econn *c);
/* Hands all of the connector's output to the socket. */
void negio__flush(negio_econn *c);
/* The end of a round: output now if there is a lot of it, else in the loop's flush pass. */
void negio__flush_soon(negio_econn *c);
/* The flush pass, in the check phase: each connection on L's dirty list flushed once. */
void negio__flush_dirty(negio__loop *l);
void negio__drop_dirty(negio__loop *l);

/* ---- write.c: application messages on their way into the connector -------------------------- */

int negio__must_hold(const negio_econn *c);
void negio__hold(negio_econn *c, negio__cmd *m);
void negio__drop_held(negio_econn *c);
void negio__release_held(negio_econn *c);
void negio__do_write(negio_econn *c, const uint8_t *data, size_t len, negio_level level);
/* C's turn later in this loop iteration, for what its loop thread wrote or closed outside C's
 * own callbacks (loop thread). */
void negio__queue_turn(negio_econn *c);
/* A close made on C's loop thread outside C's own callbacks, for C's turn. */
void negio__ask_close(negio_econn *c, uint32_t status);
void negio__run_turns(negio__loop *l);
void negio__drop_turns(negio__loop *l);

/* ---- timer.c: the connection's deadlines ---------------------------------------------------- */

/* The loop's time in milliseconds, which every deadline of a connection is reckoned in: libuv's
 * (uv_now), plus in the test build what negio__engine_advance_clock added. */
static inline uint64_t negio__now(const negio__loop *l)
{
#ifdef NEGIO_TEST_HOOKS
    return uv_now(&l->uv) + l->clock_skew;
#else
    return uv_now(&l->uv);
#endif
}

/* Arms C's timer to run CB in MS milliseconds (libuv's uv_timer_start; its result). */
int negio__timer_start(negio_econn *c, uv_timer_cb cb, uint64_t ms);
void negio__on_timeout(uv_timer_t *t);
void negio__arm_established_timer(negio_econn *c);

#ifdef NEGIO_TEST_HOOKS
/* Test hook (test build only: negio_uv_hook_static, tests/CMakeLists.txt): every loop of E
 * moves its clock MS milliseconds forward, as if that much time had passed, so that a test
 * need not wait for a deadline in real time. The connections' timers (handshake deadline, idle
 * timeout, end of the context, close deadlines) come due MS sooner, and those now past run in
 * the loop's next iteration. Returns once every loop has moved its clock. One caller at a time,
 * not on a loop thread. The listener's backoff keeps real time. */
void negio__engine_advance_clock(negio_engine *e, uint64_t ms);
/* On L's thread, at LOOP_CLOCK. */
void negio__loop_move_clock(negio__loop *l);
#endif

/* ---- relay.c: a connection joined to a plain socket ------------------------------------------ */

/* On C's loop: attach R (made by negio_engine_relay*) to C, or drop it if C has ended. */
void negio__relay_start(negio_econn *c, struct negio__relay *r);
/* Whether C must not be read now: its relay's socket is not connected yet, or holds too much. */
int negio__relay_holds(const negio_econn *c);
/* C is established: the socket may be read. */
void negio__relay_established(negio_econn *c);
/* A message from the peer, for the socket. */
void negio__relay_message(negio_econn *c, const uint8_t *data, size_t len);
/* The peer's CLOSE (half-close): the socket's sending half is shut down after what came before. */
void negio__relay_peer_closed(negio_econn *c);
/* What C holds for the peer changed (PENDING bytes): pause or resume reading the socket. */
void negio__relay_output(negio_econn *c, size_t pending);
/* C is ending (negio__econn_close): shut the socket down (CLEAN) or reset it. */
void negio__relay_stop(negio_econn *c, int clean);
/* C's handles are being closed for good (a deadline, a forced shutdown): the socket's too. */
void negio__relay_close_now(negio_econn *c);
void negio__relay_free(struct negio__relay *r);

/* ---- proxy.c: the PROXY protocol on accepted connections ------------------------------------ */

typedef struct negio__cidr {
    int family;
    uint8_t addr[16];
    unsigned bits;
} negio__cidr;

/* Parses a list of addresses and CIDR blocks (commas or spaces between them) into a new array.
 * Returns the count (>= 1), NEGIO_ERR_INVALID or NEGIO_ERR_NOMEM. */
int negio__cidr_parse(const char *list, negio__cidr **out);
int negio__cidr_match(const negio__cidr *list, size_t n, const struct sockaddr *sa);
/* A PROXY version 1 line, its LEN bytes without the CRLF: 1 with the client's address in *SRC,
 * 0 for UNKNOWN (the connection's own address stays), -1 if it breaks the specification. */
int negio__proxy_v1_parse(const uint8_t *line, size_t len, struct sockaddr_storage *src);
/* C's peer address without the port, as text ("?" if none). */
void negio__peer_host(const negio_econn *c, char *out, size_t cap);
/* Reads into the header buffer while C expects a PROXY header (input.c's allocation). */
void negio__proxy_alloc(negio_econn *c, uv_buf_t *buf);
/* N bytes arrived in the header buffer: 0 while the header is incomplete, 1 when it was taken
 * (the bytes after it fed to the connector), or a failure that closed C. */
int negio__proxy_read(negio_econn *c, size_t n);

/* ---- connect.c, listener.c: making connections ---------------------------------------------- */

void negio__start_connect(negio__loop *l, negio_econn *c);
void negio__free_addrs(negio_econn *c);
/* A private copy of a resolved address list (as much as could be copied; NULL if nothing),
 * freed with negio__free_addr_list. */
struct addrinfo *negio__copy_addrs(const struct addrinfo *res);
void negio__free_addr_list(struct addrinfo **list);
void negio__adopt(negio__loop *l, negio__cmd *m);
void negio__listener_setup(negio__loop *l, negio__listener *li);
void negio__listener_start(negio__listener *li);
void negio__listener_resume(negio_engine *e);
void negio__listener_stop_all(negio_engine *e);
void negio__resume_accepting(negio__loop *l);

#endif /* NEGIO_ENGINE_INTERNAL_H */
