#!/usr/bin/env python3
"""Write fuzz seeds from the scenarios: one file per raw event, per batch and
(for the C ABI) per scenario as NUL-separated calls.

    seed-corpus.py SCENARIOS_DIR KIND OUT_DIR [SHARED_SCENARIOS_DIR]

SCENARIOS_DIR is the repository's tests/scenarios (missing or empty is an
error). SHARED_SCENARIOS_DIR, when given and present, adds its files too:
those not in SCENARIOS_DIR, or there under the same name with other JSON
(their seeds are named `scenario-shared-...`), as the tests run them.

KIND is `events` (each raw event, batch items included), `submit` (each raw
event and each batch as a JSON array) or `c_json` (as `submit`, plus each
aggregate query, plus each scenario's submissions joined by NUL bytes).
The seeds are regenerated on every run into a git-ignored corpus directory.
"""
import json
import pathlib
import sys


def scenario_files(scenarios, shared):
    """(seed name prefix, path) of every file to seed from."""
    own = {p.name: p for p in sorted(pathlib.Path(scenarios).glob("*.json"))}
    if not own:
        sys.exit(f"no scenarios in {scenarios}")
    files = [("", p) for p in own.values()]
    shared = pathlib.Path(shared) if shared else None
    for path in sorted(shared.glob("*.json")) if shared and shared.is_dir() else []:
        mine = own.get(path.name)
        if mine is None or read(mine) != read(path):
            files.append(("shared-", path))
    return files


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def main(scenarios, kind, out, shared=None):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = scenario_files(scenarios, shared)
    written = 0

    def seed(name, data):
        nonlocal written
        (out / f"scenario-{name}").write_bytes(data)
        written += 1

    def text(value):
        return json.dumps(value, ensure_ascii=False).encode()

    for prefix, path in files:
        steps = read(path)
        calls = []
        stem = prefix + path.stem
        for i, step in enumerate(steps):
            name = f"{stem}-{i:03}"
            if "submit" in step:
                seed(f"{name}-event", text(step["submit"]))
                calls.append(text(step["submit"]))
            if "submit_batch" in step:
                batch = step["submit_batch"]
                if kind == "events":
                    for j, raw in enumerate(batch):
                        seed(f"{name}-item{j:02}", text(raw))
                else:
                    seed(f"{name}-batch", text(batch))
                    calls.append(text(batch))
            if "aggregate" in step and kind == "c_json":
                seed(f"{name}-query", text(step["aggregate"]))
                calls.append(text(step["aggregate"]))
        if kind == "c_json" and calls:
            # The harness takes at most 8 NUL-separated calls per input.
            for k in range(0, len(calls), 8):
                seed(f"{stem}-calls{k // 8:02}", b"\0".join(calls[k : k + 8]))
    print(f"{out}: {written} seeds from {len(files)} scenario file(s)")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5) or sys.argv[2] not in ("events", "submit", "c_json"):
        sys.exit(__doc__)
    main(*sys.argv[1:])
