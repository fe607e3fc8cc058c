/*
 * negio bench: clocks, CPU and memory of processes, key=value lines, and child processes that
 * talk to the parent through pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

volatile int bench_interrupted;

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

int64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long bench_rss_kb(pid_t pid)
{
    char path[64], line[256];
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* NEGIO_BENCH_PAGE_OFFSET=16 reproduces the aliased case (docs/PERFORMANCE.md). */
static size_t page_offset(void)
{
    const char *v = getenv("NEGIO_BENCH_PAGE_OFFSET");
    long off = v != NULL ? strtol(v, NULL, 10) : BENCH_PAGE_OFFSET;
    return off >= 16 && off < 4096 ? (size_t)off / 16 * 16 : BENCH_PAGE_OFFSET;
}

uint8_t *bench_payload(size_t size)
{
    size_t off = page_offset();
    uint8_t *block = aligned_alloc(4096, (size + off + 4095) / 4096 * 4096);
    if (block == NULL)
        return NULL;
    uint8_t *p = block + off;
    for (size_t i = 0; i < size; i++)
        p[i] = (uint8_t)(i * 131u + 7u);
    return p;
}

void bench_free_payload(uint8_t *p)
{
    if (p != NULL)
        free(p - page_offset());
}

/* ---- key=value ------------------------------------------------------------------------------ */

int bench_kv(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += klen) {
        if ((p != line && p[-1] != ' ') || p[klen] != '=')
            continue;
        const char *v = p + klen + 1;
        size_t n = strcspn(v, " \n");
        if (n >= cap)
            n = cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

double bench_kv_num(const char *line, const char *key, double def)
{
    char v[64], *end;
    if (!bench_kv(line, key, v, sizeof(v)))
        return def;
    double d = strtod(v, &end);
    return end == v ? def : d;
}

const char *bench_arg(int argc, char **argv, const char *key, const char *def)
{
    size_t klen = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, klen) == 0 && argv[i][klen] == '=')
            return argv[i] + klen + 1;
    return def;
}

double bench_arg_num(int argc, char **argv, const char *key, double def)
{
    const char *v = bench_arg(argc, argv, key, NULL);
    char *end;
    if (v == NULL)
        return def;
    double d = strtod(v, &end);
    return end == v ? def : d;
}

/* ---- children ------------------------------------------------------------------------------- */

int bench_spawn_argv(bench_child *ch, const char *const argv[])
{
    int in[2], out[2];
    memset(ch, 0, sizeof(*ch));
    ch->to = ch->from = -1;
    snprintf(ch->name, sizeof(ch->name), "%s", argv[0]);
    if (pipe2(in, O_CLOEXEC) < 0)
        return fprintf(stderr, "negio bench: pipe: %s\n", strerror(errno)), -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return fprintf(stderr, "negio bench: pipe: %s\n", strerror(errno)), -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "negio bench: fork: %s\n", strerror(errno));
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        /* a child must not outlive an interrupted or crashed bench */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        signal(SIGINT, SIG_IGN); /* the parent decides when children end */
        dup2(in[0], 0);
        dup2(out[1], 1);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "negio bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    ch->pid = pid;
    ch->to = in[1];
    ch->from = out[0];
    return 0;
}

int bench_spawn(bench_child *ch, const char *role, const char *const args[])
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "/proc/self/exe";
    argv[n++] = "bench";
    argv[n++] = "--child";
    argv[n++] = role;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int rc = bench_spawn_argv(ch, argv);
    snprintf(ch->name, sizeof(ch->name), "%s", role);
    return rc;
}

int bench_readline(bench_child *ch, char *line, size_t cap, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        char *nl = memchr(ch->buf, '\n', ch->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - ch->buf);
            size_t copy = n < cap - 1 ? n : cap - 1;
            memcpy(line, ch->buf, copy);
            line[copy] = '\0';
            memmove(ch->buf, nl + 1, ch->len - n - 1);
            ch->len -= n + 1;
            return 1;
        }
        if (ch->len == sizeof(ch->buf)) /* an overlong line: cut it */
            ch->buf[ch->len - 1] = '\n';
        if (ch->from < 0)
            return 0;
        if (bench_interrupted)
            return -1;
        int64_t left = (deadline - bench_now_ns()) / 1000000;
        if (left <= 0) {
            fprintf(stderr, "negio bench: %s (pid %ld) did not answer within %d s\n", ch->name,
                    (long)ch->pid, timeout_ms / 1000);
            return -1;
        }
        struct pollfd p = {ch->from, POLLIN, 0};
        int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc <= 0)
            continue;
        ssize_t r = read(ch->from, ch->buf + ch->len, sizeof(ch->buf) - ch->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(ch->from);
            ch->from = -1;
            if (ch->len > 0 && ch->len < sizeof(ch->buf))
                ch->buf[ch->len++] = '\n'; /* a last line without its newline */
            continue;
        }
        ch->len += (size_t)r;
    }
}

int bench_expect(bench_child *ch, const char *word, char *line, size_t cap, int timeout_ms)
{
    size_t wl = strlen(word);
    for (;;) {
        int rc = bench_readline(ch, line, cap, timeout_ms);
        if (rc <= 0) {
            if (rc == 0)
                fprintf(stderr, "negio bench: %s ended before reporting '%s'\n", ch->name, word);
            return -1;
        }
        if (strncmp(line, word, wl) == 0 && (line[wl] == ' ' || line[wl] == '\0'))
            return 1;
        if (strncmp(line, "error", 5) == 0) {
            fprintf(stderr, "negio bench: %s: %s\n", ch->name, line);
            return -1;
        }
    }
}

int bench_send(bench_child *ch, const char *line)
{
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(ch->to, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int reap(bench_child *ch, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int st;
        pid_t r = waitpid(ch->pid, &st, WNOHANG);
        if (r == ch->pid) {
            ch->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        if (r < 0) {
            ch->pid = 0;
            return -1;
        }
        if (bench_now_ns() > deadline)
            return -2;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void close_fds(bench_child *ch)
{
    if (ch->to >= 0)
        close(ch->to);
    if (ch->from >= 0)
        close(ch->from);
    ch->to = ch->from = -1;
}

int bench_finish(bench_child *ch, int timeout_ms)
{
    if (ch->pid <= 0) {
        close_fds(ch);
        return -1;
    }
    if (ch->to >= 0) {
        close(ch->to);
        ch->to = -1;
    }
    int rc = reap(ch, timeout_ms);
    if (rc == -2) {
        fprintf(stderr, "negio bench: %s (pid %ld) did not exit within %d ms: terminated\n",
                ch->name, (long)ch->pid, timeout_ms);
        kill(ch->pid, SIGTERM);
        if (reap(ch, 2000) == -2) {
            kill(ch->pid, SIGKILL);
            reap(ch, 5000);
        }
        rc = -1;
    }
    close_fds(ch);
    return rc;
}

void bench_kill(bench_child *ch)
{
    if (ch->pid > 0) {
        kill(ch->pid, SIGKILL);
        reap(ch, 5000);
    }
    close_fds(ch);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value at quantile P of the N sorted round trips V (ns), in microseconds. */
static double pct(const int64_t *v, long n, double p)
{
    if (n <= 0)
        return -1;
    long i = (long)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

void bench_print_latency(int64_t *rtt, long n)
{
    qsort(rtt, (size_t)n, sizeof(int64_t), cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)rtt[i];
    printf("latency n=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f\n", n,
           pct(rtt, n, 0.50), pct(rtt, n, 0.99), pct(rtt, n, 0.999),
           n ? (double)rtt[n - 1] / 1000.0 : -1, n ? sum / (double)n / 1000.0 : -1);
}
