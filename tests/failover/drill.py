"""The failover drill (issue 21): `make test-failover` (short, part of
`make test`) and `make drill-failover` (long).

A PostgreSQL primary and a synchronous hot standby of its own
(cluster.py); three `make serve` instances over them, through the libpq
multi-host URL (`target_session_attrs=read-write`); HAProxy from Debian's
packages in front, with health checks on /api/health, as the README's
deployment shows. Clients send overlapping events (new ones, and again
ones already sent, alone and in batches) and retry every failure. Mid-load
the drill SIGKILLs the primary and promotes the standby; the clients keep
going. With several failovers the old primary rejoins as the new standby
(pg_rewind, else a fresh base backup) before the next one.

Afterwards, read from the new primary: every event any client saw
acknowledged is stored exactly once, no event twice, and every aggregate
(count, sum, min, max by client and metric) equals what the stored events
add up to. The last line:

    failover drill: A acknowledged, S stored, L lost, D doubled, downtime T s

A: distinct events acknowledged (201 or 200); S: events stored (it may be
more than A: an answer lost in the failover, its event stored, and never
sent again); T: the longest time, over the failovers, in which no request
of any client was acknowledged.

At durability `full` (the default) anything lost or doubled fails the
drill. At `normal` the server's last commits may be lost with it: lost
events are reported and counted, not a failure; doubled ones and wrong
aggregates still are.

Missing pieces: PostgreSQL's server binaries and HAProxy are installed from
Debian's packages when missing and this runs as root; otherwise, under
CI=true the drill fails, and elsewhere it says so and skips (without the
binaries) or has each client pick an instance at random (without HAProxy).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import ingest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "server"))
from cluster import Missing, Pair, apt_install, free_ports, under_ci
from serve_line import serve_line

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "ingest_drill"
CLIENT_IDS = ["acme", "globex", "initech", "umbrella"]
METRICS = ["sales", "views", "signups"]
# Binary fractions: any sum of them is exact, in any order, so the
# expected totals are exact too.
AMOUNTS = [0.5, 1, 2.25, 10, 12.75, 100, 1200]
START = datetime(2025, 6, 1, tzinfo=UTC)
# A request that takes longer hung: the library promises an answer within
# its busy timeout (5 s by default), the server adds little to it.
HUNG_SECONDS = 30
# Seconds between two attempts of one request: short, so that the downtime
# measured is the system's, not the clients' patience.
BACKOFF = (0.05, 0.5)

Key = tuple[str, str, int, float]  # client_id, metric, timestamp ms, amount


def say(*parts: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# --- the events -------------------------------------------------------------


class Events:
    """The events the clients send: each new one distinct, drawn by
    number; some sent again, by any client."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._rng = random.Random(seed)
        self.sent: list[Key] = []

    def key(self, n: int) -> Key:
        rng = random.Random(n)
        return (
            CLIENT_IDS[n % len(CLIENT_IDS)],
            rng.choice(METRICS),
            int((START + timedelta(seconds=n)).timestamp() * 1000),
            float(rng.choice(AMOUNTS)),
        )

    def draw(self, rng: random.Random) -> Key:
        with self._lock:
            if self.sent and rng.random() < 0.25:
                return rng.choice(self.sent)
            key = self.key(self._next)
            self._next += 1
            self.sent.append(key)
            return key


def body(key: Key) -> dict[str, Any]:
    client, metric, ms, amount = key
    ts = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"clientId": client, "metric": metric, "value": amount, "timestamp": ts}


# --- the clients ------------------------------------------------------------


@dataclass
class Tally:
    """What one client saw."""

    acked: set[Key] = field(default_factory=set)
    # Completion times of acknowledged requests.
    ack_times: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    slowest: float = 0.0
    hung: int = 0
    wrong: list[str] = field(default_factory=list)


def client(
    n: int,
    bases: list[str],
    token: str,
    events: Events,
    stop: threading.Event,
    tally: Tally,
) -> None:
    rng = random.Random(1000 + n)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    while not stop.is_set():
        batch = (
            [events.draw(rng) for _ in range(rng.randint(2, 5))]
            if rng.random() < 0.3
            else None
        )
        keys = batch or [events.draw(rng)]
        payload: Any = [body(k) for k in keys] if batch else body(keys[0])
        attempt = 0
        # Every request is sent until it is answered: a client that gives
        # up cannot tell whether its event was kept. Stopping only between
        # requests keeps "acknowledged" exact.
        while True:
            attempt += 1
            base = rng.choice(bases)
            t0 = time.monotonic()
            tally.requests += 1
            try:
                r = session.post(
                    base + "/api/events", json=payload, timeout=(2, HUNG_SECONDS)
                )
                took = time.monotonic() - t0
                tally.slowest = max(tally.slowest, took)
                if _acknowledged(r, keys, batch is not None, tally):
                    tally.acked.update(keys)
                    tally.ack_times.append(time.monotonic())
                    break
                code = _error_code(r)
                tally.errors[f"{r.status_code} {code}"] += 1
            except requests.Timeout:
                tally.errors["timeout"] += 1
                if time.monotonic() - t0 >= HUNG_SECONDS:
                    tally.hung += 1
            except requests.ConnectionError:
                tally.errors["connection error"] += 1
            time.sleep(min(BACKOFF[1], BACKOFF[0] * attempt))


def _acknowledged(
    r: requests.Response, keys: list[Key], batch: bool, tally: Tally
) -> bool:
    if not batch:
        if r.status_code in (200, 201):
            status = r.json().get("status")
            if status not in ("accepted", "duplicate"):
                tally.wrong.append(f"{r.status_code} {status}: {r.text[:200]}")
            return True
        if r.status_code in (409, 422):
            tally.wrong.append(f"{r.status_code}: {r.text[:200]}")
            return True
        return False
    if r.status_code != 200:
        return False
    results = r.json().get("results", [])
    statuses = [x.get("status") for x in results]
    if len(statuses) != len(keys) or any(
        s not in ("accepted", "duplicate") for s in statuses
    ):
        tally.wrong.append(f"batch answered {statuses}")
    return True


def _error_code(r: requests.Response) -> str:
    try:
        return str(r.json().get("error", ""))
    except ValueError:
        return "(not JSON)"


# --- the servers ------------------------------------------------------------


class Processes:
    """Processes started by the drill, each in a session of its own, all
    stopped (the whole session) when the drill ends, however it ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]


def wait_healthy(
    base: str, proc: subprocess.Popen[bytes] | None, what: str, logs: Processes
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(requests.RequestException):
            if requests.get(base + "/api/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} at {base} did not become healthy:\n{logs.log(what)}")


def haproxy_binary() -> str | None:
    """Debian's haproxy, installed when missing and we can."""
    if shutil.which("haproxy") is None:
        apt_install("haproxy", "haproxy is missing")
    return shutil.which("haproxy")


def haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server app{i} 127.0.0.1:{p} check" for i, p in enumerate(backends, 1)
    )
    # The check asks /api/health of each instance every second and takes it
    # out after 3 failures: a dead instance within ~3 s. A failover makes
    # every instance's health fail at once for about as long as it lasts;
    # with a shorter fall the balancer would answer 503 itself for every
    # request until the next check, adding its interval to the downtime.
    # retries + redispatch: a request refused by a dead instance goes to
    # another one (a refused connection reached no application).
    return f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    option http-server-close

frontend ingest
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /api/health ver HTTP/1.1 hdr Host 127.0.0.1:{port}
    default-server inter 1s fall 3 rise 2
{servers}
"""


# --- the check --------------------------------------------------------------


def stored_events(ing: ingest.Ingestor) -> list[Key]:
    out: list[Key] = []
    offset = 0
    while True:
        page = ing.events(limit=10_000, offset=offset)
        for e in page:
            ms = int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000)
            out.append((e["client_id"], e["metric"], ms, float(e["amount"])))
        if len(page) < 10_000:
            return out
        offset += len(page)


def check_aggregates(ing: ingest.Ingestor, stored: list[Key]) -> list[str]:
    expected: dict[tuple[str, str], list[float]] = defaultdict(list)
    for client_id, metric, _, amount in stored:
        expected[(client_id, metric)].append(amount)
    got = ing.aggregate(group_by=["client_id", "metric"])
    wrong = []
    seen = set()
    for g in got.get("groups", []):
        k = (g["client_id"], g["metric"])
        seen.add(k)
        amounts = expected.get(k, [])
        want = (len(amounts), float(sum(Fraction(a) for a in amounts)), min(amounts, default=None),
                max(amounts, default=None))  # fmt: skip
        have = (g["count"], g["sum"], g["min"], g["max"])
        if want != have:
            wrong.append(f"{k}: aggregate {have}, stored events add up to {want}")
    for k in set(expected) - seen:
        wrong.append(f"{k}: no aggregate group, {len(expected[k])} stored events")
    total = ing.aggregate()
    if total["count"] != len(stored):
        wrong.append(f"total count {total['count']}, {len(stored)} stored events")
    return wrong


def downtime(ack_times: list[float], at: float, until: float) -> float:
    """The longest time without an acknowledgement, from just before `at`
    (the kill) to `until`."""
    times = sorted(t for t in ack_times if at - 1 <= t <= until)
    edges = [at, *[t for t in times if t >= at]]
    if len(edges) == 1:
        return until - at
    gaps = [b - a for a, b in itertools.pairwise(edges)]
    return max(gaps)


# --- the drill --------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    haproxy = None if args.no_haproxy else haproxy_binary()
    if haproxy is None and not args.no_haproxy:
        if under_ci():
            say(
                "error: the drill needs Debian's haproxy under CI=true; as root: apt-get install -y haproxy"
            )
            return 1
        say(
            "NOTE: haproxy is not installed and cannot be: each client picks an instance at random"
        )
    work = Path(tempfile.mkdtemp(prefix="ingest-failover-"))
    logs = work / "logs"
    logs.mkdir()
    procs = Processes(logs)
    pair: Pair | None = None
    ok = False
    try:
        try:
            pair = Pair.start(work / "pg")
        except Missing as e:
            if under_ci():
                say(f"error: {e}")
                return 1
            say(f"SKIPPED (not under CI=true): {e}")
            return 0
        url = pair.url(SCHEMA)
        say(
            f"primary 127.0.0.1:{pair.primary.port}, synchronous standby 127.0.0.1:{pair.nodes[1].port}"
        )
        say(f"store: {url} (durability {args.durability})")
        with ingest.Ingestor(url, durability=args.durability) as ing:
            token = str(ing.add_key(admin="drill")["token"])

        ports = free_ports(args.instances + 1)
        lb_port, app_ports = ports[0], ports[1:]
        bases = [f"http://127.0.0.1:{p}" for p in app_ports]
        for i, port in enumerate(app_ports, 1):
            env = {
                **os.environ,
                "DURABILITY": args.durability,
                "RATE_LIMIT": "0",
                "ALLOWED_HOSTS": f"127.0.0.1:{port},127.0.0.1:{lb_port}",
                "THREADS": "64",
                "PYTHONUNBUFFERED": "1",
            }
            line = serve_line(host="127.0.0.1", port=port, db=url, workers=args.workers)
            proc = procs.start(f"serve{i}", ["bash", "-c", line], env)
            wait_healthy(bases[i - 1], proc, f"serve{i}", procs)
        say(
            f"{args.instances} instances of make serve (WORKERS={args.workers}) on ports {app_ports}"
        )
        if haproxy is not None:
            cfg = work / "haproxy.cfg"
            cfg.write_text(haproxy_config(lb_port, app_ports))
            subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], check=True)
            proc = procs.start(
                "haproxy", [haproxy, "-db", "-f", str(cfg)], dict(os.environ)
            )
            wait_healthy(f"http://127.0.0.1:{lb_port}", proc, "haproxy", procs)
            bases = [f"http://127.0.0.1:{lb_port}"]
            say(f"HAProxy on 127.0.0.1:{lb_port}, health checks on /api/health")

        events = Events(args.seed)
        stop = threading.Event()
        tallies = [Tally() for _ in range(args.clients)]
        threads = [
            threading.Thread(
                target=client,
                args=(n, bases, token, events, stop, tallies[n]),
                daemon=True,
            )
            for n in range(args.clients)
        ]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        say(
            f"{args.clients} clients sending; {args.failovers} failover(s) in {args.seconds} s"
        )
        kills: list[float] = []
        how: list[str] = []
        step = args.seconds / (args.failovers + 1)
        for k in range(args.failovers):
            time.sleep(max(0.0, t_start + step * (k + 1) - time.monotonic()))
            old = pair.primary
            kills.append(time.monotonic())
            _, promoted = pair.fail_over()
            say(
                f"failover {k + 1}: SIGKILLed the primary (127.0.0.1:{old.port}) and promoted "
                f"127.0.0.1:{pair.primary.port} ({promoted:.2f} s to promote)"
            )
            if k + 1 < args.failovers:
                how.append(pair.rejoin())
                say(
                    f"  127.0.0.1:{old.port} rejoined as the synchronous standby by {how[-1]}"
                )
        time.sleep(max(0.0, t_start + args.seconds - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(timeout=HUNG_SECONDS * 3)
        if any(t.is_alive() for t in threads):
            say("FAILED: a client is still waiting for an answer")
            return 1
        t_end = time.monotonic()

        acked: set[Key] = set().union(*(t.acked for t in tallies))
        ack_times = [x for t in tallies for x in t.ack_times]
        errors: Counter[str] = sum((t.errors for t in tallies), Counter())
        wrong = [w for t in tallies for w in t.wrong]
        hung = sum(t.hung for t in tallies)
        slowest = max(t.slowest for t in tallies)
        requests_sent = sum(t.requests for t in tallies)
        downs = [
            downtime(ack_times, at, (kills + [t_end])[i + 1])
            for i, at in enumerate(kills)
        ]

        with ingest.Ingestor(url, durability=args.durability) as ing:
            stored = stored_events(ing)
            counts = Counter(stored)
            doubled = sum(n - 1 for n in counts.values() if n > 1)
            lost = acked - set(counts)
            agg_wrong = check_aggregates(ing, stored)

        say(
            f"{requests_sent} requests, {sum(errors.values())} failed and retried: {dict(errors)}"
        )
        say(
            f"slowest answer {slowest:.2f} s; downtime per failover (s): {[round(d, 2) for d in downs]}"
        )
        if how:
            say(f"rejoins: {dict(Counter(how))}")
        ok = True
        if wrong:
            say(f"FAILED: unexpected answers: {wrong[:5]}")
            ok = False
        if hung:
            say(f"FAILED: {hung} requests had no answer within {HUNG_SECONDS} s")
            ok = False
        if doubled:
            say(f"FAILED: {doubled} events stored twice")
            ok = False
        if agg_wrong:
            say(f"FAILED: aggregates differ from the stored events: {agg_wrong[:5]}")
            ok = False
        if lost:
            if args.durability == "full":
                say(
                    f"FAILED: {len(lost)} acknowledged events are not stored, e.g. {sorted(lost)[:3]}"
                )
                ok = False
            else:
                say(
                    f"{len(lost)} acknowledged events were lost with the primary: durability normal "
                    "acknowledges a commit before the standby has it (see the README)"
                )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "durability": args.durability,
                        "acknowledged": len(acked),
                        "stored": len(stored),
                        "lost": len(lost),
                        "doubled": doubled,
                        "downtime": downs,
                        "errors": dict(errors),
                        "requests": requests_sent,
                        "slowest": slowest,
                        "rejoins": how,
                    }
                )
            )
        print(
            f"failover drill: {len(acked)} acknowledged, {len(stored)} stored, {len(lost)} lost, "
            f"{doubled} doubled, downtime {max(downs, default=0.0):.2f} s",
            flush=True,
        )
        return 0 if ok else 1
    finally:
        procs.stop()
        if pair is not None:
            pair.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"the servers' logs are kept in {logs}")


def _stopped(signum: int, _frame: Any) -> None:
    # SIGTERM (a CI job's timeout, make interrupted) ends the drill through
    # its finally blocks: the servers and PostgreSQL clusters go too.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stopped)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seconds",
        type=float,
        default=40,
        help="how long the clients send (default 40)",
    )
    p.add_argument(
        "--failovers", type=int, default=1, help="failovers in that time (default 1)"
    )
    p.add_argument("--durability", choices=["full", "normal"], default="full")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="WORKERS of each make serve")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument(
        "--no-haproxy",
        action="store_true",
        help="each client picks an instance at random",
    )
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    if args.failovers < 1:
        p.error("--failovers must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
