/* Engine test support: an echo server and a recording client, both on real loopback sockets. */
#ifndef NEGIO_TEST_ENGINE_SUPPORT_H
#define NEGIO_TEST_ENGINE_SUPPORT_H

#include <pthread.h>
#include <time.h>

#include "negio/engine.h"
#include "support/clock.h"
#include "support/support.h"

/* Whether the test runs under valgrind (scripts/valgrind.sh), which is 20 to 50 times slower and
 * keeps memory of its own. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

#define REC_MAX_MSGS 4096

/* The threads an engine started (its loops and step workers): the entries of /proc/self/task that
 * appeared while negio_engine_new ran. */
typedef struct engine_thread_ids {
    int ids[64];
    int n;
} engine_thread_ids;

/* negio_engine_new, noting in *T the threads it started. */
int engine_new_watched(negio_engine **e, const negio_engine_options *o, engine_thread_ids *t);
/* Whether every thread in T is blocked waiting for work, as the kernel shows it
 * (/proc/self/task/ID/syscall): a step worker in futex (waiting for a job), a loop in epoll
 * (waiting for an event). Read twice over, so that a loop seen waiting in the second pass has
 * run whatever a worker seen idle in the first pass had posted to it: once it holds, no job holds
 * a connection any more. */
int engine_threads_idle(const engine_thread_ids *t);

/* What one client connection saw. */
typedef struct rec_conn {
    int authenticated;
    negio_mech mech;
    int server_authenticated;
    int closed;
    negio_close_reason reason;
    int code;
    char detail[512];
    int nmsgs;
    size_t bytes;
    uint32_t checksum; /* over every received byte, in order */
    negio_level levels[64];
    char first[64];
    int last_seq[8];   /* messages "t<thread>-<seq>": the last seq seen per thread */
    int order_errors;  /* a seq that did not follow the previous one of its thread */
    uint32_t lifetime; /* negio_auth_info.lifetime */
    int write_failed;  /* on_write_failed calls, and the last one's code and length */
    int write_failed_code;
    size_t write_failed_len;
} rec_conn;

/* A recording engine: counts events across all its connections (thread-safe). */
typedef struct recorder {
    negio_engine *e;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int authenticated;
    int messages;
    int closed;
    int closed_by_reason[8];   /* by negio_close_reason */
    int echo;                  /* send each message back at its level */
    int reject;                /* on_authenticated returns this */
    int backpressure;          /* on_backpressure(1) calls */
    int write_failures;        /* on_write_failed calls */
    uint32_t lifetime;         /* negio_auth_info.lifetime of the last connection authenticated */
    engine_thread_ids threads; /* the engine's */
} recorder;

/* Sets O's callbacks (on_write_failed included) and creates R's engine with O. */
void recorder_init(recorder *r, negio_engine_options *o);
/* The same without on_write_failed: a write the peer's policy refuses late ends the connection. */
void recorder_init_without_write_failures(recorder *r, negio_engine_options *o);
void recorder_free(recorder *r);
/* Waits until FIELD (a counter in R) reaches N or MS pass; returns the counter. */
int recorder_wait(recorder *r, const int *field, int n, int ms);
/* FIELD (a counter in R), read under R's lock. */
int recorder_get(recorder *r, const int *field);

/* The numeric entries of DIR ("/proc/self/fd", "/proc/self/task"): the first CAP into IDS (if
 * not NULL). Returns how many there are. */
int proc_entries(const char *dir, int *ids, int cap);

uint32_t checksum_update(uint32_t sum, const uint8_t *p, size_t n);

#endif
