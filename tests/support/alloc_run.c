#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "support/alloc_run.h"

#ifndef NEGIO_ALLOC_HOOK
#error "tests/support/alloc_run.c needs the allocation hook (negio_hook_static)"
#endif

int test_alloc_run_start(test_alloc_run *r, const test_alloc_ops *ops, void *user,
                         const negio_config *cc, const negio_config *sc, long n)
{
    memset(r, 0, sizeof(*r));
    r->ops = ops;
    r->user = user;
    negio__alloc_fail_after(n);
    int rc = negio_conn_new(&r->client.conn, cc);
    if (rc == 0) {
        r->client.created = 1;
        rc = negio_conn_new(&r->server.conn, sc);
        if (rc == 0)
            r->server.created = 1;
    }
    if (rc < 0)
        r->create_err = rc;
    return rc;
}

int test_alloc_run_drain(test_alloc_run *r, test_alloc_side *s)
{
    int events = 0;
    while (s->err == 0) {
        negio_event ev;
        int rc = negio_conn_next_event(s->conn, &ev);
        if (rc < 0) {
            s->err = rc;
            break;
        }
        if (rc == 0)
            break;
        events++;
        if (ev.type == NEGIO_EV_ESTABLISHED)
            s->established++;
        else if (ev.type == NEGIO_EV_CLOSED)
            s->closed++;
        r->ops->on_event(r, s, &ev);
    }
    return events;
}

/* Moves everything FROM has for the wire into TO through TO's zero-copy region
 * (negio_conn_recv_buf); feed() below uses negio_conn_feed(). */
static size_t move_zero_copy(test_alloc_side *from, test_alloc_side *to)
{
    size_t n;
    const uint8_t *out = negio_conn_send_buf(from->conn, &n);
    if (n == 0)
        return 0;
    from->wire_out += n;
    if (to->err != 0) {
        negio_conn_send_done(from->conn, n); /* nobody reads any more */
        return n;
    }
    size_t done = 0;
    while (done < n) {
        size_t cap;
        uint8_t *region = negio_conn_recv_buf(to->conn, &cap);
        if (region == NULL) { /* the connector failed (out of memory) */
            to->err = negio_conn_error(to->conn);
            assert_true(to->err < 0);
            break;
        }
        size_t k = n - done < cap ? n - done : cap;
        memcpy(region, out + done, k);
        assert_int_equal(negio_conn_recv_done(to->conn, k), 0);
        done += k;
    }
    negio_conn_send_done(from->conn, n);
    return n;
}

/* FROM's output leaves through negio_conn_send_take (the block changes hands, no copy); when
 * the connector has no memory for its next block, through negio_conn_send_buf. */
static size_t feed(test_alloc_side *from, test_alloc_side *to)
{
    size_t n;
    const uint8_t *out;
    void *block = negio_conn_send_take(from->conn, &out, &n);
    if (block == NULL)
        out = negio_conn_send_buf(from->conn, &n);
    if (n == 0)
        return 0;
    from->wire_out += n;
    if (to->err == 0) {
        int rc = negio_conn_feed(to->conn, out, n);
        if (rc < 0)
            to->err = rc;
    }
    if (block != NULL)
        negio_conn_send_release(block);
    else
        negio_conn_send_done(from->conn, n);
    return n;
}

void test_alloc_run_pump(test_alloc_run *r)
{
    for (int guard = 0; guard < 10000; guard++) {
        int progress = test_alloc_run_drain(r, &r->client) + test_alloc_run_drain(r, &r->server);
        progress += feed(&r->client, &r->server) > 0;
        progress += test_alloc_run_drain(r, &r->server);
        if (r->ops->zero_copy_to_client)
            progress += move_zero_copy(&r->server, &r->client) > 0;
        else
            progress += feed(&r->server, &r->client) > 0;
        if (progress == 0)
            break;
    }
}

void test_alloc_run_free(test_alloc_run *r)
{
    negio_conn_del(r->client.conn);
    negio_conn_del(r->server.conn);
    r->client.conn = r->server.conn = NULL;
}
