"""An order-preserving map over worker processes, to render frames on every core.

Why processes: open3d's `RaycastingScene.cast_rays` runs single-threaded here and holds the
GIL, so threads render no faster than one; frames are independent, so N processes render about
N times as many.

`ordered_map(task, items, setup=..., workers=N)` calls `setup()` once in each worker (to open
a database, build a scene) and then `task(state, item)` there for each item, yielding the
results in the order of `items`. At most `IN_FLIGHT_PER_WORKER * workers` items are submitted
and not yet consumed, so a slow consumer (a PNG writer) never makes the pool buffer the whole
stream. Closing the generator early (or an exception in the consumer) cancels the queued items
and shuts the workers down before `close()` returns; an exception in a worker is raised in the
parent, its message prefixed with the item's position ("frame 17: ...").

Start method: "forkserver". Measured with a pool of 2 workers on the 2-core development machine
(shared with a training job), time until the first results came back:

- fork: 0.05 s, but not safe here: the parent is multi-threaded (numpy, open3d and torch thread
  pools, tqdm's monitor) and a forked worker inherits their locks without their threads.
  Reproduced: after the parent had run one torch matrix product (OpenMP pool started), a
  forked worker hung for good in its own first product;
- spawn: 10 s for every pool: each worker imports the parent's main module, torch and open3d
  anew;
- forkserver with the worker modules preloaded: the server imports them once per parent
  process (6 s here for a script importing the synth modules, 10 s under `cad-perception`,
  whose main module imports all of cad_perception: as long as the command's own start), after
  which every pool starts in 0.1 to 0.3 s. Workers fork from the server, which is
  single-threaded and has imported those libraries but never run them.

The one-off import is a small share of a dataset of thousands of frames; the benchmark reports
it separately. Each worker limits torch to one thread: N processes already use the N cores.
"""

import itertools
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

START_METHOD = "forkserver"
"""multiprocessing start method of the workers (module docstring)."""
IN_FLIGHT_PER_WORKER = 2
"""Items submitted and not yet consumed, per worker: one being computed, one queued behind it."""

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class WorkerError(RuntimeError):
    """An exception of a worker that cannot be rebuilt as its own type with a new message."""


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask, e.g. under taskset or a
    container's cpuset), os.cpu_count() where the platform has no affinity."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    """`workers` if it is an integer >= 1, else ValueError."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def ordered_map(
    task: Callable[[S, T], R],
    items: Iterable[T],
    *,
    setup: Callable[[], S],
    workers: int,
    label: str = "item",
    preload: Sequence[str] = (),
) -> Iterator[R]:
    """task(state, item) for each of `items`, computed in `workers` processes, in item order.

    setup() runs once in each worker and its return value is that worker's `state`; task and
    setup must be picklable (module-level functions, or functools.partial of them). An
    exception of setup or task is raised when its item's result is reached, as the same type
    (WorkerError when that type cannot take a message) with the message prefixed with
    "{label} {position}:" and chained to the original, whose cause holds the worker's
    traceback. `preload` names modules the fork server imports once (for all later pools of
    this process) instead of each worker. ValueError when workers < 1.
    """
    check_workers(workers)
    return _ordered_map(task, items, setup, workers, label, tuple(preload))


def _ordered_map(
    task: Callable[[S, T], R],
    items: Iterable[T],
    setup: Callable[[], S],
    workers: int,
    label: str,
    preload: tuple[str, ...],
) -> Iterator[R]:
    """The generator behind `ordered_map` (arguments already checked)."""
    executor = ProcessPoolExecutor(
        workers,
        mp_context=_context(preload),
        initializer=_init_worker,
        initargs=(setup, os.getpid()),
    )
    numbered = enumerate(items)
    pending: deque[tuple[int, Future]] = deque()
    try:
        for position, item in itertools.islice(numbered, IN_FLIGHT_PER_WORKER * workers):
            pending.append((position, executor.submit(_call, task, item)))
        while pending:
            position, future = pending.popleft()
            result = _result(future, f"{label} {position}")
            for later, item in itertools.islice(numbered, 1):  # refill before yielding
                pending.append((later, executor.submit(_call, task, item)))
            yield result
    finally:
        logger.debug("shutting down %d worker processes", workers)
        executor.shutdown(wait=True, cancel_futures=True)


def _context(preload: tuple[str, ...]) -> multiprocessing.context.BaseContext:
    """The START_METHOD context; a fork server not yet running will import `preload` and the
    modules of the main script (`main_script_imports`) first."""
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        context.set_forkserver_preload(["__main__", *preload, *main_script_imports()])
    return context


def main_script_imports() -> list[str]:
    """The modules whose names or objects the parent's main script holds, sorted.

    Every worker runs the parent's main script again (as __mp_main__) before its first task.
    CPython 3.11's fork server never does that itself although "__main__" is in its preload
    list (it looks up the script's path under a key the parent never sends), so each worker
    would import all of the script's imports anew: for `cad-perception`, whose script imports
    the whole CLI, 2-3 s per worker. With these modules preloaded by the server, the workers'
    re-run finds them imported already. (The server imports them with its own sys.path, that
    of `python -c` in the parent's working folder: installed packages, not a script's own
    additions to sys.path, which the workers then import again.)
    """
    main = sys.modules.get("__main__")
    if main is None:
        return []
    names = set()
    for value in list(vars(main).values()):
        module = isinstance(value, types.ModuleType)
        name = value.__name__ if module else getattr(value, "__module__", None)
        if isinstance(name, str) and name in sys.modules and name not in ("__main__", "builtins"):
            names.add(name)
    return sorted(names)


def _result(future: Future, where: str) -> Any:
    """The future's result, or its exception raised again with `where` in the message."""
    try:
        return future.result()
    except Exception as err:
        raise _located(err, where) from err


def _located(err: Exception, where: str) -> Exception:
    """A new exception of err's type whose message is "{where}: {err}" (WorkerError naming
    the type when the type cannot be built from that message alone)."""
    message = f"{where}: {err}"
    try:
        located = type(err)(message)
    except Exception:
        located = None
    if located is None or str(located) != message:
        return WorkerError(f"{where}: {type(err).__name__}: {err}")
    return located


# In the worker processes.

_worker_state: Any = None
_setup_error: Exception | None = None


def _init_worker(setup: Callable[[], Any], owner: int) -> None:
    """Worker start: leave Ctrl-C to the parent (it shuts the pool down), exit with the
    process `owner` that made the pool, one torch thread, then `setup()`; its exception is kept
    to be raised by the first task (so it reaches the parent with an item position instead of
    breaking the pool)."""
    global _worker_state, _setup_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(owner,), name="owner-watch", daemon=True).start()
    _limit_threads()
    try:
        _worker_state = setup()
    except Exception as err:
        _setup_error = err


def _exit_with(owner: int) -> None:
    """Wait until process `owner` has ended, then end this worker. Without this, a pool's
    workers would wait for work forever when the parent is killed (SIGTERM, SIGKILL, the OOM
    killer) before it could shut them down: they hold their task queue's write end themselves."""
    try:
        handle = os.pidfd_open(owner)
    except (AttributeError, OSError):  # no pidfd (not Linux, kernel < 5.3) or already gone
        while _alive(owner):
            time.sleep(1.0)
    else:
        select.select([handle], [], [])  # readable once the process has ended
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _limit_threads() -> None:
    """One intra-op thread for torch in a worker, if torch is loaded (workers share the cores)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _call(task: Callable[[Any, Any], Any], item: Any) -> Any:
    """task(state, item) with this worker's state (or its setup's exception)."""
    if _setup_error is not None:
        raise _setup_error
    return task(_worker_state, item)
