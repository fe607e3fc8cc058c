#include "support/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/clock.h"

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A socket bound to 127.0.0.1 on a port the kernel chose (*PORT); -1 on failure. */
static int bound(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(0);
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int test_tcp_listen(uint16_t *port)
{
    int fd = bound(port);
    if (fd >= 0 && listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int test_tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* A non-blocking connect to 127.0.0.1:PORT: its socket, or -1. */
static int connect_nonblocking(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Linux drops a SYN while the listener's accept queue is full (tcp_conn_request): with a
 * backlog of 0 one connection fills it. Connections are added until one stays unanswered. */
int test_tcp_silent_listen(uint16_t *port, int fill[TEST_SILENT_FILL])
{
    for (int i = 0; i < TEST_SILENT_FILL; i++)
        fill[i] = -1;
    int fd = bound(port);
    if (fd < 0 || listen(fd, 0) != 0)
        goto fail;
    for (int i = 0; i < TEST_SILENT_FILL; i++) {
        if ((fill[i] = connect_nonblocking(*port)) < 0)
            goto fail;
        struct pollfd p = {.fd = fill[i], .events = POLLOUT};
        if (poll(&p, 1, 200) == 0)
            return fd; /* unanswered: the backlog is full */
    }
fail:
    test_tcp_silent_close(fd, fill);
    return -1;
}

void test_tcp_silent_close(int fd, int fill[TEST_SILENT_FILL])
{
    for (int i = 0; i < TEST_SILENT_FILL; i++) {
        if (fill[i] >= 0)
            close(fill[i]);
        fill[i] = -1;
    }
    if (fd >= 0)
        close(fd);
}

uint16_t test_tcp_free_port(void)
{
    uint16_t port = 0;
    int fd = bound(&port);
    if (fd < 0)
        return 0;
    close(fd);
    return port;
}

int test_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int test_read_all(int fd, void *p, size_t n, int ms)
{
    uint8_t *b = p;
    int64_t until = test_now_ms() + ms;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = test_ms_left(until);
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return -1;
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One line of /proc/net/tcp: "sl: local rem st tx_queue:rx_queue ...", addresses in hex. */
typedef struct tcp_line {
    unsigned lport, rport, state;
    unsigned long tx, rx;
} tcp_line;

/* include/net/tcp_states.h */
#define TCP_ESTABLISHED 0x01
#define TCP_TIME_WAIT 0x06
#define TCP_CLOSE 0x07
#define TCP_CLOSE_WAIT 0x08
#define TCP_LISTEN 0x0a

/* Calls FN for each IPv4 TCP socket of this network namespace; -1 if the table cannot be read. */
static int each_tcp_socket(void (*fn)(const tcp_line *, void *), void *user)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return -1;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        tcp_line t;
        if (sscanf(line, " %*u: %*8x:%4x %*8x:%4x %2x %8lx:%8lx", &t.lport, &t.rport, &t.state,
                   &t.tx, &t.rx) == 5)
            fn(&t, user);
    }
    fclose(f);
    return 0;
}

typedef struct unread_at {
    uint16_t port;
    int sockets;
    long unread;
} unread_at;

static void count_unread_at(const tcp_line *t, void *user)
{
    unread_at *u = user;
    if (t->lport == u->port && t->state == TCP_ESTABLISHED) {
        u->sockets++;
        u->unread += (long)t->rx;
    }
}

long test_tcp_unread_at(uint16_t port, int *sockets)
{
    unread_at u = {port, 0, 0};
    *sockets = 0;
    if (each_tcp_socket(count_unread_at, &u) != 0)
        return -1;
    *sockets = u.sockets;
    return u.unread;
}

typedef struct open_at {
    uint16_t port;
    int open;
} open_at;

static void count_open_at(const tcp_line *t, void *user)
{
    open_at *o = user;
    if (t->lport == o->port && t->state != TCP_LISTEN && t->state != TCP_TIME_WAIT &&
        t->state != TCP_CLOSE)
        o->open++;
}

int test_tcp_open_at(uint16_t port)
{
    open_at o = {port, 0};
    return each_tcp_socket(count_open_at, &o) == 0 ? o.open : -1;
}

typedef struct socket_of {
    unsigned lport, rport;
    int tx; /* the send queue rather than the receive queue */
    long bytes;
} socket_of;

static void find_socket(const tcp_line *t, void *user)
{
    socket_of *p = user;
    if (t->lport == p->lport && t->rport == p->rport &&
        (t->state == TCP_ESTABLISHED || t->state == TCP_CLOSE_WAIT))
        p->bytes = (long)(p->tx ? t->tx : t->rx);
}

/* A queue of FD's end (PEER 0) or of the other end (PEER 1): the send queue if TX, else the
 * receive queue. */
static long tcp_queue(int fd, int peer, int tx)
{
    struct sockaddr_in me, them;
    socklen_t ml = sizeof(me), tl = sizeof(them);
    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
        getpeername(fd, (struct sockaddr *)&them, &tl) != 0 || me.sin_family != AF_INET)
        return -1;
    unsigned mine = ntohs(me.sin_port), theirs = ntohs(them.sin_port);
    socket_of p = {peer ? theirs : mine, peer ? mine : theirs, tx, -1};
    if (each_tcp_socket(find_socket, &p) != 0)
        return -1;
    return p.bytes;
}

long test_tcp_peer_unread(int fd)
{
    return tcp_queue(fd, 1, 0);
}

long test_tcp_unacked(int fd)
{
    return tcp_queue(fd, 0, 1);
}
