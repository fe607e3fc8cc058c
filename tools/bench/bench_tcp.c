/*
 * negio bench: the plain TCP baseline. The same one-way transfer as the "stream" role, over
 * libuv alone: each message is a 4-byte big-endian length and the payload, written with one
 * uv_write straight from the application's buffer (no copy) and parsed by the server in its
 * read buffer (no copy). The same application protocol ('B', 'D', 'E' and the 'R' answer) and
 * the same high-water mark for the sender as the negio engine's default.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"

#define HIGH_WATER (1u << 20)
#define READ_BUF (64u * 1024)

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A receiver of length-prefixed messages that never copies a payload: it only needs a
 * message's first byte (its kind) and its length. */
struct parser {
    uint8_t hdr[4];
    size_t hdr_have;
    size_t left;        /* payload bytes of the current message still to come */
    size_t length;      /* of the current message */
    int kind;           /* its first byte, or -1 before it arrived */
    uint8_t small[256]; /* the first bytes of a short message (control messages) */
};

/* Feeds N bytes; calls ON_MESSAGE(kind, length, first bytes) for each complete message. */
static void parse(struct parser *ps, const uint8_t *p, size_t n,
                  void (*on_message)(int kind, size_t len, const uint8_t *small, void *u), void *u)
{
    while (n > 0) {
        if (ps->hdr_have < 4) {
            size_t take = 4 - ps->hdr_have < n ? 4 - ps->hdr_have : n;
            memcpy(ps->hdr + ps->hdr_have, p, take);
            ps->hdr_have += take;
            p += take;
            n -= take;
            if (ps->hdr_have == 4) {
                ps->length = ps->left = (size_t)ps->hdr[0] << 24 | (size_t)ps->hdr[1] << 16 |
                                        (size_t)ps->hdr[2] << 8 | ps->hdr[3];
                ps->kind = -1;
                if (ps->left == 0) {
                    ps->hdr_have = 0;
                    on_message(0, 0, ps->small, u);
                }
            }
            continue;
        }
        size_t take = ps->left < n ? ps->left : n;
        size_t off = ps->length - ps->left;
        if (off < sizeof(ps->small)) {
            size_t c = sizeof(ps->small) - off < take ? sizeof(ps->small) - off : take;
            memcpy(ps->small + off, p, c);
        }
        if (ps->kind < 0)
            ps->kind = p[0];
        ps->left -= take;
        p += take;
        n -= take;
        if (ps->left == 0) {
            ps->hdr_have = 0;
            on_message(ps->kind, ps->length, ps->small, u);
        }
    }
}

/* ---- server ------------------------------------------------------------------------------- */

struct tconn {
    uv_tcp_t tcp;
    struct parser ps;
    uint8_t buf[READ_BUF];
};

struct wr {
    uv_write_t req;
    uint8_t data[];
};

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_poll_t in;
    long msgs, bytes;
    int64_t cpu0;
} ts;

static void free_req(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void send_copy(uv_stream_t *s, const void *data, size_t len)
{
    struct wr *w = malloc(sizeof(*w) + 4 + len);
    if (w == NULL)
        return;
    put_u32(w->data, (uint32_t)len);
    memcpy(w->data + 4, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(4 + len));
    if (uv_write(&w->req, s, &b, 1, free_req) != 0)
        free(w);
}

static void srv_message(int kind, size_t len, const uint8_t *small, void *u)
{
    (void)small;
    struct tconn *c = u;
    if (kind == 'D') {
        ts.msgs++;
        ts.bytes += (long)len;
    } else if (kind == 'B') {
        ts.msgs = ts.bytes = 0;
        ts.cpu0 = bench_cpu_us();
    } else if (kind == 'P') { /* ping: answer with as many bytes, as the negio server does */
        static uint8_t echo[1 << 16];
        echo[0] = 'P';
        if (len <= sizeof(echo))
            send_copy((uv_stream_t *)&c->tcp, echo, len);
    } else if (kind == 'E') {
        char reply[160];
        int n = snprintf(reply, sizeof(reply), "R msgs=%ld bytes=%ld cpu_us=%lld", ts.msgs,
                         ts.bytes, (long long)(bench_cpu_us() - ts.cpu0));
        send_copy((uv_stream_t *)&c->tcp, reply, (size_t)n);
    }
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct tconn *c = h->data;
    *buf = uv_buf_init((char *)c->buf, sizeof(c->buf));
}

static void srv_closed(uv_handle_t *h)
{
    free(h->data);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct tconn *c = s->data;
    if (n > 0)
        parse(&c->ps, (const uint8_t *)buf->base, (size_t)n, srv_message, c);
    else if (n < 0)
        uv_close((uv_handle_t *)s, srv_closed);
}

static void srv_accept(uv_stream_t *l, int status)
{
    if (status < 0)
        return;
    struct tconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(ts.loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, srv_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h,
                 h->data != NULL && h != (uv_handle_t *)&ts.listener && h != (uv_handle_t *)&ts.in
                     ? srv_closed
                     : NULL);
}

static void stdin_ready(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)status;
    (void)events;
    char b[256];
    ssize_t n = read(0, b, sizeof(b));
    if (n > 0 || (n < 0 && errno == EINTR))
        return;
    uv_walk(ts.loop, close_any, NULL); /* stdin ended: stop */
}

/* Listens on a free port of 127.0.0.1, prints "port port=N", serves until stdin ends. */
int bench_tcp_server(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ts.loop = uv_default_loop();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(ts.loop, &ts.listener);
    int rc = uv_tcp_bind(&ts.listener, (const struct sockaddr *)&a, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ts.listener, 128, srv_accept);
    if (rc != 0) {
        printf("error role=tcpserver listen: %s\n", uv_strerror(rc));
        return 1;
    }
    int len = sizeof(a);
    uv_tcp_getsockname(&ts.listener, (struct sockaddr *)&a, &len);
    printf("port port=%u\n", (unsigned)ntohs(a.sin_port));
    fflush(stdout);
    uv_poll_init(ts.loop, &ts.in, 0);
    uv_poll_start(&ts.in, UV_READABLE | UV_DISCONNECT, stdin_ready);
    uv_run(ts.loop, UV_RUN_DEFAULT);
    uv_loop_close(ts.loop);
    return 0;
}

/* ---- client ------------------------------------------------------------------------------- */

struct hdr_req {
    uv_write_t req;
    uint8_t hdr[4];
};

/* The clients read into their READ_BUF-byte buffer, the handle's data. */
static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    *buf = uv_buf_init(h->data, READ_BUF);
}

static struct {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct parser ps;
    uint8_t rbuf[READ_BUF];
    uint8_t *buf;
    size_t sizes[128], nsizes, cur;
    double seconds;
    long msgs;
    int64_t t0, tend, cpu0;
    int draining, pumping, failed;
} tc;

static void tc_written(uv_write_t *req, int status);

/* One message: its header from a small request, its payload from the application's buffer. */
static int tc_write(const uint8_t *payload, size_t len)
{
    struct hdr_req *r = malloc(sizeof(*r));
    if (r == NULL)
        return -1;
    put_u32(r->hdr, (uint32_t)len);
    uv_buf_t b[2] = {uv_buf_init((char *)r->hdr, 4), uv_buf_init((char *)payload, (unsigned)len)};
    int rc = uv_write(&r->req, (uv_stream_t *)&tc.tcp, b, 2, tc_written);
    if (rc != 0) {
        free(r);
        tc.failed = 1;
        uv_stop(tc.loop);
        return -1;
    }
    return 0;
}

static void tc_pump(void)
{
    if (tc.pumping)
        return;
    tc.pumping = 1;
    size_t size = tc.sizes[tc.cur];
    while (!tc.draining && !tc.failed &&
           uv_stream_get_write_queue_size((uv_stream_t *)&tc.tcp) <= HIGH_WATER) {
        if (bench_now_ns() >= tc.tend) {
            static const uint8_t e = 'E';
            tc.draining = 1;
            tc_write(&e, 1);
            break;
        }
        tc_write(tc.buf, size);
        tc.msgs++;
    }
    tc.pumping = 0;
}

static void tc_written(uv_write_t *req, int status)
{
    free(req);
    if (status < 0) {
        tc.failed = 1;
        uv_stop(tc.loop);
        return;
    }
    if (!tc.draining && uv_stream_get_write_queue_size((uv_stream_t *)&tc.tcp) <= HIGH_WATER / 2)
        tc_pump();
}

static void tc_start_point(void)
{
    static const uint8_t b = 'B';
    tc.msgs = 0;
    tc.draining = 0;
    tc.cpu0 = bench_cpu_us();
    tc.t0 = bench_now_ns();
    tc.tend = tc.t0 + (int64_t)(tc.seconds * 1e9);
    tc_write(&b, 1);
    tc_pump();
}

static void tc_message(int kind, size_t len, const uint8_t *small, void *u)
{
    (void)u;
    if (kind != 'R' || !tc.draining)
        return;
    char line[200];
    snprintf(line, sizeof(line), "%.*s", (int)(len < 199 ? len : 199), (const char *)small);
    size_t size = tc.sizes[tc.cur];
    printf("point level=tcp size=%zu msgs=%ld bytes=%.0f wall_ns=%lld client_cpu_us=%lld "
           "server_cpu_us=%.0f server_msgs=%.0f\n",
           size, tc.msgs, (double)tc.msgs * (double)size, (long long)(bench_now_ns() - tc.t0),
           (long long)(bench_cpu_us() - tc.cpu0), bench_kv_num(line, "cpu_us", -1),
           bench_kv_num(line, "msgs", -1));
    fflush(stdout);
    if (++tc.cur < tc.nsizes)
        tc_start_point();
    else
        uv_close((uv_handle_t *)&tc.tcp, NULL);
}

static void tc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        parse(&tc.ps, (const uint8_t *)buf->base, (size_t)n, tc_message, NULL);
    } else if (n < 0) {
        tc.failed = tc.cur < tc.nsizes;
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, NULL);
    }
}

static void tc_connected(uv_connect_t *req, int status)
{
    (void)req;
    if (status < 0) {
        printf("error role=tcpstream connect: %s\n", uv_strerror(status));
        tc.failed = 1;
        uv_close((uv_handle_t *)&tc.tcp, NULL);
        return;
    }
    uv_tcp_nodelay(&tc.tcp, 1);
    tc.tcp.data = tc.rbuf;
    uv_read_start((uv_stream_t *)&tc.tcp, client_alloc, tc_read);
    tc_start_point();
}

/* key=value: port sizes=... seconds=S repeat=N (whole sweeps). Prints "point level=tcp ..." per
 * size, then "done". */
int bench_tcp_stream(int argc, char **argv)
{
    uint16_t port = (uint16_t)bench_arg_num(argc, argv, "port", 0);
    tc.seconds = bench_arg_num(argc, argv, "seconds", 1);
    const char *s = bench_arg(argc, argv, "sizes", "16384");
    size_t maxsize = 1;
    while (*s && tc.nsizes < 32) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s)
            break;
        tc.sizes[tc.nsizes++] = v;
        if (v > maxsize)
            maxsize = v;
        s = *end == ',' ? end + 1 : end;
    }
    int repeat = (int)bench_arg_num(argc, argv, "repeat", 1);
    for (size_t n = tc.nsizes, k = 1; k < (size_t)repeat && tc.nsizes + n <= 128; k++)
        for (size_t i = 0; i < n; i++)
            tc.sizes[tc.nsizes++] = tc.sizes[i];
    if (port == 0 || tc.nsizes == 0 || (tc.buf = bench_payload(maxsize)) == NULL) {
        printf("error role=tcpstream port and sizes are required\n");
        return 2;
    }
    tc.buf[0] = 'D';
    tc.loop = uv_default_loop();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(tc.loop, &tc.tcp);
    uv_tcp_connect(&tc.creq, &tc.tcp, (const struct sockaddr *)&a, tc_connected);
    uv_run(tc.loop, UV_RUN_DEFAULT);
    printf(tc.failed ? "error role=tcpstream transfer failed\n" : "done\n");
    fflush(stdout);
    uv_loop_close(tc.loop);
    bench_free_payload(tc.buf);
    return tc.failed ? 1 : 0;
}

/* ---- latency client: one ping in flight ------------------------------------------------------ */

static struct {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct parser ps;
    uint8_t rbuf[READ_BUF];
    uint8_t *buf;
    size_t size;
    int64_t *rtt, sent_at, tend;
    long n, max, skip;
    double seconds;
    int failed;
} tl;

static void tl_ping(void)
{
    tl.sent_at = bench_now_ns();
    struct hdr_req *r = malloc(sizeof(*r));
    if (r == NULL) {
        tl.failed = 1;
        uv_close((uv_handle_t *)&tl.tcp, NULL);
        return;
    }
    put_u32(r->hdr, (uint32_t)tl.size);
    uv_buf_t b[2] = {uv_buf_init((char *)r->hdr, 4),
                     uv_buf_init((char *)tl.buf, (unsigned)tl.size)};
    if (uv_write(&r->req, (uv_stream_t *)&tl.tcp, b, 2, free_req) != 0) {
        free(r);
        tl.failed = 1;
        uv_close((uv_handle_t *)&tl.tcp, NULL);
    }
}

static void tl_message(int kind, size_t len, const uint8_t *small, void *u)
{
    (void)small;
    (void)u;
    int64_t now = bench_now_ns();
    if (kind != 'P' || len != tl.size || uv_is_closing((uv_handle_t *)&tl.tcp))
        return;
    if (tl.skip > 0)
        tl.skip--;
    else
        tl.rtt[tl.n++] = now - tl.sent_at;
    if (tl.n >= tl.max || now >= tl.tend)
        uv_close((uv_handle_t *)&tl.tcp, NULL);
    else
        tl_ping();
}

static void tl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        parse(&tl.ps, (const uint8_t *)buf->base, (size_t)n, tl_message, NULL);
    } else if (n < 0 && !uv_is_closing((uv_handle_t *)s)) {
        tl.failed = 1;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void tl_connected(uv_connect_t *req, int status)
{
    (void)req;
    if (status < 0) {
        tl.failed = 1;
        uv_close((uv_handle_t *)&tl.tcp, NULL);
        return;
    }
    uv_tcp_nodelay(&tl.tcp, 1);
    tl.tcp.data = tl.rbuf;
    uv_read_start((uv_stream_t *)&tl.tcp, client_alloc, tl_read);
    tl.tend = bench_now_ns() + (int64_t)(tl.seconds * 1e9);
    tl_ping();
}

/* key=value: port size=1024 seconds=S max=N. Prints "latency n=N p50_us=...", as the negio
 * latency role does. */
int bench_tcp_latency(int argc, char **argv)
{
    uint16_t port = (uint16_t)bench_arg_num(argc, argv, "port", 0);
    tl.size = (size_t)bench_arg_num(argc, argv, "size", 1024);
    tl.seconds = bench_arg_num(argc, argv, "seconds", 1);
    tl.max = (long)bench_arg_num(argc, argv, "max", 100000);
    tl.skip = 20;
    tl.buf = bench_payload(tl.size);
    tl.rtt = malloc(sizeof(int64_t) * (size_t)tl.max);
    if (port == 0 || tl.size == 0 || tl.buf == NULL || tl.rtt == NULL) {
        printf("error role=tcplatency port and size are required\n");
        return 2;
    }
    memset(tl.buf, 'x', tl.size);
    tl.buf[0] = 'P';
    tl.loop = uv_default_loop();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(tl.loop, &tl.tcp);
    uv_tcp_connect(&tl.creq, &tl.tcp, (const struct sockaddr *)&a, tl_connected);
    uv_run(tl.loop, UV_RUN_DEFAULT);
    if (tl.failed || tl.n == 0)
        printf("error role=tcplatency the echo failed\n");
    else
        bench_print_latency(tl.rtt, tl.n);
    fflush(stdout);
    uv_loop_close(tl.loop);
    bench_free_payload(tl.buf);
    free(tl.rtt);
    return tl.failed ? 1 : 0;
}
