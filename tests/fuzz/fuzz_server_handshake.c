/* Fuzz target: the input is everything a client sends to a fresh server connector, so that
 * GSS_Accept_sec_context sees fuzzed tokens once the framing lets them through. Each input goes
 * to two servers: Kerberos only, and one that also allows NTLM (test_server_config: the realm's
 * keytab and service name). The first gets the input in one piece, the second in two (split in
 * the middle) to exercise partial frames; both then see the end of the stream. Nothing may
 * crash or leak, and every failure must be a documented fatal error (fuzz_drain). */
#include <stdlib.h>

#include "fuzz/fuzz_support.h"

static negio_config *kerberos_only, *with_ntlm;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    fuzz_realm();
    kerberos_only = fuzz_must(test_server_config(PATH_KERBEROS));
    if (negio_config_set_allowed(kerberos_only, NEGIO_ALLOW_KERBEROS) != NEGIO_OK)
        abort();
    with_ntlm = fuzz_must(test_server_config(PATH_NTLM)); /* all mechanisms allowed */
    return 0;
}

static void serve(const negio_config *cfg, const uint8_t *data, size_t size, size_t split)
{
    negio_conn *s;
    if (negio_conn_new(&s, cfg) != NEGIO_OK)
        abort();
    if (negio_conn_feed(s, data, split) == NEGIO_OK && fuzz_drain(s) == 0 &&
        negio_conn_feed(s, data + split, size - split) == NEGIO_OK && fuzz_drain(s) == 0) {
        negio_conn_feed_eof(s);
        /* a fuzzed client never authenticates, so the stream always ends in an error */
        if (fuzz_drain(s) == 0)
            abort();
    }
    if (negio_conn_is_established(s))
        abort();
    negio_conn_del(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    serve(kerberos_only, data, size, size);
    serve(with_ntlm, data, size, size / 2);
    return 0;
}
