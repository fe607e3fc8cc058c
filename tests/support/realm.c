#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <krb5.h>

#include "support/support.h"

static test_realm realm;
static int started;
static int kdc_offset;

static void die(const char *what)
{
    fprintf(stderr, "test realm: %s\n", what);
    exit(1);
}

static void read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)cap, f) == NULL)
        die(path);
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

void test_env_parse(FILE *f, test_env_fn set, void *user)
{
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "export ", 7) != 0)
            continue;
        char *eq = strchr(line + 7, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        set(line + 7, eq + 1, user);
    }
}

static void set_env(const char *name, const char *value, void *user)
{
    (void)user;
    setenv(name, value, 1);
}

static void load_env(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/env", realm.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("no env file");
    test_env_parse(f, set_env, NULL);
    fclose(f);
}

static void run_script(const char *verb)
{
    const char *script = getenv("NEGIO_TEST_REALM_SCRIPT");
    if (script == NULL)
        die("NEGIO_TEST_REALM_SCRIPT is not set (run through ctest)");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* keep the test's stdout clean for the test runner */
        dup2(2, 1);
        char off[32];
        snprintf(off, sizeof(off), "%d", kdc_offset);
        execl("/bin/bash", "bash", script, verb, realm.dir, off, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("realm script failed");
}

static void stop_realm(void)
{
    if (started)
        run_script("stop");
    started = 0;
}

static void remove_dir(void)
{
    char cmd[400];
    if (realm.dir[0] != '\0' && strncmp(realm.dir, "/tmp/negio-test-", 16) == 0 &&
        getenv("NEGIO_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", realm.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test realm: could not remove %s\n", realm.dir);
    }
}

static void at_exit(void)
{
    stop_realm();
    remove_dir();
}

const test_realm *test_realm_get(void)
{
    if (started)
        return &realm;
    snprintf(realm.dir, sizeof(realm.dir), "/tmp/negio-test-XXXXXX");
    if (mkdtemp(realm.dir) == NULL)
        die("mkdtemp");
    char owner[32];
    snprintf(owner, sizeof(owner), "%d", (int)getpid());
    setenv("NEGIO_REALM_OWNER_PID", owner, 1); /* the KDC goes away with this process */
    run_script("start");
    started = 1;
    atexit(at_exit);
    load_env();
    char path[300];
    snprintf(path, sizeof(path), "%s/alice.password", realm.dir);
    read_line(path, realm.alice_pw, sizeof(realm.alice_pw));
    snprintf(path, sizeof(path), "%s/bob.password", realm.dir);
    read_line(path, realm.bob_pw, sizeof(realm.bob_pw));
    snprintf(realm.realm, sizeof(realm.realm), "%s", getenv("NEGIO_REALM"));
    realm.kdc_port = atoi(getenv("NEGIO_KDC_PORT"));
    snprintf(realm.keytab, sizeof(realm.keytab), "%s/service.keytab", realm.dir);
    snprintf(realm.other_keytab, sizeof(realm.other_keytab), "%s/other.keytab", realm.dir);
    snprintf(realm.ccache, sizeof(realm.ccache), "FILE:%s/cc", realm.dir);
    snprintf(realm.empty_ccache, sizeof(realm.empty_ccache), "FILE:%s/no-such-cc", realm.dir);
    snprintf(realm.ntlm_file, sizeof(realm.ntlm_file), "%s/ntlm_users", realm.dir);
    snprintf(realm.client_keytab, sizeof(realm.client_keytab), "%s/carol.keytab", realm.dir);
    /* a crashed test must not leave a KDC behind forever: the KDC is ours to stop */
    signal(SIGPIPE, SIG_IGN);
    return &realm;
}

pid_t test_realm_kdc_pid(void)
{
    (void)test_realm_get();
    char path[sizeof(realm.dir) + 16], line[32] = "";
    snprintf(path, sizeof(path), "%s/kdc.pid", realm.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL)
        die("reading kdc.pid");
    fclose(f);
    return (pid_t)atoi(line);
}

void test_realm_stop_kdc(void)
{
    (void)test_realm_get();
    run_script("stop");
}

void test_realm_restart_kdc(int offset_seconds)
{
    (void)test_realm_get();
    kdc_offset = offset_seconds;
    run_script("restart-kdc");
}

int test_realm_kadmin(const char *query)
{
    (void)test_realm_get();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) { /* kadmin.local chatters on both; the caller checks the result */
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("kadmin.local", "kadmin.local", "-r", realm.realm, "-q", query, (char *)NULL);
        execl("/usr/sbin/kadmin.local", "kadmin.local", "-r", realm.realm, "-q", query,
              (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

uint8_t *test_krb_error_token(long code, long stime, size_t *n)
{
    /* the Kerberos mechanism's OID and TOK_ID 03 00 (RFC 4121 section 4.1: KRB_ERROR) */
    static const uint8_t head[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                   0x12, 0x01, 0x02, 0x02, 0x03, 0x00};
    krb5_context ctx;
    if (krb5_init_context(&ctx) != 0)
        return NULL;
    krb5_error e;
    memset(&e, 0, sizeof(e));
    e.stime = (krb5_timestamp)stime;
    e.error = (krb5_ui_4)(code - ERROR_TABLE_BASE_krb5);
    char name[2100];
    snprintf(name, sizeof(name), "negio/localhost@%s", test_realm_get()->realm);
    krb5_data d = {0};
    uint8_t *t = NULL;
    if (krb5_parse_name(ctx, name, &e.server) == 0 && krb5_mk_error(ctx, &e, &d) == 0 &&
        sizeof(head) + d.length < 0x10000 && (t = malloc(4 + sizeof(head) + d.length)) != NULL) {
        size_t inner = sizeof(head) + d.length;
        t[0] = 0x60;
        t[1] = 0x82;
        t[2] = (uint8_t)(inner >> 8);
        t[3] = (uint8_t)inner;
        memcpy(t + 4, head, sizeof(head));
        memcpy(t + 4 + sizeof(head), d.data, d.length);
        *n = 4 + inner;
    }
    krb5_free_data_contents(ctx, &d);
    krb5_free_principal(ctx, e.server);
    krb5_free_context(ctx);
    return t;
}
