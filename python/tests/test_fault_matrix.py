"""The fault matrix: every failure point x every call (submit, submit_batch,
aggregate), one fresh store per cell, checked against DESIGN.md's table.

Each store holds two sales events, a cached answer of the sales aggregate
(2 events, 1250), then one more sales event (5): a stale answer (2, 1250) is
told apart from the truth (3, 1255)."""

from __future__ import annotations

from typing import Any

import pytest

import ingest

from .conftest import sales

LATE = {"client": "late", "metric": "sales", "value": 5, "ts": "2024-01-09"}
# submit: one new event (sales 7 on 2024-02-01).
EVENT = {"client": "m", "metric": "sales", "value": 7, "ts": "2024-02-01"}
# submit_batch: that event, another (sales 3 on 2024-02-02), the first
# respelled (a duplicate inside the batch) and a rejected one.
BATCH: list[Any] = [
    EVENT,
    {"clientId": "m", "name": " Sales ", "amt": "3", "time": "2024-02-02T00:00:00Z"},
    {"source": "m", "payload": {"metric": "SALES", "value": "7.0", "timestamp": 1706745600000}},
    {"client": "m", "metric": "sales"},
]
# What each call adds when it is kept: sales events, their sum, dead letters.
ADDS = {"submit": (1, 7.0, 0), "submit_batch": (2, 10.0, 1), "aggregate": (0, 0.0, 0)}
FIRST = {"submit": ["accepted"], "submit_batch": ["accepted", "accepted", "duplicate", "rejected"]}
AGAIN = {"submit": ["duplicate"], "submit_batch": ["duplicate", "duplicate", "duplicate", "rejected"]}

# (point, call, whether the point strikes the call, what the same call answers again)
MATRIX = [
    ("before_insert", "submit", True, FIRST["submit"]),
    ("after_insert", "submit", True, FIRST["submit"]),
    ("after_commit", "submit", True, AGAIN["submit"]),
    ("aggregate", "submit", False, AGAIN["submit"]),
    ("before_insert", "submit_batch", True, FIRST["submit_batch"]),
    ("after_insert", "submit_batch", True, FIRST["submit_batch"]),
    ("after_commit", "submit_batch", True, AGAIN["submit_batch"]),
    ("aggregate", "submit_batch", False, AGAIN["submit_batch"]),
    ("before_insert", "aggregate", False, "fresh"),
    ("after_insert", "aggregate", False, "fresh"),
    ("after_commit", "aggregate", False, "fresh"),
    ("aggregate", "aggregate", True, "fresh"),
]


def write(ing: ingest.Ingestor, call: str) -> list[ingest.Outcome]:
    return [ing.submit(EVENT)] if call == "submit" else ing.submit_batch(BATCH)


def totals(ing: ingest.Ingestor) -> tuple[int, float, bool]:
    r = ing.aggregate(metric="sales")
    return r["count"], r["sum"], r["stale"]


def stored(ing: ingest.Ingestor) -> tuple[int, int]:
    s = ing.stats()
    return s["stored_events"], s["stored_rejected"]


def stored_id(ing: ingest.Ingestor, start: str, end: str) -> int:
    rows = ing.events(client_id="m", start=start, end=end)
    assert len(rows) == 1, rows
    return int(rows[0]["id"])


@pytest.mark.parametrize(("point", "call", "struck", "retry"), MATRIX, ids=[f"{p}-x-{c}" for p, c, _, _ in MATRIX])
def test_fault_matrix_cell(point: str, call: str, struck: bool, retry: Any) -> None:
    with ingest.Ingestor() as ing:
        ing.submit(sales(1200, client="clientA"))
        ing.submit(sales(50, "2024-01-03T10:00:00Z", client="clientD"))
        cached = ing.aggregate(metric="sales")
        assert (cached["count"], cached["sum"]) == (2, 1250.0)
        ing.submit(LATE)
        count, total, dead = ADDS[call]
        committed = not struck or point == "after_commit"
        if not committed:
            count, total, dead = 0, 0.0, 0

        ing.simulate_failure(point)  # type: ignore[arg-type]
        if call != "aggregate":
            if struck:
                with pytest.raises(ingest.InjectedFailure) as info:
                    write(ing, call)
                assert (info.value.kind, info.value.point) == ("injected", point)
                assert ing.stats()["failed"] == 1
                # Nothing partial: all of the call (after_commit) or none of it.
                assert totals(ing) == (3 + count, 1255.0 + total, False)
            else:
                assert [o.status for o in write(ing, call)] == FIRST[call]
                # The aggregate failure still waits for an aggregate: the cached answer.
                assert ing.armed_failure() == ("aggregate", 1)
                stale = ing.aggregate(metric="sales")
                assert (stale["count"], stale["sum"], stale["stale"]) == (2, 1250.0, True)
                assert stale["computed_at"] == cached["computed_at"]
            assert stored(ing) == (3 + count, dead)

            # The same call again: accepted or duplicate, with the stored event's id.
            outcomes = write(ing, call)
            assert [o.status for o in outcomes] == retry
            first = stored_id(ing, "2024-02-01", "2024-02-02")
            if call == "submit":
                assert [o.id for o in outcomes] == [first]
            else:
                second = stored_id(ing, "2024-02-02", "2024-02-03")
                assert [o.id for o in outcomes] == [first, second, first, None]
            count, total, dead = ADDS[call]
        elif struck:
            # The cached answer, marked stale; a query never answered: an error.
            stale = ing.aggregate(metric="sales")
            assert (stale["count"], stale["sum"], stale["stale"]) == (2, 1250.0, True)
            assert stale["computed_at"] == cached["computed_at"]
            ing.simulate_failure(point)  # type: ignore[arg-type]
            with pytest.raises(ingest.InjectedFailure) as info:
                ing.aggregate(client_id="m")
            assert info.value.point == point
        else:
            # A write failure does not strike a read, and still waits for a write.
            assert totals(ing) == (3, 1255.0, False)
            assert ing.armed_failure() == (point, 1)
            with pytest.raises(ingest.InjectedFailure):
                ing.submit(EVENT)
            if point == "after_commit":
                count, total = 1, 7.0
        assert ing.armed_failure() is None
        # The aggregate again, and the end state: exact totals.
        assert totals(ing) == (3 + count, 1255.0 + total, False)
        assert stored(ing) == (3 + count, dead)
