/* A loop thread: its libuv loop and own handles, the queue other threads post commands to, the
 * signals the engine as a whole sends (shutdown, forced close, stop, resume accepting), and
 * what each command does when the loop runs it. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"

void negio__post(negio__loop *l, negio__cmd *m)
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
void negio__signal_loop(negio__loop *l, unsigned signals)
{
    pthread_mutex_lock(&l->lock);
    l->signals |= signals;
    pthread_mutex_unlock(&l->lock);
    uv_async_send(&l->async);
}

void negio__signal_all(negio_engine *e, unsigned signals)
{
    for (unsigned i = 0; i < e->loops_running; i++)
        negio__signal_loop(&e->loops[i], signals);
}

negio__cmd *negio__new_cmd(enum negio__cmd_type type, negio_econn *c, size_t len)
{
    negio__cmd *m = negio__calloc(1, sizeof(*m) + len);
    if (m != NULL) {
        m->type = type;
        m->conn = c;
        m->len = len;
    }
    return m;
}

int negio__on_loop_thread(const negio__loop *l)
{
    return pthread_equal(pthread_self(), l->thread);
}

/* Runs M; returns 1 if M was kept (a write held until the running step ends), else 0. */
static int run_cmd(negio__loop *l, negio__cmd *m)
{
    negio_econn *c = m->conn;
    switch (m->type) {
    case CMD_ADOPT:
        negio__adopt(l, m);
        break;
    case CMD_CONNECT:
        negio__start_connect(l, c);
        negio_econn_unref(c); /* the command's reference */
        break;
    case CMD_WRITE:
        if (negio__must_hold(c) && c->state != ST_DONE && !c->close_started) {
            negio__hold(c, m);
            return 1;
        }
        negio__do_write(c, m->data, m->len, m->level);
        explicit_bzero(m->data, m->len);
        negio_econn_unref(c);
        break;
    case CMD_CLOSE:
        negio__do_graceful_close(c, m->status);
        negio_econn_unref(c);
        break;
    case CMD_STEP_DONE:
        c->step_running = 0;
        negio__release_held(c); /* the writes made meanwhile, if established */
        if (!c->close_started)
            negio__econn_process(c);
        negio_econn_unref(c); /* the job's reference */
        break;
    case CMD_LISTEN:
        negio__listener_setup(l, m->listener);
        break;
    case CMD_RELAY:
        negio__relay_start(c, m->relay);
        negio_econn_unref(c);
        break;
    }
    return 0;
}

/* What the engine as a whole asks of every loop (LOOP_*): close everything gracefully, or at
 * once, or end the loop thread. */
static void shutdown_conns(negio__loop *l)
{
    if (l->index == 0)
        negio__listener_stop_all(l->e);
    for (negio_econn *x = l->conns, *next; x != NULL; x = next) {
        next = x->next;
        if (x->established)
            negio__do_graceful_close(x, 0);
        else
            negio__econn_close(x, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
    }
}

static void force_conns(negio__loop *l)
{
    for (negio_econn *x = l->conns, *next; x != NULL; x = next) {
        next = x->next;
        if (!x->close_started)
            negio__econn_close(x, NEGIO_CLOSE_REFUSED, 0, "engine shutting down");
        negio__close_all_handles(x);
    }
}

static void stop_loop(negio__loop *l)
{
    l->stopping = 1;
    negio__drop_turns(l);
    negio__drop_dirty(l);
    uv_close((uv_handle_t *)&l->flusher, NULL);
    uv_close((uv_handle_t *)&l->spin, NULL);
    uv_close((uv_handle_t *)&l->async, NULL);
}

/* Takes the commands posted to L and the signals asked of it, together, so that a signal runs
 * after every command posted before it. */
negio__cmd *negio__take_posted(negio__loop *l, unsigned *signals)
{
    pthread_mutex_lock(&l->lock);
    negio__cmd *m = l->head;
    l->head = l->tail = NULL;
    *signals = l->signals;
    l->signals = 0;
    pthread_mutex_unlock(&l->lock);
    return m;
}

void negio__run_cmds(negio__loop *l, negio__cmd *m)
{
    while (m != NULL) {
        negio__cmd *next = m->next;
        if (!run_cmd(l, m))
            negio__free(m);
        m = next;
    }
}

static void on_spin(uv_idle_t *h)
{
    (void)h; /* only there to keep the loop from sleeping in poll: on_check does the work */
}

void negio__keep_awake(negio__loop *l)
{
    uv_idle_start(&l->spin, on_spin);
}

/* After the poll phase (every read, command and write callback of the iteration): first the
 * turns of connections written to from this thread, then the output of the iteration. What
 * either of them asks for waits for the next iteration, which does not sleep in poll then. */
static void on_check(uv_check_t *h)
{
    negio__loop *l = h->data;
    negio__run_turns(l);
    negio__flush_dirty(l);
    if (l->dirty == NULL && l->turns == NULL)
        uv_idle_stop(&l->spin);
}

static void on_async(uv_async_t *a)
{
    negio__loop *l = a->data;
    unsigned signals;
    negio__run_cmds(l, negio__take_posted(l, &signals));
    if (signals & LOOP_RESUME)
        negio__resume_accepting(l);
    if (signals & LOOP_SHUTDOWN)
        shutdown_conns(l);
    if (signals & LOOP_FORCE)
        force_conns(l);
#ifdef NEGIO_TEST_HOOKS
    if (signals & LOOP_CLOCK)
        negio__loop_move_clock(l);
#endif
    if (signals & LOOP_STOP)
        stop_loop(l);
}

void *negio__loop_main(void *arg)
{
    negio__loop *l = arg;
    uv_run(&l->uv, UV_RUN_DEFAULT);
    return NULL;
}

/* Closes the first N of L's own handles and L's libuv loop, on the calling thread (L's thread
 * has ended or never ran). */
void negio__loop_fini(negio__loop *l, int n)
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
    negio__free(l->relay_buf);
    pthread_mutex_destroy(&l->lock);
}

/* L's libuv loop and own handles; on failure nothing of them is left. */
int negio__loop_init(negio_engine *e, negio__loop *l, unsigned index)
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
        rc = uv_check_start(&l->flusher, on_check);
    if (rc != 0) {
        negio__loop_fini(l, n);
        return NEGIO_ERR_SYSTEM;
    }
    l->async.data = l;
    l->flusher.data = l;
    l->spin.data = l;
    uv_unref((uv_handle_t *)&l->flusher); /* the loop runs for its async handle alone */
    uv_unref((uv_handle_t *)&l->spin);
    return NEGIO_OK;
}
