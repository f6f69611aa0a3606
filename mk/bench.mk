# The benchmark harness of issue 6 (benches/).
#
#   make bench       every contender at full size (1M events; aggregates on a
#                    10M store, kept under target/bench-data/ so the next run
#                    reuses it); prints the table and rewrites BENCHMARKS.md,
#                    then its prune section (make bench-prune) and its
#                    HTTP section (make bench-http)
#   make test-bench  the same program as a smoke run with a tiny N: it fails
#                    when any contender errors or any answer disagrees with
#                    the data or a full scan, never on a timing
#
# DuckDB (contender (h), issue 18) runs from Python, from PyPI's wheel: the
# `duckdb` crate would compile DuckDB's C++ from source, many minutes of
# every clean build. Both venvs get it, pinned to a major version.
#
# Sizes: make bench BENCH_EVENTS=200000 BENCH_AGG_EVENTS=1000000

BENCH_EVENTS     ?= 1000000
BENCH_AGG_EVENTS ?= 10000000
COMPARE          := target/release/compare
BENCH_VENV       := target/bench-data/venv
BENCH_WHEEL      := target/bench-data/wheel

TESTS += test-bench

DUCKDB_PIN       := duckdb>=1.1,<2
BENCH_DUCKDB     := $(BENCH_VENV)/.duckdb
TEST_DUCKDB      := $(VENV)/.bench-duckdb

.PHONY: bench bench-build bench-python test-bench

# Release mode even for the smoke run: a debug build of the harness takes
# minutes on the same data and would tempt a smaller, less useful N.
bench-build:
	cargo build --release -p ingest-benches

# The Python rows need a release build of the extension, in a venv of their
# own: the shared .venv flips between debug and release builds as other
# targets run, which would change what the rows measure mid-run.
bench-python: $(BENCH_DUCKDB) | $(VENV)/bin/maturin
	rm -rf $(BENCH_WHEEL)
	$(VENV)/bin/maturin build --release --quiet --manifest-path python/Cargo.toml --out $(BENCH_WHEEL)
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps --no-index $(BENCH_WHEEL)/*.whl
	touch $(BENCH_VENV)/.ingest-python-release

$(BENCH_DUCKDB): mk/bench.mk
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet '$(DUCKDB_PIN)'
	touch $@

$(TEST_DUCKDB): mk/bench.mk | $(PY)
	$(PIP) install --quiet '$(DUCKDB_PIN)'
	touch $@

bench: bench-build bench-python
	INGEST_BENCH_COMMAND="make bench BENCH_EVENTS=$(BENCH_EVENTS) BENCH_AGG_EVENTS=$(BENCH_AGG_EVENTS)" \
	  $(COMPARE) --events $(BENCH_EVENTS) --aggregate-events $(BENCH_AGG_EVENTS) \
	  --require-python --require-postgres --python $(BENCH_VENV)/bin/python --out BENCHMARKS.md
	$(MAKE) bench-prune
	$(MAKE) bench-http

test-bench: bench-build $(PYTHON_TEST_INSTALL) $(TEST_DUCKDB) $(VENV)/.ingest-python-tools
	$(PY) -m ruff check benches/duckdb_compare.py
	$(PY) -m ruff format --check benches/duckdb_compare.py
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

# The HTTP benchmark of issue 20 (benches/http/bench.py): wrk against `make
# serve`'s own line, the serving stack's floor and the original design's
# Node.js server, beside the library's own submit_batch, in one run.
#
#   make bench-http       10 s per row after a 3 s warm-up, 8 connections;
#                         prints the table and rewrites the http section of
#                         BENCHMARKS.md (make bench keeps it)
#   make test-bench-http  the same program with runs of a second: it fails
#                         when any answer is not 2xx or a store does not hold
#                         what was sent, never on a timing; writes nothing
#
# Sizes: make bench-http HTTP_BENCH_FLAGS="--duration 30 --connections 16"
HTTP_BENCH_FLAGS ?=
HTTP_BENCH_DIR   := target/http-bench
# The original design's server with its node_modules (never committed).
ORIGINAL_DIR     := $(HTTP_BENCH_DIR)/original
ORIGINAL_STAMP   := $(ORIGINAL_DIR)/.npm-ci
BENCH_SERVER_DEPS := $(BENCH_VENV)/.server-deps

TESTS += test-bench-http

.PHONY: bench-http test-bench-http wrk node original-server

# Debian's wrk, installed when missing and we can (root with apt-get);
# otherwise fail and say what to install. Never skipped, under CI or not.
wrk:
	@if ! command -v wrk >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "wrk is missing: installing Debian's wrk with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 wrk; \
	fi; \
	if ! command -v wrk >/dev/null 2>&1; then \
	  echo "error: the HTTP benchmark needs wrk, and it could not be installed."; \
	  echo "  Install Debian's package as root:  apt-get update && apt-get install -y wrk"; \
	  exit 1; \
	fi

node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "error: the HTTP benchmark runs the original design on Node.js: install node and npm (Node 20)"; \
	  exit 1; }

# npm ci again only when the lock file changes: better-sqlite3 may build
# from source, which takes minutes.
$(ORIGINAL_STAMP): benches/http/original/package.json benches/http/original/package-lock.json | node
	rm -rf $(ORIGINAL_DIR)
	mkdir -p $(ORIGINAL_DIR)
	cp $^ $(ORIGINAL_DIR)/
	cd $(ORIGINAL_DIR) && npm ci --no-audit --no-fund
	touch $@

original-server: $(ORIGINAL_STAMP)
	cp benches/http/original/server.js $(ORIGINAL_DIR)/

# The server's requirements in the bench venv, beside bench-python's
# release build of the extension.
$(BENCH_SERVER_DEPS): examples/server/requirements.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r $<
	touch $@

bench-http: bench-python $(BENCH_SERVER_DEPS) wrk original-server
	$(BENCH_VENV)/bin/python benches/http/bench.py $(HTTP_BENCH_FLAGS) --out BENCHMARKS.md \
	  --command 'make bench-http$(if $(HTTP_BENCH_FLAGS), HTTP_BENCH_FLAGS="$(HTTP_BENCH_FLAGS)")'


# .venv's own build and server requirements (server.mk's stamp, named here
# because that file is read after this one), as make test has them anyway.
# The smoke run leaves the original design's server out (it says so): its
# npm ci builds better-sqlite3 from source, minutes of make test for a
# contender, not for what is tested.
test-bench-http: $(PYTHON_TEST_INSTALL) $(VENV)/.server-deps $(VENV)/.ingest-python-tools wrk
	$(PY) -m ruff check benches/http
	$(PY) -m ruff format --check benches/http
	$(PY) benches/http/bench.py --smoke
