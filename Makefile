# Thin wrapper around CMake/CTest. The real build lives in CMakeLists.txt.
BUILD  ?= build
ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang-14
COV_BUILD := build-cov
COV_CC ?= clang-14
# make fuzz: each fuzz target this long; make check: this long (docs/FUZZING.md says why 30 s)
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 30
# make soak: its three segments last this long in all, after a warm-up (a sixth of it, >= 30 s)
SOAK_SECONDS ?= 180
PREFIX ?= /usr/local

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# Targets here run one after another (check: plain run first, then sanitizers);
# parallelism happens inside cmake --build / ctest.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# LeakSanitizer with the fast unwinder: tests/lsan.supp plus tests/lsan-fast-unwind.supp (made
# into one file by check-asan); test_tls sets its own, stricter, options (tests/CMakeLists.txt)
ASAN_ENV += LSAN_OPTIONS=suppressions=$(CURDIR)/$(ASAN_BUILD)/lsan.supp

# $(call ctest_count,LOG): print the number of passed tests found in a ctest log,
# fail if the log is missing or reports failures.
define ctest_count
test -f $(1) || { echo "missing $(1)" >&2; exit 1; }; \
line=$$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' $(1) | tail -n1 || true); \
if [ -z "$$line" ]; then echo 0; \
else failed=$$(echo "$$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/'); \
     total=$$(echo "$$line" | sed -E 's/.* failed out of ([0-9]+).*/\1/'); \
     [ "$$failed" -eq 0 ] || { echo "$(1): $$failed tests failed" >&2; exit 1; }; \
     echo $$((total - failed)); fi
endef

# $(call results_count,DIR): print the number of checks scripts/valgrind.sh or scripts/fuzz.sh
# recorded as passed in DIR/results.txt and DIR/results-self-test.txt (one "NAME ok" or
# "NAME FAILED" line per check); fail if a file is missing or empty or a line is not "ok".
define results_count
for f in $(1)/results.txt $(1)/results-self-test.txt; do \
  test -s $$f || { echo "missing or empty $$f" >&2; exit 1; }; done; \
bad=$$(grep -hv ' ok$$' $(1)/results.txt $(1)/results-self-test.txt || true); \
[ -z "$$bad" ] || { echo "$(1): not ok: $$bad" >&2; exit 1; }; \
cat $(1)/results.txt $(1)/results-self-test.txt | wc -l
endef

.PHONY: all deps configure check check-plain check-asan check-tsan check-valgrind check-fuzz \
        check-abi abi-baseline format-check fuzz fuzz-build coverage soak bench bench-plot demo install clean format

all: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j2

deps:
	@bash scripts/deps.sh

# Everything, one pass after the other: plain, ASan+UBSan, TSan (engine), valgrind (conformance
# and engine), each fuzz target for FUZZ_CHECK_SECONDS, then the ABI check. The last line sums
# every passed ctest test and every check the valgrind, fuzz and ABI scripts recorded (their
# self-tests included).
check: format-check check-plain check-asan check-tsan check-valgrind check-fuzz check-abi
	@p0=$$($(call results_count,$(BUILD)/format)); \
	p1=$$($(call ctest_count,$(BUILD)/ctest.log)); \
	p2=$$($(call ctest_count,$(ASAN_BUILD)/ctest.log)); \
	p3=$$($(call ctest_count,$(TSAN_BUILD)/ctest.log)); \
	p4=$$($(call results_count,$(BUILD)/valgrind)); \
	p5=$$($(call results_count,$(FUZZ_BUILD)/fuzz)); \
	p6=$$($(call results_count,$(BUILD)/abi)); \
	echo "$$((p0 + p1 + p2 + p3 + p4 + p5 + p6)) passed, 0 failed"

check-plain: all
	@rm -f $(BUILD)/ctest.log
	cd $(BUILD) && ctest --output-on-failure -j2 2>&1 | tee ctest.log

check-asan: deps
	@rm -f $(ASAN_BUILD)/ctest.log
	@test -f $(ASAN_BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(ASAN_BUILD) -DNEGIO_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j2
	cat tests/lsan.supp tests/lsan-fast-unwind.supp > $(ASAN_BUILD)/lsan.supp
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j2 2>&1 | tee ctest.log

# The engine's tests again under ThreadSanitizer (fewer connections: TSan is slow).
check-tsan: deps
	@rm -f $(TSAN_BUILD)/ctest.log
	@test -f $(TSAN_BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(TSAN_BUILD) -DNEGIO_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(TSAN_BUILD) -j2
	cd $(TSAN_BUILD) && \
	  TSAN_OPTIONS=halt_on_error=1:suppressions=$(CURDIR)/tests/tsan.supp NEGIO_TEST_CONNECTIONS=300 \
	  ctest -L engine --output-on-failure -j1 2>&1 | tee ctest.log

# The conformance and engine tests of the plain build under valgrind (memcheck, leaks of every
# kind, file descriptors), after proving that this configuration reports a leak.
check-valgrind: all
	bash scripts/valgrind.sh --self-test $(BUILD)
	bash scripts/valgrind.sh $(BUILD)

# The ABI check (docs/ARCHITECTURE.md section 17.7): the plain build's libnegio.so and
# libnegio_uv.so against the baseline in abi/ (abidiff, abigail-tools), after proving that the
# comparison catches a moved struct member and a removed function. Needs the debug information
# of the default RelWithDebInfo build.
check-abi: all
	bash scripts/abi.sh --self-test $(BUILD)
	bash scripts/abi.sh $(BUILD)

# Rewrites the baseline from the plain build, on purpose: when a release changes the ABI (every
# new 0.x minor, whose SONAME changes too) or adds to it (a function, a field appended to a
# growable struct). Review `git diff abi/` and commit it with the change.
abi-baseline: all
	bash scripts/abi.sh --baseline $(BUILD)

# libFuzzer targets (tests/fuzz, docs/FUZZING.md) in their own clang build.
fuzz-build: deps
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || \
	  CC=$(FUZZ_CC) cmake -S . -B $(FUZZ_BUILD) -DNEGIO_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_BUILD) -j2

fuzz: fuzz-build
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

check-fuzz: fuzz-build
	bash scripts/fuzz.sh --self-test $(FUZZ_BUILD)
	bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_CHECK_SECONDS)

# Not part of make check. Line and branch coverage of src/ per file (llvm-cov), twice: the test
# suite (every ctest test, each process writing its own profile), and the fuzz corpora replayed
# through the fuzz targets built with coverage and tests/fuzz/replay.c instead of libFuzzer
# (tests/fuzz/corpus, and what make fuzz found in build-fuzz/fuzz/corpus). Its own clang build,
# build-cov; tables in build-cov/coverage/summary.txt, suite.txt, fuzz.txt, the lines of
# src/base, src/wire, src/conn and src/gss no fuzz input reaches in fuzz-unreached.txt (and no
# test in suite-unreached.txt), HTML in html-suite/ and html-fuzz/ (scripts/coverage.sh,
# docs/FUZZING.md section 5). COVERAGE_PARTS=fuzz skips the suite.
coverage: deps
	@test -f $(COV_BUILD)/CMakeCache.txt || \
	  CC=$(COV_CC) cmake -S . -B $(COV_BUILD) -DNEGIO_COVERAGE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(COV_BUILD) -j2
	FUZZ_BUILD=$(CURDIR)/$(FUZZ_BUILD) bash scripts/coverage.sh $(COV_BUILD)

# Not part of make check. The soak run (tests/soak/soak.c, docs/SECURITY.md "The soak run"): the
# ASan build's negio server against thousands of connections over the four mechanism paths, some
# clients killed mid-handshake or mid-message (sockets reset or closed, client processes killed),
# its RSS and descriptors sampled; then a graceful stop and LeakSanitizer (the suppressions of
# check-asan). A few minutes: SOAK_SECONDS (180) after the warm-up; SOAK_SECONDS=20 for a smoke
# run. Report in build-asan/soak.log, the server's output and the samples in build-asan/soak/.
soak: deps
	@test -f $(ASAN_BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(ASAN_BUILD) -DNEGIO_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j2 --target negio_cli soak soak_heap_probe
	cat tests/lsan.supp tests/lsan-fast-unwind.supp > $(ASAN_BUILD)/lsan.supp
	$(ASAN_ENV) NEGIO_BIN=$(CURDIR)/$(ASAN_BUILD)/negio \
	  SOAK_HEAP_PROBE=$(CURDIR)/$(ASAN_BUILD)/tests/libsoak_heap_probe.so \
	  NEGIO_TEST_REALM_SCRIPT=$(CURDIR)/scripts/realm.sh SOAK_SECONDS=$(SOAK_SECONDS) \
	  SOAK_OUT=$(CURDIR)/$(ASAN_BUILD)/soak $(ASAN_BUILD)/tests/soak 2>&1 | tee $(ASAN_BUILD)/soak.log

# negio bench (docs/PERFORMANCE.md): quick mode by default, under a minute; BENCH_ARGS=--full
# for the documented run. Starts and removes a throwaway realm unless one is in the environment.
BENCH_ARGS ?= --quick
bench: all
	$(BUILD)/negio bench $(BENCH_ARGS)

# The run behind docs/PERFORMANCE.md (full mode, a few minutes): its table, JSON and CSV in
# $(BUILD)/bench/, and the throughput plot docs/performance-throughput.png (gnuplot-nox).
BENCH_PLOT_ARGS ?= --full
bench-plot: all
	@mkdir -p $(BUILD)/bench
	$(BUILD)/negio bench $(BENCH_PLOT_ARGS) --csv=$(BUILD)/bench/bench.csv \
	  --json=$(BUILD)/bench/bench.json | tee $(BUILD)/bench/bench.txt
	gnuplot -e "csv='$(BUILD)/bench/bench.csv'; png='docs/performance-throughput.png'" \
	  scripts/bench-plot.gp

demo: all
	@if [ -f scripts/demo.sh ]; then BUILD=$(BUILD) bash scripts/demo.sh; \
	else echo "demo: not built yet"; exit 1; fi

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(sort build build-asan build-tsan build-fuzz build-cov $(BUILD))

# The house style: format-check (in check) fails on any C file clang-format would rewrite, after
# proving it fails on one written against the style; format rewrites them.
format-check:
	bash scripts/format-check.sh $(BUILD)

format:
	@files=$$(find src include tests tools examples -type f \( -name '*.c' -o -name '*.h' \) \
	          -not -path '*/corpus/*' 2>/dev/null || true); \
	if [ -n "$$files" ]; then clang-format -i $$files; fi
