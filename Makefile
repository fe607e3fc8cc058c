# Thin wrapper around CMake/CTest. The real build lives in CMakeLists.txt.
BUILD  ?= build
ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang-14
# make fuzz: each fuzz target this long; make check: this long (docs/FUZZING.md says why 30 s)
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 30
PREFIX ?= /usr/local

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# Targets here run one after another (check: plain run first, then sanitizers);
# parallelism happens inside cmake --build / ctest.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ifneq ($(wildcard tests/lsan.supp),)
ASAN_ENV += LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp
endif

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

.PHONY: all deps configure check check-plain check-asan check-tsan check-valgrind check-fuzz \
        fuzz fuzz-build bench bench-plot demo install clean format

all: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j2

deps:
	@bash scripts/deps.sh

# check-valgrind and check-fuzz are not part of check yet: they join it once a fresh-clone CI
# run with them has been timed (issue 7).
check: check-plain check-asan check-tsan
	@p1=$$($(call ctest_count,$(BUILD)/ctest.log)); \
	p2=$$($(call ctest_count,$(ASAN_BUILD)/ctest.log)); \
	p3=$$($(call ctest_count,$(TSAN_BUILD)/ctest.log)); \
	echo "$$((p1 + p2 + p3)) passed, 0 failed"

check-plain: all
	@rm -f $(BUILD)/ctest.log
	cd $(BUILD) && ctest --output-on-failure -j2 2>&1 | tee ctest.log

check-asan: deps
	@rm -f $(ASAN_BUILD)/ctest.log
	@test -f $(ASAN_BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(ASAN_BUILD) -DNEGIO_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j2
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j2 2>&1 | tee ctest.log

# The engine's tests again under ThreadSanitizer (fewer connections: TSan is slow).
check-tsan: deps
	@rm -f $(TSAN_BUILD)/ctest.log
	@test -f $(TSAN_BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(TSAN_BUILD) -DNEGIO_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(TSAN_BUILD) -j2
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 NEGIO_TEST_CONNECTIONS=300 \
	  ctest -L engine --output-on-failure -j1 2>&1 | tee ctest.log

# The conformance and engine tests of the plain build under valgrind (memcheck, leaks of every
# kind, file descriptors), after proving that this configuration reports a leak.
check-valgrind: all
	bash scripts/valgrind.sh --self-test $(BUILD)
	bash scripts/valgrind.sh $(BUILD)

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
	rm -rf $(sort build build-asan build-tsan build-fuzz $(BUILD))

format:
	@files=$$(find src include tests -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null || true; \
	          ls *.c *.h 2>/dev/null || true); \
	if [ -n "$$files" ]; then clang-format -i $$files; fi
