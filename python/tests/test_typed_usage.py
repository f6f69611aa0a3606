"""Run the typed usage file, so what mypy checks is also what works."""

from __future__ import annotations

from pathlib import Path

from .typed_usage import use


def test_typed_usage_runs(tmp_path: Path) -> None:
    got = use(tmp_path / "typed.db")
    assert got["status"] == "accepted"
    assert got["batch"] == ["accepted", "rejected"]
    assert got["dry"] == "duplicate"
    assert (got["count"], got["groups"], got["stale"]) == (1, 1, True)
    assert got["events"] == 1 and got["rejected"] == 1
    assert got["report"] == {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 1}
    assert (got["raw_exact"], got["raw_bytes"], got["evicted"]) == (True, len('{"x":1}'), 0)
    assert (got["letter_client"], got["own_letters"], got["client_events"]) == (None, 0, 1)
    assert (got["durability"], got["kind"], got["closed"]) == ("normal", "invalid_argument", True)
