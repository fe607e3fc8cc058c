/*
 * negio bench: what one run measured, and its three presentations (a table for the terminal,
 * one JSON object, CSV rows). Every figure is reported absolutely and, where it has one, as a
 * ratio to its limit measured in the same run.
 */
#ifndef NEGIO_CLI_BENCH_REPORT_H
#define NEGIO_CLI_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#define B_MECHS 2 /* per-message paths: kerberos, ntlm */
#define B_PATHS 2 /* handshake paths: kerberos, negotiate-ntlm */
#define B_MAX_SIZES 8
/* in-process handshakes: GSS with credentials once, GSS with credentials each time, negio
 * connectors in memory */
#define B_HS_KINDS 3

extern const char *const b_mech_names[B_MECHS];
extern const char *const b_path_names[B_PATHS];
/* section 4, at level none: plain TLS, and Kerberos inside certificate-free TLS */
#define B_TLS_PATHS 2
extern const char *const b_tls_names[B_TLS_PATHS]; /* "tls", "tls-negotiate" */

/* One bulk transfer: BYTES of application data in MSGS messages. CPU is the sum of every
 * process involved (client and server; a single thread for the in-process limit). */
typedef struct b_tp {
    int ok;
    double bytes, msgs, wall_s, cpu_s, client_cpu_s, server_cpu_s;
    int reps;                      /* measurements taken; this one is their median by CPU/GB */
    double cpu_gb_min, cpu_gb_max; /* their spread */
} b_tp;

/* Keeps the median (by CPU per GB) of the N measurements in S in *OUT, with their spread. */
void b_tp_median(const b_tp *s, int n, b_tp *out);

typedef struct b_hs {
    int ok;
    double count, failed, wall_s, cpu_s, client_cpu_s, server_cpu_s, kdc_cpu_s;
    int parallel;
    char error[200];
} b_hs;

typedef struct b_lat {
    int ok;
    double n, p50, p99, p999, max, mean; /* microseconds */
} b_lat;

typedef struct b_conns {
    int ok;
    long target, held, failed, warm;
    int servers, clients;
    long nofile;                              /* descriptor limit per process */
    double server_rss_base_kb, server_rss_kb; /* all server processes, summed */
    double per_conn_bytes; /* server RSS growth / connections added after the warm-up */
    double client_per_conn_bytes;
    double wall_s;   /* time to establish the connections after the warm-up */
    char limit[400]; /* what bounded the count, in words */
    char error[200];
} b_conns;

typedef struct b_results {
    int full;
    double seconds; /* per throughput point */
    int repeat;     /* measurements per throughput point */
    size_t sizes[B_MAX_SIZES];
    size_t nsizes;
    int have_gss, have_e2e, have_tcp, have_hs, have_conns, have_lat;
    b_tp gss[B_MECHS][3][B_MAX_SIZES]; /* [mech][level: 1 sign, 2 seal][size] */
    char key[B_MECHS][160];
    b_tp e2e[B_MECHS][3][B_MAX_SIZES]; /* [mech][level][size] */
    b_tp tcp[B_MAX_SIZES];
    b_hs hs[B_PATHS];                /* over TCP */
    b_hs hs_in[B_PATHS][B_HS_KINDS]; /* in process */
    b_conns conns;
    b_lat lat_idle, lat_load;
    b_lat lat_tcp; /* the same echo over plain TCP (bench_tcp.c), idle */
    b_tp load;     /* the transfer that loaded the server during lat_load */
    char machine[512];
    char realm[512];
    char rcache[256];
    int rcache_on;
    char when[64];
    double elapsed_s;
    double busy_before, busy_after; /* % of all CPUs busy with other work around the run */
    double busy_during;             /* % of all CPUs used by other processes during the run */
    double irq_during; /* % in interrupts, softirq and steal (mostly the bench's own traffic) */
    /* section 4: one connection at level none over TLS, per b_tls_names */
    int have_tls;
    b_tp tls[B_TLS_PATHS][B_MAX_SIZES];
    char tls_session[B_TLS_PATHS][96]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384", as negotiated */
    /* issue 18, the Kerberos fast path: the "kerberos" rows run on it unless NEGIO_KRB5_FAST_PATH
     * switched it off for the whole run (fast_path 0); the same transfers with it off on both
     * sides (MIT's gss_wrap and gss_get_mic, "kerberos-mit"), and its limit: OpenSSL EVP alone
     * on the same bytes, for the Kerberos pair's enctype */
    int fast_path;
    int have_mit, have_ossl;
    b_tp e2e_mit[3][B_MAX_SIZES]; /* [level][size]; sign and seal only */
    b_tp ossl[3][B_MAX_SIZES];    /* [level: 1 sign, 2 seal][size] */
    int ossl_enctype;
} b_results;

/* Derived figures; NAN when not measured. */
double b_mb_s(const b_tp *t); /* application MB/s (10^6 bytes) over wall time */
double b_msgs_s(const b_tp *t);
double b_cpu_per_gb(const b_tp *t); /* CPU seconds per GB (10^9 bytes), all processes */
double b_hs_rate(const b_hs *h);    /* handshakes per wall second */
double b_hs_per_cpu(const b_hs *h); /* handshakes per CPU second, all processes */

/* The ratios of the issue (measured / limit); NAN when not measured. Sign and seal against their
 * limit: the in-process GSS calls, or for kerberos on the fast path OpenSSL alone (b_ossl_limit).
 */
double b_ratio_level_vs_gss(const b_results *r, int mech, int level, size_t size_index);
/* Whether the kerberos rows' limit is the OpenSSL line (they ran on the fast path and it was
 * measured). */
int b_ossl_limit(const b_results *r);
/* Issue 18: the kerberos rows against the kerberos-mit rows at LEVEL (throughput over wall time;
 * with CPU set, CPU per byte), and the MIT path against the in-process GSS limit. */
double b_ratio_fast_vs_mit(const b_results *r, int level, size_t size_index, int cpu);
double b_ratio_mit_vs_gss(const b_results *r, int level, size_t size_index);
double b_ratio_none_vs_tcp(const b_results *r, int mech, size_t size_index, int cpu);
double b_ratio_hs(const b_results *r, int path);
/* Kerberos inside TLS at level none over Kerberos at seal without TLS: throughput (the
 * issue's ratio), or with CPU set, seal's CPU per byte over TLS's (steadier on a busy machine). */
double b_ratio_tls_vs_seal(const b_results *r, size_t size_index);
double b_ratio_tls_vs_seal_cpu(const b_results *r, size_t size_index);
/* The latency limit at percentile P (0: p50, 1: p99, 2: p99.9) in microseconds: the plain TCP
 * echo plus two in-process wrap+unwrap of 1 KiB (kerberos), the crypto of one sealed echo. */
double b_lat_limit(const b_results *r, int p);
int b_size_index(const b_results *r, size_t size); /* -1 if not measured */

void b_report_table(const b_results *r, FILE *out);
void b_report_json(const b_results *r, FILE *out);
void b_report_csv(const b_results *r, FILE *out);

/* "64 B", "16 KiB", "1 MiB" */
const char *b_size_name(size_t size, char *buf, size_t cap);

#endif /* NEGIO_CLI_BENCH_REPORT_H */
