/*
 * A connection's options together: the checks that span the groups (mechanism, identity,
 * protection, profile, TLS) and the negio_config made from them, the same for every subcommand
 * that accepts (server) or initiates (client) connections.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "opt.h"

/* --tls: certificates alone authenticate, so no option that asks for Kerberos or NTLM. */
static int tls_only(const struct cli *c, const struct cli_auth *a, const char *extra, int extra_set)
{
    const char *names[5];
    size_t n = 0;
    int set = a->have_mech || extra_set;
    names[n++] = "--mech";
    if (cli_role(c) == NEGIO_ROLE_CLIENT) {
        names[n++] = "--user";
        names[n++] = "--require-mutual";
        names[n++] = "--delegate";
        set |= a->user != NULL || a->require_mutual || a->delegate;
    }
    if (extra != NULL)
        names[n++] = extra;
    if (!set)
        return 0;
    char list[128] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 i == 0       ? ""
                 : i == n - 1 ? " or "
                              : ", ",
                 names[i]);
    return cli_error(c,
                     "--tls authenticates with certificates only: no %s (use --tls-negotiate "
                     "for Kerberos or NTLM)",
                     list);
}

int cli_connection_validate(const struct cli *c, struct cli_connection *k, const char *extra,
                            int extra_set)
{
    const struct cli_auth *a = &k->auth;
    negio_role role = cli_role(c);
    if (strchr(a->spn, '@') == NULL)
        return cli_error(c, "--spn: expected SERVICE@HOST, got '%s'", a->spn);
    if ((a->user == NULL) != (a->password_file == NULL))
        return cli_error(c, "--user and --password-file go together");
    if (cli_tls_validate(c, &k->tls) < 0 || cli_tls_levels(c, &k->tls, k->profile, &k->protect) < 0)
        return -1;
    /* the client learns it from the library at the handshake: only a server can know now */
    if (role == NEGIO_ROLE_SERVER && a->mech == NEGIO_MECH_NTLM &&
        cli_tls_cert_free(role, &k->tls) && !k->tls.allow_ntlm)
        return cli_error(c, "--mech ntlm: certificate-free --tls-negotiate refuses NTLM, which "
                            "cannot authenticate the server (--cert FILE, or --tls-allow-ntlm)");
    if (k->tls.transport == NEGIO_TRANSPORT_TLS)
        return tls_only(c, a, extra, extra_set);
    return 0;
}

int cli_read_password(const struct cli *c, const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "negio %s: --password-file %s: %s\n", c->cmd->name, path, strerror(errno));
        return -1;
    }
    int got = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!got) {
        fprintf(stderr, "negio %s: --password-file %s is empty\n", c->cmd->name, path);
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* What the accepting side takes from the options before the transport ... */
static int acceptor_first(negio_config *cfg, const struct cli_auth *a)
{
    unsigned allowed = a->mech == NEGIO_MECH_KERBEROS ? NEGIO_ALLOW_KERBEROS
                       : a->mech == NEGIO_MECH_NTLM   ? NEGIO_ALLOW_NTLM
                                                      : NEGIO_ALLOW_ALL;
    int rc = negio_config_set_allowed(cfg, allowed);
    if (rc == 0 && a->keytab != NULL)
        rc = negio_config_set_keytab(cfg, a->keytab);
    return rc;
}

/* ... and after the levels. */
static int acceptor_last(negio_config *cfg, const struct cli_identity *id)
{
    int rc = 0;
    if (id->ntlm_domain != NULL)
        rc = negio_config_set_ntlm_domain(cfg, id->ntlm_domain);
    for (size_t i = 0; i < id->nmaps && rc == 0; i++)
        rc = negio_config_add_user_map(cfg, id->maps[i].principal, id->maps[i].local);
    return rc;
}

static int initiator_last(negio_config *cfg, const struct cli_auth *a)
{
    int rc;
    if ((rc = negio_config_set_require_server_auth(cfg, a->require_mutual)) < 0 ||
        (rc = negio_config_set_allow_ntlm_fallback(cfg, a->ntlm_fallback)) < 0 ||
        (rc = negio_config_set_delegate(cfg, a->delegate)) < 0)
        return rc;
    return 0;
}

int cli_connection_config(const struct cli *c, const struct cli_connection *k, negio_config **out)
{
    const struct cli_auth *a = &k->auth;
    negio_role role = cli_role(c);
    negio_config *cfg = NULL;
    int rc = negio_config_new(&cfg, role);
    if (rc < 0)
        goto fail;
    /* a service name is always set: with an explicit keytab and NTLM allowed, gss-ntlmssp 1.2.0
     * needs one on the server (see README, known limitations); the transport before the levels:
     * choosing a TLS transport resets them to none */
    if ((rc = role == NEGIO_ROLE_SERVER ? acceptor_first(cfg, a)
                                        : negio_config_set_mech(cfg, a->mech)) < 0 ||
        (rc = negio_config_set_service(cfg, a->spn)) < 0 ||
        (rc = negio_config_set_profile(cfg, k->profile)) < 0 ||
        (rc = cli_tls_apply(cfg, &k->tls)) < 0 ||
        (rc = negio_config_set_default_level(cfg, k->protect.protect)) < 0 ||
        (rc = negio_config_set_min_level(cfg, k->protect.min)) < 0 ||
        (rc = role == NEGIO_ROLE_SERVER ? acceptor_last(cfg, &k->identity)
                                        : initiator_last(cfg, a)) < 0)
        goto fail;
    if (a->user != NULL) {
        char password[1024] = {0};
        if (cli_read_password(c, a->password_file, password, sizeof(password)) < 0) {
            explicit_bzero(password, sizeof(password));
            negio_config_del(cfg);
            return CLI_EXIT_USAGE;
        }
        rc = negio_config_set_password(cfg, a->user, password);
        explicit_bzero(password, sizeof(password));
        if (rc < 0)
            goto fail;
    }
    *out = cfg;
    return CLI_EXIT_OK;
fail:
    negio_config_del(cfg);
    return cli_config_failed(c, rc);
}

int cli_config_failed(const struct cli *c, int rc)
{
    fprintf(stderr, "negio %s: invalid configuration: %s: %s\n", c->cmd->name, negio_err_name(rc),
            negio_strerror(rc));
    return rc == NEGIO_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}
