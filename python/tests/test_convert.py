"""Python values reach the core faithfully. What JSON cannot hold is never a
crash or a silent change: in an event, a rejection of that event alone with
its reason; in any other argument (rules, query), a clear error."""

from __future__ import annotations

import enum
import json
import math
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

import ingest

from .conftest import sales


def attributes_round_trip(ing: ingest.Ingestor, value: Any) -> Any:
    out = ing.submit(sales(value=1, extra=value))
    assert out.event is not None, out
    stored = ing.events(limit=1)[0]["attributes"]["extra"]
    assert out.event["attributes"]["extra"] == stored
    return stored


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**63,
        2**64 - 1,
        2**64,
        -(2**64) - 1,
        10**40,
        -(10**60) + 7,
        1.5,
        -0.25,
        1e300,
        5e-324,
        "text",
        "",
        "ünïcødé ☃ 🎉",
        True,
        False,
        None,
        [1, "two", 3.0, None, [True]],
        {"nested": {"deeper": [1, {"k": 2**70}]}},
    ],
    ids=repr,
)
def test_values_round_trip_exactly(ing: ingest.Ingestor, value: Any) -> None:
    got = attributes_round_trip(ing, value)
    assert got == value
    assert type(got) is type(value)  # bool stays bool, int stays int, float stays float


def test_tuples_become_lists(ing: ingest.Ingestor) -> None:
    assert attributes_round_trip(ing, (1, (2, "x"))) == [1, [2, "x"]]


def test_int_subclasses_keep_their_value(ing: ingest.Ingestor) -> None:
    class Big(enum.IntEnum):
        HUGE = 2**80

    got = attributes_round_trip(ing, Big.HUGE)
    assert got == 2**80 and type(got) is int


def test_big_amount_is_a_number(ing: ingest.Ingestor) -> None:
    out = ing.submit(sales(value=10**30))
    assert out.event is not None and out.event["amount"] == 1e30


def test_datetimes_become_timestamps(ing: ingest.Ingestor) -> None:
    aware = datetime(2024, 1, 2, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    out = ing.submit(sales(ts=aware))
    assert out.event is not None and out.event["timestamp"] == "2024-01-02T10:00:00.123Z"
    naive = ing.submit(sales(ts=datetime(2024, 1, 2, 10, 0, 0, 123000)))
    assert (naive.status, naive.id) == ("duplicate", out.id)  # naive is UTC
    assert ing.submit(sales(ts=date(2024, 1, 1))).event["timestamp"] == "2024-01-01T00:00:00.000Z"  # type: ignore[index]


def codes(out: ingest.Outcome) -> list[str]:
    return [r["code"] for r in out.reasons]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected(ing: ingest.Ingestor, bad: float) -> None:
    for event in (sales(value=bad), sales(extra=[1, {"deep": bad}])):
        out = ing.submit(event)
        assert (out.status, codes(out)) == ("rejected", ["not_finite"]), out
        assert ing.check(event) == out
    outs = ing.submit_batch([sales(), sales(value=bad)])
    assert [(o.status, codes(o)) for o in outs] == [("accepted", []), ("rejected", ["not_finite"])]
    assert ing.stats()["stored_events"] == 1
    # JSON has no NaN: the dead letter shows null in its place, marked as not the input.
    [letter] = [r for r in ing.rejected() if r["raw"]["payload"]["value"] is None]
    assert (letter["raw_exact"], letter["attempts"]) == (False, 2)
    json.dumps(ing.rejected(), allow_nan=False)
    # Anywhere else a Python value is converted, it is still an error.
    with pytest.raises(ingest.InvalidArgument, match="NaN or infinity"):
        ing.aggregate(start=bad)
    with pytest.raises(ingest.InvalidArgument, match="NaN or infinity"):
        ingest.Ingestor(rules={"amount_range": [0, bad]})


@pytest.mark.parametrize("key", [1, 1.5, None, ("t",), b"bytes"], ids=repr)
def test_non_str_keys_are_rejected_as_unsupported(ing: ingest.Ingestor, key: Any) -> None:
    event = {"client_id": "c", "amount": 1, "ts": 1, "attrs": {key: 1}}
    out = ing.submit(event)
    assert codes(out) == ["unsupported_type"]
    assert f"a dict key of type {type(key).__name__}" in out.reasons[0]["message"]
    assert ing.check(event) == out
    assert ing.stats()["stored_events"] == 0
    with pytest.raises(TypeError, match="dict key"):
        ingest.Ingestor(rules={"aliases": {key: ["x"]}})


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), 1j, bytearray(b"x")], ids=lambda v: type(v).__name__)
def test_unsupported_types_are_rejected(ing: ingest.Ingestor, value: Any) -> None:
    out = ing.submit(sales(extra=value))
    assert codes(out) == ["unsupported_type"]
    assert f"a value of type {type(value).__name__} " in out.reasons[0]["message"]
    assert ing.check(sales(extra=value)) == out
    outs = ing.submit_batch([sales(extra=value), sales()])
    assert [o.status for o in outs] == ["rejected", "accepted"]
    with pytest.raises(TypeError, match="JSON has no form"):
        ing.aggregate(start=value)
    with pytest.raises(TypeError, match="JSON has no form"):
        ing.events(client_id=value)


def test_invalid_text_is_a_rejection(ing: ingest.Ingestor) -> None:
    out = ing.submit(sales(extra="\ud800"))
    assert codes(out) == ["invalid_text"]
    assert ing.stats()["stored_events"] == 0
    # Beyond Python's own int-to-text limit, an integer is still exact.
    out = ing.submit(sales(extra=10**5000))
    assert out.status == "accepted"
    assert out.event is not None and out.event["attributes"]["extra"] == 10**5000


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def test_depth_limit_matches_the_core(ing: ingest.Ingestor) -> None:
    assert ingest.MAX_DEPTH == 128

    # The event object is level 1 and "extra" level 2, so it may nest 127 levels.
    def flat(extra: Any) -> dict[str, Any]:
        return {"client_id": "c", "amount": 1, "ts": 1, "extra": extra}

    assert ing.submit(flat(nested(ingest.MAX_DEPTH - 1))).status == "accepted"
    out = ing.submit(flat(nested(ingest.MAX_DEPTH)))
    assert codes(out) == ["too_deep"] and "deeper than 128" in out.reasons[0]["message"]
    # The same limit the core applies to JSON text.
    assert codes(ing.submit('{"client_id": "c", "amount": 1, "ts": 1, "extra": ' + "[" * 128 + "]" * 128 + "}")) == [
        "too_deep"
    ]
    stored = ing.events()[0]["attributes"]["extra"]
    assert stored == nested(ingest.MAX_DEPTH - 1)
    with pytest.raises(ingest.InvalidArgument, match="deeper than 128"):
        ing.aggregate(group_by=nested(ingest.MAX_DEPTH + 1))


def test_very_deep_and_cyclic_input_cannot_crash(ing: ingest.Ingestor) -> None:
    assert codes(ing.submit(sales(extra=nested(200_000)))) == ["too_deep"]
    cyclic: dict[str, Any] = {"client_id": "c"}
    cyclic["self"] = cyclic
    assert codes(ing.submit(cyclic)) == ["too_deep"]
    assert codes(ing.check(cyclic)) == ["too_deep"]
    loop: list[Any] = []
    loop.append(loop)
    outs = ing.submit_batch([loop, sales()])  # type: ignore[list-item]
    assert [(o.status, codes(o)) for o in outs] == [("rejected", ["too_deep"]), ("accepted", [])]
    assert codes(ing.submit("[" * 100_000 + "]" * 100_000)) == ["too_deep"]
    assert ing.stats()["stored_events"] == 1
    # What is kept of each is bounded, and lists as JSON.
    letters = ing.rejected()
    assert len(letters) == 4 and not any(r["raw_exact"] for r in letters)
    assert all(len(json.dumps(r["raw"])) <= 65536 for r in letters)
    with pytest.raises(ingest.InvalidArgument, match="deeper than 128"):
        ing.events(start=cyclic)  # type: ignore[arg-type]


def test_rejected_raw_input_comes_back_as_given(ing: ingest.Ingestor) -> None:
    raw = {"client_id": "c", "big": 2**100, "f": 0.1, "list": [None, True, "x"], "n": {"a": -(2**65)}}
    assert ing.submit(raw).status == "rejected"
    letter = ing.rejected()[0]
    assert (letter["raw"], letter["raw_exact"]) == (raw, True)
    assert letter["raw_bytes"] == len(json.dumps(raw, separators=(",", ":")))


def test_numbers_beyond_a_double_are_rejected_and_tiny_ones_read_as_json_loads_reads_them(
    ing: ingest.Ingestor,
) -> None:
    # Stored, 1e400 would read back as infinity and make a total or a listing non-finite.
    for text in (
        '{"client": "a", "value": 1, "ts": 0, "big": 1e400}',
        '{"client": "a", "value": -1e400, "ts": 0}',
    ):
        out = ing.submit(text)
        assert codes(out) == ["not_finite"], out
        assert ing.check(text) == out
    assert ing.stats()["stored_events"] == 0
    letters = ing.rejected()
    assert not any(r["raw_exact"] for r in letters)
    json.dumps(letters, allow_nan=False)
    text = '{"client": "a", "value": 1, "ts": 0, "tiny": 1e-400, "huge_int": 1' + "0" * 400 + "}"
    out = ing.submit(text)
    assert out.status == "accepted"
    assert out.event is not None
    loaded = json.loads(text)
    assert out.event["attributes"] == {"tiny": loaded["tiny"], "huge_int": loaded["huge_int"]}
    assert type(out.event["attributes"]["huge_int"]) is int
    assert ing.events(limit=1)[0]["attributes"] == out.event["attributes"]


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_rejected_as_invalid_text(ing: ingest.Ingestor, text: str) -> None:
    events: list[dict[str, Any] | str] = [sales(note=text), {"client": text, "value": 1, "ts": 0}, {text: 1}, text]
    for event in events:
        out = ing.submit(event)
        assert codes(out) == ["invalid_text"], event
        assert "lone surrogate" in out.reasons[0]["message"]
        assert ing.check(event) == out
    outs = ing.submit_batch([*events, sales()])
    assert [o.status for o in outs] == ["rejected"] * len(events) + ["accepted"]
    assert ing.stats()["stored_events"] == 1
    # Kept with U+FFFD in place of each surrogate: valid text, marked as a stand-in.
    letters = ing.rejected()
    assert len(letters) == len(events) and not any(r["raw_exact"] for r in letters)
    json.dumps(letters, ensure_ascii=False).encode()  # strict UTF-8: no surrogate left
    with pytest.raises(ingest.InvalidArgument, match="lone surrogate"):
        ing.aggregate(client_id=text)
    with pytest.raises(ingest.InvalidArgument, match="Unicode"):
        ingest.Ingestor(rules=text)
