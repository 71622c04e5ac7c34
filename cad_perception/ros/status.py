"""The node's health: frame rate, latencies, drops and input problems, with throttled warnings.

Thread-safe (the executor thread reports input problems, the worker thread finished frames).
Memory is bounded: the statistics cover the last WINDOW frames.
"""

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cad_perception.ros.errors import Problem

WINDOW = 100
"""Frames the rate and latency statistics cover."""
WARN_PERIOD_S = 5.0
"""Seconds between two warnings of the same problem."""
PROBLEM_HOLD_S = 5.0
"""Seconds a problem keeps the status at WARN after it last occurred."""


@dataclass(frozen=True)
class StatusSnapshot:
    """The health at one moment (what /diagnostics publishes)."""

    level: str
    """"ok", "warn" (a problem in the last PROBLEM_HOLD_S) or "stale" (no frame processed)."""
    message: str
    processed: int
    dropped: int
    """Synchronised frames replaced by a newer one before the worker took them."""
    unpaired: int
    """Images dropped without a matching camera_info."""
    rate_hz: float
    latency_ms: float
    """Median stamp-to-publish latency over the window (NaN before the first frame)."""
    pipeline_ms: float
    """Median Pipeline time."""
    overhead_ms: float
    """Median node time beyond the Pipeline (conversion and publishing)."""
    last_error: str
    problems: dict[str, int] = field(default_factory=dict)
    """Occurrences of each Problem (by its value)."""


class NodeStatus:
    """Collects the node's health; `clock` returns seconds (monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._done: deque[tuple[float, float, float, float]] = deque(maxlen=WINDOW)
        self._problems: Counter[str] = Counter()
        self._last_warned: dict[Problem, float] = {}
        self._last_problem_time = -float("inf")
        self.processed = 0
        self.last_error = ""

    def frame_done(self, *, latency_ms: float, pipeline_ms: float, overhead_ms: float) -> None:
        """Record one published frame."""
        with self._lock:
            self.processed += 1
            self._done.append((self._clock(), latency_ms, pipeline_ms, overhead_ms))

    def problem(self, problem: Problem, message: str) -> bool:
        """Record an input problem; True when it should be logged now (the first time and then
        at most once per WARN_PERIOD_S per kind of problem)."""
        with self._lock:
            now = self._clock()
            self._problems[problem.value] += 1
            self.last_error = f"{problem.value}: {message}"
            self._last_problem_time = now
            if now - self._last_warned.get(problem, -float("inf")) < WARN_PERIOD_S:
                return False
            self._last_warned[problem] = now
            return True

    def snapshot(self, *, dropped: int, unpaired: int) -> StatusSnapshot:
        """The health now; `dropped` and `unpaired` come from the worker and synchroniser."""
        with self._lock:
            now = self._clock()
            done = np.array(self._done, dtype=np.float64).reshape(-1, 4)
            recent_problem = now - self._last_problem_time < PROBLEM_HOLD_S
            rate = 0.0
            if len(done) >= 2 and done[-1, 0] > done[0, 0]:
                rate = float((len(done) - 1) / (done[-1, 0] - done[0, 0]))
            medians = np.median(done[:, 1:], axis=0) if len(done) else np.full(3, np.nan)
            if recent_problem:
                level, message = "warn", self.last_error
            elif self.processed == 0:
                level, message = "stale", "waiting for synchronised image and camera_info"
            else:
                level, message = "ok", f"{rate:.1f} Hz"
            return StatusSnapshot(
                level=level,
                message=message,
                processed=self.processed,
                dropped=dropped,
                unpaired=unpaired,
                rate_hz=rate,
                latency_ms=float(medians[0]),
                pipeline_ms=float(medians[1]),
                overhead_ms=float(medians[2]),
                last_error=self.last_error,
                problems=dict(self._problems),
            )
