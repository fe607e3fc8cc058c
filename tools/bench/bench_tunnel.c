/* negio bench --only tunnel: negio tunnel beside stunnel with Redis (docs/PERFORMANCE.md, "The
 * tunnel against stunnel"). The measurement drives four kinds of processes (redis-server,
 * redis-benchmark, stunnel, negio tunnel) and parses redis-benchmark's output, which a script does
 * more plainly than C: scripts/bench-tunnel.py, found beside the binary (build tree: ../scripts,
 * installed: ../share/negio) or at NEGIO_BENCH_TUNNEL_SCRIPT. It runs this very binary as the
 * tunnel. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static int find_script(char *out, size_t cap)
{
    const char *env = getenv("NEGIO_BENCH_TUNNEL_SCRIPT");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    const char *dir = dirname(exe);
    static const char *const rel[] = {"../scripts/bench-tunnel.py",
                                      "../share/negio/bench-tunnel.py"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        snprintf(out, cap, "%s/%s", dir, rel[i]);
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

int bench_tunnel(int full, long connections, const char *json_path, const char *realm_dir)
{
    char script[PATH_MAX + 64], exe[PATH_MAX], conns[32];
    if (find_script(script, sizeof(script)) < 0) {
        fprintf(stderr, "negio bench: the tunnel section needs scripts/bench-tunnel.py (set "
                        "NEGIO_BENCH_TUNNEL_SCRIPT to it)\n");
        return 1;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return 1;
    exe[n] = '\0';
    snprintf(conns, sizeof(conns), "%ld", connections);
    const char *argv[12];
    int k = 0;
    argv[k++] = "python3";
    argv[k++] = script;
    argv[k++] = exe;
    argv[k++] = full ? "--full" : "--quick";
    argv[k++] = "--connections";
    argv[k++] = conns;
    if (json_path != NULL) {
        argv[k++] = "--json";
        argv[k++] = json_path;
    }
    if (realm_dir != NULL) {
        argv[k++] = "--realm-dir";
        argv[k++] = realm_dir;
    }
    argv[k] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        execvp("python3", (char *const *)argv);
        fprintf(stderr, "negio bench: python3: %s\n", strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
