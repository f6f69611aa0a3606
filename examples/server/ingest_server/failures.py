"""The failure-simulation switch as the server shows it.

The Python API can arm and clear a failure but cannot say what is armed, so
the server keeps its own record: what it armed, and how many strikes are left
(each InjectedFailure it sees uses one). The server is the only writer of its
Ingestor's switch, so the record stays true.
"""

from __future__ import annotations

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
    def __init__(self, ing: ingest.Ingestor) -> None:
        self._ing = ing
        # Re-entrant: toggle reads the state and arms or clears in one step.
        self._lock = threading.RLock()
        self._point: str | None = None
        self._remaining = 0

    def arm(self, point: str, times: int) -> dict[str, Any]:
        with self._lock:
            if times == 0:
                self._ing.clear_failure()
                self._point, self._remaining = None, 0
            else:
                self._ing.simulate_failure(point, times)
                self._point, self._remaining = point, times
            return self._state()

    def clear(self) -> dict[str, Any]:
        return self.arm(DEFAULT_POINT, 0)

    def toggle(self) -> dict[str, Any]:
        with self._lock:
            return self.clear() if self._point is not None else self.arm(DEFAULT_POINT, 1)

    def struck(self, only: str | None = None) -> str | None:
        """Record one injected failure (at `only`, when given, and no other
        point); return the point that struck."""
        with self._lock:
            point = self._point
            if only is not None and point != only:
                return None
            if self._remaining > 0:
                self._remaining -= 1
                if self._remaining == 0:
                    self._point = None
            return point

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state()

    def _state(self) -> dict[str, Any]:
        if self._point is None:
            return {"enabled": False, "point": None, "remaining": 0, "description": "off"}
        return {
            "enabled": True,
            "point": self._point,
            "remaining": self._remaining,
            "description": DESCRIPTIONS[self._point],
        }
