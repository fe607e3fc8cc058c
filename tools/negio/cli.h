/* The negio command: subcommands and the helpers they share. */
#ifndef NEGIO_CLI_H
#define NEGIO_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "negio/negio.h"

/* Exit statuses of every subcommand. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* authentication, protocol or system failure */
#define CLI_EXIT_USAGE 2 /* bad options or arguments */

/* Each subcommand gets its own argv: argv[0] is the subcommand's name. */
int cli_realm(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_client(int argc, char **argv);
int cli_bench(int argc, char **argv); /* tools/bench */

/* Prints the synopsis (USAGE's first paragraph) and a pointer to --help to stderr. */
void cli_usage_short(const char *cmd, const char *usage);
/* Prints "negio CMD: MESSAGE" and the synopsis to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a protection level for option OPT; prints a usage error and returns -1 if invalid. */
int cli_parse_level(const char *cmd, const char *usage, const char *opt, const char *arg,
                    negio_level *out);
/* Splits "HOST:PORT" or "[V6]:PORT" into HOST (brackets removed, may be empty) and a port
 * number (0..65535). Returns 0, or -1 if malformed or HOST does not fit in CAP bytes. */
int cli_split_hostport(const char *arg, char *host, size_t cap, uint16_t *port);

/* A --map PRINCIPAL=LOCALUSER argument (realm and server), split at its last '='. */
#define CLI_MAX_NAME 255 /* bytes of a principal or a local user name */
#define CLI_MAX_MAPS 32  /* --map options per command */
struct cli_map {
    char principal[CLI_MAX_NAME + 1];
    char local[CLI_MAX_NAME + 1];
};
/* Whether NAME can be a local account's name: 1..CLI_MAX_NAME bytes of letters, digits, '.',
 * '_' and '-', not starting with '-' and not "." or ".." (so nothing that krb5.conf, a path or
 * a shell would read specially). */
int cli_valid_local_user(const char *name);
/* Parses ARG for option OPT into *OUT: PRINCIPAL non-empty, at most CLI_MAX_NAME bytes, without
 * white space, control characters or braces; LOCALUSER as cli_valid_local_user(). Prints a
 * usage error and returns -1 if invalid. */
int cli_parse_map(const char *cmd, const char *usage, const char *opt, const char *arg,
                  struct cli_map *out);

/* ---- the TLS options of server and client (tls.c) ---- */

/* getopt_long values of the TLS options: above every option character */
enum {
    CLI_OPT_TLS = 0x100,         /* --tls */
    CLI_OPT_TLS_NEGOTIATE,       /* --tls-negotiate */
    CLI_OPT_CERT,                /* --cert FILE */
    CLI_OPT_KEY,                 /* --key FILE */
    CLI_OPT_CA,                  /* --ca FILE */
    CLI_OPT_REQUIRE_CLIENT_CERT, /* --require-client-cert (server) */
    CLI_OPT_TLS_ALLOW_NTLM,      /* --tls-allow-ntlm */
    CLI_OPT_TLS_HOST,            /* --tls-host NAME (client) */
};

/* What the TLS options asked for; the strings point into argv. */
struct cli_tls {
    negio_transport transport; /* NEGIO_TRANSPORT_PLAIN without --tls or --tls-negotiate */
    const char *cert, *key, *ca, *host;
    int require_client_cert, allow_ntlm;
};

/* Takes option OPT (as getopt_long returned it) with its ARG into *T. Returns 1 if OPT is a TLS
 * option, 0 if it is not, -1 after printing a usage error. */
int cli_tls_option(const char *cmd, const char *usage, int opt, const char *arg, struct cli_tls *t);
/* After the options: refuses combinations that make no sense for ROLE (a TLS option without a
 * TLS transport, --key without --cert, a --tls server without --cert, ...). Returns 0, or -1
 * after printing a usage error. */
int cli_tls_validate(const char *cmd, const char *usage, negio_role role, const struct cli_tls *t);
/* The levels on a TLS transport: none unless the user gave one (*HAVE_PROTECT, *HAVE_MIN say
 * whether they did; they are set to 1 here), and none only with --tls; and no gss-sample
 * profile with TLS. Nothing changes without a TLS transport. Returns 0, or -1 after printing a
 * usage error. */
int cli_tls_levels(const char *cmd, const char *usage, const struct cli_tls *t, int profile,
                   int *have_protect, negio_level *protect, int *have_min, negio_level *min);
/* Whether T is the certificate-free mode: --tls-negotiate without --cert (server) or without
 * --ca (client). */
int cli_tls_cert_free(negio_role role, const struct cli_tls *t);
/* Sets the transport and the TLS settings on CFG. The transport resets both levels to none, so
 * the caller sets the levels the user gave explicitly after this call. Returns 0 or the
 * library's error. */
int cli_tls_apply(negio_config *cfg, const struct cli_tls *t);
/* Loads the certificate, key and CA files now (negio_config_tls_check), so that a bad file stops
 * the command at start-up. Returns 0, or -1 after printing why to stderr. */
int cli_tls_load(const char *cmd, negio_config *cfg, const struct cli_tls *t);
/* "plain", "tls" or "tls-negotiate" */
const char *cli_transport_name(negio_transport transport);

struct json_writer;
/* The TLS facts of an established connection as JSON members: transport, tls_version,
 * tls_cipher, tls_peer, tls_peer_verified, channel_bound, client_authenticated. */
void cli_tls_json(struct json_writer *w, negio_transport transport, const negio_auth_info *info);
/* The same in words, e.g. 'over TLSv1.3 (TLS_AES_256_GCM_SHA384), server certificate not
 * verified, channel bound'; ROLE is this side's (the peer is the other). */
void cli_tls_print(FILE *out, negio_role role, const negio_auth_info *info);

#endif /* NEGIO_CLI_H */
