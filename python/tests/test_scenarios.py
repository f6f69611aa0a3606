"""The scenarios (the repository's ``tests/scenarios/*.json``, then those of
``$INGEST_SHARED/scenarios`` when present), run through the Python API
exactly as every other surface runs them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import ingest

from .conftest import scenario_files


def close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-9)


def check_outcome(out: ingest.Outcome, expect: dict[str, Any], where: str) -> None:
    assert out.status == expect["status"], f"{where}: {out!r}"
    for key, want in expect.get("event", {}).items():
        assert out.event is not None, where
        assert out.event[key] == want, f"{where}: event.{key}"  # type: ignore[literal-required]
    got = {(r["code"], r["field"]) for r in out.reasons}
    for reason in expect.get("reasons", []):
        assert (reason["code"], reason["field"]) in got, f"{where}: missing reason {reason} in {out.reasons}"


def count_events(ing: ingest.Ingestor) -> int:
    events: list[Any] = []
    while True:
        page = ing.events(limit=10_000, offset=len(events))
        events.extend(page)
        if len(page) < 10_000:
            return len(events)


def run(ing: ingest.Ingestor, steps: list[dict[str, Any]]) -> None:
    for n, step in enumerate(steps):
        where = f"step {n}: {json.dumps(step)[:120]}"
        if "expect_error" in step:
            with pytest.raises(ingest.IngestError) as info:
                ing.submit(step["submit"])
            assert info.value.kind == step["expect_error"], where
        elif "submit" in step:
            check_outcome(ing.submit(step["submit"]), step["expect"], where)
        elif "submit_batch" in step:
            outs = ing.submit_batch(step["submit_batch"])
            assert len(outs) == len(step["expect"]), where
            for out, expect in zip(outs, step["expect"], strict=True):
                check_outcome(out, expect, where)
        elif "fail_next" in step:
            ing.simulate_failure(step["fail_next"]["point"], step["fail_next"].get("times", 1))
        elif "aggregate" in step:
            got: dict[str, Any] = dict(ing.aggregate(**step["aggregate"]))
            for key, want in step["expect"].items():
                have = got[key]
                if isinstance(want, float) and have is not None:
                    assert close(have, want), f"{where}: {key} {have} != {want}"
                else:
                    assert have == want, f"{where}: {key}"
        elif "count_events" in step:
            assert count_events(ing) == step["count_events"], where
            assert ing.stats()["stored_events"] == step["count_events"], where
        else:
            pytest.fail(f"{where}: unknown step")


SCENARIOS = [pytest.param(path, id=label) for label, path in scenario_files()]


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_in_memory(path: Path) -> None:
    with ingest.Ingestor() as ing:
        run(ing, json.loads(path.read_text()))


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_on_file(path: Path, tmp_path: Path) -> None:
    with ingest.Ingestor(tmp_path / "s.db") as ing:
        run(ing, json.loads(path.read_text()))


def test_scenarios_are_found() -> None:
    assert any(label == "tests/scenarios/seed.json" for label, _ in scenario_files())
