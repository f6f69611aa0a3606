"""Issue 16 from Python: hostile input one item at a time. Each bad item is
rejected alone with its reason, whatever Python value or JSON text carries
it; dead letters stay bounded, readable and honest about what they kept; a
key that matches a different stored event is a conflict; an envelope cannot
speak for another client; names and instants have one form. On SQLite and
PostgreSQL.

The same cases as core/tests/integration/hostile_items.rs, plus the Python
values JSON has no form for."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import ingest

DEAD_LETTER_CAP = 65536


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, db_path: Path) -> str:
    """Where a store lives, for tests that open it with options or twice."""
    return str(db_path) if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(location: str) -> Iterator[ingest.Ingestor]:
    with ingest.Ingestor(location) as ing:
        yield ing


def codes(out: ingest.Outcome) -> list[str]:
    return [r["code"] for r in out.reasons]


def good(i: int) -> dict[str, Any]:
    return {"client_id": f"good{i}", "metric": "sales", "amount": 1, "ts": "2024-01-01T00:00:00Z"}


def flat(client: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": client, "amount": 1, "ts": 0, **extra}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def cyclic() -> dict[str, Any]:
    d: dict[str, Any] = flat("cyclic")
    d["self"] = d
    return d


BIG = "x" * (2 << 20)  # over the default limit of 1 MiB

# Every kind of hostile item, as a Python value or as JSON text, each a
# different input (so each has its own dead letter), with its one code.
HOSTILE: list[tuple[str, Any, str]] = [
    ("nan amount", flat("a", amount=math.nan), "not_finite"),
    ("inf inside a list", flat("b", x=[1, {"y": -math.inf}]), "not_finite"),
    ("1e400 in JSON text", '{"client_id": "c", "amount": 1, "ts": 0, "x": 1e400}', "not_finite"),
    ("-1e400 amount in JSON text", '{"client_id": "d", "amount": -1e400, "ts": 0}', "not_finite"),
    ("lone surrogate value", flat("e", note="\ud800"), "invalid_text"),
    ("lone surrogate key", flat("f", **{"\udc00k": 1}), "invalid_text"),
    ("lone surrogate client", flat("g\udfff"), "invalid_text"),
    ("lone surrogate as the whole text", "\ud800", "invalid_text"),
    ("lone surrogate inside JSON text", '{"client_id": "h\ud800", "amount": 1, "ts": 0}', "invalid_text"),
    ("lone surrogate escape in JSON text", '{"client_id": "i", "amount": 1, "ts": 0, "x": "\\ud800"}', "invalid_text"),
    ("too large", flat("j", pad=BIG), "too_large"),
    ("too large JSON text", json.dumps(flat("k", pad=BIG)), "too_large"),
    ("too deep", flat("l", x=nested(200)), "too_deep"),
    ("too deep JSON text", '{"client_id": "m", "amount": 1, "ts": 0, "x": ' + "[" * 130 + "]" * 130 + "}", "too_deep"),
    ("self-referencing", cyclic(), "too_deep"),
    ("reserved key", flat("n", x={"a": 1, "$serde_json::private::Number": "1"}), "reserved_key"),
    (
        "reserved key in JSON text",
        '{"client_id": "o", "$serde_json::private::Number": "1", "amount": 1, "ts": 0}',
        "reserved_key",
    ),
    ("list", [1, 2], "not_an_object"),
    ("number JSON text", "42", "not_an_object"),
    ("None", None, "not_an_object"),
    ("bytes value", flat("p", x=b"bytes"), "unsupported_type"),
    ("set value", flat("q", x={1, 2}), "unsupported_type"),
    ("object value", flat("r", x=object()), "unsupported_type"),
    ("complex value", flat("s", x=1j), "unsupported_type"),
    ("bytearray value", flat("t", x=bytearray(b"x")), "unsupported_type"),
    ("int key", flat("u", x={1: "one"}), "unsupported_type"),
    ("bytes as the item", b'{"client_id": "v"}', "unsupported_type"),
]


def test_each_hostile_item_is_rejected_alone_and_every_good_one_stored(store: ingest.Ingestor) -> None:
    items: list[Any] = []
    for i, (_, item, _) in enumerate(HOSTILE):
        items += [good(2 * i), item, good(2 * i + 1)]
    outs = store.submit_batch(items)
    assert len(outs) == len(items)
    for i, (name, item, code) in enumerate(HOSTILE):
        before, bad, after = outs[3 * i : 3 * i + 3]
        assert (before.status, after.status) == ("accepted", "accepted"), name
        assert (bad.status, codes(bad), bad.id, bad.event) == ("rejected", [code], None, None), name
        assert all(r["message"] for r in bad.reasons), name
        # The same item alone is the same rejection, and so is a dry run.
        assert store.submit(item) == bad, name
        assert store.check(item) == bad, name
    stats = store.stats()
    assert (stats["stored_events"], stats["accepted"]) == (2 * len(HOSTILE), 2 * len(HOSTILE))
    assert (stats["rejected"], stats["stored_rejected"]) == (2 * len(HOSTILE), len(HOSTILE))

    # Nothing kept makes a listing fail, non-finite, or not UTF-8.
    letters = store.rejected(limit=100)
    assert len(letters) == len(HOSTILE), "one row per distinct input"
    assert all(r["attempts"] == 2 for r in letters), "the batch's and the lone call's attempt"
    json.dumps(letters, allow_nan=False, ensure_ascii=False).encode()
    for r in letters:
        assert len(json.dumps(r["raw"])) <= DEAD_LETTER_CAP
        assert r["raw_bytes"] > 0
    json.dumps(store.events(limit=1000), allow_nan=False, ensure_ascii=False).encode()
    assert store.aggregate()["sum"] == 2 * len(HOSTILE)
    assert store.reprocess_rejected()["accepted"] == 0


def test_a_batch_of_json_text_rejects_each_bad_item_alone(store: ingest.Ingestor) -> None:
    texts = [text for _, text, _ in HOSTILE if isinstance(text, str) and not text.startswith("\ud800")]
    items = [json.dumps(good(i)) for i in range(len(texts))]
    batch = "[" + ", ".join(x for pair in zip(items, texts, strict=True) for x in pair) + "]"
    # A str with a lone surrogate in it has no UTF-8 form; the escape does.
    batch = batch.replace("\ud800", "\\ud800")
    outs = store.submit_batch(batch)
    want = [code for _, text, code in HOSTILE if text in texts]
    assert [o.status for o in outs[0::2]] == ["accepted"] * len(texts)
    assert [codes(o) for o in outs[1::2]] == [[code] for code in want]
    assert store.stats()["stored_events"] == len(texts)


@pytest.mark.parametrize(
    ("batch", "item"),
    [
        ('[{"client_id": "a", "amount": 1, "ts": 0}, {"a": 1,}]', "item 1"),
        ('[{"client_id": "a", "amount": 1, "ts": 0}, {"client_id": "b", "amount": 1, "ts": 0}, {"a" 1}]', "item 2"),
        ('[{"client_id": "a", "amount": 1, "ts": 0}, {"a": tru}]', "item 1"),
        ('[{"client_id": "a", "amount": 1, "ts": 0}', "item 0"),
        # Python's json writes NaN, which is not JSON.
        (json.dumps([flat("a"), flat("b", amount=math.nan)]), "item 1"),
    ],
)
def test_only_text_that_is_not_json_fails_the_call_naming_the_item(
    store: ingest.Ingestor, batch: str, item: str
) -> None:
    with pytest.raises(ingest.InvalidArgument, match=item):
        store.submit_batch(batch)
    assert store.stats()["stored_events"] == 0, "nothing of a failed call is kept"


def test_an_item_of_json_text_that_is_not_json_fails_the_call_naming_it(store: ingest.Ingestor) -> None:
    with pytest.raises(ingest.InvalidArgument, match="item 2"):
        store.submit_batch([flat("a"), json.dumps(flat("b")), "{oops"])
    assert store.stats()["stored_events"] == 0


def test_the_size_limit_counts_compact_json_text() -> None:
    event = flat("c", tags=["a", "bc"], n={"k": [1, 22, 333]}, s="caf\u00e9")
    size = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
    pretty = json.dumps(event, indent=4)  # whitespace and escapes are not the event's size
    assert len(pretty) > size
    for limit, want in ((size, "accepted"), (size - 1, "rejected")):
        with ingest.Ingestor(max_event_bytes=limit) as ing:
            out = ing.submit(event)
            assert out.status == want, limit
            assert ing.check(pretty).status == ("duplicate" if want == "accepted" else want), limit
            if want == "rejected":
                assert codes(out) == ["too_large"] and f"the limit is {limit}" in out.reasons[0]["message"]
    # A number counts its digits: 130 000 zeros are about 260 KB, under 1 MiB.
    zeros = flat("z", zeros=[0] * 130_000)
    with ingest.Ingestor() as ing:
        assert ing.submit(zeros).status == "accepted"
        assert ing.submit(json.dumps(zeros)).status == "duplicate"


def test_dead_letters_are_bounded_by_count_and_copy_size(location: str) -> None:
    def junk(i: int) -> dict[str, Any]:
        return {"client_id": f"j{i}", "blob": "y" * 10_000}

    with ingest.Ingestor(location, max_dead_letters=3, max_dead_letter_bytes=1024) as ing:
        for i in range(10):
            assert ing.submit(junk(i)).status == "rejected"
        ing.submit(junk(9))  # a retry of a kept one is an attempt, not a row
        stats = ing.stats()
        assert (stats["stored_rejected"], stats["evicted_rejected"]) == (3, 7)
        letters = ing.rejected(limit=10)
        assert [r["attempts"] for r in letters] == [2, 1, 1], "the newest three, newest first"
        for r in letters:
            # A JSON string of the start of the input's compact text.
            assert isinstance(r["raw"], str) and len(json.dumps(r["raw"])) <= 1024
            assert r["raw"].startswith('{"blob":"yyy')
            assert (r["raw_exact"], r["raw_bytes"]) == (False, len(json.dumps(junk(0), separators=(",", ":"))))
    # The bound holds across a reopen.
    with ingest.Ingestor(location, max_dead_letters=3, max_dead_letter_bytes=1024) as ing:
        ing.submit(junk(11))
        stats = ing.stats()
        assert (stats["stored_rejected"], stats["evicted_rejected"]) == (3, 8)


def test_what_is_not_the_input_is_never_decided_again(location: str) -> None:
    exact = {"client_id": "s1", "price": "9.5", "ts": 0}
    stand_in = {"client_id": "s2", "price": "9.5", "ts": 0, "extra": b"bytes"}
    cut = {"client_id": "s3", "price": "9.5", "ts": 0, "pad": "x" * 200}
    repaired = '{"client_id": "s4", "price": "9.5", "ts": 0, "n": "\\ud800"}'
    with ingest.Ingestor(location, max_dead_letter_bytes=100) as ing:
        for item in (exact, stand_in, cut, repaired):
            assert ing.submit(item).status == "rejected"
        old_version = ing.rules_version
        kept = {r["raw"]["client_id"] if isinstance(r["raw"], dict) else "s3": r for r in ing.rejected()}
        assert kept["s1"]["raw_exact"] and kept["s1"]["raw"] == exact
        assert kept["s2"]["raw"]["extra"] == "<bytes>"
        assert kept["s4"]["raw"]["n"] == "\ufffd"
        assert not any(kept[c]["raw_exact"] for c in ("s2", "s3", "s4"))
    # Rules that would accept every one of them: only the exact copy is decided again.
    with ingest.Ingestor(location, max_dead_letter_bytes=100, rules={"aliases": {"amount": ["price"]}}) as ing:
        assert ing.reprocess_rejected() == {"accepted": 1, "duplicate": 0, "conflict": 0, "rejected": 3}
        assert [e["client_id"] for e in ing.events()] == ["s1"]
        left = ing.rejected()
        assert len(left) == 3 and all(r["rules_version"] == old_version for r in left)


def test_a_key_that_matches_a_different_stored_event_is_a_conflict(location: str) -> None:
    rules = {"dedup_key": ["client_id", "event_id"]}
    first = {"client_id": "c", "metric": "sales", "amount": 10, "ts": "2025-01-01", "event_id": "e1"}
    other = {"client_id": "c", "metric": "refunds", "amount": 99999, "ts": "2025-05-05", "event_id": "e1"}
    with ingest.Ingestor(location, rules=rules) as ing:
        accepted = ing.submit(first)
        assert accepted.status == "accepted"
        for out in (ing.submit(other), ing.check(other), ing.check(json.dumps(other))):
            assert (out.status, out.id) == ("conflict", accepted.id)
            assert out.event == accepted.event, "the stored event, not the one sent"
            assert [(r["code"], r["field"]) for r in out.reasons] == [
                ("conflict", "metric"),
                ("conflict", "amount"),
                ("conflict", "timestamp"),
            ]
            assert "stored 10, sent 99999" in out.reasons[1]["message"]
            assert repr(out) == f"<Outcome conflict id={accepted.id} fields=[metric, amount, timestamp]>"
            assert out.to_dict() == {
                "status": "conflict",
                "id": accepted.id,
                "event": accepted.event,
                "reasons": out.reasons,
            }
        # A retry with other attributes is a duplicate, answered with the stored event.
        retry = ing.submit({**first, "try": 2})
        assert (retry.status, retry.id, retry.event) == ("duplicate", accepted.id, accepted.event)
        # Within one batch: the second of a key is measured against the first.
        outs = ing.submit_batch(
            [
                {"client_id": "c", "amount": 1, "ts": 0, "event_id": "e2"},
                {"client_id": "c", "amount": 2, "ts": 0, "event_id": "e2"},
                {"client_id": "c", "amount": 1, "ts": 0, "event_id": "e2"},
            ]
        )
        assert [o.status for o in outs] == ["accepted", "conflict", "duplicate"]
        assert outs[1].event is not None and outs[1].event["amount"] == 1.0
        stats = ing.stats()
        assert (stats["accepted"], stats["duplicate"], stats["conflict"]) == (2, 2, 2)
        assert stats["stored_events"] == 2, "a conflict changes nothing"
        assert ing.aggregate()["sum"] == 11.0
        # A dead letter that the new rules turn into a conflict changes no event either.
        assert ing.submit({"client_id": "c", "price": 5, "ts": "2025-01-01", "event_id": "e1"}).status == "rejected"
    with ingest.Ingestor(location, rules={**rules, "aliases": {"amount": ["amount", "price"]}}) as ing:
        assert ing.reprocess_rejected()["conflict"] == 1
        assert ing.aggregate()["sum"] == 11.0
        assert sorted(e["amount"] for e in ing.events()) == [1.0, 10.0]


def test_an_envelope_field_cannot_be_overridden_by_its_payload(store: ingest.Ingestor) -> None:
    out = store.submit({"source": "A", "payload": {"source": "C", "metric": "m", "value": 1, "ts": 0}})
    assert [(r["code"], r["field"]) for r in out.reasons] == [("conflicting_fields", "client_id")]
    out = store.submit({"source": "A", "metric": "x", "payload": {"metric": "y", "value": 1, "ts": 0}})
    assert [(r["code"], r["field"]) for r in out.reasons] == [("conflicting_fields", "metric")]
    assert store.aggregate(client_id="C")["count"] == 0
    # The same value written twice, however spelled, is one value.
    out = store.submit({"source": "caf\u00e9", "payload": {"client_id": " cafe\u0301", "value": 1, "ts": 0}})
    assert out.status == "accepted" and out.event is not None and out.event["client_id"] == "caf\u00e9"
    # Another field at both levels: the payload's under its name, the envelope's kept beside it.
    out = store.submit({"source": "A", "region": "eu", "payload": {"region": "us", "metric": "m", "value": 1, "ts": 0}})
    assert out.status == "accepted" and out.event is not None
    assert out.event["attributes"] == {"region": "us", "envelope": {"region": "eu"}}


def test_names_that_look_the_same_are_one_client_metric_and_event(store: ingest.Ingestor) -> None:
    spellings = ["caf\u00e9", "cafe\u0301", "caf\u00e9\u200b", " \ufeffcaf\u00e9\u3000"]
    outs = [store.submit({"client_id": s, "metric": s, "amount": 1, "ts": 0}) for s in spellings]
    assert [o.status for o in outs] == ["accepted", "duplicate", "duplicate", "duplicate"]
    assert all(o.event is not None and o.event["client_id"] == "caf\u00e9" for o in outs)
    # Queries and filters find it however it is spelled.
    assert store.aggregate(client_id="cafe\u0301\u200d", metric="CAF\u00c9")["count"] == 1
    assert len(store.events(client_id="caf\u00e9\u2060")) == 1
    # Nothing but invisible characters is empty.
    out = store.submit({"client_id": "\u200b\ufeff", "amount": 1, "ts": 0})
    assert [(r["code"], r["field"]) for r in out.reasons] == [("bad_value", "client_id")]


def test_an_event_id_has_one_form_too(location: str) -> None:
    with ingest.Ingestor(location, rules={"dedup_key": ["client_id", "event_id"]}) as ing:
        first = ing.submit({"client_id": "c", "amount": 1, "ts": 0, "event_id": "ord\u00e9r-1"})
        for spelled in ("orde\u0301r-1", " ord\u00e9r-1\u200b", "\ufefford\u00e9r-1"):
            out = ing.submit({"client_id": "c", "amount": 1, "ts": 0, "event_id": spelled})
            assert (out.status, out.id) == ("duplicate", first.id), spelled
        assert first.event is not None and first.event["event_id"] == "ord\u00e9r-1"


def test_one_instant_is_one_event_however_it_is_written(store: ingest.Ingestor) -> None:
    text = store.submit({"client_id": "t", "amount": 1, "ts": "2023-11-14T22:13:20.9999Z"})
    assert text.event is not None and text.event["timestamp"] == "2023-11-14T22:13:20.999Z"
    for ts in (
        1700000000.9999,
        "1700000000.9999",
        "2023-11-14T22:13:20.999Z",
        1700000000999.5,
        datetime(2023, 11, 14, 22, 13, 20, 999999, tzinfo=timezone.utc),
    ):
        out = store.submit({"client_id": "t", "amount": 1, "ts": ts})
        assert (out.status, out.id) == ("duplicate", text.id), ts
    assert store.submit('{"client_id": "t", "amount": 1, "ts": 1700000000.9999}').id == text.id
    # The last moment of an hour stays in its hour, day and month.
    out = store.submit({"client_id": "t", "amount": 1, "ts": 1704067199.9999})
    assert out.event is not None and out.event["timestamp"] == "2023-12-31T23:59:59.999Z"
    months = store.aggregate(client_id="t", group_by="month")["groups"]
    assert [(g["bucket"][:7], g["count"]) for g in months] == [("2023-11", 1), ("2023-12", 1)]


def test_an_epoch_float_means_the_digits_python_shows() -> None:
    # Each float is read from its shortest text (what repr shows), never
    # from its binary value, which is a little above or below.
    with ingest.Ingestor() as ing:
        for ms in range(1000):
            seconds = float(f"1700000000.{ms:03d}")
            out = ing.check({"client_id": "t", "amount": 1, "ts": seconds})
            assert out.event is not None and out.event["timestamp"] == f"2023-11-14T22:13:20.{ms:03d}Z", seconds


def test_a_leap_second_is_rejected_never_merged_or_moved(store: ingest.Ingestor) -> None:
    assert store.submit({"client_id": "l", "amount": 1, "ts": "2017-01-01T00:00:00Z"}).status == "accepted"
    for ts in ("2016-12-31T23:59:60Z", "2024-01-02T10:30:60Z", "2016-12-31 23:59:60.5"):
        out = store.submit({"client_id": "l", "amount": 1, "ts": ts})
        assert [(r["code"], r["field"]) for r in out.reasons] == [("bad_timestamp", "timestamp")], ts
        assert "leap second" in out.reasons[0]["message"]
    assert store.stats()["stored_events"] == 1


def test_integers_past_pythons_decimal_limit_go_both_ways(store: ingest.Ingestor) -> None:
    # CPython refuses int() and repr() of more than 4300 decimal digits; the
    # library converts through bytes, so such an integer is kept exactly and
    # every listing still reads.
    huge = 7 * 10**5000 + 1
    out = store.submit(flat("huge", x=huge, y=-huge))
    assert out.status == "accepted"
    event = out.event
    assert event is not None
    assert (event["attributes"]["x"], event["attributes"]["y"]) == (huge, -huge)
    listed = store.events(client_id="huge")
    assert listed[0]["attributes"]["x"] == huge
    bad = store.submit({"client_id": "huge", "x": huge})
    assert codes(bad) == ["missing_field", "missing_field"]
    assert store.rejected(limit=1)[0]["raw"]["x"] == huge


def test_a_batch_text_that_is_not_unicode_is_an_error_not_a_crash(store: ingest.Ingestor) -> None:
    with pytest.raises(ingest.InvalidArgument, match="lone surrogate"):
        store.submit_batch('[{"client_id": "a\ud800", "amount": 1, "ts": 0}]')
    assert store.stats()["stored_events"] == 0


def test_a_reason_stays_short_whatever_the_keys_are(store: ingest.Ingestor) -> None:
    key = "k" * 100_000
    deep: Any = math.nan
    for _ in range(50):
        deep = {key: deep}
    out = store.submit(flat("long-keys", x=deep))
    assert codes(out) == ["not_finite"]
    assert len(out.reasons[0]["message"]) < 1000
