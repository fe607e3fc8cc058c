/* Fuzz target: frames after establishment. At start-up a genuine client and server authenticate
 * through the in-memory pair driver on every mechanism path, and each established server is kept
 * as a template. For each input a fresh copy of the template (negio__conn_clone: the same
 * connector state and a copy of the same GSS context, exported once and imported per input, so
 * every input starts from identical state) receives the rest of the input as if the client had
 * sent it, then the end of the stream. Copying the context instead of authenticating per input
 * makes the target about ten times faster (a handshake costs a millisecond or two under the
 * sanitizers); tests/conformance/test_clone.c shows that a copy behaves as the original. The first
 * byte chooses the mechanism path (bits 0-1:
 * kerberos, negotiate->kerberos, negotiate->ntlm, ntlm) and whether the server accepts level
 * none (bit 2), so that unprotected DATA frames reach reassembly and delivery. Nothing may crash
 * or leak; every failure is a documented fatal error; a message is delivered only whole, at a
 * level the server accepts. */
#include <stdio.h>
#include <stdlib.h>

#include "conn/conn.h"
#include "fuzz/fuzz_support.h"

/* the established servers, by path and by whether level none is accepted */
static negio_conn *template[PATH_COUNT][2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    fuzz_realm();
    negio_config *server[2];
    server[0] = fuzz_must(test_server_config(PATH_KERBEROS));
    server[1] = fuzz_must(test_server_config(PATH_KERBEROS));
    if (negio_config_set_min_level(server[1], NEGIO_LEVEL_NONE) != NEGIO_OK)
        abort();
    for (int path = 0; path < PATH_COUNT; path++) {
        negio_config *client = fuzz_must(test_client_config((test_path)path));
        for (int none_ok = 0; none_ok < 2; none_ok++) {
            test_pair p;
            test_pair_init(&p, client, server[none_ok], SPLIT_WHOLE, 1);
            if (!test_pair_establish(&p)) {
                fprintf(stderr, "fixture: %s did not establish: client %s (%s), server %s (%s)\n",
                        test_path_name((test_path)path), negio_err_name(p.client.err),
                        negio_conn_error_detail(p.client.conn), negio_err_name(p.server.err),
                        negio_conn_error_detail(p.server.conn));
                abort();
            }
            template[path][none_ok] = p.server.conn;
            p.server.conn = NULL; /* kept; the rest of the pair goes */
            test_pair_free(&p);
        }
        negio_config_del(client);
    }
    negio_config_del(server[0]);
    negio_config_del(server[1]);
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
    negio_conn *s = NULL;
    char detail[NEGIO__DETAIL_MAX] = "";
    if (negio__conn_clone(&s, template[path][none_ok], detail) != NEGIO_OK) {
        fprintf(stderr, "fixture: %s could not be cloned: %s\n", test_path_name(path), detail);
        abort();
    }
    negio_level min = none_ok ? NEGIO_LEVEL_NONE : NEGIO_LEVEL_SIGN;
    if (negio_conn_feed(s, data + 1, size - 1) == NEGIO_OK && drain_checked(s, min) == 0) {
        negio_conn_feed_eof(s);
        drain_checked(s, min);
    }
    negio_conn_del(s);
    return 0;
}
