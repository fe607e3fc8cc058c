/* The negio command: subcommands and the helpers they share. */
#ifndef NEGIO_CLI_H
#define NEGIO_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "negio/negio.h"

/* Exit statuses of every subcommand. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* authentication, protocol or system failure */
#define CLI_EXIT_USAGE 2 /* bad options or arguments */

/* Each subcommand gets its own argv: argv[0] is the subcommand's name. */
int cli_realm(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_client(int argc, char **argv);

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

#endif /* NEGIO_CLI_H */
