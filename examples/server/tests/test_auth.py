"""API keys (issue 20): who may ask, and what each key may do. Every case
runs through Flask's test client with keys required, and against a real
`make serve` process (two workers over one SQLite file) over HTTP; some
against `make demo`, which needs no key but holds a key it is given to
its scope.

Identity: no key, a key that is not valid (garbage, unknown, a wrong
secret, revoked while the server runs), another scheme: 401 with
WWW-Authenticate. Scope: a client key writes as its client only (a missing
client filled in, another client under any alias or envelope refused whole,
with nothing stored, in JSON, batches and NDJSON alike) and reads only its
own events, dead letters, aggregates and counts; admin routes are 403 to it.
An admin key reads everything."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ingest
import pytest
import requests

from conftest import FlaskApi, HttpApi, Reply, ServerProcess, addressed, event
from ingest_server import create_app

PROTECTED = [
    ("POST", "/api/events"),
    ("GET", "/api/events"),
    ("GET", "/api/rejected"),
    ("GET", "/api/aggregate"),
    ("GET", "/api/stats"),
    ("GET", "/api/simulate-failure"),
    ("POST", "/api/simulate-failure"),
    ("GET", "/metrics"),
]
PUBLIC = ["/", "/api/health", "/api/openapi.json", "/static/style.css"]
ADMIN_ONLY = [
    ("GET", "/api/simulate-failure"),
    ("POST", "/api/simulate-failure"),
    ("GET", "/metrics"),
]


@dataclass
class Keyed:
    """A server that requires keys, and a way to make them in its store."""

    api: Any
    make: Any  # (client_id=None, admin=None) -> token
    revoke: Any  # (key_id) -> bool
    admin: str

    def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        h = dict(headers or {})
        if token is not None:
            h.setdefault("Authorization", f"Bearer {token}")
        return self.api.request(
            method, path, json_body=json_body, data=data, params=params, headers=h
        )

    def client(self) -> tuple[str, str]:
        """A new client id and a key for it."""
        name = "k-" + uuid.uuid4().hex[:10]
        return name, self.make(name)


@pytest.fixture(params=["flask", "serve"])
def keyed(
    request: pytest.FixtureRequest, tmp_path: Path, http_session: requests.Session
) -> Iterator[Keyed]:
    if request.param == "flask":
        app = addressed(create_app(tmp_path / "keys.db", require_keys=True))
        app.config["TESTING"] = True
        ing = app.extensions["ingest"].ingestor

        def make(client_id: str | None = None, admin: str | None = None) -> str:
            return str(ing.add_key(client_id, admin=admin)["token"])

        try:
            yield Keyed(FlaskApi(app), make, ing.revoke_key, make(admin="tests"))
        finally:
            app.extensions["ingest"].close()
    else:
        server: ServerProcess = request.getfixturevalue("serve_server")
        assert server.admin_token is not None

        def revoke(key_id: str) -> bool:
            # In the store, from another process's connection, as manage.py does.
            with ingest.Ingestor(str(server.db)) as ing:
                return bool(ing.revoke_key(key_id))

        yield Keyed(HttpApi(server.base, http_session), server.add_key, revoke, server.admin_token)


def count_of(k: Keyed, client: str) -> int:
    r = k.call("GET", "/api/aggregate", k.admin, params={"clientId": client})
    assert r.status == 200, r.text
    return int(r.body["count"])


def assert_unauthorized(r: Reply, code: str, invalid: bool) -> None:
    assert r.status == 401, r.text
    assert r.body["error"] == code, r.body
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="ingest"'), challenge
    assert ('error="invalid_token"' in challenge) == invalid, challenge


# ---- identity ----


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_key_is_401_with_a_bearer_challenge(keyed: Keyed, method: str, path: str) -> None:
    body = event("nobody") if method == "POST" and path == "/api/events" else None
    r = keyed.call(method, path, None, json_body=body)
    assert_unauthorized(r, "unauthorized", invalid=False)
    assert "Authorization: Bearer" in r.body["message"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_need_no_key(keyed: Keyed, path: str) -> None:
    assert keyed.call("GET", path, None).status == 200


def test_health_shows_the_store_to_admins_only(keyed: Keyed) -> None:
    anonymous = keyed.call("GET", "/api/health", None).body
    assert anonymous["status"] == "ok" and "database" not in anonymous, anonymous
    _, token = keyed.client()
    assert "database" not in keyed.call("GET", "/api/health", token).body
    admin = keyed.call("GET", "/api/health", keyed.admin).body
    assert "database" in admin and "stored_events" in admin, admin


def test_keys_that_are_not_valid_are_401_invalid_token(keyed: Keyed) -> None:
    client, token = keyed.client()
    key_id = token.split("_")[1]
    wrong = [
        "not-a-key",
        "ik_zz_zz",
        f"ik_{'0' * 16}_{'0' * 64}",  # well formed, no such key
        f"ik_{key_id}_{'0' * 64}",  # a real id with a wrong secret
        token[:-1] + ("0" if token[-1] != "0" else "1"),
        token + "0",
        token.upper(),
    ]
    for bad in wrong:
        r = keyed.call("POST", "/api/events", bad, json_body=event(client))
        assert_unauthorized(r, "invalid_token", invalid=True)
        assert r.body["message"] == "the API key is not valid (unknown or revoked)"
    assert count_of(keyed, client) == 0


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "Token abc", "bearer"]
)
def test_another_scheme_or_no_token_is_401(keyed: Keyed, header: str) -> None:
    r = keyed.call("GET", "/api/events", None, headers={"Authorization": header})
    assert_unauthorized(r, "unauthorized", invalid=False)


def test_the_scheme_is_read_in_any_case(keyed: Keyed) -> None:
    _, token = keyed.client()
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = keyed.call("GET", "/api/events", None, headers={"Authorization": f"{scheme} {token}"})
        assert r.status == 200, r.text


def test_a_revoked_key_is_refused_at_once_by_the_running_server(keyed: Keyed) -> None:
    client, token = keyed.client()
    assert keyed.call("POST", "/api/events", token, json_body=event(client)).status == 201
    assert keyed.revoke(token.split("_")[1])
    # Every worker refuses it from the next request on.
    for v in range(6):
        r = keyed.call("POST", "/api/events", token, json_body=event(client, value=v))
        assert_unauthorized(r, "invalid_token", invalid=True)
    assert count_of(keyed, client) == 1


# ---- a client key writes as its client only ----


def test_a_client_key_fills_in_a_missing_client(keyed: Keyed) -> None:
    client, token = keyed.client()
    body = {"metric": "sales", "value": 5, "timestamp": "2024-01-01"}
    r = keyed.call("POST", "/api/events", token, json_body=body)
    assert r.status == 201, r.text
    assert r.body["event"]["client_id"] == client, r.body
    # Its own name under any alias or spelling is its own.
    for own in (
        {"source": client, "payload": {**body, "value": 6}},
        {"clientId": f"  {client} ", **body, "value": 7},
        {"client": client, **body, "value": 8},
    ):
        r = keyed.call("POST", "/api/events", token, json_body=own)
        assert r.status == 201, r.text
    assert count_of(keyed, client) == 4


OTHER_SHAPES = [
    {"source": "{other}", "payload": {"metric": "m", "value": 1, "timestamp": "2024-01-01"}},
    {"client": "{other}", "metric": "m", "value": 1, "timestamp": "2024-01-01"},
    {"clientID": "{other}", "metric": "m", "value": 1, "timestamp": "2024-01-01"},
    {"client_id": " {other}\u200b", "metric": "m", "value": 1, "timestamp": "2024-01-01"},
    # The client named inside the payload of an envelope that names none.
    {"payload": {"client": "{other}", "metric": "m", "value": 1, "timestamp": "2024-01-01"}},
]


def shaped(shape: dict[str, Any], other: str) -> Any:
    return json.loads(json.dumps(shape).replace("{other}", other))


@pytest.mark.parametrize("shape", range(len(OTHER_SHAPES)))
def test_another_clients_event_is_403_and_nothing_is_stored(keyed: Keyed, shape: int) -> None:
    client, token = keyed.client()
    other, _ = keyed.client()
    bad = shaped(OTHER_SHAPES[shape], other)
    r = keyed.call("POST", "/api/events", token, json_body=bad)
    assert r.status == 403, r.text
    assert r.body["error"] == "forbidden", r.body
    assert client in r.body["message"] and "nothing of this call was stored" in r.body["message"]
    # In a batch, beside its own events: the whole batch refused.
    mine = [event(client, value=v) for v in range(3)]
    for body in ([*mine, bad], [bad, *mine]):
        r = keyed.call("POST", "/api/events", token, json_body=body)
        assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
    ndjson = "\n".join(json.dumps(e) for e in [*mine, bad])
    r = keyed.call(
        "POST",
        "/api/events",
        token,
        data=ndjson,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
    assert count_of(keyed, client) == 0
    assert count_of(keyed, other) == 0


def test_a_client_keys_rejections_stay_its_own(keyed: Keyed) -> None:
    client, token = keyed.client()
    r = keyed.call("POST", "/api/events", token, json_body={"metric": "m", "value": 1})
    assert (r.status, r.body["status"]) == (422, "rejected"), r.text
    # An event naming another client is refused before it could be a dead
    # letter of anyone's.
    assert count_of(keyed, client) == 0


# ---- a client key reads its own ----


def test_a_client_key_reads_only_its_own_events_and_totals(keyed: Keyed) -> None:
    a, token_a = keyed.client()
    b, token_b = keyed.client()
    for v in range(3):
        assert keyed.call("POST", "/api/events", token_a, json_body=event(a, value=v)).status == 201
    assert keyed.call("POST", "/api/events", token_b, json_body=event(b, value=100)).status == 201

    r = keyed.call("GET", "/api/events", token_a, params={"limit": 1000})
    assert r.status == 200, r.text
    assert {e["client_id"] for e in r.body["items"]} == {a}
    assert len(r.body["items"]) == 3
    for name in ("clientId", "client_id"):
        r = keyed.call("GET", "/api/events", token_a, params={name: b})
        assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
        assert keyed.call("GET", "/api/events", token_a, params={name: a}).status == 200

    r = keyed.call("GET", "/api/aggregate", token_a)
    assert r.status == 200, r.text
    assert (r.body["count"], r.body["sum"]) == (3, 3), r.body
    r = keyed.call("GET", "/api/aggregate", token_a, params={"groupBy": "client_id"})
    assert [g["client_id"] for g in r.body["groups"]] == [a], r.body
    r = keyed.call("GET", "/api/aggregate", token_a, params={"clientId": b})
    assert (r.status, r.body["error"]) == (403, "forbidden"), r.text

    # Its counts, not the store's.
    r = keyed.call("GET", "/api/stats", token_a)
    assert r.status == 200, r.text
    assert r.body == {"client_id": a, "stored_events": 3, "stored_rejected": 0}, r.body


def test_a_client_key_lists_only_its_own_dead_letters(keyed: Keyed) -> None:
    a, token_a = keyed.client()
    b, token_b = keyed.client()
    missing_ts = {"metric": "m", "value": 1}
    assert keyed.call("POST", "/api/events", token_a, json_body=missing_ts).status == 422
    r = keyed.call("POST", "/api/events", token_b, json_body={**missing_ts, "value": 2})
    assert r.status == 422, r.text
    for path, params in (("/api/rejected", {}), ("/api/events", {"status": "rejected"})):
        r = keyed.call("GET", path, token_a, params={**params, "limit": 1000})
        assert r.status == 200, r.text
        assert [d["client_id"] for d in r.body["items"]] == [a], r.body
    r = keyed.call("GET", "/api/stats", token_b)
    assert r.body["stored_rejected"] == 1, r.body
    # The admin sees both.
    r = keyed.call("GET", "/api/rejected", keyed.admin, params={"limit": 1000})
    assert {a, b} <= {d["client_id"] for d in r.body["items"]}


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
def test_admin_routes_are_403_to_a_client_key(keyed: Keyed, method: str, path: str) -> None:
    _, token = keyed.client()
    body = {"point": "before_insert", "times": 5} if method == "POST" else None
    r = keyed.call(method, path, token, json_body=body)
    assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
    # The switch was not touched: the admin's view of it is off.
    state = keyed.call("GET", "/api/simulate-failure", keyed.admin)
    assert state.status == 200 and state.body["enabled"] is False, state.text


def test_an_admin_key_reads_everything_and_drives_the_switch(keyed: Keyed) -> None:
    a, token_a = keyed.client()
    assert keyed.call("POST", "/api/events", token_a, json_body=event(a)).status == 201
    r = keyed.call("GET", "/api/events", keyed.admin, params={"clientId": a})
    assert r.status == 200 and len(r.body["items"]) == 1, r.text
    r = keyed.call("GET", "/api/stats", keyed.admin)
    assert "accepted" in r.body and "failure" in r.body, r.body
    assert keyed.call("GET", "/metrics", keyed.admin).status == 200
    # An admin writes as whichever client an event names.
    b = "k-" + uuid.uuid4().hex[:10]
    assert keyed.call("POST", "/api/events", keyed.admin, json_body=event(b)).status == 201
    assert count_of(keyed, b) == 1
    r = keyed.call("POST", "/api/simulate-failure", keyed.admin, json_body={"enabled": False})
    assert r.status == 200, r.text


# ---- make demo: no key needed, a key given still holds ----


@pytest.fixture
def demo(app: Any) -> Keyed:
    ing = app.extensions["ingest"].ingestor

    def make(client_id: str | None = None, admin: str | None = None) -> str:
        return str(ing.add_key(client_id, admin=admin)["token"])

    return Keyed(FlaskApi(app), make, ing.revoke_key, make(admin="tests"))


def test_the_demo_needs_no_key_but_holds_a_key_to_its_scope(demo: Keyed) -> None:
    other = "k-" + uuid.uuid4().hex[:10]
    # No key: the person at the machine, who may do everything.
    assert demo.call("POST", "/api/events", None, json_body=event(other)).status == 201
    assert demo.call("GET", "/api/simulate-failure", None).status == 200
    health = demo.call("GET", "/api/health", None).body
    assert "database" in health, health
    # A client key is held to its client; a wrong key is refused.
    _, token = demo.client()
    r = demo.call("POST", "/api/events", token, json_body=event(other, value=2))
    assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
    assert demo.call("GET", "/api/simulate-failure", token).status == 403
    r = demo.call("GET", "/api/events", "ik_nope")
    assert_unauthorized(r, "invalid_token", invalid=True)


def test_make_demo_answers_without_a_key(live_server: ServerProcess) -> None:
    # The original design's curl tests run as written against make demo
    # (tests/test_readme.py); here: the real process, no key, every route.
    with requests.Session() as s:
        for method, path in PROTECTED:
            body = event("demo-" + uuid.uuid4().hex[:8]) if path == "/api/events" else None
            if path == "/api/simulate-failure" and method == "POST":
                body = {"enabled": False}
            r = s.request(method, live_server.base + path, json=body, timeout=30)
            assert r.status_code in (200, 201), (method, path, r.text)
