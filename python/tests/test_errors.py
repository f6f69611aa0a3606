"""Every error kind of the core arrives as its own exception class, raised by
a real failure of the database wherever one can be provoked."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ingest

from .conftest import sales

STORAGE = [
    ingest.BusyError,
    ingest.IoError,
    ingest.CorruptError,
    ingest.FullError,
    ingest.ReadOnlyError,
    ingest.UnavailableError,
]


def test_hierarchy() -> None:
    assert issubclass(ingest.IngestError, Exception)
    for cls in (ingest.RulesError, ingest.InvalidArgument, ingest.InjectedFailure, ingest.StorageError):
        assert issubclass(cls, ingest.IngestError)
    for cls in STORAGE:
        assert issubclass(cls, ingest.StorageError)
        assert cls.__module__ == "ingest"
    assert ingest.IngestError.__doc__


def test_invalid_argument_is_also_a_value_error(ing: ingest.Ingestor) -> None:
    assert issubclass(ingest.InvalidArgument, ValueError)
    assert ingest.InvalidArgument.__module__ == "ingest" and ingest.InvalidArgument.__doc__
    # Code that guards a call with `except ValueError` catches bad input:
    # from the core (JSON that does not parse, a bad query) and from the
    # binding's own conversion of a query argument (a value JSON cannot
    # hold; in an event, the same value is a rejection instead).
    for bad in (
        lambda: ing.submit("{not json"),
        lambda: ing.aggregate(group_by="week"),  # type: ignore[arg-type]
        lambda: ing.aggregate(start=float("nan")),
    ):
        with pytest.raises(ValueError) as info:
            bad()
        assert isinstance(info.value, ingest.InvalidArgument)
        assert info.value.kind == "invalid_argument"
    assert ing.submit(sales(float("nan"))).status == "rejected"


def test_rules_error_names_the_key() -> None:
    with pytest.raises(ingest.RulesError, match="colour") as info:
        ingest.Ingestor(rules={"colour": "blue"})
    assert info.value.kind == "invalid_rules"
    with pytest.raises(ingest.RulesError, match="metric_case"):
        ingest.Ingestor(rules='{"metric_case": "upper"}')
    with pytest.raises(ingest.RulesError):
        ingest.Ingestor(rules="not json")


def test_injected_failure_keeps_nothing(ing: ingest.Ingestor) -> None:
    ing.simulate_failure("after_insert")
    with pytest.raises(ingest.InjectedFailure) as info:
        ing.submit(sales())
    assert info.value.kind == "injected"
    assert not isinstance(info.value, ingest.StorageError)
    assert ing.stats()["stored_events"] == 0


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    c.execute("ROLLBACK")
    """
)


class WriteLock:
    """Another process holding the database's write lock. It must be another
    process: POSIX file locks do not conflict within one process, and
    Python's sqlite3 is a different copy of SQLite that cannot coordinate
    with the one built into ingest."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "locked\n"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def test_busy_when_another_connection_holds_the_write_lock(db_path: Path) -> None:
    with ingest.Ingestor(db_path, busy_timeout=0.3) as ing:
        lock = WriteLock(db_path)
        try:
            started = time.monotonic()
            with pytest.raises(ingest.BusyError) as info:
                ing.submit(sales())
            assert time.monotonic() - started >= 0.25  # it waited, boundedly
            assert info.value.kind == "busy"
            assert "busy timeout" in str(info.value)
        finally:
            lock.release()
        # Nothing was kept, and the same call now succeeds.
        assert ing.stats()["stored_events"] == 0
        assert ing.submit(sales()).status == "accepted"


def test_the_gil_is_released_while_waiting_for_a_lock(db_path: Path) -> None:
    with ingest.Ingestor(db_path, busy_timeout=10.0) as ing:
        lock = WriteLock(db_path)
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                ing.submit(sales())
            except ingest.IngestError as e:
                errors.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        try:
            time.sleep(0.1)
            # Python code runs on this thread while the other waits inside SQLite.
            ticks = 0
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                ticks += 1
            assert t.is_alive()
            assert ticks > 10_000
        finally:
            lock.release()
            t.join()
        # Released before the timeout: the blocked call then went through.
        assert errors == [] and ing.stats()["stored_events"] == 1


def test_read_only_database(db_path: Path) -> None:
    with ingest.Ingestor(db_path) as ing:
        ing.submit(sales())
    # What SQLite does when it cannot open the file for writing: it opens it
    # read-only. A URI asks for exactly that, whoever runs the test.
    with pytest.raises(ingest.ReadOnlyError) as info:
        ingest.Ingestor(f"file:{db_path}?mode=ro")
    assert info.value.kind == "read_only"
    if os.geteuid() != 0:  # root may write whatever the mode bits say
        for p in db_path.parent.iterdir():
            p.chmod(0o444)
        try:
            with pytest.raises(ingest.StorageError):
                ingest.Ingestor(db_path).submit(sales(2))
        finally:
            for p in db_path.parent.iterdir():
                p.chmod(0o644)


def test_corrupt_file(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some words " * 200)
    with pytest.raises(ingest.CorruptError) as info:
        ingest.Ingestor(db_path)
    assert info.value.kind == "corrupt"


def test_damaged_database(db_path: Path) -> None:
    with ingest.Ingestor(db_path) as ing:
        ing.submit_batch([sales(i, pad="x" * 2000) for i in range(50)])
    data = bytearray(db_path.read_bytes())
    # Keep the header (so it is still "a database"); wreck every page after it.
    data[4096:] = b"\xff" * (len(data) - 4096)
    db_path.write_bytes(bytes(data))
    with pytest.raises(ingest.CorruptError):
        with ingest.Ingestor(db_path) as ing:
            ing.aggregate(group_by="day")
            ing.events(limit=1000)


def test_io_error_when_the_file_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ingest.IoError) as info:
        ingest.Ingestor(tmp_path / "no" / "such" / "dir" / "x.db")
    assert info.value.kind == "io"
    with pytest.raises(ingest.IoError):
        ingest.Ingestor(tmp_path)  # a directory


def test_other_storage_errors_are_storage_error(db_path: Path) -> None:
    with ingest.Ingestor(db_path):
        pass
    with sqlite3.connect(db_path) as c:
        c.execute("PRAGMA user_version = 9999")
    with pytest.raises(ingest.StorageError, match="schema version 9999") as info:
        ingest.Ingestor(db_path)
    assert type(info.value) is ingest.StorageError and info.value.kind == "storage"


FULL_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import ingest
    ing = ingest.Ingestor(os.path.join(sys.argv[1], "full.db"))
    n = 0
    try:
        while n < 10_000:
            ing.submit({"client_id": "c", "amount": n, "ts": 1, "pad": "x" * 20_000})
            n += 1
        result = {"error": None}
    except ingest.StorageError as e:
        result = {"error": type(e).__name__, "kind": e.kind, "accepted": n,
                  "stored": ing.stats()["stored_events"]}
    print(json.dumps(result))
    """
)


def test_full_disk(tmp_path: Path) -> None:
    """A real full disk: a 512 KiB tmpfs, mounted in a private user and mount
    namespace so no privilege is needed (``unshare`` from util-linux)."""
    unshare = shutil.which("unshare")
    assert unshare, "the full-disk test needs util-linux's unshare"
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(FULL_SCRIPT)
    cmd = f'mount -t tmpfs -o size=512k tmpfs "{mnt}" && exec "{sys.executable}" "{script}" "{mnt}"'
    run = subprocess.run([unshare, "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    import json

    result = json.loads(run.stdout)
    assert result["error"] == "FullError" and result["kind"] == "full", result
    # Every event before the failure is stored; the failed one left nothing.
    assert result["stored"] == result["accepted"] > 0
