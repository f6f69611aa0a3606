"""One Ingestor shared by many threads; several processes on one file."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import ingest

from .conftest import sales

DISTINCT = 60


def event(n: int) -> dict[str, Any]:
    return sales(value=n % DISTINCT, ts=f"2024-01-01T00:{n % DISTINCT:02d}:00Z")


def test_many_threads_share_one_ingestor(db_path: Path) -> None:
    with ingest.Ingestor(db_path) as ing:
        statuses: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def work(worker: int) -> None:
            try:
                barrier.wait()
                mine = []
                for n in range(worker, worker + 150):
                    if n % 3 == 0:
                        mine += [o.status for o in ing.submit_batch([event(n), event(n + 1)])]
                    else:
                        mine.append(ing.submit(event(n)).status)
                    ing.check(event(n))
                    if n % 10 == 0:
                        ing.aggregate(group_by="hour")
                        ing.events(limit=5)
                        ing.stats()
                with lock:
                    statuses.extend(mine)
            except BaseException as e:  # collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert statuses.count("accepted") == DISTINCT
        assert set(statuses) == {"accepted", "duplicate"}
        assert ing.stats()["stored_events"] == DISTINCT
        total = ing.aggregate()
        assert total["count"] == DISTINCT and total["sum"] == sum(range(DISTINCT))


def submit_range(path: str, start: int, count: int) -> list[str]:
    # Runs in a spawned process: opens its own Ingestor on the shared file.
    with ingest.Ingestor(path, busy_timeout=30) as ing:
        statuses: list[str] = []
        for n in range(start, start + count):
            statuses.append(ing.submit(event(n)).status)
            if n % 4 == 0:
                statuses += [o.status for o in ing.submit_batch([event(n + 1), event(n + 2)])]
        return statuses


def test_several_processes_on_one_file(db_path: Path) -> None:
    with ingest.Ingestor(db_path):
        pass  # created before the workers start, as a server would
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(submit_range, [(str(db_path), w * 7, 80) for w in range(4)])
    statuses = [s for r in results for s in r]
    assert statuses.count("accepted") == DISTINCT
    with ingest.Ingestor(db_path) as ing:
        assert ing.stats()["stored_events"] == DISTINCT
        assert len(ing.events(limit=1000)) == DISTINCT
        assert ing.aggregate()["sum"] == sum(range(DISTINCT))


def test_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(submit_range, [(str(path), 0, 20)] * 3)
    # Each distinct event accepted once in all, whichever process won.
    assert sum(r.count("accepted") for r in results) == 20
    with ingest.Ingestor(path) as ing:
        assert ing.stats()["stored_events"] == 20
