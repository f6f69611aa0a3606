"""`make serve`: its own line of the Makefile, started on a free port with
a temporary store; several workers over one store, the failure switch of
each, read timeouts, a graceful SIGTERM, bad settings, and 1 030 slow
clients that must not take /api/health down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import (
    BACKENDS,
    SERVER_DIR,
    ServerProcess,
    event,
    store_on,
    until_each_worker_answered,
)

SLOW_CLIENTS = 1030
# The one timing bound of the suite, generous: /api/health answers within
# this while the slow clients hold their connections.
HEALTH_SECONDS = 5.0


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """`make serve` with two workers, on SQLite or PostgreSQL."""
    with store_on(request.param, tmp_path) as db:
        server = ServerProcess(db, tmp_path / "server.log", serve=True, workers=2)
        try:
            yield server
        finally:
            server.stop()


def workers_answering(base: str, workers: int = 2) -> set[int]:
    """The workers that answered /api/health, asking until `workers` have."""

    def ask() -> int:
        with requests.get(base + "/api/health", timeout=10) as r:
            assert r.status_code == 200, r.text
            return int(r.headers["X-Ingest-Worker"])

    return until_each_worker_answered(ask, lambda seen: len(seen) >= workers)


def post(server: ServerProcess, body: Any) -> requests.Response:
    return requests.post(server.base + "/api/events", json=body, timeout=30, headers=server.headers)


def count(server: ServerProcess, uid: str) -> int:
    r = requests.get(
        server.base + "/api/aggregate", params={"clientId": uid}, timeout=30, headers=server.headers
    )
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def test_two_workers_share_one_store(served: ServerProcess, uid: str) -> None:
    assert len(workers_answering(served.base)) == 2
    # Each event stored once, whichever worker took it; every worker reads all.
    for v in range(20):
        r = post(served, event(uid, value=v))
        assert r.status_code == 201, r.text
        r = post(served, event(uid, value=v))
        assert r.status_code == 200, r.text
    for _ in range(6):
        assert count(served, uid) == 20


def test_each_worker_has_its_own_switch_and_says_so(served: ServerProcess, uid: str) -> None:
    url = served.base + "/api/simulate-failure"
    r = requests.post(
        url, json={"point": "before_insert", "times": 1000}, timeout=10, headers=served.headers
    )
    assert r.status_code == 200, r.text
    armed = r.json()
    assert (armed["enabled"], armed["workers"]) == (True, 2), armed
    assert int(r.headers["X-Ingest-Worker"]) == armed["worker"]
    # The other worker still writes; the armed one fails each write.
    answers: dict[int, set[int]] = {}
    for v in range(1000):
        r = post(served, event(uid, value=v))
        answers.setdefault(int(r.headers["X-Ingest-Worker"]), set()).add(r.status_code)
        if v >= 40:
            if len(answers) == 2:
                break
            time.sleep(0.01)  # as in until_each_worker_answered
    assert answers[armed["worker"]] == {500}, answers
    others = {w: s for w, s in answers.items() if w != armed["worker"]}
    assert others and all(s == {201} for s in others.values()), answers
    # Ask until each worker seen above has answered.
    states = {}

    def ask() -> int:
        with requests.get(url, timeout=10, headers=served.headers) as r:
            states[r.json()["worker"]] = r.json()["enabled"]
            return int(r.json()["worker"])

    until_each_worker_answered(ask, lambda seen: seen >= answers.keys())
    assert states == {armed["worker"]: True, **dict.fromkeys(others, False)}, states


def test_the_store_is_shared_on_postgres_and_sqlite_alike(served: ServerProcess) -> None:
    # Where the store is: shown to an admin key only.
    with requests.get(served.base + "/api/health", timeout=10, headers=served.headers) as r:
        database = r.json()["database"]
    with requests.get(served.base + "/api/health", timeout=10) as r:
        assert "database" not in r.json(), r.json()
    assert ("postgres" in database) == ("postgres" in str(served.db)), database


def trickle(base_port: int, pieces: list[bytes], pause: float) -> tuple[int, Any]:
    """Send `pieces` a pause apart; the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", base_port), timeout=30) as s:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(pause)
            s.sendall(piece)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def request_head(
    port: int, length: int, content_type: str = "application/json", token: str | None = None
) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_sigterm_answers_requests_in_flight_then_closes_the_store(
    served: ServerProcess, uid: str
) -> None:
    body = json.dumps(event(uid)).encode()
    result: dict[str, Any] = {}

    def slow_client() -> None:
        # The body arrives over two seconds; SIGTERM comes in the middle.
        pieces = [request_head(served.port, len(body), token=served.admin_token)] + [
            body[i : i + 8] for i in range(0, len(body), 8)
        ]
        result["answer"] = trickle(served.port, pieces, 2.0 / len(pieces))

    t = threading.Thread(target=slow_client)
    t.start()
    time.sleep(0.5)
    served.proc.terminate()
    t.join(timeout=60)
    assert served.proc.wait(timeout=60) == 0, served.log_text()
    status, answer = result["answer"]
    assert (status, answer["status"]) == (201, "accepted"), answer
    log = served.log_text()
    assert log.count("store closed") == 2, log
    # Gone: nothing answers on the port any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(served.base + "/api/health", timeout=5)


def test_a_body_that_stops_is_408_after_the_read_timeout(tmp_path: Path, uid: str) -> None:
    server = ServerProcess(
        tmp_path / "s.db", tmp_path / "server.log", serve=True, env={"READ_TIMEOUT": "1"}
    )
    try:
        body = json.dumps(event(uid)).encode()
        head = request_head(server.port, len(body) + 50, token=server.admin_token)
        status, answer = trickle(server.port, [head, body], 0)
        assert (status, answer["error"]) == (408, "request_timeout"), answer
        assert count(server, uid) == 0
        assert post(server, event(uid)).status_code == 201
    finally:
        server.stop()


def open_slow_clients(n: int, port: int, piece: Callable[[int], bytes]) -> list[socket.socket]:
    held = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(piece(i))
        held.append(s)
    return held


@pytest.mark.parametrize(
    "what", ["half-sent bodies", "half-sent headers", "half-sent bodies refused at once"]
)
def test_slow_clients_do_not_take_health_down(tmp_path: Path, uid: str, what: str) -> None:
    # No rate limit: the clients, all from 127.0.0.1 with one key, would
    # share one allowance, and those past it would be answered 429 at once
    # instead of held.
    server = ServerProcess(
        tmp_path / "s.db", tmp_path / "server.log", serve=True, workers=2, env={"RATE_LIMIT": "0"}
    )
    body = json.dumps(event(uid)).encode()
    token = server.admin_token

    def piece(i: int) -> bytes:
        if what == "half-sent bodies":
            return request_head(server.port, len(body), token=token) + body[:20]
        if what == "half-sent headers":
            head = f"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            return (head + "Content-Ty").encode()
        # Answered 415 before the body is read, then silent: the connection
        # is closed in its own thread, never in the loop that accepts.
        return request_head(server.port, len(body), "text/plain", token) + body[:20]

    held: list[socket.socket] = []
    try:
        held = open_slow_clients(SLOW_CLIENTS, server.port, piece)
        time.sleep(1)  # every one accepted and waiting on a thread
        times = []
        for _ in range(5):
            start = time.monotonic()
            with requests.get(server.base + "/api/health", timeout=HEALTH_SECONDS) as r:
                assert r.status_code == 200, r.text
            times.append(time.monotonic() - start)
        r = post(server, event(uid, value=2))
        assert r.status_code == 201, r.text
        if what.endswith("refused at once"):
            # Each was answered 415, the connection then closed.
            for s in held:
                s.settimeout(30)
                assert s.recv(12) == b"HTTP/1.1 415"
        else:
            # The slow clients are still there, unanswered.
            alive = 0
            for s in held:
                s.setblocking(False)
                try:
                    alive += s.recv(1) == b""
                except BlockingIOError:
                    alive += 1
            assert alive == SLOW_CLIENTS
        print(
            f"{SLOW_CLIENTS} slow clients ({what}): /api/health in "
            f"{min(times) * 1000:.1f} to {max(times) * 1000:.1f} ms"
        )
    finally:
        for s in held:
            s.close()
        server.stop()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKERS": "two"}, "WORKERS must be an integer"),
        ({"WORKERS": "0"}, "WORKERS must be an integer from 1"),
        ({"PORT": "99999"}, "PORT must be an integer"),
        ({"THREADS": "-1"}, "THREADS must be"),
        ({"READ_TIMEOUT": "soon"}, "READ_TIMEOUT must be a number"),
        ({"MAX_BATCH_ITEMS": "0"}, "MAX_BATCH_ITEMS must be"),
        ({"RATE_LIMIT": "fast"}, "RATE_LIMIT must be a whole number"),
        ({"DB": "postgres://nobody@127.0.0.1:1/none"}, "cannot be opened"),
    ],
)
def test_bad_settings_are_refused_with_a_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(SERVER_DIR / "serve.py")],
        env={**os.environ, "DB": str(tmp_path / "x.db"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
