/* A program that leaks on purpose, to prove that the leak checkers as the tests configure them
 * (LeakSanitizer with tests/lsan.supp in the ASan build, valgrind with tests/valgrind.supp in
 * scripts/valgrind.sh) report a leak of negio's own: their suppressions cover leaks in the system
 * libraries only. "leaky memory" loses a configuration made by negio_config_new(); "leaky fd"
 * leaves a file descriptor open. It does so only when NEGIO_LEAKY=1, so that running it by
 * accident proves nothing. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "negio/negio.h"

static negio_config *sink;

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (getenv("NEGIO_LEAKY") == NULL || strcmp(getenv("NEGIO_LEAKY"), "1") != 0) {
        fprintf(stderr, "leaky: set NEGIO_LEAKY=1 to leak on purpose\n");
        return 2;
    }
    if (strcmp(mode, "memory") == 0) {
        if (negio_config_new(&sink, NEGIO_ROLE_CLIENT) != NEGIO_OK ||
            negio_config_set_service(sink, "negio@localhost") != NEGIO_OK)
            return 2;
        sink = NULL; /* the only pointer to it is gone: definitely lost */
        return 0;
    }
    if (strcmp(mode, "fd") == 0)
        return open("/dev/null", O_RDONLY | O_CLOEXEC) < 0 ? 2 : 0;
    fprintf(stderr, "usage: NEGIO_LEAKY=1 leaky memory|fd\n");
    return 2;
}
