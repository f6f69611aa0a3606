# The benchmark harness of issue 6 (benches/).
#
#   make bench       every contender at full size (1M events; aggregates on a
#                    10M store, kept under target/bench-data/ so the next run
#                    reuses it); prints the table and rewrites BENCHMARKS.md,
#                    then its prune section (make bench-prune)
#   make test-bench  the same program as a smoke run with a tiny N: it fails
#                    when any contender errors or any answer disagrees with
#                    the data or a full scan, never on a timing
#
# Sizes: make bench BENCH_EVENTS=200000 BENCH_AGG_EVENTS=1000000

BENCH_EVENTS     ?= 1000000
BENCH_AGG_EVENTS ?= 10000000
COMPARE          := target/release/compare
BENCH_VENV       := target/bench-data/venv
BENCH_WHEEL      := target/bench-data/wheel

TESTS += test-bench

.PHONY: bench bench-build bench-python test-bench

# Release mode even for the smoke run: a debug build of the harness takes
# minutes on the same data and would tempt a smaller, less useful N.
bench-build:
	cargo build --release -p ingest-benches

# The Python rows need a release build of the extension, in a venv of their
# own: the shared .venv flips between debug and release builds as other
# targets run, which would change what the rows measure mid-run.
bench-python: | $(VENV)/bin/maturin
	rm -rf $(BENCH_WHEEL)
	$(VENV)/bin/maturin build --release --quiet --manifest-path python/Cargo.toml --out $(BENCH_WHEEL)
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps --no-index $(BENCH_WHEEL)/*.whl
	touch $(BENCH_VENV)/.ingest-python-release

bench: bench-build bench-python
	INGEST_BENCH_COMMAND="make bench BENCH_EVENTS=$(BENCH_EVENTS) BENCH_AGG_EVENTS=$(BENCH_AGG_EVENTS)" \
	  $(COMPARE) --events $(BENCH_EVENTS) --aggregate-events $(BENCH_AGG_EVENTS) \
	  --require-python --require-postgres --python $(BENCH_VENV)/bin/python --out BENCHMARKS.md
	$(MAKE) bench-prune

test-bench: bench-build python-install
	$(COMPARE) --smoke --require-python --require-postgres --events 3000 --aggregate-events 50000 \
	  --agg-runs 50 --scan-runs 20

# The prune of a year of events (1M by default): time and space given back,
# SQLite and PostgreSQL; rewrites the prune section of BENCHMARKS.md (make
# bench keeps it, and runs this after its own run).
PRUNE_EVENTS ?= 1000000
.PHONY: bench-prune
bench-prune:
	cargo build --release -p ingest-benches --bin prune
	target/release/prune --events $(PRUNE_EVENTS) --postgres $${INGEST_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test} --out BENCHMARKS.md
