/* Preloaded into the soak run's server (tests/soak/soak.c, ASan builds only): a thread that
 * writes, every 100 ms, the bytes the process has allocated and not freed (ASan's allocator
 * statistics: live blocks, leaked ones included, quarantined ones not) to the file named by
 * SOAK_HEAP_FILE, as one fixed-width line at offset 0. Unlike the RSS, which ASan's allocator keeps
 * at its high-water mark, this falls back when memory is freed, so the soak can tell whether the
 * heap returns to its baseline. The file stays open (one descriptor, from start to end). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* the sanitizer runtime's allocator statistics (compiler-rt's sanitizer/allocator_interface.h,
 * which gcc does not install) */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t __sanitizer_get_heap_size(void);

static int fd = -1;

static void *probe(void *arg)
{
    (void)arg;
    for (;;) {
        char line[64];
        int n = snprintf(line, sizeof(line), "%20zu %20zu\n",
                         __sanitizer_get_current_allocated_bytes(), __sanitizer_get_heap_size());
        if (n > 0)
            (void)!pwrite(fd, line, (size_t)n, 0);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void)
{
    const char *path = getenv("SOAK_HEAP_FILE");
    pthread_t t;
    if (path == NULL || (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return;
    /* the thread takes no signal: the server waits for SIGTERM with sigwait(), which only works
     * while every thread blocks it */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, probe, NULL) != 0) {
        close(fd);
        fd = -1;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
