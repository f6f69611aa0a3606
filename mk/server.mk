# The example server and web UI (examples/server): `make demo`, and the
# server and browser tests that `make test` runs.

SERVER_DIR := examples/server
PORT       ?= 8000
DB         ?= data.db
# make serve only: the address it binds and its processes (make demo binds
# 127.0.0.1 and is one process).
HOST       ?= 127.0.0.1
WORKERS    ?= 2
# Debian's package; Playwright only drives it and never downloads a browser.
CHROMIUM   ?= /usr/bin/chromium
export CHROMIUM

# Stamps inside .venv: a new .venv (or a changed requirements file) reinstalls.
SERVER_DEPS      := $(VENV)/.server-deps
SERVER_TEST_DEPS := $(VENV)/.server-test-deps
SERVER_PYTEST    := $(PY) -m pytest -W error -p no:cacheprovider

TESTS += test-server test-browser

.PHONY: demo serve test-server test-browser chromium

$(SERVER_DEPS): $(SERVER_DIR)/requirements.txt | $(PY)
	$(PIP) install --quiet -r $<
	@touch $@

$(SERVER_TEST_DEPS): $(SERVER_DIR)/requirements-test.txt $(SERVER_DIR)/requirements.txt | $(PY)
	$(PIP) install --quiet -r $<
	@touch $@

demo: python-install-release $(SERVER_DEPS)
	@echo "ingest demo: http://127.0.0.1:$(PORT)/  (database: $(DB); Ctrl-C stops it)"
	PORT=$(PORT) DB=$(DB) $(PY) $(SERVER_DIR)/app.py

# The production server: gunicorn, WORKERS processes over one store. The
# tests run this recipe's own line (`make -n serve`), so what they start is
# what this starts.
serve: python-install-release $(SERVER_DEPS)
	HOST="$(HOST)" PORT="$(PORT)" DB="$(DB)" WORKERS="$(WORKERS)" $(PY) $(SERVER_DIR)/serve.py

test-server: $(PYTHON_TEST_INSTALL) $(SERVER_TEST_DEPS)
	$(PY) -m ruff check $(SERVER_DIR)
	$(PY) -m ruff format --check $(SERVER_DIR)
	bash -n $(SERVER_DIR)/curl_tests.sh
	$(SERVER_PYTEST) $(SERVER_DIR)/tests --ignore=$(SERVER_DIR)/tests/test_browser.py

test-browser: $(PYTHON_TEST_INSTALL) $(SERVER_TEST_DEPS) chromium
	$(SERVER_PYTEST) $(SERVER_DIR)/tests/test_browser.py
	@echo "screenshots: artifacts/browser/"

# Install Debian's chromium when it is missing and we can (root with
# apt-get); otherwise fail and say what to install. Never skipped.
chromium:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "$(CHROMIUM) is missing: installing Debian's chromium with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 chromium; \
	fi; \
	if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "error: the browser tests need Chromium at $(CHROMIUM), and it could not be installed."; \
	  echo "  Install Debian's package as root:  apt-get update && apt-get install -y chromium"; \
	  echo "  or point CHROMIUM at a Chromium binary:  make test CHROMIUM=/path/to/chromium"; \
	  exit 1; \
	fi
