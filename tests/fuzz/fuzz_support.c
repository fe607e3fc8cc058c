#include "fuzz/fuzz_support.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef NEGIO_SOURCE_DIR
#error "NEGIO_SOURCE_DIR must name the source tree"
#endif

static int leak_on_purpose;

void fuzz_init(void)
{
    const char *v = getenv("NEGIO_FUZZ_LEAK_ON_PURPOSE");
    leak_on_purpose = v != NULL && v[0] == '1';
}

void fuzz_maybe_leak(void)
{
    negio_config *lost;
    if (leak_on_purpose && negio_config_new(&lost, NEGIO_ROLE_CLIENT) == NEGIO_OK)
        lost = NULL;
}

const test_realm *fuzz_realm(void)
{
    /* libFuzzer runs the binary directly, not through ctest: find the realm script ourselves */
    setenv("NEGIO_TEST_REALM_SCRIPT", NEGIO_SOURCE_DIR "/scripts/realm.sh", 0);
    return test_realm_get();
}

static int documented_fatal(int rc)
{
    switch (rc) {
    case NEGIO_ERR_NOMEM:
    case NEGIO_ERR_PROTOCOL:
    case NEGIO_ERR_TOO_LARGE:
    case NEGIO_ERR_TRUNCATED:
    case NEGIO_ERR_HANDSHAKE:
    case NEGIO_ERR_PEER:
    case NEGIO_ERR_POLICY:
    case NEGIO_ERR_DOWNGRADE:
    case NEGIO_ERR_INTEGRITY:
    case NEGIO_ERR_CREDENTIALS:
    case NEGIO_ERR_CLOSED:
    case NEGIO_ERR_REJECTED:
    case NEGIO_ERR_BINDING: /* also from a peer: an [MS-NNS] HandshakeError of SEC_E_BAD_BINDINGS */
        return 1;
    default:
        return 0;
    }
}

int fuzz_drain(negio_conn *c)
{
    unsigned seen = 0;
    return fuzz_drain_events(c, &seen);
}

int fuzz_drain_events(negio_conn *c, unsigned *seen)
{
    for (int guard = 0; guard < 100000; guard++) {
        size_t n;
        (void)negio_conn_send_buf(c, &n);
        negio_conn_send_done(c, n);
        negio_event ev;
        int rc = negio_conn_next_event(c, &ev);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            if (!documented_fatal(rc) || rc != negio_conn_error(c)) {
                fprintf(stderr, "next_event returned %d (%s), sticky error %d\n", rc,
                        negio_err_name(rc), negio_conn_error(c));
                abort();
            }
            /* sticky: the same error again, and no more events */
            if (negio_conn_next_event(c, &ev) != rc)
                abort();
            (void)negio_conn_send_buf(c, &n);
            negio_conn_send_done(c, n);
            return rc;
        }
        if (ev.type == NEGIO_EV_MESSAGE && ev.len > 0 && ev.data == NULL)
            abort();
        *seen |= 1u << ev.type;
    }
    fprintf(stderr, "next_event never stops returning events\n");
    abort();
}

unsigned fuzz_feed_in_two(negio_conn *c, const uint8_t *data, size_t size, unsigned normal_end)
{
    unsigned seen = 0;
    size_t split = size / 2;
    if (negio_conn_feed(c, data, split) == NEGIO_OK && fuzz_drain_events(c, &seen) == 0 &&
        negio_conn_feed(c, data + split, size - split) == NEGIO_OK &&
        fuzz_drain_events(c, &seen) == 0) {
        negio_conn_feed_eof(c);
        if (fuzz_drain_events(c, &seen) == 0 && !(seen & normal_end))
            abort();
    }
    return seen;
}

negio_config *fuzz_must(negio_config *cfg)
{
    if (cfg == NULL)
        abort();
    return cfg;
}
