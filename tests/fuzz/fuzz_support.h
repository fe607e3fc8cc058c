/* Shared by the fuzz targets (docs/FUZZING.md): the throwaway realm, a driver that runs a
 * connector until it has nothing more to do, and one that feeds it a whole stream. */
#ifndef NEGIO_FUZZ_SUPPORT_H
#define NEGIO_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "negio/negio.h"
#include "support/support.h"

/* The libFuzzer entry points (no header ships them). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every target's LLVMFuzzerInitialize calls this first. With NEGIO_FUZZ_LEAK_ON_PURPOSE=1 in the
 * environment, fuzz_maybe_leak() then loses a negio_config on every input: scripts/fuzz.sh
 * --self-test proves that each target, run as scripts/fuzz.sh runs it, fails on such a leak. */
void fuzz_init(void);
void fuzz_maybe_leak(void);

/* Starts the realm once per process (test_realm_get), pointing NEGIO_TEST_REALM_SCRIPT at the
 * source tree's scripts/realm.sh unless it is set already. */
const test_realm *fuzz_realm(void);

/* Runs next_event until it returns 0 or an error, dropping whatever the connector wants to send
 * (nobody is listening). Returns the last result of next_event: 0 or a negative error. Aborts if
 * an error is not one of the documented fatal codes or if events never stop. */
int fuzz_drain(negio_conn *c);

/* fuzz_drain that also records, in *SEEN, bit (1u << type) of every event's type. */
int fuzz_drain_events(negio_conn *c, unsigned *seen);

/* Feeds DATA to C in two pieces (split in the middle), draining after each (fuzz_drain_events),
 * then the end of the stream, unless a piece already ended in an error. The end of the stream
 * must give an error, or end normally (next_event returns 0) only once an event of NORMAL_END
 * (bits 1u << type; 0: none, the end must be an error) has been seen; aborts otherwise. Returns
 * the events seen (bit 1u << type). */
unsigned fuzz_feed_in_two(negio_conn *c, const uint8_t *data, size_t size, unsigned normal_end);

/* A configuration that must exist: aborts if creating it fails. */
negio_config *fuzz_must(negio_config *cfg);

#endif
