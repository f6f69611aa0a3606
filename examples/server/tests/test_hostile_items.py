"""Issue 16 over HTTP: hostile input one item at a time. The server hands
the body's text to the library, which rejects each item it cannot keep
alone, with its reason; only text that is not JSON fails a request. A key
that matches a different stored event is a conflict, one name or instant
spelled many ways is one, and dead letters stay bounded and readable.

Each test runs against a real server process on a SQLite file and on a
PostgreSQL schema; the few that need other settings than the server's
(another dedup key, a larger body limit) run the same app in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from conftest import BACKENDS, FlaskApi, HttpApi, Reply, ServerProcess, store_on, strict_json
from ingest_server import create_app


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpApi]:
    """One real server per backend, shared by this module's tests: each test
    uses client ids of its own."""
    d = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with store_on(request.param, d) as db, requests.Session() as session:
        process = ServerProcess(db, d / "server.log")
        try:
            yield HttpApi(process.base, session)
        finally:
            process.stop()


def post(api: Any, text: str, status: int) -> Reply:
    r = api.request("POST", "/api/events", data=text)
    assert r.status == status, r.text
    strict_json(r.text)
    return r


def codes(outcome: dict[str, Any]) -> list[str]:
    return [x["code"] for x in outcome["reasons"]]


def count(api: Any, client: str) -> int:
    r = api.request("GET", "/api/aggregate", params={"clientId": client})
    assert r.status == 200, r.text
    return int(r.body["count"])


def stats(api: Any) -> dict[str, int]:
    r = api.request("GET", "/api/stats")
    assert r.status == 200, r.text
    return {k: v for k, v in r.body.items() if isinstance(v, int)}


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def dead_letters(api: Any, limit: int = 1000) -> list[dict[str, Any]]:
    r = api.request("GET", "/api/rejected", params={"limit": limit})
    assert r.status == 200, r.text
    # Parsed strictly: a listing must stay JSON whatever was sent.
    return list(strict_json(r.text)["items"])


def hostile(uid: str) -> list[tuple[str, str]]:
    """Items that are JSON but cannot be kept as events, each with the code it
    is rejected with. Each holds `uid`, so its dead letter can be found."""
    base = f'"source": "{uid}", "amount": 1, "ts": 0'
    deep = "[" * 130 + "1" + "]" * 130
    return [
        (f'{{{base}, "note": "\\ud800"}}', "invalid_text"),
        (f'{{{base}, "\\udfff": 1}}', "invalid_text"),
        (f'{{"source": "{uid}\\udc00x", "amount": 1, "ts": 0}}', "invalid_text"),
        (f'{{{base}, "x": 1e400}}', "not_finite"),
        (f'{{{base}, "x": {{"y": [2, -1e400]}}}}', "not_finite"),
        (f'{{"source": "{uid}", "amount": 1e400, "ts": 0}}', "not_finite"),
        (f'{{{base}, "x": {deep}}}', "too_deep"),
        (f'{{{base}, "x": {{"a": 1, "$serde_json::private::Number": "1"}}}}', "reserved_key"),
        (f'{{{base}, "$serde_json::private::RawValue": "1"}}', "reserved_key"),
        (f'"{uid}"', "not_an_object"),
    ]


def good(uid: str, i: int) -> str:
    return json.dumps({"source": uid, "metric": "ok", "amount": i, "ts": "2024-01-01"})


def test_each_bad_item_of_a_batch_is_rejected_alone(server: HttpApi, uid: str) -> None:
    items = hostile(uid)
    before = stats(server)
    texts = [t for i, (text, _) in enumerate(items) for t in (good(uid, i), text)]
    r = post(server, "[" + ", ".join(texts) + "]", 200)
    results = r.body["results"]
    assert len(results) == len(texts)
    for i, (text, code) in enumerate(items):
        ok, bad = results[2 * i], results[2 * i + 1]
        assert (ok["status"], ok["http_status"]) == ("accepted", 201), ok
        assert (bad["status"], bad["http_status"], codes(bad)) == ("rejected", 422, [code]), text
        assert bad["id"] is None and bad["event"] is None
        assert bad["reasons"][0]["message"], bad
    n = len(items)
    assert r.body["counts"] == {"accepted": n, "duplicate": 0, "conflict": 0, "rejected": n}
    assert count(server, uid) == n

    # Alone, each is a 422 with the same reason, and a retry of its dead letter.
    for text, code in items:
        assert codes(post(server, text, 422).body) == [code], text
    assert changed(before, stats(server)) == {
        "accepted": n,
        "rejected": 2 * n,
        "stored_events": n,
        "stored_rejected": n,
    }
    ours = [x for x in dead_letters(server) if uid in json.dumps(x["raw"])]
    assert sorted(codes(x)[0] for x in ours) == sorted(code for _, code in items)
    for x in ours:
        assert x["attempts"] == 2, x
        assert isinstance(x["raw_bytes"], int) and x["raw_bytes"] > 0, x
        # Only a plain string is kept exactly: each other copy is JSON
        # standing in for what JSON readers could not take back whole.
        assert x["raw_exact"] is (codes(x) == ["not_an_object"]), x
    events = server.request("GET", "/api/events", params={"clientId": uid, "limit": 100})
    assert len(strict_json(events.text)["items"]) == n


@pytest.mark.parametrize(
    ("text", "contains"),
    [
        ('[GOOD, GOOD, {"a" 1}]', "item 2"),
        ('[GOOD, {"amount": NaN}]', "item 1"),
        ('[{"amount": Infinity}, GOOD]', "item 0"),
        ('{"source": "UID", "amount": -Infinity, "ts": 0}', "not valid JSON"),
        ("[GOOD, " + "[" * 100_000, "item 1"),
    ],
    ids=["third-item", "nan", "infinity", "one-event", "brackets"],
)
def test_only_text_that_is_not_json_fails_the_request(
    server: HttpApi, uid: str, text: str, contains: str
) -> None:
    before = stats(server)
    body = text.replace("GOOD", good(uid, 1)).replace("UID", uid)
    r = post(server, body, 400)
    assert r.body["error"] == "malformed_json", r.text
    assert contains in r.body["message"], r.body["message"]
    # Nothing of it is kept, not even the good items before the bad one.
    assert count(server, uid) == 0
    assert changed(before, stats(server)) == {}


def test_a_different_event_under_a_stored_key_is_a_conflict(server: HttpApi, uid: str) -> None:
    # The built-in key is (client_id, metric, timestamp, amount): an event
    # with those and another event_id is not the one stored.
    first = {"source": uid, "metric": "sales", "value": 10, "ts": "2025-01-01", "event_id": "e1"}
    stored = post(server, json.dumps({**first, "note": "first"}), 201).body
    before = stats(server)
    r = post(server, json.dumps({**first, "event_id": "e2", "note": "second"}), 409)
    assert (r.body["status"], r.body["id"]) == ("conflict", stored["id"])
    assert r.body["event"] == stored["event"], "the stored event, not the one sent"
    assert [(x["code"], x["field"]) for x in r.body["reasons"]] == [("conflict", "event_id")]
    assert 'stored "e1", sent "e2"' in r.body["reasons"][0]["message"], r.body
    assert f"conflict with event {stored['id']}" in r.body["message"]

    # A retry with other attributes is a duplicate, answered with the stored event.
    r = post(server, json.dumps({**first, "note": "retry"}), 200)
    assert (r.body["status"], r.body["id"], r.body["event"]) == (
        "duplicate",
        stored["id"],
        stored["event"],
    )
    assert r.body["event"]["attributes"] == {"note": "first"}

    # In a batch, each item with the status it would have alone.
    r = post(server, json.dumps([{**first, "event_id": "e3"}, first]), 200)
    assert [(x["status"], x["http_status"]) for x in r.body["results"]] == [
        ("conflict", 409),
        ("duplicate", 200),
    ]
    assert r.body["counts"] == {"accepted": 0, "duplicate": 1, "conflict": 1, "rejected": 0}
    assert r.body["results"][0]["event"] == stored["event"]

    assert changed(before, stats(server)) == {"conflict": 2, "duplicate": 2}
    listed = server.request("GET", "/api/events", params={"clientId": uid}).body["items"]
    assert [(e["id"], e["event_id"]) for e in listed] == [(stored["id"], "e1")]


def test_an_envelope_source_cannot_be_overridden_by_its_payload(server: HttpApi, uid: str) -> None:
    other = uid + "-other"
    body = {"source": uid, "payload": {"source": other, "metric": "m", "value": 1, "ts": 0}}
    r = post(server, json.dumps(body), 422)
    assert [(x["code"], x["field"]) for x in r.body["reasons"]] == [
        ("conflicting_fields", "client_id")
    ]
    assert (count(server, uid), count(server, other)) == (0, 0)


def test_names_that_look_the_same_are_one_client(server: HttpApi, uid: str) -> None:
    name = f"{uid}-caf\u00e9"  # NFC
    spellings = [
        name,
        f"{uid}-cafe\u0301",  # NFD
        f"{name}\u200b",  # a zero-width space
        f" \ufeff{name}\u3000",  # a byte-order mark, an ideographic space
    ]
    statuses = []
    for s in spellings:
        r = server.request("POST", "/api/events", json_body={"source": s, "amount": 1, "ts": 0})
        statuses.append(r.status)
        assert r.body["event"]["client_id"] == name, r.text
    assert statuses == [201, 200, 200, 200]
    # Found however the query spells it.
    r = server.request("GET", f"/api/aggregate?clientId={quote(uid)}-cafe%CC%81")
    assert (r.status, r.body["count"]) == (200, 1), r.text
    r = server.request("GET", "/api/events", params={"clientId": f"{name}\u2060"})
    assert [e["client_id"] for e in r.body["items"]] == [name]


def test_one_instant_is_one_event_and_a_leap_second_none(server: HttpApi, uid: str) -> None:
    r = post(server, f'{{"source": "{uid}", "amount": 1, "ts": 1700000000.9999}}', 201)
    assert r.body["event"]["timestamp"] == "2023-11-14T22:13:20.999Z"
    again = post(
        server, f'{{"source": "{uid}", "amount": 1, "ts": "2023-11-14T22:13:20.9999Z"}}', 200
    )
    assert (again.body["status"], again.body["id"]) == ("duplicate", r.body["id"])

    leap = post(server, f'{{"source": "{uid}", "amount": 2, "ts": "2016-12-31T23:59:60Z"}}', 422)
    assert [(x["code"], x["field"]) for x in leap.body["reasons"]] == [
        ("bad_timestamp", "timestamp")
    ]
    assert "leap second" in leap.body["reasons"][0]["message"]
    assert count(server, uid) == 1


def test_dead_letters_of_huge_junk_are_capped(server: HttpApi, uid: str) -> None:
    junk = {"source": uid, "blob": "y" * 300_000}
    r = post(server, json.dumps(junk), 422)
    assert {x["field"] for x in r.body["reasons"]} == {"amount", "timestamp"}
    letter = dead_letters(server, 1)[0]
    assert letter["reasons"] == r.body["reasons"]
    # A JSON string of the start of its compact text, within 64 KiB; its
    # size is the whole's.
    assert isinstance(letter["raw"], str) and letter["raw_exact"] is False, letter["raw"][:100]
    assert len(json.dumps(letter["raw"]).encode()) <= 64 << 10
    assert letter["raw"].startswith('{"blob":"yyyy')
    assert letter["raw_bytes"] == len(json.dumps(junk, separators=(",", ":")))


# ---- settings the server process does not take: the same app, in this process ----


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def app_with(backend: str, directory: Path, **settings: Any) -> Iterator[FlaskApi]:
    with store_on(backend, directory) as db:
        app = create_app(db, **settings)
        try:
            yield FlaskApi(app)
        finally:
            app.extensions["ingest"].close()


@pytest.fixture
def by_event_id(backend: str, tmp_path: Path) -> Iterator[FlaskApi]:
    yield from app_with(backend, tmp_path, rules={"dedup_key": ["client_id", "event_id"]})


@pytest.fixture
def big_bodies(backend: str, tmp_path: Path) -> Iterator[FlaskApi]:
    yield from app_with(backend, tmp_path, max_body_bytes=4 << 20)


def test_a_conflict_names_every_field_that_differs(by_event_id: FlaskApi, uid: str) -> None:
    api = by_event_id
    first = {
        "client_id": uid,
        "metric": "sales",
        "amount": 10,
        "ts": "2025-01-01",
        "event_id": "e1",
    }
    stored = post(api, json.dumps(first), 201).body
    other = {**first, "metric": "refunds", "amount": 99999, "ts": "2025-05-05"}
    r = post(api, json.dumps(other), 409)
    assert (r.body["status"], r.body["id"], r.body["event"]) == (
        "conflict",
        stored["id"],
        stored["event"],
    )
    assert [(x["code"], x["field"]) for x in r.body["reasons"]] == [
        ("conflict", "metric"),
        ("conflict", "amount"),
        ("conflict", "timestamp"),
    ]
    assert "stored 10, sent 99999" in r.body["reasons"][1]["message"], r.body["reasons"]
    for field in ("metric", "amount", "timestamp"):
        assert field in r.body["message"]
    # Nothing changed: one event, its amount.
    r = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert (r.body["count"], r.body["sum"]) == (1, 10.0)
    r = post(api, json.dumps({**first, "try": 2}), 200)
    assert (r.body["status"], r.body["event"]["attributes"]) == ("duplicate", {})


def test_an_item_over_the_size_limit_is_rejected_alone(big_bodies: FlaskApi, uid: str) -> None:
    # The server's own body limit (1 MiB) is the library's event limit: only
    # a larger body can carry an event too large.
    api = big_bodies
    event = {"source": uid, "amount": 1, "ts": 0, "pad": "x" * (2 << 20)}
    huge = json.dumps(event)
    r = post(api, f"[{good(uid, 1)}, {huge}, {good(uid, 2)}]", 200)
    assert [x["status"] for x in r.body["results"]] == ["accepted", "rejected", "accepted"]
    assert codes(r.body["results"][1]) == ["too_large"]
    assert codes(post(api, huge, 422).body) == ["too_large"]
    assert count(api, uid) == 2
    letter = dead_letters(api, 1)[0]
    assert (letter["attempts"], letter["raw_exact"]) == (2, False)
    assert letter["raw_bytes"] == len(json.dumps(event, separators=(",", ":")))
