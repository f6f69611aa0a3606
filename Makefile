# The two commands: `make demo` and `make test`. Each surface adds its own
# test target from mk/<surface>.mk, so `make test` grows with the project.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Every surface runs the repository's scenarios (tests/scenarios), and also
# those of $(INGEST_SHARED)/scenarios when that folder exists (the shared
# folder beside the checkout by default); see tests/scenarios/README.md.
INGEST_SHARED ?= $(abspath ../shared)
export INGEST_SHARED
# Said once when a test target runs, not an error: the repository's copy
# always runs.
ifneq ($(filter test test-%,$(MAKECMDGOALS)),)
ifeq ($(wildcard $(INGEST_SHARED)/scenarios/.),)
$(info note: no shared scenarios at $(INGEST_SHARED)/scenarios; running the repository's tests/scenarios only)
endif
endif

# Pinned build tools (cbindgen, cargo-fuzz) are installed once per machine,
# by version, and shared by every checkout and clone: a clean clone's
# `make test` does not build them again.
TOOLS_DIR ?= $(HOME)/.cache/ingest-tools
export TOOLS_DIR

# Test targets, in the order they run; fragments append to this.
TESTS := test-rust
# The build of the Python extension the tests use (mk/python.mk says why).
PYTHON_TEST_INSTALL := python-install-release

.PHONY: help test lint test-rust venv
help:
	@echo "make demo   run the example server and web UI on ./data.db (PORT, DB overridable)"
	@echo "make serve  the same app in production: gunicorn, WORKERS processes (HOST, PORT, DB, WORKERS);"
	@echo "            it requires API keys: DB=... .venv/bin/python examples/server/manage.py add-key CLIENT_ID"
	@echo "make test   run every test: Rust, lint, header check, C, Python, server, browser, installs,"
	@echo "            and a one-minute failover drill (make test-failover)"
	@echo "make drill-failover  the long failover drill: 10 failovers back and forth under load"
	@echo "            (DRILL_FAILOVERS, DRILL_SECONDS; DRILL_FLAGS=\"--durability normal\")"
	@echo "make install PREFIX=...   the C library, header, pkg-config and CMake files (make uninstall)"
	@echo "make dist   the Python wheel and sdist in dist/; make crate: the Rust package"

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(PY)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust: lint
	cargo test --workspace
	@d=$$(mktemp -d) && cargo run -q -p ingest-example -- "$$d/example.db" >/dev/null && cargo run -q -p ingest-example -- "$$d/example.db" | grep -q "stored events: 3" && rm -rf "$$d" && echo "examples/rust: ran twice on one file, nothing doubled"

include $(sort $(wildcard mk/*.mk))

test: $(TESTS)
	@echo "make test: every suite passed ($(TESTS))"
