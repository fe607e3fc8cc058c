/* Preloaded (LD_PRELOAD) into the tests that scripts/valgrind.sh runs, never into anything else.
 *
 * 1. valgrind 3.19 does not treat fcntl(F_OFD_SETLKW) as a system call that may block: a thread
 *    that waits there keeps valgrind's scheduler lock, so the thread holding the file lock never
 *    runs again and the process hangs (a two-thread program that takes the same OFD lock from two
 *    descriptors reproduces it). MIT krb5 1.20 locks credential caches and the replay cache with
 *    open-file-description locks, so a multi-threaded Kerberos program that shares a FILE ccache
 *    between threads (the engine's step workers) hangs under valgrind. Here each F_OFD_SETLKW
 *    becomes F_OFD_SETLK retried every millisecond, which valgrind handles; who waits for whom
 *    is unchanged.
 * 2. NEGIO_TEST_SKIP=PATTERN skips the cmocka tests whose names match (cmocka_set_skip_filter,
 *    applied before main() runs), for the few tests that cannot run under valgrind; the script
 *    lists them with the reason. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

typedef int (*fcntl_fn)(int, int, ...);
typedef void (*filter_fn)(const char *);

int fcntl(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...);

static int call(const char *name, int fd, int cmd, void *arg)
{
    fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, name);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (cmd != F_OFD_SETLKW)
        return real(fd, cmd, arg);
    for (;;) {
        int rc = real(fd, F_OFD_SETLK, arg);
        if (rc == 0 || (errno != EAGAIN && errno != EACCES))
            return rc;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return call("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return call("fcntl64", fd, cmd, arg);
}

__attribute__((constructor)) static void skip_tests(void)
{
    const char *pattern = getenv("NEGIO_TEST_SKIP");
    filter_fn set = (filter_fn)dlsym(RTLD_DEFAULT, "cmocka_set_skip_filter");
    if (pattern != NULL && pattern[0] != '\0' && set != NULL)
        set(pattern);
}
