/* Test support: time. Monotonic milliseconds for deadlines and measurements, the absolute
 * CLOCK_REALTIME deadline pthread_cond_timedwait wants, a bounded poll of a condition that no
 * condition variable announces, and a sleep for the few places where the passing of time is
 * itself the behaviour under test (a slow reader, a trickling peer, a measured interval).
 *
 * A wait for something to happen is a wait on what shows it (a counter under its lock, a file, a
 * socket's state in /proc/net/tcp: tests/support/net.h), never a sleep of a guessed length.
 *
 * Header-only (static inline), so that every target that includes it links as it is: the tests,
 * which compile every file of tests/support, and the TLS support library, the fuzz targets and the
 * soak program, which compile only part of it. */
#ifndef NEGIO_TEST_CLOCK_H
#define NEGIO_TEST_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC in microseconds. */
static inline int64_t test_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds until DEADLINE (test_now_ms() time), 0 once it has passed. */
static inline int test_ms_left(int64_t deadline)
{
    int64_t left = deadline - test_now_ms();
    return left < 0 ? 0 : (int)left;
}

/* Sleeps MS milliseconds, through signals. Only where time passing is what is tested; every
 * caller says why. */
static inline void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The CLOCK_REALTIME time MS milliseconds from now, for pthread_cond_timedwait. */
static inline struct timespec test_deadline_after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Evaluates COND every STEP milliseconds until it holds or MS milliseconds have passed: a wait
 * on state that nothing signals (an engine's connection count, the kernel's socket tables,
 * another process's counters). The caller asserts COND afterwards, so that a timeout fails with
 * what it saw. */
#define TEST_POLL_EVERY(cond, ms, step)                                                            \
    do {                                                                                           \
        int64_t test_poll_until_ = test_now_ms() + (ms);                                           \
        while (!(cond) && test_now_ms() < test_poll_until_)                                        \
            test_sleep_ms(step);                                                                   \
    } while (0)
/* The same every millisecond. */
#define TEST_POLL_UNTIL(cond, ms) TEST_POLL_EVERY(cond, ms, 1)

#endif
