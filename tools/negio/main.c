/*
 * negio — the command: a throwaway realm, an echo server and a client for the negio library.
 * This file dispatches to the subcommands and holds the helpers they share.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef NEGIO_VERSION
#define NEGIO_VERSION "unknown"
#endif

static const char usage_text[] =
    "usage: negio COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "commands:\n"
    "  realm start DIR   create and start a throwaway Kerberos realm with NTLM accounts\n"
    "  realm stop DIR    stop it\n"
    "  server            serve authenticated connections (optionally echoing messages)\n"
    "  client            authenticate to a server, send messages, print the replies\n"
    "  bench             measure negio against its limits (GSS, plain TCP, handshakes, memory)\n"
    "  doctor client     check what a client needs to authenticate, and say what to fix\n"
    "  doctor server     check what a server needs (keytab, key version, KDC, clock, NTLM)\n"
    "\n"
    "  negio COMMAND --help   options of one command\n"
    "  negio --version        the version\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error. See negio(1).\n";

void cli_usage_short(const char *cmd, const char *usage)
{
    /* the synopsis is the usage text's first paragraph */
    const char *end = strstr(usage, "\n\n");
    fwrite(usage, 1, end != NULL ? (size_t)(end - usage) + 1 : strlen(usage), stderr);
    fprintf(stderr, "run 'negio %s --help' for the options\n", cmd);
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "negio %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_usage_short(cmd, usage);
    return CLI_EXIT_USAGE;
}

int cli_parse_level(const char *cmd, const char *usage, const char *opt, const char *arg,
                    negio_level *out)
{
    if (negio_level_parse(arg, out) != NEGIO_OK) {
        cli_usage_error(cmd, usage, "%s: expected none, sign or seal, got '%s'", opt, arg);
        return -1;
    }
    return 0;
}

int cli_split_hostport(const char *arg, char *host, size_t cap, uint16_t *port)
{
    const char *colon, *h = arg;
    size_t hlen;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = arg + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(arg, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - arg);
        if (memchr(arg, ':', hlen) != NULL)
            return -1; /* an IPv6 address needs brackets */
    }
    if (hlen >= cap)
        return -1;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
        return -1;
    long v = strtol(p, NULL, 10);
    if (v > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return 0;
}

int cli_valid_local_user(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= CLI_MAX_NAME && name[0] != '-' && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int cli_parse_map(const char *cmd, const char *usage, const char *opt, const char *arg,
                  struct cli_map *out)
{
    const char *eq = strrchr(arg, '=');
    if (eq == NULL) {
        cli_usage_error(cmd, usage, "%s: expected PRINCIPAL=LOCALUSER, got '%s'", opt, arg);
        return -1;
    }
    size_t plen = (size_t)(eq - arg);
    if (plen == 0 || plen > CLI_MAX_NAME) {
        cli_usage_error(cmd, usage, "%s: the principal in '%s' is empty or over %d bytes", opt, arg,
                        CLI_MAX_NAME);
        return -1;
    }
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)arg[i];
        if (ch <= ' ' || ch == 0x7f || ch == '{' || ch == '}') {
            cli_usage_error(cmd, usage,
                            "%s: the principal in '%s' holds white space, a control character "
                            "or a brace",
                            opt, arg);
            return -1;
        }
    }
    if (!cli_valid_local_user(eq + 1)) {
        cli_usage_error(cmd, usage,
                        "%s: '%s' is not a local user name (1..%d letters, digits, '.', '_' or "
                        "'-', not starting with '-')",
                        opt, eq + 1, CLI_MAX_NAME);
        return -1;
    }
    memcpy(out->principal, arg, plen);
    out->principal[plen] = '\0';
    snprintf(out->local, sizeof(out->local), "%s", eq + 1);
    return 0;
}

int main(int argc, char **argv)
{
    /* peers and children may go away while we write to them: report, do not die */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2)
        return fputs(usage_text, stderr), CLI_EXIT_USAGE;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage_text, stdout), CLI_EXIT_OK;
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("negio %s (wire protocol %d)\n", NEGIO_VERSION, NEGIO_PROTOCOL_VERSION);
        return CLI_EXIT_OK;
    }
    /* argv[0] of a subcommand names it in getopt's messages */
    static char realm_name[] = "negio realm", server_name[] = "negio server",
                client_name[] = "negio client";
    if (strcmp(cmd, "realm") == 0)
        return argv[1] = realm_name, cli_realm(argc - 1, argv + 1);
    if (strcmp(cmd, "server") == 0)
        return argv[1] = server_name, cli_server(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) {
        static char bench_name[] = "negio bench";
        return argv[1] = bench_name, cli_bench(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "client") == 0)
        return argv[1] = client_name, cli_client(argc - 1, argv + 1);
    if (strcmp(cmd, "doctor") == 0)
        return cli_doctor(argc - 1, argv + 1);
    fprintf(stderr, "negio: unknown command '%s'\n%s", cmd, usage_text);
    return CLI_EXIT_USAGE;
}
