/* Test support: a throwaway realm per test process and an in-memory connector pair. */
#ifndef NEGIO_TEST_SUPPORT_H
#define NEGIO_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "negio/negio.h"

typedef struct test_realm {
    char dir[256];
    char realm[64];
    char alice_pw[64];
    char bob_pw[64];
    char keytab[300];       /* negio/localhost */
    char other_keytab[300]; /* other/localhost */
    char ccache[300];       /* FILE:... holding alice's TGT */
    char empty_ccache[300]; /* FILE:... that does not exist: no Kerberos ticket */
    char ntlm_file[300];
    char client_keytab[300]; /* carol's keys */
    int kdc_port;
} test_realm;

/* Starts a realm in a fresh temporary folder (once per process; later calls return it) and
 * points the process environment at it. Aborts the test process if the realm cannot start. */
const test_realm *test_realm_get(void);
/* Stops and restarts the KDC with a clock offset in seconds (0: normal). */
void test_realm_restart_kdc(int offset_seconds);
/* The running KDC's process id (to stop it with SIGSTOP: it accepts and never answers). */
pid_t test_realm_kdc_pid(void);
/* A server's Kerberos error as a GSS token (OID, TOK_ID 03 00, KRB-ERROR): error CODE (a
 * krb5_error_code such as KRB5KRB_AP_ERR_SKEW), server time STIME, for negio/localhost of the
 * test realm; *N its length. Caller frees; NULL if MIT's library cannot make it. */
uint8_t *test_krb_error_token(long code, long stime, size_t *n);
/* Stops the KDC (connections to it are then refused); test_realm_restart_kdc starts it again. */
void test_realm_stop_kdc(void);
/* Runs kadmin.local -q QUERY in the realm (principals, keytabs); 0 on success. */
int test_realm_kadmin(const char *query);
/* Reads a realm's env file ("export NAME=VALUE" lines; others are skipped) and calls SET for
 * each variable. Lines are read in pieces of at most 1023 bytes. */
typedef void (*test_env_fn)(const char *name, const char *value, void *user);
void test_env_parse(FILE *f, test_env_fn set, void *user);

/* The mechanism paths every conformance test runs over. */
typedef enum test_path {
    PATH_KERBEROS = 0,
    PATH_NEG_KERBEROS,
    PATH_NEG_NTLM,
    PATH_NTLM,
    PATH_COUNT
} test_path;

/* What the connectors run over, from NEGIO_TEST_TRANSPORT ("plain", the default; "tls";
 * "tls-negotiate", with test certificates verified; "tls-negotiate-certfree"): the same suites
 * run over each. Under "tls" there is no GSS mechanism, so every path is the same single one
 * (test_path_count() is 1). The stacked transports keep negio's default levels (seal, minimum
 * sign) so that a suite's expectations hold unchanged; plain TLS is at none. */
typedef enum test_transport {
    TRANSPORT_PLAIN = 0,
    TRANSPORT_TLS,
    TRANSPORT_TLS_NEGOTIATE,
    TRANSPORT_TLS_CERTFREE,
} test_transport;
test_transport test_transport_get(void);
const char *test_transport_name(test_transport t);
int test_path_count(void);
/* Skips the calling cmocka test under plain TLS, printing WHY (cannot apply there). */
#define TEST_SKIP_UNDER_PLAIN_TLS(why)                                                             \
    do {                                                                                           \
        if (test_transport_get() == TRANSPORT_TLS) {                                               \
            fprintf(stderr, "skipped under plain TLS: %s\n", why);                                 \
            skip();                                                                                \
        }                                                                                          \
    } while (0)
/* The test PKI (tests/support/certs.h), made once per process and removed at exit. */
struct test_certs;
const struct test_certs *test_certs_get(void);

const char *test_path_name(test_path p);
negio_mech test_path_mech(test_path p);
/* Each path, for a cmocka test's state: &test_path_ids[P] points at P. */
extern test_path test_path_ids[PATH_COUNT];
/* Four entries of a cmocka test table running FN once on each path, named "FN/<path name>", each
 * with SETUP and TEARDOWN (or NULL) and its state pointing at its path (*(test_path *)*state). */
/* clang-format off */
#define TEST_PER_PATH(fn, setup, teardown)                                                         \
    {#fn "/kerberos", fn, setup, teardown, &test_path_ids[PATH_KERBEROS]},                         \
    {#fn "/negotiate->kerberos", fn, setup, teardown, &test_path_ids[PATH_NEG_KERBEROS]},          \
    {#fn "/negotiate->ntlm", fn, setup, teardown, &test_path_ids[PATH_NEG_NTLM]},                  \
    {#fn "/ntlm", fn, setup, teardown, &test_path_ids[PATH_NTLM]}
/* clang-format on */

/* Configs for a path, with the realm's credentials; the caller may adjust and must free. */
negio_config *test_client_config(test_path p);
negio_config *test_server_config(test_path p);
/* A Kerberos-path client config of MECH that authenticates USER with PASSWORD instead. */
negio_config *test_password_client(negio_mech mech, const char *user, const char *password);

/* Connectors that need no realm (both abort the process if they cannot be made): a server
 * (with LIMITS, when not NULL), whose credentials are only acquired when the first valid handshake
 * token arrives, so that frames failing their header, limit or order checks never reach GSS-API;
 * and a client for negio@localhost with deferred steps, which does no GSS work until stepped. */
negio_conn *test_bare_server(const negio_limits *limits);
negio_conn *test_deferred_client(void);

/* How bytes are cut on their way between the two connectors. */
typedef enum test_split {
    SPLIT_WHOLE = 0, /* everything available at once */
    SPLIT_BYTE,      /* one byte at a time */
    SPLIT_RANDOM,    /* random cuts (seeded) */
    SPLIT_COUNT
} test_split;

#define TEST_MAX_EVENTS 512

typedef struct test_event {
    negio_event_type type;
    negio_level level;
    uint8_t *data; /* copy */
    size_t len;
    uint32_t status;
} test_event;

typedef struct test_side {
    negio_conn *conn;
    test_event events[TEST_MAX_EVENTS];
    int nevents;
    int err;      /* the fatal error next_event returned, 0 if none */
    int deferred; /* run NEGIO_WANT_STEP explicitly */
} test_side;

typedef struct test_pair {
    test_side client;
    test_side server;
    test_split split;
    unsigned seed;
} test_pair;

/* Creates both connectors (configs are not kept). */
void test_pair_init(test_pair *p, const negio_config *client, const negio_config *server,
                    test_split split, unsigned seed);
void test_pair_free(test_pair *p);
/* Frees one side: its events and its connector (a side made outside a pair, too). */
void test_side_free(test_side *s);
/* Moves bytes both ways and collects events until neither side can make progress. */
void test_pair_run(test_pair *p);
/* A frame on its way between the connectors of a pair, for test_pair_run_frames: DIR 0 is
 * client to server, 1 server to client; N counts the frames of DIR from 0; DATA (heap, LEN
 * bytes) is the whole frame, header included, which the hook may change in place, replace with
 * another heap buffer (freeing this one) or empty (LEN 0: nothing is delivered). */
typedef struct test_frame {
    int dir;
    int n;
    uint8_t *data;
    size_t len;
} test_frame;
typedef void (*test_frame_hook)(test_frame *f, void *user);
/* test_pair_run, with every frame each side sends passed through HOOK before the other side
 * receives it, whole (the split policy is ignored). The stream must carry negio frames (no TLS,
 * not the gss-sample profile). */
void test_pair_run_frames(test_pair *p, test_frame_hook hook, void *user);
/* Moves at most one chunk (per the split policy) from FROM's output into TO. Returns the bytes
 * moved. */
size_t test_pair_move(test_pair *p, test_side *from, test_side *to);
/* Processes events on a side after input was fed to it. */
void test_side_drain(test_side *s);
/* Prints each side's error and detail, under WHAT, to stderr: the test's log of a case. */
void test_pair_report(const test_pair *p, const char *what);
/* test_pair_init with CLIENT and SERVER (then freed), whole, then test_pair_run and
 * test_pair_report. */
void test_pair_run_configs(test_pair *p, negio_config *client, negio_config *server,
                           const char *what);
/* Whether MIT's GSS-API takes the Kerberos credentials in CCACHE for expired, as a client given
 * that cache will when it starts its handshake; waits up to MS milliseconds in real time for it
 * (MIT checks its own clock). */
int test_wait_ticket_expired(const char *ccache, int ms);
/* Runs the handshake; returns 1 if both sides reported NEGIO_EV_ESTABLISHED. */
int test_pair_establish(test_pair *p);
/* Counts events of TYPE on a side. */
int test_side_count(const test_side *s, negio_event_type type);
/* The Nth message event on a side, or NULL. */
const test_event *test_side_message(const test_side *s, int n);

/* Takes all pending output of a connector into a heap buffer (caller frees). */
uint8_t *test_take_output(negio_conn *c, size_t *len);
/* A heap copy of the N bytes at P (room for one more, so that N may be 0; caller frees); aborts
 * the process if there is no memory for it. */
uint8_t *test_memdup(const void *p, size_t n);

/* Deterministic random numbers for tests. */
uint32_t test_rand(unsigned *seed);

#endif
