/* The engine as a whole: negio_engine_new starts the loops and the step workers, undoing
 * exactly what it did when a step fails; negio_engine_shutdown closes every connection within
 * its deadlines; negio_engine_del stops the threads and frees everything. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "base/alloc.h"
#include "base/sized.h"
#include "engine/engine_internal.h"

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

/* Everything negio_engine_new sets up, counted as it goes so that engine_free undoes exactly
 * what was done. */
static int engine_init(negio_engine *e)
{
    int rc = sync_init(e);
    if (rc < 0)
        return rc;
    e->loops = negio__calloc(e->nloops, sizeof(negio__loop));
    e->workers = negio__calloc(e->o.workers, sizeof(pthread_t));
    if (e->loops == NULL || e->workers == NULL)
        return NEGIO_ERR_NOMEM;
    for (; e->loops_ready < e->nloops; e->loops_ready++) {
        if ((rc = negio__loop_init(e, &e->loops[e->loops_ready], e->loops_ready)) < 0)
            return rc;
    }
    for (; e->loops_running < e->nloops; e->loops_running++) {
        negio__loop *l = &e->loops[e->loops_running];
        if (negio__start_thread(&l->thread, negio__loop_main, l) != 0)
            return NEGIO_ERR_SYSTEM;
    }
    for (; e->nworkers < e->o.workers; e->nworkers++) {
        if (negio__start_thread(&e->workers[e->nworkers], negio__worker_main, e) != 0)
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
    negio__signal_all(e, LOOP_STOP);
    for (unsigned i = 0; i < e->loops_running; i++)
        pthread_join(e->loops[i].thread, NULL);
    for (unsigned i = 0; i < e->loops_ready; i++) {
        negio__loop *l = &e->loops[i];
        unsigned ignored;
        negio__run_cmds(l, negio__take_posted(l, &ignored)); /* what was posted after the stop */
        negio__loop_fini(l, 3);
    }
    while (e->listeners) {
        negio__listener *li = e->listeners;
        e->listeners = li->next;
        if (li->reserve >= 0)
            close(li->reserve);
        negio_config_del(li->cfg);
        pthread_mutex_destroy(&li->cfg_lock);
        negio__free(li->proxy_from);
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
_Static_assert(sizeof(negio_engine_options) == NEGIO__END(negio_engine_options, on_peer_closed),
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
        negio__signal_all(e, LOOP_SHUTDOWN);
    if (wait_drained(e, e->o.shutdown_timeout_ms))
        return NEGIO_OK;
    if (atomic_exchange(&e->forced, 1) == 0)
        negio__signal_all(e, LOOP_FORCE);
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
