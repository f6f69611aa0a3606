"""The README's curl session for the example server runs as written, against
a fresh real server, and prints what the README shows."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import REPO, ServerProcess

README = REPO / "README.md"


def console_session() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$ ` command of the first
    console block of the README's "Example server" section."""
    text = README.read_text()
    section = text.split("\n## Example server\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block, "the Example server section has no console block"
    steps: list[tuple[str, list[str]]] = []
    lines = iter(block.group(1).splitlines())
    for line in lines:
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\"):
                cmd = cmd[:-1] + next(lines).strip()
            steps.append((cmd, []))
        else:
            steps[-1][1].append(line)
    return steps


def test_readme_curl_session(fresh_server: ServerProcess) -> None:
    steps = console_session()
    assert len(steps) >= 3
    for cmd, expected in steps:
        cmd = cmd.replace("http://127.0.0.1:8000", fresh_server.base)
        out = subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, timeout=30, check=False
        )
        assert out.returncode == 0, (cmd, out.stderr)
        got = out.stdout.strip().splitlines()
        if expected:
            if expected[0].startswith("{"):
                assert json.loads(got[0]) == json.loads(expected[0]), cmd
            else:
                assert got == expected, cmd
        else:
            assert json.loads(out.stdout)["count"] == 1, cmd
