"""Node health: throttled warnings, levels, statistics over a bounded window."""

import math

from cad_perception.ros.errors import Problem
from cad_perception.ros.status import PROBLEM_HOLD_S, WARN_PERIOD_S, WINDOW, NodeStatus


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_warnings_are_throttled_per_problem():
    clock = FakeClock()
    status = NodeStatus(clock)
    assert status.problem(Problem.EMPTY_IMAGE, "a")
    assert not status.problem(Problem.EMPTY_IMAGE, "b")
    assert status.problem(Problem.SIZE_MISMATCH, "c")  # another problem is not throttled
    clock.now += WARN_PERIOD_S
    assert status.problem(Problem.EMPTY_IMAGE, "d")
    snapshot = status.snapshot(dropped=0, unpaired=0)
    assert snapshot.problems == {Problem.EMPTY_IMAGE.value: 3, Problem.SIZE_MISMATCH.value: 1}
    assert snapshot.last_error == "empty image: d"
    assert (snapshot.level, snapshot.message) == ("warn", "empty image: d")


def test_levels_go_from_stale_to_ok_and_back_after_a_problem():
    clock = FakeClock()
    status = NodeStatus(clock)
    assert status.snapshot(dropped=0, unpaired=0).level == "stale"
    for _ in range(11):
        status.frame_done(latency_ms=50.0, pipeline_ms=40.0, overhead_ms=2.0)
        clock.now += 0.1
    snapshot = status.snapshot(dropped=3, unpaired=1)
    assert snapshot.level == "ok" and snapshot.message == "10.0 Hz"
    assert math.isclose(snapshot.rate_hz, 10.0)
    assert (snapshot.latency_ms, snapshot.pipeline_ms, snapshot.overhead_ms) == (50, 40, 2)
    assert (snapshot.processed, snapshot.dropped, snapshot.unpaired) == (11, 3, 1)
    status.problem(Problem.NO_CAMERA_INFO, "silent")
    assert status.snapshot(dropped=3, unpaired=1).level == "warn"
    clock.now += PROBLEM_HOLD_S
    assert status.snapshot(dropped=3, unpaired=1).level == "ok"


def test_statistics_cover_only_the_last_window_of_frames():
    clock = FakeClock()
    status = NodeStatus(clock)
    for index in range(3 * WINDOW):
        status.frame_done(
            latency_ms=1000.0 if index < 2 * WINDOW else 10.0, pipeline_ms=1, overhead_ms=1
        )
        clock.now += 0.05
    snapshot = status.snapshot(dropped=0, unpaired=0)
    assert snapshot.processed == 3 * WINDOW and snapshot.latency_ms == 10.0
    assert math.isnan(NodeStatus(clock).snapshot(dropped=0, unpaired=0).latency_ms)
