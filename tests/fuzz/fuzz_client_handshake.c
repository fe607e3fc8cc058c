/* Fuzz target: a client connector that has taken its first step (its first token is ready, with
 * the realm's credentials) receives the input, after its first byte, as the server's reply
 * stream. The first byte chooses the mechanism path: kerberos, negotiate->kerberos,
 * negotiate->ntlm, ntlm. Then the stream ends. Nothing may crash or leak, and every failure must
 * be a documented fatal error (fuzz_drain). */
#include <stdlib.h>

#include "fuzz/fuzz_support.h"

static negio_config *client[PATH_COUNT];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    fuzz_realm();
    for (int p = 0; p < PATH_COUNT; p++)
        client[p] = fuzz_must(test_client_config((test_path)p));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    if (size < 1)
        return 0;
    test_path path = (test_path)(data[0] % PATH_COUNT);
    negio_conn *c;
    if (negio_conn_new(&c, client[path]) != NEGIO_OK)
        abort();
    /* the first step: credentials and the first token, which goes nowhere */
    if (fuzz_drain(c) != 0 || !(negio_conn_want(c) & NEGIO_WANT_READ))
        abort();
    if (negio_conn_feed(c, data + 1, size - 1) == NEGIO_OK && fuzz_drain(c) == 0) {
        negio_conn_feed_eof(c);
        if (fuzz_drain(c) == 0) /* no server completes the client's side */
            abort();
    }
    if (negio_conn_is_established(c))
        abort();
    negio_conn_del(c);
    return 0;
}
