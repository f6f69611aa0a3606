"""Every route, status code and error body, run twice: through Flask's test
client and against the real server over HTTP (the `api` fixture)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import ingest
import pytest

from conftest import FlaskApi, load_scenario, scenario_files, strict_json
from ingest_server import MAX_BODY_BYTES, create_app


def event(client: str, *, metric: str = "sales", value: Any = 1200, ts: str = "2024-01-01") -> dict:
    return {"source": client, "payload": {"metric": metric, "value": value, "timestamp": ts}}


def count(api: Any, client: str) -> int:
    r = api.request("GET", "/api/aggregate", params={"clientId": client})
    assert r.status == 200, r.text
    return int(r.body["count"])


def assert_error(r: Any, status: int, code: str | None = None, contains: str = "") -> None:
    assert r.status == status, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert isinstance(r.body, dict) and isinstance(r.body.get("message"), str), r.text
    assert r.body["message"]
    if code:
        assert r.body.get("error") == code, r.text
    assert contains.lower() in r.body["message"].lower(), r.body["message"]


# ---- POST /api/events ----


def test_accepted_then_duplicate_is_stored_once(api: Any, uid: str) -> None:
    r = api.request("POST", "/api/events", json_body=event(uid))
    assert r.status == 201, r.text
    assert r.body["status"] == "accepted"
    assert r.body["reasons"] == []
    assert r.body["event"] == {
        "client_id": uid,
        "metric": "sales",
        "amount": 1200.0,
        "timestamp": "2024-01-01T00:00:00.000Z",
        "attributes": {},
        "event_id": None,
    }
    first = r.body["id"]
    assert isinstance(first, int)
    # The same event spelled differently is the same event.
    again = {"client_id": uid, "metric": "Sales", "amount": "1200", "ts": "2024-01-01T00:00:00Z"}
    r = api.request("POST", "/api/events", json_body=again)
    assert r.status == 200, r.text
    assert (r.body["status"], r.body["id"]) == ("duplicate", first)
    assert "duplicate" in r.body["message"]
    assert count(api, uid) == 1


def test_rejected_has_every_reason_and_is_not_stored(api: Any, uid: str) -> None:
    r = api.request(
        "POST", "/api/events", json_body={"source": uid, "payload": {"metric": "views"}}
    )
    assert r.status == 422, r.text
    assert r.body["status"] == "rejected"
    assert r.body["id"] is None and r.body["event"] is None
    pairs = {(x["code"], x["field"]) for x in r.body["reasons"]}
    assert {("missing_field", "amount"), ("missing_field", "timestamp")} <= pairs
    assert all(x["message"] for x in r.body["reasons"])
    assert "amount" in r.body["message"] and "timestamp" in r.body["message"]
    assert count(api, uid) == 0
    listed = api.request("GET", "/api/rejected", params={"limit": 1000}).body["items"]
    assert any(item["raw"] == {"source": uid, "payload": {"metric": "views"}} for item in listed)


def test_a_json_value_that_is_not_an_object_is_rejected(api: Any) -> None:
    r = api.request("POST", "/api/events", data="42")
    assert r.status == 422, r.text
    assert r.body["reasons"][0]["code"] == "not_an_object"


def test_batch_answers_per_item_outcomes_in_order(api: Any, uid: str) -> None:
    batch = [
        event(uid, value=1),
        event(uid, value="1"),  # the same event: a duplicate inside the batch
        {"source": uid, "payload": {"metric": "views"}},
        event(uid, value=2, ts="2024-01-02"),
    ]
    r = api.request("POST", "/api/events", json_body=batch)
    assert r.status == 200, r.text
    statuses = [x["status"] for x in r.body["results"]]
    assert statuses == ["accepted", "duplicate", "rejected", "accepted"]
    assert [x["http_status"] for x in r.body["results"]] == [201, 200, 422, 201]
    assert r.body["results"][1]["id"] == r.body["results"][0]["id"]
    assert r.body["counts"] == {"accepted": 2, "duplicate": 1, "conflict": 0, "rejected": 1}
    assert count(api, uid) == 2


@pytest.mark.parametrize(
    ("amount", "status", "stored"),
    [
        # JSON, but no double holds it: the event is rejected, not the request.
        ("1e400", 422, "not_finite"),
        ("-1e400", 422, "not_finite"),
        ('"1e400"', 422, "bad_value"),
        ("123456789012345678901234567890", 201, 1.2345678901234568e29),
        ("1200.50", 201, 1200.5),
    ],
)
def test_numbers_beyond_a_double(api: Any, uid: str, amount: str, status: int, stored: Any) -> None:
    body = f'{{"source": "{uid}", "amount": {amount}, "ts": "2024-01-01", "n": {amount}}}'
    r = api.request("POST", "/api/events", data=body)
    assert r.status == status, r.text
    if status == 422:
        assert [x["code"] for x in r.body["reasons"]] == [stored], r.text
    else:
        assert r.body["event"]["amount"] == stored
    # Whatever was kept can be listed again, as JSON proper.
    events = api.request("GET", "/api/events", params={"clientId": uid})
    assert events.status == 200 and len(strict_json(events.text)["items"]) == (status == 201)
    rejected = api.request("GET", "/api/rejected", params={"limit": 1000})
    assert rejected.status == 200, rejected.text
    strict_json(rejected.text)


def test_empty_batch(api: Any) -> None:
    r = api.request("POST", "/api/events", data="[]")
    assert r.status == 200, r.text
    assert r.body == {
        "results": [],
        "counts": {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0},
    }


@pytest.mark.parametrize(
    "template",
    [
        '{"source": "UID\\ud800", "amount": 1, "ts": "2024-01-01"}',
        '[{"source": "UID", "amount": 1, "ts": "2024-01-01", "\\udfff": 1}]',
    ],
    ids=["surrogate", "surrogate-key"],
)
def test_lone_surrogates_are_rejected_and_kept_readable(api: Any, uid: str, template: str) -> None:
    # "\ud800" is valid JSON but no Unicode text: the item is rejected with
    # its reason, and its dead letter shows U+FFFD in the escape's place.
    before = api.request("GET", "/api/stats").body
    r = api.request("POST", "/api/events", data=template.replace("UID", uid))
    if template.startswith("["):
        assert r.status == 200, r.text
        assert r.body["counts"]["rejected"] == 1
        outcome = r.body["results"][0]
        assert outcome["http_status"] == 422
    else:
        assert r.status == 422, r.text
        outcome = r.body
    assert outcome["status"] == "rejected"
    assert [x["code"] for x in outcome["reasons"]] == ["invalid_text"]
    assert "lone surrogate" in outcome["reasons"][0]["message"]
    after = api.request("GET", "/api/stats").body
    assert after["stored_events"] == before["stored_events"]
    assert after["stored_rejected"] == before["stored_rejected"] + 1
    listed = api.request("GET", "/api/rejected", params={"limit": 1})
    letter = strict_json(listed.text)["items"][0]
    assert letter["raw_exact"] is False
    assert "\ufffd" in json.dumps(letter["raw"], ensure_ascii=False)
    assert uid in json.dumps(letter["raw"])


@pytest.mark.parametrize(
    ("data", "contains"),
    [
        ('{"source": "a", ', "malformed JSON"),
        ("{'single': 'quotes'}", "malformed JSON"),
        # NaN and Infinity are not JSON, wherever they are.
        ('{"amount": NaN}', "not valid JSON"),
        ('{"amount": Infinity}', "not valid JSON"),
        ('[{"source": "a", "amount": 1, "ts": 0}, {"amount": -Infinity}]', "item 1"),
        (b"\xff\xfe{}", "UTF-8"),
        # Nothing but opening brackets is an item that never ends, not a deep one.
        ("[" * 100_000, "item 0 (near byte 1) ends before the item does"),
        ('[{"source": "a", "amount": 1, "ts": 0}, {}, {"a" 1}]', "item 2"),
        ('[{"source": "a", "amount": 1, "ts": 0}', "the text ends before the batch's `]`"),
    ],
    ids=[
        "truncated",
        "quotes",
        "nan",
        "infinity",
        "infinity-in-a-batch",
        "not-utf8",
        "brackets",
        "third-item",
        "unclosed-batch",
    ],
)
def test_malformed_json_is_400_with_a_message(api: Any, data: Any, contains: str) -> None:
    before = api.request("GET", "/api/stats").body
    r = api.request("POST", "/api/events", data=data)
    assert_error(r, 400, "malformed_json", contains)
    after = api.request("GET", "/api/stats").body
    assert (after["stored_events"], after["stored_rejected"]) == (
        before["stored_events"],
        before["stored_rejected"],
    )


def test_empty_body_is_400(api: Any) -> None:
    assert_error(api.request("POST", "/api/events", data=""), 400, "empty_body", "empty")


def test_too_deep_for_the_core_is_rejected(api: Any, uid: str) -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    r = api.request("POST", "/api/events", json_body={"source": uid, "payload": {"deep": deep}})
    assert r.status == 422, r.text
    assert [x["code"] for x in r.body["reasons"]] == ["too_deep"]
    assert "128" in r.body["reasons"][0]["message"]
    assert count(api, uid) == 0
    # Its dead letter is a string of its text: read back as a value, it
    # would be too deep for the listing's own readers.
    letter = strict_json(api.request("GET", "/api/rejected", params={"limit": 1}).text)["items"][0]
    assert isinstance(letter["raw"], str) and uid in letter["raw"]
    assert letter["raw_exact"] is False


def test_body_over_1_mib_is_413(api: Any, uid: str) -> None:
    big = json.dumps({"source": uid, "blob": "x" * MAX_BODY_BYTES})
    r = api.request("POST", "/api/events", data=big)
    assert_error(r, 413, "request_entity_too_large", str(MAX_BODY_BYTES))
    assert count(api, uid) == 0


def test_body_just_under_the_limit_is_read(api: Any, uid: str) -> None:
    body = event(uid)
    body["payload"]["note"] = ""
    pad = MAX_BODY_BYTES - len(json.dumps(body)) - 4096
    body["payload"]["note"] = "y" * pad
    r = api.request("POST", "/api/events", json_body=body)
    assert r.status == 201, r.text[:300]


# ---- failure simulation and storage failures ----


def test_original_test_3_toggle_fail_retry_duplicate(api: Any, uid: str) -> None:
    r = api.request("POST", "/api/simulate-failure")
    assert r.status == 200, r.text
    assert r.body["enabled"] is True
    assert (r.body["point"], r.body["remaining"]) == ("after_insert", 1)
    r = api.request("POST", "/api/events", json_body=event(uid, value=50))
    assert_error(r, 500, "injected_failure", "nothing was stored")
    assert (r.body["point"], r.body["stored"]) == ("after_insert", False)
    assert count(api, uid) == 0
    # One strike and the switch is off again, as the state says.
    assert api.request("GET", "/api/simulate-failure").body["enabled"] is False
    assert api.request("GET", "/api/stats").body["failure"]["enabled"] is False
    assert api.request("POST", "/api/events", json_body=event(uid, value=50)).status == 201
    assert api.request("POST", "/api/events", json_body=event(uid, value=50)).status == 200
    assert count(api, uid) == 1


def test_toggle_twice_turns_it_off(api: Any, uid: str) -> None:
    assert api.request("POST", "/api/simulate-failure").body["enabled"] is True
    r = api.request("POST", "/api/simulate-failure")
    assert r.status == 200
    # The demo is one process: its switch is the only one.
    assert r.body == {
        "enabled": False,
        "point": None,
        "remaining": 0,
        "description": "off",
        "worker": int(r.headers["X-Ingest-Worker"]),
        "workers": 1,
    }
    assert api.request("POST", "/api/events", json_body=event(uid)).status == 201


def test_failure_body_chooses_point_and_times(api: Any, uid: str) -> None:
    r = api.request(
        "POST", "/api/simulate-failure", json_body={"point": "before_insert", "times": 2}
    )
    assert r.status == 200, r.text
    assert (r.body["enabled"], r.body["point"], r.body["remaining"]) == (True, "before_insert", 2)
    for left in (1, 0):
        r = api.request("POST", "/api/events", json_body=event(uid))
        assert_error(r, 500, "injected_failure", "before the insert")
        assert api.request("GET", "/api/simulate-failure").body["remaining"] == left
    assert count(api, uid) == 0
    assert api.request("POST", "/api/events", json_body=event(uid)).status == 201


def test_after_commit_failure_says_the_event_was_kept(api: Any, uid: str) -> None:
    api.request("POST", "/api/simulate-failure", json_body={"point": "after_commit"})
    r = api.request("POST", "/api/events", json_body=event(uid))
    assert_error(r, 500, "injected_failure", "duplicate")
    assert r.body["stored"] is True
    assert count(api, uid) == 1
    assert api.request("POST", "/api/events", json_body=event(uid)).status == 200


def test_a_failed_batch_keeps_nothing(api: Any, uid: str) -> None:
    api.request("POST", "/api/simulate-failure")
    r = api.request("POST", "/api/events", json_body=[event(uid, value=1), event(uid, value=2)])
    assert_error(r, 500, "injected_failure")
    assert count(api, uid) == 0


def test_enabled_false_and_times_zero_clear(api: Any) -> None:
    api.request("POST", "/api/simulate-failure", json_body={"times": 3})
    r = api.request("POST", "/api/simulate-failure", json_body={"enabled": False})
    assert r.body["enabled"] is False
    api.request("POST", "/api/simulate-failure", json_body={"times": 3})
    r = api.request("POST", "/api/simulate-failure", json_body={"times": 0})
    assert r.body["enabled"] is False


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        ('{"point": "sideways"}', "point must be"),
        ('{"times": -1}', "times"),
        ('{"times": 1.5}', "times"),
        ('{"times": true}', "times"),
        ('{"enabled": "yes"}', "enabled"),
        ('{"colour": "red"}', "colour"),
        ("[1]", "toggle"),
        ("{", "malformed"),
    ],
)
def test_bad_failure_bodies_are_400(api: Any, body: str, contains: str) -> None:
    assert_error(api.request("POST", "/api/simulate-failure", data=body), 400, None, contains)
    assert api.request("GET", "/api/simulate-failure").body["enabled"] is False


LOCKER = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
"""


def test_a_busy_store_is_503_with_retry_after_and_stores_nothing(tmp_path: Path) -> None:
    """A real storage error, not an injected one: another process holds the
    write lock past the busy timeout. (Another process, because POSIX locks
    of one process never conflict with each other.) Busy is retryable: 503
    with Retry-After, as a PostgreSQL failover's Unavailable is."""
    db = tmp_path / "locked.db"
    app = create_app(db, busy_timeout=0.2)
    try:
        api = FlaskApi(app)
        assert api.request("POST", "/api/events", json_body=event("warm")).status == 201
        with subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as locker:
            assert locker.stdout is not None and locker.stdin is not None
            assert locker.stdout.readline().strip() == "locked"
            r = api.request("POST", "/api/events", json_body=event("locked"))
            locker.stdin.write("\n")
            locker.stdin.flush()
            assert locker.wait(timeout=30) == 0
        assert_error(r, 503, "storage_unavailable", "nothing was stored")
        assert r.body["stored"] is False
        assert r.headers["Retry-After"] == "1"
        assert r.body["retry_after"] == 1
        assert count(api, "locked") == 0
        assert api.request("POST", "/api/events", json_body=event("locked")).status == 201
    finally:
        app.extensions["ingest"].close()


# ---- GET /api/events and /api/rejected ----


def test_events_list_filters_and_pages(api: Any, uid: str) -> None:
    days = [f"2024-02-{d:02d}" for d in range(1, 8)]
    batch = [event(uid, value=i, ts=d) for i, d in enumerate(days)]
    batch.append(event(uid, metric="views", value=9, ts="2024-02-01"))
    assert api.request("POST", "/api/events", json_body=batch).status == 200

    r = api.request("GET", "/api/events", params={"clientId": uid, "metric": "sales", "limit": 3})
    assert r.status == 200, r.text
    assert r.body["status"] == "processed"
    assert (r.body["limit"], r.body["offset"], r.body["has_more"]) == (3, 0, True)
    assert r.body["filters"] == {"client_id": uid, "metric": "sales"}
    first = r.body["items"]
    assert len(first) == 3
    assert all(e["client_id"] == uid and e["metric"] == "sales" for e in first)
    for key in ("id", "amount", "timestamp", "attributes", "received_at"):
        assert key in first[0]

    seen = [e["id"] for e in first]
    offset = 3
    for _ in range(5):
        r = api.request(
            "GET",
            "/api/events",
            params={"clientId": uid, "metric": "sales", "limit": 3, "offset": offset},
        )
        seen += [e["id"] for e in r.body["items"]]
        if not r.body["has_more"]:
            break
        offset += 3
    assert len(seen) == len(set(seen)) == 7

    # client_id, start/end as in DESIGN.md; metrics are cased like events.
    r = api.request(
        "GET",
        "/api/events",
        params={
            "client_id": uid,
            "metric": "VIEWS",
            "startDate": "2024-02-01",
            "endDate": "2024-02-02",
        },
    )
    assert [e["amount"] for e in r.body["items"]] == [9.0]
    r = api.request("GET", "/api/events", params={"status": "processed", "clientId": uid + "-none"})
    assert r.body["items"] == [] and r.body["has_more"] is False


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"status": "pending"}, "status must be"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "integer"),
        ({"offset": "-1"}, "offset"),
        ({"status": "rejected", "clientId": "a"}, "processed events only"),
        ({"startDate": "yesterday"}, "start"),
    ],
)
def test_bad_event_queries_are_400(api: Any, params: dict, contains: str) -> None:
    assert_error(api.request("GET", "/api/events", params=params), 400, None, contains)


def test_rejected_lists_raw_input_with_reasons(api: Any, uid: str) -> None:
    bad = [{"source": uid, "payload": {"metric": "views", "n": i}} for i in range(3)]
    api.request("POST", "/api/events", json_body=bad)
    api.request("POST", "/api/events", json_body=bad[0])  # the same bad input again

    for path, params in (
        ("/api/rejected", {"limit": 2}),
        ("/api/events", {"status": "rejected", "limit": 2}),
    ):
        r = api.request("GET", path, params=params)
        assert r.status == 200, r.text
        assert r.body["status"] == "rejected"
        assert (len(r.body["items"]), r.body["has_more"]) == (2, True)
        item = r.body["items"][0]
        for key in (
            "id",
            "raw",
            "reasons",
            "rules_version",
            "received_at",
            "attempts",
            "raw_bytes",
            "raw_exact",
        ):
            assert key in item
    ours = [
        x
        for x in api.request("GET", "/api/rejected", params={"limit": 1000}).body["items"]
        if isinstance(x["raw"], dict) and x["raw"].get("source") == uid
    ]
    assert len(ours) == 3, "a retried bad input is kept once"
    assert {x["attempts"] for x in ours} == {1, 2}
    assert all({r["field"] for r in x["reasons"]} >= {"amount", "timestamp"} for x in ours)
    # Small inputs are kept exactly; raw_bytes is the size of their compact text.
    for x in ours:
        assert x["raw_exact"] is True
        assert x["raw_bytes"] == len(json.dumps(x["raw"], separators=(",", ":")))


# ---- GET /api/aggregate ----


def test_aggregate_totals_and_groups(api: Any, uid: str) -> None:
    batch = [
        event(uid, value=10, ts="2024-03-01T10:00:00Z"),
        event(uid, value=20, ts="2024-03-01T11:30:00Z"),
        event(uid, value=5, ts="2024-03-03T00:00:00Z"),
        event(uid, metric="views", value=1, ts="2024-03-02"),
    ]
    api.request("POST", "/api/events", json_body=batch)

    r = api.request("GET", "/api/aggregate", params={"clientId": uid, "metric": "sales"})
    assert r.status == 200, r.text
    b = r.body
    assert (b["count"], b["sum"], b["min"], b["max"], b["avg"]) == (3, 35.0, 5.0, 20.0, 35.0 / 3)
    assert b["stale"] is False and "computed_at" in b
    assert b["query"] == {"client_id": uid, "metric": "sales"}
    assert "groups" not in b

    r = api.request(
        "GET",
        "/api/aggregate",
        params={
            "clientId": uid,
            "metric": "sales",
            "groupBy": "day",
            "startDate": "2024-03-01",
            "endDate": "2024-03-03",
        },
    )
    groups = r.body["groups"]
    assert [(g["bucket"], g["count"], g["sum"]) for g in groups] == [
        ("2024-03-01T00:00:00.000Z", 2, 30.0)
    ], "the end is exclusive"

    r = api.request("GET", "/api/aggregate", params={"clientId": uid, "groupBy": "day,metric"})
    keys = [(g["bucket"][:10], g["metric"]) for g in r.body["groups"]]
    assert keys == [("2024-03-01", "sales"), ("2024-03-02", "views"), ("2024-03-03", "sales")]

    r = api.request("GET", "/api/aggregate", params={"clientId": uid, "groupBy": "hour"})
    assert [g["count"] for g in r.body["groups"]] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"groupBy": "week"}, "groupBy"),
        ({"groupBy": "day,month"}, "not both"),
        ({"startDate": "soon"}, "start"),
        ({"startDate": "2024-02-01", "endDate": "2024-01-01"}, "after"),
    ],
)
def test_bad_aggregate_queries_are_400(api: Any, params: dict, contains: str) -> None:
    assert_error(api.request("GET", "/api/aggregate", params=params), 400, None, contains)


class RecordingIngestor:
    """The app's Ingestor, recording what `aggregate` is called with. A `tz`
    is checked as the library will (an unknown zone is InvalidArgument), then
    left out, so this runs whether or not the binding takes `tz` yet."""

    def __init__(self, inner: ingest.Ingestor) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def aggregate(self, **query: Any) -> Any:
        self.calls.append(dict(query))
        tz = query.pop("tz", None)
        if tz is not None and tz not in ("UTC", "Europe/Paris"):
            raise ingest.InvalidArgument(f"invalid argument: unknown time zone {tz!r}")
        return self.inner.aggregate(**query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_aggregate_passes_tz_to_the_library_only_when_given(app: Any, uid: str) -> None:
    state = app.extensions["ingest"]
    state.ingestor = recording = RecordingIngestor(state.ingestor)
    api = FlaskApi(app)
    api.request("POST", "/api/events", json_body=event(uid))

    for params in ({}, {"tz": ""}, {"tz": "  "}):
        r = api.request("GET", "/api/aggregate", params={"clientId": uid, **params})
        assert r.status == 200, r.text
        assert "tz" not in recording.calls[-1], params
        assert "tz" not in r.body["query"]

    r = api.request(
        "GET", "/api/aggregate", params={"clientId": uid, "groupBy": "day", "tz": " Europe/Paris "}
    )
    assert r.status == 200, r.text
    assert recording.calls[-1]["tz"] == "Europe/Paris"
    assert r.body["query"] == {"client_id": uid, "group_by": "day", "tz": "Europe/Paris"}

    # The library's refusal takes the InvalidArgument path: 400, not 500.
    r = api.request("GET", "/api/aggregate", params={"tz": "Mars/Olympus_Mons"})
    assert_error(r, 400, "invalid_argument", "Mars/Olympus_Mons")


def test_aggregate_in_a_time_zone(api: Any, uid: str) -> None:
    # 00:30 on 31 March in Paris (+01:00; summer time starts at 02:00 that day).
    api.request("POST", "/api/events", json_body=event(uid, ts="2024-03-30T23:30:00Z"))
    r = api.request("GET", "/api/aggregate", params={"clientId": uid, "groupBy": "day"})
    [utc] = r.body["groups"]
    assert utc["bucket"].startswith("2024-03-30T00:00:00")
    assert "bucket_local" not in utc

    params = {"clientId": uid, "groupBy": "day", "tz": "Europe/Paris"}
    r = api.request("GET", "/api/aggregate", params=params)
    assert r.status == 200, r.text
    assert r.body["query"]["tz"] == "Europe/Paris"
    [paris] = r.body["groups"]
    assert paris["bucket"].startswith("2024-03-30T23:00:00") and paris["bucket"].endswith("Z")
    assert paris["bucket_local"] == "2024-03-31T00:00:00+01:00"

    r = api.request("GET", "/api/aggregate", params={**params, "tz": "Mars/Olympus_Mons"})
    assert_error(r, 400, "invalid_argument")


def test_aggregate_unavailable_is_stale_from_cache_or_503(api: Any, uid: str) -> None:
    api.request("POST", "/api/events", json_body=event(uid, value=7))
    cached = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert (cached.status, cached.body["stale"]) == (200, False)

    api.request("POST", "/api/simulate-failure", json_body={"point": "aggregate", "times": 2})
    r = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert r.status == 200, r.text
    assert (r.body["stale"], r.body["count"], r.body["sum"]) == (True, 1, 7.0)
    assert r.body["computed_at"] == cached.body["computed_at"]

    # A query never answered before has nothing cached to fall back on.
    r = api.request("GET", "/api/aggregate", params={"clientId": uid + "-never"})
    assert_error(r, 503, "aggregate_unavailable", "cannot be read")
    assert r.headers["Retry-After"] == "5"
    assert r.body["retry_after"] == 5

    assert api.request("GET", "/api/simulate-failure").body["enabled"] is False
    fresh = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert (fresh.status, fresh.body["stale"]) == (200, False)


# ---- exact totals (issue 15): the same sum in every view, whatever the clients send ----

HOUR_START = 1_714_557_600_000  # 2024-05-01T10:00:00Z
MINUTE = 60_000
MAX_AMOUNT = 1e289  # the largest amount accepted (ingest_core::normalize::MAX_AMOUNT)
# Every view of that hour: whole (rollups), cut by a millisecond at either
# edge (scans), the day and all time.
RANGES = {
    "whole hour": {"startDate": "2024-05-01T10:00:00.000Z", "endDate": "2024-05-01T11:00:00.000Z"},
    "hour less its last ms": {
        "startDate": "2024-05-01T10:00:00.000Z",
        "endDate": "2024-05-01T10:59:59.999Z",
    },
    "hour from -1 ms": {
        "startDate": "2024-05-01T09:59:59.999Z",
        "endDate": "2024-05-01T11:00:00.000Z",
    },
    "the day": {"startDate": "2024-05-01", "endDate": "2024-05-02"},
    "all time": {},
}


def amount_event(client: str, metric: str, amount: Any, ms: int) -> dict[str, Any]:
    return {"client": client, "metric": metric, "value": amount, "ts": ms}


def aggregate_of(api: Any, params: dict[str, str]) -> dict[str, Any]:
    r = api.request("GET", "/api/aggregate", params=params)
    assert r.status == 200, r.text
    body = strict_json(r.text)
    for totals in [body, *body.get("groups", [])]:
        assert isinstance(totals["sum"], float) and math.isfinite(totals["sum"]), r.text
    return dict(body)


def exact(amounts: list[float]) -> float:
    """The exact sum rounded once (a Fraction's float is correctly rounded)."""
    return float(sum((Fraction(a) for a in amounts), Fraction(0)))


def assert_every_view(api: Any, metric: str, want: float) -> None:
    """Every view answers `want`, and grouped by hour, day or month, one
    group with that sum."""
    for name, span in RANGES.items():
        assert aggregate_of(api, {"metric": metric, **span})["sum"] == want, name
        for bucket in ("hour", "day", "month"):
            groups = aggregate_of(api, {"metric": metric, "groupBy": bucket, **span})["groups"]
            assert [g["sum"] for g in groups] == [want], f"{name} by {bucket}"


def post(api: Any, body: Any, status: int) -> Any:
    r = api.request("POST", "/api/events", json_body=body)
    assert r.status == status, r.text
    return strict_json(r.text)


# The metric is the test's own: the real server is shared by the tests.


def test_one_client_cannot_erase_anothers_amounts(api: Any, uid: str) -> None:
    post(api, amount_event("evil", uid, 1e16, HOUR_START + MINUTE), 201)
    for i in range(4):
        post(api, amount_event("honest", uid, 1.0, HOUR_START + MINUTE * (2 + i)), 201)
    post(api, amount_event("evil", uid, -1e16, HOUR_START + MINUTE * 10), 201)
    assert_every_view(api, uid, 4.0)
    by_client = aggregate_of(api, {"metric": uid, "groupBy": "client_id", **RANGES["whole hour"]})
    assert [(g["client_id"], g["count"], g["sum"]) for g in by_client["groups"]] == [
        ("evil", 2, 0.0),
        ("honest", 4, 4.0),
    ]


def test_every_view_gives_the_exact_sum_rounded_once(api: Any, uid: str) -> None:
    tenths = [amount_event("a", uid, 0.1, HOUR_START + MINUTE * i) for i in range(10)]
    assert post(api, tenths, 200)["counts"] == {
        "accepted": 10,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 0,
    }
    total = aggregate_of(api, {"metric": uid, **RANGES["whole hour"]})
    assert sum([0.1] * 10) != 1.0  # adding as it goes would not do
    assert (total["count"], total["sum"], total["avg"]) == (10, 1.0, 0.1)
    assert_every_view(api, uid, 1.0)

    more = [
        amount_event("b", uid, 1e16, HOUR_START + MINUTE * 20),
        *(amount_event("c", uid, 1.0, HOUR_START + MINUTE * (21 + i)) for i in range(4)),
        amount_event("b", uid, -1e16, HOUR_START + MINUTE * 30),
    ]
    assert post(api, more, 200)["counts"] == {
        "accepted": 6,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 0,
    }
    assert_every_view(api, uid, 5.0)


def test_no_amount_makes_a_total_infinite(api: Any, uid: str) -> None:
    for big in [1e308, -1e308, sys.float_info.max, 1.0000001e289, "1e300"]:
        body = post(api, amount_event("evil", uid, big, HOUR_START), 422)
        assert [(x["code"], x["field"]) for x in body["reasons"]] == [("out_of_range", "amount")]
    empty = aggregate_of(api, {"metric": uid})
    assert (empty["count"], empty["sum"], empty["avg"]) == (0, 0.0, None)

    huge = [-MAX_AMOUNT if i % 3 == 2 else MAX_AMOUNT for i in range(50)]
    batch = [amount_event("evil", uid, a, HOUR_START + i) for i, a in enumerate(huge)]
    assert post(api, batch, 200)["counts"]["accepted"] == 50
    post(api, amount_event("honest", uid, 0.5, HOUR_START + 100), 201)
    want = exact([*huge, 0.5])
    assert math.isfinite(want)
    assert_every_view(api, uid, want)
    by_client = aggregate_of(api, {"metric": uid, "groupBy": "client_id"})
    assert {g["client_id"]: g["sum"] for g in by_client["groups"]} == {
        "evil": exact(huge),
        "honest": 0.5,
    }


# ---- stats, health, and the rest ----


def test_stats_count_outcomes(api: Any, uid: str) -> None:
    keys = (
        "accepted",
        "duplicate",
        "conflict",
        "rejected",
        "failed",
        "stored_events",
        "stored_rejected",
        "evicted_rejected",
    )
    before = api.request("GET", "/api/stats").body
    api.request("POST", "/api/events", json_body=event(uid))
    api.request("POST", "/api/events", json_body=event(uid))
    # The same key (client, metric, timestamp, amount) with an event_id the
    # stored event does not have.
    other = {**event(uid), "event_id": "other"}
    assert api.request("POST", "/api/events", json_body=other).status == 409
    api.request("POST", "/api/events", json_body={"source": uid})
    api.request("POST", "/api/simulate-failure")
    api.request("POST", "/api/events", json_body=event(uid, value=2))
    r = api.request("GET", "/api/stats")
    assert r.status == 200
    after = r.body
    assert set(keys) <= set(after), after
    delta = {k: after[k] - before[k] for k in keys}
    assert delta == {
        "accepted": 1,
        "duplicate": 1,
        "conflict": 1,
        "rejected": 1,
        "failed": 1,
        "stored_events": 1,
        "stored_rejected": 1,
        "evicted_rejected": 0,
    }
    assert after["failure"] == {
        "enabled": False,
        "point": None,
        "remaining": 0,
        "description": "off",
        "worker": int(r.headers["X-Ingest-Worker"]),
        "workers": 1,
    }


def test_health(api: Any) -> None:
    r = api.request("GET", "/api/health")
    assert r.status == 200
    assert r.body["status"] == "ok" and r.body["message"]
    assert r.body["database"].endswith(".db")
    assert isinstance(r.body["stored_events"], int)


def test_unknown_route_and_wrong_method_are_json(api: Any) -> None:
    assert_error(api.request("GET", "/api/nope"), 404, "not_found")
    r = api.request("DELETE", "/api/events")
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_index_page_and_assets(api: Any) -> None:
    r = api.request("GET", "/")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    for asset in (
        "/static/js/main.js",
        "/static/js/dom.js",
        "/static/js/api.js",
        "/static/js/chart.js",
        "/static/vendor/uPlot.esm.js",
    ):
        a = api.request("GET", asset)
        assert a.status == 200, asset
        # Browsers refuse module scripts served with a non-JavaScript type.
        assert "javascript" in a.headers["Content-Type"], (asset, a.headers["Content-Type"])
    for sheet in ("/static/style.css", "/static/vendor/uPlot.min.css"):
        a = api.request("GET", sheet)
        assert a.status == 200, sheet
        assert a.headers["Content-Type"].startswith("text/css"), sheet
        assert f'<link rel="stylesheet" href="{sheet}">' in r.text, sheet


def test_vendored_files_are_the_ones_the_readme_names() -> None:
    vendor = Path(__file__).resolve().parent.parent / "static" / "vendor"
    readme = (vendor / "README.md").read_text()
    version = re.search(r"\| (\d+\.\d+\.\d+) \|", readme)
    assert version, "static/vendor/README.md names no version"
    # The banner uPlot puts at the top of its build names its version.
    assert f"(v{version.group(1)})" in (vendor / "uPlot.esm.js").read_text()[:400]
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text()


def test_the_ui_never_parses_data_as_html() -> None:
    static = Path(__file__).resolve().parent.parent / "static"
    sinks = (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "DOMParser",
    )
    for path in (static / "js").glob("*.js"):
        text = path.read_text()
        for sink in sinks:
            assert sink not in text, f"{path.name} uses {sink}"


# ---- the scenarios (tests/scenarios, and the shared ones when present), over HTTP ----

STATUS_OF = {"accepted": 201, "duplicate": 200, "conflict": 409, "rejected": 422}


def run_scenario(api: Any, steps: list[dict[str, Any]]) -> None:
    for i, step in enumerate(steps):
        where = f"step {i}: {json.dumps(step)[:120]}"
        if "submit" in step:
            r = api.request("POST", "/api/events", json_body=step["submit"])
            if "expect_error" in step:
                assert r.status == 500, where
                assert r.body["error"] == "injected_failure", where
                continue
            want = step["expect"]
            assert (r.status, r.body["status"]) == (STATUS_OF[want["status"]], want["status"]), (
                where
            )
            for k, v in want.get("event", {}).items():
                assert r.body["event"][k] == v, where
            got = {(x["code"], x["field"]) for x in r.body["reasons"]}
            assert {(x["code"], x["field"]) for x in want.get("reasons", [])} <= got, where
        elif "submit_batch" in step:
            r = api.request("POST", "/api/events", json_body=step["submit_batch"])
            assert r.status == 200, where
            assert [x["status"] for x in r.body["results"]] == [
                e["status"] for e in step["expect"]
            ], where
        elif "fail_next" in step:
            r = api.request("POST", "/api/simulate-failure", json_body=step["fail_next"])
            assert r.status == 200 and r.body["enabled"], where
        elif "count_events" in step:
            assert api.request("GET", "/api/stats").body["stored_events"] == step["count_events"], (
                where
            )
        elif "aggregate" in step:
            q = step["aggregate"]
            params = {
                "clientId": q.get("client_id"),
                "metric": q.get("metric"),
                "startDate": q.get("start"),
                "endDate": q.get("end"),
            }
            r = api.request(
                "GET", "/api/aggregate", params={k: v for k, v in params.items() if v is not None}
            )
            assert r.status == 200, where
            for k, v in step["expect"].items():
                assert r.body[k] == pytest.approx(v, rel=1e-9), where
        else:
            pytest.fail(f"unknown scenario step {where}")


SCENARIOS = [pytest.param(path, id=label) for label, path in scenario_files()]


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_in_process(app: Any, path: Path) -> None:
    run_scenario(FlaskApi(app), load_scenario(path))


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_over_http(fresh_server: Any, http_session: Any, path: Path) -> None:
    from conftest import HttpApi

    run_scenario(HttpApi(fresh_server.base, http_session), load_scenario(path))
