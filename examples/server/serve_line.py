"""The shell line `make serve` runs, read from the Makefile itself (`make -n`,
which builds nothing): what the server tests, the HTTP benchmark and the
failover drill start is what an operator's `make serve` starts.

Standard library only: the benchmark and the drill import it from their own
interpreters.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The settings the line takes, as `make serve` reads them.
SETTINGS = ("HOST", "PORT", "DB", "WORKERS")


@functools.cache
def _template(python: str | None) -> str:
    """The line with `@KEY@` for each setting; asked of make once per
    interpreter."""
    # Run from inside make (make test), the child make would take the
    # parent's flags (-n included in some cases) and levels: a clean make.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    command = ["make", "-n", "-s", "--no-print-directory", "serve"]
    if python is not None:
        command.append(f"PY={python}")
    out = subprocess.run(
        command + [f"{k}=@{k}@" for k in SETTINGS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in out.stdout.splitlines() if "serve.py" in line]
    if len(lines) != 1:
        raise RuntimeError(f"`make -n serve` printed no single serve.py line:\n{out.stdout}")
    return lines[0]


def serve_line(
    *, host: str, port: int, db: str | os.PathLike[str], workers: int, python: str | None = None
) -> str:
    """The line, with these settings; `python` as PY (default: the
    Makefile's own, the repository's .venv)."""
    line = _template(python)
    for key, value in (
        ("HOST", host),
        ("PORT", str(port)),
        ("DB", str(db)),
        ("WORKERS", str(workers)),
    ):
        # Inside the recipe's double quotes: only these would be read by the shell.
        if any(c in value for c in '"$`\\'):
            raise ValueError(f"{key} {value!r} cannot go inside the recipe's double quotes")
        line = line.replace(f"@{key}@", value)
    return line
