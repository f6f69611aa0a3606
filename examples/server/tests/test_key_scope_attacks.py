"""What a hostile holder of a client key tried (issue 20's promises, tried
as an attacker would); each test is a way a review found to break one,
kept so that it stays closed:

- a client key writes ONLY as its client: another client's name under any
  alias or envelope level is 403 with NOTHING stored, not an event and not
  a dead letter;
- a client key reads only its own events: no answer to it ever carries
  another client's stored event;
- tokens are never logged;
- one client's key cannot destroy another client's data.

The scope cases run through Flask's test client with keys required (the
library decides them, so every server path answers alike); the log case
runs against a real `make serve` process, whose access log is gunicorn's."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import FlaskApi, Reply, ServerProcess, addressed
from ingest_server import create_app

BASE = {"metric": "m", "value": 1, "timestamp": "2024-01-01"}


class Scoped:
    """An app with keys required, and keys for it."""

    def __init__(self, tmp_path: Path, rules: dict[str, Any] | None = None) -> None:
        db = tmp_path / f"attack-{uuid.uuid4().hex[:8]}.db"
        self.app = addressed(create_app(db, rules=rules, require_keys=True))
        self.app.config["TESTING"] = True
        self.ing = self.app.extensions["ingest"].ingestor
        self.api = FlaskApi(self.app)
        self.admin = self.key(admin="tests")

    def key(self, client_id: str | None = None, admin: str | None = None) -> str:
        return str(self.ing.add_key(client_id, admin=admin)["token"])

    def client(self) -> tuple[str, str]:
        name = "k-" + uuid.uuid4().hex[:10]
        return name, self.key(name)

    def post(self, token: str, body: str | Any) -> Reply:
        data = body if isinstance(body, str) else json.dumps(body)
        return self.api.request(
            "POST", "/api/events", data=data, headers={"Authorization": f"Bearer {token}"}
        )

    def stored(self) -> tuple[int, int]:
        """Events and dead letters in the whole store."""
        s = self.ing.stats()
        return int(s["stored_events"]), int(s["stored_rejected"])

    def close(self) -> None:
        self.app.extensions["ingest"].close()


@pytest.fixture
def scoped(tmp_path: Path) -> Iterator[Scoped]:
    s = Scoped(tmp_path)
    try:
        yield s
    finally:
        s.close()


# ---- writing as another client ----

# Rules' client aliases, in order: source, client, clientId, client_id,
# clientID. Only the first one present at a level is read; a later one that
# names another client is kept as a plain attribute of the caller's event.
LATER_ALIAS = [
    {"source": "{own}", "client": "{other}", **BASE},
    {"client": "{other}", "source": "{own}", **BASE},
    {"clientId": "{own}", "client_id": "{other}", **BASE},
    {"client_id": "{own}", "clientID": "{other}", **BASE},
    # The envelope's top level names the caller under `source` and another
    # client under `client`; its payload names none.
    {"source": "{own}", "client": "{other}", "payload": dict(BASE)},
]


def fill(shape: Any, own: str, other: str) -> Any:
    text = json.dumps(shape).replace("{own}", own).replace("{other}", other)
    return json.loads(text)


@pytest.mark.parametrize("shape", range(len(LATER_ALIAS)))
def test_another_client_under_a_later_alias_is_refused_not_stored(
    scoped: Scoped, shape: int
) -> None:
    """A client key can store an event that names another client, under any
    alias but the first present one: `{"source": "acme", "client": "evil",
    ...}` with acme's key is 201, stored as acme's with the attribute
    `client: "evil"`, where the promise is 403 with nothing stored. (With
    `"source": null` the same body reads `client` and is refused.)"""
    own, token = scoped.client()
    other, _ = scoped.client()
    before = scoped.stored()
    body = fill(LATER_ALIAS[shape], own, other)
    r = scoped.post(token, body)
    assert (r.status, (r.body or {}).get("error")) == (403, "forbidden"), (
        f"{json.dumps(body)} names {other!r} but was answered {r.status}: {r.text}"
    )
    assert scoped.stored() == before, "nothing of the call is stored"


# Items that name another client but are refused before (or without) their
# client being read: the library rejects them alone (422) and keeps a dead
# letter, recorded as the caller's, that holds the other client's name.
PAYLOAD_REST = '"metric": "m", "value": 1, "timestamp": "2024-01-01"'
REJECTED_UNREAD = [
    # An envelope whose payload is not an object: nothing of it is read.
    '{"source": "{other}", "payload": "x"}',
    # The envelope names another client; its payload's client is unreadable.
    '{"source": "{other}", "payload": {"client": "", ' + PAYLOAD_REST + "}}",
    '{"source": "{other}", "payload": {"client": [1], ' + PAYLOAD_REST + "}}",
    # Refused as a whole before any field is read.
    '{"client": "{other}", "metric": "m", "value": 1e400, "timestamp": "2024-01-01"}',
    '{"client": "{other}", "metric": "m", "value": 1, "timestamp": "2024-01-01", "x": '
    + "[" * 200
    + "]" * 200
    + "}",
    '{"client": "{other}", "metric": "\\ud800", "value": 1, "timestamp": "2024-01-01"}',
]


@pytest.mark.parametrize("shape", range(len(REJECTED_UNREAD)))
def test_another_client_in_a_rejected_item_stores_no_dead_letter(
    scoped: Scoped, shape: int
) -> None:
    """An item naming another client that is rejected before its client is
    compared with the key's (a payload that is not an object, an unreadable
    client in the payload under an envelope naming another, a number beyond
    a double, nesting too deep, a lone surrogate) is answered 422 and its
    dead letter is stored as the caller's, holding the other client's name.
    The promise: 403, and nothing stored, not even a dead letter."""
    _own, token = scoped.client()
    other, _ = scoped.client()
    before = scoped.stored()
    text = REJECTED_UNREAD[shape].replace("{other}", other)
    for body in (text, f"[{text}]"):
        r = scoped.post(token, body)
        assert (r.status, (r.body or {}).get("error")) == (403, "forbidden"), (
            f"{text[:120]} names {other!r} but was answered {r.status}: {r.text[:300]}"
        )
    assert scoped.stored() == before, "no dead letter either"
    mine = scoped.api.request("GET", "/api/rejected", headers={"Authorization": f"Bearer {token}"})
    assert other not in mine.text, "another client's name kept as the caller's dead letter"


# ---- reading another client's events ----


def test_a_conflict_never_answers_another_clients_stored_event(tmp_path: Path) -> None:
    """The rules may set a dedup key without client_id (`{"dedup_key":
    ["event_id"]}` is accepted): a client key's event would then meet
    another client's with the same event_id, and a 409 answers with the
    stored event (bob's client id, metric, amount, attributes). So a client
    key cannot write under such rules: 403 naming the rule, nothing of bob's
    shown, nothing stored. An admin key still writes."""
    s = Scoped(tmp_path, rules={"dedup_key": ["event_id"]})
    try:
        bob, _ = s.client()
        _eve, eve_token = s.client()
        secret = {
            "client": bob,
            "metric": "salary",
            "value": 123456,
            "timestamp": "2024-01-01",
            "event_id": "inv-1",
            "note": "bob-only-" + uuid.uuid4().hex[:6],
        }
        r = s.post(s.admin, secret)
        assert r.status == 201, r.text
        probe = {"metric": "probe", "value": 1, "timestamp": "2024-02-02", "event_id": "inv-1"}
        for body in (probe, [probe]):
            r = s.post(eve_token, body)
            assert (r.status, r.body["error"]) == (403, "forbidden"), r.text
            assert "dedup_key" in r.body["message"], r.text
            assert bob not in r.text and secret["note"] not in r.text, r.text
        assert s.stored() == (1, 0)
    finally:
        s.close()


# ---- tokens in logs ----


def test_a_token_sent_as_a_basic_user_is_not_written_to_the_access_log(
    serve_server: ServerProcess, http_session: requests.Session
) -> None:
    """HTTP clients often send an API token as a Basic user with an empty
    password (`curl -u TOKEN:`). The server refuses the scheme (401), but
    gunicorn's access log (`accesslog: "-"`, the default format's `%(u)s`)
    has already written the user: the whole valid token, in plaintext, in
    the server's log."""
    client = "k-" + uuid.uuid4().hex[:10]
    token = serve_server.add_key(client)
    secret = token.rsplit("_", 1)[1]
    for header in (
        "Basic " + base64.b64encode(f"{token}:".encode()).decode(),
        "Basic " + base64.b64encode(f"{token}:x".encode()).decode(),
    ):
        r = http_session.get(
            serve_server.base + "/api/stats", headers={"Authorization": header}, timeout=10
        )
        assert r.status_code == 401, r.text
    # The access log line is written as the answer goes out.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"GET /api/stats HTTP/1.1" 401' not in (
        serve_server.log_text()
    ):
        time.sleep(0.1)
    log = serve_server.log_text()
    assert secret not in log, "the token's secret is in the server's log"


# ---- destroying another client's dead letters ----


def test_a_client_key_cannot_evict_another_clients_dead_letters(scoped: Scoped) -> None:
    """The store keeps at most 10 000 dead letters and evicts the oldest of
    the whole store, whoever's they are; a batch may hold 10 000 items. So
    one request of ~50 KB with acme's key (`[0, 1, 2, ..., 9999]`, each a
    distinct rejection) erases every other client's dead letters: bob's
    rejected inputs, which his key alone could list, are gone, and his
    /api/stats says stored_rejected 0. One client must not be able to
    destroy another's data."""
    bob, bob_token = scoped.client()
    _acme, acme_token = scoped.client()
    r = scoped.post(bob_token, {"metric": "m", "value": "lots", "timestamp": "2024-01-01"})
    assert r.status == 422, r.text
    flood = "[" + ",".join(str(i) for i in range(10_000)) + "]"
    r = scoped.post(acme_token, flood)
    assert r.status == 200, r.text[:300]
    mine = scoped.api.request(
        "GET", "/api/rejected", headers={"Authorization": f"Bearer {bob_token}"}
    )
    assert mine.status == 200, mine.text
    assert [row["client_id"] for row in mine.body["items"]] == [bob], (
        f"bob's dead letter was evicted by acme's junk: {mine.text[:300]}"
    )
