"""Shared fixtures: the scenario files to run, and fresh stores."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import psycopg
import pytest

import ingest

REPO = Path(__file__).resolve().parents[2]


def _load_scenario_rule() -> Callable[[], list[tuple[str, Path]]]:
    """``scenario_files`` of ``tests/scenarios/files.py``, the one rule for
    which scenario files the Python suites run."""
    rule = REPO / "tests" / "scenarios" / "files.py"
    spec = importlib.util.spec_from_file_location("scenario_rule", rule)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[], list[tuple[str, Path]]], module.scenario_files)


scenario_files = _load_scenario_rule()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def ing() -> Iterator[ingest.Ingestor]:
    with ingest.Ingestor() as i:
        yield i


SERVER = os.environ.get("INGEST_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store of its own: a fresh schema on ``$INGEST_TEST_POSTGRES``
    (default this machine's), dropped afterwards. Unreachable fails under CI
    (``CI=true``) and skips, with its reason, elsewhere."""
    try:
        admin = psycopg.connect(SERVER, autocommit=True)
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {SERVER} is unreachable under CI: {e}")
        pytest.skip(f"PostgreSQL at {SERVER} is unreachable: {e}")
    schema = f"py_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in SERVER else "?"
    try:
        yield f"{SERVER}{sep}schema={schema}"
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


def sales(
    value: object = 1200, ts: object = "2024-01-01", client: str = "clientA", **extra: object
) -> dict[str, object]:
    """The design's first example event, varied."""
    return {"source": client, "payload": {"metric": "sales", "value": value, "timestamp": ts, **extra}}
