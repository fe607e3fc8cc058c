/* Fuzz target: the decoder of the gss-sample profile (NEGIO_PROFILE_GSS_SAMPLE, docs/PROTOCOL.md
 * appendix A: [flags u8][length u32 BE][token]). The first input byte chooses the mechanism path
 * (bits 0-1: kerberos, negotiate->kerberos, negotiate->ntlm, ntlm) and the role (bit 2).
 *   - Bit 2 set, server: the rest is everything a gss-sample client sends to a fresh server
 *     connector (test_server_config).
 *   - Bit 2 clear, client: a client connector (test_client_config) that has taken its first step
 *     (the opening NOOP|CONTEXT_NEXT and its first token are out) and queued one message receives
 *     the rest as the server's reply stream.
 * The rest arrives in two pieces (split in the middle), then the stream ends. Nothing may crash or
 * leak, and every failure must be a documented fatal error (fuzz_drain).
 *
 * What must hold: a fuzzed client never gets a server established, and no connector ever reports
 * a message or an acknowledgement it cannot have verified. A client may be established by a
 * fuzzed server on one path only: plain NTLM authenticates no server, and gss-sample has no
 * protected policy exchange that would prove the peer holds the session keys; the client must
 * then say so (server_authenticated 0). Even there, a MIC over the queued message cannot be
 * forged, so the client never reports it acknowledged. */
#include <stdlib.h>

#include "fuzz/fuzz_support.h"

static negio_config *client[PATH_COUNT], *server[PATH_COUNT];

static negio_config *sample(negio_config *cfg)
{
    if (negio_config_set_profile(fuzz_must(cfg), NEGIO_PROFILE_GSS_SAMPLE) != NEGIO_OK)
        abort();
    return cfg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    fuzz_realm();
    for (int p = 0; p < PATH_COUNT; p++) {
        client[p] = sample(test_client_config((test_path)p));
        server[p] = sample(test_server_config((test_path)p));
    }
    return 0;
}

/* The end of the stream always gives an error: nobody here ends the conversation. */
static unsigned feed(negio_conn *c, const uint8_t *data, size_t size)
{
    unsigned seen = fuzz_feed_in_two(c, data, size, 0);
    if (negio_conn_is_established(c)) /* every run ends in an error */
        abort();
    return seen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    if (size < 1)
        return 0;
    test_path path = (test_path)(data[0] & 3);
    int as_server = (data[0] & 4) != 0;
    negio_conn *c;
    if (negio_conn_new(&c, as_server ? server[path] : client[path]) != NEGIO_OK)
        abort();
    if (as_server) {
        unsigned seen = feed(c, data + 1, size - 1);
        /* a fuzzed client never authenticates, so never gets a message through or ends the
         * conversation (its closing NOOP counts only once the context is complete) */
        if (seen & (1u << NEGIO_EV_ESTABLISHED | 1u << NEGIO_EV_MESSAGE | 1u << NEGIO_EV_CLOSED))
            abort();
    } else {
        /* the first step: credentials and the first token, which go nowhere; a message waits
         * for establishment, then asks the server for its MIC */
        if (fuzz_drain(c) != 0 || !(negio_conn_want(c) & NEGIO_WANT_READ) ||
            negio_conn_write(c, "fuzz", 4, NEGIO_LEVEL_DEFAULT) != NEGIO_OK)
            abort();
        unsigned seen = feed(c, data + 1, size - 1);
        if (seen & (1u << NEGIO_EV_MESSAGE | 1u << NEGIO_EV_ACKNOWLEDGED | 1u << NEGIO_EV_CLOSED))
            abort();
        if (seen & 1u << NEGIO_EV_ESTABLISHED) { /* the facts outlive the error */
            negio_auth_info info = {.size = sizeof(info)};
            if (path != PATH_NTLM || negio_conn_auth_info(c, &info) != NEGIO_OK ||
                info.mech != NEGIO_MECH_NTLM || info.server_authenticated)
                abort();
        }
    }
    negio_conn_del(c);
    return 0;
}
