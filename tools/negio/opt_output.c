/*
 * The output group: human-readable lines, or JSON (--json). What the JSON holds is each
 * subcommand's (negio(1), JSON).
 */
#include <getopt.h>

#include "opt.h"

enum {
    OPT_JSON = CLI_GROUP_BASE(CLI_G_OUTPUT),
};

static const struct cli_option options[] = {
    {"json", no_argument, OPT_JSON, CLI_ACCEPTOR, NULL,
     "one JSON object per line: listening, authenticated, message, closed, and request / "
     "forwarded / forward_closed"},
    {"json", no_argument, OPT_JSON, CLI_INITIATOR, NULL, "print one JSON object with the outcome"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_synopsis synopsis[] = {
    {CLI_CONNECTING, "[--json]"},
    {0, NULL},
};

static void init(void *state)
{
    *(int *)state = 0;
}

static int take(const struct cli *c, void *state, int id, const char *arg)
{
    (void)c;
    (void)id;
    (void)arg;
    *(int *)state = 1;
    return 0;
}

const struct cli_group cli_output_group = {
    .no = CLI_G_OUTPUT,
    .options = options,
    .synopsis = synopsis,
    .init = init,
    .take = take,
};
