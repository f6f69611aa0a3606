"""The load test: concurrent clients against real server processes on
127.0.0.1, sending a bounded number of single events and batches in mixed
spellings, with repeats, random retries (on errors and timeouts, and
sometimes after a success) and random injected failures. It runs twice:
against one server on a SQLite file, and against three servers on
different ports sharing one PostgreSQL database, where every attempt goes
to a random instance (a retry usually reaches another one) and failures
are armed on random instances. Each client sends with an API key of its
own, for one client id: some of its events name no client (the key fills it
in), and now and then a batch holds another client's event, refused whole.

Afterwards the store holds exactly the distinct events, computed here from
the dedup rule (client, metric, timestamp to the millisecond, amount), and
every aggregate equals the sums computed here. Nothing is timed: a client
timeout is one more reason to resend, never a verdict.

Last, on the same servers, hostile writers (the largest amounts, amounts out
of range, not numbers) send beside honest ones (issue 15): every honest POST
is accepted, none is a 500, and the totals are the exact sums rounded once."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import BACKENDS, ServerProcess, disarm_every_worker, store_on

CLIENTS = 8  # concurrent HTTP clients (threads)
SENDS_PER_CLIENT = 60  # logical sends each: one event or one batch
SEED = 20240301

CLIENT_IDS = ["acme", "globex", "initech", "umbrella"]
METRICS = ["sales", "views", "signups"]
# Binary fractions: any sum of them is exact, in any order.
AMOUNTS = [0.5, 1, 2.25, 10, 12.75, 100, 1200]
START = datetime(2024, 3, 1, tzinfo=timezone.utc)
POINTS = ["before_insert", "after_insert", "after_commit", "aggregate"]
MAX_ATTEMPTS = 50  # a send that needs more is a failure of the test

Key = tuple[str, str, int, float]  # client_id, metric, timestamp ms, amount


def pool(rng: random.Random) -> list[Key]:
    """The distinct logical events the clients draw from (with repeats)."""
    keys: set[Key] = set()
    while len(keys) < 120:
        ts = START + timedelta(minutes=37 * rng.randrange(60))
        keys.add(
            (
                rng.choice(CLIENT_IDS),
                rng.choice(METRICS),
                int(ts.timestamp() * 1000),
                float(rng.choice(AMOUNTS)),
            )
        )
    return sorted(keys)


def spell(key: Key, rng: random.Random, keyed: bool = False) -> dict[str, Any]:
    """One raw event for `key`, in one of the many spellings clients use;
    `keyed` (sent with its client's key): now and then no client at all,
    which the key fills in."""
    client, metric, ms, amount = key
    when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    metric_text = rng.choice([metric, metric.upper(), f"  {metric.title()} "])
    amount_value: Any = rng.choice(
        [amount, f" {amount} ", str(amount)]
        + ([int(amount), str(int(amount))] if amount == int(amount) else [])
    )
    plus2 = when.astimezone(timezone(timedelta(hours=2)))
    ts_value: Any = rng.choice(
        [
            when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            plus2.isoformat(),
            when.strftime("%Y-%m-%d %H:%M:%S"),
            ms,
            str(ms),
            ms // 1000,
        ]
        + ([when.strftime("%Y-%m-%d")] if ms % 86_400_000 == 0 else [])
    )
    fields = {
        rng.choice(["metric", "name", "event", "type"]): metric_text,
        rng.choice(["value", "amount", "amt", "val", "count", "qty"]): amount_value,
        rng.choice(["timestamp", "ts", "time", "date", "datetime", "occurred_at"]): ts_value,
    }
    if rng.random() < 0.3:
        fields["note"] = rng.choice(["retry", "from the app", "batch"])  # an attribute
    if keyed and rng.random() < 0.2:
        return fields
    if rng.random() < 0.5:
        return {"source": client, "payload": fields}
    return {rng.choice(["source", "client", "clientId", "client_id", "clientID"]): client, **fields}


def invalid(rng: random.Random, client: str) -> dict[str, Any]:
    """An event the rules reject: no timestamp, or an amount that is not one."""
    if rng.random() < 0.5:
        return {"client": client, "metric": "sales", "value": 3}
    return {"source": client, "payload": {"metric": "sales", "amt": "lots", "ts": "2024-03-01"}}


def bearer(token: str | None) -> dict[str, str | None]:
    """Headers for a request as `token`; None: as no key (the demo's local
    person), overriding the session's key."""
    return {"Authorization": f"Bearer {token}" if token else None}


@dataclass
class Tally:
    """What one client saw."""

    sent: set[Key] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class Client(threading.Thread):
    """One client with its own key, for one client id: it sends that
    client's events only, and now and then one of another client's, which
    must be refused whole (403). It arms failures with the admin key (or,
    under `make demo`, with no key)."""

    def __init__(
        self, n: int, servers: list[ServerProcess], keys: list[Key], token: str, client: str
    ) -> None:
        super().__init__(name=f"load-client-{n}")
        # What is sent (events, spellings, batches, failures armed) is the
        # same on every run; how many attempts each takes is not.
        self.rng = random.Random(SEED + n)  # noqa: S311 (test data, not secrets)
        self.chaos = random.Random(SEED - n)  # noqa: S311
        self.bases = [s.base for s in servers]
        self.client = client
        self.keys = [k for k in keys if k[0] == client]
        self.others = [k for k in keys if k[0] != client]
        self.token = token
        self.admin = bearer(servers[0].admin_token)
        self.tally = Tally()
        self.crash: BaseException | None = None

    def run(self) -> None:
        try:
            with requests.Session() as s:
                # A key of its own, as separate clients have: all of them
                # share 127.0.0.1, which alone would be one rate limit.
                s.headers["Authorization"] = f"Bearer {self.token}"
                for _ in range(SENDS_PER_CLIENT):
                    self.one_send(s)
        except BaseException as e:  # reported by the test, not lost in a thread
            self.crash = e

    def post(self, s: requests.Session, body: Any) -> requests.Response | None:
        """One attempt; None when it timed out or the connection failed."""
        # Now and then a read timeout too short for any answer: the request
        # may still be stored, exactly as when a network drops the reply.
        timeout = (10, 0.001) if self.chaos.random() < 0.05 else (10, 30)
        try:
            base = self.chaos.choice(self.bases)
            return s.post(base + "/api/events", json=body, timeout=timeout)
        except (requests.Timeout, requests.ConnectionError):
            self.tally.statuses["timeout"] += 1
            return None

    def send_until_answered(self, s: requests.Session, body: Any) -> requests.Response:
        for _ in range(MAX_ATTEMPTS):
            r = self.post(s, body)
            if r is None:
                continue
            self.tally.statuses[str(r.status_code)] += 1
            if r.status_code == 500:
                assert r.json()["error"] in ("injected_failure", "storage_error"), r.text
                continue
            return r
        raise AssertionError(f"no answer after {MAX_ATTEMPTS} attempts: {body}")

    def one_send(self, s: requests.Session) -> None:
        rng = self.rng
        if rng.random() < 0.1:
            self.arm_failure(s)
        if rng.random() < 0.1:
            self.ask_aggregate(s)
        if rng.random() < 0.05:
            self.write_as_another(s)
        items: list[tuple[Key | None, Any]] = []
        for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 6)):
            if rng.random() < 0.05:
                items.append((None, invalid(rng, self.client)))
            else:
                key = rng.choice(self.keys)
                items.append((key, spell(key, rng, keyed=True)))
        single = len(items) == 1 and rng.random() < 0.8
        body: Any = items[0][1] if single else [raw for _, raw in items]

        first = self.check(self.send_until_answered(s, body), items, single, confirmed=False)
        self.tally.sent.update(k for k, _ in items if k is not None)
        # Sometimes the client resends what it already got an answer for:
        # every valid event in it must now be a duplicate.
        if first and rng.random() < 0.2:
            self.check(self.send_until_answered(s, body), items, single, confirmed=True)

    def check(self, r: requests.Response, items: list[Any], single: bool, confirmed: bool) -> bool:
        if single:
            key = items[0][0]
            allowed = {422} if key is None else ({200} if confirmed else {200, 201})
            ok = r.status_code in allowed
            statuses = [r.json().get("status")]
        else:
            ok = r.status_code == 200
            statuses = [o["status"] for o in r.json()["results"]] if ok else []
            ok = ok and len(statuses) == len(items)
            for (key, _), status in zip(items, statuses):
                allowed_s = (
                    {"rejected"}
                    if key is None
                    else ({"duplicate"} if confirmed else {"accepted", "duplicate"})
                )
                ok = ok and status in allowed_s
        if not ok:
            what = "resend" if confirmed else "send"
            self.tally.problems.append(f"{what}: {r.status_code} {statuses}: {r.text[:300]}")
        return ok

    def write_as_another(self, s: requests.Session) -> None:
        """A batch of this client's events with one of another client's in
        it: 403, and none of it stored (the stored set is checked at the end)."""
        mine = self.rng.choice(self.keys)
        # Never among the events sent, so that storing it would be caught;
        # this one second past a pool timestamp is in no other client's pool.
        other = self.rng.choice(self.others)
        stranger = (other[0], other[1], other[2] + 1000, other[3])
        body = [spell(mine, self.rng, keyed=True), spell(stranger, self.rng)]
        r = self.post(s, body)
        if r is None:  # timed out: nothing to judge; the end still checks the store
            return
        self.tally.statuses[str(r.status_code)] += 1
        if r.status_code == 500:
            return  # an armed failure took it first: nothing was stored either
        if r.status_code != 403 or r.json().get("error") != "forbidden":
            self.tally.problems.append(f"another client's event: {r.status_code}: {r.text[:300]}")

    def arm_failure(self, s: requests.Session) -> None:
        point = self.rng.choice(POINTS)
        times = self.rng.randint(1, 2)
        base = self.rng.choice(self.bases)
        r = s.post(
            base + "/api/simulate-failure",
            json={"point": point, "times": times},
            timeout=30,
            headers=self.admin,
        )
        if r.status_code != 200:
            self.tally.problems.append(f"arming {point} answered {r.status_code}: {r.text}")
        self.tally.statuses["armed"] += 1

    def ask_aggregate(self, s: requests.Session) -> None:
        # Mid-run the totals move: only the shape of the answer is checked.
        params = {"metric": self.rng.choice(METRICS)}
        r = s.get(self.rng.choice(self.bases) + "/api/aggregate", params=params, timeout=30)
        self.tally.statuses[f"aggregate {r.status_code}"] += 1
        if r.status_code == 503:
            ok = r.headers.get("Retry-After") == "5"
        else:
            ok = r.status_code == 200 and isinstance(r.json().get("stale"), bool)
        if not ok:
            self.tally.problems.append(f"aggregate answered {r.status_code}: {r.text[:300]}")


INSTANCES = 3  # servers sharing the PostgreSQL database
SERVE_INSTANCES = 2  # `make serve` servers sharing it, of SERVE_WORKERS each
SERVE_WORKERS = 2


@pytest.fixture(params=[*BACKENDS, *(f"serve-{b}" for b in BACKENDS)])
def load_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """As `make demo` runs it: one server on a SQLite file, or three on one
    PostgreSQL schema. As `make serve` runs it, with two workers each: one
    server on a SQLite file, or two on one PostgreSQL schema. Under `make
    serve` a failure armed is armed in the one worker that took the request."""
    serve = request.param.startswith("serve-")
    backend = request.param.removeprefix("serve-")
    instances = 1 if backend == "sqlite" else (SERVE_INSTANCES if serve else INSTANCES)
    with store_on(backend, tmp_path) as db:
        servers: list[ServerProcess] = []
        try:
            for n in range(instances):
                log = tmp_path / f"server{n}" / "server.log"
                log.parent.mkdir()
                servers.append(ServerProcess(db, log, serve=serve, workers=SERVE_WORKERS))
            assert len({s.port for s in servers}) == instances
            yield servers
        finally:
            for server in servers:
                server.stop()


def stored_keys(server: ServerProcess) -> list[Key]:
    keys: list[Key] = []
    offset = 0
    while True:
        r = requests.get(
            server.base + "/api/events",
            params={"limit": 1000, "offset": offset},
            headers=server.headers,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        for e in page["items"]:
            when = datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
            keys.append((e["client_id"], e["metric"], int(when.timestamp() * 1000), e["amount"]))
        if not page["has_more"]:
            return keys
        offset += len(page["items"])


def aggregate(server: ServerProcess, **params: str) -> dict[str, Any]:
    r = requests.get(
        server.base + "/api/aggregate", params=params, headers=server.headers, timeout=30
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stale"] is False, body
    return dict(body)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_concurrent_clients_with_retries_and_failures(load_servers: list[ServerProcess]) -> None:
    server = load_servers[0]
    keys = pool(random.Random(SEED))  # noqa: S311
    clients = []
    for n in range(CLIENTS):
        client = CLIENT_IDS[n % len(CLIENT_IDS)]
        clients.append(Client(n, load_servers, keys, server.add_key(client), client))
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    for c in clients:
        if c.crash is not None:
            raise c.crash
    problems = [p for c in clients for p in c.tally.problems]
    assert not problems, "\n".join(problems[:20])
    statuses = sum((c.tally.statuses for c in clients), Counter())
    # The run did exercise what it is about: repeats, failures, retries.
    assert statuses["500"] > 0 and statuses["armed"] > 0, statuses
    assert statuses["200"] > 0 and statuses["201"] > 0 and statuses["422"] > 0, statuses
    assert statuses["403"] > 0, statuses
    print(
        f"load: {len(clients)} clients, {len(load_servers)} servers, "
        f"{CLIENTS * SENDS_PER_CLIENT} sends: {dict(statuses)}"
    )
    # Every switch off before the totals are read: under `make serve` each
    # worker has its own, and one left armed (an aggregate failure) would
    # answer a read below 503.
    with requests.Session() as s:
        for b in load_servers:
            disarm_every_worker(b.api(s))

    # Exactly the distinct events: none lost, none twice.
    expected = set().union(*(c.tally.sent for c in clients))
    stored = stored_keys(server)
    assert len(stored) == len(set(stored)), Counter(stored).most_common(3)
    assert set(stored) == expected, (
        sorted(expected - set(stored))[:5],
        sorted(set(stored) - expected)[:5],
    )

    # Aggregates: every client x metric, whole and over a range that cuts
    # hours at both ends, and grouped by hour and by day.
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for client, metric, _, amount in expected:
        sums[(client, metric)].append(amount)
    for client in CLIENT_IDS:
        for metric in METRICS:
            got = aggregate(server, clientId=client, metric=metric)
            want = sums[(client, metric)]
            assert (got["count"], got["sum"]) == (len(want), sum(want)), (client, metric, got)
            if want:
                assert (got["min"], got["max"]) == (min(want), max(want))
    cut_start, cut_end = (
        START + timedelta(hours=5, minutes=17),
        START + timedelta(hours=29, minutes=43),
    )
    lo, hi = int(cut_start.timestamp() * 1000), int(cut_end.timestamp() * 1000)
    for metric in METRICS:
        inside = [k[3] for k in expected if k[1] == metric and lo <= k[2] < hi]
        got = aggregate(
            server, metric=metric, startDate=cut_start.isoformat(), endDate=cut_end.isoformat()
        )
        assert (got["count"], got["sum"]) == (len(inside), sum(inside)), (metric, got)
    for group in ("hour", "day"):
        size = 3_600_000 if group == "hour" else 86_400_000
        buckets: dict[str, list[float]] = defaultdict(list)
        for _, metric, ms, amount in expected:
            if metric == "sales":
                buckets[iso(ms - ms % size)].append(amount)
        got_groups = aggregate(server, metric="sales", groupBy=group)["groups"]
        assert {g["bucket"]: (g["count"], g["sum"]) for g in got_groups} == {
            b: (len(v), sum(v)) for b, v in buckets.items()
        }
    # Every instance reads the same database: the same totals from each.
    for b in load_servers:
        total = aggregate(b)
        assert (total["count"], total["sum"]) == (len(expected), sum(k[3] for k in expected)), b


# ---- hostile writers beside honest ones (issue 15) ----

HOUR_START = 1_714_557_600_000  # 2024-05-01T10:00:00Z
MAX_AMOUNT = 1e289  # the largest amount accepted
WRITERS = 6  # the first half hostile, the rest honest
ROUNDS = 25  # sends each
HOSTILE_STATUSES = ["accepted", "accepted", "rejected", "accepted", "rejected"]


class Writer(threading.Thread):
    """Hostile: batches of the largest amounts accepted, one out of range
    and one that is not a number (two of five rejected). Honest: single
    events. Each send goes to one of the servers in turn; what came back is
    kept for the test to judge."""

    def __init__(self, w: int, bases: list[str], token: str) -> None:
        super().__init__(name=f"exact-writer-{w}")
        self.w = w
        self.bases = bases
        self.token = token
        self.answers: list[tuple[int, Any]] = []
        self.crash: BaseException | None = None

    def run(self) -> None:
        try:
            with requests.Session() as s:
                s.headers["Authorization"] = f"Bearer {self.token}"  # a key each, as above
                for r in range(ROUNDS):
                    self.answers.append(self.send(s, r))
        except BaseException as e:  # reported by the test, not lost in a thread
            self.crash = e

    def send(self, s: requests.Session, r: int) -> tuple[int, Any]:
        ms = HOUR_START + r * 1_000 + self.w
        body: Any
        if self.w < WRITERS // 2:
            body = [
                self.event("evil", MAX_AMOUNT, ms),
                self.event("evil", MAX_AMOUNT, ms + 10),
                self.event("evil", 1e308, ms + 20),
                self.event("evil", -MAX_AMOUNT, ms + 30),
                self.event("evil", "-inf", ms),
            ]
        else:
            body = self.event(f"honest{self.w}", 0.1, ms)
        base = self.bases[(self.w + r) % len(self.bases)]
        resp = s.post(base + "/api/events", json=body, timeout=30)
        return resp.status_code, resp.json()

    @staticmethod
    def event(client: str, amount: Any, ms: int) -> dict[str, Any]:
        return {"client": client, "metric": "sales", "value": amount, "ts": ms}


def exact(amounts: list[float]) -> float:
    """The exact sum rounded once (a Fraction's float is correctly rounded)."""
    return float(sum((Fraction(a) for a in amounts), Fraction(0)))


def test_hostile_writers_never_fail_honest_ones(load_servers: list[ServerProcess]) -> None:
    bases = [s.base for s in load_servers]
    server = load_servers[0]
    writers = [
        Writer(w, bases, server.add_key("evil" if w < WRITERS // 2 else f"honest{w}"))
        for w in range(WRITERS)
    ]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    for t in writers:
        if t.crash is not None:
            raise t.crash
    for t in writers:
        assert len(t.answers) == ROUNDS, t.w
        for status, body in t.answers:
            if t.w < WRITERS // 2:
                assert status == 200, (t.w, body)
                assert [o["status"] for o in body["results"]] == HOSTILE_STATUSES, (t.w, body)
                assert body["results"][2]["reasons"][0]["code"] == "out_of_range", body
            else:
                assert (status, body["status"]) == (201, "accepted"), (t.w, body)

    evil = [MAX_AMOUNT, MAX_AMOUNT, -MAX_AMOUNT] * (WRITERS // 2 * ROUNDS)
    honest = [0.1] * ROUNDS
    want = {
        "evil": (len(evil), exact(evil)),
        **{f"honest{w}": (ROUNDS, exact(honest)) for w in range(WRITERS // 2, WRITERS)},
    }
    for b in load_servers:
        groups = aggregate(b, metric="sales", groupBy="client_id")["groups"]
        assert {g["client_id"]: (g["count"], g["sum"]) for g in groups} == want, b
        r = requests.get(b.base + "/api/stats", headers=b.headers, timeout=30)
        assert r.status_code == 200, r.text
        stored = (r.json()["stored_events"], r.json()["stored_rejected"])
        assert stored == (sum(n for n, _ in want.values()), 2 * (WRITERS // 2) * ROUNDS), b
