/*
 * negio bench: measures negio against its limits, side by side, in one run on one machine
 * (docs/PERFORMANCE.md). The parent process measures the in-process limits itself and starts
 * every networked party as a separate process (bench.h). A throwaway realm is used: the one in
 * the environment ('. DIR/env'), the one in --realm-dir, or one started for the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "bench_report.h"
#include "opt.h"

#ifndef NEGIO_VERSION
#define NEGIO_VERSION "unknown"
#endif

static const size_t quick_sizes[] = {64, 1024, 16384, 65536, 1048576};
static const size_t full_sizes[] = {64, 256, 1024, 4096, 16384, 65536, 262144, 1048576};

enum {
    S_GSS = 1 << 0,
    S_E2E = 1 << 1,
    S_TCP = 1 << 2,
    S_TLS = 1 << 3,
    S_HS = 1 << 4,
    S_CONNS = 1 << 5,
    S_LAT = 1 << 6,
    S_ALL = 0x7f,
    S_TUNNEL = 1 << 7, /* not in S_ALL: needs redis and stunnel, and has its own report */
};

static struct {
    int progress;
    int failures;
    int step, steps;
} run;

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    if (!run.progress)
        return;
    va_list ap;
    fprintf(stderr, "negio bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failure(const char *fmt, ...)
{
    va_list ap;
    run.failures++;
    fprintf(stderr, "negio bench: FAILED: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void on_signal(int sig)
{
    (void)sig;
    bench_interrupted = 1;
}

/* ---- the realm ----------------------------------------------------------------------------- */

static struct {
    char dir[PATH_MAX];
    int started;   /* by us: stop it at the end */
    int temporary; /* and remove its directory */
} realm;

/* Sets every "export NAME=VALUE" of DIR/env (VALUE bare or single-quoted, as realm.c writes). */
static int load_env(const char *dir)
{
    char path[PATH_MAX + 8], line[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return fprintf(stderr, "negio bench: cannot read %s: %s\n", path, strerror(errno)), -1;
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "export ", 7) != 0)
            continue;
        char *name = line + 7, *eq = strchr(name, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *v = eq + 1, value[PATH_MAX + 64];
        size_t o = 0;
        int quoted = 0;
        for (; *v && *v != '\n' && o + 1 < sizeof(value); v++) {
            if (*v == '\'') {
                if (quoted && strncmp(v, "'\\''", 4) == 0) {
                    value[o++] = '\'';
                    v += 3;
                    continue;
                }
                quoted = !quoted;
                continue;
            }
            value[o++] = *v;
        }
        value[o] = '\0';
        setenv(name, value, 1);
        n++;
    }
    fclose(f);
    return n > 0 ? 0 : (fprintf(stderr, "negio bench: %s sets nothing\n", path), -1);
}

static int kdc_alive(const char *dir)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/kdc.pid", dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f == NULL)
        return 0;
    int got = fscanf(f, "%ld", &pid);
    fclose(f);
    return got == 1 && pid > 1 && kill((pid_t)pid, 0) == 0;
}

static long kdc_pid(void)
{
    const char *dir = getenv("NEGIO_REALM_DIR");
    char path[PATH_MAX + 16];
    long pid = 0;
    if (dir == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/kdc.pid", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* CPU seconds used so far by process PID (from /proc/PID/stat), or 0. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, stt = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return 0;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static int run_realm_cmd(const char *verb, const char *dir)
{
    const char *argv[] = {"/proc/self/exe", "realm", verb, dir, NULL};
    bench_child ch;
    if (bench_spawn_argv(&ch, argv) < 0)
        return -1;
    snprintf(ch.name, sizeof(ch.name), "negio realm %s", verb);
    char line[1024];
    while (bench_readline(&ch, line, sizeof(line), 60000) > 0)
        progress("%s", line);
    return bench_finish(&ch, 30000) == 0 ? 0 : -1;
}

static int realm_setup(const char *opt_dir)
{
    if (opt_dir == NULL && getenv("NEGIO_REALM_DIR") != NULL && getenv("KRB5_CONFIG") != NULL) {
        snprintf(realm.dir, sizeof(realm.dir), "%s", getenv("NEGIO_REALM_DIR"));
        if (!kdc_alive(realm.dir))
            return fprintf(stderr,
                           "negio bench: the realm of the environment (%s) has no running KDC\n",
                           realm.dir),
                   -1;
        progress("using the realm of the environment in %s", realm.dir);
        return 0;
    }
    if (opt_dir != NULL) {
        if (mkdir(opt_dir, 0700) < 0 && errno != EEXIST)
            return fprintf(stderr, "negio bench: mkdir %s: %s\n", opt_dir, strerror(errno)), -1;
        if (realpath(opt_dir, realm.dir) == NULL)
            return fprintf(stderr, "negio bench: %s: %s\n", opt_dir, strerror(errno)), -1;
        char env[PATH_MAX + 8];
        snprintf(env, sizeof(env), "%s/env", realm.dir);
        if (access(env, R_OK) == 0 && kdc_alive(realm.dir)) {
            progress("using the realm in %s", realm.dir);
            return load_env(realm.dir);
        }
    } else {
        snprintf(realm.dir, sizeof(realm.dir), "/tmp/negio-bench-XXXXXX");
        if (mkdtemp(realm.dir) == NULL)
            return fprintf(stderr, "negio bench: mkdtemp: %s\n", strerror(errno)), -1;
        realm.temporary = 1;
    }
    progress("starting a throwaway realm in %s", realm.dir);
    if (run_realm_cmd("start", realm.dir) < 0)
        return fprintf(stderr, "negio bench: could not start a realm in %s\n", realm.dir), -1;
    realm.started = 1;
    return load_env(realm.dir);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void realm_teardown(void)
{
    if (realm.started) {
        int saved = bench_interrupted;
        bench_interrupted = 0; /* stop the KDC even after ^C */
        run_realm_cmd("stop", realm.dir);
        bench_interrupted = saved;
    }
    if (realm.temporary)
        nftw(realm.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- machine ------------------------------------------------------------------------------- */

/* Busy share of all CPUs over MS milliseconds, from /proc/stat (the bench itself is idle while
 * it samples): other people's work on a shared machine inflates every CPU figure. */
static double machine_busy(int ms)
{
    unsigned long long v[2][8];
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen("/proc/stat", "r");
        memset(v[k], 0, sizeof(v[k]));
        if (f == NULL ||
            fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[k][0], &v[k][1], &v[k][2],
                   &v[k][3], &v[k][4], &v[k][5], &v[k][6], &v[k][7]) != 8) {
            if (f != NULL)
                fclose(f);
            return NAN;
        }
        fclose(f);
        if (k == 0) {
            struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_interrupted)
                ;
        }
    }
    unsigned long long total = 0, idle = (v[1][3] - v[0][3]) + (v[1][4] - v[0][4]);
    for (int i = 0; i < 8; i++)
        total += v[1][i] - v[0][i];
    return total ? 100.0 * (double)(total - idle) / (double)total : NAN;
}

/* CPU time spent so far by the whole machine (busy and total, seconds over all CPUs) and by the
 * bench itself with every child it has reaped. */
typedef struct cpu_snap {
    double busy_s, total_s, ours_s, irq_s; /* busy: user + system; irq: irq, softirq, steal */
} cpu_snap;

static int cpu_snapshot(cpu_snap *c)
{
    unsigned long long v[8];
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                            &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) {
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    double tick = (double)sysconf(_SC_CLK_TCK), total = 0;
    for (int i = 0; i < 8; i++)
        total += (double)v[i];
    c->total_s = total / tick;
    /* interrupt and softirq time is in no process's rusage: on loopback most of it is the
     * bench's own traffic, so it is reported apart from other processes' work */
    c->busy_s = ((double)v[0] + (double)v[1] + (double)v[2]) / tick;
    c->irq_s = ((double)v[5] + (double)v[6] + (double)v[7]) / tick;
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    c->ours_s = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                         kids.ru_stime.tv_sec) +
                (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                         kids.ru_stime.tv_usec) /
                    1e6;
    return 0;
}

static void describe_machine(b_results *r)
{
    char model[160] = "unknown CPU", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *c = strchr(line, ':');
            if (c != NULL) {
                snprintf(model, sizeof(model), "%s", c + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    long mem_kb = 0;
    f = fopen("/proc/meminfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    struct utsname u;
    uname(&u);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    snprintf(r->machine, sizeof(r->machine),
             "%s, %ld CPUs, %.1f GiB RAM, Linux %s; negio %s, libuv %s; descriptors: %ld soft / "
             "%ld hard",
             model, sysconf(_SC_NPROCESSORS_ONLN), (double)mem_kb / 1048576.0, u.release,
             NEGIO_VERSION, uv_version_string(), (long)rl.rlim_cur, (long)rl.rlim_max);
    const char *rt = getenv("KRB5RCACHETYPE"), *rd = getenv("KRB5RCACHEDIR");
    r->rcache_on = rt == NULL || strcmp(rt, "none") != 0;
    snprintf(r->rcache, sizeof(r->rcache), "%s (KRB5RCACHETYPE=%s, KRB5RCACHEDIR=%s)",
             r->rcache_on ? "on" : "OFF", rt ? rt : "unset: the default file2 cache",
             rd ? rd : "unset");
    snprintf(r->realm, sizeof(r->realm), "%.64s in %.380s (KDC pid %ld)%s",
             getenv("NEGIO_REALM") ? getenv("NEGIO_REALM") : "?", realm.dir, kdc_pid(),
             realm.started ? ", started for this run" : "");
    time_t now = time(NULL);
    strftime(r->when, sizeof(r->when), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
}

/* ---- helpers for children ------------------------------------------------------------------- */

static void join_sizes(const b_results *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->nsizes && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%zu", i ? "," : "", r->sizes[i]);
}

static int level_index(const char *name)
{
    negio_level l;
    return negio_level_parse(name, &l) == 0 ? (int)l : -1;
}

#define MAX_REPEAT 9

/* The measurements of one sweep of points, before each cell keeps its median. */
typedef struct samples {
    b_tp s[3][B_MAX_SIZES][MAX_REPEAT];
    int n[3][B_MAX_SIZES];
} samples;

static void keep_medians(const b_results *r, const samples *sm, b_tp table[3][B_MAX_SIZES])
{
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < r->nsizes; i++)
            if (sm->n[l][i] > 0)
                b_tp_median(sm->s[l][i], sm->n[l][i], &table[l][i]);
}

/* Parses a "point ..." line of a stream child into the next free sample of its cell. */
static b_tp *store_point(b_results *r, samples *sm, const char *line, int *level_out,
                         size_t *size_out)
{
    char level[16];
    if (!bench_kv(line, "level", level, sizeof(level)))
        return NULL;
    size_t size = (size_t)bench_kv_num(line, "size", 0);
    int si = b_size_index(r, size);
    int li = strcmp(level, "tcp") == 0 ? 0 : level_index(level);
    if (si < 0 || li < 0 || sm->n[li][si] >= MAX_REPEAT)
        return NULL;
    b_tp *t = &sm->s[li][si][sm->n[li][si]++];
    t->msgs = bench_kv_num(line, "msgs", 0);
    t->bytes = bench_kv_num(line, "bytes", 0);
    t->wall_s = bench_kv_num(line, "wall_ns", 0) / 1e9;
    t->client_cpu_s = bench_kv_num(line, "client_cpu_us", 0) / 1e6;
    t->server_cpu_s = bench_kv_num(line, "server_cpu_us", 0) / 1e6;
    t->cpu_s = t->client_cpu_s + t->server_cpu_s;
    double server_msgs = bench_kv_num(line, "server_msgs", -1);
    t->ok = t->msgs > 0 && t->wall_s > 0 && server_msgs == t->msgs;
    t->reps = 1;
    t->cpu_gb_min = t->cpu_gb_max = b_cpu_per_gb(t);
    if (!t->ok)
        failure("%s: the server counted %.0f messages, the client sent %.0f", line, server_msgs,
                t->msgs);
    *level_out = li;
    *size_out = size;
    return t;
}

/* A negio server child; FAST 0 switches the Kerberos fast path off (issue 18: MIT's path). */
static int start_server(bench_child *srv, const char *max, int fast, uint16_t *port)
{
    char line[256], maxarg[48]; /* "max=" and a number of up to 31 digits */
    snprintf(maxarg, sizeof(maxarg), "max=%s", max);
    const char *args[] = {maxarg, fast ? NULL : "fast=0", NULL};
    if (bench_spawn(srv, "server", args) < 0)
        return -1;
    if (bench_expect(srv, "port", line, sizeof(line), 30000) < 0) {
        bench_kill(srv);
        return -1;
    }
    *port = (uint16_t)bench_kv_num(line, "port", 0);
    return *port ? 0 : -1;
}

/* The server's counters ("stats" line). */
static int server_stats(bench_child *srv, char *line, size_t cap)
{
    if (bench_send(srv, "stats\n") < 0)
        return -1;
    return bench_expect(srv, "stats", line, cap, 30000) < 0 ? -1 : 0;
}

/* ---- sections ------------------------------------------------------------------------------- */

/* Every throughput measurement of the run, by cell, until each cell keeps its median. Sweeps of
 * the limit and of the measured path alternate, so that load on a shared machine that comes and
 * goes does not fall on one side of a ratio only. */
static struct {
    samples gss[B_MECHS], e2e[B_MECHS], tcp;
    samples ossl, mit; /* issue 18: the fast path's OpenSSL limit, and kerberos on MIT's path */
} all;

/* One in-process measurement (one thread: its throughput is per CPU second) into the next free
 * sample of its cell. */
static void store_inprocess(b_results *r, samples *sm, int level, size_t i,
                            const bench_gss_result *g, const char *name)
{
    char sz[32];
    b_tp *t = &sm->s[level][i][sm->n[level][i]++];
    t->ok = 1;
    t->reps = 1;
    t->bytes = g->bytes;
    t->msgs = g->msgs;
    t->cpu_s = t->client_cpu_s = g->cpu_s;
    t->wall_s = g->cpu_s;
    t->cpu_gb_min = t->cpu_gb_max = b_cpu_per_gb(t);
    progress("[gss] %-8s %s %7s: %8.1f MB/s, %7.2f CPU s/GB", name,
             negio_level_name((negio_level)level), b_size_name(r->sizes[i], sz, sizeof(sz)),
             b_mb_s(t), b_cpu_per_gb(t));
}

/* Whether the library engages the Kerberos fast path in this run: on unless the operator's
 * switch is in the environment (the words src/gss/fastpath.c takes for "off"). */
static int fast_path_on(void)
{
    const char *v = getenv("NEGIO_KRB5_FAST_PATH");
    return v == NULL || !(strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
                          strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0);
}

/* The fast path's limit: OpenSSL alone on the bytes of the Kerberos pair's tokens (enctype E). */
static void sweep_ossl(b_results *r, int enctype)
{
    for (int level = NEGIO_LEVEL_SIGN; level <= NEGIO_LEVEL_SEAL; level++) {
        for (size_t i = 0; i < r->nsizes && !bench_interrupted; i++) {
            bench_gss_result g;
            char err[512];
            if (all.ossl.n[level][i] >= MAX_REPEAT)
                continue;
            if (bench_ossl_loop(enctype, (negio_level)level, r->sizes[i],
                                r->seconds * (r->full ? 0.5 : 0.4), &g, err, sizeof(err)) < 0) {
                failure("in-process OpenSSL %s: %s", negio_level_name((negio_level)level), err);
                return;
            }
            store_inprocess(r, &all.ossl, level, i, &g, "openssl");
        }
    }
    r->ossl_enctype = enctype;
    r->have_ossl = 1;
}

static void sweep_gss(b_results *r, int sweep)
{
    for (int m = 0; m < B_MECHS && !bench_interrupted; m++) {
        char err[512];
        bench_gss_pair *p = bench_gss_pair_new(b_mech_names[m], err, sizeof(err));
        if (p == NULL) {
            failure("in-process %s contexts: %s", b_mech_names[m], err);
            continue;
        }
        if (sweep == 0) {
            bench_gss_pair_key(p, r->key[m], sizeof(r->key[m]));
            if (m == 1)
                snprintf(r->key[m], sizeof(r->key[m]),
                         "NTLMv2 session security (RC4 seal, HMAC-MD5 signature)");
        }
        int enctype = m == 0 ? bench_gss_pair_enctype(p) : -1;
        for (int level = NEGIO_LEVEL_SIGN; level <= NEGIO_LEVEL_SEAL; level++) {
            for (size_t i = 0; i < r->nsizes && !bench_interrupted; i++) {
                bench_gss_result g;
                samples *sm = &all.gss[m];
                if (sm->n[level][i] >= MAX_REPEAT)
                    continue;
                if (bench_gss_loop(p, (negio_level)level, r->sizes[i],
                                   r->seconds * (r->full ? 0.5 : 0.4), &g, err, sizeof(err)) < 0) {
                    failure("in-process %s %s: %s", b_mech_names[m],
                            negio_level_name((negio_level)level), err);
                    break;
                }
                store_inprocess(r, sm, level, i, &g, b_mech_names[m]);
            }
        }
        bench_gss_pair_del(p);
        if (enctype > 0 && !bench_interrupted)
            sweep_ossl(r, enctype);
    }
    r->have_gss = 1;
}

static void section_hs_inprocess(b_results *r)
{
    static const char *kinds[B_HS_KINDS] = {"GSS init+accept, credentials once",
                                            "GSS init+accept, credentials each time",
                                            "negio connectors in memory"};
    for (int p = 0; p < B_PATHS && !bench_interrupted; p++) {
        for (int k = 0; k < B_HS_KINDS && !bench_interrupted; k++) {
            bench_gss_result g;
            char err[512];
            b_hs *h = &r->hs_in[p][k];
            if (bench_handshake_inprocess(b_path_names[p], k, r->full ? 2.0 : 0.5, &g, err,
                                          sizeof(err)) < 0) {
                failure("in-process handshakes %s (%s): %s", b_path_names[p], kinds[k], err);
                snprintf(h->error, sizeof(h->error), "%.199s", err);
                continue;
            }
            h->ok = 1;
            h->count = g.msgs;
            h->wall_s = g.wall_s;
            h->cpu_s = h->client_cpu_s = g.cpu_s;
            h->parallel = 1;
            progress("[handshake] in process, %s, %s: %.0f/s per CPU second", b_path_names[p],
                     kinds[k], b_hs_per_cpu(h));
        }
    }
}

/* Runs one streaming client (the bench child ROLE with ARGS) to its end and stores its points in
 * SM. TAG and NAME label the progress lines and failures; SESSION (CAP bytes), when given, gets
 * the TLS version and cipher the client reports. */
static void run_stream(b_results *r, const char *role, const char *const args[], const char *tag,
                       const char *name, samples *sm, char *session, size_t cap)
{
    char line[512];
    bench_child ch;
    if (bench_spawn(&ch, role, args) < 0) {
        failure("could not start the %s client", name);
        return;
    }
    int timeout = (int)(r->seconds * 1000) * 4 + 60000, rc;
    while ((rc = bench_readline(&ch, line, sizeof(line), timeout)) > 0) {
        if (session != NULL && strncmp(line, "authenticated ", 14) == 0) {
            char v[48], c[64];
            if (bench_kv(line, "tls", v, sizeof(v)) && bench_kv(line, "cipher", c, sizeof(c)))
                snprintf(session, cap, "%.40s %.50s", v, c);
        } else if (strncmp(line, "point ", 6) == 0) {
            int li;
            size_t size;
            char sz[32];
            b_tp *t = store_point(r, sm, line, &li, &size);
            if (t != NULL)
                progress("[%s] %-13s %-4s %7s: %8.1f MB/s, %9.0f msg/s, %7.2f CPU s/GB", tag, name,
                         negio_level_name((negio_level)li), b_size_name(size, sz, sizeof(sz)),
                         b_mb_s(t), b_msgs_s(t), b_cpu_per_gb(t));
        } else if (strncmp(line, "error", 5) == 0) {
            failure("%s end to end: %s", name, line);
        } else if (strcmp(line, "done") == 0) {
            break;
        }
    }
    if (rc <= 0)
        failure("%s end to end: the client stopped early", name);
    bench_finish(&ch, 30000);
}

static void sweep_e2e(b_results *r, uint16_t port, uint16_t port_mit)
{
    char sizes[256], secs[32], portarg[32], sizesarg[300];
    join_sizes(r, sizes, sizeof(sizes));
    snprintf(sizesarg, sizeof(sizesarg), "sizes=%s", sizes);
    snprintf(secs, sizeof(secs), "seconds=%.3f", r->seconds);
    snprintf(portarg, sizeof(portarg), "port=%u", (unsigned)port);
    for (int m = 0; m < B_MECHS && !bench_interrupted; m++) {
        char patharg[64];
        snprintf(patharg, sizeof(patharg), "path=%s", b_mech_names[m]);
        const char *args[] = {patharg, portarg, "levels=0,1,2", sizesarg, secs, NULL};
        run_stream(r, "stream", args, "e2e", b_mech_names[m], &all.e2e[m], NULL, 0);
    }
    r->have_e2e = 1;
    /* issue 18: the same Kerberos transfers with the fast path off on both sides */
    if (port_mit != 0 && !bench_interrupted) {
        snprintf(portarg, sizeof(portarg), "port=%u", (unsigned)port_mit);
        const char *args[] = {"path=kerberos-mit", portarg, "levels=1,2", sizesarg, secs, NULL};
        run_stream(r, "stream", args, "e2e", "kerberos-mit", &all.mit, NULL, 0);
        r->have_mit = 1;
    }
}

/* ---- section 4: TLS ---------------------------------------------------------------------------
 * One server process per transport: plain TLS with a certificate made for the run (the client
 * trusts it as its own CA, through NEGIO_BENCH_TLS_CA), and tls-negotiate certificate-free. */

static struct {
    char dir[64]; /* the certificate's directory, removed at the end */
    char cert[128], key[128];
    bench_child srv[B_TLS_PATHS];
    uint16_t port[B_TLS_PATHS];
    int up[B_TLS_PATHS];
    samples sm[B_TLS_PATHS];
} tls;

static int tls_setup(void)
{
    char err[512];
    snprintf(tls.dir, sizeof(tls.dir), "/tmp/negio-bench-tls-XXXXXX");
    if (mkdtemp(tls.dir) == NULL) {
        tls.dir[0] = '\0';
        failure("[tls] mkdtemp: %s", strerror(errno));
        return -1;
    }
    if (bench_tls_cert(tls.dir, tls.cert, tls.key, sizeof(tls.cert), err, sizeof(err)) < 0) {
        failure("[tls] the certificate: %s", err);
        return -1;
    }
    setenv("NEGIO_BENCH_TLS_CA", tls.cert, 1); /* for the clients, started later */
    char certarg[160], keyarg[160], line[512];
    snprintf(certarg, sizeof(certarg), "cert=%s", tls.cert);
    snprintf(keyarg, sizeof(keyarg), "key=%s", tls.key);
    const char *args[B_TLS_PATHS][5] = {{"transport=tls", certarg, keyarg, NULL},
                                        {"transport=tls-negotiate", NULL}};
    int up = 0;
    for (int p = 0; p < B_TLS_PATHS; p++) {
        if (bench_spawn(&tls.srv[p], "server", args[p]) < 0 ||
            bench_expect(&tls.srv[p], "port", line, sizeof(line), 30000) < 0) {
            failure("[tls] could not start the %s server", b_tls_names[p]);
            bench_kill(&tls.srv[p]);
            continue;
        }
        tls.port[p] = (uint16_t)bench_kv_num(line, "port", 0);
        tls.up[p] = tls.port[p] != 0;
        up += tls.up[p];
        progress("%s server on 127.0.0.1:%u, pid %ld", b_tls_names[p], (unsigned)tls.port[p],
                 (long)tls.srv[p].pid);
    }
    return up > 0 ? 0 : -1;
}

static void tls_teardown(void)
{
    for (int p = 0; p < B_TLS_PATHS; p++)
        if (tls.up[p])
            bench_finish(&tls.srv[p], 30000);
    if (tls.dir[0]) {
        unlink(tls.cert);
        unlink(tls.key);
        rmdir(tls.dir);
    }
}

static void sweep_tls(b_results *r)
{
    char sizes[256], secs[32], portarg[32], sizesarg[300], patharg[64];
    join_sizes(r, sizes, sizeof(sizes));
    snprintf(sizesarg, sizeof(sizesarg), "sizes=%s", sizes);
    snprintf(secs, sizeof(secs), "seconds=%.3f", r->seconds);
    for (int p = 0; p < B_TLS_PATHS && !bench_interrupted; p++) {
        if (!tls.up[p])
            continue;
        snprintf(patharg, sizeof(patharg), "path=%s", b_tls_names[p]);
        snprintf(portarg, sizeof(portarg), "port=%u", (unsigned)tls.port[p]);
        const char *args[] = {patharg, portarg, "levels=0", sizesarg, secs, NULL};
        run_stream(r, "stream", args, "tls", b_tls_names[p], &tls.sm[p], r->tls_session[p],
                   sizeof(r->tls_session[p]));
    }
    r->have_tls = 1;
}

/* LAST: also the plain TCP echo that the latency limit is made of. */
static void sweep_tcp(b_results *r, int last)
{
    bench_child srv;
    char line[512], sizes[256], sizesarg[300], secs[32], portarg[32];
    if (bench_spawn(&srv, "tcpserver", NULL) < 0 ||
        bench_expect(&srv, "port", line, sizeof(line), 30000) < 0) {
        failure("could not start the plain TCP server");
        bench_kill(&srv);
        return;
    }
    join_sizes(r, sizes, sizeof(sizes));
    snprintf(sizesarg, sizeof(sizesarg), "sizes=%s", sizes);
    snprintf(secs, sizeof(secs), "seconds=%.3f", r->seconds);
    snprintf(portarg, sizeof(portarg), "port=%.0f", bench_kv_num(line, "port", 0));
    const char *args[] = {portarg, sizesarg, secs, NULL};
    run_stream(r, "tcpstream", args, "tcp", "plain TCP", &all.tcp, NULL, 0);
    /* the latency limit's network part: the same 1 KiB echo as section 7, without negio */
    if (!last) {
        bench_finish(&srv, 10000);
        r->have_tcp = 1;
        return;
    }
    char lsecs[32];
    snprintf(lsecs, sizeof(lsecs), "seconds=%.1f", r->full ? 3.0 : 1.0);
    const char *largs[] = {portarg, "size=1024", lsecs, NULL};
    bench_child cli;
    if (bench_spawn(&cli, "tcplatency", largs) == 0 &&
        bench_expect(&cli, "latency", line, sizeof(line), 60000) > 0) {
        b_lat *l = &r->lat_tcp;
        l->n = bench_kv_num(line, "n", 0);
        l->p50 = bench_kv_num(line, "p50_us", NAN);
        l->p99 = bench_kv_num(line, "p99_us", NAN);
        l->p999 = bench_kv_num(line, "p999_us", NAN);
        l->max = bench_kv_num(line, "max_us", NAN);
        l->mean = bench_kv_num(line, "mean_us", NAN);
        l->ok = l->n > 0;
        progress("[tcp] 1 KiB echo round trip, plain TCP: p50 %.0f us, p99 %.0f us, p99.9 %.0f us",
                 l->p50, l->p99, l->p999);
    } else {
        failure("the plain TCP latency client failed");
    }
    bench_finish(&cli, 10000);
    bench_finish(&srv, 10000);
    r->have_tcp = 1;
}

static void section_hs(b_results *r, bench_child *srv, uint16_t port)
{
    char portarg[32], line[1024], before[512], after[512], secs[32];
    snprintf(portarg, sizeof(portarg), "port=%u", (unsigned)port);
    snprintf(secs, sizeof(secs), "seconds=%.1f", r->full ? 5.0 : 2.0);
    for (int p = 0; p < B_PATHS && !bench_interrupted; p++) {
        b_hs *h = &r->hs[p];
        char patharg[64];
        snprintf(patharg, sizeof(patharg), "path=%s", b_path_names[p]);
        h->parallel = 32;
        const char *args[] = {patharg, portarg, "parallel=32", secs, NULL};
        bench_child ch;
        if (bench_spawn(&ch, "handshakes", args) < 0) {
            failure("could not start the handshake client");
            continue;
        }
        /* the server's CPU is read right when the client starts and right when it reports */
        if (bench_expect(&ch, "started", line, sizeof(line), 30000) < 0 ||
            server_stats(srv, before, sizeof(before)) < 0) {
            failure("handshakes over TCP (%s) did not start", b_path_names[p]);
            bench_kill(&ch);
            continue;
        }
        double kdc0 = proc_cpu_s(kdc_pid());
        if (bench_expect(&ch, "handshakes", line, sizeof(line), 120000) < 0 ||
            server_stats(srv, after, sizeof(after)) < 0) {
            failure("handshakes over TCP (%s) did not complete", b_path_names[p]);
            bench_kill(&ch);
            continue;
        }
        h->kdc_cpu_s = proc_cpu_s(kdc_pid()) - kdc0;
        h->count = bench_kv_num(line, "ok", 0);
        h->failed = bench_kv_num(line, "failed", 0);
        h->wall_s = bench_kv_num(line, "wall_ns", 0) / 1e9;
        h->client_cpu_s = bench_kv_num(line, "cpu_us", 0) / 1e6;
        h->server_cpu_s =
            (bench_kv_num(after, "cpu_us", 0) - bench_kv_num(before, "cpu_us", 0)) / 1e6;
        h->cpu_s = h->client_cpu_s + h->server_cpu_s;
        bench_kv(line, "first_error", h->error, sizeof(h->error));
        if (strcmp(h->error, "-") == 0)
            h->error[0] = '\0';
        h->ok = h->count > 0;
        if (h->failed > 0)
            failure("%s: %.0f handshakes failed: %s", b_path_names[p], h->failed, h->error);
        progress("[handshake] over TCP, %s, %d in parallel: %.0f/s, %.0f per CPU second "
                 "(client %.2f s + server %.2f s CPU; KDC %.2f s)",
                 b_path_names[p], h->parallel, b_hs_rate(h), b_hs_per_cpu(h), h->client_cpu_s,
                 h->server_cpu_s, h->kdc_cpu_s);
        bench_expect(&ch, "done", line, sizeof(line), 60000);
        bench_finish(&ch, 30000);
    }
    r->have_hs = 1;
}

static void section_latency(b_results *r, uint16_t port)
{
    char portarg[32], line[512], secs[32], patharg[] = "path=kerberos";
    snprintf(portarg, sizeof(portarg), "port=%u", (unsigned)port);
    double idle_s = r->full ? 3 : 1, load_s = r->full ? 5 : 2;
    b_lat *targets[2] = {&r->lat_idle, &r->lat_load};
    for (int loaded = 0; loaded < 2 && !bench_interrupted; loaded++) {
        bench_child load, ch;
        load.pid = 0;
        if (loaded) {
            char lsecs[32];
            snprintf(lsecs, sizeof(lsecs), "seconds=%.1f", load_s + 1.5);
            const char *largs[] = {patharg, portarg, "levels=2", "sizes=16384", lsecs, NULL};
            if (bench_spawn(&load, "stream", largs) < 0 ||
                bench_expect(&load, "authenticated", line, sizeof(line), 30000) < 0) {
                failure("could not start the load for the latency test");
                bench_kill(&load);
                continue;
            }
        }
        snprintf(secs, sizeof(secs), "seconds=%.1f", loaded ? load_s : idle_s);
        const char *args[] = {patharg, portarg, "size=1024", "level=2", secs, NULL};
        if (bench_spawn(&ch, "latency", args) < 0 ||
            bench_expect(&ch, "latency", line, sizeof(line), 60000) < 0) {
            failure("the latency client failed");
            bench_kill(&ch);
            if (loaded)
                bench_kill(&load);
            continue;
        }
        b_lat *l = targets[loaded];
        l->n = bench_kv_num(line, "n", 0);
        l->p50 = bench_kv_num(line, "p50_us", NAN);
        l->p99 = bench_kv_num(line, "p99_us", NAN);
        l->p999 = bench_kv_num(line, "p999_us", NAN);
        l->max = bench_kv_num(line, "max_us", NAN);
        l->mean = bench_kv_num(line, "mean_us", NAN);
        l->ok = l->n > 0;
        bench_finish(&ch, 10000);
        if (loaded) {
            int li;
            size_t size;
            if (bench_expect(&load, "point", line, sizeof(line), 60000) > 0) {
                static samples tmp;
                memset(&tmp, 0, sizeof(tmp));
                b_tp *t = store_point(r, &tmp, line, &li, &size);
                if (t != NULL)
                    r->load = *t;
            }
            bench_finish(&load, 30000);
        }
        progress("[latency] 1 KiB sealed echo, %s: p50 %.0f us, p99 %.0f us, p99.9 %.0f us "
                 "(%.0f round trips)",
                 loaded ? "under load" : "idle", l->p50, l->p99, l->p999, l->n);
    }
    r->have_lat = 1;
}

static void section_connections(b_results *r, long count)
{
    b_conns *c = &r->conns;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    c->nofile = rl.rlim_max == RLIM_INFINITY ? 1048576 : (long)rl.rlim_max;
    /* a process can hold as many sockets as its descriptor limit allows, less room for its own
     * files; the rest goes to more processes */
    long per_proc = c->nofile - 2000;
    if (per_proc > 50000)
        per_proc = 50000;
    if (per_proc < 100)
        per_proc = 100;
    c->target = count;
    c->servers = (int)((count + per_proc - 1) / per_proc);
    c->clients = c->servers;
    if (c->servers > 16) {
        failure("%ld connections need %d processes (descriptor limit %ld): too many", count,
                c->servers, c->nofile);
        return;
    }
    snprintf(c->limit, sizeof(c->limit),
             "descriptor limit %ld per process (hard; raising it needs CAP_SYS_RESOURCE): %d "
             "server and %d client process%s of at most %ld connections each; every server "
             "process listens on its own port of 127.0.0.1, so each client needs one ephemeral "
             "port per connection and server, far below the %s range",
             c->nofile, c->servers, c->clients, c->clients > 1 ? "es" : "", per_proc,
             "32768-60999");
    bench_child srv[16], cli[16];
    uint16_t ports[16];
    int ns = 0, nc = 0;
    char line[1024], maxs[32], portlist[256] = "";
    snprintf(maxs, sizeof(maxs), "%ld", per_proc + 100);
    for (; ns < c->servers; ns++) {
        if (start_server(&srv[ns], maxs, 1, &ports[ns]) < 0) {
            failure("could not start connection server %d", ns);
            goto out;
        }
        size_t o = strlen(portlist);
        snprintf(portlist + o, sizeof(portlist) - o, "%s%u", ns ? "," : "", (unsigned)ports[ns]);
    }
    long warm = 100; /* connections made before the baseline: one-time costs are not counted */
    long per_client = count / c->clients;
    for (; nc < c->clients; nc++) {
        char pa[300], ca[48], wa[32], para[32];
        long n = per_client + (nc == c->clients - 1 ? count % c->clients : 0);
        snprintf(pa, sizeof(pa), "ports=%s", portlist);
        snprintf(ca, sizeof(ca), "count=%ld", n);
        snprintf(wa, sizeof(wa), "warm=%ld", warm / c->clients + 1);
        snprintf(para, sizeof(para), "parallel=%d", 64 / c->clients + 4);
        const char *args[] = {"path=kerberos", pa, ca, wa, para, NULL};
        if (bench_spawn(&cli[nc], "hold", args) < 0) {
            failure("could not start connection client %d", nc);
            goto out;
        }
    }
    long warm_held = 0;
    for (int i = 0; i < nc; i++) {
        if (bench_expect(&cli[i], "warm", line, sizeof(line), 120000) < 0) {
            failure("connection client %d did not warm up", i);
            goto out;
        }
        warm_held += (long)bench_kv_num(line, "held", 0);
    }
    struct timespec settle = {0, 300 * 1000000};
    nanosleep(&settle, NULL);
    double base_auth = 0;
    for (int i = 0; i < ns; i++) {
        c->server_rss_base_kb += (double)bench_rss_kb(srv[i].pid);
        if (server_stats(&srv[i], line, sizeof(line)) == 0)
            base_auth += bench_kv_num(line, "auth", 0);
    }
    c->warm = (long)base_auth;
    progress("[connections] %ld warm-up connections held; server RSS %.0f KiB; opening %ld more "
             "over %d server and %d client processes",
             warm_held, c->server_rss_base_kb, count - warm_held, ns, nc);
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < nc; i++)
        bench_send(&cli[i], "go\n");
    double client_rss = 0;
    for (int i = 0; i < nc; i++) {
        int rc;
        while ((rc = bench_readline(&cli[i], line, sizeof(line), 600000)) > 0) {
            if (strncmp(line, "progress", 8) == 0 && i == 0) {
                progress("[connections] client 1 of %d: %s", nc, line + 9);
            } else if (strncmp(line, "held", 4) == 0) {
                c->held += (long)bench_kv_num(line, "held", 0);
                c->failed += (long)bench_kv_num(line, "failed", 0);
                client_rss += bench_kv_num(line, "rss_kb", 0);
                char e[200];
                if (bench_kv(line, "first_error", e, sizeof(e)) && strcmp(e, "-") != 0 &&
                    c->error[0] == '\0')
                    snprintf(c->error, sizeof(c->error), "%s", e);
                break;
            } else if (strncmp(line, "error", 5) == 0) {
                failure("connection client %d: %s", i, line);
                break;
            }
        }
        if (rc <= 0) {
            failure("connection client %d stopped", i);
            goto out;
        }
    }
    c->wall_s = (double)(bench_now_ns() - t0) / 1e9;
    nanosleep(&settle, NULL);
    double auth = 0;
    for (int i = 0; i < ns; i++) {
        c->server_rss_kb += (double)bench_rss_kb(srv[i].pid);
        if (server_stats(&srv[i], line, sizeof(line)) == 0)
            auth += bench_kv_num(line, "auth", 0);
    }
    double added = auth - base_auth;
    if (added > 0) {
        c->per_conn_bytes = (c->server_rss_kb - c->server_rss_base_kb) * 1024.0 / added;
        c->client_per_conn_bytes = client_rss * 1024.0 / auth;
        c->ok = 1;
    }
    if (c->failed > 0)
        failure("%ld of %ld connections failed: %s", c->failed, count, c->error);
    progress("[connections] %ld held (server side: %.0f authenticated) in %.1f s; server RSS "
             "%.0f KiB -> %.0f KiB: %.0f bytes per connection",
             c->held, auth, c->wall_s, c->server_rss_base_kb, c->server_rss_kb, c->per_conn_bytes);
out:
    for (int i = 0; i < nc; i++)
        bench_finish(&cli[i], 30000);
    for (int i = 0; i < ns; i++)
        bench_finish(&srv[i], 60000);
    r->have_conns = 1;
}

/* ---- options and the run --------------------------------------------------------------------- */

static int parse_sections(const char *s, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"gss", S_GSS},     {"e2e", S_E2E},      {"tcp", S_TCP},
                 {"tls", S_TLS},     {"handshake", S_HS}, {"connections", S_CONNS},
                 {"latency", S_LAT}, {"tunnel", S_TUNNEL}};
    *out = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i;
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (strlen(names[i].name) == n && strncmp(s, names[i].name, n) == 0)
                break;
        if (i == sizeof(names) / sizeof(names[0]))
            return -1;
        *out |= names[i].bit;
        s += n + (s[n] == ',');
    }
    return *out ? 0 : -1;
}

enum {
    OPT_QUICK = CLI_GROUP_BASE(CLI_G_BENCH),
    OPT_FULL,
    OPT_JSON,
    OPT_CSV,
    OPT_REALM_DIR,
    OPT_ONLY,
    OPT_CONNECTIONS,
    OPT_SECONDS,
    OPT_REPEAT,
    OPT_NO_PROGRESS,
};

/* What the command line asks for. */
struct bench_cmdline {
    int full, progress;
    int json, csv; /* to JSON_PATH, CSV_PATH, or NULL: stdout */
    const char *json_path, *csv_path, *realm_dir;
    unsigned sections;
    long connections, repeat; /* -1: the mode's */
    double seconds;           /* -1: the mode's */
};

static const struct cli_option bench_options[] = {
    {"quick", no_argument, OPT_QUICK, CLI_ALL, NULL,
     "short points and 10,000 connections: under a minute (the default)"},
    {"full", no_argument, OPT_FULL, CLI_ALL, NULL,
     "8 message sizes, every point measured 3 times, longer latency and handshake runs, 100,000 "
     "connections (a few minutes)"},
    {"json", optional_argument, OPT_JSON, CLI_ALL, "[=FILE]",
     "one JSON object (to FILE, or instead of the table on stdout)"},
    {"csv", optional_argument, OPT_CSV, CLI_ALL, "[=FILE]",
     "CSV rows: section,mech,level,size_bytes,metric,value,unit,limit,ratio"},
    {"realm-dir", required_argument, OPT_REALM_DIR, CLI_ALL, "DIR",
     "use the realm in DIR, or start one there (kept afterwards); without it the realm of the "
     "environment (NEGIO_REALM_DIR, from '. DIR/env'), else a temporary realm started and "
     "removed by the bench"},
    {"only", required_argument, OPT_ONLY, CLI_ALL, "SECTIONS",
     "comma-separated subset of: gss,e2e,tcp,tls,handshake,connections, latency; and tunnel "
     "(not in the default run: negio tunnel beside stunnel with Redis, and idle tunnels)"},
    {"connections", required_argument, OPT_CONNECTIONS, CLI_ALL, "N",
     "connections to hold (quick 10000, full 100000)"},
    {"seconds", required_argument, OPT_SECONDS, CLI_ALL, "S",
     "duration of one throughput point (quick 0.25, full 0.5)"},
    {"repeat", required_argument, OPT_REPEAT, CLI_ALL, "N",
     "measure every throughput point N times, in whole sweeps, and keep the median by CPU per "
     "byte (quick 1, full 3; up to 9): other work on the machine inflates single figures"},
    {"no-progress", no_argument, OPT_NO_PROGRESS, CLI_ALL, NULL, "no progress lines on stderr"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis bench_synopsis[] = {
    {CLI_ALL, "[--quick | --full]"}, {CLI_ALL, "[--json[=FILE]]"},
    {CLI_ALL, "[--csv[=FILE]]"},     {CLI_ALL, "[--realm-dir DIR]"},
    {CLI_ALL, "[--only SECTIONS]"},  {CLI_ALL, "[--connections N]"},
    {CLI_ALL, "[--seconds S]"},      {CLI_ALL, "[--repeat N]"},
    {CLI_ALL, "[--no-progress]"},    {0, NULL},
};

static void bench_init(void *state)
{
    struct bench_cmdline *o = state;
    memset(o, 0, sizeof(*o));
    o->progress = 1;
    o->sections = S_ALL;
    o->connections = o->repeat = -1;
    o->seconds = -1;
}

static int bench_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct bench_cmdline *o = state;
    char *end;
    switch (id) {
    case OPT_QUICK:
    case OPT_FULL:
        o->full = id == OPT_FULL;
        return 0;
    case OPT_JSON:
        o->json = 1;
        o->json_path = arg;
        return 0;
    case OPT_CSV:
        o->csv = 1;
        o->csv_path = arg;
        return 0;
    case OPT_REALM_DIR:
        o->realm_dir = arg;
        return 0;
    case OPT_ONLY:
        if (parse_sections(arg, &o->sections) < 0)
            return cli_error(c, "--only: unknown section in '%s'", arg);
        return 0;
    case OPT_CONNECTIONS:
        return cli_parse_long(c, "--connections", arg, 200, 1000000, "", &o->connections);
    case OPT_SECONDS:
        o->seconds = strtod(arg, &end);
        if (*end != '\0' || !(o->seconds >= 0.05 && o->seconds <= 60))
            return cli_error(c, "--seconds: expected 0.05..60, got '%s'", arg);
        return 0;
    case OPT_REPEAT:
        return cli_parse_long(c, "--repeat", arg, 1, MAX_REPEAT, "", &o->repeat);
    default: /* OPT_NO_PROGRESS */
        o->progress = 0;
        return 0;
    }
}

static const struct cli_group bench_group = {
    .no = CLI_G_BENCH,
    .options = bench_options,
    .synopsis = bench_synopsis,
    .init = bench_init,
    .take = bench_take,
};

static const struct cli_command bench_command = {
    .name = "bench",
    .role = CLI_LOCAL,
    .about =
        "Measures negio against its limits in one run, on this machine, and prints each figure\n"
        "absolutely and as a ratio to its limit:\n"
        "  gss         the in-process GSS limit: gss_wrap+gss_unwrap and gss_get_mic+\n"
        "              gss_verify_mic on one thread, kerberos and ntlm, per message size; and\n"
        "              the limit of the Kerberos fast path: OpenSSL alone (AES-CTS and HMAC)\n"
        "              on the same bytes, for the same enctype\n"
        "  e2e         negio end to end over loopback: a client and a server process on the\n"
        "              engine, one connection, levels none/sign/seal, kerberos and ntlm, 64 B to\n"
        "              1 MiB messages; throughput and CPU seconds per GB of both processes;\n"
        "              kerberos again with the fast path off on both sides (kerberos-mit)\n"
        "  tcp         plain TCP: the same transfer over a minimal libuv client and server of the\n"
        "              bench's own (no negio), the baseline for level none\n"
        "  tls         the same transfer at level none over TLS (an ephemeral certificate made\n"
        "              for the run) and Kerberos inside certificate-free TLS (tls-negotiate),\n"
        "              next to Kerberos at seal without TLS (from e2e)\n"
        "  handshake   new TCP connection + full handshake + protected close, many in parallel,\n"
        "              kerberos (service ticket cached) and negotiate->ntlm, next to the\n"
        "              in-process init+accept loop; the replay cache stays on\n"
        "  connections N authenticated idle connections held open; the server's resident\n"
        "              memory per connection\n"
        "  latency     round trip of a 1 KiB sealed echo, p50/p99/p99.9, idle and while another\n"
        "              connection streams 16 KiB sealed messages\n",
    .footer =
        "Sizes are in bytes of application data; MB = 10^6 bytes, GB = 10^9 bytes. Run it on an\n"
        "otherwise idle machine. Exit status: 0 when every section ran (missed targets included),\n"
        "1 if a measurement failed, 2 for a usage error.\n",
    .column = 21,
};

static int bench_validate(const struct cli *c, const struct bench_cmdline *o)
{
    if (c->nargs > 0)
        return cli_error(c, "unexpected argument '%s'", c->args[0]);
    if (o->json && o->csv && o->json_path == NULL && o->csv_path == NULL)
        return cli_error(c, "--json and --csv cannot both go to stdout: give one a FILE");
    return 0;
}

/* Writes R with WRITE to PATH (NULL: stdout). Returns 0, or -1 after saying why. */
static int write_report(const b_results *r, void (*write)(const b_results *, FILE *),
                        const char *path)
{
    FILE *f = path != NULL ? fopen(path, "w") : stdout;
    if (f == NULL) {
        fprintf(stderr, "negio bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    write(r, f);
    if (f != stdout)
        fclose(f);
    return 0;
}

/* Every section asked for, then the reports. */
static int bench_run(const struct bench_cmdline *o)
{
    int full = o->full;
    unsigned sections = o->sections;
    long connections = o->connections;
    run.progress = o->progress;

    static b_results r; /* large: not on the stack */
    memset(&r, 0, sizeof(r));
    r.full = full;
    r.seconds = o->seconds > 0 ? o->seconds : full ? 0.5 : 0.25;
    r.repeat = o->repeat > 0 ? (int)o->repeat : full ? 3 : 1;
    const size_t *sizes = full ? full_sizes : quick_sizes;
    r.nsizes = full ? sizeof(full_sizes) / sizeof(full_sizes[0])
                    : sizeof(quick_sizes) / sizeof(quick_sizes[0]);
    memcpy(r.sizes, sizes, r.nsizes * sizeof(size_t));
    if (connections < 0)
        connections = full ? 100000 : 10000;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: waits see EINTR and give up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bench_raise_nofile();

    int64_t t0 = bench_now_ns();
    progress("%s mode; progress on stderr, results on stdout at the end", full ? "full" : "quick");
    if (realm_setup(o->realm_dir) < 0) {
        realm_teardown();
        return CLI_EXIT_FAIL;
    }
    describe_machine(&r);
    r.busy_before = machine_busy(1000);
    if (r.busy_before > 10)
        fprintf(stderr,
                "negio bench: WARNING: the machine is %.0f%% busy with other work: every CPU "
                "figure will be inflated and noisy; run it on an idle machine\n",
                r.busy_before);
    if (!r.rcache_on)
        fprintf(stderr, "negio bench: WARNING: the replay cache is off in this environment "
                        "(KRB5RCACHETYPE=none): handshake figures are not comparable\n");
    progress("%s", r.machine);
    cpu_snap c0, c1;
    int have_snap = cpu_snapshot(&c0) == 0;

    bench_child srv, srv_mit;
    uint16_t port = 0, port_mit = 0;
    int have_srv = 0, have_srv_mit = 0;
    r.fast_path = fast_path_on();
    if ((sections & (S_E2E | S_HS | S_LAT)) && !bench_interrupted) {
        if (start_server(&srv, "0", 1, &port) < 0) {
            failure("could not start the negio server");
        } else {
            have_srv = 1;
            progress("negio server (engine defaults) on 127.0.0.1:%u, pid %ld", (unsigned)port,
                     (long)srv.pid);
        }
    }
    if ((sections & S_E2E) && !bench_interrupted) {
        if (start_server(&srv_mit, "0", 0, &port_mit) < 0) {
            failure("could not start the negio server without the Kerberos fast path");
            port_mit = 0;
        } else {
            have_srv_mit = 1;
            progress("negio server without the Kerberos fast path on 127.0.0.1:%u, pid %ld",
                     (unsigned)port_mit, (long)srv_mit.pid);
        }
    }
    int have_tls = (sections & S_TLS) && !bench_interrupted && tls_setup() == 0;
    for (int k = 0;
         k < r.repeat && (sections & (S_GSS | S_E2E | S_TCP | S_TLS)) && !bench_interrupted; k++) {
        if (r.repeat > 1)
            progress("throughput sweep %d of %d", k + 1, r.repeat);
        if ((sections & S_GSS) && !bench_interrupted)
            sweep_gss(&r, k);
        if ((sections & S_E2E) && have_srv && !bench_interrupted)
            sweep_e2e(&r, port, port_mit);
        if ((sections & S_TCP) && !bench_interrupted)
            sweep_tcp(&r, k == r.repeat - 1);
        if (have_tls && !bench_interrupted)
            sweep_tls(&r);
    }
    if (have_srv_mit)
        bench_finish(&srv_mit, 30000);
    if (sections & S_TLS)
        tls_teardown();
    for (int p = 0; p < B_TLS_PATHS; p++) /* level none only: row 0 of the samples */
        for (size_t i = 0; i < r.nsizes; i++)
            b_tp_median(tls.sm[p].s[0][i], tls.sm[p].n[0][i], &r.tls[p][i]);
    for (int m = 0; m < B_MECHS; m++) {
        keep_medians(&r, &all.gss[m], r.gss[m]);
        keep_medians(&r, &all.e2e[m], r.e2e[m]);
    }
    keep_medians(&r, &all.ossl, r.ossl);
    keep_medians(&r, &all.mit, r.e2e_mit);
    for (size_t i = 0; i < r.nsizes; i++)
        b_tp_median(all.tcp.s[0][i], all.tcp.n[0][i], &r.tcp[i]);
    /* the handshake limit right before the handshakes: the same conditions on a shared machine */
    if ((sections & S_HS) && !bench_interrupted)
        section_hs_inprocess(&r);
    if (have_srv) {
        if ((sections & S_HS) && !bench_interrupted)
            section_hs(&r, &srv, port);
        if ((sections & S_LAT) && !bench_interrupted)
            section_latency(&r, port);
        bench_finish(&srv, 30000);
    }
    if ((sections & S_CONNS) && !bench_interrupted)
        section_connections(&r, connections);
    r.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
    r.busy_during = NAN;
    if (have_snap && cpu_snapshot(&c1) == 0 && c1.total_s > c0.total_s) {
        double others = (c1.busy_s - c0.busy_s) - (c1.ours_s - c0.ours_s);
        r.busy_during = 100.0 * (others > 0 ? others : 0) / (c1.total_s - c0.total_s);
        r.irq_during = 100.0 * (c1.irq_s - c0.irq_s) / (c1.total_s - c0.total_s);
        if (r.busy_during > 10)
            fprintf(stderr,
                    "negio bench: WARNING: other processes used %.0f%% of the CPUs during the run: "
                    "the figures are inflated and noisy; run it on an idle machine\n",
                    r.busy_during);
    }
    r.busy_after = bench_interrupted ? NAN : machine_busy(1000);
    if (r.busy_after > 10)
        fprintf(stderr,
                "negio bench: WARNING: the machine was %.0f%% busy with other work right "
                "after the run\n",
                r.busy_after);
    realm_teardown();
    if (bench_interrupted) {
        fprintf(stderr, "negio bench: interrupted\n");
        return CLI_EXIT_FAIL;
    }

    int rc = CLI_EXIT_OK;
    if (o->json && write_report(&r, b_report_json, o->json_path) < 0)
        rc = CLI_EXIT_FAIL;
    if (o->csv && write_report(&r, b_report_csv, o->csv_path) < 0)
        rc = CLI_EXIT_FAIL;
    if (!(o->json && o->json_path == NULL) && !(o->csv && o->csv_path == NULL))
        b_report_table(&r, stdout);
    fflush(stdout);
    if (run.failures > 0) {
        fprintf(stderr, "negio bench: %d measurement%s failed (see above)\n", run.failures,
                run.failures > 1 ? "s" : "");
        rc = CLI_EXIT_FAIL;
    }
    progress("finished in %.0f s", r.elapsed_s);
    return rc;
}

int cli_bench(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return bench_child_main(argc - 2, argv + 2);
    struct bench_cmdline o;
    struct cli c;
    const struct cli_use uses[] = {{&bench_group, &o}};
    if (cli_parse(&c, &bench_command, uses, 1, argc, argv) < 0)
        return CLI_EXIT_USAGE;
    if (c.help)
        return CLI_EXIT_OK;
    if (bench_validate(&c, &o) < 0)
        return CLI_EXIT_USAGE;
    int rc = CLI_EXIT_OK;
    if (o.sections & ~S_TUNNEL)
        rc = bench_run(&o);
    if ((o.sections & S_TUNNEL) && rc == CLI_EXIT_OK && !bench_interrupted &&
        bench_tunnel(o.full, o.connections > 0 ? o.connections : 10000,
                     o.json && o.sections == S_TUNNEL ? o.json_path : NULL, o.realm_dir) != 0)
        rc = CLI_EXIT_FAIL;
    return rc;
}
