/*
 * The profile group: the conversation on the wire, negio's own, that of MIT's gss-sample
 * programs or that of .NET's NegotiateStream (--profile; docs/PROTOCOL.md, appendices A and C).
 * A tunnel's ends have a group of their own: the same option, what it means for a tunnel.
 */
#include <getopt.h>
#include <string.h>

#include "opt.h"

enum {
    OPT_PROFILE = CLI_GROUP_BASE(CLI_G_PROFILE),
};

static const struct cli_option options[] = {
    {"profile", required_argument, OPT_PROFILE, CLI_ACCEPTOR, "PROFILE",
     "native (default), gss-sample: serve MIT's gss-client, which gets a MIC of each message "
     "as its answer (no --echo, --files or --forward then), or nns: serve .NET NegotiateStream "
     "clients ([MS-NNS]; one protection level per stream)"},
    {"profile", required_argument, OPT_PROFILE, CLI_INITIATOR, "PROFILE",
     "native (default), gss-sample: talk to MIT's gss-server; each message's reply is the "
     "server's verified MIC of it (level sign), or nns: talk to a .NET NegotiateStream server "
     "([MS-NNS]; one protection level per stream, no level prefixes)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_CONNECTING, "[--profile native|gss-sample|nns]"},
    {0, NULL},
};

static void init(void *state)
{
    *(negio_profile *)state = NEGIO_PROFILE_NATIVE;
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    (void)id;
    negio_profile *profile = state;
    if (strcmp(arg, "native") == 0)
        *profile = NEGIO_PROFILE_NATIVE;
    else if (strcmp(arg, "gss-sample") == 0)
        *profile = NEGIO_PROFILE_GSS_SAMPLE;
    else if (strcmp(arg, "nns") == 0)
        *profile = NEGIO_PROFILE_NNS;
    else
        return cli_error(c, "--profile must be native, gss-sample or nns");
    return 0;
}

const struct cli_group cli_profile_group = {
    .no = CLI_G_PROFILE,
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};

static const struct cli_option tunnel_options[] = {
    {"profile", required_argument, OPT_PROFILE, CLI_CONNECTING, "PROFILE",
     "native (default): negio's protocol, whose protected close ends each direction; or nns: "
     ".NET NegotiateStream ([MS-NNS]; one protection level per stream, no TLS form), whose "
     "ends are the TCP stream's own FINs, which anyone on the path can forge or cut undetected "
     "(docs/TUNNEL.md). A .NET NegotiateStream program can be a tunnel server's client"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis tunnel_synopsis[] = {
    {CLI_CONNECTING, "[--profile native|nns]"},
    {0, NULL},
};

const struct cli_group cli_tunnel_profile_group = {
    .no = CLI_G_PROFILE,
    .options = tunnel_options,
    .synopsis = tunnel_synopsis,
    .init = init,
    .take = take,
};
