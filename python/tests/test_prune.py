"""The acceptance window and pruning from Python: ``max_age`` and
``max_future`` in the rules, ``Ingestor.prune``, and ``python -m ingest prune``."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ingest
from ingest.types import Group

DAY = timedelta(days=1)


def _events(now: datetime, days: int = 120) -> list[dict[str, object]]:
    return [
        {
            "client_id": f"c{i % 3}",
            "metric": "sales",
            "amount": i % 7,
            "timestamp": (now - days * DAY + i * timedelta(hours=7)).isoformat(),
        }
        for i in range(days * 24 // 7)
    ]


def _whole_days(ing: ingest.Ingestor) -> list[Group]:
    return ing.aggregate(group_by=["day", "client_id"]).get("groups", [])


def test_the_window_rejects_with_its_reasons(ing: ingest.Ingestor, db_path: Path) -> None:
    windowed = ingest.Ingestor(db_path, rules={"max_age": "30d", "max_future": 300})
    now = datetime.now(timezone.utc)
    old = windowed.submit({"client_id": "a", "amount": 1, "timestamp": (now - 31 * DAY).isoformat()})
    ahead = windowed.submit({"client_id": "a", "amount": 1, "timestamp": (now + DAY).isoformat()})
    assert old.status == ahead.status == "rejected"
    assert [r["code"] for r in old.reasons] == ["too_old"]
    assert [r["code"] for r in ahead.reasons] == ["in_future"]
    assert windowed.rules["max_age"] == "30d" and windowed.rules["max_future"] == "5m"
    with pytest.raises(ingest.RulesError, match="max_age"):
        ingest.Ingestor(db_path, rules={"max_age": "a month"})


def test_prune_archives_keeps_totals_and_counts_no_retry_twice(db_path: Path, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    events = _events(now)
    with ingest.Ingestor(db_path) as writer:
        writer.submit_batch(events)
        before_totals = _whole_days(writer)
    ing = ingest.Ingestor(db_path, rules={"max_age": "60d"})
    horizon = (now - 61 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    archive = tmp_path / "old.ndjson.gz"
    report = ing.prune(before=horizon, archive=archive)
    gone = [e for e in events if datetime.fromisoformat(str(e["timestamp"])) < horizon]
    assert report["events"] == len(gone) > 0
    assert report["archive"] == str(archive.resolve())
    with gzip.open(archive, "rt", encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == len(gone) and all(line["kind"] == "event" for line in lines)
    assert _whole_days(ing) == before_totals
    # Sent again, under the rules with the window and without one.
    for rules in ({"max_age": "60d"}, None):
        with ingest.Ingestor(db_path, rules=rules) as again:
            outcomes = again.submit_batch(events)
            assert sum(o.status == "accepted" for o in outcomes) == 0
            assert _whole_days(again) == before_totals
    ing.close()


def test_prune_refuses_clearly(ing: ingest.Ingestor, db_path: Path) -> None:
    with pytest.raises(ingest.InvalidArgument, match="max_age"):
        ing.prune(before="2000-01-01")
    windowed = ingest.Ingestor(db_path, rules={"max_age": "30d"})
    with pytest.raises(ingest.InvalidArgument, match="inside the acceptance window"):
        windowed.prune(before=datetime.now(timezone.utc) - 29 * DAY)
    with pytest.raises(ingest.InvalidArgument, match="before"):
        windowed.prune(before="yesterday-ish")
    with pytest.raises(TypeError):
        windowed.prune("2000-01-01")  # type: ignore[call-arg]


def test_the_command_line_prunes(db_path: Path, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    with ingest.Ingestor(db_path) as writer:
        writer.submit_batch(_events(now))
    archive = tmp_path / "old.ndjson"
    run = [sys.executable, "-m", "ingest", "prune", str(db_path), "--before", (now - 90 * DAY).isoformat()]
    refused = subprocess.run(run, capture_output=True, text=True)
    assert refused.returncode == 1 and "max_age" in refused.stderr
    done = subprocess.run(
        [*run, "--archive", str(archive), "--rules", '{"max_age": "60d"}'], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] == len(archive.read_text(encoding="utf-8").splitlines()) > 0
