# Fuzzing (issue 7): cargo-fuzz / libFuzzer on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz passes).
#
#   make test-fuzz   build every fuzz target, then a bounded, seeded smoke run
#                    of each (FUZZ_SMOKE_RUNS executions, at most
#                    FUZZ_SMOKE_SECONDS); fails on any crash; part of `make test`
#   make fuzz-long FUZZ_RUNS=10000000
#                    the long run: each target for FUZZ_RUNS executions,
#                    growing its corpus in <project>/fuzz/corpus/<target>/
#                    FUZZ_LONG_TARGETS="submit_json c_json" runs only those;
#                    FUZZ_FFI_SANITIZER=none runs c_json without ASan (about
#                    ten times faster; valgrind covers the ABI's memory in
#                    make test-c); FUZZ_JOBS=2 fuzzes with two processes
#   make fuzz-regressions
#                    replay the saved crash inputs once each
#
# Two fuzz projects, each its own cargo workspace with its own target dir:
#   core/fuzz  normalize, submit_json, fast_path, rules, hostile_batch (no sanitizer: safe Rust, the
#              harness's assertions are the oracle; twice the speed)
#   ffi/fuzz   c_json                         (AddressSanitizer in the long
#              run by default: raw pointers and strings freed across the
#              C ABI; FUZZ_FFI_SANITIZER=none for a long run without it)
# A crash leaves its input in <project>/fuzz/artifacts/<target>/; replay it
# with `cd core && RUSTC_BOOTSTRAP=1 ~/.cache/ingest-tools/bin/cargo-fuzz run
# <target> fuzz/artifacts/<target>/<file>`.

TESTS += test-fuzz

CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ         := $(TOOLS_DIR)/bin/cargo-fuzz
FUZZ_ENV           := RUSTC_BOOTSTRAP=1
FUZZ_CORE_FLAGS    := --sanitizer none
# The sanitizer of c_json's long run and of its regressions: address
# (the default) or none.
FUZZ_FFI_SANITIZER ?= address
# A sanitizer build gets its own target dir: it would otherwise replace the
# plain build (the smoke run's, or a long run without ASan going on beside).
FUZZ_FFI_FLAGS     := --sanitizer $(FUZZ_FFI_SANITIZER) \
	$(if $(filter-out none,$(FUZZ_FFI_SANITIZER)),--target-dir fuzz/target/$(FUZZ_FFI_SANITIZER))
# The smoke run in `make test` builds the C ABI target without ASan: memory
# safety across the ABI is what the C tests check under valgrind on every
# run, and an ASan build of SQLite alone took minutes of the test budget.
# The long run keeps ASan.
FUZZ_FFI_SMOKE_FLAGS := --sanitizer none
FUZZ_CORE_TARGETS  := normalize submit_json fast_path rules hostile_batch
FUZZ_FFI_TARGETS   := c_json

FUZZ_SMOKE_RUNS    ?= 20000
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_RUNS          ?= 10000000
# The targets the long run fuzzes, one after the other (default: all).
FUZZ_LONG_TARGETS  ?= $(FUZZ_CORE_TARGETS) $(FUZZ_FFI_TARGETS)
# -seed fixed: the smoke run is the same run every time, so it fails only
# when the code changes, never by luck.
FUZZ_SMOKE_ARGS := -seed=1 -runs=$(FUZZ_SMOKE_RUNS) -max_total_time=$(FUZZ_SMOKE_SECONDS) -timeout=30 -print_final_stats=1
# Fork mode with -ignore_crashes: a crash is saved and the run goes on, so
# one known crash does not end the long run; they are listed at the end.
# FUZZ_JOBS child processes fuzz at once (FUZZ_RUNS counts them all).
FUZZ_JOBS       ?= 1
FUZZ_LONG_ARGS  := -fork=$(FUZZ_JOBS) -ignore_crashes=1 -runs=$(FUZZ_RUNS) -timeout=30

.PHONY: test-fuzz fuzz-long fuzz-tool fuzz-seeds fuzz-build fuzz-regressions

# Installed into the build tree, only when that exact version is missing.
fuzz-tool:
	@if ! $(CARGO_FUZZ) --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)'; then \
		cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(TOOLS_DIR); \
	fi

# Seeds from the scenarios (the repository's tests/scenarios, and those of
# $(INGEST_SHARED)/scenarios when present), regenerated into the git-ignored
# <project>/fuzz/corpus/<target>-scenarios/; the committed hand-written seeds
# are in <project>/fuzz/seeds/<target>/. The corpus the long run grows,
# <project>/fuzz/corpus/<target>/, is not read by the smoke run, which
# therefore does the same executions on every machine (with the same
# shared folder).
fuzz-seeds:
	@python3 core/fuzz/seed-corpus.py tests/scenarios events core/fuzz/corpus/normalize-scenarios "$(INGEST_SHARED)/scenarios"
	@python3 core/fuzz/seed-corpus.py tests/scenarios submit core/fuzz/corpus/submit_json-scenarios "$(INGEST_SHARED)/scenarios"
	@python3 core/fuzz/seed-corpus.py tests/scenarios submit core/fuzz/corpus/fast_path-scenarios "$(INGEST_SHARED)/scenarios"
	@python3 core/fuzz/seed-corpus.py tests/scenarios c_json ffi/fuzz/corpus/c_json-scenarios "$(INGEST_SHARED)/scenarios"
	@mkdir -p core/fuzz/corpus/rules-scenarios core/fuzz/corpus/hostile_batch-scenarios $(addprefix core/fuzz/corpus/,$(FUZZ_CORE_TARGETS)) \
		$(addprefix ffi/fuzz/corpus/,$(FUZZ_FFI_TARGETS))

fuzz-build: fuzz-tool
	cd core && $(FUZZ_ENV) $(CARGO_FUZZ) build $(FUZZ_CORE_FLAGS)
	cd ffi && $(FUZZ_ENV) $(CARGO_FUZZ) build $(FUZZ_FFI_SMOKE_FLAGS)

# $(call fuzz-run,<project dir>,<flags>,<target>,<corpus dirs>,<libFuzzer args>,<log>)
# New inputs go to the first corpus dir; the output goes to the log, whose
# end is shown (its last 60 lines, with the stack, on a crash).
fuzz-run = ( cd $(1) && $(FUZZ_ENV) $(CARGO_FUZZ) run $(2) $(3) $(4) -- $(5) ) > $(6) 2>&1 \
	&& tail -n 5 $(6) \
	|| { tail -n 60 $(6); echo "fuzz: $(1) $(3) crashed; the input is in $(1)/fuzz/artifacts/$(3)/"; exit 1; }

test-fuzz: fuzz-build fuzz-seeds
	@set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	for t in $(FUZZ_CORE_TARGETS); do \
		echo "fuzz smoke: core $$t"; mkdir -p "$$scratch/$$t"; \
		$(call fuzz-run,core,$(FUZZ_CORE_FLAGS),$$t,"$$scratch/$$t" fuzz/corpus/$$t-scenarios fuzz/seeds/$$t,$(FUZZ_SMOKE_ARGS),"$$scratch/$$t.log"); \
	done; \
	for t in $(FUZZ_FFI_TARGETS); do \
		echo "fuzz smoke: ffi $$t"; mkdir -p "$$scratch/$$t"; \
		$(call fuzz-run,ffi,$(FUZZ_FFI_SMOKE_FLAGS),$$t,"$$scratch/$$t" fuzz/corpus/$$t-scenarios fuzz/seeds/$$t,$(FUZZ_SMOKE_ARGS),"$$scratch/$$t.log"); \
	done
	@echo "test-fuzz: every fuzz target ran its smoke run without a crash"

# Logs of the long run: core/fuzz/artifacts/<target>.long.log and
# ffi/fuzz/artifacts/<target>.long.<sanitizer>.log (so an ASan run and one
# without can go side by side); it fails at the end when any target saved a
# crash input.
fuzz-long: fuzz-build fuzz-seeds
	@set -e; mkdir -p core/fuzz/artifacts ffi/fuzz/artifacts; \
	stamp=$$(mktemp); trap 'rm -f "$$stamp"' EXIT; \
	for t in $(filter $(FUZZ_LONG_TARGETS),$(FUZZ_CORE_TARGETS)); do \
		echo "fuzz long: core $$t, $(FUZZ_RUNS) runs"; \
		$(call fuzz-run,core,$(FUZZ_CORE_FLAGS),$$t,fuzz/corpus/$$t fuzz/corpus/$$t-scenarios fuzz/seeds/$$t,$(FUZZ_LONG_ARGS),core/fuzz/artifacts/$$t.long.log); \
	done; \
	for t in $(filter $(FUZZ_LONG_TARGETS),$(FUZZ_FFI_TARGETS)); do \
		echo "fuzz long: ffi $$t ($(FUZZ_FFI_SANITIZER) sanitizer), $(FUZZ_RUNS) runs"; \
		$(call fuzz-run,ffi,$(FUZZ_FFI_FLAGS),$$t,fuzz/corpus/$$t fuzz/corpus/$$t-scenarios fuzz/seeds/$$t,$(FUZZ_LONG_ARGS),ffi/fuzz/artifacts/$$t.long.$(FUZZ_FFI_SANITIZER).log); \
	done; \
	crashes=$$(find core/fuzz/artifacts ffi/fuzz/artifacts -type f -newer "$$stamp" ! -name '*.log'); \
	if [ -n "$$crashes" ]; then echo "fuzz-long: crash inputs saved:"; echo "$$crashes"; exit 1; fi
	@echo "fuzz-long: $(strip $(FUZZ_LONG_TARGETS)) ran $(FUZZ_RUNS) executions each without a crash"

# Replay the saved crash inputs (core/tests/fuzz_regressions/<target>/, and
# ffi/tests/fuzz_regressions/<target>/ if any) once each through their
# target. Not in `make test` while any of them still fails: see the README
# in that folder for which ones do.
fuzz-regressions: fuzz-build
	@set -e; status=0; \
	for d in core/tests/fuzz_regressions/* ffi/tests/fuzz_regressions/*; do \
		[ -d "$$d" ] || continue; project=$${d%%/*}; t=$$(basename "$$d"); \
		flags='$(FUZZ_CORE_FLAGS)'; [ "$$project" = ffi ] && flags='$(FUZZ_FFI_FLAGS)'; \
		for f in "$$d"/*; do \
			[ "$$(basename "$$f")" = README.md ] && continue; \
			if ( cd $$project && $(FUZZ_ENV) $(CARGO_FUZZ) run $$flags $$t "$(CURDIR)/$$f" ) > /dev/null 2>&1; \
			then echo "ok     $$f"; else echo "FAILS  $$f"; status=1; fi; \
		done; \
	done; exit $$status
