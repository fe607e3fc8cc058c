/* Fuzz target: the decoder of the [MS-NNS] profile (NEGIO_PROFILE_NNS, docs/PROTOCOL.md appendix
 * C: handshake messages [id u8][1][0][length u16 BE][payload], then data messages [length u32
 * LE][payload], or unframed bytes at level none). The first input byte chooses the mechanism path
 * (bits 0-1: kerberos, negotiate->kerberos, negotiate->ntlm, ntlm), the role (bit 2) and the
 * stream level the client asks for and both sides require (bits 3-4: seal, sign, none; 3 is seal).
 *   - Bit 2 set, server: the rest is everything a client sends to a fresh server connector
 *     (test_server_config).
 *   - Bit 2 clear, client: a client connector (test_client_config) that has taken its first step
 *     and queued one message receives the rest as the server's stream.
 * The rest arrives in two pieces (split in the middle), then the stream ends. Nothing may crash or
 * leak, and every failure must be a documented fatal error (fuzz_drain).
 *
 * What must hold: a fuzzed client never gets a server established, so the server never delivers a
 * message or reaches an end. A client may be established by a fuzzed server on one path only:
 * raw NTLM authenticates no server and the profile has no protected exchange that would prove the
 * peer holds the session keys (the CHALLENGE and a HandshakeDone are enough, and the genuine seeds
 * do it); the client must then say so (server_authenticated 0), and can deliver a message only at
 * level none, where nothing is protected. Its stream then ends normally (NEGIO_EV_CLOSED): there
 * is no close message in this profile. */
#include <stdlib.h>

#include "fuzz/fuzz_support.h"

static const negio_level levels[4] = {NEGIO_LEVEL_SEAL, NEGIO_LEVEL_SIGN, NEGIO_LEVEL_NONE,
                                      NEGIO_LEVEL_SEAL};
static negio_config *client[PATH_COUNT][3], *server[PATH_COUNT][3];

static negio_config *nns(negio_config *cfg, negio_level level)
{
    if (negio_config_set_profile(fuzz_must(cfg), NEGIO_PROFILE_NNS) != NEGIO_OK ||
        negio_config_set_default_level(cfg, level) != NEGIO_OK ||
        negio_config_set_min_level(cfg, level) != NEGIO_OK)
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
        for (int l = 0; l < 3; l++) {
            client[p][l] = nns(test_client_config((test_path)p), levels[l]);
            server[p][l] = nns(test_server_config((test_path)p), levels[l]);
        }
    }
    return 0;
}

/* The end of the stream gives an error, or the normal end of an established stream. */
static unsigned feed(negio_conn *c, const uint8_t *data, size_t size)
{
    return fuzz_feed_in_two(c, data, size, 1u << NEGIO_EV_CLOSED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_maybe_leak();
    if (size < 1)
        return 0;
    test_path path = (test_path)(data[0] & 3);
    int as_server = (data[0] & 4) != 0;
    int level = (data[0] >> 3) & 3;
    if (level == 3)
        level = 0;
    negio_conn *c;
    if (negio_conn_new(&c, as_server ? server[path][level] : client[path][level]) != NEGIO_OK)
        abort();
    if (as_server) {
        unsigned seen = feed(c, data + 1, size - 1);
        if (seen & (1u << NEGIO_EV_ESTABLISHED | 1u << NEGIO_EV_MESSAGE | 1u << NEGIO_EV_CLOSED))
            abort();
    } else {
        /* the first step: credentials and the first token, which go nowhere; a message waits
         * for establishment */
        if (fuzz_drain(c) != 0 || !(negio_conn_want(c) & NEGIO_WANT_READ) ||
            negio_conn_write(c, "fuzz", 4, NEGIO_LEVEL_DEFAULT) != NEGIO_OK)
            abort();
        unsigned seen = feed(c, data + 1, size - 1);
        if (seen & (1u << NEGIO_EV_ESTABLISHED)) {
            negio_auth_info info = {.size = sizeof(info)};
            if (path != PATH_NTLM || negio_conn_auth_info(c, &info) != NEGIO_OK ||
                info.mech != NEGIO_MECH_NTLM || info.server_authenticated)
                abort();
            if ((seen & 1u << NEGIO_EV_MESSAGE) && info.peer_default_level != NEGIO_LEVEL_NONE)
                abort();
        } else if (seen & (1u << NEGIO_EV_MESSAGE | 1u << NEGIO_EV_CLOSED)) {
            abort();
        }
    }
    negio_conn_del(c);
    return 0;
}
