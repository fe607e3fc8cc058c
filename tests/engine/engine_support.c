#include "engine/engine_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint32_t checksum_update(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sum = (sum ^ p[i]) * 16777619u; /* FNV-1a: order-sensitive */
    return sum;
}

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    recorder *r = user;
    rec_conn *rc = negio_econn_user(c);
    if (rc != NULL) {
        rc->authenticated = 1;
        rc->mech = info->mech;
        rc->server_authenticated = info->server_authenticated;
        rc->lifetime = info->lifetime;
    }
    pthread_mutex_lock(&r->lock);
    r->authenticated++;
    r->lifetime = info->lifetime;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return r->reject;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    recorder *r = user;
    rec_conn *rc = negio_econn_user(c);
    if (rc != NULL) {
        if (rc->nmsgs < 64)
            rc->levels[rc->nmsgs] = level;
        if (rc->nmsgs == 0)
            snprintf(rc->first, sizeof(rc->first), "%.*s", (int)(len < 63 ? len : 63),
                     (const char *)data);
        int t, seq;
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 31 ? len : 31), (const char *)data);
        if (sscanf(tmp, "t%d-%d", &t, &seq) == 2 && t >= 0 && t < 8) {
            if (seq != rc->last_seq[t] + 1)
                rc->order_errors++;
            rc->last_seq[t] = seq;
        }
        rc->nmsgs++;
        rc->bytes += len;
        rc->checksum = checksum_update(rc->checksum, data, len);
    }
    if (r->echo)
        negio_engine_send(r->e, c, data, len, level);
    pthread_mutex_lock(&r->lock);
    r->messages++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    recorder *r = user;
    rec_conn *rc = negio_econn_user(c);
    if (rc != NULL) {
        rc->reason = reason;
        rc->code = code;
        snprintf(rc->detail, sizeof(rc->detail), "%s", detail);
        __atomic_store_n(&rc->closed, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_lock(&r->lock);
    r->closed++;
    if (reason > 0 && reason < (int)(sizeof(r->closed_by_reason) / sizeof(r->closed_by_reason[0])))
        r->closed_by_reason[reason]++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void on_backpressure(negio_econn *c, int above, void *user)
{
    recorder *r = user;
    (void)c;
    if (above) {
        pthread_mutex_lock(&r->lock);
        r->backpressure++;
        pthread_mutex_unlock(&r->lock);
    }
}

static void on_write_failed(negio_econn *c, int code, const uint8_t *data, size_t len,
                            negio_level level, void *user)
{
    recorder *r = user;
    rec_conn *rc = negio_econn_user(c);
    (void)data;
    (void)level;
    if (rc != NULL) {
        rc->write_failed++;
        rc->write_failed_code = code;
        rc->write_failed_len = len;
    }
    pthread_mutex_lock(&r->lock);
    r->write_failures++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void recorder_start(recorder *r, negio_engine_options *o, int report_write_failures)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    o->callbacks.on_authenticated = on_authenticated;
    o->callbacks.on_message = on_message;
    o->callbacks.on_closed = on_closed;
    o->callbacks.on_backpressure = on_backpressure;
    o->callbacks.on_write_failed = report_write_failures ? on_write_failed : NULL;
    o->user = r;
    if (engine_new_watched(&r->e, o, &r->threads) != NEGIO_OK)
        abort();
}

void recorder_init(recorder *r, negio_engine_options *o)
{
    recorder_start(r, o, 1);
}

void recorder_init_without_write_failures(recorder *r, negio_engine_options *o)
{
    recorder_start(r, o, 0);
}

void recorder_free(recorder *r)
{
    negio_engine_del(r->e);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

int recorder_get(recorder *r, const int *field)
{
    pthread_mutex_lock(&r->lock);
    int v = *field;
    pthread_mutex_unlock(&r->lock);
    return v;
}

int proc_entries(const char *dir, int *ids, int cap)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (ids != NULL && n < cap)
            ids[n] = atoi(de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

int recorder_wait(recorder *r, const int *field, int n, int ms)
{
    struct timespec ts = test_deadline_after_ms(ms);
    pthread_mutex_lock(&r->lock);
    while (*field < n) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
            break;
    }
    int v = *field;
    pthread_mutex_unlock(&r->lock);
    return v;
}

int engine_new_watched(negio_engine **e, const negio_engine_options *o, engine_thread_ids *t)
{
    int before[256], after[256];
    int nb = proc_entries("/proc/self/task", before, 256);
    int rc = negio_engine_new(e, o);
    int na = proc_entries("/proc/self/task", after, 256);
    t->n = 0;
    for (int i = 0; i < na && i < 256; i++) {
        int seen = 0;
        for (int j = 0; j < nb && j < 256 && !seen; j++)
            seen = after[i] == before[j];
        if (!seen && t->n < (int)(sizeof(t->ids) / sizeof(t->ids[0])))
            t->ids[t->n++] = after[i];
    }
    return rc;
}

/* Whether thread TID is blocked in a wait for work: its system call (the first number of
 * /proc/self/task/TID/syscall; "running" when it is not blocked) is futex or epoll_*wait. */
static int thread_waits(int tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1; /* gone: it waits for nothing */
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long nr = strtol(buf, &end, 10);
    if (end == buf)
        return 0;
    return nr == SYS_futex || nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
           || nr == SYS_epoll_pwait2
#endif
        ;
}

int engine_threads_idle(const engine_thread_ids *t)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < t->n; i++) {
            if (!thread_waits(t->ids[i]))
                return 0;
        }
    }
    return 1;
}
