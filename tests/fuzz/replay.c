/* A main() for the fuzz targets in the coverage build (make coverage, docs/FUZZING.md section
 * 5): runs every file it is given, and every file of every directory it is given, through
 * LLVMFuzzerTestOneInput once, in name order, after one LLVMFuzzerInitialize.
 *
 *   fuzz_TARGET FILE_OR_DIR ...
 *
 * The counters are reset after LLVMFuzzerInitialize, so that the profile counts what the inputs
 * reach and not what the set-up does (fuzz_established authenticates genuine pairs there); it is
 * written when main returns.
 *
 * libFuzzer could replay a corpus too (-runs=0 DIR), but it needs -fsanitize=fuzzer, whose
 * SanitizerCoverage instrumentation and runtime the coverage build does not want, it runs an
 * empty input of its own before the corpus, and it cannot leave its initialisation out of the
 * profile. Prints the number of inputs run; exits 1 if a file cannot be read (a check that fails
 * inside a target aborts, as under libFuzzer). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz_support.h"

/* compiler-rt's profile runtime (InstrProfiling.h), linked in by -fprofile-instr-generate */
void __llvm_profile_reset_counters(void);

static int run_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data != NULL && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(data, cap * 2);
            if (bigger == NULL)
                free(data);
            data = bigger;
            cap *= 2;
        }
    }
    int failed = data == NULL || ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(data);
        return -1;
    }
    (void)LLVMFuzzerTestOneInput(data, len);
    free(data);
    (*count)++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path, count);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        struct stat fst;
        if (names[i]->d_name[0] != '.' &&
            snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name) < (int)sizeof file &&
            stat(file, &fst) == 0 && S_ISREG(fst.st_mode) && run_file(file, count) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR ...\n", argv[0]);
        return 2;
    }
    (void)LLVMFuzzerInitialize(&argc, &argv);
    __llvm_profile_reset_counters();
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &count) != 0)
            rc = 1;
    const char *name = strrchr(argv[0], '/');
    printf("%s: %zu inputs replayed\n", name != NULL ? name + 1 : argv[0], count);
    return rc;
}
