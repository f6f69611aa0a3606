"""Repeated open/close and submit loops keep memory flat: resident set size
from /proc/self/status, compared after a warm-up (memory, not timing)."""

from __future__ import annotations

import gc
from pathlib import Path

import ingest

from .conftest import sales

MIB = 1024 * 1024


def rss() -> int:
    gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_close_cycles(path: Path, n: int) -> None:
    for i in range(n):
        with ingest.Ingestor(path) as ing:
            ing.submit(sales(i % 5))
            ing.aggregate(metric="sales")
            ing.events(limit=5)
        mem = ingest.Ingestor()
        mem.submit(sales())
        mem.close()


def test_open_close_keeps_memory_flat(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    open_close_cycles(path, 50)
    before = rss()
    open_close_cycles(path, 500)
    growth = rss() - before
    print(f"open/close x500: RSS {before / MIB:.1f} MiB, growth {growth / MIB:.2f} MiB")
    assert growth < 8 * MIB


def submit_loop(ing: ingest.Ingestor, n: int) -> None:
    for i in range(n):
        out = ing.submit(sales(i % 100, extra={"i": i % 100, "big": 2**70}))
        out.to_dict()
        repr(out)
        ing.submit({"metric": "bad", "n": i % 50})  # a rejection, kept once per distinct input
        ing.check(sales(i % 100))
        if i % 50 == 0:
            ing.submit_batch([sales(j) for j in range(10)])
            ing.aggregate(group_by="day")
            ing.events(limit=20)
            ing.rejected(limit=20)
            ing.stats()
        # A value JSON cannot hold is a rejection kept as a stand-in; text
        # that is not JSON is the error path.
        assert ing.submit(sales(extra=float("nan"))).status == "rejected"
        try:
            ing.submit("{not json")
        except ingest.InvalidArgument:
            pass
        else:
            raise AssertionError("text that is not JSON must raise")


def test_submit_loops_keep_memory_flat(tmp_path: Path) -> None:
    # Every event after the warm-up is a duplicate, so the data stops growing;
    # any growth after that would be a leak in the binding or the core.
    with ingest.Ingestor(tmp_path / "loop.db", durability="normal") as ing:
        submit_loop(ing, 2_000)
        before = rss()
        submit_loop(ing, 10_000)
        growth = rss() - before
        assert ing.stats()["stored_events"] == 100
    print(f"submit x10000: RSS {before / MIB:.1f} MiB, growth {growth / MIB:.2f} MiB")
    assert growth < 8 * MIB


def test_outcomes_are_left_out_of_the_cyclic_collector() -> None:
    # An outcome holds no Python object, so it can be in no cycle. Tracked,
    # a batch's outcomes, alive together, were promoted into the generations
    # whose full passes walk every object the program holds.
    ing = ingest.Ingestor()
    batch = ing.submit_batch([sales(v) for v in range(1000)])
    alone = [ing.submit(sales(5000)), ing.submit(sales(5000)), ing.check(sales(6000))]
    collections = gc.get_stats()[2]["collections"]
    gc.collect()
    assert gc.get_stats()[2]["collections"] == collections + 1
    for out in [*batch, *alone]:
        assert not gc.is_tracked(out)
    assert [o.status for o in batch] == ["accepted"] * 1000
    assert [o.status for o in alone] == ["accepted", "duplicate", "accepted"]
    last = batch[999].event
    assert last is not None and last["amount"] == 999
    # A list of them is still collected as any list is.
    assert gc.is_tracked(batch)
    del batch, alone
    gc.collect()
