"""Which scenario files the Python test suites run (the package's and the
example server's conftests load this file), by the rule of ``README.md``
beside it; ``files.rs`` is the same rule for the Rust suites."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def scenario_files() -> list[tuple[str, Path]]:
    """The scenario files to run, each with the name it goes by: every
    ``tests/scenarios/*.json`` of the repository (missing or empty is a
    failure, never a skip), then every file of ``$INGEST_SHARED/scenarios``
    (default ``../shared`` beside the checkout) when that folder exists. A
    shared file with a repository file's name and the same JSON runs once;
    with other JSON it runs too."""
    repo = REPO / "tests" / "scenarios"
    files = [(f"tests/scenarios/{p.name}", p) for p in sorted(repo.glob("*.json"))]
    if not files:
        pytest.fail(f"no scenario files in {repo}")
    shared = (
        Path(os.environ.get("INGEST_SHARED") or REPO.parent / "shared") / "scenarios"
    )
    own = {p.name: p for _, p in files}
    for path in sorted(shared.glob("*.json")) if shared.is_dir() else []:
        if path.name not in own:
            files.append((f"shared/{path.name}", path))
        elif not same_json(own[path.name], path):
            files.append(
                (f"shared/{path.name} (differs from tests/scenarios/{path.name})", path)
            )
    return files


def same_json(a: Path, b: Path) -> bool:
    """The same JSON value in both files; unreadable or invalid is different."""
    try:
        return bool(json.loads(a.read_text()) == json.loads(b.read_text()))
    except (OSError, ValueError):
        return False
