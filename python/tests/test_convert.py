"""Python values reach the core faithfully, and what JSON cannot hold is a
clear error, never a crash or a silent change."""

from __future__ import annotations

import enum
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


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(ing: ingest.Ingestor, bad: float) -> None:
    for event in (sales(value=bad), sales(extra=[1, {"deep": bad}])):
        with pytest.raises(ingest.InvalidArgument, match="NaN and infinity") as info:
            ing.submit(event)
        assert info.value.kind == "invalid_argument"
    with pytest.raises(ingest.InvalidArgument):
        ing.check(sales(value=bad))
    with pytest.raises(ingest.InvalidArgument):
        ing.submit_batch([sales(), sales(value=bad)])
    assert ing.stats()["stored_events"] == 0


@pytest.mark.parametrize("key", [1, 1.5, None, ("t",), b"bytes"], ids=repr)
def test_non_str_keys_are_a_type_error(ing: ingest.Ingestor, key: Any) -> None:
    with pytest.raises(TypeError, match="dict keys must be str"):
        ing.submit({"client_id": "c", "amount": 1, "ts": 1, "attrs": {key: 1}})


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), 1j, bytearray(b"x")], ids=lambda v: type(v).__name__)
def test_unsupported_types_are_a_type_error(ing: ingest.Ingestor, value: Any) -> None:
    with pytest.raises(TypeError, match="cannot convert"):
        ing.submit(sales(extra=value))


def test_invalid_text_is_a_clean_error(ing: ingest.Ingestor) -> None:
    with pytest.raises(ingest.InvalidArgument):
        ing.submit(sales(extra="\ud800"))
    with pytest.raises(ValueError):  # beyond Python's own int-to-text limit
        ing.submit(sales(extra=10**5000))


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
    with pytest.raises(ingest.InvalidArgument, match="deeper than 128"):
        ing.submit(flat(nested(ingest.MAX_DEPTH)))
    # The same limit the core applies to JSON text.
    with pytest.raises(ingest.InvalidArgument):
        ing.submit('{"client_id": "c", "amount": 1, "ts": 1, "extra": ' + "[" * 128 + "]" * 128 + "}")
    stored = ing.events()[0]["attributes"]["extra"]
    assert stored == nested(ingest.MAX_DEPTH - 1)


def test_very_deep_and_cyclic_input_cannot_crash(ing: ingest.Ingestor) -> None:
    with pytest.raises(ingest.InvalidArgument):
        ing.submit(sales(extra=nested(200_000)))
    cyclic: dict[str, Any] = {"client_id": "c"}
    cyclic["self"] = cyclic
    with pytest.raises(ingest.InvalidArgument):
        ing.submit(cyclic)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ingest.InvalidArgument):
        ing.submit_batch([loop])  # type: ignore[list-item]
    with pytest.raises(ingest.InvalidArgument):
        ing.submit("[" * 100_000 + "]" * 100_000)
    assert ing.stats()["stored_events"] == 0


def test_rejected_raw_input_comes_back_as_given(ing: ingest.Ingestor) -> None:
    raw = {"client_id": "c", "big": 2**100, "f": 0.1, "list": [None, True, "x"], "n": {"a": -(2**65)}}
    assert ing.submit(raw).status == "rejected"
    assert ing.rejected()[0]["raw"] == raw


def test_numbers_beyond_a_double_read_back_as_json_loads_reads_them(ing: ingest.Ingestor) -> None:
    out = ing.submit('{"client": "a", "value": 1, "ts": 0, "big": 1e400, "small": -1e400}')
    assert out.status == "accepted"
    assert out.event is not None
    assert out.event["attributes"] == {"big": math.inf, "small": -math.inf}
    assert ing.events(limit=1)[0]["attributes"]["big"] == math.inf
    event = out.to_dict()["event"]
    assert event is not None and event["attributes"]["small"] == -math.inf


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_invalid_arguments(ing: ingest.Ingestor, text: str) -> None:
    events: list[dict[str, Any] | str] = [sales(note=text), {"client": text, "value": 1, "ts": 0}, {text: 1}, text]
    for event in events:
        with pytest.raises(ingest.InvalidArgument, match="Unicode"):
            ing.submit(event)
    assert ing.stats()["stored_events"] == 0
