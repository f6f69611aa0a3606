"""Exact totals (issue 15) from Python: every sum and avg is the exact sum of
the stored amounts rounded once, in every view (rollups, edge scans, both),
whatever the order, grouping or clients; amounts beyond ±1e289 are
rejected; hostile writers never fail honest ones. On SQLite and PostgreSQL.

The same cases as core/tests/integration/exact_totals.rs."""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import ingest
from ingest.types import Aggregate

# 2024-05-01T10:00:00Z, and the texts of the edges the views cut at.
HOUR_START = 1_714_557_600_000
HOUR = 3_600_000
MINUTE = 60_000
HOUR_TEXT = "2024-05-01T10:00:00.000Z"
HOUR_END_TEXT = "2024-05-01T11:00:00.000Z"
HOUR_LESS_1MS = "2024-05-01T10:59:59.999Z"
HOUR_FROM_1MS_BEFORE = "2024-05-01T09:59:59.999Z"
MAX_AMOUNT = 1e289


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[ingest.Ingestor]:
    path = str(db_path) if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with ingest.Ingestor(path) as ing:
        yield ing


def event(client: str, amount: object, ms: int) -> dict[str, Any]:
    return {"client": client, "metric": "sales", "value": amount, "ts": ms}


def exact_sum(amounts: Iterable[float]) -> Fraction:
    return sum((Fraction(a) for a in amounts), Fraction(0))


def exact(amounts: Iterable[float]) -> float:
    """The exact sum rounded once (a Fraction's float is correctly rounded,
    ties to even)."""
    return float(exact_sum(amounts))


def exact_avg(amounts: list[float]) -> float:
    return float(exact_sum(amounts) / len(amounts))


def views(ing: ingest.Ingestor) -> list[tuple[str, list[float]]]:
    """The sums of every view of the hour: whole (rollups), cut by a
    millisecond at either edge (scans), the day and all time, each also
    grouped by hour, day and month (a list of the groups' sums)."""
    ranges: list[tuple[str, dict[str, Any]]] = [
        ("whole hour", {"start": HOUR_TEXT, "end": HOUR_END_TEXT}),
        ("hour less its last ms", {"start": HOUR_TEXT, "end": HOUR_LESS_1MS}),
        ("hour from -1 ms", {"start": HOUR_FROM_1MS_BEFORE, "end": HOUR_END_TEXT}),
        ("the day", {"start": "2024-05-01", "end": "2024-05-02"}),
        ("all time", {}),
    ]
    out: list[tuple[str, list[float]]] = []
    for name, span in ranges:
        out.append((name, [ing.aggregate(metric="sales", **span)["sum"]]))
        for bucket in ("hour", "day", "month"):
            grouped = ing.aggregate(metric="sales", group_by=bucket, **span)
            out.append((f"{name} by {bucket}", [g["sum"] for g in grouped["groups"]]))
    return out


def test_one_client_cannot_erase_anothers_amounts(store: ingest.Ingestor) -> None:
    def t(i: int) -> int:
        return HOUR_START + MINUTE * i

    assert store.submit(event("evil", 1e16, t(1))).status == "accepted"
    for i in range(4):
        assert store.submit(event("honest", 1.0, t(2 + i))).status == "accepted"
    assert store.submit(event("evil", -1e16, t(10))).status == "accepted"
    for view, sums in views(store):
        assert sums == [4.0], view
    by_client = store.aggregate(metric="sales", start=HOUR_TEXT, end=HOUR_END_TEXT, group_by="client_id")
    assert [(g["client_id"], g["count"], g["sum"]) for g in by_client["groups"]] == [
        ("evil", 2, 0.0),
        ("honest", 4, 4.0),
    ]
    amounts = [1e16, 1.0, 1.0, 1.0, 1.0, -1e16]
    assert (by_client["count"], by_client["sum"], by_client["avg"]) == (6, 4.0, exact_avg(amounts))


def test_every_view_gives_the_exact_sum_rounded_once(store: ingest.Ingestor) -> None:
    def t(i: int) -> int:
        return HOUR_START + MINUTE * i

    tenths = store.submit_batch([event("a", 0.1, t(i)) for i in range(10)])
    assert [o.status for o in tenths] == ["accepted"] * 10
    total = store.aggregate(metric="sales", start=HOUR_TEXT, end=HOUR_END_TEXT)
    assert sum([0.1] * 10) != 1.0  # adding as it goes would not do
    assert (total["count"], total["sum"], total["avg"]) == (10, 1.0, 0.1)
    for view, sums in views(store):
        assert sums == [1.0], view

    batch = [event("b", 1e16, t(20)), *(event("c", 1.0, t(21 + i)) for i in range(4)), event("b", -1e16, t(30))]
    assert [o.status for o in store.submit_batch(batch)] == ["accepted"] * 6
    for view, sums in views(store):
        assert sums == [5.0], view
    amounts = [0.1] * 10 + [1e16, 1.0, 1.0, 1.0, 1.0, -1e16]
    total = store.aggregate(metric="sales")
    assert (total["count"], total["sum"], total["avg"]) == (16, 5.0, exact_avg(amounts))


def finite_and_valid_json(agg: Aggregate) -> None:
    text = json.dumps(agg, allow_nan=False)  # raises on inf or NaN
    assert json.loads(text) == agg
    for totals in [agg, *agg.get("groups", [])]:
        assert isinstance(totals["sum"], float) and math.isfinite(totals["sum"]), agg
        assert totals["avg"] is None or math.isfinite(totals["avg"]), agg


def test_no_amount_makes_a_total_infinite_or_fails_a_write(store: ingest.Ingestor) -> None:
    for big in [1e308, -1e308, sys.float_info.max, 1.0000001e289, "1e300"]:
        out = store.submit(event("evil", big, HOUR_START))
        assert out.status == "rejected", big
        assert [(r["code"], r["field"]) for r in out.reasons] == [("out_of_range", "amount")], big
    assert store.stats()["stored_events"] == 0
    empty = store.aggregate(metric="sales")
    assert (empty["count"], empty["sum"], empty["avg"]) == (0, 0.0, None)
    finite_and_valid_json(empty)

    # The largest amounts accepted, many times over: exact and finite.
    huge = [-MAX_AMOUNT if i % 3 == 2 else MAX_AMOUNT for i in range(50)]
    outs = store.submit_batch([event("evil", a, HOUR_START + i) for i, a in enumerate(huge)])
    assert [o.status for o in outs] == ["accepted"] * 50
    assert store.submit(event("honest", 0.5, HOUR_START + 100)).status == "accepted"
    want = exact([*huge, 0.5])
    assert math.isfinite(want) and want == 18 * MAX_AMOUNT
    for view, sums in views(store):
        assert sums == [want], view
    for group_by in (None, "hour", "client_id"):
        finite_and_valid_json(store.aggregate(metric="sales", group_by=group_by))
    assert store.aggregate(client_id="evil")["sum"] == exact(huge)


ROUNDS = 40
WRITERS = 6  # the first half hostile, the rest honest


def test_hostile_writers_never_fail_honest_ones(store: ingest.Ingestor) -> None:
    """Writers 0-2 send batches of the largest amounts, an amount out of
    range and one that is not a number (two of five rejected); writers 3-5
    send single events; all share one Ingestor. Every honest write is
    accepted, every hostile batch answers its outcomes, nothing raises, and
    the totals are exact."""
    results: dict[int, list[list[str]]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def work(w: int) -> None:
        mine: list[list[str]] = []
        try:
            barrier.wait()
            for r in range(ROUNDS):
                ms = HOUR_START + r * 1_000 + w
                if w < WRITERS // 2:
                    batch = [
                        event("evil", MAX_AMOUNT, ms),
                        event("evil", MAX_AMOUNT, ms + 10),
                        event("evil", 1e308, ms + 20),
                        event("evil", -MAX_AMOUNT, ms + 30),
                        event("evil", "-inf", ms),
                    ]
                    mine.append([o.status for o in store.submit_batch(batch)])
                else:
                    mine.append([store.submit(event(f"honest{w}", 0.1, ms)).status])
        except BaseException as e:  # collected and asserted below
            errors.append(e)
        results[w] = mine

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    hostile = ["accepted", "accepted", "rejected", "accepted", "rejected"]
    for w in range(WRITERS):
        want = hostile if w < WRITERS // 2 else ["accepted"]
        assert results[w] == [want] * ROUNDS, w

    by_client = store.aggregate(group_by="client_id")
    sums = {g["client_id"]: (g["count"], g["sum"]) for g in by_client["groups"]}
    evil = [MAX_AMOUNT, MAX_AMOUNT, -MAX_AMOUNT] * (WRITERS // 2 * ROUNDS)
    honest = [0.1] * ROUNDS
    assert sums == {
        "evil": (len(evil), exact(evil)),
        **{f"honest{w}": (ROUNDS, exact(honest)) for w in range(WRITERS // 2, WRITERS)},
    }
    assert (by_client["count"], by_client["sum"]) == (
        len(evil) + WRITERS // 2 * ROUNDS,
        exact(evil + honest * (WRITERS // 2)),
    )
    assert store.stats()["stored_rejected"] == 2 * (WRITERS // 2) * ROUNDS
