/* Relays (engine.h, "Relays") and what a tunnel needs of the engine, over loopback against the
 * real KDC: a plain socket -> client engine -> server engine -> plain backend, both ends real
 * TCP sockets this test reads and writes itself. Half-close both ways, a backend that refuses,
 * memory bounded by the high-water marks while a backend does not read, and PROXY headers
 * taken only from the sources a listener names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"
#include "engine/engine_support.h"
#include "support/net.h"

/* One engine and what its (single) connection ended with. */
typedef struct side {
    negio_engine *e;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int authenticated, closed;
    negio_close_reason reason;
    int code;
    char detail[512];
    negio_relay_stats st;
    int have_stats;
    char peer[64], via[64], local[64];
    /* server: where to relay each connection, or the status to refuse it with */
    uint16_t backend_port;
    size_t relay_hw;
    int refuse;
} side;

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN + 2] = "-";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        host[0] = '[';
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host + 1,
                  sizeof(host) - 2);
        strcat(host, "]");
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    snprintf(out, cap, "%s:%u", host, port);
}

static int on_authenticated(negio_econn *c, const negio_auth_info *info, void *user)
{
    (void)info;
    side *s = user;
    pthread_mutex_lock(&s->lock);
    s->authenticated++;
    addr_text(negio_econn_peer_addr(c), s->peer, sizeof(s->peer));
    addr_text(negio_econn_via_addr(c), s->via, sizeof(s->via));
    struct sockaddr_storage local;
    if (negio_econn_local_addr(c, &local) == NEGIO_OK)
        addr_text((const struct sockaddr *)&local, s->local, sizeof(s->local));
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->refuse != 0)
        return s->refuse;
    if (s->backend_port != 0) {
        negio_relay_options ro = {.size = sizeof(ro), .high_water = s->relay_hw};
        assert_int_equal(negio_engine_relay_connect(c, "127.0.0.1", s->backend_port, &ro), 0);
    }
    return 0;
}

static void on_message(negio_econn *c, const uint8_t *data, size_t len, negio_level level,
                       void *user)
{
    (void)c, (void)data, (void)len, (void)level, (void)user;
    fail_msg("on_message called for a relayed connection");
}

static void on_closed(negio_econn *c, negio_close_reason reason, int code, const char *detail,
                      void *user)
{
    side *s = user;
    pthread_mutex_lock(&s->lock);
    s->st.size = sizeof(s->st);
    s->have_stats = negio_econn_relay_stats(c, &s->st) == 0;
    s->reason = reason;
    s->code = code;
    snprintf(s->detail, sizeof(s->detail), "%s", detail);
    s->closed++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void side_init(side *s, size_t high_water)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    negio_engine_options o = {
        .size = sizeof(o),
        .loops = 1,
        .high_water = high_water,
        .callbacks = {.on_authenticated = on_authenticated,
                      .on_message = on_message,
                      .on_closed = on_closed},
        .user = s,
    };
    assert_int_equal(negio_engine_new(&s->e, &o), 0);
}

static void side_free(side *s)
{
    negio_engine_del(s->e);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}

static int side_wait_closed(side *s, int ms)
{
    struct timespec ts = test_deadline_after_ms(ms);
    pthread_mutex_lock(&s->lock);
    while (s->closed == 0 && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    int n = s->closed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* A listening socket on 127.0.0.1, its port in *PORT (tests/support/net.h). */
static int listen_any(uint16_t *port)
{
    int fd = test_tcp_listen(port);
    assert_true(fd >= 0);
    return fd;
}

static int connect_to(uint16_t port)
{
    int fd = test_tcp_connect(port);
    assert_true(fd >= 0);
    return fd;
}

/* accept() within MS, or -1. */
static int accept_within(int lfd, int ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return -1;
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Reads until EOF into BUF (CAP bytes); returns the count, or -errno for a failed read. */
static ssize_t read_to_eof(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 30000) != 1)
            return -ETIMEDOUT;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0)
            return -errno;
        if (n == 0)
            return (ssize_t)got;
        got += (size_t)n;
        if (got == cap)
            return (ssize_t)got;
    }
}

/* PATH's configuration for ROLE in PROFILE, under half-close ([MS-NNS] has no TLS form: plain). */
static negio_config *tunnel_config(negio_role role, test_path path, negio_profile profile)
{
    negio_config *cfg =
        role == NEGIO_ROLE_SERVER ? test_server_config(path) : test_client_config(path);
    negio_config_set_half_close(cfg, 1);
    if (profile != NEGIO_PROFILE_NATIVE) {
        assert_int_equal(negio_config_set_profile(cfg, profile), 0);
        assert_int_equal(negio_config_set_transport(cfg, NEGIO_TRANSPORT_PLAIN), 0);
    }
    return cfg;
}

/* The tunnel: a server relaying to BACKEND_PORT, a client relaying the socket *APP_OTHER_END's
 * peer; *APP receives the application's end of that socket. */
static void tunnel_in(side *srv, side *cli, uint16_t backend_port, int *app, test_path path,
                      negio_profile profile)
{
    negio_config *sc = tunnel_config(NEGIO_ROLE_SERVER, path, profile);
    uint16_t sport = 0;
    srv->backend_port = backend_port;
    assert_int_equal(negio_engine_listen(srv->e, "127.0.0.1:0", sc, &sport), 0);
    negio_config_del(sc);

    uint16_t lport;
    int lfd = listen_any(&lport);
    *app = connect_to(lport);
    int relay_fd = accept_within(lfd, 5000);
    assert_true(relay_fd >= 0);
    close(lfd);

    negio_config *cc = tunnel_config(NEGIO_ROLE_CLIENT, path, profile);
    negio_econn *conn = NULL;
    assert_int_equal(negio_engine_connect(cli->e, "127.0.0.1", sport, cc, NULL, &conn), 0);
    negio_config_del(cc);
    assert_int_equal(negio_engine_relay(conn, relay_fd, NULL), 0);
    /* one relay per connection */
    assert_int_equal(negio_engine_relay(conn, 0, NULL), NEGIO_ERR_STATE);
    negio_econn_unref(conn);
}

static void tunnel(side *srv, side *cli, uint16_t backend_port, int *app, test_path path)
{
    tunnel_in(srv, cli, backend_port, app, path, NEGIO_PROFILE_NATIVE);
}

/* The client's FIN reaches the backend after "hello" while the backend's answer still flows
 * back; the backend's FIN then ends the tunnel, cleanly on both sides, and reaches the
 * application as a FIN after "world". In PROFILE: negio's own (each side's CLOSE) or [MS-NNS]
 * (each side's FIN on the tunnel's stream). */
static void half_close_in(negio_profile profile)
{
    for (int p = 0; p < PATH_COUNT; p += PATH_COUNT - 2) { /* kerberos, negotiate->ntlm */
        side srv, cli;
        side_init(&srv, 0);
        side_init(&cli, 0);
        uint16_t bport;
        int bl = listen_any(&bport);
        int app;
        tunnel_in(&srv, &cli, bport, &app, (test_path)p, profile);
        assert_int_equal(write(app, "hello", 5), 5);
        assert_int_equal(shutdown(app, SHUT_WR), 0);
        int b = accept_within(bl, 20000);
        assert_true(b >= 0);
        uint8_t buf[64];
        ssize_t n = read_to_eof(b, buf, sizeof(buf));
        assert_int_equal(n, 5); /* "hello", then the FIN */
        assert_memory_equal(buf, "hello", 5);
        /* the other direction is still open */
        assert_int_equal(write(b, "world", 5), 5);
        assert_int_equal(close(b), 0);
        n = read_to_eof(app, buf, sizeof(buf));
        assert_int_equal(n, 5); /* a FIN, not a reset */
        assert_memory_equal(buf, "world", 5);
        assert_int_equal(side_wait_closed(&srv, 20000), 1);
        assert_int_equal(side_wait_closed(&cli, 20000), 1);
        if (srv.reason != NEGIO_CLOSE_CLEAN || cli.reason != NEGIO_CLOSE_CLEAN)
            fprintf(stderr, "server: %s %s; client: %s %s\n", negio_close_reason_name(srv.reason),
                    srv.detail, negio_close_reason_name(cli.reason), cli.detail);
        assert_int_equal(srv.reason, NEGIO_CLOSE_CLEAN);
        assert_int_equal(cli.reason, NEGIO_CLOSE_CLEAN);
        assert_true(srv.have_stats && cli.have_stats);
        assert_int_equal(srv.st.to_socket, 5);
        assert_int_equal(srv.st.from_socket, 5);
        assert_int_equal(cli.st.to_socket, 5);
        assert_int_equal(cli.st.from_socket, 5);
        assert_true(srv.st.socket_eof && srv.st.peer_closed);
        close(app);
        close(bl);
        side_free(&cli);
        side_free(&srv);
    }
}

static void half_close_travels_both_ways_after_the_bytes_before_it(void **state)
{
    (void)state;
    half_close_in(NEGIO_PROFILE_NATIVE);
}

static void over_nns_half_close_travels_as_the_streams_fin_both_ways(void **state)
{
    (void)state;
    half_close_in(NEGIO_PROFILE_NNS);
}

/* [MS-NNS]: a server that refuses the client it authenticated (on_authenticated's status) does so
 * before its HandshakeDone leaves: the client fails with the Windows code (NEGIO_ERR_REJECTED,
 * ERROR_ACCESS_DENIED) and never establishes, its application's socket is reset, and the
 * server relays nothing. */
static void over_nns_a_refused_client_learns_why_before_it_is_established(void **state)
{
    (void)state;
    for (int p = 0; p < PATH_COUNT; p++) {
        side srv, cli;
        side_init(&srv, 0);
        side_init(&cli, 0);
        srv.refuse = NEGIO_STATUS_FORBIDDEN;
        uint16_t bport;
        int bl = listen_any(&bport);
        int app;
        tunnel_in(&srv, &cli, bport, &app, (test_path)p, NEGIO_PROFILE_NNS);
        uint8_t buf[16];
        assert_int_equal(read_to_eof(app, buf, sizeof(buf)), -ECONNRESET);
        assert_int_equal(side_wait_closed(&cli, 20000), 1);
        assert_int_equal(side_wait_closed(&srv, 20000), 1);
        if (cli.code != NEGIO_ERR_REJECTED)
            fprintf(stderr, "%s: client: %s %s\n", test_path_name((test_path)p),
                    negio_err_name(cli.code), cli.detail);
        assert_int_equal(cli.code, NEGIO_ERR_REJECTED);
        assert_non_null(strstr(cli.detail, "0x00000005 ERROR_ACCESS_DENIED"));
        assert_int_equal(cli.authenticated, 0);
        assert_int_equal(srv.reason, NEGIO_CLOSE_REFUSED);
        assert_int_equal(srv.have_stats, 0); /* no relay was made */
        struct pollfd pf = {.fd = bl, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 0), 0); /* nothing reached the backend */
        close(app);
        close(bl);
        side_free(&cli);
        side_free(&srv);
    }
}

/* Nothing listens where the server relays: the client side is closed at once with the reason,
 * and the application's socket is reset (a cut stream, never a clean end). */
static void a_refused_backend_closes_the_client_promptly_with_the_reason(void **state)
{
    (void)state;
    side srv, cli;
    side_init(&srv, 0);
    side_init(&cli, 0);
    uint16_t bport;
    close(listen_any(&bport)); /* a port nobody listens on now */
    int app;
    tunnel(&srv, &cli, bport, &app, PATH_KERBEROS);
    uint8_t buf[16];
    ssize_t n = read_to_eof(app, buf, sizeof(buf));
    assert_int_equal(n, -ECONNRESET);
    assert_int_equal(side_wait_closed(&cli, 20000), 1);
    assert_int_equal(side_wait_closed(&srv, 20000), 1);
    assert_int_equal(cli.code, NEGIO_ERR_REJECTED);
    assert_non_null(strstr(cli.detail, "status 122"));
    assert_non_null(strstr(cli.detail, "connection refused"));
    assert_int_equal(srv.reason, NEGIO_CLOSE_ERROR);
    assert_int_equal(srv.code, NEGIO_ERR_ADDRESS);
    assert_non_null(strstr(srv.detail, "relay: connect to 127.0.0.1:"));
    close(app);
    side_free(&cli);
    side_free(&srv);
}

typedef struct writer {
    int fd;
    size_t total;
    uint32_t sum;
} writer;

static void *write_all(void *arg)
{
    writer *w = arg;
    uint8_t chunk[16384];
    for (size_t off = 0; off < w->total;) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (uint8_t)((off + i) * 2654435761u >> 24);
        size_t len = w->total - off < sizeof(chunk) ? w->total - off : sizeof(chunk);
        ssize_t n = write(w->fd, chunk, len);
        if (n <= 0)
            break;
        w->sum = checksum_update(w->sum, chunk, (size_t)n);
        off += (size_t)n;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* A backend that does not read for a while: the application's writes stop in the kernel, and
 * each relay holds no more than its two high-water marks, a message and a frame; every byte
 * arrives, in order. */
static void a_backend_that_does_not_read_bounds_what_each_relay_holds(void **state)
{
    (void)state;
    const size_t hw = 256 * 1024, relay_hw = 128 * 1024, total = 24u << 20;
    side srv, cli;
    side_init(&srv, hw);
    side_init(&cli, hw);
    srv.relay_hw = relay_hw;
    uint16_t bport;
    int bl = listen_any(&bport);
    int app;
    tunnel(&srv, &cli, bport, &app, PATH_KERBEROS);
    writer w = {.fd = app, .total = total};
    pthread_t t;
    pthread_create(&t, NULL, write_all, &w);
    int b = accept_within(bl, 20000);
    assert_true(b >= 0);
    usleep(300 * 1000); /* lets the pipeline fill up to its bounds; nothing is timed */
    uint8_t *buf = malloc(total + 1);
    ssize_t n = read_to_eof(b, buf, total + 1);
    pthread_join(t, NULL);
    assert_int_equal(n, (ssize_t)total);
    assert_int_equal(checksum_update(0, buf, total), w.sum);
    free(buf);
    close(b);
    assert_int_equal(side_wait_closed(&srv, 20000), 1);
    assert_int_equal(side_wait_closed(&cli, 20000), 1);
    /* one 64 KiB message and a frame's overhead over each mark */
    size_t bound = hw + relay_hw + 2 * 65536 + 16384;
    fprintf(stderr, "held at most: client relay %zu, server relay %zu (bound %zu)\n",
            cli.st.held_max, srv.st.held_max, bound);
    assert_true(srv.st.held_max <= bound);
    assert_true(cli.st.held_max <= bound);
    assert_int_equal(srv.st.to_socket, total);
    close(app);
    close(bl);
    side_free(&cli);
    side_free(&srv);
}

/* Drives a client connector over FD until established; returns 0 or the error. */
static int handshake_over(int fd, negio_config *cc)
{
    negio_conn *conn;
    assert_int_equal(negio_conn_new(&conn, cc), 0);
    int rc = 0;
    for (int established = 0; !established && rc >= 0;) {
        size_t len;
        const uint8_t *out;
        while ((out = negio_conn_send_buf(conn, &len)) != NULL && len > 0) {
            ssize_t n = write(fd, out, len);
            assert_true(n > 0);
            negio_conn_send_done(conn, (size_t)n);
        }
        negio_event ev;
        rc = negio_conn_next_event(conn, &ev);
        if (rc == 1 && ev.type == NEGIO_EV_ESTABLISHED)
            established = 1;
        if (rc == 0 && (ev.want & NEGIO_WANT_READ) && !(ev.want & NEGIO_WANT_WRITE)) {
            uint8_t in[16384];
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t n = poll(&p, 1, 20000) == 1 ? read(fd, in, sizeof(in)) : -1;
            if (n <= 0) {
                rc = NEGIO_ERR_TRUNCATED;
                break;
            }
            assert_int_equal(negio_conn_feed(conn, in, (size_t)n), 0);
        }
    }
    size_t len;
    const uint8_t *out;
    while (rc >= 0 && (out = negio_conn_send_buf(conn, &len)) != NULL && len > 0) {
        ssize_t n = write(fd, out, len); /* this side's POLICY, if it went with the last read */
        assert_true(n > 0);
        negio_conn_send_done(conn, (size_t)n);
    }
    negio_conn_del(conn);
    return rc < 0 ? rc : 0;
}

/* From a listed balancer a PROXY header names the client; from anyone else it is refused, and
 * the connection's own address is never replaced. The address the connection was accepted on
 * stays the listener's. */
static void proxy_headers_are_taken_only_from_the_listed_sources(void **state)
{
    (void)state;
    side srv;
    side_init(&srv, 0);
    negio_config *sc = test_server_config(PATH_KERBEROS);
    uint16_t listed = 0, unlisted = 0;
    negio_listen_options lo = {.size = sizeof(lo), .accept_proxy_from = "10.0.0.0/8, 127.0.0.1"};
    assert_int_equal(negio_engine_listen_with(srv.e, "127.0.0.1:0", sc, &lo, &listed), 0);
    lo.accept_proxy_from = "10.0.0.0/8 ::1/128";
    assert_int_equal(negio_engine_listen_with(srv.e, "127.0.0.1:0", sc, &lo, &unlisted), 0);
    lo.accept_proxy_from = "10.0.0.0/33";
    assert_int_equal(negio_engine_listen_with(srv.e, "127.0.0.1:0", sc, &lo, NULL),
                     NEGIO_ERR_INVALID);
    negio_config_del(sc);

    /* version 2 from a listed source: the client is 192.0.2.7:4242 */
    static const uint8_t v2[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55,
                                 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x12, 192,  0,
                                 2,    7,    127,  0,    0,    1,    0x10, 0x92, 0x1b,
                                 0x58, 0xe0, 0x00, 0x03, 'a',  'b',  'c'};
    int fd = connect_to(listed);
    assert_int_equal(write(fd, v2, sizeof(v2)), (ssize_t)sizeof(v2));
    negio_config *cc = test_client_config(PATH_KERBEROS);
    assert_int_equal(handshake_over(fd, cc), 0);
    struct timespec ts = test_deadline_after_ms(20000);
    pthread_mutex_lock(&srv.lock);
    while (srv.authenticated < 1 && pthread_cond_timedwait(&srv.cond, &srv.lock, &ts) == 0)
        ;
    assert_string_equal(srv.peer, "192.0.2.7:4242");
    assert_non_null(strstr(srv.via, "127.0.0.1:"));
    char accepted_on[64]; /* the listener's own address, whatever the header says */
    snprintf(accepted_on, sizeof(accepted_on), "127.0.0.1:%u", listed);
    assert_string_equal(srv.local, accepted_on);
    pthread_mutex_unlock(&srv.lock);
    close(fd);

    /* version 1 from a source not listed: refused, named */
    fd = connect_to(unlisted);
    const char v1[] = "PROXY TCP4 192.0.2.8 127.0.0.1 4243 7000\r\n";
    assert_int_equal(write(fd, v1, sizeof(v1) - 1), (ssize_t)sizeof(v1) - 1);
    assert_true(handshake_over(fd, cc) < 0);
    close(fd);
    negio_config_del(cc);
    assert_true(side_wait_closed(&srv, 20000) >= 1);
    ts = test_deadline_after_ms(20000);
    pthread_mutex_lock(&srv.lock);
    while (srv.closed < 2 && pthread_cond_timedwait(&srv.cond, &srv.lock, &ts) == 0)
        ;
    assert_int_equal(srv.code, NEGIO_ERR_PROTOCOL);
    assert_non_null(strstr(srv.detail, "a PROXY protocol header from 127.0.0.1"));
    pthread_mutex_unlock(&srv.lock);
    side_free(&srv);
}

/* Version 1 lines as HAProxy's proxy-protocol.txt (section 2.1) writes them, and each way a line
 * can break it, refused: the spacing, the protocol, either address (in the protocol's family),
 * either port (decimal 0..65535, no heading zero, nothing after it). */
static void proxy_v1_lines_are_taken_exactly_as_the_specification_writes_them(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int rc;
        const char *src; /* rc 1: the client's address as addr_text writes it */
    } cases[] = {
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 7000", 1, "192.0.2.7:4242"},
        {"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535", 1, "0.0.0.0:0"},
        {"PROXY TCP6 2001:db8::1 ::1 4242 7000", 1, "[2001:db8::1]:4242"},
        {"PROXY UNKNOWN", 0, NULL},
        {"PROXY UNKNOWN ffff:f::1 ::1 65535 65535", 0, NULL}, /* the rest ignored */
        /* ports */
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 123456", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 123456", -1, NULL}, /* was 12345, then 6 */
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 65536", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 65536 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 07000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 04242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 -1", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 +4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 7000x", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 0x1b58", -1, NULL},
        /* addresses */
        {"PROXY TCP4 192.0.2.7 not-an-address 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 ::1 4242 7000", -1, NULL},
        {"PROXY TCP4 2001:db8::1 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP6 ::1 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP6 127.0.0.1 ::1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.07 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.256 4242 7000", -1, NULL},
        /* spacing and fields */
        {"PROXY  TCP4 192.0.2.7 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7  127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 7000 ", -1, NULL},
        {"PROXY TCP4 192.0.2.7\t127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242", -1, NULL},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 4242 7000 7001", -1, NULL},
        {"PROXY", -1, NULL},
        {"PROXY ", -1, NULL},
        /* the protocol */
        {"PROXY UDP4 192.0.2.7 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY tcp4 192.0.2.7 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY TCP 192.0.2.7 127.0.0.1 4242 7000", -1, NULL},
        {"PROXY UNKNOWNX", -1, NULL},
    };
    int wrong = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss;
        int rc = negio__proxy_v1_parse((const uint8_t *)cases[i].line, strlen(cases[i].line), &ss);
        char text[64] = "";
        if (rc == 1)
            addr_text((const struct sockaddr *)&ss, text, sizeof(text));
        if (rc != cases[i].rc || (rc == 1 && strcmp(text, cases[i].src) != 0)) {
            print_message("'%s': %d %s, expected %d %s\n", cases[i].line, rc, text, cases[i].rc,
                          cases[i].src ? cases[i].src : "");
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
    /* a NUL inside the line: what follows it must not be ignored */
    static const char nul[] = "PROXY TCP4 192.0.2.7 127.0.0.1 4242 7000\0junk";
    struct sockaddr_storage ss;
    assert_int_equal(negio__proxy_v1_parse((const uint8_t *)nul, sizeof(nul) - 1, &ss), -1);
}

/* Which sources a list of blocks names (negio__cidr_match): each family as written, an IPv4
 * source in its mapped IPv6 form as well, and every prefix length to the bit. */
static void source_lists_match_to_the_bit_in_both_forms_of_an_ipv4_address(void **state)
{
    (void)state;
    static const struct {
        const char *list, *source;
        int match;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1", 1},
        {"127.0.0.1", "127.0.0.2", 0},
        {"10.0.0.0/8", "10.255.1.2", 1},
        {"10.0.0.0/8", "11.0.0.1", 0},
        {"192.168.1.0/25", "192.168.1.127", 1},
        {"192.168.1.0/25", "192.168.1.128", 0},
        {"0.0.0.0/0", "203.0.113.9", 1},
        {"0.0.0.0/0", "2001:db8::1", 0},
        {"::1", "::1", 1},
        {"::1/128", "::2", 0},
        {"2001:db8::/32", "2001:db8:ffff::1", 1},
        {"2001:db8::/33", "2001:db8:8000::1", 0},
        {"::/0", "2001:db8::1", 1},
        /* an IPv4 source seen mapped, and mapped entries */
        {"127.0.0.1", "::ffff:127.0.0.1", 1},
        {"::ffff:127.0.0.1", "127.0.0.1", 1},
        {"::ffff:127.0.0.1", "::ffff:127.0.0.1", 1},
        {"::ffff:10.0.0.0/104", "10.1.2.3", 1},
        {"::ffff:10.0.0.0/104", "11.1.2.3", 0},
        {"::/0", "198.51.100.7", 1},
        {"::/0", "::ffff:8.8.8.8", 1},
        {"2001:db8::/32", "10.0.0.1", 0},
        {"10.0.0.0/8, ::1", "::1", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        negio__cidr *v = NULL;
        int n = negio__cidr_parse(cases[i].list, &v);
        assert_true(n > 0);
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (strchr(cases[i].source, ':') != NULL) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].source, &a->sin6_addr), 1);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].source, &a->sin_addr), 1);
        }
        int got = negio__cidr_match(v, (size_t)n, (struct sockaddr *)&ss);
        if (got != cases[i].match)
            fail_msg("%s against %s: %d, expected %d", cases[i].source, cases[i].list, got,
                     cases[i].match);
        negio__free(v);
    }
}

int main(void)
{
    test_realm_get();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(half_close_travels_both_ways_after_the_bytes_before_it),
        cmocka_unit_test(over_nns_half_close_travels_as_the_streams_fin_both_ways),
        cmocka_unit_test(over_nns_a_refused_client_learns_why_before_it_is_established),
        cmocka_unit_test(a_refused_backend_closes_the_client_promptly_with_the_reason),
        cmocka_unit_test(a_backend_that_does_not_read_bounds_what_each_relay_holds),
        cmocka_unit_test(proxy_headers_are_taken_only_from_the_listed_sources),
        cmocka_unit_test(proxy_v1_lines_are_taken_exactly_as_the_specification_writes_them),
        cmocka_unit_test(source_lists_match_to_the_bit_in_both_forms_of_an_ipv4_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
