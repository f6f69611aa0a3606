"""The HTTP benchmark of issue 20: `make bench-http` (and `make bench`), and
its smoke run `make test-bench-http`.

In one process run, one contender after the other, each on a free loopback
port, with wrk as the load generator (benches/http/post.lua; every event
distinct):

- ingest: `make serve`'s own command line (read with `make -n`, run with
  this interpreter) over a fresh SQLite file at the library's default
  durability, full; single-event POSTs, then POSTs of BATCH-event arrays;
- floor: a Flask endpoint that parses the JSON body and answers it, under
  the same gunicorn configuration, workers and threads (benches/http/floor.py);
- original: the original design's server, Node.js + Express + better-sqlite3
  with check-then-insert on SQLite's default journal (benches/http/original);
- submit_batch: the library's own `Ingestor.submit_batch` in this process on
  the same BATCH-event JSON texts, durability full: what an HTTP batch costs
  beyond the library.

Every wrk run is preceded by a warm-up run of its own events. After each,
the store is counted: it must hold at least the events of every 2xx answer
and at most those of every request written (a request cut off when wrk
stops may or may not have been stored); any non-2xx answer or socket error
fails the run, and so does a timed run in which the store gained nothing
(or, for the floor, nothing was answered). Timings never fail it. A
server's events/s is what its store gained while wrk ran: the original
design's batches can take longer than a run.

Prints a table and the issue's two target ratios; with --out, rewrites the
"http" section of that Markdown file (BENCHMARKS.md), which `make bench`
keeps when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import ingest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SERVER_DIR = REPO / "examples" / "server"
LUA = HERE / "post.lua"
sys.path.insert(0, str(SERVER_DIR))
from serve_line import serve_line  # noqa: E402

CLIENT = "bench"
STARTUP_SECONDS = 60
# The same markers as benches/src/report.rs, so `compare` finds the section.
SECTION = "http"
SINGLE_TARGET = 0.7
BATCH_TARGET = 0.3
# 2024-01-01T00:00:00Z, as post.lua.
BASE_MS = 1704067200000


class BenchError(Exception):
    pass


@dataclass
class Run:
    contender: str
    what: str
    batch: int  # 0: one event per request, as an object
    ok: int
    sent: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    stored: int | None  # events the store gained; None without a store
    # Events the store gained while wrk ran, read as it stopped: a server
    # whose batches take longer than the run is measured all the same.
    in_window: int | None

    @property
    def per_request(self) -> int:
        return max(self.batch, 1)

    @property
    def requests_per_sec(self) -> float:
        return self.ok / self.seconds

    @property
    def events_per_sec(self) -> float:
        if self.in_window is not None:
            return self.in_window / self.seconds
        return self.ok * self.per_request / self.seconds


def progress(msg: str) -> None:
    print(f"[bench-http {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_serve_line(*, port: int, db: Path, workers: int) -> str:
    """The shell line `make serve` runs, with this interpreter as PY: it
    holds the build of the extension the Makefile made for this run, and
    the server's requirements."""
    try:
        return serve_line(
            host="127.0.0.1", port=port, db=db, workers=workers, python=sys.executable
        )
    except (RuntimeError, ValueError) as e:
        raise BenchError(str(e)) from None


class Server:
    """A server process on 127.0.0.1:port, its output in a log file."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int, log: Path, cwd: Path
    ):
        self.name = name
        self.port = port
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"{name} did not start on port {port}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


@contextmanager
def running(*args: object, **kwargs: object) -> Iterator[Server]:
    server = Server(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@dataclass
class WrkResult:
    sent: int
    ok: int
    seconds: float
    p50_ms: float
    p99_ms: float


def wrk(
    args: argparse.Namespace,
    port: int,
    tag: str,
    batch: int,
    token: str,
    seconds: int,
    *,
    need_answers: bool,
) -> WrkResult:
    conns = args.connections
    command = [
        "wrk",
        "-t",
        str(min(args.wrk_threads, conns)),
        "-c",
        str(conns),
        "-d",
        f"{seconds}s",
        # A batch of the original design commits event by event: its answers
        # take seconds, and a timeout would count as an error.
        "--timeout",
        "120s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}/api/events",
        "--",
        tag,
        str(batch),
        token,
        CLIENT,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    lines = out.stdout.splitlines()
    found = [json.loads(line[len("WRK-JSON ") :]) for line in lines if line.startswith("WRK-JSON ")]
    bad = [line for line in lines if line.startswith("WRK-BAD ")]
    if out.returncode != 0 or len(found) != 1:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = found[0]
    errors = {k: r[k] for k in ("connect", "read", "write", "timeout", "status") if r[k]}
    if r["bad"] or errors or bad:
        raise BenchError(
            f"{tag}: {r['bad']} answers not 2xx, socket errors {errors}:\n"
            + "\n".join(bad)
            + f"\n{out.stdout}"
        )
    # The original design's batches can take longer than a run: only a run
    # without a store to count must have answers to show.
    if r["ok"] == 0 and need_answers:
        raise BenchError(f"{tag}: no request was answered in {seconds} s:\n{out.stdout}")
    return WrkResult(
        sent=r["sent"],
        ok=r["ok"],
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
    )


def settled(count: Callable[[], int]) -> int:
    """The store's count once requests still in flight when wrk stopped are
    done: unchanged for two seconds."""
    last, since = count(), time.monotonic()
    deadline = since + 600
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 2:
            return now
    raise BenchError("the store's count did not settle within 10 minutes")


def measure(
    args: argparse.Namespace,
    contender: str,
    port: int,
    token: str,
    count: Callable[[], int] | None,
    runs: list[Run],
) -> None:
    """A warm-up then a timed wrk run for single events, then the same for
    batches, each checked against the store's count."""
    for what, batch in (("single events", 0), (f"batches of {args.batch}", args.batch)):
        per = max(batch, 1)
        kind = "s" if batch == 0 else "b"
        # The tag is the metric's prefix: runs never share an event.
        for tag, seconds in (
            (f"{contender}-{kind}-warm", args.warmup),
            (f"{contender}-{kind}", args.duration),
        ):
            warm = tag.endswith("-warm")
            before = settled(count) if count else 0
            r = wrk(args, port, tag, batch, token, seconds, need_answers=not warm and not count)
            in_window = count() - before if count else None
            stored = settled(count) - before if count else None
            progress(
                f"{tag}: {r.ok} answered of {r.sent} written in {r.seconds:.1f} s"
                + (
                    ""
                    if stored is None
                    else f"; the store gained {stored} events, {in_window} of them during the run"
                )
            )
            if in_window == 0 and not warm:
                raise BenchError(f"{tag}: the store gained nothing in {seconds} s")
            if stored is not None and not r.ok * per <= stored <= r.sent * per:
                raise BenchError(
                    f"{tag}: the store gained {stored} events; the 2xx answers hold {r.ok * per} "
                    f"and the requests written {r.sent * per}"
                )
            if warm:
                continue
            runs.append(
                Run(
                    contender,
                    what,
                    batch,
                    r.ok,
                    r.sent,
                    r.seconds,
                    r.p50_ms,
                    r.p99_ms,
                    stored,
                    in_window,
                )
            )


def ingest_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        with ingest.Ingestor(str(db)) as ing:
            return int(ing.stats()["stored_events"])

    return count


def sqlite_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        if not db.exists():
            return 0
        conn = sqlite3.connect(db, timeout=60)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            conn.close()

    return count


def base_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # Each server run gets prometheus-client's directory of its own (serve.py
    # makes a temporary one when this is unset).
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({"PORT": str(port), "PYTHONUNBUFFERED": "1", "RATE_LIMIT": "0"})
    return env


def run_ingest(args: argparse.Namespace, work: Path, runs: list[Run]) -> None:
    db = work / "ingest.db"
    # The key, made before the server starts, as the README tells an operator.
    env = {**os.environ, "DB": str(db)}
    made = subprocess.run(
        [sys.executable, str(SERVER_DIR / "manage.py"), "add-key", CLIENT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip().splitlines()[-1]
    port = free_port()
    line = make_serve_line(port=port, db=db, workers=args.workers)
    progress(f"ingest: {line}")
    with running(
        "make serve", ["bash", "-c", line], base_env(port), port, work / "ingest.log", REPO
    ):
        measure(args, "ingest", port, token, ingest_count(db), runs)


def run_floor(args: argparse.Namespace, work: Path, runs: list[Run]) -> None:
    port = free_port()
    env = base_env(port)
    env.update(
        {"HOST": "127.0.0.1", "WORKERS": str(args.workers), "DB": str(work / "floor-unused.db")}
    )
    command = [sys.executable, str(HERE / "floor.py")]
    with running("the floor", command, env, port, work / "floor.log", REPO):
        measure(args, "floor", port, "unused", None, runs)


def run_original(args: argparse.Namespace, work: Path, runs: list[Run]) -> None:
    db = work / "original.db"
    port = free_port()
    env = base_env(port)
    env["DB"] = str(db)
    server_js = args.original_dir / "server.js"
    if not (args.original_dir / "node_modules").is_dir():
        raise BenchError(
            f"no node_modules in {args.original_dir}: run `npm ci` there (make bench-http does)"
        )
    with running(
        "the original design",
        ["node", str(server_js)],
        env,
        port,
        work / "original.log",
        args.original_dir,
    ):
        measure(args, "original", port, "unused", sqlite_count(db), runs)


def batch_text(tag: str, start: int, n: int) -> str:
    """N events of the shape post.lua sends, counter from start + 1."""
    items = (
        f'{{"source":"{CLIENT}","payload":{{"metric":"{tag}","value":{i},'
        f'"timestamp":{BASE_MS + i * 1000}}}}}'
        for i in range(start + 1, start + n + 1)
    )
    return "[" + ",".join(items) + "]"


def run_submit_batch(args: argparse.Namespace, work: Path, runs: list[Run]) -> None:
    """Only the calls are timed, not making the texts; the timed stretch ends
    when the calls add up to the wrk runs' duration."""
    db = work / "submit_batch.db"
    ing = ingest.Ingestor(str(db), durability="full")
    try:
        if ing.durability != "full":
            raise BenchError(f"submit_batch: durability {ing.durability}, not full")
        sent = 0
        for tag, seconds in (("submit-warm", args.warmup), ("submit", args.duration)):
            spent, calls, counter = 0.0, 0, 0
            while spent < seconds:
                text = batch_text(tag, counter, args.batch)
                counter += args.batch
                t = time.perf_counter()
                outcomes = ing.submit_batch(text)
                spent += time.perf_counter() - t
                calls += 1
                not_accepted = [o for o in outcomes if o.status != "accepted"]
                if len(outcomes) != args.batch or not_accepted:
                    raise BenchError(
                        f"submit_batch: {len(not_accepted)} of {len(outcomes)} not accepted"
                    )
            sent += calls * args.batch
            stored = int(ing.stats()["stored_events"])
            if stored != sent:
                raise BenchError(
                    f"submit_batch: the store holds {stored} events, {sent} were submitted"
                )
            progress(f"{tag}: {calls} batches in {spent:.1f} s of calls")
        runs.append(
            Run(
                "submit_batch",
                f"batches of {args.batch}",
                args.batch,
                calls,
                calls,
                spent,
                None,
                None,
                calls * args.batch,
                calls * args.batch,
            )
        )
    finally:
        ing.close()


def thousands(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def rate(x: float) -> str:
    """A rate: a decimal below 100, where a few answers make the figure."""
    return f"{x:.1f}" if x < 100 else thousands(x)


def find(runs: list[Run], contender: str, batch: int) -> Run | None:
    return next((r for r in runs if r.contender == contender and r.batch == batch), None)


def targets(runs: list[Run], batch: int) -> list[tuple[str, float, float]]:
    out = []
    app_s, floor_s = find(runs, "ingest", 0), find(runs, "floor", 0)
    if app_s and floor_s:
        out.append(
            (
                "ingest single events / floor single events (requests/s)",
                app_s.requests_per_sec / floor_s.requests_per_sec,
                SINGLE_TARGET,
            )
        )
    app_b, lib_b = find(runs, "ingest", batch), find(runs, "submit_batch", batch)
    if app_b and lib_b:
        out.append(
            (
                f"ingest batches of {batch} / in-process submit_batch (events/s)",
                app_b.events_per_sec / lib_b.events_per_sec,
                BATCH_TARGET,
            )
        )
    return out


CONTENDER_NAMES = {
    "ingest": "ingest, `make serve`",
    "floor": "floor: Flask parses and answers, same gunicorn",
    "original": "original design: Node.js, Express, SQLite check-then-insert",
    "submit_batch": "`Ingestor.submit_batch` in-process (no HTTP)",
}


def table(runs: list[Run], batch: int) -> str:
    rows = [
        "| contender | requests | answered | requests/s | events/s | latency p50 ms "
        "| latency p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lat = ("", "") if r.p50_ms is None else (f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}")
        rows.append(
            f"| {CONTENDER_NAMES[r.contender]} | {r.what} | {r.ok} | {rate(r.requests_per_sec)} | "
            f"{rate(r.events_per_sec)} | {lat[0]} | {lat[1]} |"
        )
    rows += ["", "| target | measured | goal | met |", "| --- | ---: | --- | --- |"]
    for what, value, goal in targets(runs, batch):
        rows.append(
            f"| {what} | {value:.2f}x | >= {goal}x | {'yes' if value >= goal else '**no**'} |"
        )
    return "\n".join(rows) + "\n"


def version(command: list[str]) -> str:
    """The first two words a tool says of its version (`wrk 4.1.0`, `v20.1.0`)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError:
        return "unknown"
    words = (out.stdout or out.stderr).split()
    return " ".join(words[:2]) or "unknown"


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = m.group(1).strip() if m else model
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        m = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)
        mem = f", {int(m.group(1)) / 1024 / 1024:.1f} GiB memory" if m else ""
    return f"{os.cpu_count()} x {model}{mem}, Linux {platform.release()}"


def section(args: argparse.Namespace, runs: list[Run], started: datetime) -> str:
    import gunicorn

    conns, threads = args.connections, min(args.wrk_threads, args.connections)
    node = version(["node", "--version"])
    lines = [
        "## Over HTTP (issue 20)",
        "",
        "Written by `benches/http/bench.py`; regenerate with `make bench-http` (part of "
        "`make bench`), do not edit by hand. One process run, the contenders one after the "
        "other on loopback.",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M')} UTC",
        f"- Command: `{args.command}`",
        f"- Machine: {machine()}; the load generator runs on the same cores as the servers, "
        "and the machine was shared with other work while measured: expect noise of tens "
        "of percent",
        f"- Load: {version(['wrk', '--version'])}, {threads} threads, {conns} connections, "
        f"{args.warmup} s warm-up then {args.duration} s per row, every event distinct "
        "(benches/http/post.lua), the key's `Authorization: Bearer` header on every request",
        f"- Servers: `make serve` (gunicorn {gunicorn.__version__} gthread, {args.workers} "
        "workers, RATE_LIMIT=0; keepalive 0, so a connection per request) on a new SQLite "
        "file at durability full (the library's default); the floor under the same "
        f"configuration; the original design on Node.js {node} with better-sqlite3 12 "
        "(journal DELETE, synchronous FULL, an index on the looked-up columns); "
        f"Python {platform.python_version()}, ingest {ingest.CORE_VERSION}",
        "- Checked: after every run the store holds at least the events of every 2xx answer "
        "and at most those of every request written; no run had a non-2xx answer or a "
        "socket error",
        "",
        table(runs, args.batch),
        "requests/s counts 2xx answers over wrk's duration (answered: how many; a row of a few "
        "answers is a coarse figure); events/s of a server with a store is what its store "
        "gained while wrk ran, so a server whose batches outlast the run is measured too, and "
        "the floor's is its requests/s times the events per request. `submit_batch` is one "
        "thread calling the library on the same JSON texts; its time is the calls' alone.",
    ]
    return "\n".join(lines) + "\n"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def with_section(doc: str, name: str, body: str) -> str:
    """`doc` with its section `name` replaced by `body`, or with it added at
    the end: report::with_section of benches/src/report.rs, in Python."""
    begin, end = markers(name)
    new = f"{begin}\n{body.rstrip()}\n{end}"
    start = doc.find(begin)
    if start >= 0:
        stop = doc.find(end, start)
        if stop >= 0:
            return doc[:start] + new + doc[stop + len(end) :]
    if not doc:
        return new + "\n"
    return doc.rstrip() + "\n\n" + new + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--smoke", action="store_true", help="very short runs, nothing written: checks, not figures"
    )
    p.add_argument(
        "--duration", type=int, help="seconds of each timed wrk run (default 10; smoke 1)"
    )
    p.add_argument(
        "--warmup", type=int, help="seconds of the warm-up before each (default 3; smoke 1)"
    )
    p.add_argument("--connections", type=int, help="wrk connections (default 8; smoke 2)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--batch", type=int, help="events per batch request (default 1000; smoke 50)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument(
        "--original-dir",
        type=Path,
        default=REPO / "target" / "http-bench" / "original",
        help="server.js of the original design with its node_modules (npm ci)",
    )
    p.add_argument(
        "--out", type=Path, help="rewrite this document's http section (not with --smoke)"
    )
    p.add_argument("--command", default="make bench-http", help="the command named in the section")
    args = p.parse_args(argv)
    for name, full, smoke in (
        ("duration", 10, 1),
        ("warmup", 3, 1),
        ("connections", 8, 2),
        ("batch", 1000, 50),
    ):
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.smoke and args.out:
        p.error("--smoke writes nothing: drop --out")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The smoke run leaves the original design out, and says so: its server
    # needs `npm ci`, whose better-sqlite3 builds from source (minutes), and
    # the smoke run checks this harness and our server, not the contender.
    with_original = not args.smoke
    if shutil.which("wrk") is None or (with_original and shutil.which("node") is None):
        print(
            "bench-http needs wrk and node on PATH (make bench-http installs wrk)", file=sys.stderr
        )
        return 1
    if not with_original:
        print("smoke run: the original design's server is not run (make bench-http runs it)")
    if ingest.Ingestor(":memory:").durability != "full":
        # The server opens its store with the library's default.
        print(
            "the library's default durability is no longer full: say so in the section",
            file=sys.stderr,
        )
        return 1
    started = datetime.now(timezone.utc)
    runs: list[Run] = []
    logs = REPO / "target" / "http-bench" / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            work = Path(tmp)
            steps = [run_floor, run_ingest] + ([run_original] if with_original else [])
            for step in steps:
                step(args, work, runs)
                for log in work.glob("*.log"):
                    shutil.copy(log, logs / log.name)
            run_submit_batch(args, work, runs)
    except (BenchError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        print(f"bench-http failed: {e}\n{detail}\nserver logs: {logs}", file=sys.stderr)
        return 1
    md = section(args, runs, started)
    print(md)
    if args.smoke:
        # The section is made and put in a document as the full run would,
        # so that code cannot rot either; nothing is written.
        stale = "(the section of an earlier run)"
        doc = with_section(with_section("# Benchmarks\n", SECTION, stale), SECTION, md)
        if doc.count(markers(SECTION)[0]) != 1 or stale in doc or md.strip() not in doc:
            print("bench-http: the section was not replaced", file=sys.stderr)
            return 1
        print("bench-http smoke: every run answered 2xx and the stores hold what was sent")
    elif args.out:
        old = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(with_section(old, SECTION, md))
        progress(f"wrote the {SECTION} section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
