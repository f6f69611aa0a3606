# The failover drill of issue 21 (tests/failover/): a PostgreSQL primary and
# a synchronous hot standby of the drill's own (tests/failover/cluster.py,
# from this machine's PostgreSQL binaries, on free loopback ports in a
# temporary folder), three `make serve` instances over them through a libpq
# multi-host URL, HAProxy in front; clients send and retry while the
# primary is SIGKILLed and the standby promoted.
#
#   make test-failover   part of `make test`: the library's own failover test
#                        (core/tests/integration/failover.rs), then a drill
#                        of FAILOVER_SECONDS with one failover
#   make drill-failover  the long drill: DRILL_FAILOVERS failovers back and
#                        forth in DRILL_SECONDS, the old primary rejoining as
#                        the standby (pg_rewind, else a fresh base backup)
#                        after each; DRILL_FLAGS="--durability normal" shows
#                        what `normal` loses
#
# PostgreSQL's server binaries and HAProxy come from Debian's packages,
# installed when missing and we are root; under CI=true a missing piece
# fails the run, elsewhere the drill says what it skipped.

FAILOVER_SECONDS ?= 40
DRILL_FAILOVERS  ?= 10
DRILL_SECONDS    ?= 300
DRILL_FLAGS      ?=

TESTS += test-failover

.PHONY: test-failover drill-failover

# .venv's stamps are named here: python.mk and server.mk, which define
# them, are read after this file.
test-failover: $(PYTHON_TEST_INSTALL) $(VENV)/.server-test-deps $(VENV)/.ingest-python-tools
	$(PY) -m ruff check tests/failover
	$(PY) -m ruff format --check tests/failover
	INGEST_TEST_FAILOVER=1 cargo test -q -p ingest-core --features postgres --test integration failover:: -- --nocapture
	$(PY) tests/failover/drill.py --seconds $(FAILOVER_SECONDS)

drill-failover: python-install-release $(VENV)/.server-test-deps
	$(PY) tests/failover/drill.py --seconds $(DRILL_SECONDS) --failovers $(DRILL_FAILOVERS) $(DRILL_FLAGS)
