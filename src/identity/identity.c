/* Local accounts and per-thread impersonation (include/negio/identity.h).
 *
 * Linux keeps credentials per thread; glibc's set*id() wrappers broadcast a change to every
 * thread of the process (POSIX semantics). The raw system calls do not, so they are used here,
 * and only on the calling thread. Order matters: groups and gid first while the thread still has
 * CAP_SETGID, the uid last; back in the reverse order. PR_SET_KEEPCAPS keeps the permitted
 * capabilities across the uid change so that the thread can switch back, and the effective set is
 * emptied while the application's function runs so that every access check is the user's. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/sized.h"
#include "identity/identity.h"
#include "negio/identity.h"

#define MAX_GROUPS 4096

struct negio_user {
    char name[256];
    uid_t uid;
    gid_t gid;
    int ngroups;
    gid_t *groups;
};

static void say(char *detail, size_t cap, const char *fmt, const char *name)
{
    if (detail != NULL && cap > 0)
        snprintf(detail, cap, fmt, name);
}

int negio__local_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 255 || memchr(name, '\0', len) != NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == ':')
            return 0;
    }
    return 1;
}

static uid_t login_min_uid(void)
{
    /* /etc/login.defs: "UID_MIN <n>" */
    uid_t min = 1000;
    FILE *f = fopen("/etc/login.defs", "re");
    if (f == NULL)
        return min;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long v;
        if (sscanf(line, " UID_MIN %lu", &v) == 1 && v > 0 && v < 0x7fffffffUL)
            min = (uid_t)v;
    }
    fclose(f);
    return min;
}

/* negio_identity_policy as negio 0.2 declared it ends with allow_system, without padding
 * (base/sized.h, docs/ARCHITECTURE.md section 17.4) */
#define POLICY_SIZE_0_2 NEGIO__END(negio_identity_policy, allow_system)
_Static_assert(sizeof(negio_identity_policy) == NEGIO__END(negio_identity_policy, allow_system),
               "negio_identity_policy grew: keep POLICY_SIZE_0_2, move this to the new last field");

int negio_user_lookup(negio_user **out, const char *name, const negio_identity_policy *policy,
                      char *detail, size_t cap)
{
    if (out == NULL || name == NULL)
        return NEGIO_ERR_INVALID;
    *out = NULL;
    negio_identity_policy p = {.size = sizeof(p)};
    if (policy != NULL && negio__sized_in(&p, sizeof(p), policy, POLICY_SIZE_0_2) < 0)
        return NEGIO_ERR_INVALID;
    policy = &p;
    if (!negio__local_name_ok(name, strnlen(name, 257))) {
        say(detail, cap,
            "refused local name \"%.64s\": empty, too long, or holds '/', ':' or "
            "a control character",
            name);
        return NEGIO_ERR_IDENTITY;
    }
    struct passwd pw, *res = NULL;
    long bufsz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t len = bufsz > 0 ? (size_t)bufsz : 16384;
    char *buf = NULL;
    int rc;
    do { /* the entry may not fit the suggested size */
        negio__free(buf);
        buf = negio__malloc(len);
        if (buf == NULL)
            return NEGIO_ERR_NOMEM;
        rc = getpwnam_r(name, &pw, buf, len, &res);
        len *= 2;
    } while (rc == ERANGE && len < (1u << 24));
    if (rc != 0 || res == NULL) {
        negio__free(buf);
        say(detail, cap, "no local account \"%s\"", name);
        return NEGIO_ERR_IDENTITY;
    }
    uid_t min = policy->min_uid ? policy->min_uid : login_min_uid();
    if (pw.pw_uid == 0 && !policy->allow_root) {
        negio__free(buf);
        say(detail, cap, "refused to act as \"%s\": uid 0", name);
        return NEGIO_ERR_IDENTITY;
    }
    if (pw.pw_uid != 0 && pw.pw_uid < min && !policy->allow_system) {
        negio__free(buf);
        say(detail, cap, "refused to act as \"%s\": a system account (below the login range)",
            name);
        return NEGIO_ERR_IDENTITY;
    }
    negio_user *u = negio__calloc(1, sizeof(*u));
    int n = 32;
    gid_t *groups = negio__malloc(sizeof(gid_t) * (size_t)n);
    if (u == NULL || groups == NULL) {
        negio__free(u);
        negio__free(groups);
        negio__free(buf);
        return NEGIO_ERR_NOMEM;
    }
    while (getgrouplist(name, pw.pw_gid, groups, &n) < 0) {
        if (n > MAX_GROUPS) {
            negio__free(u);
            negio__free(groups);
            negio__free(buf);
            say(detail, cap, "\"%s\" is in too many groups", name);
            return NEGIO_ERR_IDENTITY;
        }
        gid_t *more = negio__realloc(groups, sizeof(gid_t) * (size_t)n);
        if (more == NULL) {
            negio__free(u);
            negio__free(groups);
            negio__free(buf);
            return NEGIO_ERR_NOMEM;
        }
        groups = more;
    }
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    u->groups = groups;
    u->ngroups = n;
    negio__free(buf);
    *out = u;
    return NEGIO_OK;
}

void negio_user_del(negio_user *u)
{
    if (u != NULL) {
        negio__free(u->groups);
        negio__free(u);
    }
}

const char *negio_user_name(const negio_user *u)
{
    return u->name;
}

uid_t negio_user_uid(const negio_user *u)
{
    return u->uid;
}

gid_t negio_user_gid(const negio_user *u)
{
    return u->gid;
}

/* ---- the switch ---------------------------------------------------------------------------- */

#ifdef NEGIO_TEST_HOOKS
/* The test build can make step N of the switch fail (see identity/identity.h). */
static int (*_Atomic fail_hook)(int step);

void negio__identity_set_fail_hook(int (*hook)(int step))
{
    fail_hook = hook;
}

/* A step the test hook refuses is not attempted at all, as if the kernel had said EPERM. */
static int refused_by_hook(int step)
{
    int (*hook)(int) = fail_hook;
    if (hook != NULL && hook(step)) {
        errno = EPERM;
        return 1;
    }
    return 0;
}
#else
/* The libraries that are installed have no hook: every step is attempted. */
static int refused_by_hook(int step)
{
    (void)step;
    return 0;
}
#endif

static int sys_setgroups(size_t n, const gid_t *g, int step)
{
    return refused_by_hook(step) ? -1 : (int)syscall(SYS_setgroups, n, g);
}

static int sys_setresgid(gid_t r, gid_t e, gid_t s, int step)
{
    return refused_by_hook(step) ? -1 : (int)syscall(SYS_setresgid, r, e, s);
}

static int sys_setresuid(uid_t r, uid_t e, uid_t s, int step)
{
    return refused_by_hook(step) ? -1 : (int)syscall(SYS_setresuid, r, e, s);
}

typedef struct caps {
    struct __user_cap_header_struct hdr;
    struct __user_cap_data_struct data[2];
} caps;

static int caps_get(caps *c)
{
    memset(c, 0, sizeof(*c));
    c->hdr.version = _LINUX_CAPABILITY_VERSION_3;
    c->hdr.pid = 0; /* the calling thread */
    return (int)syscall(SYS_capget, &c->hdr, c->data);
}

static int caps_set(caps *c)
{
    c->hdr.version = _LINUX_CAPABILITY_VERSION_3;
    c->hdr.pid = 0;
    return (int)syscall(SYS_capset, &c->hdr, c->data);
}

static int has_cap(const caps *c, int cap, int effective)
{
    const struct __user_cap_data_struct *d = &c->data[cap / 32];
    return ((effective ? d->effective : d->permitted) >> (cap % 32)) & 1;
}

static void raise_cap(caps *c, int cap)
{
    c->data[cap / 32].effective |= 1u << (cap % 32);
}

/* The thread as it was before the switch. */
typedef struct saved {
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    int ngroups;
    gid_t *groups;
    caps caps;
    int keepcaps;
} saved;

static int save(saved *s)
{
    if (getresuid(&s->ruid, &s->euid, &s->suid) < 0 || getresgid(&s->rgid, &s->egid, &s->sgid) < 0)
        return -1;
    int n = getgroups(0, NULL); /* the calling thread's list: a plain system call */
    if (n < 0)
        return -1;
    s->groups = negio__malloc(sizeof(gid_t) * (size_t)(n > 0 ? n : 1));
    if (s->groups == NULL)
        return -2;
    s->ngroups = getgroups(n, s->groups);
    if (s->ngroups < 0 || caps_get(&s->caps) < 0) {
        negio__free(s->groups);
        return -1;
    }
    s->keepcaps = prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
    return 0;
}

/* Puts the thread back as it was. Failing here would leave it running as someone else. */
static void restore(saved *s, int uid_changed, int gid_changed, int groups_changed)
{
    int ok = 1;
    if (uid_changed) {
        caps up;
        /* regain what setting the uid back needs, from the permitted set kept by KEEPCAPS */
        if (caps_get(&up) < 0)
            ok = 0;
        raise_cap(&up, CAP_SETUID);
        raise_cap(&up, CAP_SETGID);
        if (ok && caps_set(&up) < 0)
            ok = 0;
        if (ok && syscall(SYS_setresuid, s->ruid, s->euid, s->suid) < 0)
            ok = 0;
    }
    if (ok && gid_changed && syscall(SYS_setresgid, s->rgid, s->egid, s->sgid) < 0)
        ok = 0;
    if (ok && groups_changed && syscall(SYS_setgroups, (size_t)s->ngroups, s->groups) < 0)
        ok = 0;
    if (ok && caps_set(&s->caps) < 0)
        ok = 0;
    if (!ok) {
        static const char msg[] = "negio: cannot restore the thread's identity after "
                                  "impersonation; aborting\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        abort();
    }
    prctl(PR_SET_KEEPCAPS, (unsigned long)s->keepcaps, 0, 0, 0);
    negio__free(s->groups);
}

int negio_impersonate(const negio_user *u, int (*fn)(void *arg), void *arg, int *result)
{
    if (u == NULL || fn == NULL)
        return NEGIO_ERR_INVALID;
    saved s;
    int rc = save(&s);
    if (rc == -2)
        return NEGIO_ERR_NOMEM;
    if (rc < 0)
        return NEGIO_ERR_PERMISSION;
    if (!(s.euid == 0 || (has_cap(&s.caps, CAP_SETUID, 1) && has_cap(&s.caps, CAP_SETGID, 1)))) {
        negio__free(s.groups);
        errno = EPERM;
        return NEGIO_ERR_PERMISSION;
    }
    if (prctl(PR_SET_KEEPCAPS, 1UL, 0, 0, 0) < 0) {
        negio__free(s.groups);
        return NEGIO_ERR_PERMISSION;
    }
    int err;
    if (sys_setgroups((size_t)u->ngroups, u->groups, 1) < 0) {
        err = errno;
        restore(&s, 0, 0, 0);
        errno = err;
        return NEGIO_ERR_PERMISSION;
    }
    if (sys_setresgid(u->gid, u->gid, u->gid, 2) < 0) {
        err = errno;
        restore(&s, 0, 0, 1);
        errno = err;
        return NEGIO_ERR_PERMISSION;
    }
    if (sys_setresuid(u->uid, u->uid, u->uid, 3) < 0) {
        err = errno;
        restore(&s, 0, 1, 1);
        errno = err;
        return NEGIO_ERR_PERMISSION;
    }
    /* the function runs with no effective capability: every access check is the user's */
    caps none;
    if (caps_get(&none) < 0 ||
        (none.data[0].effective = none.data[1].effective = 0, caps_set(&none) < 0)) {
        err = errno;
        restore(&s, 1, 1, 1);
        errno = err;
        return NEGIO_ERR_PERMISSION;
    }
    int r = fn(arg);
    restore(&s, 1, 1, 1);
    if (result != NULL)
        *result = r;
    return NEGIO_OK;
}
