/*
 * The negio command's options, in groups: one table per concern (TLS, mechanism and credentials,
 * identity mapping, protection, profile, output), each in its own opt_*.c next to the code that
 * takes, checks and applies its options, and shared by every subcommand that offers it (server,
 * client, and the tunnel's two ends). A subcommand lists the groups it uses, each with the struct
 * that receives its options; cli_parse() assembles one getopt_long table from them, hands every
 * option to its group, and prints the synopsis and --help from the same tables, so the help
 * cannot drift from what is parsed.
 *
 * Collisions are impossible by construction: no option has a short form but -h, and every group
 * owns the option ids CLI_GROUP_BASE(no) .. CLI_GROUP_BASE(no) + 0xff for its number in enum
 * cli_group_no, the one list of every group. cli_parse() checks on every run that each id lies
 * in its group's range, that no group is used twice and that no long name is offered twice, and
 * aborts otherwise: a mistake fails the first test that runs the subcommand.
 *
 * An option's help (and whether a subcommand offers it at all) depends on the side of the
 * connection the subcommand plays: --cert is the server's certificate on the accepting side and
 * a client certificate on the initiating one. A table may hold several entries for one option
 * (same id), each for some roles; a subcommand gets the first entry that names its role.
 */
#ifndef NEGIO_CLI_OPT_H
#define NEGIO_CLI_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

/* Every group of options, numbered; a group's option ids are CLI_GROUP_BASE(its number) + n. */
enum cli_group_no {
    CLI_G_SERVER = 1,      /* negio server: --listen, --close-at-expiry (server.c) */
    CLI_G_SERVER_MESSAGES, /* negio server: --echo, --files, --forward, ... (server.c) */
    CLI_G_CLIENT,          /* negio client: --connect, --timeout (client.c) */
    CLI_G_REALM,           /* negio realm (realm.c) */
    CLI_G_BENCH,           /* negio bench (tools/bench/bench.c) */
    CLI_G_AUTH,            /* mechanism and credentials (opt_auth.c) */
    CLI_G_IDENTITY,        /* accepting side: who a peer is locally (opt_identity.c) */
    CLI_G_PROTECT,         /* protection levels (opt_protect.c) */
    CLI_G_PROFILE,         /* the wire profile (opt_profile.c) */
    CLI_G_OUTPUT,          /* --json (opt_output.c) */
    CLI_G_TLS,             /* the TLS transport (opt_tls.c) */
    CLI_G_DOCTOR,          /* negio doctor: --json (doctor.c) */
    CLI_G_TUNNEL,          /* negio tunnel client|server (tunnel.c) */
};
#define CLI_GROUP_BASE(no) ((no) << 8)
#define CLI_GROUP_OF(id) ((id) >> 8)

/* Roles: which subcommands an option, or a piece of the synopsis, is for. */
#define CLI_ACCEPTOR 0x1u  /* accepts authenticated connections: negio server */
#define CLI_INITIATOR 0x2u /* makes them: negio client */
#define CLI_LOCAL 0x4u     /* no connection of its own: negio realm, negio bench */
#define CLI_CONNECTING (CLI_ACCEPTOR | CLI_INITIATOR)
#define CLI_ALL (CLI_ACCEPTOR | CLI_INITIATOR | CLI_LOCAL)

/* One long option. */
struct cli_option {
    const char *name; /* without "--"; NULL ends a table */
    int has_arg;      /* no_argument, required_argument or optional_argument (getopt.h) */
    int id;           /* CLI_GROUP_BASE(group) + n */
    unsigned roles;   /* the subcommands this entry is for */
    const char *arg;  /* the argument in --help ("FILE", "[=FILE]"), or NULL */
    const char *help; /* one paragraph; --help wraps it */
};

/* A piece of the synopsis ("[--tls | --tls-negotiate]"), never broken across lines. */
struct cli_synopsis {
    unsigned roles;
    const char *text; /* NULL ends a list */
};

struct cli;

/* A group: its options, its part of the synopsis, and the function that takes its options. */
struct cli_group {
    enum cli_group_no no;
    const char *title; /* its own section of --help ("TLS (...):"), or NULL: under "options:" */
    const struct cli_option *options;
    const struct cli_synopsis *synopsis;
    /* Sets STATE to the defaults, before any option (NULL: nothing to do). */
    void (*init)(void *state);
    /* Takes option ID with ARG (NULL without one) into STATE. Returns 0, or -1 after a usage
     * error (cli_error). */
    int (*take)(const struct cli *c, void *state, int id, const char *arg);
};

/* What a subcommand is, for its synopsis, --help and messages. */
struct cli_command {
    const char *name;     /* "server": "negio server: ..." */
    unsigned role;        /* one of CLI_ACCEPTOR, CLI_INITIATOR, CLI_LOCAL */
    const char *lead;     /* synopsis words before the options ("start DIR"), or NULL */
    const char *operands; /* after them ("[MESSAGE ...]"), or NULL */
    const char *more;     /* another form on a line of its own ("negio realm stop DIR"), or NULL */
    const char *about;    /* the paragraphs between the synopsis and the options */
    const char *footer;   /* the paragraph after them, or NULL */
    int column;           /* where option descriptions start in --help */
};

/* A group as a subcommand uses it: the struct its options go into. */
struct cli_use {
    const struct cli_group *group;
    void *state;
};

#define CLI_USAGE_MAX 2048

/* A parsed command line. */
struct cli {
    const struct cli_command *cmd;
    const struct cli_use *uses; /* while cli_parse() runs */
    size_t nuses;
    char usage[CLI_USAGE_MAX]; /* the synopsis, for --help and usage errors */
    int help;                  /* --help was asked for and printed */
    char **args;               /* the operands after the options */
    int nargs;
};

/* Parses ARGV (ARGV[0] names the subcommand) with the groups in USES, in the order --help shows
 * them: every group's init, then each option to its group's take. Prints --help to stdout and
 * sets C->help when asked. Returns 0, or -1 after a usage error. */
int cli_parse(struct cli *c, const struct cli_command *cmd, const struct cli_use *uses,
              size_t nuses, int argc, char **argv);
/* Prints "negio CMD: MESSAGE" and the synopsis to stderr; returns -1. */
int cli_error(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The library's role for C's subcommand (the accepting side is the server). */
negio_role cli_role(const struct cli *c);
/* Parses ARG as a whole number MIN..MAX for option OPT; prints a usage error ("expected
 * MIN..MAX UNIT") and returns -1 if it is not one. */
int cli_parse_long(const struct cli *c, const char *opt, const char *arg, long min, long max,
                   const char *unit, long *out);

/* ---- mechanism and credentials (opt_auth.c) ------------------------------------------------ */

struct cli_auth {
    negio_mech mech;
    int have_mech;
    const char *spn;    /* SERVICE@HOST */
    const char *keytab; /* accepting side; NULL: KRB5_KTNAME */
    /* initiating side */
    const char *user, *password_file;
    int require_mutual, ntlm_fallback, delegate;
};
extern const struct cli_group cli_auth_group;
/* The accepting side's start-up check (negio_config_check_credentials): the keytab holds the
 * service's key, the NTLM account file can be read. Returns 0, or -1 after printing to stderr
 * what is missing (the file, the principal). */
int cli_auth_check(const struct cli *c, negio_config *cfg, const struct cli_auth *a);

/* ---- identity mapping, accepting side (opt_identity.c) ------------------------------------- */

struct cli_identity {
    struct cli_map maps[CLI_MAX_MAPS];
    size_t nmaps;
    const char *ntlm_domain; /* NULL: none */
};
extern const struct cli_group cli_identity_group;
/* Adds one --map argument to MAPS (*N of them). Returns 0, or -1 after a usage error. */
int cli_add_map(const struct cli *c, const char *arg, struct cli_map *maps, size_t *n);

/* ---- protection levels (opt_protect.c) ----------------------------------------------------- */

struct cli_protect {
    negio_level protect, min;
    int have_protect, have_min; /* given on the command line (or set by a TLS transport) */
    int no_fast_path;           /* --no-kerberos-fast-path */
};
extern const struct cli_group cli_protect_group;

/* ---- the wire profile (opt_profile.c) ------------------------------------------------------ */

extern const struct cli_group cli_profile_group; /* state: negio_profile */
/* The same option for a tunnel's ends, with what each profile means for a tunnel (tunnel.c
 * refuses gss-sample). */
extern const struct cli_group cli_tunnel_profile_group;

/* ---- output (opt_output.c) ----------------------------------------------------------------- */

extern const struct cli_group cli_output_group; /* state: int, 1 with --json */

/* ---- the TLS transport (opt_tls.c) --------------------------------------------------------- */

/* What the TLS options asked for; the strings point into argv. */
struct cli_tls {
    negio_transport transport; /* NEGIO_TRANSPORT_PLAIN without --tls or --tls-negotiate */
    const char *cert, *key, *ca, *host;
    int require_client_cert, allow_ntlm;
};
extern const struct cli_group cli_tls_group;

/* Refuses combinations that make no sense for C's role (a TLS option without a TLS transport,
 * --key without --cert, a --tls server without --cert, ...). Returns 0, or -1 after a usage
 * error. */
int cli_tls_validate(const struct cli *c, const struct cli_tls *t);
/* The levels on a TLS transport: none unless the user gave one (P->have_* say whether they did;
 * they are set to 1 here), and none only with --tls; and no gss-sample profile with TLS.
 * Nothing changes without a TLS transport. Returns 0, or -1 after a usage error. */
int cli_tls_levels(const struct cli *c, const struct cli_tls *t, negio_profile profile,
                   struct cli_protect *p);
/* Whether T is the certificate-free mode: --tls-negotiate without --cert (server) or without
 * --ca (client). */
int cli_tls_cert_free(negio_role role, const struct cli_tls *t);
/* Sets the transport and the TLS settings on CFG. The transport resets both levels to none, so
 * the caller sets the levels after this call. Returns 0 or the library's error. */
int cli_tls_apply(negio_config *cfg, const struct cli_tls *t);
/* Loads the certificate, key and CA files now (negio_config_tls_check), so that a bad file stops
 * the command at start-up. Returns 0, or -1 after printing why to stderr. */
int cli_tls_load(const struct cli *c, negio_config *cfg, const struct cli_tls *t);
/* "plain", "tls" or "tls-negotiate" */
const char *cli_transport_name(negio_transport transport);

struct json_writer;
/* The TLS facts of an established connection as JSON members: transport, tls_version,
 * tls_cipher, tls_peer, tls_peer_verified, channel_bound, client_authenticated. */
void cli_tls_json(struct json_writer *w, negio_transport transport, const negio_auth_info *info);
/* The same in words, e.g. 'over TLSv1.3 (TLS_AES_256_GCM_SHA384), server certificate not
 * verified, channel bound'; ROLE is this side's (the peer is the other). */
void cli_tls_print(FILE *out, negio_role role, const negio_auth_info *info);

/* ---- a connection's options together (opt_connection.c) ------------------------------------ */

/* Everything that goes into the negio_config of a connection: what server, client and the
 * tunnel's ends share. */
struct cli_connection {
    struct cli_auth auth;
    struct cli_identity identity; /* offered on the accepting side only */
    struct cli_protect protect;
    negio_profile profile;
    struct cli_tls tls;
};

/* The groups of a struct cli_connection, in their --help order, as entries of a cli_use array;
 * a tunnel's end takes the profile group of its own. */
#define CLI_CONNECTION_USES_WITH(conn, profile_group)                                              \
    {&cli_auth_group, &(conn)->auth}, {&cli_protect_group, &(conn)->protect},                      \
        {&cli_identity_group, &(conn)->identity}, {&(profile_group), &(conn)->profile},            \
    {                                                                                              \
        &cli_tls_group, &(conn)->tls                                                               \
    }
#define CLI_CONNECTION_USES(conn) CLI_CONNECTION_USES_WITH(conn, cli_profile_group)
#define CLI_TUNNEL_CONNECTION_USES(conn) CLI_CONNECTION_USES_WITH(conn, cli_tunnel_profile_group)

/* The checks across the groups: the service name, --user with --password-file, the TLS options
 * and the levels they imply, NTLM in certificate-free TLS (accepting side), and none of the
 * mechanism options with --tls, nor the subcommand's option EXTRA (NULL: none) if EXTRA_SET.
 * Sets the levels a TLS transport implies. Returns 0, or -1 after a usage error. */
int cli_connection_validate(const struct cli *c, struct cli_connection *k, const char *extra,
                            int extra_set);
/* The connector configuration for C's role from K (the password read from its file). Returns
 * CLI_EXIT_OK, or an exit status after printing why ("invalid configuration" is a usage error). */
int cli_connection_config(const struct cli *c, const struct cli_connection *k, negio_config **out);
/* The first line of PATH (--password-file), without its newline, in OUT (the caller wipes it).
 * Returns 0, or -1 after printing why. */
int cli_read_password(const struct cli *c, const char *path, char *out, size_t cap);
/* Prints that the library refused a configuration with RC; returns the exit status for it. */
int cli_config_failed(const struct cli *c, int rc);

#endif /* NEGIO_CLI_OPT_H */
