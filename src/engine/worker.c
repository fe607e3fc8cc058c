/* Threads: every thread the engine starts blocks SIGPIPE; and the step workers, which run the
 * handshake steps that may block (a KDC that does not answer) off the loops. */
#include <pthread.h>
#include <signal.h>

#include "engine/engine_internal.h"

/* Starts a thread with SIGPIPE blocked in it (and in the threads it starts, such as libuv's
 * resolver pool). libuv writes to sockets with write()/writev(), which raise SIGPIPE when the
 * peer has reset the connection; blocked, the signal stays pending on that thread, never
 * delivered, and the write fails with EPIPE as it should. The process's own disposition of
 * SIGPIPE is the application's and is left alone. (Never with UV_LOOP_BLOCK_SIGPROF, whose
 * epoll_pwait mask would unblock it while the loop waits.) */
int negio__start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
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

void *negio__worker_main(void *arg)
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
        negio__cmd *done = e->jhead;
        e->jhead = done->next;
        if (e->jhead == NULL)
            e->jtail = NULL;
        pthread_mutex_unlock(&e->wlock);
        negio_econn *c = done->conn;
        /* the loop leaves the connector alone until CMD_STEP_DONE */
        (void)negio_conn_step(c->conn);
        negio__post(c->l, done);
    }
}

/* The job is the step's completion itself, so that nothing the worker does can fail: the loop
 * waits for that command, and leaves the connector to the worker until it arrives. */
int negio__submit_step(negio_econn *c)
{
    negio__cmd *done = negio__new_cmd(CMD_STEP_DONE, c, 0);
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
