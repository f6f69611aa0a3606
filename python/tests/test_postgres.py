"""The PostgreSQL backend from Python: opened by URL, the same outcomes and
aggregates as SQLite, and ``copy_to`` / ``python -m ingest copy`` moving a
SQLite store into it.

The server and each test's schema come from the ``pg_url`` fixture
(conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ingest

from .conftest import sales


def test_a_url_opens_the_postgres_backend_with_the_same_answers(pg_url: str) -> None:
    with ingest.Ingestor(pg_url) as ing:
        first = ing.submit(sales())
        again = ing.submit({"client_id": "clientA", "metric": "Sales", "amount": "1200", "ts": "2024-01-01T00:00:00Z"})
        bad = ing.submit({"source": "clientC", "payload": {"metric": "views"}})
        assert (first.status, again.status, again.id) == ("accepted", "duplicate", first.id)
        assert {r["field"] for r in bad.reasons} == {"amount", "timestamp"}
        outcomes = ing.submit_batch([sales(1, "2024-01-02"), sales(1, "2024-01-02"), sales(2, "2024-01-03")])
        assert [o.status for o in outcomes] == ["accepted", "duplicate", "accepted"]
        total = ing.aggregate(metric="SALES")
        assert (total["count"], total["sum"]) == (3, 1203.0)
        days = ing.aggregate(metric="sales", group_by="day")
        assert [g["count"] for g in days["groups"]] == [1, 1, 1]
        assert ing.stats()["stored_rejected"] == 1
    # Reopened by another Ingestor (another process would see the same).
    with ingest.Ingestor(pg_url) as ing:
        assert ing.submit(sales()).status == "duplicate"


def test_failure_injection_works_the_same(pg_url: str) -> None:
    with ingest.Ingestor(pg_url) as ing:
        ing.simulate_failure("after_insert")
        with pytest.raises(ingest.InjectedFailure):
            ing.submit(sales())
        assert ing.stats()["stored_events"] == 0
        ing.simulate_failure("after_commit")
        with pytest.raises(ingest.InjectedFailure):
            ing.submit(sales())
        assert ing.submit(sales()).status == "duplicate"


def test_the_path_hides_a_password() -> None:
    # Opening fails (wrong password or no such user); the message and the
    # repr of an open store never show the password.
    with pytest.raises(ingest.IngestError) as err:
        ingest.Ingestor("postgres://nobody:hunter2@127.0.0.1:1/test", busy_timeout=0.5)
    assert "hunter2" not in str(err.value)


def test_copy_moves_a_sqlite_store_and_a_second_copy_adds_nothing(pg_url: str, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with ingest.Ingestor(db) as old:
        old.submit_batch([sales(i, f"2024-02-{1 + i:02d}", client=f"c{i % 3}") for i in range(20)])
        old.submit({"source": "x", "payload": {"metric": "views"}})
        want = old.aggregate(group_by="client")
    with ingest.Ingestor(db) as old, ingest.Ingestor(pg_url) as new:
        assert old.copy_to(new) == {"copied": 20, "already_there": 0, "rejected": 1, "now_accepted": 0, "pruned": 0}
        assert new.aggregate(group_by="client")["groups"] == want["groups"]

    # The command line does the same, and again adds nothing.
    out = subprocess.run(
        [sys.executable, "-m", "ingest", "copy", str(db), pg_url],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert (report["copied"], report["already_there"], report["target"]) == (0, 20, pg_url)
    with ingest.Ingestor(pg_url) as new:
        assert new.stats()["stored_events"] == 20
        assert new.stats()["stored_rejected"] == 1


def test_copy_from_a_missing_file_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    out = subprocess.run(
        [sys.executable, "-m", "ingest", "copy", str(missing), str(tmp_path / "new.db")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "does not exist" in out.stderr
    assert not missing.exists()
