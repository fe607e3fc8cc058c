/*
 * negio server --files: a tiny file service ("write NAME TEXT", "read NAME") in one directory,
 * with --impersonate done as the local account each client maps to (include/negio/identity.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

#define MAX_READ (1u << 20) /* the largest file 'read' returns */

/* One file operation, run as the client's account (or the server's own). */
struct file_job {
    int dirfd;
    int write; /* 1: write TEXT, 0: read into CONTENT */
    const char *name;
    const uint8_t *text;
    size_t len;
    char *content; /* read: malloc'd, CONTENT_LEN bytes */
    size_t content_len;
    int err;         /* errno of the failure, or 0 */
    const char *why; /* a failure that is no errno */
};

static int file_fail(struct file_job *j, int fd, int err, const char *why)
{
    if (fd >= 0)
        close(fd);
    j->err = err;
    j->why = why;
    return -1;
}

/* No symbolic links are followed and nothing but regular files is read or written (a FIFO would
 * block the loop thread); every permission check is the kernel's, for the thread's identity. */
static int file_op(void *arg)
{
    struct file_job *j = arg;
    int flags =
        O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (j->write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
    int fd = openat(j->dirfd, j->name, flags, 0644);
    if (fd < 0)
        return file_fail(j, -1, errno, errno == ELOOP ? "a symbolic link (not followed)" : NULL);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return file_fail(j, fd, errno, NULL);
    if (!S_ISREG(st.st_mode))
        return file_fail(j, fd, 0, "not a regular file");
    if (j->write) {
        for (size_t off = 0; off < j->len;) {
            ssize_t n = write(fd, j->text + off, j->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return file_fail(j, fd, errno, NULL);
            off += (size_t)n;
        }
        return close(fd) < 0 ? file_fail(j, -1, errno, NULL) : 0;
    }
    if (st.st_size > (off_t)MAX_READ)
        return file_fail(j, fd, EFBIG, NULL);
    j->content = malloc(MAX_READ + 1);
    if (j->content == NULL)
        return file_fail(j, fd, ENOMEM, NULL);
    for (;;) {
        ssize_t n = read(fd, j->content + j->content_len, MAX_READ + 1 - j->content_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return file_fail(j, fd, errno, NULL);
        if (n == 0)
            break;
        j->content_len += (size_t)n;
        if (j->content_len > MAX_READ) /* it grew meanwhile */
            return file_fail(j, fd, EFBIG, NULL);
    }
    close(fd);
    return 0;
}

/* NAME is one file name in the directory: no '/', not "." or "..", at most NAME_MAX bytes, and
 * no NUL or other control character. */
static int plain_name(const uint8_t *name, size_t len)
{
    if (len == 0 || len > NAME_MAX || (len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

static void print_request(struct server *s, negio_econn *c, const char *op, const char *name,
                          const struct client *cl, const char *error)
{
    char remote[80];
    server_remote(c, remote, sizeof(remote));
    const char *as = s->impersonate && cl->user != NULL ? negio_user_name(cl->user) : NULL;
    json_writer w;
    if (server_event_begin(s, &w, "request", remote)) {
        json_kv_string(&w, "op", op);
        json_kv_string(&w, "name", name);
        json_kv_string(&w, "as", as);
        if (as != NULL)
            json_kv_int(&w, "uid", (long long)negio_user_uid(cl->user));
        json_kv_bool(&w, "ok", error == NULL);
        json_kv_string(&w, "error", error);
    } else {
        printf("%s: %s ", remote, op);
        server_print_quoted(name);
        if (s->impersonate) {
            printf(" as ");
            server_print_quoted(as);
        }
        printf(": %s\n", error != NULL ? error : "ok");
    }
    server_event_end(s, &w);
}

/* Why negio_impersonate() failed with RC and ERR (errno). negio_strerror() has no text for
 * NEGIO_ERR_PERMISSION in this version of the library, hence our own. */
static const char *switch_error(int rc, int err)
{
    return rc == NEGIO_ERR_PERMISSION ? strerror(err) : negio_strerror(rc);
}

/* "write NAME TEXT" (TEXT: the rest of the message, possibly empty) or "read NAME". */
void server_file_request(struct server *s, negio_econn *c, struct client *cl, const uint8_t *data,
                         size_t len, negio_level level)
{
    struct file_job j;
    memset(&j, 0, sizeof(j));
    j.dirfd = s->files_fd;
    const uint8_t *name;
    size_t name_len;
    if (len >= 6 && memcmp(data, "write ", 6) == 0) {
        j.write = 1;
        name = data + 6;
        const uint8_t *sp = memchr(name, ' ', len - 6);
        name_len = sp != NULL ? (size_t)(sp - name) : len - 6;
        j.text = sp != NULL ? sp + 1 : name + name_len;
        j.len = sp != NULL ? len - 6 - name_len - 1 : 0;
    } else if (len >= 5 && memcmp(data, "read ", 5) == 0) {
        name = data + 5;
        name_len = len - 5;
    } else {
        server_reply(s, c, level,
                     "error: unknown request (expected 'write NAME TEXT' or 'read NAME')");
        print_request(s, c, "unknown", NULL, cl, "unknown request");
        return;
    }
    const char *op = j.write ? "write" : "read";
    /* the name as text (control characters and NUL shown as '?'); for a plain name, the name */
    char shown[NAME_MAX + 1];
    size_t n = name_len < NAME_MAX ? name_len : NAME_MAX;
    for (size_t i = 0; i < n; i++)
        shown[i] = name[i] < 0x20 || name[i] == 0x7f ? '?' : (char)name[i];
    shown[n] = '\0';
    if (!plain_name(name, name_len)) {
        server_reply(
            s, c, level,
            "error: %s %s: not a plain file name (no '/' or control characters, not '.' or "
            "'..', at most %d bytes)",
            op, shown, NAME_MAX);
        print_request(s, c, op, shown, cl, "not a plain file name");
        return;
    }
    j.name = shown;
    if (s->impersonate && cl->user == NULL) {
        server_reply(s, c, level, "error: no local account for %s: %s", cl->peer, cl->refusal);
        print_request(s, c, op, shown, cl, cl->refusal);
        return;
    }
    if (s->impersonate) {
        int rc = negio_impersonate(cl->user, file_op, &j, NULL);
        if (rc < 0) {
            const char *why = switch_error(rc, errno);
            server_reply(s, c, level, "error: %s %s: cannot act as %s: %s", op, shown,
                         negio_user_name(cl->user), why);
            print_request(s, c, op, shown, cl, why);
            return;
        }
    } else
        file_op(&j);
    if (j.err != 0 || j.why != NULL) {
        const char *what = j.why != NULL ? j.why : strerror(j.err);
        server_reply(s, c, level, "error: %s %s: %s", op, shown, what);
        print_request(s, c, op, shown, cl, what);
    } else if (j.write) {
        server_reply(s, c, level, "ok wrote %zu bytes to %s", j.len, shown);
        print_request(s, c, op, shown, cl, NULL);
    } else {
        /* the content as it is, bytes and all */
        char *out = malloc(3 + j.content_len);
        if (out == NULL)
            server_reply(s, c, level, "error: %s %s: %s", op, shown, strerror(ENOMEM));
        else {
            memcpy(out, "ok ", 3);
            if (j.content_len > 0)
                memcpy(out + 3, j.content, j.content_len);
            server_send(s, c, level, out, 3 + j.content_len);
            free(out);
        }
        print_request(s, c, op, shown, cl, out == NULL ? strerror(ENOMEM) : NULL);
    }
    free(j.content);
}

int server_find_user(struct server *s, struct client *cl, const negio_auth_info *info)
{
    char why[512] = "";
    if (info->flags & NEGIO_FLAG_ANON)
        snprintf(why, sizeof(why), "anonymous peers are never impersonated");
    else if (info->local_name == NULL)
        snprintf(why, sizeof(why), "it maps to no local account name");
    else {
        int rc = negio_user_lookup(&cl->user, info->local_name, &s->policy, why, sizeof(why));
        if (rc == NEGIO_ERR_NOMEM)
            return -1;
        if (rc < 0 && why[0] == '\0')
            snprintf(why, sizeof(why), "%s", negio_strerror(rc));
    }
    if (cl->user == NULL && (cl->refusal = strdup(why)) == NULL)
        return -1;
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* By a trial switch to this process's own account (the check negio_impersonate makes for every
 * client's). */
int server_check_impersonation(void)
{
    uid_t euid = geteuid();
    struct passwd pw, *res = NULL;
    char buf[16384];
    if (getpwuid_r(euid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
        fprintf(stderr,
                "negio server: --impersonate: cannot check whether this process may switch "
                "identities: uid %ld has no account\n",
                (long)euid);
        return -1;
    }
    negio_identity_policy any = {.allow_root = 1, .allow_system = 1};
    negio_user *self = NULL;
    char why[512] = "";
    int rc = negio_user_lookup(&self, pw.pw_name, &any, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "negio server: --impersonate: cannot look up this process's account: %s\n",
                why[0] != '\0' ? why : negio_strerror(rc));
        return -1;
    }
    rc = negio_impersonate(self, nothing, NULL, NULL);
    const char *failed = switch_error(rc, errno);
    negio_user_del(self);
    if (rc < 0) {
        fprintf(stderr,
                "negio server: --impersonate needs root or the capabilities CAP_SETUID and "
                "CAP_SETGID; this process (uid %ld) cannot switch identities: %s\n",
                (long)euid, failed);
        return -1;
    }
    return 0;
}
