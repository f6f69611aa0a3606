"""Contender (h) of benches/: DuckDB beside ingest, from Python (issue 18).

Run by the `compare` program (benches/src/bin/compare.rs), which writes the
raw events and the same events already normalised as JSON lines, the
queries of each aggregate shape, and reads the JSON this prints. It times:

- writes: ``Ingestor.submit_batch`` of the raw dicts (durability
  "normal"), against DuckDB's ``INSERT OR IGNORE`` of the normalised rows
  into a table whose primary key is ingest's built-in dedup key, each batch
  its own transaction, at every batch size asked for;
- aggregates: ``Ingestor.aggregate`` on the store ``compare`` built,
  against the same question in SQL on a DuckDB file of the same events.

Every check fails the run (exit non-zero): both stores end with exactly the
distinct events, and every DuckDB answer equals ingest's (count, min and
max exact, sum to 1e-9 relative).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import ingest

# ingest's built-in dedup key is (client_id, metric, timestamp, amount),
# encoded timestamp first: the same key, in the same order.
SCHEMA = """
CREATE TABLE events (
    client_id  VARCHAR NOT NULL,
    metric     VARCHAR NOT NULL,
    ts         BIGINT NOT NULL,
    amount     DOUBLE NOT NULL,
    event_id   VARCHAR,
    attributes VARCHAR NOT NULL,
    PRIMARY KEY (ts, client_id, metric, amount)
)
"""
COLUMNS = (
    "{'client_id': 'VARCHAR', 'metric': 'VARCHAR', 'ts': 'BIGINT', 'amount': 'DOUBLE', "
    "'event_id': 'VARCHAR', 'attributes': 'VARCHAR'}"
)
FIELDS = ("client_id", "metric", "ts", "amount", "event_id", "attributes")
DAY_MS = 86_400_000


def fail(msg: str) -> None:
    sys.exit(f"duckdb_compare: {msg}")


def remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def read_lines(path: Path, n: int) -> list[Any]:
    out = []
    with path.open() as f:
        for line in f:
            if len(out) == n:
                break
            out.append(json.loads(line))
    if len(out) != n:
        fail(f"{path} holds {len(out)} lines, not {n}")
    return out


def ingest_writes(raws: list[Any], batch: int, unique: int, path: Path) -> float:
    remove_store(path)
    ing = ingest.Ingestor(path, durability="normal")
    counts = {"accepted": 0, "duplicate": 0}
    busy = 0.0
    for i in range(0, len(raws), batch):
        b = raws[i : i + batch]
        t = time.perf_counter()
        outcomes = ing.submit_batch(b)
        busy += time.perf_counter() - t
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
    stored = ing.stats()["stored_events"]
    ing.close()
    remove_store(path)
    want = {"accepted": unique, "duplicate": len(raws) - unique}
    if counts != want or stored != unique:
        fail(f"ingest submit_batch({batch}) answered {counts} and stored {stored}; expected {want}")
    return busy


def duckdb_writes(rows: list[tuple[Any, ...]], batch: int, unique: int, path: Path, scratch: Path) -> float:
    """INSERT OR IGNORE, one transaction per batch. The batch reaches DuckDB
    as a CSV file it reads itself: without pandas or pyarrow, this was the
    fastest hand-off measured (executemany, one INSERT of bound VALUES, a
    literal VALUES list and unnest of bound lists all ran slower), and
    writing the file is timed with the insert."""
    remove_store(path)
    con = duckdb.connect(str(path))
    con.execute(SCHEMA)
    sql = (
        f"INSERT OR IGNORE INTO events SELECT * FROM read_csv('{scratch}', header = false, "
        f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', columns = {COLUMNS})"
    )
    inserted = 0
    busy = 0.0
    for i in range(0, len(rows), batch):
        b = rows[i : i + batch]
        t = time.perf_counter()
        with scratch.open("w", newline="") as f:
            csv.writer(f).writerows(b)
        con.execute("BEGIN")
        (n,) = con.execute(sql).fetchone() or (0,)
        con.execute("COMMIT")
        busy += time.perf_counter() - t
        inserted += n
    (stored,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    con.close()
    remove_store(path)
    scratch.unlink(missing_ok=True)
    if inserted != unique or stored != unique:
        fail(f"DuckDB INSERT OR IGNORE ({batch}) inserted {inserted} and holds {stored}; expected {unique}")
    return busy


def load_store(rows_file: Path, path: Path, unique: int) -> float:
    """The aggregate store: every row in one INSERT OR IGNORE (its time is
    a figure of the report, not a contender), checked, then renamed into
    place so an interrupted load is never taken for a store."""
    building = Path(f"{path}.building-{os.getpid()}")
    remove_store(building)
    con = duckdb.connect(str(building))
    con.execute(SCHEMA)
    t = time.perf_counter()
    con.execute(
        f"INSERT OR IGNORE INTO events SELECT * FROM read_json('{rows_file}', "
        f"format = 'newline_delimited', columns = {COLUMNS})"
    )
    seconds = time.perf_counter() - t
    (stored,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    con.execute("CHECKPOINT")
    con.close()
    if stored != unique:
        remove_store(building)
        fail(f"the DuckDB aggregate store holds {stored} events, not {unique}")
    remove_store(path)
    building.rename(path)
    remove_store(building)
    return seconds


def duckdb_query(q: dict[str, Any]) -> tuple[str, list[Any]]:
    where = []
    args: list[Any] = []
    for col, key, op in (
        ("client_id", "client_id", "="),
        ("metric", "metric", "="),
        ("ts", "start", ">="),
        ("ts", "end", "<"),
    ):
        if q.get(key) is not None:
            where.append(f"{col} {op} ?")
            args.append(q[key])
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    stats = "count(*), sum(amount), min(amount), max(amount)"
    if q["by_day"]:
        day = f"ts - ((ts % {DAY_MS}) + {DAY_MS}) % {DAY_MS}"
        return f"SELECT {day} AS day, {stats} FROM events{cond} GROUP BY day ORDER BY day", args
    return f"SELECT {stats} FROM events{cond}", args


def ingest_kwargs(q: dict[str, Any]) -> dict[str, Any]:
    kw = {k: q[k] for k in ("client_id", "metric", "start", "end") if q.get(k) is not None}
    if q["by_day"]:
        kw["group_by"] = "day"
    return kw


Stats = tuple[int, float, Any, Any]


def ingest_answer(a: dict[str, Any], by_day: bool) -> list[tuple[int | None, Stats]]:
    def stats(t: dict[str, Any]) -> Stats:
        return (t["count"], t["sum"], t["min"], t["max"])

    if not by_day:
        return [(None, stats(a))]
    # fromisoformat reads "Z" only from Python 3.11; the package supports 3.10.
    return [
        (int(datetime.fromisoformat(g["bucket"].replace("Z", "+00:00")).timestamp() * 1000), stats(g))
        for g in a["groups"]
    ]


def duckdb_answer(rows: list[tuple[Any, ...]], by_day: bool) -> list[tuple[int | None, Stats]]:
    def stats(r: tuple[Any, ...]) -> Stats:
        return (r[0], r[1] or 0.0, r[2], r[3])

    if not by_day:
        return [(None, stats(rows[0]))]
    return [(r[0], stats(r[1:])) for r in rows]


def agree(a: list[tuple[int | None, Stats]], d: list[tuple[int | None, Stats]]) -> str | None:
    if len(a) != len(d):
        return f"{len(a)} groups, DuckDB has {len(d)}"
    for (ka, (n, s, lo, hi)), (kd, (dn, ds, dlo, dhi)) in zip(a, d):
        if ka != kd:
            return f"group {ka} where DuckDB has {kd}"
        if n != dn or lo != dlo or hi != dhi or abs(s - ds) > 1e-9 * max(abs(s), abs(ds), 1.0):
            return f"group {ka}: ingest {(n, s, lo, hi)}, DuckDB {(dn, ds, dlo, dhi)}"
    return None


def percentile(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return 0.0
    rank = max(1, min(len(sorted_ns), math.ceil(p / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1000.0


def timed(calls: list[Any]) -> tuple[list[Any], list[int]]:
    answers, times = [], []
    for call in calls:
        t = time.perf_counter_ns()
        answers.append(call())
        times.append(time.perf_counter_ns() - t)
    times.sort()
    return answers, times


def warm(path: Path) -> None:
    """Read a store file once, as the Rust rows' harness does
    (benches/src/aggregates.rs): both contenders then start from a warm page
    cache. DuckDB's load of the same events runs just before and can push
    ingest's file out of the cache; its first queries then read the disk."""
    with path.open("rb") as f:
        while f.read(1 << 20):
            pass


def aggregates(store: Path, duck: Path, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for path in (store, duck):
        warm(path)
    ing = ingest.Ingestor(store, durability="normal")
    con = duckdb.connect(str(duck), read_only=True)
    (stored,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    if stored != ing.stats()["stored_events"]:
        fail(f"{duck} holds {stored} events, ingest's store {ing.stats()['stored_events']}")
    out = []
    for shape in shapes:
        queries = shape["queries"]
        by_day = [q["by_day"] for q in queries]
        kwargs = [ingest_kwargs(q) for q in queries]
        sqls = [duckdb_query(q) for q in queries]
        # One untimed query each first: both start from a warm cache.
        ing.aggregate(**kwargs[0])
        con.execute(*sqls[0]).fetchall()
        answers, ing_ns = timed([lambda kw=kw: ing.aggregate(**kw) for kw in kwargs])
        rows, duck_ns = timed([lambda s=s: con.execute(*s).fetchall() for s in sqls])
        for i, (a, r) in enumerate(zip(answers, rows)):
            if a["stale"]:
                fail(f"{shape['label']}: a stale answer from ingest")
            why = agree(ingest_answer(a, by_day[i]), duckdb_answer(r, by_day[i]))
            if why:
                fail(f"{shape['label']}: DuckDB disagrees with ingest for {queries[i]}: {why}")
        out.append(
            {
                "label": shape["label"],
                "runs": len(queries),
                "ingest_median_us": percentile(ing_ns, 50),
                "ingest_p99_us": percentile(ing_ns, 99),
                "duckdb_median_us": percentile(duck_ns, 50),
                "duckdb_p99_us": percentile(duck_ns, 99),
            }
        )
    con.close()
    ing.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-file", type=Path, required=True, help="raw events, JSON lines")
    ap.add_argument("--rows-file", type=Path, required=True, help="the same events normalised, JSON lines")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--unique", type=int, required=True)
    ap.add_argument("--batch", type=int, action="append", default=[], help="none: aggregates only")
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True, help="ingest's aggregate store")
    ap.add_argument("--duckdb-store", type=Path, required=True, help="DuckDB's, loaded when --agg-rows")
    ap.add_argument("--agg-rows", type=Path, help="the aggregate store's events, normalised, JSON lines")
    ap.add_argument("--agg-unique", type=int, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    args = ap.parse_args()

    raws = read_lines(args.events_file, args.events)
    rows = [tuple(r[f] for f in FIELDS) for r in read_lines(args.rows_file, args.events)]
    writes = []
    for batch in args.batch:
        ing_s = ingest_writes(raws, batch, args.unique, args.dir / "duck-ingest.db")
        duck_s = duckdb_writes(rows, batch, args.unique, args.dir / "duck-writes.duckdb", args.dir / "duck-batch.csv")
        writes.append({"batch": batch, "events": args.events, "ingest_seconds": ing_s, "duckdb_seconds": duck_s})
    del raws, rows

    load = None
    if args.agg_rows is not None:
        load = load_store(args.agg_rows, args.duckdb_store, args.agg_unique)
    with args.queries.open() as f:
        shapes = json.load(f)
    json.dump(
        {
            "python": sys.version.split()[0],
            "duckdb": duckdb.__version__,
            "writes": writes,
            "load_seconds": load,
            "shapes": aggregates(args.store, args.duckdb_store, shapes),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
