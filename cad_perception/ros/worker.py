"""The single background worker: builds a resource in its own thread, then processes the newest
submitted item with it.

Processing never blocks the caller: `submit` only stores the item, replacing (and counting) one
that the worker has not taken yet. The resource (the Pipeline) is built and used in the worker's
thread only, as its SQLite connection requires.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Resource = TypeVar("Resource")


class LatestWorker(Generic[Resource]):
    """One thread: `setup()` once, then `process(resource, item)` for the newest item submitted,
    `teardown(resource)` when stopped. An exception of process goes to `on_error` (the worker
    continues)."""

    def __init__(
        self,
        setup: Callable[[], Resource],
        process: Callable[[Resource, Any], None],
        *,
        on_error: Callable[[Exception], None],
        teardown: Callable[[Resource], None] = lambda resource: None,
        name: str = "worker",
    ):
        self._setup = setup
        self._process = process
        self._on_error = on_error
        self._teardown = teardown
        self._wake = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._stopping = False
        self._ready: Future[Resource] = Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0
        """Items replaced by a newer one before the worker took them."""

    def start(self, timeout: float | None = None) -> Resource:
        """Start the thread and wait for setup; returns the resource or raises setup's error."""
        self._thread.start()
        return self._ready.result(timeout)

    def submit(self, item: Any) -> None:
        """Hand the worker `item`, dropping the one still waiting (if any)."""
        with self._wake:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._wake.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the item in progress, drop a waiting one, tear down and join the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("worker %s did not stop within %.0f s", self._thread.name, timeout)

    def _run(self) -> None:
        try:
            resource = self._setup()
        except BaseException as err:  # handed to start()'s caller
            self._ready.set_exception(err)
            return
        self._ready.set_result(resource)
        try:
            while (item := self._next()) is not None:
                try:
                    self._process(resource, item[0])
                except Exception as err:  # the worker outlives any bad frame
                    self._on_error(err)
        finally:
            self._teardown(resource)

    def _next(self) -> tuple[Any] | None:
        """(the newest item,) or None when stopping."""
        with self._wake:
            while not self._has_item and not self._stopping:
                self._wake.wait()
            if self._stopping:
                return None
            item, self._item, self._has_item = self._item, None, False
            return (item,)
