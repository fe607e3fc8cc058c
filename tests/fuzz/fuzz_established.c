/* Fuzz target: frames after establishment. For each input a genuine client and server
 * authenticate through the in-memory pair driver (a fresh pair per input: slow but honest, the
 * contexts are real), then the rest of the input goes to the established server as if the client
 * had sent it, and the stream ends. The first byte chooses the mechanism path (bits 0-1:
 * kerberos, negotiate->kerberos, negotiate->ntlm, ntlm) and whether the server accepts level
 * none (bit 2), so that unprotected DATA frames reach reassembly and delivery. Nothing may crash
 * or leak; every failure is a documented fatal error; a message is delivered only whole, at a
 * level the server accepts. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_support.h"

static negio_config *client[PATH_COUNT], *server[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    fuzz_realm();
    for (int p = 0; p < PATH_COUNT; p++)
        client[p] = fuzz_must(test_client_config((test_path)p));
    server[0] = fuzz_must(test_server_config(PATH_KERBEROS));
    server[1] = fuzz_must(test_server_config(PATH_KERBEROS));
    if (negio_config_set_min_level(server[1], NEGIO_LEVEL_NONE) != NEGIO_OK)
        abort();
    return 0;
}

/* Like fuzz_drain, and every message must respect the server's minimum level. */
static int drain_checked(negio_conn *s, negio_level min)
{
    for (int guard = 0; guard < 100000; guard++) {
        negio_event ev;
        int rc = negio_conn_next_event(s, &ev);
        if (rc <= 0)
            return rc == 0 ? 0 : fuzz_drain(s);
        if (ev.type == NEGIO_EV_MESSAGE && (ev.level < min || ev.level > NEGIO_LEVEL_SEAL))
            abort();
        if (ev.type == NEGIO_EV_ESTABLISHED) /* once only, and it was reported already */
            abort();
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    if (size < 1)
        return 0;
    test_path path = (test_path)(data[0] & 3);
    int none_ok = (data[0] >> 2) & 1;
    test_pair p;
    test_pair_init(&p, client[path], server[none_ok], SPLIT_WHOLE, 1);
    if (!test_pair_establish(&p)) {
        fprintf(stderr, "fixture: %s did not establish: client %s (%s), server %s (%s)\n",
                test_path_name(path), negio_err_name(p.client.err),
                negio_conn_error_detail(p.client.conn), negio_err_name(p.server.err),
                negio_conn_error_detail(p.server.conn));
        abort();
    }
    negio_conn *s = p.server.conn;
    negio_level min = none_ok ? NEGIO_LEVEL_NONE : NEGIO_LEVEL_SIGN;
    if (negio_conn_feed(s, data + 1, size - 1) == NEGIO_OK && drain_checked(s, min) == 0) {
        negio_conn_feed_eof(s);
        drain_checked(s, min);
    }
    test_pair_free(&p);
    return 0;
}
