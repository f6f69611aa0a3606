"""Typed use of the public API, checked by ``mypy --strict`` (``make
test-python``) and run by ``test_typed_usage.py``, so the stubs are checked
against what the module really does."""

from __future__ import annotations

import pathlib
from datetime import date, datetime, timezone

import ingest
from ingest.types import (
    Aggregate,
    ClientStats,
    Event,
    OutcomeDict,
    Reason,
    RejectedEvent,
    ReprocessReport,
    Stats,
    Status,
    StoredEvent,
)


def use(path: pathlib.Path) -> dict[str, object]:
    with ingest.Ingestor(
        path,
        rules={"metric_case": "lower"},
        durability="normal",
        busy_timeout=2.0,
        max_dead_letters=100,
        max_dead_letter_bytes=4096,
    ) as ing:
        out: ingest.Outcome = ing.submit({"source": "clientA", "payload": {"value": 1, "ts": "2024-01-01"}})
        status: Status = out.status
        ident: int | None = out.id
        event: Event | None = out.event
        reasons: list[Reason] = out.reasons
        as_dict: OutcomeDict = out.to_dict()
        batch: list[ingest.Outcome] = ing.submit_batch(['{"client_id": "c", "amount": 2, "ts": 1}', {"x": 1}])
        dry: ingest.Outcome = ing.check('{"client_id": "c", "amount": 2, "ts": 1}')
        agg: Aggregate = ing.aggregate(
            client_id="clientA", start=date(2024, 1, 1), end=datetime(2025, 1, 1, tzinfo=timezone.utc), group_by="day"
        )
        count: int = agg["count"]
        avg: float | None = agg["avg"]
        groups = agg.get("groups", [])
        events: list[StoredEvent] = ing.events(metric="unknown", start="2024-01-01", limit=10, offset=0)
        rejected: list[RejectedEvent] = ing.rejected(limit=5)
        raw_exact: bool = rejected[0]["raw_exact"]
        raw_bytes: int = rejected[0]["raw_bytes"]
        letter_client: str | None = rejected[0]["client_id"]
        own_letters: list[RejectedEvent] = ing.rejected(limit=5, offset=0, as_client="clientA")
        client_stats: ClientStats = ing.stats(as_client="clientA")
        client_events: int = client_stats["stored_events"]
        report: ReprocessReport = ing.reprocess_rejected()
        stats: Stats = ing.stats()
        evicted: int = stats["evicted_rejected"]
        ing.simulate_failure("aggregate", times=1)
        stale: bool = ing.aggregate(
            client_id="clientA", start=date(2024, 1, 1), end=datetime(2025, 1, 1, tzinfo=timezone.utc), group_by="day"
        )["stale"]
        ing.clear_failure()
        version: int = ing.rules_version
        durability: str = ing.durability
        try:
            ing.submit("not json")
        except ingest.InvalidArgument as e:
            kind: str = e.kind
        except ingest.StorageError:
            raise
    closed: bool = ing.closed
    return {
        "status": status,
        "id": ident,
        "event": event,
        "reasons": reasons,
        "dict": as_dict,
        "batch": [o.status for o in batch],
        "dry": dry.status,
        "count": count,
        "avg": avg,
        "groups": len(groups),
        "events": len(events),
        "rejected": len(rejected),
        "raw_exact": raw_exact,
        "raw_bytes": raw_bytes,
        "letter_client": letter_client,
        "own_letters": len(own_letters),
        "client_events": client_events,
        "report": report,
        "stored": stats["stored_events"],
        "evicted": evicted,
        "stale": stale,
        "version": version,
        "durability": durability,
        "kind": kind,
        "closed": closed,
    }
