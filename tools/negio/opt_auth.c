/*
 * The mechanism and credentials group: which mechanism, which service, whose credentials
 * (--mech, --spn, --keytab on the accepting side; --user, --password-file, --require-mutual,
 * --allow-ntlm-fallback and --delegate on the initiating side). Checked and applied with the
 * rest of a connection's options in opt_connection.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "opt.h"

enum {
    OPT_MECH = CLI_GROUP_BASE(CLI_G_AUTH),
    OPT_KEYTAB,
    OPT_SPN,
    OPT_USER,
    OPT_PASSWORD_FILE,
    OPT_REQUIRE_MUTUAL,
    OPT_ALLOW_NTLM_FALLBACK,
    OPT_DELEGATE,
};

static const struct cli_option options[] = {
    {"mech", required_argument, OPT_MECH, CLI_ACCEPTOR, "MECH",
     "what clients may authenticate with: negotiate (Kerberos or NTLM, the default), kerberos "
     "(Kerberos only) or ntlm (NTLM only)"},
    {"keytab", required_argument, OPT_KEYTAB, CLI_ACCEPTOR, "FILE",
     "the service's keytab (default: KRB5_KTNAME)"},
    {"spn", required_argument, OPT_SPN, CLI_ACCEPTOR, "SERVICE@HOST",
     "the service name to accept for (default negio@localhost)"},
    {"spn", required_argument, OPT_SPN, CLI_INITIATOR, "SERVICE@HOST",
     "the server's service name (default negio@localhost)"},
    {"mech", required_argument, OPT_MECH, CLI_INITIATOR, "MECH",
     "negotiate (SPNEGO: Kerberos, else NTLM; the default), kerberos or ntlm"},
    {"user", required_argument, OPT_USER, CLI_INITIATOR, "NAME",
     "authenticate as NAME (Kerberos: user or user@REALM; NTLM: user or DOMAIN\\user) with the "
     "password in the first line of"},
    {"password-file", required_argument, OPT_PASSWORD_FILE, CLI_INITIATOR, "FILE",
     "FILE; without them: the credential cache (KRB5CCNAME) and the NTLM account file "
     "(NTLM_USER_FILE)"},
    {"require-mutual", no_argument, OPT_REQUIRE_MUTUAL, CLI_INITIATOR, NULL,
     "fail unless the server is authenticated (Kerberos only)"},
    {"allow-ntlm-fallback", no_argument, OPT_ALLOW_NTLM_FALLBACK, CLI_INITIATOR, NULL,
     "let negotiate end on NTLM even after this client offered a Kerberos ticket for the server "
     "(refused by default: it is what a downgrade attack, or a server without the service's "
     "key, does)"},
    {"delegate", no_argument, OPT_DELEGATE, CLI_INITIATOR, NULL,
     "delegate this client's credentials to the server (Kerberos with a forwardable ticket; NTLM "
     "cannot delegate)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_ACCEPTOR, "[--mech negotiate|kerberos|ntlm]"},
    {CLI_ACCEPTOR, "[--keytab FILE]"},
    {CLI_CONNECTING, "[--spn SERVICE@HOST]"},
    {CLI_INITIATOR, "[--mech MECH]"},
    {CLI_INITIATOR, "[--user NAME --password-file FILE]"},
    {CLI_INITIATOR, "[--require-mutual]"},
    {CLI_INITIATOR, "[--allow-ntlm-fallback]"},
    {CLI_INITIATOR, "[--delegate]"},
    {0, NULL},
};

static void init(void *state)
{
    struct cli_auth *a = state;
    memset(a, 0, sizeof(*a));
    a->mech = NEGIO_MECH_NEGOTIATE;
    a->spn = "negio@localhost";
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    struct cli_auth *a = state;
    switch (id) {
    case OPT_MECH:
        if (negio_mech_parse(arg, &a->mech) < 0)
            return cli_error(c, "--mech: expected negotiate, kerberos or ntlm, got '%s'", arg);
        a->have_mech = 1;
        return 0;
    case OPT_KEYTAB:
        a->keytab = arg;
        return 0;
    case OPT_SPN:
        a->spn = arg;
        return 0;
    case OPT_USER:
        a->user = arg;
        return 0;
    case OPT_PASSWORD_FILE:
        a->password_file = arg;
        return 0;
    case OPT_REQUIRE_MUTUAL:
        a->require_mutual = 1;
        return 0;
    case OPT_ALLOW_NTLM_FALLBACK:
        a->ntlm_fallback = 1;
        return 0;
    default: /* OPT_DELEGATE */
        a->delegate = 1;
        return 0;
    }
}

const struct cli_group cli_auth_group = {
    .no = CLI_G_AUTH,
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};

int cli_auth_check(const struct cli *c, negio_config *cfg, const struct cli_auth *a)
{
    char detail[1024] = "";
    int rc = negio_config_check_credentials(cfg, detail, sizeof(detail));
    if (rc < 0) {
        fprintf(stderr, "negio %s: cannot serve %s: %s: %s\n", c->cmd->name, a->spn,
                negio_err_name(rc), detail[0] != '\0' ? detail : negio_strerror(rc));
        return -1;
    }
    return 0;
}
