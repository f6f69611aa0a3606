"""Shared fixtures: where the shared scenarios live, and fresh stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``$INGEST_SHARED``, else ``../shared`` beside the checkout. Missing is a
    failure, never a skip: every surface must run the shared scenarios."""
    shared = Path(os.environ.get("INGEST_SHARED") or REPO.parent / "shared")
    scenarios = shared / "scenarios"
    if not scenarios.is_dir():
        pytest.fail(f"scenarios not found at {scenarios} (set INGEST_SHARED)")
    return shared


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def ing() -> Iterator[ingest.Ingestor]:
    with ingest.Ingestor() as i:
        yield i


def sales(
    value: object = 1200, ts: object = "2024-01-01", client: str = "clientA", **extra: object
) -> dict[str, object]:
    """The design's first example event, varied."""
    return {"source": client, "payload": {"metric": "sales", "value": value, "timestamp": ts, **extra}}
