/*
 * negio bench: measures negio against its limits in one run (docs/PERFORMANCE.md).
 *
 * The parent process (bench.c) runs the in-process measurements itself (bench_gss.c) and
 * starts every networked party as a separate process: the negio binary again, as
 * "negio bench --child ROLE key=value ...". Children talk to the parent through their stdin and
 * stdout, one line per message of "word key=value ..." (bench_proc.c). The roles live in
 * bench_child.c (negio engine server and clients) and bench_tcp.c (the plain libuv baseline).
 */
#ifndef NEGIO_CLI_BENCH_H
#define NEGIO_CLI_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "negio/negio.h"

/* ---- clocks, CPU and memory (bench_proc.c) ------------------------------------------------- */

/* Monotonic wall clock, nanoseconds. */
int64_t bench_now_ns(void);
/* CPU time (user + system) of this whole process, all threads, microseconds. */
int64_t bench_cpu_us(void);
/* CPU time of the calling thread, nanoseconds. */
int64_t bench_thread_cpu_ns(void);
/* Resident set of process PID (0: self) in KiB from /proc/PID/status, or -1. */
long bench_rss_kb(pid_t pid);
/* Raises the soft descriptor limit to the hard one; returns the new soft limit. */
long bench_raise_nofile(void);
/* A message buffer of SIZE bytes filled with a pattern, at a fixed page offset (BENCH_PAGE_OFFSET)
 * whatever SIZE is: glibc serves large allocations from mmap at page offset 16, like negio's own
 * large buffers, and a copy between two buffers at nearly the same page offset suffers 4K
 * aliasing (docs/PERFORMANCE.md); the bench measures the ordinary case. Free with bench_free. */
#define BENCH_PAGE_OFFSET 1040
uint8_t *bench_payload(size_t size);
void bench_free_payload(uint8_t *p);

/* ---- key=value lines ------------------------------------------------------------------------ */

/* Looks KEY up in a line of "word key=value key=value"; copies the value into OUT (CAP bytes).
 * Returns 1 if found. Values hold no spaces. */
int bench_kv(const char *line, const char *key, char *out, size_t cap);
/* The value of KEY as a number, or DEF if absent or malformed. */
double bench_kv_num(const char *line, const char *key, double def);
/* The same over an argument vector of "key=value" words (children's command lines). */
const char *bench_arg(int argc, char **argv, const char *key, const char *def);
double bench_arg_num(int argc, char **argv, const char *key, double def);

/* Sorts the N round trips RTT (nanoseconds) and prints the latency roles' result line:
 * "latency n=N p50_us=... p99_us=... p999_us=... max_us=... mean_us=..." (bench_proc.c). */
void bench_print_latency(int64_t *rtt, long n);

/* ---- children (bench_proc.c) ---------------------------------------------------------------- */

typedef struct bench_child {
    pid_t pid;
    int to;   /* its stdin, or -1 */
    int from; /* its stdout, or -1 */
    char buf[8192];
    size_t len;
    char name[64];
} bench_child;

/* Starts "negio bench --child ROLE ARGS..." (the running binary, /proc/self/exe). The child's
 * stderr is ours. Returns 0 or -1 (with a message on stderr). */
int bench_spawn(bench_child *ch, const char *role, const char *const args[]);
/* Starts any program with stdin and stdout on pipes (used for "negio realm"). */
int bench_spawn_argv(bench_child *ch, const char *const argv[]);
/* Reads one line (without the newline) within TIMEOUT_MS. Returns 1, 0 at end of output, -1 on
 * timeout or interruption (a message on stderr). */
int bench_readline(bench_child *ch, char *line, size_t cap, int timeout_ms);
/* Reads lines until one starting with WORD; others are passed to ON_OTHER (may be NULL). */
int bench_expect(bench_child *ch, const char *word, char *line, size_t cap, int timeout_ms);
/* Writes a line to the child's stdin. Returns 0 or -1. */
int bench_send(bench_child *ch, const char *line);
/* Closes the child's stdin (its signal to finish), waits up to TIMEOUT_MS for it to exit, then
 * terminates it. Returns its exit status, or -1 if it had to be killed. */
int bench_finish(bench_child *ch, int timeout_ms);
/* Kills a child at once (SIGKILL) and reaps it. */
void bench_kill(bench_child *ch);
/* Set by SIGINT/SIGTERM in the parent: every wait gives up. */
extern volatile int bench_interrupted;

/* ---- the roles of child processes ----------------------------------------------------------- */

int bench_child_main(int argc, char **argv); /* dispatches on argv[0], the role */
int bench_child_server(int argc, char **argv);
int bench_child_stream(int argc, char **argv);
int bench_child_handshakes(int argc, char **argv);
int bench_child_hold(int argc, char **argv);
int bench_child_latency(int argc, char **argv);
int bench_tcp_server(int argc, char **argv);
int bench_tcp_stream(int argc, char **argv);
int bench_tcp_latency(int argc, char **argv);

/* Client configurations of the measured paths: "kerberos", "kerberos-mit" (Kerberos with the
 * fast path off: MIT's gss_wrap and gss_get_mic per message, issue 18), "ntlm", "negotiate-ntlm"
 * (SPNEGO with no Kerberos ticket: it falls back to NTLM, as for a client outside the realm); "tls"
 * (plain TLS, the server's certificate verified with the CA file in NEGIO_BENCH_TLS_CA) and
 * "tls-negotiate" (Kerberos inside certificate-free TLS), both at level none. */
negio_config *bench_client_config(const char *path, char *err, size_t cap);

/* ---- TLS (bench_tls.c) ---------------------------------------------------------------------- */

/* Writes DIR/cert.pem, a self-signed certificate for localhost (SAN DNS:localhost,
 * IP:127.0.0.1; it is its own CA), and DIR/key.pem, its EC P-256 key; their paths go to CERT and
 * KEY (CAP bytes each). Returns 0, or -1 with ERR filled. */
int bench_tls_cert(const char *dir, char *cert, char *key, size_t cap, char *err, size_t errcap);

/* ---- in-process measurements (bench_gss.c) -------------------------------------------------- */

typedef struct bench_gss_result {
    double bytes; /* application bytes through the loop */
    double msgs;
    double cpu_s; /* thread CPU time */
    double wall_s;
} bench_gss_result;

/* Prepares a pair of GSS contexts for MECH ("kerberos" or "ntlm"), as negio would ask for them
 * (same mechanism OID, flags, credentials). Returns an opaque handle or NULL (ERR filled). */
typedef struct bench_gss_pair bench_gss_pair;
bench_gss_pair *bench_gss_pair_new(const char *mech, char *err, size_t cap);
void bench_gss_pair_del(bench_gss_pair *p);
/* Describes the session key of the pair ("aes256-cts-hmac-sha1-96 (enctype 18)"). */
void bench_gss_pair_key(bench_gss_pair *p, char *out, size_t cap);
/* The enctype of the pair's session key, or -1 if the mechanism cannot say. */
int bench_gss_pair_enctype(bench_gss_pair *p);
/* Loops gss_wrap(conf)+gss_unwrap (SEAL) or gss_get_mic+gss_verify_mic (SIGN) over SIZE-byte
 * messages for at least SECONDS of CPU time. Returns 0 or -1 (ERR filled). */
int bench_gss_loop(bench_gss_pair *p, negio_level level, size_t size, double seconds,
                   bench_gss_result *r, char *err, size_t cap);

/* The hardware limit of Kerberos protection for ENCTYPE (bench_openssl.c): OpenSSL EVP alone
 * doing the crypto of a sealed Wrap token (AES-CBC-CTS and HMAC, made and opened: SEAL) or of a
 * MIC token (an HMAC made and checked: SIGN) over SIZE-byte messages, for at least SECONDS of
 * CPU time. Returns 0 or -1 (ERR filled). */
int bench_ossl_loop(int enctype, negio_level level, size_t size, double seconds,
                    bench_gss_result *r, char *err, size_t cap);

/* The in-process handshake limits for PATH ("kerberos" or "negotiate-ntlm"), for at least
 * SECONDS of CPU time each. KIND: 0 = init+accept with credentials acquired once (the limit),
 * 1 = the same with credentials acquired for every handshake (as negio does today),
 * 2 = two negio connectors joined in memory (the library without I/O or threads). */
int bench_handshake_inprocess(const char *path, int kind, double seconds, bench_gss_result *r,
                              char *err, size_t cap);

/* bench_tunnel.c: the tunnel section, by scripts/bench-tunnel.py; 0 or 1. */
int bench_tunnel(int full, long connections, const char *json_path, const char *realm_dir);

#endif /* NEGIO_CLI_BENCH_H */
