/*
 * The TLS options of negio server and negio client (--tls, --tls-negotiate, --cert, --key, --ca,
 * --require-client-cert, --tls-allow-ntlm, --tls-host) and how the TLS facts of a connection
 * are printed. The library does the work (negio_config_set_transport and friends); this file
 * only checks that the options make sense together, applies them in the right order and reports
 * a bad file before the command starts serving or connecting.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"

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

static int set_value(const char *cmd, const char *usage, const char *opt, const char *what,
                     const char *arg, const char **field)
{
    if (arg[0] == '\0')
        return cli_usage_error(cmd, usage, "%s: expected %s, got ''", opt, what), -1;
    *field = arg;
    return 1;
}

int cli_tls_option(const char *cmd, const char *usage, int opt, const char *arg, struct cli_tls *t)
{
    switch (opt) {
    case CLI_OPT_TLS:
    case CLI_OPT_TLS_NEGOTIATE: {
        negio_transport want =
            opt == CLI_OPT_TLS ? NEGIO_TRANSPORT_TLS : NEGIO_TRANSPORT_TLS_NEGOTIATE;
        if (t->transport != NEGIO_TRANSPORT_PLAIN && t->transport != want)
            return cli_usage_error(cmd, usage, "--tls and --tls-negotiate exclude each other"), -1;
        t->transport = want;
        return 1;
    }
    case CLI_OPT_CERT:
        return set_value(cmd, usage, "--cert", "a file name", arg, &t->cert);
    case CLI_OPT_KEY:
        return set_value(cmd, usage, "--key", "a file name", arg, &t->key);
    case CLI_OPT_CA:
        return set_value(cmd, usage, "--ca", "a file name", arg, &t->ca);
    case CLI_OPT_TLS_HOST:
        return set_value(cmd, usage, "--tls-host", "a host name", arg, &t->host);
    case CLI_OPT_REQUIRE_CLIENT_CERT:
        t->require_client_cert = 1;
        return 1;
    case CLI_OPT_TLS_ALLOW_NTLM:
        t->allow_ntlm = 1;
        return 1;
    default:
        return 0;
    }
}

int cli_tls_cert_free(negio_role role, const struct cli_tls *t)
{
    return t->transport == NEGIO_TRANSPORT_TLS_NEGOTIATE &&
           (role == NEGIO_ROLE_SERVER ? t->cert == NULL : t->ca == NULL);
}

int cli_tls_validate(const char *cmd, const char *usage, negio_role role, const struct cli_tls *t)
{
    if (t->transport == NEGIO_TRANSPORT_PLAIN) {
        const char *stray = t->cert != NULL          ? "--cert"
                            : t->key != NULL         ? "--key"
                            : t->ca != NULL          ? "--ca"
                            : t->host != NULL        ? "--tls-host"
                            : t->require_client_cert ? "--require-client-cert"
                            : t->allow_ntlm          ? "--tls-allow-ntlm"
                                                     : NULL;
        if (stray != NULL)
            return cli_usage_error(cmd, usage, "%s goes with --tls or --tls-negotiate", stray), -1;
        return 0;
    }
    if (t->key != NULL && t->cert == NULL)
        return cli_usage_error(cmd, usage, "--key goes with --cert"), -1;
    if (role == NEGIO_ROLE_SERVER && t->transport == NEGIO_TRANSPORT_TLS && t->cert == NULL)
        return cli_usage_error(cmd, usage,
                               "--tls needs --cert FILE (and --key FILE unless the key is in "
                               "it); only --tls-negotiate has a certificate-free mode"),
               -1;
    if (t->require_client_cert && t->ca == NULL)
        return cli_usage_error(cmd, usage,
                               "--require-client-cert needs --ca FILE to verify clients with"),
               -1;
    if (t->allow_ntlm && t->transport != NEGIO_TRANSPORT_TLS_NEGOTIATE)
        return cli_usage_error(cmd, usage, "--tls-allow-ntlm goes with --tls-negotiate"), -1;
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

int cli_tls_load(const char *cmd, negio_config *cfg, const struct cli_tls *t)
{
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

int cli_tls_levels(const char *cmd, const char *usage, const struct cli_tls *t, int profile,
                   int *have_protect, negio_level *protect, int *have_min, negio_level *min)
{
    if (t->transport == NEGIO_TRANSPORT_PLAIN)
        return 0;
    if (profile == NEGIO_PROFILE_GSS_SAMPLE) {
        cli_usage_error(cmd, usage, "--profile gss-sample has no TLS form: no --tls or "
                                    "--tls-negotiate");
        return -1;
    }
    /* TLS protects every byte: none unless asked for (the library's default too) */
    if (!*have_protect)
        *protect = NEGIO_LEVEL_NONE;
    if (!*have_min)
        *min = NEGIO_LEVEL_NONE;
    *have_protect = *have_min = 1;
    if (t->transport == NEGIO_TRANSPORT_TLS &&
        (*protect != NEGIO_LEVEL_NONE || *min != NEGIO_LEVEL_NONE)) {
        cli_usage_error(cmd, usage, "--tls carries messages at level none only (no GSS-API to "
                                    "sign or seal with); --tls-negotiate has sign and seal");
        return -1;
    }
    return 0;
}
