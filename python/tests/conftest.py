"""Shared fixtures: the scenario files to run, and fresh stores."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import ingest

REPO = Path(__file__).resolve().parents[2]


def scenario_files() -> list[tuple[str, Path]]:
    """The scenario files to run, each with the name it goes by: every
    ``tests/scenarios/*.json`` of the repository (missing or empty is a
    failure, never a skip), then every file of ``$INGEST_SHARED/scenarios``
    (default ``../shared`` beside the checkout) when that folder exists. A
    shared file with a repository file's name and the same JSON runs once;
    with other JSON it runs too (see ``tests/scenarios/README.md``)."""
    repo = REPO / "tests" / "scenarios"
    files = [(f"tests/scenarios/{p.name}", p) for p in sorted(repo.glob("*.json"))]
    if not files:
        pytest.fail(f"no scenario files in {repo}")
    shared = Path(os.environ.get("INGEST_SHARED") or REPO.parent / "shared") / "scenarios"
    own = {p.name: p for _, p in files}
    for path in sorted(shared.glob("*.json")) if shared.is_dir() else []:
        if path.name not in own:
            files.append((f"shared/{path.name}", path))
        elif not same_json(own[path.name], path):
            files.append((f"shared/{path.name} (differs from tests/scenarios/{path.name})", path))
    return files


def same_json(a: Path, b: Path) -> bool:
    """The same JSON value in both files; unreadable or invalid is different."""
    try:
        return bool(json.loads(a.read_text()) == json.loads(b.read_text()))
    except (OSError, ValueError):
        return False


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
