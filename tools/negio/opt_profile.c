/*
 * The profile group: the conversation on the wire, negio's own, that of MIT's gss-sample
 * programs or that of .NET's NegotiateStream (--profile; docs/PROTOCOL.md, appendices A and C).
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
