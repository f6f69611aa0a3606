"""The package's own docstring examples run."""

from __future__ import annotations

import doctest

import ingest
import ingest.types


def test_docstring_examples() -> None:
    for module in (ingest, ingest.types):
        failed, _ = doctest.testmod(module, raise_on_error=False, report=True)
        assert failed == 0, module.__name__
    assert doctest.testmod(ingest).attempted > 0
