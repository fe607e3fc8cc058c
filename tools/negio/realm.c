/*
 * negio realm start|stop DIR: a throwaway MIT Kerberos realm plus NTLM accounts in one directory,
 * for tests and demos. Everything lives in DIR (database, stash, keytab, credential cache, replay
 * cache, logs); nothing touches /etc/krb5.conf or a system KDC. The KDC runs detached from the
 * command, listening on 127.0.0.1 only, and is stopped by its pid file.
 *
 * The realm is described by one struct realm_spec; the configuration files, the environment
 * (DIR/env) and the commands that populate the database are all derived from it, so a new realm
 * option (for example auth_to_local rules for the realm stanza of krb5.conf) is one field in the
 * spec, one entry in realm_options[] with its case in realm_take(), and a few lines in the writer
 * that uses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "opt.h"

#define DEFAULT_REALM "NEGIO.TEST"
#define NTLM_DOMAIN "NEGIO"
#define SERVICE_PRINCIPAL "negio/localhost"
#define OTHER_PRINCIPAL "other/localhost" /* a second service: the far end of a double hop */
#define MAX_MAP_COMPONENTS 8
#define NTLM_MECH_LINE                                                                             \
    "gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 /usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so"
#define PASSWORD_LEN 24
#define KDC_START_TIMEOUT_MS 10000
#define KDC_STOP_TIMEOUT_MS 5000
/* DIR plus the longest leaf name ("alice.password.tmp", "service.keytab", ...) fits in PATH_MAX */
#define MAX_DIR_LEN (PATH_MAX - 64)

struct realm_spec {
    char dir[PATH_MAX]; /* absolute */
    char name[256];     /* the realm */
    unsigned port;      /* the KDC's TCP and UDP port on 127.0.0.1 */
    /* --map: principals (without the realm) and their local users */
    struct cli_map maps[CLI_MAX_MAPS];
    size_t nmaps;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("negio realm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* OUT = DIR/LEAF. The directory's length was checked against MAX_DIR_LEN. */
static void path_in(char out[PATH_MAX], const struct realm_spec *r, const char *leaf)
{
    if (snprintf(out, PATH_MAX, "%s/%s", r->dir, leaf) >= PATH_MAX)
        abort();
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- files ------------------------------------------------------------------------------- */

/* Writes TEXT to DIR/LEAF with MODE, replacing it atomically (a temporary file, then rename). */
static int write_file(const struct realm_spec *r, const char *leaf, mode_t mode, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    path_in(path, r, leaf);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        abort();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return fail("cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            unlink(tmp);
            return fail("cannot write %s: %s", tmp, strerror(err));
        }
        off += (size_t)n;
    }
    if (fchmod(fd, mode) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return fail("cannot write %s: %s", path, strerror(err));
    }
    return 0;
}

/* A growing text buffer for configuration files; aborts on allocation failure (a CLI). */
struct text {
    char *s;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s == NULL ? NULL : t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (t->s != NULL && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 256;
        char *s = realloc(t->s, cap);
        if (s == NULL)
            abort();
        t->s = s;
        t->cap = cap;
    }
}

/* Frees T, wiping it first (it may hold passwords). */
static void text_free(struct text *t)
{
    if (t->s != NULL)
        explicit_bzero(t->s, t->cap);
    free(t->s);
    memset(t, 0, sizeof(*t));
}

/* Appends S to T as a POSIX extended regular expression matching S literally (S holds only
 * letters, digits and "._-/@": only '.' is special). */
static void regex_literal(struct text *t, const char *s)
{
    for (; *s; s++)
        text_add(t, *s == '.' ? "\\." : "%c", *s);
}

/* One auth_to_local rule per --map: it matches exactly PRINCIPAL@REALM (unlike
 * auth_to_local_names, whose tag is looked up without the realm, so that it would also map a
 * principal of the same name from any other realm) and replaces it with the local user. */
static void add_map_rules(struct text *t, const struct realm_spec *r)
{
    for (size_t i = 0; i < r->nmaps; i++) {
        const struct cli_map *m = &r->maps[i];
        size_t n = 1;
        for (const char *p = m->principal; *p; p++)
            n += *p == '/';
        text_add(t, "    auth_to_local = RULE:[%zu:", n);
        for (size_t c = 1; c <= n; c++)
            text_add(t, "%s$%zu", c > 1 ? "/" : "", c);
        text_add(t, "@$0](^");
        regex_literal(t, m->principal);
        text_add(t, "@");
        regex_literal(t, r->name);
        text_add(t, "$)s/^.*$/%s/\n", m->local);
    }
    if (r->nmaps > 0)
        text_add(t, "    auth_to_local = DEFAULT\n");
}

/* The same settings as scripts/realm.sh: no DNS, no reverse lookups, TCP to the KDC. */
static int write_krb5_conf(const struct realm_spec *r)
{
    struct text t = {0};
    text_add(&t,
             "[libdefaults]\n"
             "  default_realm = %s\n"
             "  dns_lookup_kdc = false\n"
             "  dns_lookup_realm = false\n"
             "  rdns = false\n"
             "  udp_preference_limit = 1\n"
             "  forwardable = true\n"
             "  ignore_acceptor_hostname = false\n",
             r->name);
    /* the realm stanza: per-realm rules such as auth_to_local go inside it */
    text_add(&t,
             "[realms]\n"
             "  %s = {\n"
             "    kdc = 127.0.0.1:%u\n",
             r->name, r->port);
    add_map_rules(&t, r);
    text_add(&t, "  }\n");
    text_add(&t,
             "[domain_realm]\n"
             "  localhost = %s\n",
             r->name);
    int rc = write_file(r, "krb5.conf", 0600, t.s);
    text_free(&t);
    return rc;
}

static int write_kdc_conf(const struct realm_spec *r)
{
    struct text t = {0};
    text_add(&t,
             "[kdcdefaults]\n"
             "  kdc_listen = 127.0.0.1:%u\n"
             "  kdc_tcp_listen = 127.0.0.1:%u\n"
             "[realms]\n"
             "  %s = {\n"
             "    database_name = %s/principal\n"
             "    key_stash_file = %s/stash\n"
             "    kdc_listen = 127.0.0.1:%u\n"
             "    kdc_tcp_listen = 127.0.0.1:%u\n"
             "    max_life = 10h\n"
             "    max_renewable_life = 7d\n"
             "  }\n"
             "[logging]\n"
             "  kdc = FILE:%s/kdc.log\n"
             "  default = FILE:%s/kdc.log\n",
             r->port, r->port, r->name, r->dir, r->dir, r->port, r->port, r->dir, r->dir);
    int rc = write_file(r, "kdc.conf", 0600, t.s);
    text_free(&t);
    return rc;
}

/* ---- environment ------------------------------------------------------------------------- */

#define ENV_VARS 13

struct env_var {
    const char *name;
    char value[PATH_MAX + 16];
};

/* Every variable that points Kerberos, GSS and NTLM at the realm: written to DIR/env and set in
 * this process, so that the commands run below (and the KDC) see exactly what users will. */
static void realm_env(const struct realm_spec *r, struct env_var env[ENV_VARS])
{
    static const struct {
        const char *name, *fmt;
    } vars[ENV_VARS] = {
        {"KRB5_CONFIG", "%s/krb5.conf"},
        {"KRB5_KDC_PROFILE", "%s/kdc.conf"},
        {"KRB5CCNAME", "FILE:%s/cc"},
        {"KRB5_KTNAME", "FILE:%s/service.keytab"},
        {"KRB5_CLIENT_KTNAME", "FILE:%s/client.keytab"},
        {"KRB5RCACHEDIR", "%s"},
        {"GSS_MECH_CONFIG", "%s/mech.conf"},
        {"NTLM_USER_FILE", "%s/ntlm_users"},
        /* gss-ntlmssp asks winbind for these unless they are set, and libwbclient is not safe
         * when two threads do so at once */
        {"NETBIOS_COMPUTER_NAME", "NEGIO-HOST"},
        {"NETBIOS_DOMAIN_NAME", "NEGIO"},
        {"NEGIO_REALM", NULL},
        {"NEGIO_REALM_DIR", "%s"},
        {"NEGIO_KDC_PORT", NULL},
    };
    for (size_t i = 0; i < ENV_VARS; i++) {
        env[i].name = vars[i].name;
        int n;
        if (strcmp(vars[i].name, "NEGIO_REALM") == 0)
            n = snprintf(env[i].value, sizeof(env[i].value), "%s", r->name);
        else if (strcmp(vars[i].name, "NEGIO_KDC_PORT") == 0)
            n = snprintf(env[i].value, sizeof(env[i].value), "%u", r->port);
        else if (strncmp(vars[i].name, "NETBIOS_", 8) == 0)
            n = snprintf(env[i].value, sizeof(env[i].value), "%s", vars[i].fmt);
        else
            n = snprintf(env[i].value, sizeof(env[i].value), vars[i].fmt, r->dir);
        if (n < 0 || (size_t)n >= sizeof(env[i].value))
            abort();
    }
}

/* Appends VALUE for a POSIX shell: as is when it holds only harmless characters (so simple
 * parsers of "export NAME=value" lines keep working), else single-quoted. */
static void shell_word(struct text *t, const char *value)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789/._-+:,@%=";
    if (value[0] != '\0' && strspn(value, safe) == strlen(value)) {
        text_add(t, "%s", value);
        return;
    }
    text_add(t, "'");
    for (const char *p = value; *p; p++) {
        if (*p == '\'')
            text_add(t, "'\\''");
        else
            text_add(t, "%c", *p);
    }
    text_add(t, "'");
}

static int write_env_file(const struct realm_spec *r, const struct env_var env[ENV_VARS])
{
    struct text t = {0};
    text_add(&t, "# negio realm %s: '. %s/env' points Kerberos, GSS and NTLM at it\n", r->name,
             r->dir);
    for (size_t i = 0; i < ENV_VARS; i++) {
        text_add(&t, "export %s=", env[i].name);
        shell_word(&t, env[i].value);
        text_add(&t, "\n");
    }
    int rc = write_file(r, "env", 0600, t.s);
    text_free(&t);
    return rc;
}

static int set_env(const struct env_var env[ENV_VARS])
{
    for (size_t i = 0; i < ENV_VARS; i++)
        if (setenv(env[i].name, env[i].value, 1) < 0)
            return fail("setenv %s: %s", env[i].name, strerror(errno));
    /* the KDC tools live in sbin, which an ordinary user's PATH often lacks */
    const char *path = getenv("PATH");
    struct text t = {0};
    text_add(&t, "%s:/usr/sbin:/sbin", path != NULL && path[0] != '\0' ? path : "/usr/bin:/bin");
    int rc = setenv("PATH", t.s, 1);
    text_free(&t);
    return rc < 0 ? fail("setenv PATH: %s", strerror(errno)) : 0;
}

/* ---- running the krb5 tools -------------------------------------------------------------- */

#define OUTPUT_KEEP 4096

/* The Debian package to install when a tool is missing. */
static const char *package_of(const char *tool)
{
    if (strcmp(tool, "krb5kdc") == 0 || strcmp(tool, "kdb5_util") == 0)
        return "krb5-kdc";
    if (strcmp(tool, "kadmin.local") == 0)
        return "krb5-admin-server";
    return "krb5-user";
}

/* Runs ARGV with INPUT (or nothing) on stdin and waits for it. On failure prints which command
 * failed (SHOWN: the command line with secrets masked), its exit status and its output. */
static int run(const char *const argv[], const char *shown, const char *input)
{
    int out[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0)
        return fail("pipe: %s", strerror(errno));
    if (input != NULL && pipe2(in, O_CLOEXEC) < 0) {
        int err = errno;
        close(out[0]);
        close(out[1]);
        return fail("pipe: %s", strerror(err));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(out[0]);
        close(out[1]);
        if (input != NULL) {
            close(in[0]);
            close(in[1]);
        }
        return fail("fork: %s", strerror(err));
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        int fd0 = input != NULL ? in[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd0 < 0 || dup2(fd0, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "cannot run %s: %s (install the Debian package %s)\n", argv[0], strerror(errno),
                package_of(argv[0]));
        _exit(127);
    }
    close(out[1]);
    if (input != NULL) {
        close(in[0]);
        size_t len = strlen(input), off = 0;
        while (off < len) {
            ssize_t n = write(in[1], input + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break; /* the command exited without reading: its status tells why */
            off += (size_t)n;
        }
        close(in[1]);
    }
    char buf[OUTPUT_KEEP + 1];
    size_t kept = 0;
    for (;;) {
        char chunk[1024];
        ssize_t n = read(out[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < OUTPUT_KEEP - kept ? (size_t)n : OUTPUT_KEEP - kept;
        memcpy(buf + kept, chunk, take);
        kept += take;
    }
    close(out[0]);
    buf[kept] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return fail("waitpid: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        fprintf(stderr, "negio realm: '%s' failed (exit status %d)", shown, WEXITSTATUS(st));
    else
        fprintf(stderr, "negio realm: '%s' failed (signal %d)", shown, WTERMSIG(st));
    fprintf(stderr, kept > 0 ? ":\n%s%s" : "\n", buf,
            kept > 0 && buf[kept - 1] != '\n' ? "\n" : "");
    return -1;
}

/* kadmin.local -r REALM -q QUERY; SHOWN is the query with secrets masked. */
static int kadmin(const struct realm_spec *r, const char *query, const char *shown)
{
    const char *argv[] = {"kadmin.local", "-r", r->name, "-q", query, NULL};
    struct text t = {0};
    text_add(&t, "kadmin.local -r %s -q \"%s\"", r->name, shown);
    int rc = run(argv, t.s, NULL);
    text_free(&t);
    return rc;
}

/* ---- the realm --------------------------------------------------------------------------- */

/* A random password of letters and digits: safe in kadmin queries and NTLM account lines. */
static int random_password(char out[PASSWORD_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = 0;
    while (n < PASSWORD_LEN) {
        unsigned char b[64];
        ssize_t got = getrandom(b, sizeof(b), 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail("getrandom: %s", strerror(errno));
        for (ssize_t i = 0; i < got && n < PASSWORD_LEN; i++)
            if (b[i] < 248) /* 248 = 4 * 62: keeps the choice uniform */
                out[n++] = alphabet[b[i] % 62];
        explicit_bzero(b, sizeof(b));
    }
    out[n] = '\0';
    return 0;
}

static int create_user(const struct realm_spec *r, const char *user, const char *password)
{
    struct text q = {0}, shown = {0};
    text_add(&q, "addprinc -pw %s %s", password, user);
    text_add(&shown, "addprinc -pw *** %s", user);
    int rc = kadmin(r, q.s, shown.s);
    text_free(&q);
    text_free(&shown);
    if (rc == 0) {
        struct text file = {0};
        char leaf[64];
        snprintf(leaf, sizeof(leaf), "%s.password", user);
        text_add(&file, "%s\n", password);
        rc = write_file(r, leaf, 0600, file.s);
        text_free(&file);
    }
    return rc;
}

/* addprinc -randkey SERVICE, then its key into DIR/LEAF. */
static int create_service(const struct realm_spec *r, const char *service, const char *leaf)
{
    struct text q = {0};
    text_add(&q, "addprinc -randkey %s", service);
    int rc = kadmin(r, q.s, q.s);
    text_free(&q);
    if (rc < 0)
        return rc;
    char keytab[PATH_MAX];
    path_in(keytab, r, leaf);
    text_add(&q, "ktadd -k %s %s", keytab, service);
    rc = kadmin(r, q.s, q.s);
    text_free(&q);
    return rc;
}

/* Creates the database, the users and the service principals with their keytabs, and the NTLM
 * accounts (the same passwords). */
static int populate(const struct realm_spec *r)
{
    char master[PASSWORD_LEN + 1], alice[PASSWORD_LEN + 1], bob[PASSWORD_LEN + 1],
        root[PASSWORD_LEN + 1];
    int rc = -1;
    if (random_password(master) < 0 || random_password(alice) < 0 || random_password(bob) < 0 ||
        random_password(root) < 0)
        goto out;
    const char *create[] = {"kdb5_util", "create", "-s", "-r", r->name, "-P", master, NULL};
    struct text shown = {0};
    text_add(&shown, "kdb5_util create -s -r %s -P ***", r->name);
    rc = run(create, shown.s, NULL);
    text_free(&shown);
    if (rc < 0)
        goto out;
    /* root@REALM exists so that tests can show it is never impersonated as uid 0 */
    if ((rc = create_user(r, "alice", alice)) < 0 || (rc = create_user(r, "bob", bob)) < 0 ||
        (rc = create_user(r, "root", root)) < 0)
        goto out;
    if ((rc = create_service(r, SERVICE_PRINCIPAL, "service.keytab")) < 0 ||
        (rc = create_service(r, OTHER_PRINCIPAL, "other.keytab")) < 0)
        goto out;
    struct text ntlm = {0};
    text_add(&ntlm, NTLM_DOMAIN ":alice:%s\n" NTLM_DOMAIN ":bob:%s\n", alice, bob);
    rc = write_file(r, "ntlm_users", 0600, ntlm.s);
    text_free(&ntlm);
out:
    explicit_bzero(master, sizeof(master));
    explicit_bzero(alice, sizeof(alice));
    explicit_bzero(bob, sizeof(bob));
    explicit_bzero(root, sizeof(root));
    return rc;
}

/* Whether PORT (0: any, then *PORT receives the kernel's choice) can be bound on 127.0.0.1 for
 * both TCP and UDP, as the KDC needs. */
static int port_free(unsigned *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)*port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int ok = t >= 0 && u >= 0 && bind(t, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             getsockname(t, (struct sockaddr *)&a, &alen) == 0 &&
             bind(u, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (t >= 0)
        close(t);
    if (u >= 0)
        close(u);
    if (ok)
        *port = ntohs(a.sin_port);
    return ok;
}

/* The kernel picks a free TCP port (bind to port 0) and we check UDP has it free too. Another
 * process may take it before the KDC binds; the KDC then fails to start and says so in its log. */
static int find_free_port(unsigned *out)
{
    for (int attempt = 0; attempt < 32; attempt++) {
        unsigned port = 0;
        if (port_free(&port)) {
            *out = port;
            return 0;
        }
    }
    return fail("cannot find a port free for both TCP and UDP on 127.0.0.1");
}

static int port_accepts(unsigned port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* Prints the end of the KDC's log, where it explains why it did not start. */
static void show_kdc_log(const struct realm_spec *r)
{
    char path[PATH_MAX];
    path_in(path, r, "kdc.log");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char tail[2048];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(tail) - 1 ? size - (long)sizeof(tail) + 1 : 0, SEEK_SET);
    size_t n = fread(tail, 1, sizeof(tail) - 1, f);
    fclose(f);
    tail[n] = '\0';
    if (n > 0)
        fprintf(stderr, "--- end of %s ---\n%s%s", path, tail, tail[n - 1] == '\n' ? "" : "\n");
}

/* Whether PID is a live (not zombie) process named krb5kdc; -1 if there is no such process. */
static int is_live_kdc(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    /* "PID (COMM) STATE ..." */
    char *open = strchr(stat, '('), *close = strrchr(stat, ')');
    if (open == NULL || close == NULL || close[1] != ' ')
        return -1;
    if (close[2] == 'Z' || close[2] == 'X')
        return -1; /* exited, not yet reaped by its new parent */
    *close = '\0';
    return strcmp(open + 1, "krb5kdc") == 0;
}

/* Sends SIGTERM (then SIGKILL) to the KDC and waits until it has exited. CHILD: it is our own
 * child (a failed start), so reap it. */
static int kill_kdc(pid_t pid, int child)
{
    kill(pid, SIGTERM);
    long long deadline = now_ms() + KDC_STOP_TIMEOUT_MS;
    int sig = SIGTERM;
    for (;;) {
        if (child) {
            if (waitpid(pid, NULL, WNOHANG) == pid)
                return 0;
        } else if (is_live_kdc(pid) < 0)
            return 0;
        if (now_ms() > deadline) {
            if (sig == SIGKILL)
                return fail("the KDC (pid %ld) did not exit", (long)pid);
            sig = SIGKILL;
            kill(pid, SIGKILL);
            deadline = now_ms() + KDC_STOP_TIMEOUT_MS;
        }
        sleep_ms(20);
    }
}

/* Starts krb5kdc in its own session (it outlives this command and ignores the terminal's
 * signals), its output in DIR/kdc.log, and waits until its TCP port accepts connections. */
static int start_kdc(const struct realm_spec *r, pid_t *out)
{
    char pidfile[PATH_MAX], log[PATH_MAX];
    path_in(pidfile, r, "kdc.pid");
    path_in(log, r, "kdc.log");
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        setsid();
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int lf = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (in < 0 || lf < 0 || dup2(in, 0) < 0 || dup2(lf, 1) < 0 || dup2(lf, 2) < 0)
            _exit(126);
        execlp("krb5kdc", "krb5kdc", "-n", "-P", pidfile, (char *)NULL);
        dprintf(2, "negio realm: cannot run krb5kdc: %s (install the Debian package krb5-kdc)\n",
                strerror(errno));
        _exit(127);
    }
    /* krb5kdc writes the same pid itself; writing it here too means "realm stop" finds the KDC
     * even if it dies before getting that far */
    char text[32];
    snprintf(text, sizeof(text), "%ld\n", (long)pid);
    if (write_file(r, "kdc.pid", 0600, text) < 0) {
        kill_kdc(pid, 1);
        return -1;
    }
    long long deadline = now_ms() + KDC_START_TIMEOUT_MS;
    while (!port_accepts(r->port)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            unlink(pidfile);
            if (WIFEXITED(st))
                fail("krb5kdc exited with status %d before listening on 127.0.0.1:%u (see "
                     "%s/kdc.log)",
                     WEXITSTATUS(st), r->port, r->dir);
            else
                fail("krb5kdc was killed by signal %d (see %s/kdc.log)", WTERMSIG(st), r->dir);
            show_kdc_log(r);
            return -1;
        }
        if (now_ms() > deadline) {
            fail("krb5kdc did not listen on 127.0.0.1:%u within %d s (see %s/kdc.log)", r->port,
                 KDC_START_TIMEOUT_MS / 1000, r->dir);
            show_kdc_log(r);
            kill_kdc(pid, 1);
            unlink(pidfile);
            return -1;
        }
        sleep_ms(20);
    }
    *out = pid;
    return 0;
}

/* kinit alice with her password on stdin, into FILE:DIR/cc (KRB5CCNAME is set). */
static int kinit_alice(const struct realm_spec *r)
{
    char path[PATH_MAX], pw[PASSWORD_LEN + 8] = {0};
    path_in(path, r, "alice.password");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return fail("cannot read %s: %s", path, strerror(errno));
    int got = fgets(pw, sizeof(pw), f) != NULL;
    fclose(f);
    if (!got)
        return fail("%s is empty", path);
    struct text who = {0}, shown = {0};
    text_add(&who, "alice@%s", r->name);
    text_add(&shown, "kinit %s (password on stdin)", who.s);
    const char *argv[] = {"kinit", who.s, NULL};
    int rc = run(argv, shown.s, pw);
    if (rc < 0)
        fprintf(stderr, "negio realm: see %s/kdc.log for the KDC's side\n", r->dir);
    explicit_bzero(pw, sizeof(pw));
    text_free(&who);
    text_free(&shown);
    return rc;
}

/* Names go unquoted into krb5.conf, kdc.conf and kadmin queries. */
static int valid_realm_name(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n < 256 && name[0] != '.' && name[0] != '-' &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") == n;
}

/* Checks a --map principal (name[/instance...][@REALM], the realm being R's) and strips the
 * realm from it; the rules in krb5.conf are built from it unquoted. Returns 0, or -1 after a
 * usage error. */
static int check_map_principal(const struct cli *c, const struct realm_spec *r, struct cli_map *m)
{
    char *at = strchr(m->principal, '@');
    if (at != NULL && strcmp(at + 1, r->name) != 0)
        return cli_error(c,
                         "--map: %s is not a principal of the realm %s (only this realm's "
                         "principals can be mapped)",
                         m->principal, r->name);
    if (at != NULL)
        *at = '\0';
    size_t n = strlen(m->principal), components = 1;
    int ok = n > 0 && m->principal[0] != '/' && m->principal[n - 1] != '/' &&
             strstr(m->principal, "//") == NULL &&
             strspn(m->principal, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789._-/") == n;
    for (const char *p = m->principal; *p; p++)
        components += *p == '/';
    if (!ok || components > MAX_MAP_COMPONENTS)
        return cli_error(c,
                         "--map: '%s' is not a principal name this command maps (up to %d "
                         "components of letters, digits, '.', '_' or '-' separated by '/', then "
                         "optionally @%s)",
                         m->principal, MAX_MAP_COMPONENTS, r->name);
    return 0;
}

static int valid_dir_chars(const char *dir)
{
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
        if (*p <= ' ' || *p == 0x7f || strchr("\"'\\{}#;", *p) != NULL)
            return 0;
    return 1;
}

static const char bad_dir_chars[] =
    "the realm directory's path must not contain spaces, control characters, quotes, "
    "backslashes, braces, '#' or ';' (it goes into krb5 configuration files)";

/* mkdir -p: creates DIR and any missing parents. */
static int make_dirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
        return fail("%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return fail("cannot create %s: %s", p, strerror(errno));
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return fail("%s is not a directory", dir);
    return 0;
}

/* Resolves DIR to an absolute path that the configuration files can hold; CREATE: mkdir -p it. */
static int resolve_dir(const char *arg, struct realm_spec *r, int create)
{
    if (arg[0] == '\0')
        return fail("DIR is empty");
    if (!valid_dir_chars(arg))
        return fail("%s: %s", arg, bad_dir_chars);
    if (create && make_dirs(arg) < 0)
        return -1;
    char *abs = realpath(arg, NULL);
    if (abs == NULL)
        return fail("%s: %s", arg, strerror(errno));
    size_t n = strlen(abs);
    int rc = 0;
    if (n > MAX_DIR_LEN)
        rc = fail("%s: path too long", abs);
    else if (!valid_dir_chars(abs))
        rc = fail("%s: %s", abs, bad_dir_chars);
    else
        memcpy(r->dir, abs, n + 1);
    free(abs);
    return rc;
}

static int exists_in(const struct realm_spec *r, const char *leaf)
{
    char path[PATH_MAX];
    path_in(path, r, leaf);
    return access(path, F_OK) == 0;
}

static int realm_start(struct realm_spec *r)
{
    if (exists_in(r, "principal") || exists_in(r, "kdc.pid"))
        return fail("%s already holds a realm: stop it with 'negio realm stop %s' and start a new "
                    "one in an empty directory",
                    r->dir, r->dir);
    if (r->port == 0) {
        if (find_free_port(&r->port) < 0)
            return -1;
    } else {
        unsigned port = r->port;
        if (!port_free(&port))
            return fail("port %u on 127.0.0.1 is in use (TCP or UDP); choose another --port or "
                        "leave it out for a free one",
                        r->port);
    }

    struct env_var env[ENV_VARS];
    realm_env(r, env);
    char mech_conf[] = NTLM_MECH_LINE "\n";
    if (set_env(env) < 0 || write_krb5_conf(r) < 0 || write_kdc_conf(r) < 0 ||
        write_file(r, "mech.conf", 0600, mech_conf) < 0 || populate(r) < 0)
        return -1;

    pid_t kdc = -1;
    if (start_kdc(r, &kdc) < 0)
        return -1;
    if (kinit_alice(r) < 0 || write_env_file(r, env) < 0) {
        char pidfile[PATH_MAX];
        path_in(pidfile, r, "kdc.pid");
        kill_kdc(kdc, 1);
        unlink(pidfile);
        return -1;
    }
    printf("realm %s in %s, KDC on 127.0.0.1:%u\n", r->name, r->dir, r->port);
    printf("use it with: . %s/env\n", r->dir);
    fflush(stdout);
    return 0;
}

static int realm_stop(const struct realm_spec *r)
{
    char pidfile[PATH_MAX];
    path_in(pidfile, r, "kdc.pid");
    FILE *f = fopen(pidfile, "r");
    if (f == NULL) {
        if (errno == ENOENT && exists_in(r, "kdc.conf")) {
            printf("realm in %s is not running\n", r->dir);
            return 0;
        }
        if (errno == ENOENT)
            return fail("%s is not a negio realm (no kdc.conf)", r->dir);
        return fail("cannot read %s: %s", pidfile, strerror(errno));
    }
    long pid = 0;
    int got = fscanf(f, "%ld", &pid);
    fclose(f);
    if (got != 1 || pid <= 1 || pid > INT_MAX)
        return fail("%s does not hold a process id", pidfile);
    int live = is_live_kdc((pid_t)pid);
    if (live == 1 && kill_kdc((pid_t)pid, 0) < 0)
        return -1;
    if (unlink(pidfile) < 0 && errno != ENOENT)
        return fail("cannot remove %s: %s", pidfile, strerror(errno));
    if (live == 1)
        printf("realm in %s stopped (KDC pid %ld)\n", r->dir, pid);
    else if (live == 0)
        printf("realm in %s: pid %ld is not a krb5kdc (stale pid file removed, nothing killed)\n",
               r->dir, pid);
    else
        printf("realm in %s: the KDC (pid %ld) had already exited\n", r->dir, pid);
    fflush(stdout);
    return 0;
}

/* ---- options --------------------------------------------------------------------------------- */

enum {
    OPT_PORT = CLI_GROUP_BASE(CLI_G_REALM),
    OPT_REALM,
    OPT_MAP,
};

/* What the command line asks for. */
struct realm_cmdline {
    struct realm_spec spec; /* the name, the port and the maps; the directory comes with the run */
    int have_port, have_realm;
    /* found by realm_validate() */
    int start; /* start, else stop */
    const char *dir;
};

static const struct cli_option realm_options[] = {
    {"port", required_argument, OPT_PORT, CLI_ALL, "N",
     "the KDC's port (TCP and UDP) on 127.0.0.1"},
    {"realm", required_argument, OPT_REALM, CLI_ALL, "NAME",
     "the realm name (letters, digits, '.', '-', '_')"},
    {"map", required_argument, OPT_MAP, CLI_ALL, "PRINCIPAL=LOCALUSER",
     "map PRINCIPAL (name[/instance][@NAME]) to the local account LOCALUSER (an auth_to_local "
     "rule in DIR/krb5.conf; repeatable); every other principal of the realm maps by the default "
     "rule (its name)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis realm_synopsis[] = {
    {CLI_ALL, "[--port N]"},
    {CLI_ALL, "[--realm NAME]"},
    {CLI_ALL, "[--map PRINCIPAL=LOCALUSER ...]"},
    {0, NULL},
};

static void realm_init(void *state)
{
    struct realm_cmdline *o = state;
    memset(o, 0, sizeof(*o));
    snprintf(o->spec.name, sizeof(o->spec.name), "%s", DEFAULT_REALM);
}

static int realm_take(const struct cli *c, void *state, int id, const char *arg)
{
    struct realm_cmdline *o = state;
    switch (id) {
    case OPT_PORT: {
        long v;
        if (cli_parse_long(c, "--port", arg, 1, 65535, "", &v) < 0)
            return -1;
        o->spec.port = (unsigned)v;
        o->have_port = 1;
        return 0;
    }
    case OPT_REALM:
        if (!valid_realm_name(arg))
            return cli_error(c, "--realm: '%s' is not a valid realm name", arg);
        snprintf(o->spec.name, sizeof(o->spec.name), "%s", arg);
        o->have_realm = 1;
        return 0;
    default: /* OPT_MAP */
        return cli_add_map(c, arg, o->spec.maps, &o->spec.nmaps);
    }
}

static const struct cli_group realm_group = {
    .no = CLI_G_REALM,
    .options = realm_options,
    .synopsis = realm_synopsis,
    .init = realm_init,
    .take = realm_take,
};

static const struct cli_command realm_command = {
    .name = "realm",
    .role = CLI_LOCAL,
    .lead = "start DIR",
    .more = "negio realm stop DIR",
    .about =
        "start creates DIR if needed and sets up a throwaway realm in it:\n"
        "  a KDC on 127.0.0.1:N (a free port unless --port), realm NAME (default " DEFAULT_REALM
        ")\n"
        "  service principal " SERVICE_PRINCIPAL " in DIR/service.keytab, and a second one,\n"
        "  " OTHER_PRINCIPAL ", in DIR/other.keytab (the backend of a delegation double hop)\n"
        "  users alice and bob, passwords in DIR/alice.password and DIR/bob.password, and root\n"
        "  (DIR/root.password: a principal that maps to uid 0, for tests that it is refused)\n"
        "  NTLM accounts " NTLM_DOMAIN "\\alice and " NTLM_DOMAIN "\\bob in DIR/ntlm_users\n"
        "  a ticket for alice in FILE:DIR/cc\n"
        "  DIR/env: export lines for every Kerberos and NTLM variable; '. DIR/env' makes\n"
        "  'negio server' and 'negio client' use the realm with no further options\n"
        "stop stops the realm's KDC (DIR is kept; remove it yourself).\n",
    .column = 17,
};

/* The action and its directory, and the --map principals checked against the realm. */
static int realm_validate(const struct cli *c, struct realm_cmdline *o)
{
    if (c->nargs < 1)
        return cli_error(c, "missing start or stop");
    const char *verb = c->args[0];
    if (strcmp(verb, "start") != 0 && strcmp(verb, "stop") != 0)
        return cli_error(c, "unknown action '%s'", verb);
    if (c->nargs != 2)
        return cli_error(c, "%s", c->nargs < 2 ? "missing DIR" : "too many arguments");
    o->start = strcmp(verb, "start") == 0;
    o->dir = c->args[1];
    struct realm_spec *r = &o->spec;
    if (!o->start && (o->have_port || o->have_realm || r->nmaps > 0))
        return cli_error(c, "--port, --realm and --map are options of start");
    for (size_t i = 0; i < r->nmaps; i++) {
        if (check_map_principal(c, r, &r->maps[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->maps[i].principal, r->maps[j].principal) == 0)
                return cli_error(c, "--map: %s@%s is mapped twice", r->maps[i].principal, r->name);
    }
    return 0;
}

static int realm_run(struct realm_cmdline *o)
{
    umask(077); /* passwords, keys and the ticket are for this user only */
    if (resolve_dir(o->dir, &o->spec, o->start) < 0)
        return CLI_EXIT_FAIL;
    return (o->start ? realm_start(&o->spec) : realm_stop(&o->spec)) < 0 ? CLI_EXIT_FAIL
                                                                         : CLI_EXIT_OK;
}

int cli_realm(int argc, char **argv)
{
    static struct realm_cmdline o; /* large: not on the stack */
    struct cli c;
    const struct cli_use uses[] = {{&realm_group, &o}};
    if (cli_parse(&c, &realm_command, uses, 1, argc, argv) < 0)
        return CLI_EXIT_USAGE;
    if (c.help)
        return CLI_EXIT_OK;
    if (realm_validate(&c, &o) < 0)
        return CLI_EXIT_USAGE;
    return realm_run(&o);
}
