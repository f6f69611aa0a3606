"""close(), the context manager, and use across fork."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

import ingest

from .conftest import sales
from .test_errors import WriteLock

METHODS = [
    lambda i: i.submit(sales()),
    lambda i: i.submit_batch([sales()]),
    lambda i: i.check(sales()),
    lambda i: i.aggregate(),
    lambda i: i.events(),
    lambda i: i.rejected(),
    lambda i: i.reprocess_rejected(),
    lambda i: i.prune(before="2000-01-01"),
    lambda i: i.stats(),
    lambda i: i.simulate_failure(),
    lambda i: i.clear_failure(),
    lambda i: i.rules,
    lambda i: i.rules_version,
    lambda i: i.durability,
]


def test_close_is_idempotent_and_later_use_raises(db_path: Path) -> None:
    ing = ingest.Ingestor(db_path)
    ing.submit(sales())
    assert not ing.closed
    assert "closed" not in repr(ing)
    ing.close()
    ing.close()
    assert ing.closed
    assert repr(ing).endswith("closed>")
    assert ing.path == str(db_path)
    for call in METHODS:
        with pytest.raises(ingest.IngestError, match="closed") as info:
            call(ing)
        assert info.value.kind == "closed"
    with pytest.raises(ingest.IngestError, match="closed"):
        with ing:
            pass


def test_context_manager_closes_even_on_error(db_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with ingest.Ingestor(db_path) as ing:
            ing.submit(sales())
            raise RuntimeError("boom")
    assert ing.closed
    with ingest.Ingestor(db_path) as again:
        assert again.stats()["stored_events"] == 1
    assert again.closed


def test_close_does_not_cut_a_running_call(db_path: Path) -> None:
    ing = ingest.Ingestor(db_path, busy_timeout=10.0)
    lock = WriteLock(db_path)
    results: list[str] = []
    t = threading.Thread(target=lambda: results.append(ing.submit(sales()).status))
    t.start()
    try:
        time.sleep(0.1)
        ing.close()  # returns at once; the running call keeps the store open
        assert ing.closed and t.is_alive()
    finally:
        lock.release()
        t.join()
    assert results == ["accepted"]
    with ingest.Ingestor(db_path) as again:
        assert again.stats()["stored_events"] == 1


def test_dropping_without_close_releases_the_file(db_path: Path) -> None:
    ing = ingest.Ingestor(db_path)
    ing.submit(sales())
    del ing
    gc.collect()
    # The last connection closed: SQLite checkpointed and removed the WAL.
    assert not Path(f"{db_path}-wal").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")  # never skipped on Linux
def test_use_in_a_forked_child_raises_and_the_parent_is_unharmed(db_path: Path) -> None:
    ing = ingest.Ingestor(db_path)
    ing.submit(sales())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what happened through the pipe, never return into pytest
        code = 1
        try:
            os.close(r)
            try:
                ing.submit(sales(2))
                message = "no error"
            except ingest.IngestError as e:
                message = f"{e.kind}: {e}"
            os.write(w, message.encode())
            ing.close()  # neither may close the parent's connection
            del ing
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        message = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert message.startswith("forked: ") and "open a new Ingestor after forking" in message
    assert str(os.getpid()) in message
    # The parent's store still works and holds exactly what it wrote.
    assert ing.submit(sales(3)).status == "accepted"
    assert ing.stats()["stored_events"] == 2
    ing.close()
    with ingest.Ingestor(db_path) as again:
        assert [e["amount"] for e in again.events()] == [3.0, 1200.0]
