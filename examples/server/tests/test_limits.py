"""Rate limits per key: the 429 body and Retry-After, what a key is, the
health probe left alone, one count shared through the real Redis by several
apps and server processes, and memory when Redis is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import ingest
import pytest
import redis
import requests
from flask import g

from conftest import SERVER_DIR, ServerProcess, addressed, redis_url
from ingest_server import create_app
from ingest_server.auth import identify
from ingest_server.limits import DEFAULT_RATE_LIMIT, limit_key, rate_limit_from_env

# A burst this long stays inside one window: a fixed window opens at a key's
# first request and lasts one second.
BURST_SECONDS = 0.8


@pytest.fixture
def limits_db(tmp_path: Path) -> Path:
    return tmp_path / "limits.db"


@pytest.fixture
def make_app(limits_db: Path) -> Any:
    apps: list[Any] = []

    def make(**kw: Any) -> Any:
        app = addressed(create_app(limits_db, **kw))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ingest"].close()


def token(db: Path | str) -> str:
    """A new admin key in the store at `db` (a key of its own: a count of its own)."""
    with ingest.Ingestor(str(db)) as ing:
        return str(ing.add_key(admin="limits-" + uuid.uuid4().hex[:8])["token"])


@pytest.fixture
def new_token(limits_db: Path) -> Any:
    return partial(token, limits_db)


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def burst(send: Any, n: int) -> list[int]:
    started = time.monotonic()
    statuses = [send(i) for i in range(n)]
    elapsed = time.monotonic() - started
    assert elapsed < BURST_SECONDS, f"the burst took {elapsed:.2f} s: too slow to test a window"
    return statuses


def test_over_the_limit_is_429_with_retry_after_and_the_json_error(
    make_app: Any, new_token: Any
) -> None:
    client = make_app(rate_limit=5, redis_url="").test_client()
    tok = new_token()
    statuses = burst(lambda _: client.get("/api/stats", headers=bearer(tok)).status_code, 8)
    assert statuses == [200] * 5 + [429] * 3
    r = client.get("/api/stats", headers=bearer(tok))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.headers["Content-Type"] == "application/json"
    body = r.get_json()
    assert body["error"] == "rate_limited"
    assert body["retry_after"] == 1
    assert "5 requests" in body["message"]
    # Waiting as long as told is enough.
    time.sleep(int(r.headers["Retry-After"]))
    assert client.get("/api/stats", headers=bearer(tok)).status_code == 200


def test_every_route_draws_on_one_allowance_but_health(make_app: Any, new_token: Any) -> None:
    client = make_app(rate_limit=3, redis_url="").test_client()
    h = bearer(new_token())
    routes = ["/api/stats", "/api/events", "/api/aggregate"]
    assert [client.get(p, headers=h).status_code for p in routes] == [200, 200, 200]
    assert client.post("/api/events", json={}, headers=h).status_code == 429
    assert client.get("/metrics", headers=h).status_code == 429
    # The probe of a load balancer is never turned away; nor are the page's
    # files, nor paths that lead nowhere (404 costs nothing).
    for path, status in (("/api/health", 200), ("/static/style.css", 200), ("/nope", 404)):
        for _ in range(10):
            with client.get(path, headers=h) as r:  # a file response holds its file open
                assert r.status_code == status


def test_each_key_has_its_own_allowance(make_app: Any, new_token: Any) -> None:
    client = make_app(rate_limit=2, redis_url="").test_client()
    a, b = bearer(new_token()), bearer(new_token())
    assert [client.get("/api/stats", headers=a).status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/api/stats", headers=b).status_code for _ in range(3)] == [200, 200, 429]
    # No Authorization: the address is the key (the test client's is 127.0.0.1).
    assert client.get("/api/stats").status_code == 200


def test_limit_key(make_app: Any, new_token: Any) -> None:
    app = make_app(rate_limit=0)
    tok = new_token()
    key_id = tok.split("_")[1]
    addr = {"REMOTE_ADDR": "192.0.2.7"}
    cases = {
        f"Bearer {tok}": "key:" + key_id,
        f"bearer   {tok}  ": "key:" + key_id,
        # No valid key: the address's allowance, so that guessing keys is limited.
        f"Bearer {tok[:-1]}x": "addr:192.0.2.7",
        "Bearer s3cret": "addr:192.0.2.7",
        "Basic dXNlcjpwdw==": "addr:192.0.2.7",
    }
    ing = app.extensions["ingest"].ingestor
    for header, key in cases.items():
        with app.test_request_context(headers={"Authorization": header}, environ_base=addr):
            g.ingest_caller = identify(ing)
            assert limit_key() == key, header
    with app.test_request_context(environ_base=addr):
        g.ingest_caller = identify(ing)
        assert limit_key() == "addr:192.0.2.7"


def test_wrong_keys_share_their_address_allowance(make_app: Any) -> None:
    # Each guess a new token: were each its own key, none would ever be limited.
    client = make_app(rate_limit=3, redis_url="").test_client()
    statuses = burst(
        lambda i: client.get("/api/stats", headers=bearer(f"ik_{i:016x}_{'0' * 64}")).status_code,
        5,
    )
    assert statuses == [401, 401, 401, 429, 429]


def test_rate_limit_setting() -> None:
    assert rate_limit_from_env(None) == DEFAULT_RATE_LIMIT
    assert rate_limit_from_env(" ") == DEFAULT_RATE_LIMIT
    assert rate_limit_from_env("0") == 0
    assert rate_limit_from_env("50") == 50
    for bad in ("-1", "1.5", "fast"):
        with pytest.raises(ValueError, match="RATE_LIMIT"):
            rate_limit_from_env(bad)


def test_zero_turns_limits_off(make_app: Any) -> None:
    client = make_app(rate_limit=0).test_client()
    assert {client.get("/api/stats").status_code for _ in range(50)} == {200}


def test_apps_sharing_redis_share_one_count_per_key(make_app: Any, new_token: Any) -> None:
    url = redis_url()
    # Three apps stand for three workers or instances: alone, each would let
    # all 4 through; together they let 4 through in all.
    clients = [make_app(rate_limit=4, redis_url=url).test_client() for _ in range(3)]
    tok = new_token()
    statuses = burst(
        lambda i: clients[i % 3].get("/api/stats", headers=bearer(tok)).status_code, 12
    )
    assert statuses.count(200) == 4, statuses
    assert statuses.count(429) == 8, statuses
    # Redis holds the count under the key's id, never its secret.
    with redis.Redis.from_url(url) as r:
        keys = [k.decode() for k in r.scan_iter(match="*ingest*", count=1000)]
    key_id, secret = tok.split("_")[1:]
    assert any(f"key:{key_id}" in k for k in keys), keys
    assert not any(secret in k for k in keys)


def test_an_unreachable_redis_falls_back_to_memory(make_app: Any, new_token: Any) -> None:
    # Nothing listens on port 1 of the loopback: every call to Redis fails at once.
    client = make_app(rate_limit=3, redis_url="redis://127.0.0.1:1/0").test_client()
    h = bearer(new_token())
    started = time.monotonic()
    statuses = [client.get("/api/stats", headers=h).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert time.monotonic() - started < 5


def test_two_server_processes_share_the_limit_through_redis(tmp_path: Path) -> None:
    url = redis_url()
    env = {"RATE_LIMIT": "5", "REDIS_URL": url}
    servers = [
        ServerProcess(tmp_path / "shared.db", tmp_path / f"server{i}.log", env=env)
        for i in range(2)
    ]
    try:
        h = bearer(token(tmp_path / "shared.db"))
        with requests.Session() as s:
            statuses = burst(
                lambda i: (
                    s.get(servers[i % 2].base + "/api/stats", headers=h, timeout=10).status_code
                ),
                10,
            )
            assert statuses.count(200) == 5, statuses
            r = s.get(servers[0].base + "/api/stats", headers=h, timeout=10)
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "1"
            assert r.json()["error"] == "rate_limited"
            # Health is answered by both, limited or not.
            for server in servers:
                assert s.get(server.base + "/api/health", headers=h, timeout=10).status_code == 200
    finally:
        for server in servers:
            server.stop()


def test_make_serve_workers_share_the_limit_through_redis(tmp_path: Path) -> None:
    # RATE_LIMIT and REDIS_URL reach every worker of `make serve`: one count
    # per key across the two, where each alone would let 5 through.
    env = {"RATE_LIMIT": "5", "REDIS_URL": redis_url()}
    server = ServerProcess(tmp_path / "s.db", tmp_path / "s.log", serve=True, env=env)
    url = server.base + "/api/stats"
    try:
        # Sent from several threads at once, so that both workers take some
        # (one worker taking all would say nothing of a shared count); each
        # burst with a token of its own, sent again when one worker took all.
        for _ in range(10):
            get = partial(requests.get, url, headers=bearer(server.add_key(admin="b")), timeout=10)
            started = time.monotonic()
            with ThreadPoolExecutor(6) as pool:
                answers = [f.result() for f in [pool.submit(get) for _ in range(12)]]
            elapsed = time.monotonic() - started
            assert elapsed < BURST_SECONDS, f"the burst took {elapsed:.2f} s: too slow"
            statuses = [r.status_code for r in answers]
            assert statuses.count(200) == 5, statuses
            assert statuses.count(429) == 7, statuses
            if len({r.headers["X-Ingest-Worker"] for r in answers}) == 2:
                break
        else:
            raise AssertionError("one worker took every request of every burst")
    finally:
        server.stop()
    assert "rate limit: 5/s a key, counted in Redis" in server.log_text()


def test_the_server_refuses_to_start_on_a_bad_rate_limit(tmp_path: Path) -> None:
    env = {**os.environ, "RATE_LIMIT": "fast", "DB": str(tmp_path / "x.db"), "PORT": "1"}
    run = subprocess.run(
        [sys.executable, str(SERVER_DIR / "app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "RATE_LIMIT must be a whole number" in run.stderr
    assert "Traceback" not in run.stderr
