# The benchmark harness of issue 6 (benches/).
#
#   make bench       every contender at full size (1M events; aggregates on a
#                    10M store, kept under target/bench-data/ so the next run
#                    reuses it); prints the table and rewrites BENCHMARKS.md
#   make test-bench  the same program as a smoke run with a tiny N: it fails
#                    when any contender errors or any answer disagrees with
#                    the data or a full scan, never on a timing
#
# Sizes: make bench BENCH_EVENTS=200000 BENCH_AGG_EVENTS=1000000

BENCH_EVENTS     ?= 1000000
BENCH_AGG_EVENTS ?= 10000000
COMPARE          := target/release/compare

TESTS += test-bench

.PHONY: bench bench-build test-bench

# Release mode even for the smoke run: a debug build of the harness takes
# minutes on the same data and would tempt a smaller, less useful N.
bench-build:
	cargo build --release -p ingest-benches

# The Python rows need a release build of the extension to mean anything.
bench: bench-build python-install-release
	INGEST_BENCH_COMMAND="make bench BENCH_EVENTS=$(BENCH_EVENTS) BENCH_AGG_EVENTS=$(BENCH_AGG_EVENTS)" \
	  $(COMPARE) --events $(BENCH_EVENTS) --aggregate-events $(BENCH_AGG_EVENTS) \
	  --require-python --out BENCHMARKS.md

test-bench: bench-build python-install
	$(COMPARE) --smoke --require-python --events 3000 --aggregate-events 50000 \
	  --agg-runs 50 --scan-runs 20
