"""The newest-item background worker."""

import threading

import pytest

from cad_perception.ros.worker import LatestWorker


class Recorder:
    """process() that records items and the thread, blocking on the first item until released."""

    def __init__(self):
        self.items, self.threads, self.errors = [], set(), []
        self.started, self.release = threading.Event(), threading.Event()
        self.done = threading.Semaphore(0)

    def process(self, resource, item):
        self.threads.add(threading.get_ident())
        self.started.set()
        self.release.wait(10)
        if item == "bad":
            raise RuntimeError("bad item")
        self.items.append((resource, item))
        self.done.release()


def test_only_the_newest_waiting_item_is_processed_and_drops_are_counted():
    recorder = Recorder()
    setup_thread = []
    worker = LatestWorker(
        lambda: setup_thread.append(threading.get_ident()) or "pipeline",
        recorder.process,
        on_error=recorder.errors.append,
    )
    assert worker.start(timeout=10) == "pipeline"
    worker.submit(1)
    assert recorder.started.wait(10)
    for item in (2, 3, 4):  # 1 is in progress: 2 and 3 are replaced before the worker is free
        worker.submit(item)
    recorder.release.set()
    assert recorder.done.acquire(timeout=10) and recorder.done.acquire(timeout=10)
    worker.stop()
    assert recorder.items == [("pipeline", 1), ("pipeline", 4)]
    assert worker.dropped == 2
    # The resource is built and used in the same (worker) thread, as SQLite requires.
    assert recorder.threads == set(setup_thread) != {threading.get_ident()}


def test_a_failing_item_goes_to_on_error_and_the_worker_continues():
    recorder = Recorder()
    recorder.release.set()
    torn_down = []
    worker = LatestWorker(
        lambda: "r", recorder.process, on_error=recorder.errors.append, teardown=torn_down.append
    )
    worker.start(timeout=10)
    worker.submit("bad")
    worker.submit("good")  # may replace "bad" before it is taken; either way "good" runs
    assert recorder.done.acquire(timeout=10)
    worker.stop()
    assert recorder.items == [("r", "good")]
    assert all(str(err) == "bad item" for err in recorder.errors)
    assert torn_down == ["r"]


def test_setup_errors_reach_the_caller_of_start():
    def setup():
        raise FileNotFoundError("no model")

    worker = LatestWorker(setup, lambda resource, item: None, on_error=lambda err: None)
    with pytest.raises(FileNotFoundError, match="no model"):
        worker.start(timeout=10)
    worker.stop()
