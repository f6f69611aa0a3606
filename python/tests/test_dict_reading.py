"""A dict is read straight into the core's event reader (python/src/read.rs)
where it can be, and through a JSON value where it cannot: either way it is
decided exactly as its JSON text would be. Thousands of generated events,
in every spelling the built-in rules know and many they reject, each
submitted as a dict to one store and as its JSON text to another: the
outcomes, the stored events and the dead letters must be the same."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

import pytest

import ingest

ALIASES = {
    "client_id": ["source", "client", "clientId", "client_id", "clientID"],
    "metric": ["metric", "name", "event", "type"],
    "amount": ["value", "amount", "amt", "val", "count", "qty"],
    "timestamp": ["timestamp", "ts", "time", "date", "datetime", "occurred_at"],
    "event_id": ["event_id", "eventId", "id", "idempotency_key"],
}
OTHER_KEYS = ["region", "app_version", "x", "note", "Amount", "payload", "CLIENT", " ts", "é", "日本"]


def text(rng: random.Random) -> str:
    return rng.choice(
        [
            "client-1",
            "Client-1",
            " client-2 ",
            "",
            "   ",
            "sales",
            "SALES",
            "café",
            "Café",
            "日本",
            "0",
            "x\u0301",
            "a" * 300,
        ]
    )


def number(rng: random.Random) -> int | float:
    # Floats whose shortest text Python and the core write alike (no
    # exponent), so that a dead letter's kept text is the same both ways.
    return rng.choice(
        [
            0,
            1,
            -1,
            7,
            2**31,
            2**53 + 1,
            -(2**63),
            2**63,
            2**64 - 1,
            2**64,
            2**70,
            -(10**30),
            0.0,
            -0.0,
            1.5,
            -0.25,
            12.34,
            1e15,
            0.001,
            123456.789,
            3.0,
        ]
    )


def instant(rng: random.Random) -> Any:
    return rng.choice(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00.5",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01",
            " 2024-05-01T12:00:00Z ",
            "1714564800",
            "1714564800000",
            "1714564800.25",
            "not a time",
            "2024-13-01T00:00:00Z",
            1714564800,
            1714564800123,
            1714564800.5,
            -1,
            10**20,
        ]
    )


def scalar(rng: random.Random) -> Any:
    kinds: list[Callable[[random.Random], Any]] = [
        text,
        number,
        instant,
        lambda _: None,
        lambda r: r.choice([True, False]),
    ]
    return rng.choice(kinds)(rng)


def anything(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 4 or roll < 0.6:
        return scalar(rng)
    if roll < 0.75:
        return [anything(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll < 0.8:
        return tuple(anything(rng, depth + 1) for _ in range(rng.randrange(3)))
    return {rng.choice([*OTHER_KEYS, "amount", "ts"]): anything(rng, depth + 1) for _ in range(rng.randrange(4))}


def fields(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, names in ALIASES.items():
        # Usually one spelling, sometimes none or two.
        for _ in range(rng.choice([0, 1, 1, 1, 1, 2])):
            name = rng.choice(names)
            if field == "timestamp":
                out[name] = instant(rng)
            elif field == "amount":
                out[name] = rng.choice([number(rng), str(number(rng)), " 12.5 ", "1e3", "12,5", "abc", None])
            elif rng.random() < 0.85:
                out[name] = text(rng)
            else:
                out[name] = anything(rng)
    for _ in range(rng.randrange(4)):
        out[rng.choice(OTHER_KEYS)] = anything(rng)
    return out


def event(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.6:
        return fields(rng)
    envelope: dict[str, Any] = {"source": text(rng)} if rng.random() < 0.9 else {}
    if roll < 0.95:
        envelope["payload"] = fields(rng)
    else:
        envelope["payload"] = anything(rng)
    if rng.random() < 0.3:
        envelope.update({k: v for k, v in fields(rng).items() if k != "payload"})
    return envelope


def events(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    made: list[dict[str, Any]] = []
    for _ in range(n):
        if made and rng.random() < 0.15:
            # A retry, as it was or with its keys in another order.
            again = dict(rng.choice(made))
            made.append(dict(reversed(list(again.items()))) if rng.random() < 0.5 else again)
        elif rng.random() < 0.05:
            # The same event id with another amount: a conflict.
            made.append(
                {"client_id": "c-conflict", "event_id": "e-1", "amount": number(rng), "ts": "2024-05-01T00:00:00Z"}
            )
        else:
            made.append(event(rng))
    return made


def stored(ing: ingest.Ingestor) -> tuple[list[Any], list[Any]]:
    """The events and dead letters of `ing`, but when they came."""
    events = [{k: v for k, v in e.items() if k != "received_at"} for e in ing.events(limit=1000)]
    letters = [(r["raw"], r["reasons"], r["attempts"]) for r in ing.rejected(limit=1000)]
    return events, letters


@pytest.mark.parametrize("seed", range(8))
def test_a_dict_is_decided_as_its_json_text_is(seed: int) -> None:
    # Odd seeds key events by their event id, where a conflict can be.
    rules = {"dedup_key": ["client_id", "event_id"]} if seed % 2 else None
    batch = events(seed, 400)
    assert all(json.dumps(e, allow_nan=False) for e in batch)
    statuses = set()
    with ingest.Ingestor(rules=rules) as as_dicts, ingest.Ingestor(rules=rules) as as_text:
        for at in range(0, len(batch), 50):
            part = batch[at : at + 50]
            got = as_dicts.submit_batch(part)
            want = as_text.submit_batch([json.dumps(e) for e in part])
            assert [o.to_dict() for o in got] == [o.to_dict() for o in want], part
            statuses |= {o.status for o in got}
        assert stored(as_dicts) == stored(as_text)
    # The generator reaches the answers, or the comparison proves little.
    assert {"accepted", "rejected"} < statuses, statuses


def test_one_dict_at_a_time_is_decided_as_its_json_text_is() -> None:
    with ingest.Ingestor() as as_dicts, ingest.Ingestor() as as_text:
        for e in events(99, 300):
            assert as_dicts.submit(e).to_dict() == as_text.submit(json.dumps(e)).to_dict(), e
        assert stored(as_dicts) == stored(as_text)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        # What has no plain JSON form makes the reading step aside; each is
        # then answered as before: rejected with its reason, or read as the
        # JSON it stands for (code None).
        (float("nan"), "not_finite"),
        (float("-inf"), "not_finite"),
        ("\ud800", "invalid_text"),
        ({"$serde_json::private::Number": "1"}, "reserved_key"),
        ({1: "int key"}, "unsupported_type"),
        (b"bytes", "unsupported_type"),
        ({1, 2}, "unsupported_type"),
        (date(2024, 5, 1), None),
        (datetime(2024, 5, 1, 12, tzinfo=timezone.utc), None),
        (2**200, None),
        (-(2**64) - 1, None),
    ],
)
def test_what_the_reader_steps_aside_from_is_answered_as_before(value: Any, code: str | None) -> None:
    with ingest.Ingestor() as ing:
        out = ing.submit({"client_id": "c", "amount": 1, "ts": 0, "x": value})
        if code is not None:
            assert (out.status, [r["code"] for r in out.reasons]) == ("rejected", [code]), out
            return
        as_text = json.dumps({"client_id": "c", "amount": 1, "ts": 0, "x": value}, default=lambda d: d.isoformat())
        with ingest.Ingestor() as other:
            assert out.to_dict() == other.submit(as_text).to_dict()


def test_a_deep_value_is_read_to_the_core_limit_and_refused_past_it() -> None:
    def nest(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    with ingest.Ingestor() as ing:
        # The event is level 1 and "x" level 2: 126 lists put the last at
        # level 127, the deepest a list may be; one more is refused.
        assert ing.submit({"client_id": "c", "amount": 1, "ts": 0, "x": nest(126)}).status == "accepted"
        out = ing.submit({"client_id": "d", "amount": 1, "ts": 0, "x": nest(127)})
        assert [r["code"] for r in out.reasons] == ["too_deep"], out
