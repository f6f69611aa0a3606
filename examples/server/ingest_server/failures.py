"""The failure-simulation switch as the server shows it: what is armed is
read from the Ingestor itself, so it stays true whoever else arms or uses it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import ingest

POINTS = ("before_insert", "after_insert", "after_commit", "aggregate")
DEFAULT_POINT = "after_insert"
MAX_TIMES = 1000

DESCRIPTIONS = {
    "before_insert": "the next write fails before anything is written",
    "after_insert": "the next write fails after the insert, before the commit, and rolls back",
    "after_commit": "the next write commits, then reports an error (the answer is lost)",
    "aggregate": "the next aggregate read fails",
}


class FailureSwitch:
    """One per process: the library's switch lives in its Ingestor, and
    each worker of `make serve` opens its own. Every state says which
    worker it is of, and how many there are."""

    def __init__(self, ing: ingest.Ingestor, workers: int = 1) -> None:
        self._ing = ing
        self._where = {"worker": os.getpid(), "workers": workers}
        # Toggle reads the state and arms or clears: one step for concurrent toggles.
        self._lock = threading.Lock()

    def arm(self, point: str, times: int) -> dict[str, Any]:
        with self._lock:
            self._arm(point, times)
            return self.state()

    def clear(self) -> dict[str, Any]:
        return self.arm(DEFAULT_POINT, 0)

    def toggle(self) -> dict[str, Any]:
        with self._lock:
            self._arm(DEFAULT_POINT, 0 if self._ing.armed_failure() else 1)
            return self.state()

    def _arm(self, point: str, times: int) -> None:
        if times == 0:
            self._ing.clear_failure()
        else:
            self._ing.simulate_failure(point, times)  # type: ignore[arg-type]

    def state(self) -> dict[str, Any]:
        armed = self._ing.armed_failure()
        if armed is None:
            return {
                "enabled": False,
                "point": None,
                "remaining": 0,
                "description": "off",
                **self._where,
            }
        point, remaining = armed
        return {
            "enabled": True,
            "point": point,
            "remaining": remaining,
            "description": DESCRIPTIONS[point],
            **self._where,
        }
