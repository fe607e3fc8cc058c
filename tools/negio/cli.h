/*
 * The negio command: its subcommands and the helpers they share (main.c). The options of the
 * subcommands come in groups (opt.h). tests/fuzz links main.c alone against this header: what
 * main.c defines must not need any other file of the command.
 */
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
int cli_doctor(int argc, char **argv);

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

#endif /* NEGIO_CLI_H */
