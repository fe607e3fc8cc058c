/* Test support: the driver of the allocation-failure suites (tests/conformance/
 * test_alloc_failure.c, test_nns_alloc_failure.c). A client and a server connector made with the
 * Nth allocation failing (src/base/alloc.h hook), then run against each other in memory until
 * neither makes progress; what each writes and checks is the suite's, through its event function.
 * Only those tests link it (tests/CMakeLists.txt): it needs the hook (negio_hook_static) and
 * cmocka, which the rest of tests/support does not. */
#ifndef NEGIO_TEST_ALLOC_RUN_H
#define NEGIO_TEST_ALLOC_RUN_H

#include <stddef.h>

#include "negio/negio.h"

typedef struct test_alloc_side {
    negio_conn *conn;
    int err;         /* fatal error seen, 0 if none */
    int established; /* ESTABLISHED events */
    int closed;      /* CLOSED events */
    int created;     /* negio_conn_new succeeded */
    size_t wire_out; /* bytes this side put on the wire for its peer */
} test_alloc_side;

typedef struct test_alloc_run test_alloc_run;

typedef struct test_alloc_ops {
    /* Called for every event a side reports, after the side's established and closed counts
     * were updated. */
    void (*on_event)(test_alloc_run *r, test_alloc_side *s, const negio_event *ev);
    /* 0: each side's output reaches its peer through negio_conn_feed. 1: the server's reaches the
     * client through the client's zero-copy region (negio_conn_recv_buf), so that both input
     * paths allocate. */
    int zero_copy_to_client;
} test_alloc_ops;

struct test_alloc_run {
    test_alloc_side client, server;
    int create_err; /* negio_conn_new failed with this */
    const test_alloc_ops *ops;
    void *user; /* the suite's state, for ops->on_event */
};

/* Clears R, arms the hook to fail the Nth allocation from now (0: none fails) and makes the
 * client from CC, then the server from SC. Returns 0, or the error of the negio_conn_new that
 * failed (also in R->create_err; the server is then not made). The hook stays armed: the caller
 * reads negio__alloc_injected() and disarms it once the run is over. */
int test_alloc_run_start(test_alloc_run *r, const test_alloc_ops *ops, void *user,
                         const negio_config *cc, const negio_config *sc, long n);
/* Moves bytes both ways and delivers events until nothing moves (at most 10,000 rounds). The
 * output of each side leaves through negio_conn_send_take, or negio_conn_send_buf when the
 * connector has no memory for its next block. */
void test_alloc_run_pump(test_alloc_run *r);
/* Delivers S's events to ops->on_event until it has none or fails (S->err). Returns how many. */
int test_alloc_run_drain(test_alloc_run *r, test_alloc_side *s);
/* Frees both connectors. */
void test_alloc_run_free(test_alloc_run *r);

#endif
