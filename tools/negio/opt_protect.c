/*
 * The protection group: the level of this side's messages and the lowest level it accepts
 * (--protect, --min-protect), and whose code protects them once Kerberos is established
 * (--no-kerberos-fast-path). A TLS transport changes the levels' defaults (cli_tls_levels).
 */
#include <getopt.h>

#include "opt.h"

enum {
    OPT_PROTECT = CLI_GROUP_BASE(CLI_G_PROTECT),
    OPT_MIN_PROTECT,
    OPT_NO_FAST_PATH,
};

static const struct cli_option options[] = {
    {"protect", required_argument, OPT_PROTECT, CLI_ACCEPTOR, "LEVEL",
     "the level of the server's own messages: none, sign or seal (default seal)"},
    {"min-protect", required_argument, OPT_MIN_PROTECT, CLI_ACCEPTOR, "LEVEL",
     "the lowest level accepted from clients (default sign)"},
    {"protect", required_argument, OPT_PROTECT, CLI_INITIATOR, "LEVEL",
     "the default level of messages: none, sign or seal (default seal)"},
    {"min-protect", required_argument, OPT_MIN_PROTECT, CLI_INITIATOR, "LEVEL",
     "the lowest level accepted in replies (default: sign, or the lowest level among --protect "
     "and the MESSAGE prefixes if lower)"},
    {"no-kerberos-fast-path", no_argument, OPT_NO_FAST_PATH, CLI_CONNECTING, NULL,
     "sign and seal with MIT's gss_get_mic and gss_wrap once Kerberos is established, instead of "
     "negio's own RFC 4121 code on OpenSSL (the same tokens, several times faster); "
     "NEGIO_KRB5_FAST_PATH=0 does the same for any program"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_CONNECTING, "[--protect LEVEL]"},
    {CLI_CONNECTING, "[--min-protect LEVEL]"},
    {CLI_CONNECTING, "[--no-kerberos-fast-path]"},
    {0, NULL},
};

static void init(void *state)
{
    struct cli_protect *p = state;
    *p = (struct cli_protect){.protect = NEGIO_LEVEL_SEAL, .min = NEGIO_LEVEL_SIGN};
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    struct cli_protect *p = state;
    if (id == OPT_NO_FAST_PATH) {
        p->no_fast_path = 1;
        return 0;
    }
    if (id == OPT_PROTECT) {
        p->have_protect = 1;
        return cli_parse_level(c->cmd->name, c->usage, "--protect", arg, &p->protect);
    }
    p->have_min = 1;
    return cli_parse_level(c->cmd->name, c->usage, "--min-protect", arg, &p->min);
}

const struct cli_group cli_protect_group = {
    .no = CLI_G_PROTECT,
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};
