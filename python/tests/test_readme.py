"""The README's Python section runs exactly as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import REPO


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Python\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Python' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)
    assert blocks, "the README's Python section has no python example"
    return blocks


@pytest.mark.parametrize("n", range(len(python_blocks())))
def test_readme_example_runs(n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example may create files
    code = compile(python_blocks()[n], f"README.md (python block {n})", "exec")
    exec(code, {"__name__": "__readme__"})
    assert os.getcwd() == str(tmp_path)
