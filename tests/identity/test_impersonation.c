/* Impersonation against the real kernel: run as root (CI is), with accounts from nss_wrapper
 * (a private passwd and group file, so the machine's own are never touched). Without root the
 * tests skip with a message: the kernel checks they make cannot be faked. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity/identity.h"
#include "negio/identity.h"

#ifndef NEGIO_TEST_HOOKS
#error                                                                                             \
    "test_impersonation needs negio__identity_set_fail_hook, in the test build (negio_hook_static)"
#endif

#define ALICE 2001
#define BOB 2002
#define SHARED_GID 3000

static char dir[] = "/tmp/negio-imp-XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static void thread_ids(uid_t *r, uid_t *e, uid_t *s, gid_t *g)
{
    gid_t rg, sg;
    getresuid(r, e, s);
    getresgid(&rg, g, &sg);
}

static negio_user *lookup(const char *name)
{
    negio_user *u = NULL;
    char why[256] = "";
    int rc = negio_user_lookup(&u, name, NULL, why, sizeof(why));
    if (rc != 0)
        fail_msg("lookup %s: %s (%s)", name, negio_strerror(rc), why);
    return u;
}

struct write_job {
    const char *path;
    int err;
};

static int write_as(void *arg)
{
    struct write_job *j = arg;
    int fd = open(j->path, O_CREAT | O_WRONLY | O_TRUNC, 0640);
    if (fd < 0) {
        j->err = errno;
        return -1;
    }
    close(fd);
    return 0;
}

static int read_as(void *arg)
{
    struct write_job *j = arg;
    int fd = open(j->path, O_RDONLY);
    if (fd < 0) {
        j->err = errno;
        return -1;
    }
    close(fd);
    return 0;
}

/* A file written while impersonating alice belongs to alice, and the thread is root again. */
static void a_file_written_as_alice_belongs_to_alice(void **state)
{
    (void)state;
    negio_user *alice = lookup("alice");
    assert_int_equal(negio_user_uid(alice), ALICE);
    char path[256];
    snprintf(path, sizeof(path), "%s/by-alice", dir);
    struct write_job j = {path, 0};
    int result = 99;
    assert_int_equal(negio_impersonate(alice, write_as, &j, &result), NEGIO_OK);
    assert_int_equal(result, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, ALICE);
    assert_int_equal(st.st_gid, ALICE);
    uid_t r, e, s;
    gid_t g;
    thread_ids(&r, &e, &s, &g);
    assert_int_equal(r, 0);
    assert_int_equal(e, 0);
    assert_int_equal(s, 0);
    assert_int_equal(g, 0);
    negio_user_del(alice);
}

/* The kernel refuses alice a file only bob may read; the same call as root succeeds. */
static void a_file_only_bob_may_read_is_denied_to_alice(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof(path), "%s/bobs-secret", dir);
    write_file(path, "for bob\n");
    assert_int_equal(chown(path, BOB, BOB), 0);
    assert_int_equal(chmod(path, 0600), 0);
    negio_user *alice = lookup("alice"), *bob = lookup("bob");
    struct write_job j = {path, 0};
    int result = 0;
    assert_int_equal(negio_impersonate(alice, read_as, &j, &result), NEGIO_OK);
    assert_int_equal(result, -1);
    assert_int_equal(j.err, EACCES); /* no capability leaked into the function */
    j.err = 0;
    assert_int_equal(negio_impersonate(bob, read_as, &j, &result), NEGIO_OK);
    assert_int_equal(result, 0);
    assert_int_equal(read_as(&j), 0); /* and root, afterwards, may again */
    negio_user_del(alice);
    negio_user_del(bob);
}

/* Supplementary groups are the user's own while impersonating. */
static int groups_probe(void *arg)
{
    gid_t *out = arg;
    int n = getgroups(8, out);
    return n;
}

static void supplementary_groups_are_the_users(void **state)
{
    (void)state;
    negio_user *alice = lookup("alice");
    gid_t groups[8] = {0};
    int n = 0;
    assert_int_equal(negio_impersonate(alice, groups_probe, groups, &n), NEGIO_OK);
    int has_shared = 0, has_root = 0;
    for (int i = 0; i < n; i++) {
        has_shared |= groups[i] == SHARED_GID;
        has_root |= groups[i] == 0;
    }
    assert_true(has_shared);
    assert_false(has_root);
    negio_user_del(alice);
}

/* Two threads impersonate different users at the same moment; a third, meanwhile, still has
 * the service's uid, gid and groups. */
static pthread_barrier_t inside, done;

struct who {
    negio_user *user;
    uid_t seen_uid;
    gid_t seen_gid;
};

static int hold_inside(void *arg)
{
    struct who *w = arg;
    uid_t r, e, s;
    thread_ids(&r, &e, &s, &w->seen_gid);
    w->seen_uid = e;
    pthread_barrier_wait(&inside); /* everyone is switched now */
    pthread_barrier_wait(&done);   /* the observer has looked */
    return 0;
}

static void *impersonating_thread(void *arg)
{
    struct who *w = arg;
    if (negio_impersonate(w->user, hold_inside, w, NULL) != NEGIO_OK)
        abort();
    return NULL;
}

static void other_threads_keep_the_service_identity(void **state)
{
    (void)state;
    pthread_barrier_init(&inside, NULL, 3);
    pthread_barrier_init(&done, NULL, 3);
    struct who a = {lookup("alice"), 0, 0}, b = {lookup("bob"), 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, impersonating_thread, &a);
    pthread_create(&tb, NULL, impersonating_thread, &b);
    pthread_barrier_wait(&inside);
    uid_t r, e, s;
    gid_t g;
    thread_ids(&r, &e, &s, &g);
    int ng = getgroups(0, NULL);
    /* the kernel's own view of this thread, too */
    char line[256], path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
    FILE *f = fopen(path, "r");
    int proc_uid = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Uid: %d", &proc_uid) == 1)
            break;
    if (f)
        fclose(f);
    pthread_barrier_wait(&done);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.seen_uid, ALICE);
    assert_int_equal(b.seen_uid, BOB);
    assert_int_equal(a.seen_gid, ALICE);
    assert_int_equal(b.seen_gid, BOB);
    assert_int_equal(r, 0);
    assert_int_equal(e, 0);
    assert_int_equal(s, 0);
    assert_int_equal(g, 0);
    assert_int_equal(proc_uid, 0);
    assert_int_equal(ng, getgroups(0, NULL));
    negio_user_del(a.user);
    negio_user_del(b.user);
    pthread_barrier_destroy(&inside);
    pthread_barrier_destroy(&done);
}

static int failing(void *arg)
{
    (void)arg;
    errno = EIO;
    return -7;
}

/* An error in the application's function is its own business: the thread comes back. */
static void the_thread_reverts_after_a_failing_function(void **state)
{
    (void)state;
    negio_user *alice = lookup("alice");
    int result = 0;
    assert_int_equal(negio_impersonate(alice, failing, NULL, &result), NEGIO_OK);
    assert_int_equal(result, -7);
    uid_t r, e, s;
    gid_t g;
    thread_ids(&r, &e, &s, &g);
    assert_int_equal(e, 0);
    assert_int_equal(g, 0);
    negio_user_del(alice);
}

static int fail_at;
static int hook(int step)
{
    return step == fail_at;
}

static int must_not_run(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

/* A switch that fails half-way is undone, and the function never runs. */
static void a_switch_failing_at_any_step_is_undone(void **state)
{
    (void)state;
    negio_user *alice = lookup("alice");
    int before_groups = getgroups(0, NULL);
    for (fail_at = 1; fail_at <= 3; fail_at++) {
        negio__identity_set_fail_hook(hook);
        int ran = 0;
        int rc = negio_impersonate(alice, must_not_run, &ran, NULL);
        negio__identity_set_fail_hook(NULL);
        assert_int_equal(rc, NEGIO_ERR_PERMISSION);
        assert_int_equal(ran, 0);
        uid_t r, e, s;
        gid_t g;
        thread_ids(&r, &e, &s, &g);
        assert_int_equal(r + e + s, 0);
        assert_int_equal(g, 0);
        assert_int_equal(getgroups(0, NULL), before_groups);
    }
    negio_user_del(alice);
}

/* Refused names and accounts: uid 0, system accounts, and names no account may have. */
static void root_system_accounts_and_bad_names_are_refused(void **state)
{
    (void)state;
    negio_user *u = NULL;
    char why[256];
    assert_int_equal(negio_user_lookup(&u, "root", NULL, why, sizeof(why)), NEGIO_ERR_IDENTITY);
    assert_non_null(strstr(why, "uid 0"));
    assert_int_equal(negio_user_lookup(&u, "sysacct", NULL, why, sizeof(why)), NEGIO_ERR_IDENTITY);
    assert_non_null(strstr(why, "system account"));
    negio_identity_policy allow = {.allow_root = 1, .allow_system = 1};
    assert_int_equal(negio_user_lookup(&u, "root", &allow, why, sizeof(why)), NEGIO_OK);
    negio_user_del(u);
    assert_int_equal(negio_user_lookup(&u, "sysacct", &allow, why, sizeof(why)), NEGIO_OK);
    negio_user_del(u);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[299] = '\0';
    const char *bad[] = {"", "a/b", "a:b", "alice\n", "al\rice", "..", longname};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = negio_user_lookup(&u, bad[i], &allow, why, sizeof(why));
        if (strcmp(bad[i], "..") == 0) /* a legal name, just not an account */
            assert_int_equal(rc, NEGIO_ERR_IDENTITY);
        else
            assert_int_equal(rc, NEGIO_ERR_IDENTITY);
        assert_null(u);
    }
    assert_false(negio__local_name_ok("alice\0root", 10));
    assert_int_equal(negio_user_lookup(&u, "nobody-here", NULL, why, sizeof(why)),
                     NEGIO_ERR_IDENTITY);
}

/* A service that is not root but holds CAP_SETUID and CAP_SETGID can impersonate, and comes
 * back to its own uid with its capabilities; one without them cannot, and nothing changes. */
static int child_service(int with_caps)
{
    if (prctl(PR_SET_KEEPCAPS, 1UL, 0, 0, 0) < 0)
        return 10;
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, 5000, 5000, 5000) < 0 ||
        syscall(SYS_setresuid, 5000, 5000, 5000) < 0)
        return 11;
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (with_caps) {
        d[0].permitted = d[0].effective = (1u << CAP_SETUID) | (1u << CAP_SETGID);
    }
    if (syscall(SYS_capset, &h, d) < 0)
        return 12;
    negio_identity_policy p = {0};
    negio_user *alice = NULL;
    if (negio_user_lookup(&alice, "alice", &p, NULL, 0) != NEGIO_OK)
        return 13;
    char path[256];
    snprintf(path, sizeof(path), "%s/by-capable-service-%d", dir, with_caps);
    struct write_job j = {path, 0};
    int result = -1;
    int rc = negio_impersonate(alice, write_as, &j, &result);
    negio_user_del(alice);
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    if (r != 5000 || e != 5000 || s != 5000)
        return 14;
    struct __user_cap_data_struct after[2];
    if (syscall(SYS_capget, &h, after) < 0 || after[0].effective != d[0].effective ||
        after[0].permitted != d[0].permitted)
        return 15;
    if (!with_caps)
        return rc == NEGIO_ERR_PERMISSION ? 0 : 16;
    struct stat st;
    if (rc != NEGIO_OK || result != 0 || stat(path, &st) != 0 || st.st_uid != ALICE)
        return 17;
    return 0;
}

static void a_capable_non_root_service_can_and_a_plain_one_cannot(void **state)
{
    (void)state;
    for (int with_caps = 1; with_caps >= 0; with_caps--) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_service(with_caps));
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("service with_caps=%d: child status %d", with_caps,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    }
}

int main(void)
{
    if (geteuid() != 0) {
        printf("test_impersonation: skipped: needs root for real kernel identity checks\n");
        return 0;
    }
    const char *pw = getenv("NSS_WRAPPER_PASSWD"), *gr = getenv("NSS_WRAPPER_GROUP");
    if (pw == NULL || gr == NULL || getenv("LD_PRELOAD") == NULL) {
        fprintf(stderr, "run through ctest: needs nss_wrapper\n");
        return 1;
    }
    write_file(pw, "root:x:0:0:root:/root:/bin/sh\n"
                   "sysacct:x:500:500:system:/:/usr/sbin/nologin\n"
                   "alice:x:2001:2001:Alice:/home/alice:/bin/sh\n"
                   "bob:x:2002:2002:Bob:/home/bob:/bin/sh\n");
    write_file(gr, "root:x:0:\nsysacct:x:500:\nalice:x:2001:\nbob:x:2002:\n"
                   "shared:x:3000:alice,bob\n");
    if (mkdtemp(dir) == NULL || chmod(dir, 01777) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_file_written_as_alice_belongs_to_alice),
        cmocka_unit_test(a_file_only_bob_may_read_is_denied_to_alice),
        cmocka_unit_test(supplementary_groups_are_the_users),
        cmocka_unit_test(other_threads_keep_the_service_identity),
        cmocka_unit_test(the_thread_reverts_after_a_failing_function),
        cmocka_unit_test(a_switch_failing_at_any_step_is_undone),
        cmocka_unit_test(root_system_accounts_and_bad_names_are_refused),
        cmocka_unit_test(a_capable_non_root_service_can_and_a_plain_one_cannot),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
