"""NDJSON bodies and the bound on a batch's items: an NDJSON body answers
exactly what the JSON array of the same events answers, a line that is not
JSON is a 400 naming it, and a batch of more than MAX_BATCH_ITEMS items is a
413 before anything is stored."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import FlaskApi, event
from ingest_server import create_app

NDJSON = {"Content-Type": "application/x-ndjson"}
MAX_ITEMS = 10_000


def stored(api: Any, uid: str) -> int:
    r = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert r.status == 200, r.text
    return int(r.body["count"])


def mixed_lines(uid: str) -> list[str]:
    """Lines as clients write them: spellings, a duplicate inside the batch,
    rejections, and items only the library can judge (too deep, 1e400, a
    lone surrogate escape)."""
    deep = "[" * 2000 + "1" + "]" * 2000
    return [
        json.dumps(event(uid, value=1)),
        f'{{"client": "{uid}", "name": "Sales", "amt": "2", "ts": 1704067200}}',
        json.dumps(event(uid, value=1)),
        json.dumps({"source": uid, "payload": {"metric": "views"}}),
        f'{{"source": "{uid}", "value": 1e400, "ts": "2024-01-01"}}',
        f'{{"source": "{uid}\\ud800", "value": 3, "ts": "2024-01-01"}}',
        f'{{"source": "{uid}", "deep": {deep}, "value": 4, "ts": "2024-01-01"}}',
        "[1, 2]",
    ]


def test_ndjson_answers_what_the_array_answers(tmp_path: Path) -> None:
    # Two fresh stores: the same events give the same ids, so the whole
    # answers compare.
    uid = "nd"
    lines = mixed_lines(uid)
    answers = []
    for n, (body, headers) in enumerate(
        [
            ("[" + ",".join(lines) + "]", {}),
            ("\n".join(lines) + "\n", NDJSON),
            # Blank lines, CRLF, and a last line without its newline.
            ("\n\n" + "\r\n \t\n".join(lines), NDJSON),
        ]
    ):
        app = create_app(tmp_path / f"store{n}.db", allowed_hosts=["localhost"])
        try:
            r = FlaskApi(app).request("POST", "/api/events", data=body, headers=headers)
            assert r.status == 200, r.text
            answers.append(r.body)
        finally:
            app.extensions["ingest"].close()
    assert answers[0] == answers[1] == answers[2]
    statuses = [o["status"] for o in answers[0]["results"]]
    assert statuses == [
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ], answers[0]


def test_ndjson_over_http_stores_each_line_once(any_api: Any, uid: str) -> None:
    lines = [json.dumps(event(uid, value=v)) for v in range(1, 6)]
    r = any_api.request("POST", "/api/events", data="\n".join(lines), headers=NDJSON)
    assert r.status == 200, r.text
    assert r.body["counts"] == {"accepted": 5, "duplicate": 0, "conflict": 0, "rejected": 0}
    assert [o["http_status"] for o in r.body["results"]] == [201] * 5
    # The same lines gzipped: every one a duplicate now.
    r = any_api.request(
        "POST",
        "/api/events",
        data=gzip.compress("\n".join(lines).encode()),
        headers={**NDJSON, "Content-Encoding": "gzip"},
    )
    assert r.status == 200, r.text
    assert r.body["counts"]["duplicate"] == 5, r.body
    assert stored(any_api, uid) == 5


def test_one_ndjson_line_is_a_batch_of_one(any_api: Any, uid: str) -> None:
    r = any_api.request("POST", "/api/events", data=json.dumps(event(uid)), headers=NDJSON)
    assert r.status == 200, r.text
    assert [o["status"] for o in r.body["results"]] == ["accepted"]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ('{"a": }', "is not valid JSON"),
        ("{'single': 'quotes'}", "is not valid JSON"),
        ('{"a": NaN}', "is not valid JSON"),
        # Two values on one line would be two items of the array.
        ('{"a": 1}, {"b": 2}', "is not valid JSON"),
        ("]", "is not valid JSON"),
        # Too deep for Python's parser, and two values all the same.
        ("[" * 5000 + "]" * 5000 + ", 1", "is not one JSON value"),
        ("[" * 5000 + "]" * 4999, "is not one JSON value"),
    ],
    ids=["syntax", "quotes", "nan", "two-values", "bracket", "deep-two", "deep-unpaired"],
)
def test_a_line_that_is_not_json_is_400_naming_it(
    any_api: Any, uid: str, bad: str, why: str
) -> None:
    body = "\n".join([json.dumps(event(uid, value=1)), "", json.dumps(event(uid, value=2)), bad])
    r = any_api.request("POST", "/api/events", data=body + "\n", headers=NDJSON)
    assert r.status == 400, r.text
    assert r.body["error"] == "malformed_json", r.body
    assert f"line 4 {why}" in r.body["message"], r.body
    assert stored(any_api, uid) == 0


def test_an_array_item_that_is_not_json_is_named_by_the_library(any_api: Any, uid: str) -> None:
    body = "[" + json.dumps(event(uid)) + ', {"a": }]'
    r = any_api.request("POST", "/api/events", data=body)
    assert r.status == 400, r.text
    assert "item 1" in r.body["message"], r.body


@pytest.mark.parametrize("body", ["", "\n\n", " \r\n\t\n"], ids=["empty", "newlines", "blank"])
def test_an_ndjson_body_of_no_lines_is_400(any_api: Any, body: str) -> None:
    r = any_api.request("POST", "/api/events", data=body, headers=NDJSON)
    assert r.status == 400, r.text
    assert r.body["error"] == "empty_body", r.body


# ---- MAX_BATCH_ITEMS ----


def array_of(uid: str, n: int) -> str:
    # The shortest items there are, then one real event: its client id
    # tells whether anything of the batch was stored.
    return "[" + "{}," * (n - 1) + json.dumps(event(uid)) + "]"


@pytest.mark.parametrize("kind", ["array", "ndjson", "ndjson-gzip"])
def test_a_batch_over_the_limit_is_413_and_stores_nothing(
    any_api: Any, uid: str, kind: str
) -> None:
    if kind == "array":
        data: str | bytes = array_of(uid, MAX_ITEMS + 1)
        headers: dict[str, str] = {}
    else:
        data = "{}\n" * MAX_ITEMS + json.dumps(event(uid))
        headers = dict(NDJSON)
        if kind == "ndjson-gzip":
            data = gzip.compress(data.encode())
            headers["Content-Encoding"] = "gzip"
    r = any_api.request("POST", "/api/events", data=data, headers=headers)
    assert r.status == 413, r.text
    assert r.body["error"] == "too_many_items", r.body
    assert (r.body["items"], r.body["max_items"]) == (MAX_ITEMS + 1, MAX_ITEMS)
    assert stored(any_api, uid) == 0


def test_a_batch_at_the_limit_is_stored(any_api: Any, uid: str) -> None:
    r = any_api.request("POST", "/api/events", data=array_of(uid, MAX_ITEMS))
    assert r.status == 200, r.text
    assert len(r.body["results"]) == MAX_ITEMS
    assert stored(any_api, uid) == 1


def test_items_python_cannot_read_are_counted_too(any_api: Any, uid: str) -> None:
    # An item nested past Python's recursion limit, and one with an integer
    # of 5000 digits (past Python's limit on converting them): the library
    # reads both, so the count must not give up on them.
    deep = "[" * 3000 + "]" * 3000
    big = "1" * 5000
    for item in (deep, big):
        text = "[" + item + "," + "{}," * MAX_ITEMS + json.dumps(event(uid)) + "]"
        r = any_api.request("POST", "/api/events", data=text)
        assert r.status == 413, r.text
        assert r.body["items"] == MAX_ITEMS + 2, r.body
    assert stored(any_api, uid) == 0


def test_max_batch_items_is_a_setting(tmp_path: Path, uid: str) -> None:
    app = create_app(tmp_path / "s.db", allowed_hosts=["localhost"], max_batch_items=3)
    try:
        api = FlaskApi(app)
        r = api.request("POST", "/api/events", data=array_of(uid, 4))
        assert r.status == 413 and r.body["max_items"] == 3, r.text
        r = api.request("POST", "/api/events", data="{}\n" * 4, headers=NDJSON)
        assert r.status == 413, r.text
        r = api.request("POST", "/api/events", data=array_of(uid, 3))
        assert r.status == 200, r.text
    finally:
        app.extensions["ingest"].close()
