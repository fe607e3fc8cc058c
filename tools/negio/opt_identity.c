/*
 * The identity group, accepting side: who an authenticated peer is on this machine (--map,
 * --ntlm-domain). Applied with the rest of a connection's options in opt_connection.c.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

enum {
    OPT_MAP = CLI_GROUP_BASE(CLI_G_IDENTITY),
    OPT_NTLM_DOMAIN,
};

static const struct cli_option options[] = {
    {"map", required_argument, OPT_MAP, CLI_ACCEPTOR, "PRINCIPAL=LOCALUSER",
     "map a client (alice@REALM, or DOMAIN\\user for NTLM) to a local account, before the "
     "realm's auth_to_local rules (repeatable)"},
    {"ntlm-domain", required_argument, OPT_NTLM_DOMAIN, CLI_ACCEPTOR, "DOMAIN",
     "NTLM clients DOMAIN\\user map to the local account user (default: $NETBIOS_DOMAIN_NAME; "
     "other NTLM names map to nothing)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_ACCEPTOR, "[--map PRINCIPAL=LOCALUSER ...]"},
    {CLI_ACCEPTOR, "[--ntlm-domain DOMAIN]"},
    {0, NULL},
};

static void init(void *state)
{
    struct cli_identity *id = state;
    memset(id, 0, sizeof(*id));
    id->ntlm_domain = getenv("NETBIOS_DOMAIN_NAME");
    if (id->ntlm_domain != NULL && id->ntlm_domain[0] == '\0')
        id->ntlm_domain = NULL; /* an empty NETBIOS_DOMAIN_NAME */
}

int cli_add_map(const struct cli *c, const char *arg, struct cli_map *maps, size_t *n)
{
    if (*n == CLI_MAX_MAPS)
        return cli_error(c, "--map: at most %d mappings", CLI_MAX_MAPS);
    if (cli_parse_map(c->cmd->name, c->usage, "--map", arg, &maps[*n]) < 0)
        return -1;
    (*n)++;
    return 0;
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    struct cli_identity *ident = state;
    if (id == OPT_MAP)
        return cli_add_map(c, arg, ident->maps, &ident->nmaps);
    /* OPT_NTLM_DOMAIN */
    if (arg[0] == '\0' || strlen(arg) > CLI_MAX_NAME)
        return cli_error(c, "--ntlm-domain: expected a domain name, got '%s'", arg);
    ident->ntlm_domain = arg;
    return 0;
}

const struct cli_group cli_identity_group = {
    .no = CLI_G_IDENTITY,
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};
