"""Every method of ``Ingestor`` and ``Outcome``."""

from __future__ import annotations

import json
import pathlib
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

import ingest

from .conftest import sales


def test_submit_accepts_normalises_and_deduplicates(ing: ingest.Ingestor) -> None:
    first = ing.submit(sales())
    assert first.status == "accepted"
    assert isinstance(first.id, int)
    assert first.event == {
        "client_id": "clientA",
        "metric": "sales",
        "amount": 1200.0,
        "timestamp": "2024-01-01T00:00:00.000Z",
        "attributes": {},
        "event_id": None,
    }
    assert first.reasons == []
    again = ing.submit({"client_id": "clientA", "metric": "Sales", "amount": "1200", "ts": "2024-01-01T00:00:00Z"})
    assert (again.status, again.id) == ("duplicate", first.id)
    assert again.event == first.event  # the stored event, whatever this one spelled


def test_submit_takes_json_text(ing: ingest.Ingestor) -> None:
    out = ing.submit(json.dumps(sales()))
    assert out.status == "accepted"
    assert ing.submit(json.dumps(sales())).status == "duplicate"
    with pytest.raises(ingest.InvalidArgument, match="not valid JSON"):
        ing.submit("{not json")


def test_rejections_are_outcomes_with_every_reason(ing: ingest.Ingestor) -> None:
    out = ing.submit({"source": "clientC", "payload": {"metric": "views"}})
    assert out.status == "rejected"
    assert out.id is None and out.event is None
    assert {(r["code"], r["field"]) for r in out.reasons} == {
        ("missing_field", "amount"),
        ("missing_field", "timestamp"),
    }
    assert all(isinstance(r["message"], str) and r["message"] for r in out.reasons)
    # Not an object at all: still an outcome, not an exception.
    assert ing.submit(42).status == "rejected"  # type: ignore[arg-type]
    assert ing.submit("[1, 2]").reasons[0]["code"] == "not_an_object"


def test_outcome_repr_dict_and_equality(ing: ingest.Ingestor) -> None:
    out = ing.submit(sales())
    assert repr(out) == (
        "<Outcome accepted id=1 client_id='clientA' metric='sales' amount=1200.0 timestamp=2024-01-01T00:00:00.000Z>"
    )
    assert repr(ing.check(sales(1e30))).startswith(
        "<Outcome accepted id=None client_id='clientA' metric='sales' amount=1e+30 "
    )
    d = out.to_dict()
    assert d == {"status": "accepted", "id": 1, "event": out.event, "reasons": []}
    dup = ing.submit(sales())
    assert repr(dup).startswith("<Outcome duplicate id=1 ")
    rej = ing.submit({"client": "x"})
    assert repr(rej) == "<Outcome rejected reasons=[missing_field:amount, missing_field:timestamp]>"
    assert rej.to_dict()["status"] == "rejected" and rej.to_dict()["event"] is None
    assert ing.check(sales(value=5)) == ing.check(sales(value=5))
    assert out != dup
    with pytest.raises(TypeError):
        hash(out)
    with pytest.raises(TypeError):
        ingest.Outcome()
    with pytest.raises(AttributeError):
        out.status = "rejected"  # type: ignore[misc]
    # Results are fresh copies: changing one changes nothing stored.
    ev = out.event
    assert ev is not None
    ev["metric"] = "changed"
    assert out.event is not None and out.event["metric"] == "sales"


def test_submit_batch_one_outcome_per_input(ing: ingest.Ingestor) -> None:
    outs = ing.submit_batch([sales(1), sales(2), sales(1), {"metric": "views"}])
    assert [o.status for o in outs] == ["accepted", "accepted", "duplicate", "rejected"]
    assert outs[2].id == outs[0].id
    text = json.dumps([sales(3), sales(2)])
    assert [o.status for o in ing.submit_batch(text)] == ["accepted", "duplicate"]
    # Any iterable; items may be JSON text.
    items: list[str | dict[str, Any]] = [json.dumps(sales(4)), sales(4)]
    outs = ing.submit_batch(x for x in items)
    assert [o.status for o in outs] == ["accepted", "duplicate"]
    assert ing.submit_batch([]) == []
    with pytest.raises(ingest.InvalidArgument, match="array"):
        ing.submit_batch('{"a": 1}')
    with pytest.raises(ingest.InvalidArgument, match="item 1"):
        ing.submit_batch([sales(5), "{oops"])
    with pytest.raises(ingest.InvalidArgument, match="item 1"):
        ing.submit_batch(f"[{json.dumps(sales(5))}, {{oops}}]")
    with pytest.raises(TypeError):
        ing.submit_batch(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use submit"):
        ing.submit_batch(sales())
    assert ing.stats()["stored_events"] == 4


def test_submit_batch_is_one_transaction(ing: ingest.Ingestor) -> None:
    ing.simulate_failure("after_insert")
    with pytest.raises(ingest.InjectedFailure):
        ing.submit_batch([sales(1), sales(2), {"metric": "x"}])
    assert ing.stats()["stored_events"] == 0
    assert ing.rejected() == []
    assert [o.status for o in ing.submit_batch([sales(1), sales(2)])] == ["accepted", "accepted"]


def test_check_is_a_dry_run(ing: ingest.Ingestor) -> None:
    dry = ing.check(sales())
    assert (dry.status, dry.id) == ("accepted", None)
    assert ing.stats()["stored_events"] == 0
    stored = ing.submit(sales())
    assert (ing.check(sales()).status, ing.check(json.dumps(sales())).id) == ("duplicate", stored.id)
    assert ing.check({"metric": "x"}).status == "rejected"
    assert ing.rejected() == []
    with pytest.raises(ingest.InvalidArgument):
        ing.check("nope")


def test_aggregate_totals_filters_and_groups(ing: ingest.Ingestor) -> None:
    ing.submit_batch(
        [
            sales(10, "2024-01-01T01:30:00Z"),
            sales(20, "2024-01-01T02:00:00Z", client="clientB"),
            sales(30, "2024-01-02T00:00:00Z"),
            sales(40, "2024-02-01T00:00:00Z"),
        ]
    )
    total = ing.aggregate()
    assert {k: v for k, v in total.items() if k in ("count", "sum", "avg", "min", "max", "stale")} == {
        "count": 4,
        "sum": 100.0,
        "avg": 25.0,
        "min": 10.0,
        "max": 40.0,
        "stale": False,
    }
    assert "groups" not in total
    assert total["computed_at"].endswith("Z")
    assert ing.aggregate(client_id="clientB")["sum"] == 20.0
    assert ing.aggregate(metric="SALES")["count"] == 4  # cased by the rules, like events
    jan = ing.aggregate(start="2024-01-01", end="2024-02-01")
    assert (jan["count"], jan["sum"]) == (3, 60.0)
    # date, aware datetime and naive datetime (UTC) and epoch seconds all work.
    assert ing.aggregate(start=date(2024, 1, 2))["count"] == 2
    aware = datetime(2024, 1, 1, 3, 30, tzinfo=timezone(timedelta(hours=2)))  # 01:30Z
    assert ing.aggregate(start=aware, end=datetime(2024, 1, 1, 2))["sum"] == 10.0
    assert ing.aggregate(end=1704067200 + 3600 * 2)["sum"] == 10.0
    days = ing.aggregate(group_by="day")
    assert [(g["bucket"], g["count"]) for g in days["groups"]] == [
        ("2024-01-01T00:00:00.000Z", 2),
        ("2024-01-02T00:00:00.000Z", 1),
        ("2024-02-01T00:00:00.000Z", 1),
    ]
    months = ing.aggregate(group_by=["month", "client_id"])
    assert [(g["bucket"][:7], g["client_id"], g["sum"]) for g in months["groups"]] == [
        ("2024-01", "clientA", 40.0),
        ("2024-01", "clientB", 20.0),
        ("2024-02", "clientA", 40.0),
    ]
    assert len(ing.aggregate(group_by=("hour",))["groups"]) == 4
    empty = ing.aggregate(client_id="nobody")
    assert (empty["count"], empty["sum"], empty["avg"], empty["min"]) == (0, 0.0, None, None)
    assert ing.aggregate(client_id="nobody", group_by="day")["groups"] == []


def test_aggregate_answer_is_plain_python_in_the_libraries_order(ing: ingest.Ingestor) -> None:
    # Straight from the core's types: the keys in the order the C and Rust
    # JSON give them, ints and floats as such, a local start before 1893
    # in Berlin at its local mean time (+00:53:28, written to the minute).
    ing.submit_batch(
        [
            {"clientId": "a", "metric": "m", "value": 1.5, "timestamp": "1850-06-01T12:00:00Z"},
            {"clientId": "b", "metric": "m", "value": 2, "timestamp": "1850-06-01T13:00:00Z"},
        ]
    )
    got = ing.aggregate(group_by=("day", "client_id", "metric"), tz="Europe/Berlin")
    assert list(got) == ["count", "sum", "avg", "min", "max", "stale", "computed_at", "groups"]
    assert (got["count"], got["sum"], got["avg"], got["min"], got["max"], got["stale"]) == (
        2,
        3.5,
        1.75,
        1.5,
        2.0,
        False,
    )
    assert type(got["count"]) is int and type(got["max"]) is float
    assert got["groups"] == [
        {
            "bucket": "1850-05-31T23:06:32.000Z",
            "bucket_local": "1850-06-01T00:00:00+00:53",
            "client_id": client,
            "metric": "m",
            "count": 1,
            "sum": amount,
            "avg": amount,
            "min": amount,
            "max": amount,
        }
        for client, amount in (("a", 1.5), ("b", 2.0))
    ]
    assert list(got["groups"][0]) == [
        "bucket",
        "bucket_local",
        "client_id",
        "metric",
        "count",
        "sum",
        "avg",
        "min",
        "max",
    ]
    empty = ing.aggregate(client_id="nobody", group_by="day")
    assert (empty["groups"], empty["min"], empty["avg"], type(empty["sum"])) == ([], None, None, float)


def test_aggregate_in_a_time_zone(ing: ingest.Ingestor) -> None:
    # 2024-03-31 in Berlin has 23 hours: 2024-03-30T23:00Z to 2024-03-31T22:00Z.
    ing.submit_batch(
        [
            sales(1, "2024-03-30T22:59:59.999Z"),
            sales(2, "2024-03-30T23:00:00Z"),
            sales(4, "2024-03-31T21:59:59.999Z"),
            sales(8, "2024-03-31T22:00:00Z"),
        ]
    )
    days = ing.aggregate(metric="sales", group_by="day", tz="Europe/Berlin")
    assert [(g["bucket"], g.get("bucket_local"), g["sum"]) for g in days["groups"]] == [
        ("2024-03-29T23:00:00.000Z", "2024-03-30T00:00:00+01:00", 1.0),
        ("2024-03-30T23:00:00.000Z", "2024-03-31T00:00:00+01:00", 6.0),
        ("2024-03-31T22:00:00.000Z", "2024-04-01T00:00:00+02:00", 8.0),
    ]
    # Without a zone, UTC days and no local label.
    assert all("bucket_local" not in g for g in ing.aggregate(group_by="day")["groups"])
    assert ing.aggregate(tz=None, group_by="day")["groups"] == ing.aggregate(group_by="day")["groups"]
    for bad in ("Europe/Atlantis", "", 5):
        with pytest.raises(ingest.InvalidArgument) as info:
            ing.aggregate(group_by="day", tz=bad)  # type: ignore[arg-type]
        assert "Europe/Berlin" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_by": "week"},
        {"group_by": ["day", "month"]},
        {"start": "tomorrow"},
        {"start": "2024-02-01", "end": "2024-01-01"},
        {"client_id": 5},
        {"start": {"not": "a time"}},
    ],
)
def test_aggregate_bad_queries_raise(ing: ingest.Ingestor, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ingest.InvalidArgument) as info:
        ing.aggregate(**kwargs)
    assert info.value.kind == "invalid_argument"


def test_aggregate_stale_result_when_reads_fail(ing: ingest.Ingestor) -> None:
    ing.submit(sales())
    fresh = ing.aggregate(metric="sales")
    ing.simulate_failure("aggregate")
    stale = ing.aggregate(metric="sales")
    assert stale["stale"] is True
    assert (stale["count"], stale["sum"], stale["computed_at"]) == (1, 1200.0, fresh["computed_at"])
    ing.simulate_failure("aggregate")
    with pytest.raises(ingest.InjectedFailure):
        ing.aggregate(metric="never asked before")
    assert ing.aggregate(metric="sales")["stale"] is False


def test_events_filters_and_pages(ing: ingest.Ingestor) -> None:
    outs = ing.submit_batch([sales(i, f"2024-01-0{i}", extra=i) for i in range(1, 6)])
    events = ing.events()
    assert [e["id"] for e in events] == sorted((o.id for o in outs if o.id is not None), reverse=True)
    first = events[-1]
    assert first["amount"] == 1.0 and first["attributes"] == {"extra": 1}
    assert first["timestamp"] == "2024-01-01T00:00:00.000Z"
    assert first["received_at"].endswith("Z") and first["rules_version"] == ing.rules_version
    assert len(ing.events(limit=2)) == 2
    assert [e["amount"] for e in ing.events(limit=2, offset=1)] == [4.0, 3.0]
    assert [e["amount"] for e in ing.events(start="2024-01-02", end=date(2024, 1, 4))] == [3.0, 2.0]
    assert ing.events(client_id="other") == []
    assert len(ing.events(metric=" Sales ")) == 5
    for bad in ({"limit": 0}, {"limit": -1}, {"limit": 10_001}, {"offset": -1}, {"limit": "ten"}, {"limit": True}):
        with pytest.raises(ingest.InvalidArgument):
            ing.events(**bad)


def test_rejected_and_reprocess(db_path: pathlib.Path) -> None:
    raw = {"client_id": "c", "price": "9.5", "ts": "2024-03-01"}
    with ingest.Ingestor(db_path) as ing:
        assert ing.submit(raw).status == "rejected"
        assert ing.submit(raw).status == "rejected"  # a retry is not stored twice
        assert ing.submit({"client_id": "c", "ts": "2024-03-02"}).status == "rejected"
        rejected = ing.rejected()
        assert len(rejected) == 2
        oldest = rejected[-1]
        assert oldest["raw"] == raw
        assert (oldest["raw_exact"], oldest["raw_bytes"]) == (True, len(json.dumps(raw, separators=(",", ":"))))
        assert oldest["attempts"] == 2
        assert oldest["rules_version"] == ing.rules_version
        assert oldest["received_at"].endswith("Z")
        assert {(r["code"], r["field"]) for r in oldest["reasons"]} == {("missing_field", "amount")}
        assert len(ing.rejected(limit=1)) == 1 and ing.rejected(limit=1, offset=1)[0]["raw"] == raw
        with pytest.raises(ingest.InvalidArgument):
            ing.rejected(limit=0)
        assert ing.reprocess_rejected() == {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 2}
        old_version = ing.rules_version
    rules = {"aliases": {"amount": ["value", "amount", "amt", "price"]}}
    with ingest.Ingestor(db_path, rules=rules) as ing:
        assert ing.rules_version != old_version
        assert ing.reprocess_rejected() == {"accepted": 1, "duplicate": 0, "conflict": 0, "rejected": 1}
        assert [e["amount"] for e in ing.events()] == [9.5]
        left = ing.rejected()
        assert len(left) == 1 and left[0]["rules_version"] == ing.rules_version
        assert ing.stats()["stored_rejected"] == 1


def test_stats_counts_outcomes_and_storage(ing: ingest.Ingestor) -> None:
    assert ing.stats() == {
        "accepted": 0,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 0,
        "failed": 0,
        "stored_events": 0,
        "stored_rejected": 0,
        "evicted_rejected": 0,
    }
    ing.submit(sales())
    ing.submit(sales())
    ing.submit({})
    ing.simulate_failure("before_insert")
    with pytest.raises(ingest.InjectedFailure):
        ing.submit(sales(2))
    assert ing.stats() == {
        "accepted": 1,
        "duplicate": 1,
        "conflict": 0,
        "rejected": 1,
        "failed": 1,
        "stored_events": 1,
        "stored_rejected": 1,
        "evicted_rejected": 0,
    }


@pytest.mark.parametrize(
    ("point", "retry"),
    [("before_insert", "accepted"), ("after_insert", "accepted"), ("after_commit", "duplicate")],
)
def test_failure_injection_and_retry(ing: ingest.Ingestor, point: str, retry: str) -> None:
    ing.simulate_failure(point, times=2)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(ingest.InjectedFailure) as info:
            ing.submit(sales())
        assert info.value.kind == "injected" and point in str(info.value)
        assert info.value.point == point
    assert ing.submit(sales()).status == retry
    assert ing.stats()["stored_events"] == 1


def test_armed_failure_reports_what_is_left(ing: ingest.Ingestor) -> None:
    assert ing.armed_failure() is None
    ing.simulate_failure("before_insert", times=2)
    assert ing.armed_failure() == ("before_insert", 2)
    with pytest.raises(ingest.InjectedFailure):
        ing.submit(sales())
    assert ing.armed_failure() == ("before_insert", 1)
    ing.clear_failure()
    assert ing.armed_failure() is None


def test_clear_failure_and_bad_points(ing: ingest.Ingestor) -> None:
    ing.simulate_failure()
    ing.clear_failure()
    assert ing.submit(sales()).status == "accepted"
    ing.simulate_failure("after_insert", times=0)  # zero disarms
    assert ing.submit(sales(2)).status == "accepted"
    with pytest.raises(ingest.InvalidArgument, match="later"):
        ing.simulate_failure("later")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        ing.simulate_failure("after_insert", times=-1)


def test_open_options(tmp_path: pathlib.Path) -> None:
    with ingest.Ingestor(str(tmp_path / "a.db"), durability="normal", busy_timeout=0.5, max_event_bytes=200) as ing:
        assert ing.durability == "normal"
        assert ing.path == str(tmp_path / "a.db")
        assert ing.submit(sales()).status == "accepted"
        for big in (sales(pad="x" * 500), json.dumps(sales(pad="x" * 500))):
            out = ing.submit(big)
            assert [r["code"] for r in out.reasons] == ["too_large"]
            assert "the limit is 200" in out.reasons[0]["message"]
    with ingest.Ingestor(max_dead_letters=2, max_dead_letter_bytes=64) as ing:
        for i in range(3):
            ing.submit({"client_id": f"c{i}", "pad": "x" * 100})
        assert [r["raw"][:16] for r in ing.rejected()] == ['{"client_id":"c2', '{"client_id":"c1']
        assert all(len(json.dumps(r["raw"])) <= 64 and not r["raw_exact"] for r in ing.rejected())
        assert ing.stats()["evicted_rejected"] == 1
    with pytest.raises(ingest.InvalidArgument, match="dead letters"):
        ingest.Ingestor(max_dead_letters=0)
    with pytest.raises(ingest.InvalidArgument, match="dead letters"):
        ingest.Ingestor(max_dead_letter_bytes=10)
    with pytest.raises(OverflowError):
        ingest.Ingestor(max_dead_letters=-1)
    with ingest.Ingestor() as ing:
        assert (ing.durability, ing.path) == ("full", ":memory:")
        assert ing.rules["required"] == ["client_id", "amount", "timestamp"]
    with pytest.raises(ingest.InvalidArgument, match="durability"):
        ingest.Ingestor(durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ingest.InvalidArgument, match="busy_timeout"):
        ingest.Ingestor(busy_timeout=-1)
    with pytest.raises(ingest.InvalidArgument, match="busy_timeout"):
        ingest.Ingestor(busy_timeout=float("nan"))
    with pytest.raises(TypeError):
        ingest.Ingestor(42)  # type: ignore[arg-type]


def test_rules_as_dict_or_json_text() -> None:
    rules = {"metric_case": "preserve", "allowed_metrics": ["Sales"], "amount_range": [0, 100]}
    for given in (rules, json.dumps(rules)):
        with ingest.Ingestor(rules=given) as ing:
            assert ing.rules["metric_case"] == "preserve"
            assert ing.submit({"source": "a", "payload": {"name": "Sales", "value": 50, "ts": 1}}).status == "accepted"
            out = ing.submit({"source": "a", "payload": {"name": "sales", "value": 500, "ts": 1}})
            assert {r["code"] for r in out.reasons} == {"not_allowed", "out_of_range"}


def test_event_id_dedup_key() -> None:
    with ingest.Ingestor(rules={"dedup_key": ["client_id", "event_id"]}) as ing:
        a = ing.submit({"client_id": "c", "amount": 1, "ts": "2024-01-01", "event_id": "e1"})
        b = ing.submit({"client_id": "c", "amount": "1", "ts": "2024-01-01T00:00:00Z", "eventId": "e1", "try": 2})
        assert (a.status, b.status, b.id) == ("accepted", "duplicate", a.id)
        assert a.event is not None and a.event["event_id"] == "e1"
        # The same key for another amount and time is not a retry: nothing changes.
        c = ing.submit({"client_id": "c", "amount": 2, "ts": "2024-01-02", "eventId": "e1"})
        assert (c.status, c.id, c.event) == ("conflict", a.id, a.event)
        assert [(r["code"], r["field"]) for r in c.reasons] == [("conflict", "amount"), ("conflict", "timestamp")]
        assert ing.aggregate()["sum"] == 1.0


def test_path_like_and_reopen_keeps_data_and_dedup(db_path: pathlib.Path) -> None:
    with ingest.Ingestor(db_path) as ing:
        first = ing.submit(sales())
        ing.submit({"metric": "x"})
    with ingest.Ingestor(db_path) as ing:
        again = ing.submit(sales())
        assert (again.status, again.id) == ("duplicate", first.id)
        assert len(ing.events()) == 1 and len(ing.rejected()) == 1
        assert ing.aggregate()["sum"] == 1200.0
        assert ing.submit({"metric": "x"}).status == "rejected"
        assert ing.rejected()[0]["attempts"] == 2
