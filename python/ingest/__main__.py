"""Command line: ``python -m ingest copy SOURCE TARGET`` and
``python -m ingest prune DB --before T [--archive FILE]``.

Moves a store to another backend or file: every stored event and dead
letter of SOURCE is copied into TARGET (created and migrated if needed),
keyed and rolled up by TARGET itself. Running it again copies nothing
twice, so an interrupted copy is finished by running it again. SOURCE and
TARGET are what ``ingest.Ingestor`` opens: a SQLite path or a
``postgres://`` URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import IngestError, Ingestor, __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description="ingest's command line.")
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser(
        "copy",
        help="copy every event and dead letter of SOURCE into TARGET",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    copy.add_argument("source", help="SQLite path or postgres:// URL to copy from")
    copy.add_argument("target", help="SQLite path or postgres:// URL to copy into")
    copy.add_argument(
        "--rules",
        help="rules document (JSON text, or @FILE) for TARGET; default: the built-in rules",
    )
    prune = commands.add_parser(
        "prune",
        help="remove the events of DB before T, keeping every rollup",
        description=(
            "Remove the events before T (and dead letters received before it) from DB, "
            "keeping every rollup. Refused unless DB's rules set max_age and T is at or "
            "before now minus max_age. With --archive, the removed rows go to FILE first "
            "(NDJSON, gzip when it ends in .gz); run it again after an interruption."
        ),
    )
    prune.add_argument("db", help="SQLite path or postgres:// URL")
    prune.add_argument("--before", required=True, help="RFC 3339 time, date, or epoch seconds/milliseconds")
    prune.add_argument("--archive", help="file to write the removed rows to first")
    prune.add_argument(
        "--rules",
        help="rules document (JSON text, or @FILE) with max_age; default: the built-in rules",
    )
    args = parser.parse_args(argv)
    if args.command == "prune":
        return _prune(args)

    rules = _rules(args.rules)
    # Opening a SQLite path creates the file: a mistyped source must not
    # become an empty store that copies nothing.
    if "://" not in args.source and args.source != ":memory:" and not os.path.exists(args.source):
        print(f"python -m ingest copy: source {args.source} does not exist", file=sys.stderr)
        return 1
    try:
        with Ingestor(args.source) as source, Ingestor(args.target, rules=rules) as target:
            report = source.copy_to(target)
            print(json.dumps({"source": source.path, "target": target.path, **report}))
    except (IngestError, OSError) as e:
        print(f"python -m ingest copy: {e}", file=sys.stderr)
        return 1
    return 0


def _rules(rules: str | None) -> str | None:
    if rules is not None and rules.startswith("@"):
        with open(rules[1:], encoding="utf-8") as f:
            return f.read()
    return rules


def _prune(args: argparse.Namespace) -> int:
    if "://" not in args.db and not os.path.exists(args.db):
        print(f"python -m ingest prune: {args.db} does not exist", file=sys.stderr)
        return 1
    try:
        with Ingestor(args.db, rules=_rules(args.rules)) as ing:
            print(json.dumps(ing.prune(before=args.before, archive=args.archive)))
    except (IngestError, OSError) as e:
        print(f"python -m ingest prune: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
