"""What a hostile holder of a client key can still do (issue 20's promises,
tried as an attacker would). Each test here shows a promise broken:

- a client key writes ONLY as its client: another client's name under any
  alias or envelope level is 403 with NOTHING stored, not an event and not
  a dead letter;
- a client key reads only its own events: no answer to it ever carries
  another client's stored event;
- tokens are never logged.

The scope cases run through Flask's test client with keys required (the
library decides them, so every server path answers alike); the log case
runs against a real `make serve` process, whose access log is gunicorn's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FlaskApi, Reply, addressed
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
