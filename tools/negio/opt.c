/*
 * Option groups assembled into one getopt_long table per subcommand, and the synopsis and --help
 * printed from the same tables (opt.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

#define MAX_OPTIONS 64 /* long options of one subcommand */
#define WIDTH 90       /* columns of --help */

/* A mistake in the tables: no run of the subcommand can be right, so none goes on. */
static void table_error(const struct cli_command *cmd, const char *what, const char *name)
{
    fprintf(stderr, "negio %s: option table: %s: %s\n", cmd->name, what, name);
    abort();
}

/* Whether O is for the subcommand, and the first entry of its id that is. */
static int offered(const struct cli_command *cmd, const struct cli_option *opts,
                   const struct cli_option *o)
{
    if ((o->roles & cmd->role) == 0)
        return 0;
    for (const struct cli_option *p = opts; p != o; p++)
        if (p->id == o->id && (p->roles & cmd->role) != 0)
            return 0;
    return 1;
}

/* The getopt_long table of C's groups, checked for collisions. */
static void build_table(const struct cli *c, struct option *table)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nuses; i++) {
        const struct cli_group *g = c->uses[i].group;
        for (size_t j = 0; j < i; j++)
            if (c->uses[j].group->no == g->no)
                table_error(c->cmd, "a group is used twice", g->options[0].name);
        for (const struct cli_option *o = g->options; o->name != NULL; o++) {
            if (CLI_GROUP_OF(o->id) != (int)g->no)
                table_error(c->cmd, "an id outside its group's range", o->name);
            if (!offered(c->cmd, g->options, o))
                continue;
            for (size_t k = 0; k < n; k++)
                if (strcmp(table[k].name, o->name) == 0)
                    table_error(c->cmd, "a name offered twice", o->name);
            if (n == MAX_OPTIONS)
                table_error(c->cmd, "too many options", o->name);
            table[n++] = (struct option){o->name, o->has_arg, NULL, o->id};
        }
    }
    table[n++] = (struct option){"help", no_argument, NULL, 'h'};
    table[n] = (struct option){NULL, 0, NULL, 0};
}

/* Writes the words of TEXT from column AT, in lines of at most WIDTH columns, every further
 * line indented to column INDENT; ends with a newline. A '\1' is a space that breaks no line. */
static void wrap(FILE *out, const char *text, size_t at, size_t indent)
{
    int first = 1;
    for (const char *p = text + strspn(text, " "); *p != '\0'; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");
        if (!first && at + 1 + len > WIDTH) {
            fprintf(out, "\n%*s", (int)indent, "");
            at = indent;
        } else if (!first) {
            fputc(' ', out);
            at++;
        }
        for (size_t i = 0; i < len; i++)
            fputc(p[i] == '\1' ? ' ' : p[i], out);
        at += len;
        first = 0;
        p += len;
    }
    fputc('\n', out);
}

/* Appends TEXT to the synopsis WORDS (*LEN bytes) as one unbreakable piece. */
static void add_piece(const struct cli_command *cmd, char *words, size_t *len, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 2 > CLI_USAGE_MAX)
        table_error(cmd, "synopsis too long", text);
    if (*len > 0)
        words[(*len)++] = ' ';
    for (size_t i = 0; i < n; i++)
        words[(*len)++] = text[i] == ' ' ? '\1' : text[i];
    words[*len] = '\0';
}

/* "usage: negio NAME [LEAD] PIECES... [OPERANDS]", wrapped, then the other form if any. */
static void write_synopsis(const struct cli *c, FILE *out)
{
    const struct cli_command *cmd = c->cmd;
    char words[CLI_USAGE_MAX] = "";
    size_t len = 0;
    if (cmd->lead != NULL)
        add_piece(cmd, words, &len, cmd->lead);
    for (size_t i = 0; i < c->nuses; i++)
        for (const struct cli_synopsis *s = c->uses[i].group->synopsis; s->text != NULL; s++)
            if (s->roles & cmd->role)
                add_piece(cmd, words, &len, s->text);
    if (cmd->operands != NULL)
        add_piece(cmd, words, &len, cmd->operands);
    int indent = fprintf(out, "usage: negio %s ", cmd->name);
    wrap(out, words, (size_t)indent, (size_t)indent);
    if (cmd->more != NULL)
        fprintf(out, "       %s\n", cmd->more);
}

/* How many options of G C's subcommand offers. */
static int count_offered(const struct cli *c, const struct cli_group *g)
{
    int n = 0;
    for (const struct cli_option *o = g->options; o->name != NULL; o++)
        n += offered(c->cmd, g->options, o);
    return n;
}

static void write_options(const struct cli *c, const struct cli_group *g, FILE *out)
{
    const struct cli_command *cmd = c->cmd;
    for (const struct cli_option *o = g->options; o->name != NULL; o++) {
        if (!offered(cmd, g->options, o))
            continue;
        int at = fprintf(out, "  --%s%s%s", o->name,
                         o->arg == NULL || o->has_arg == optional_argument ? "" : " ",
                         o->arg != NULL ? o->arg : "");
        if (at + 1 > cmd->column) {
            fprintf(out, "\n%*s", cmd->column, "");
        } else {
            fprintf(out, "%*s", cmd->column - at, "");
        }
        wrap(out, o->help, (size_t)cmd->column, (size_t)cmd->column);
    }
}

static void write_help(const struct cli *c, FILE *out)
{
    fputs(c->usage, out);
    fprintf(out, "\n%s\noptions:\n", c->cmd->about);
    for (size_t i = 0; i < c->nuses; i++)
        if (c->uses[i].group->title == NULL)
            write_options(c, c->uses[i].group, out);
    fprintf(out, "  -h, --help%*sthis text\n", c->cmd->column - 12, "");
    for (size_t i = 0; i < c->nuses; i++)
        if (c->uses[i].group->title != NULL && count_offered(c, c->uses[i].group) > 0) {
            fprintf(out, "\n%s\n", c->uses[i].group->title);
            write_options(c, c->uses[i].group, out);
        }
    if (c->cmd->footer != NULL)
        fprintf(out, "\n%s", c->cmd->footer);
}

/* The getopt_long loop: each option to its group. */
static int take_options(struct cli *c, const struct option *table, int argc, char **argv)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "h", table, NULL)) != -1) {
        if (opt == 'h') {
            write_help(c, stdout);
            c->help = 1;
            return 0;
        }
        const struct cli_use *use = NULL;
        for (size_t i = 0; i < c->nuses && use == NULL; i++)
            if ((int)c->uses[i].group->no == CLI_GROUP_OF(opt))
                use = &c->uses[i];
        if (use == NULL) { /* '?': getopt_long said what was wrong */
            cli_usage_short(c->cmd->name, c->usage);
            return -1;
        }
        if (use->group->take(c, use->state, opt, optarg) < 0)
            return -1;
    }
    c->args = argv + optind;
    c->nargs = argc - optind;
    return 0;
}

int cli_parse(struct cli *c, const struct cli_command *cmd, const struct cli_use *uses,
              size_t nuses, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    c->uses = uses;
    c->nuses = nuses;
    struct option table[MAX_OPTIONS + 2];
    build_table(c, table);
    FILE *u = fmemopen(c->usage, sizeof(c->usage), "w");
    if (u == NULL)
        abort();
    write_synopsis(c, u);
    if (ftell(u) >= (long)sizeof(c->usage))
        table_error(cmd, "synopsis too long", cmd->name);
    fclose(u);
    for (size_t i = 0; i < nuses; i++)
        if (uses[i].group->init != NULL)
            uses[i].group->init(uses[i].state);
    int rc = take_options(c, table, argc, argv);
    c->uses = NULL; /* the caller's: gone when it returns */
    c->nuses = 0;
    return rc;
}

int cli_error(const struct cli *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cli_usage_error(c->cmd->name, c->usage, "%s", msg);
    return -1;
}

negio_role cli_role(const struct cli *c)
{
    return c->cmd->role == CLI_ACCEPTOR ? NEGIO_ROLE_SERVER : NEGIO_ROLE_CLIENT;
}

int cli_parse_long(const struct cli *c, const char *opt, const char *arg, long min, long max,
                   const char *unit, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
        return cli_error(c, "%s: expected %ld..%ld%s, got '%s'", opt, min, max, unit, arg);
    *out = v;
    return 0;
}
