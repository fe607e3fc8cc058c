/* Interoperability with MIT's gss-sample programs (Debian krb5-gss-samples): negio's gss-sample
 * profile as a client of gss-server and as a server for gss-client, against the real KDC, for
 * Kerberos, SPNEGO and NTLM and the programs' message options. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/clock.h"
#include "support/net.h"
#include "support/support.h"

/* Runs a connector over a blocking socket until EVENTS of TYPE were seen, an error, or EOF. */
typedef struct drive {
    negio_conn *c;
    int fd;
    int acks, messages, closed, err;
    negio_level levels[16];
    char texts[16][64];
} drive;

static void flush_out(drive *d)
{
    size_t n;
    const uint8_t *out;
    while ((out = negio_conn_send_buf(d->c, &n)) != NULL && n > 0) {
        ssize_t w = write(d->fd, out, n);
        if (w <= 0)
            return;
        negio_conn_send_done(d->c, (size_t)w);
    }
}

static int pump(drive *d, int *counter, int want, int timeout_ms)
{
    for (;;) {
        negio_event ev;
        int rc;
        while ((rc = negio_conn_next_event(d->c, &ev)) > 0) {
            if (ev.type == NEGIO_EV_ACKNOWLEDGED)
                d->acks++;
            if (ev.type == NEGIO_EV_MESSAGE && d->messages < 16) {
                d->levels[d->messages] = ev.level;
                snprintf(d->texts[d->messages], 64, "%.*s", (int)(ev.len < 63 ? ev.len : 63),
                         (const char *)ev.data);
                d->messages++;
            }
            if (ev.type == NEGIO_EV_CLOSED)
                d->closed = 1;
        }
        flush_out(d);
        if (rc < 0) {
            d->err = rc;
            return rc;
        }
        if (counter != NULL && *counter >= want)
            return 0;
        if (d->closed)
            return 0;
        struct pollfd pfd = {d->fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -1000; /* timeout */
        uint8_t buf[16384];
        ssize_t r = read(d->fd, buf, sizeof(buf));
        if (r > 0)
            negio_conn_feed(d->c, buf, (size_t)r);
        else
            negio_conn_feed_eof(d->c);
    }
}

static negio_config *sample(negio_config *cfg)
{
    assert_int_equal(negio_config_set_profile(cfg, NEGIO_PROFILE_GSS_SAMPLE), 0);
    return cfg;
}

static pid_t spawn(char *const argv[], const char *log)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

/* negio (client, gss-sample profile) -> MIT gss-server: each path, each level, several messages
 * on a connection and several connections; every MIC the server returns is verified. */
static void negio_client_talks_to_mit_gss_server(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    uint16_t port = test_tcp_free_port();
    assert_true(port != 0);
    char portstr[16], log[400];
    snprintf(portstr, sizeof(portstr), "%u", port);
    snprintf(log, sizeof(log), "%s/gss-server.log", r->dir);
    char *argv[] = {"gss-server",      "-port",           portstr, "-keytab",
                    (char *)r->keytab, "negio@localhost", NULL};
    pid_t srv = spawn(argv, log);
    test_path paths[] = {PATH_KERBEROS, PATH_NEG_KERBEROS, PATH_NTLM, PATH_NEG_NTLM};
    for (size_t i = 0; i < 4; i++) {
        for (int conn = 0; conn < 2; conn++) { /* like -ccount 2 */
            negio_config *cc = sample(test_client_config(paths[i]));
            drive d = {0};
            assert_int_equal(negio_conn_new(&d.c, cc), 0);
            negio_config_del(cc);
            /* at first, until gss-server listens: its port refuses connections */
            TEST_POLL_UNTIL((d.fd = test_tcp_connect(port)) >= 0, 5000);
            assert_true(d.fd >= 0);
            negio_level levels[] = {NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_NONE,
                                    NEGIO_LEVEL_SEAL};
            for (int m = 0; m < 4; m++) { /* like -mcount, one level each */
                char msg[64];
                int n = snprintf(msg, sizeof(msg), "%s message %d", test_path_name(paths[i]), m);
                assert_int_equal(negio_conn_write(d.c, msg, (size_t)n, levels[m]), 0);
            }
            int rc = pump(&d, &d.acks, 4, 10000);
            if (rc != 0)
                fprintf(stderr, "%s: %s (%s)\n", test_path_name(paths[i]), negio_err_name(rc),
                        negio_conn_error_detail(d.c));
            assert_int_equal(rc, 0);
            assert_int_equal(d.acks, 4);
            negio_auth_info ci = {.size = sizeof(ci)};
            assert_int_equal(negio_conn_auth_info(d.c, &ci), 0);
            assert_int_equal(ci.mech, test_path_mech(paths[i]));
            assert_int_equal(negio_conn_close(d.c, 0, NULL), 0); /* the closing NOOP */
            flush_out(&d);
            negio_conn_del(d.c);
            close(d.fd);
        }
    }
    kill(srv, SIGTERM);
    wait_exit(srv);
    const char *out = slurp(log);
    char alice[128];
    snprintf(alice, sizeof(alice), "Accepted connection: \"alice@%s\"", r->realm);
    assert_non_null(strstr(out, alice));
    assert_non_null(strstr(out, "Accepted connection: \"NEGIO\\alice\""));
    assert_null(strstr(out, "Warning"));
}

/* MIT gss-client -> negio (server, gss-sample profile) with one gss-client option set. */
typedef struct serve_job {
    int lfd;
    int conns;
    negio_level min;
    drive d[4];
} serve_job;

static void *serve(void *arg)
{
    serve_job *j = arg;
    for (int k = 0; k < j->conns; k++) {
        drive *d = &j->d[k];
        d->fd = accept(j->lfd, NULL, NULL);
        negio_config *sc = sample(test_server_config(PATH_KERBEROS));
        negio_config_set_min_level(sc, j->min);
        negio_conn_new(&d->c, sc);
        negio_config_del(sc);
        pump(d, NULL, 0, 10000); /* until the closing NOOP, an error or EOF */
        close(d->fd);
    }
    return NULL;
}

static int run_gss_client(const char *const *opts, int conns, negio_level min, serve_job *j,
                          char *out, size_t cap)
{
    const test_realm *r = test_realm_get();
    memset(j, 0, sizeof(*j));
    j->conns = conns;
    j->min = min;
    uint16_t lport;
    j->lfd = test_tcp_listen(&lport);
    if (j->lfd < 0)
        abort();
    char port[16];
    snprintf(port, sizeof(port), "%u", lport);
    const char *argv[32];
    int n = 0;
    argv[n++] = "gss-client";
    argv[n++] = "-port";
    argv[n++] = port;
    for (const char *const *o = opts; *o; o++)
        argv[n++] = *o;
    argv[n++] = "127.0.0.1";
    argv[n++] = "negio@localhost";
    argv[n++] = "hello from gss-client";
    argv[n] = NULL;
    pthread_t t;
    pthread_create(&t, NULL, serve, j);
    char log[400];
    snprintf(log, sizeof(log), "%s/gss-client.log", r->dir);
    int rc = wait_exit(spawn((char *const *)argv, log));
    pthread_join(t, NULL);
    close(j->lfd);
    snprintf(out, cap, "%s", slurp(log));
    return rc;
}

static void mit_gss_client_talks_to_negio_server(void **state)
{
    (void)state;
    const test_realm *r = test_realm_get();
    static const char *ntlm_mech = "{1 3 6 1 4 1 311 2 2 10}";
    struct {
        const char *opts[12];
        int conns, messages;
        negio_level level;
        const char *peer;
    } cases[] = {
        {{NULL}, 1, 1, NEGIO_LEVEL_SEAL, "alice@"},
        {{"-spnego", NULL}, 1, 1, NEGIO_LEVEL_SEAL, "alice@"},
        {{"-nx", NULL}, 1, 1, NEGIO_LEVEL_SIGN, "alice@"},
        {{"-nw", NULL}, 1, 1, NEGIO_LEVEL_NONE, "alice@"},
        {{"-nm", NULL}, 1, 1, NEGIO_LEVEL_SEAL, "alice@"},
        {{"-mcount", "3", NULL}, 1, 3, NEGIO_LEVEL_SEAL, "alice@"},
        {{"-ccount", "3", "-spnego", NULL}, 3, 1, NEGIO_LEVEL_SEAL, "alice@"},
        /* gss-client never asks NTLM for confidentiality: the context seals nothing it could
         * vouch for, so wrapped messages count as signed whatever gss-ntlmssp's conf_state says */
        {{"-mech", ntlm_mech, "-user", "alice", "-pass", r->alice_pw, "-q", NULL},
         1,
         1,
         NEGIO_LEVEL_SIGN,
         "alice"},
        {{"-mech", ntlm_mech, "-user", "alice", "-pass", r->alice_pw, "-q", "-nx", "-mcount", "3",
          NULL},
         1,
         3,
         NEGIO_LEVEL_SIGN,
         "alice"},
        {{"-mech", ntlm_mech, "-user", "alice", "-pass", r->alice_pw, "-q", "-nw", "-nm", NULL},
         1,
         1,
         NEGIO_LEVEL_NONE,
         "alice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        serve_job j;
        char out[65536];
        int rc =
            run_gss_client(cases[i].opts, cases[i].conns, NEGIO_LEVEL_NONE, &j, out, sizeof(out));
        if (rc != 0 || j.d[0].err != 0)
            fprintf(stderr, "case %zu (%s ...): gss-client exit %d\n%s\nnegio: %s %s\n", i,
                    cases[i].opts[0] ? cases[i].opts[0] : "-", rc, out, negio_err_name(j.d[0].err),
                    negio_conn_error_detail(j.d[0].c));
        assert_int_equal(rc, 0);
        for (int k = 0; k < cases[i].conns; k++) {
            assert_int_equal(j.d[k].err, 0);
            assert_int_equal(j.d[k].messages, cases[i].messages);
            assert_true(j.d[k].closed);
            for (int m = 0; m < cases[i].messages; m++) {
                assert_string_equal(j.d[k].texts[m], "hello from gss-client");
                assert_int_equal(j.d[k].levels[m], cases[i].level);
            }
            negio_auth_info si = {.size = sizeof(si)};
            assert_int_equal(negio_conn_auth_info(j.d[k].c, &si), 0);
            assert_non_null(strstr(si.peer, cases[i].peer));
            negio_conn_del(j.d[k].c);
        }
        /* gss-client verified the MIC unless asked not to request one */
        int nm = 0;
        for (const char *const *o = cases[i].opts; *o; o++)
            nm |= strcmp(*o, "-nm") == 0;
        int quiet = 0;
        for (const char *const *o = cases[i].opts; *o; o++)
            quiet |= strcmp(*o, "-q") == 0;
        if (!nm && !quiet)
            assert_non_null(strstr(out, "Signature verified."));
    }
}

/* The negio side keeps its own minimum: an unwrapped gss-client message against a sign
 * minimum is refused, and gss-client sees the connection end. */
static void negio_server_refuses_unwrapped_messages_below_its_minimum(void **state)
{
    (void)state;
    const char *opts[] = {"-nw", NULL};
    serve_job j;
    char out[65536];
    int rc = run_gss_client(opts, 1, NEGIO_LEVEL_SIGN, &j, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    assert_int_equal(j.d[0].err, NEGIO_ERR_DOWNGRADE);
    assert_int_equal(j.d[0].messages, 0);
    negio_conn_del(j.d[0].c);
}

int main(void)
{
    test_realm_get();
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(negio_client_talks_to_mit_gss_server),
        cmocka_unit_test(mit_gss_client_talks_to_negio_server),
        cmocka_unit_test(negio_server_refuses_unwrapped_messages_below_its_minimum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
