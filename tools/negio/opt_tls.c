/*
 * The TLS group of options (--tls, --tls-negotiate, --cert, --key, --ca, --require-client-cert,
 * --tls-allow-ntlm, --tls-host) and how the TLS facts of a connection are printed. The library
 * does the work (negio_config_set_transport and friends); this file only checks that the options
 * make sense together, applies them in the right order and reports a bad file before the command
 * starts serving or connecting.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "opt.h"

enum {
    OPT_TLS = CLI_GROUP_BASE(CLI_G_TLS),
    OPT_TLS_NEGOTIATE,
    OPT_CERT,
    OPT_KEY,
    OPT_CA,
    OPT_REQUIRE_CLIENT_CERT,
    OPT_TLS_HOST,
    OPT_TLS_ALLOW_NTLM,
};

#define KEY_HELP "its private key (PEM; default: in the --cert file)"

static const struct cli_option options[] = {
    {"tls", no_argument, OPT_TLS, CLI_ACCEPTOR, NULL,
     "TLS only: clients are authenticated by their certificate, if --ca asks for one, and by "
     "nothing else (no Kerberos or NTLM; messages at level none); needs --cert"},
    {"tls", no_argument, OPT_TLS, CLI_INITIATOR, NULL,
     "TLS only: the server is authenticated by its certificate (--ca, else the system's trusted "
     "CAs), no Kerberos or NTLM; messages at level none"},
    {"tls-negotiate", no_argument, OPT_TLS_NEGOTIATE, CLI_ACCEPTOR, NULL,
     "TLS, then Kerberos or NTLM inside it, bound to that TLS channel (a man in the middle "
     "terminating TLS fails). Without --cert: certificate-free, an ephemeral self-signed "
     "certificate; clients must then prove the server with Kerberos, so NTLM is refused"},
    {"tls-negotiate", no_argument, OPT_TLS_NEGOTIATE, CLI_INITIATOR, NULL,
     "TLS, then Kerberos or NTLM inside it, bound to that TLS channel (a man in the middle "
     "terminating TLS fails). Without --ca: certificate-free, the server's certificate is not "
     "checked and Kerberos mutual authentication must prove the server (no NTLM)"},
    /* the server's order: its certificate first */
    {"cert", required_argument, OPT_CERT, CLI_ACCEPTOR, "FILE",
     "the server's certificate chain (PEM)"},
    {"key", required_argument, OPT_KEY, CLI_ACCEPTOR, "FILE", KEY_HELP},
    {"ca", required_argument, OPT_CA, CLI_ACCEPTOR, "FILE",
     "ask clients for a certificate and verify it against these CAs"},
    {"require-client-cert", no_argument, OPT_REQUIRE_CLIENT_CERT, CLI_ACCEPTOR, NULL,
     "refuse clients without a certificate that verifies (with --ca)"},
    /* the client's order: how it checks the server first */
    {"ca", required_argument, OPT_CA, CLI_INITIATOR, "FILE",
     "verify the server's certificate against these CAs (PEM)"},
    {"tls-host", required_argument, OPT_TLS_HOST, CLI_INITIATOR, "NAME",
     "the name the server's certificate must hold (default: the HOST of --spn)"},
    {"cert", required_argument, OPT_CERT, CLI_INITIATOR, "FILE",
     "a client certificate chain (PEM), sent if the server asks"},
    {"key", required_argument, OPT_KEY, CLI_INITIATOR, "FILE", KEY_HELP},
    {"tls-allow-ntlm", no_argument, OPT_TLS_ALLOW_NTLM, CLI_CONNECTING, NULL,
     "certificate-free --tls-negotiate: allow NTLM anyway (the server is then authenticated by "
     "nothing)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_CONNECTING, "[--tls | --tls-negotiate]"},
    {CLI_ACCEPTOR, "[--cert FILE [--key FILE]]"},
    {CLI_CONNECTING, "[--ca FILE]"},
    {CLI_ACCEPTOR, "[--require-client-cert]"},
    {CLI_INITIATOR, "[--tls-host NAME]"},
    {CLI_INITIATOR, "[--cert FILE [--key FILE]]"},
    {CLI_CONNECTING, "[--tls-allow-ntlm]"},
    {0, NULL},
};

static void init(void *state)
{
    struct cli_tls *t = state;
    memset(t, 0, sizeof(*t));
    t->transport = NEGIO_TRANSPORT_PLAIN;
}

static int set_value(const struct cli *c, const char *opt, const char *what, const char *arg,
                     const char **field)
{
    if (arg[0] == '\0')
        return cli_error(c, "%s: expected %s, got ''", opt, what);
    *field = arg;
    return 0;
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    struct cli_tls *t = state;
    switch (id) {
    case OPT_TLS:
    case OPT_TLS_NEGOTIATE: {
        negio_transport want = id == OPT_TLS ? NEGIO_TRANSPORT_TLS : NEGIO_TRANSPORT_TLS_NEGOTIATE;
        if (t->transport != NEGIO_TRANSPORT_PLAIN && t->transport != want)
            return cli_error(c, "--tls and --tls-negotiate exclude each other");
        t->transport = want;
        return 0;
    }
    case OPT_CERT:
        return set_value(c, "--cert", "a file name", arg, &t->cert);
    case OPT_KEY:
        return set_value(c, "--key", "a file name", arg, &t->key);
    case OPT_CA:
        return set_value(c, "--ca", "a file name", arg, &t->ca);
    case OPT_TLS_HOST:
        return set_value(c, "--tls-host", "a host name", arg, &t->host);
    case OPT_REQUIRE_CLIENT_CERT:
        t->require_client_cert = 1;
        return 0;
    default: /* OPT_TLS_ALLOW_NTLM */
        t->allow_ntlm = 1;
        return 0;
    }
}

const struct cli_group cli_tls_group = {
    .no = CLI_G_TLS,
    .title = "TLS (a TLS transport makes none the default of --protect and --min-protect):",
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};

const char *cli_transport_name(negio_transport transport)
{
    switch (transport) {
    case NEGIO_TRANSPORT_TLS:
        return "tls";
    case NEGIO_TRANSPORT_TLS_NEGOTIATE:
        return "tls-negotiate";
    default:
        return "plain";
    }
}

int cli_tls_cert_free(negio_role role, const struct cli_tls *t)
{
    return t->transport == NEGIO_TRANSPORT_TLS_NEGOTIATE &&
           (role == NEGIO_ROLE_SERVER ? t->cert == NULL : t->ca == NULL);
}

int cli_tls_validate(const struct cli *c, const struct cli_tls *t)
{
    negio_role role = cli_role(c);
    if (t->transport == NEGIO_TRANSPORT_PLAIN) {
        const char *stray = t->cert != NULL          ? "--cert"
                            : t->key != NULL         ? "--key"
                            : t->ca != NULL          ? "--ca"
                            : t->host != NULL        ? "--tls-host"
                            : t->require_client_cert ? "--require-client-cert"
                            : t->allow_ntlm          ? "--tls-allow-ntlm"
                                                     : NULL;
        if (stray != NULL)
            return cli_error(c, "%s goes with --tls or --tls-negotiate", stray);
        return 0;
    }
    if (t->key != NULL && t->cert == NULL)
        return cli_error(c, "--key goes with --cert");
    if (role == NEGIO_ROLE_SERVER && t->transport == NEGIO_TRANSPORT_TLS && t->cert == NULL)
        return cli_error(c, "--tls needs --cert FILE (and --key FILE unless the key is in it); "
                            "only --tls-negotiate has a certificate-free mode");
    if (t->require_client_cert && t->ca == NULL)
        return cli_error(c, "--require-client-cert needs --ca FILE to verify clients with");
    if (t->allow_ntlm && t->transport != NEGIO_TRANSPORT_TLS_NEGOTIATE)
        return cli_error(c, "--tls-allow-ntlm goes with --tls-negotiate");
    return 0;
}

int cli_tls_apply(negio_config *cfg, const struct cli_tls *t)
{
    int rc;
    if (t->transport == NEGIO_TRANSPORT_PLAIN)
        return 0;
    /* the transport first: choosing it resets both levels to none, and the caller sets the
     * levels the user asked for afterwards */
    if ((rc = negio_config_set_transport(cfg, t->transport)) < 0 ||
        (t->cert != NULL && (rc = negio_config_set_tls_cert(cfg, t->cert, t->key)) < 0) ||
        (t->ca != NULL && (rc = negio_config_set_tls_ca(cfg, t->ca)) < 0) ||
        (t->host != NULL && (rc = negio_config_set_tls_host(cfg, t->host)) < 0) ||
        (t->require_client_cert && (rc = negio_config_set_tls_require_client_cert(cfg, 1)) < 0) ||
        (t->allow_ntlm && (rc = negio_config_set_tls_allow_ntlm(cfg, 1)) < 0))
        return rc;
    return 0;
}

/* A file option's file must be readable; the library's own message for a missing file is
 * OpenSSL's ("No such file or directory" deep in its error queue), this one names the option. */
static int readable(const char *cmd, const char *opt, const char *path)
{
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "negio %s: %s %s: %s\n", cmd, opt, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

int cli_tls_load(const struct cli *c, negio_config *cfg, const struct cli_tls *t)
{
    const char *cmd = c->cmd->name;
    if (t->transport == NEGIO_TRANSPORT_PLAIN)
        return 0;
    if (readable(cmd, "--cert", t->cert) < 0 || readable(cmd, "--key", t->key) < 0 ||
        readable(cmd, "--ca", t->ca) < 0)
        return -1;
    char detail[1024] = "";
    int rc = negio_config_tls_check(cfg, detail, sizeof(detail));
    if (rc < 0) {
        fprintf(stderr, "negio %s: --%s: cannot set up TLS (%s): %s\n", cmd,
                cli_transport_name(t->transport), negio_err_name(rc),
                detail[0] != '\0' ? detail : negio_strerror(rc));
        return -1;
    }
    return 0;
}

void cli_tls_json(json_writer *w, negio_transport transport, const negio_auth_info *info)
{
    json_kv_string(w, "transport", cli_transport_name(transport));
    json_kv_string(w, "tls_version", info->tls_version);
    json_kv_string(w, "tls_cipher", info->tls_cipher);
    json_kv_string(w, "tls_peer", info->tls_peer);
    json_kv_bool(w, "tls_peer_verified", info->tls_peer_verified);
    json_kv_bool(w, "channel_bound", info->channel_bound);
    json_kv_bool(w, "client_authenticated", info->client_authenticated);
}

void cli_tls_print(FILE *out, negio_role role, const negio_auth_info *info)
{
    fprintf(out, "over %s (%s), ", info->tls_version != NULL ? info->tls_version : "TLS",
            info->tls_cipher != NULL ? info->tls_cipher : "?");
    const char *whose = role == NEGIO_ROLE_CLIENT ? "server" : "client";
    if (info->tls_peer_verified) {
        fprintf(out, "%s certificate ", whose);
        json_quote(out, info->tls_peer != NULL ? info->tls_peer : "",
                   info->tls_peer != NULL ? strlen(info->tls_peer) : 0);
        fputs(" verified", out);
    } else if (role == NEGIO_ROLE_CLIENT) {
        fputs("server certificate not verified", out);
    } else {
        fputs("no client certificate", out); /* one that fails verification fails TLS */
    }
    fputs(info->channel_bound ? ", channel bound" : "", out);
}

int cli_tls_levels(const struct cli *c, const struct cli_tls *t, negio_profile profile,
                   struct cli_protect *p)
{
    if (t->transport == NEGIO_TRANSPORT_PLAIN)
        return 0;
    if (profile == NEGIO_PROFILE_GSS_SAMPLE)
        return cli_error(c, "--profile gss-sample has no TLS form: no --tls or --tls-negotiate");
    if (profile == NEGIO_PROFILE_NNS)
        return cli_error(c, "--profile nns has no TLS form: no --tls or --tls-negotiate");
    /* TLS protects every byte: none unless asked for (the library's default too) */
    if (!p->have_protect)
        p->protect = NEGIO_LEVEL_NONE;
    if (!p->have_min)
        p->min = NEGIO_LEVEL_NONE;
    p->have_protect = p->have_min = 1;
    if (t->transport == NEGIO_TRANSPORT_TLS &&
        (p->protect != NEGIO_LEVEL_NONE || p->min != NEGIO_LEVEL_NONE))
        return cli_error(c, "--tls carries messages at level none only (no GSS-API to sign or "
                            "seal with); --tls-negotiate has sign and seal");
    return 0;
}
