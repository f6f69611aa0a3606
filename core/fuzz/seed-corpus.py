#!/usr/bin/env python3
"""Write fuzz seeds from the shared scenarios: one file per raw event, per
batch and (for the C ABI) per scenario as NUL-separated calls.

    seed-corpus.py SCENARIOS_DIR KIND OUT_DIR

KIND is `events` (each raw event, batch items included), `submit` (each raw
event and each batch as a JSON array) or `c_json` (as `submit`, plus each
aggregate query, plus each scenario's submissions joined by NUL bytes).
The seeds are regenerated on every run into a git-ignored corpus directory.
"""
import json
import pathlib
import sys


def main(scenarios, kind, out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(pathlib.Path(scenarios).glob("*.json"))
    if not files:
        sys.exit(f"no scenarios in {scenarios} (set INGEST_SHARED)")
    written = 0

    def seed(name, data):
        nonlocal written
        (out / f"scenario-{name}").write_bytes(data)
        written += 1

    def text(value):
        return json.dumps(value, ensure_ascii=False).encode()

    for path in files:
        steps = json.loads(path.read_text(encoding="utf-8"))
        calls = []
        for i, step in enumerate(steps):
            name = f"{path.stem}-{i:03}"
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
                seed(f"{path.stem}-calls{k // 8:02}", b"\0".join(calls[k : k + 8]))
    print(f"{out}: {written} seeds from {len(files)} scenario file(s)")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("events", "submit", "c_json"):
        sys.exit(__doc__)
    main(*sys.argv[1:])
