# The Python package `ingest` (python/): built by maturin into $(VENV),
# tested with pytest (warnings are errors, xfail strict), mypy --strict on a
# typed usage file and the tests, mypy.stubtest on the stubs, and ruff.
#
#   make python-install          dev build installed into .venv (editable)
#   make python-install-release  release build installed into .venv (make demo)
#   make test-python             both of the above checks, on the release build
#
# make test builds the extension once, in release (PYTHON_TEST_INSTALL, set
# in the Makefile before the fragments that use it):
# the wheel test-dist builds is then the same cargo build, already done,
# and the server's tests run the build make serve runs.

TESTS += test-python

MATURIN := $(VENV)/bin/maturin
# What the compiled module is built from; a change to any rebuilds it.
PYTHON_EXT_SOURCES := $(shell find core/src python/src -name '*.rs') \
	core/Cargo.toml python/Cargo.toml python/pyproject.toml Cargo.toml Cargo.lock
PYTHON_DEV_STAMP := $(VENV)/.ingest-python-dev
PYTHON_RELEASE_STAMP := $(VENV)/.ingest-python-release
PYTHON_TOOLS_STAMP := $(VENV)/.ingest-python-tools

.PHONY: python-install python-install-release test-python

$(MATURIN): | $(PY)
	$(PIP) install --quiet 'maturin>=1.9,<2'

python-install: $(PYTHON_DEV_STAMP)

python-install-release: $(PYTHON_RELEASE_STAMP)

# One install at a time is live, so each build forgets the other's stamp.
$(PYTHON_DEV_STAMP): $(PYTHON_EXT_SOURCES) | $(MATURIN)
	VIRTUAL_ENV=$(abspath $(VENV)) $(MATURIN) develop --manifest-path python/Cargo.toml
	rm -f $(PYTHON_RELEASE_STAMP)
	touch $@

$(PYTHON_RELEASE_STAMP): $(PYTHON_EXT_SOURCES) | $(MATURIN)
	VIRTUAL_ENV=$(abspath $(VENV)) $(MATURIN) develop --release --manifest-path python/Cargo.toml
	rm -f $(PYTHON_DEV_STAMP)
	touch $@

# This file lists the tools: a change to it installs them again. psycopg:
# the PostgreSQL tests make and drop their schemas without going through ingest.
$(PYTHON_TOOLS_STAMP): mk/python.mk | $(PY)
	$(PIP) install --quiet pytest mypy ruff 'psycopg[binary]>=3.2,<4'
	touch $@

test-python: $(PYTHON_TEST_INSTALL) $(PYTHON_TOOLS_STAMP)
	cd python && $(abspath $(PY)) -m pytest -W error -o xfail_strict=true -p no:cacheprovider tests
	cd python && $(abspath $(PY)) -m mypy --strict tests/typed_usage.py
	cd python && $(abspath $(PY)) -m mypy --strict tests ingest
	$(PY) -m mypy.stubtest ingest._ingest
	cd python && $(abspath $(VENV))/bin/ruff check ingest tests
	cd python && $(abspath $(VENV))/bin/ruff format --check ingest tests
