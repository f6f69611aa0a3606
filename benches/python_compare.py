"""Contender (e) of benches/: ingest from Python against pure Python.

Run by the `compare` program (benches/src/bin/compare.rs), which writes the
events as JSON lines and reads the JSON this prints. It times, with
durability "normal" everywhere:

- ``Ingestor.submit_batch`` of dicts, in batches;
- a pure-Python ``sqlite3`` implementation of the same rules (the small
  normaliser below, the dedup insert and the rollup upsert, one transaction
  per batch), on the same batches;
- ``Ingestor.submit`` of one dict at a time.

Both implementations are checked against the number of distinct events and
against each other's aggregates; any disagreement exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ingest

# The built-in rules of DESIGN.md, as the pure-Python contender applies them.
ALIASES = {
    "client_id": ("source", "client", "clientId", "client_id", "clientID"),
    "metric": ("metric", "name", "event", "type"),
    "amount": ("value", "amount", "amt", "val", "count", "qty"),
    "timestamp": ("timestamp", "ts", "time", "date", "datetime", "occurred_at"),
    "event_id": ("event_id", "eventId", "id", "idempotency_key"),
}
MAX_TEXT_LEN = 256
EPOCH_SECONDS_BELOW = 1e11
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NUMERIC = re.compile(r"[+-]?\d+(\.\d+)?")
AMOUNT_CHARS = set("0123456789+-.eE")


class Rejected(Exception):
    pass


def merged(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Rejected("not_an_object")
    payload = raw.get("payload")
    if payload is None:
        return raw
    if not isinstance(payload, dict):
        raise Rejected("not_an_object")
    fields = {k: v for k, v in raw.items() if k != "payload"}
    fields.update(payload)
    return fields


def found(fields: dict[str, Any], field: str) -> tuple[str | None, Any]:
    for name in ALIASES[field]:
        value = fields.get(name)
        if value is not None:
            return name, value
    return None, None


def text(value: Any) -> str:
    if isinstance(value, str):
        t = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        t = str(value)
    else:
        raise Rejected("bad_type")
    if not t:
        raise Rejected("bad_value")
    if len(t) > MAX_TEXT_LEN:
        raise Rejected("too_long")
    return t


def amount(value: Any) -> float:
    if isinstance(value, bool):
        raise Rejected("bad_type")
    if isinstance(value, (int, float)):
        a = float(value)
    elif isinstance(value, str):
        t = value.strip()
        if not t or not set(t) <= AMOUNT_CHARS or not any(c.isdigit() for c in t):
            raise Rejected("bad_value")
        try:
            a = float(t)
        except ValueError:
            raise Rejected("bad_value") from None
    else:
        raise Rejected("bad_type")
    if not math.isfinite(a):
        raise Rejected("bad_value")
    return 0.0 if a == 0.0 else a


def round_half_away(x: float) -> int:
    # Rust's f64::round, not Python's banker's rounding.
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def from_epoch(n: float) -> int:
    if not math.isfinite(n):
        raise Rejected("bad_timestamp")
    ms = round_half_away(n * 1000.0) if abs(n) < EPOCH_SECONDS_BELOW else round_half_away(n)
    if not MIN_MS <= ms <= MAX_MS:
        raise Rejected("out_of_range")
    return ms


# datetime.UTC is 3.11+; the package supports 3.10.
UTC = timezone.utc  # noqa: UP017
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise Rejected("bad_type")
    if isinstance(value, (int, float)):
        return from_epoch(float(value))
    if not isinstance(value, str):
        raise Rejected("bad_type")
    s = value.strip()
    if NUMERIC.fullmatch(s):
        return from_epoch(float(s))
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise Rejected("bad_timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    # Whole milliseconds, finer digits truncated, in integers (no float error).
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def normalize(raw: Any) -> dict[str, Any]:
    fields = merged(raw)
    used = set()
    out: dict[str, Any] = {}
    reasons = []
    for field, convert in (
        ("client_id", text),
        ("metric", text),
        ("amount", amount),
        ("timestamp", timestamp_ms),
        ("event_id", text),
    ):
        name, value = found(fields, field)
        if name is None:
            if field == "metric":
                out[field] = "unknown"
            elif field == "event_id":
                out[field] = None
            else:
                reasons.append("missing_field")
            continue
        used.add(name)
        try:
            out[field] = convert(value)
        except Rejected as r:
            reasons.append(str(r))
    if reasons:
        raise Rejected(",".join(reasons))
    out["metric"] = out["metric"].lower()
    out["attributes"] = {k: v for k, v in fields.items() if k not in used}
    return out


def month_floor(ms: int) -> int:
    d = datetime.fromtimestamp(ms // 1000, UTC)
    first = datetime(d.year, d.month, 1, tzinfo=UTC)
    return int(first.timestamp()) * 1000


SCHEMA = """
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    amount      REAL NOT NULL,
    event_id    TEXT,
    attributes  TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (ts, client_id, metric, amount)
);
CREATE TABLE rejected (
    id       INTEGER PRIMARY KEY,
    raw      TEXT NOT NULL UNIQUE,
    reasons  TEXT NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE rollups (
    level     INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    total     REAL NOT NULL,
    lo        REAL NOT NULL,
    hi        REAL NOT NULL,
    PRIMARY KEY (level, client_id, metric, bucket)
) WITHOUT ROWID;
"""


class PureStore:
    """The same rules and storage design as ingest, in plain Python."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA cache_size = -32768")
        self.conn.executescript(SCHEMA)

    def submit_batch(self, raws: list[Any]) -> list[str]:
        out = []
        rollups: dict[tuple[int, str, str, int], list[float]] = {}
        now = int(time.time() * 1000)
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for raw in raws:
                try:
                    e = normalize(raw)
                except Rejected as r:
                    c.execute(
                        "INSERT INTO rejected (raw, reasons, attempts) VALUES (?, ?, 1) "
                        "ON CONFLICT (raw) DO UPDATE SET attempts = attempts + 1",
                        (json.dumps(raw, sort_keys=True), str(r)),
                    )
                    out.append("rejected")
                    continue
                key = (e["timestamp"], e["client_id"], e["metric"], e["amount"])
                cur = c.execute(
                    "INSERT INTO events (client_id, metric, ts, amount, event_id, attributes, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        e["client_id"],
                        e["metric"],
                        e["timestamp"],
                        e["amount"],
                        e["event_id"],
                        json.dumps(e["attributes"]),
                        now,
                    ),
                )
                if cur.rowcount == 1:
                    out.append("accepted")
                    ms, a = e["timestamp"], e["amount"]
                    for level, bucket in (
                        (1, ms - ms % HOUR_MS),
                        (2, ms - ms % DAY_MS),
                        (3, month_floor(ms)),
                    ):
                        for client in (e["client_id"], ""):
                            s = rollups.get((level, client, e["metric"], bucket))
                            if s is None:
                                rollups[(level, client, e["metric"], bucket)] = [1, a, a, a]
                            else:
                                s[0] += 1
                                s[1] += a
                                s[2] = min(s[2], a)
                                s[3] = max(s[3], a)
                else:
                    # The id of the event already stored, as ingest answers.
                    c.execute(
                        "SELECT id FROM events WHERE ts = ? AND client_id = ? AND metric = ? AND amount = ?",
                        key,
                    ).fetchone()
                    out.append("duplicate")
            c.executemany(
                "INSERT INTO rollups (level, client_id, metric, bucket, n, total, lo, hi) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (level, client_id, metric, bucket) DO UPDATE SET "
                "n = n + excluded.n, total = total + excluded.total, "
                "lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
                [(*k, *v) for k, v in rollups.items()],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return out

    def totals(self, metric: str) -> tuple[int, float]:
        n, total = self.conn.execute(
            "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(total), 0) FROM rollups "
            "WHERE level = 3 AND client_id = '' AND metric = ?",
            (metric,),
        ).fetchone()
        return n, total


def tally(statuses: list[str]) -> dict[str, int]:
    out = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for s in statuses:
        out[s] += 1
    return out


def check(who: str, got: dict[str, int], events: int, unique: int) -> None:
    want = {"accepted": unique, "duplicate": events - unique, "rejected": 0}
    if got != want:
        sys.exit(f"python_compare: {who} answered {got} for {events} events; expected {want}")


def percentile(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return 0.0
    rank = max(1, min(len(sorted_ns), math.ceil(p / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-file", type=Path, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--batch-events", type=int, required=True)
    ap.add_argument("--batch-unique", type=int, required=True)
    ap.add_argument("--submit-events", type=int, required=True)
    ap.add_argument("--submit-unique", type=int, required=True)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()

    with args.events_file.open() as f:
        events = [json.loads(line) for line in f]
    batches = [events[i : i + args.batch] for i in range(0, args.batch_events, args.batch)]
    batches[-1] = batches[-1][: args.batch_events - args.batch * (len(batches) - 1)]

    for name in ("py-batch.db", "py-pure.db", "py-submit.db"):
        for suffix in ("", "-wal", "-shm"):
            (args.dir / (name + suffix)).unlink(missing_ok=True)

    ing = ingest.Ingestor(args.dir / "py-batch.db", durability="normal")
    statuses: list[str] = []
    busy = 0.0
    for b in batches:
        t = time.perf_counter()
        outcomes = ing.submit_batch(b)
        busy += time.perf_counter() - t
        statuses.extend(o.status for o in outcomes)
    check("ingest submit_batch", tally(statuses), args.batch_events, args.batch_unique)
    ingest_batch = {"events": args.batch_events, "seconds": busy}

    pure = PureStore(args.dir / "py-pure.db")
    statuses = []
    busy = 0.0
    for b in batches:
        t = time.perf_counter()
        statuses.extend(pure.submit_batch(b))
        busy += time.perf_counter() - t
    check("pure Python", tally(statuses), args.batch_events, args.batch_unique)
    pure_python = {"events": args.batch_events, "seconds": busy}

    # The pure-Python store must hold what ingest holds, or its speed means nothing.
    metrics = [m for (m,) in pure.conn.execute("SELECT DISTINCT metric FROM events ORDER BY metric")]
    for m in metrics:
        a = ing.aggregate(metric=m)
        n, total = pure.totals(m)
        if a["count"] != n or abs(a["sum"] - total) > 1e-9 * max(abs(total), 1.0):
            sys.exit(f"python_compare: {m}: ingest has {a['count']} / {a['sum']}, pure Python {n} / {total}")
    ing.close()

    ing = ingest.Ingestor(args.dir / "py-submit.db", durability="normal")
    statuses = []
    times: list[int] = []
    for raw in events[: args.submit_events]:
        t = time.perf_counter_ns()
        o = ing.submit(raw)
        times.append(time.perf_counter_ns() - t)
        statuses.append(o.status)
    ing.close()
    check("ingest submit", tally(statuses), args.submit_events, args.submit_unique)
    times.sort()
    ingest_submit = {
        "events": args.submit_events,
        "seconds": sum(times) / 1e9,
        "median_us": percentile(times, 50),
        "p99_us": percentile(times, 99),
    }

    for name in ("py-batch.db", "py-pure.db", "py-submit.db"):
        for suffix in ("", "-wal", "-shm"):
            (args.dir / (name + suffix)).unlink(missing_ok=True)

    json.dump(
        {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "ingest_batch": ingest_batch,
            "pure_python": pure_python,
            "ingest_submit": ingest_submit,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
