"""The parallel map runs in real worker processes: order, bounded prefetch, errors, shutdown."""

import functools
import json
import multiprocessing
import os
import posixpath
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import pytest

from cad_perception.synth.parallel import (
    IN_FLIGHT_PER_WORKER,
    WorkerError,
    available_cpus,
    main_script_imports,
    ordered_map,
)

# Workers unpickle these by reference, so they live at module level.


def _worker_pid() -> int:
    return os.getpid()


def _tagged(state: int, item: int) -> tuple[int, int, int]:
    """(item squared, the worker's setup result, the pid doing the work)."""
    time.sleep(0.01 * (item % 3))  # unequal durations: results finish out of order
    return item * item, state, os.getpid()


def _started(folder: Path, item: int) -> int:
    (folder / str(item)).touch()
    return item


def _fails_at(bad: int, state: None, item: int) -> int:
    if item == bad:
        raise ValueError(f"bad item {item}")
    return item


class _TwoArgumentError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(code, text)


def _raises_unusual(state: None, item: int) -> int:
    raise _TwoArgumentError(7, "unusual")


def _no_state() -> None:
    return None


def _setup_fails() -> None:
    raise OSError("cannot open the database")


def _pid_of(state: None, item: int) -> int:
    return os.getpid()


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_results_come_in_item_order_from_set_up_worker_processes():
    results = list(ordered_map(_tagged, range(12), setup=_worker_pid, workers=2))
    assert [square for square, _, _ in results] == [i * i for i in range(12)]
    pids = {pid for _, _, pid in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # setup ran in the worker that did the work (its result is that worker's state).
    assert all(state == pid for _, state, pid in results)


def test_a_slow_consumer_never_has_more_than_two_results_per_worker_pending(tmp_path):
    workers, items = 2, 14
    limit = IN_FLIGHT_PER_WORKER * workers
    assert limit == 2 * workers
    setup = functools.partial(Path, tmp_path)
    ahead = []
    for consumed, item in enumerate(
        ordered_map(_started, range(items), setup=setup, workers=workers), start=1
    ):
        assert item == consumed - 1
        deadline = time.monotonic() + 5
        while len(os.listdir(tmp_path)) < min(consumed + limit, items):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(0.1)  # time to run further ahead, if it wrongly could
        started = len(os.listdir(tmp_path))
        assert started - consumed <= limit
        ahead.append(started - consumed)
    assert max(ahead) == limit  # the workers did run ahead of the consumer


def test_a_worker_exception_reaches_the_caller_naming_the_item():
    results = []
    with pytest.raises(ValueError, match=r"^frame 5: bad item 5$") as caught:
        for item in ordered_map(
            functools.partial(_fails_at, 5), range(9), setup=_no_state, workers=2, label="frame"
        ):
            results.append(item)
    assert results == [0, 1, 2, 3, 4]  # every frame before it arrived, in order
    original = caught.value.__cause__
    assert isinstance(original, ValueError) and str(original) == "bad item 5"
    assert "_fails_at" in str(original.__cause__)  # the worker's traceback

    with pytest.raises(WorkerError, match=r"^item 0: _TwoArgumentError: \(7, 'unusual'\)$"):
        list(ordered_map(_raises_unusual, range(2), setup=_no_state, workers=2))


def test_a_setup_exception_reaches_the_caller_with_its_type():
    with pytest.raises(OSError, match=r"^frame 0: cannot open the database$"):
        list(ordered_map(_pid_of, range(4), setup=_setup_fails, workers=2, label="frame"))
    assert not multiprocessing.active_children()


def test_closing_early_shuts_the_workers_down():
    stream = ordered_map(_pid_of, range(1000), setup=_no_state, workers=2)
    pids = {next(stream) for _ in range(6)}
    assert multiprocessing.active_children()
    stream.close()
    assert not multiprocessing.active_children()
    assert pids and all(_gone(pid) for pid in pids)


def test_an_exception_in_the_consumer_shuts_the_workers_down():
    pids = set()
    with pytest.raises(KeyError):
        for consumed, pid in enumerate(
            ordered_map(_pid_of, range(1000), setup=_no_state, workers=2), start=1
        ):
            pids.add(pid)
            if consumed == 5:
                raise KeyError("consumer failed")
    assert not multiprocessing.active_children()
    assert all(_gone(pid) for pid in pids)


_KILLED_PARENT = """
import os, sys, time
from cad_perception.synth.parallel import ordered_map

def setup():
    return os.getpid()

def task(pid, item):
    return pid

if __name__ == "__main__":
    stream = ordered_map(task, range(100), setup=setup, workers=2)
    print(*{next(stream) for _ in range(8)}, flush=True)
    time.sleep(600)
"""


def test_workers_end_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
    finally:
        parent.kill()  # SIGKILL: no chance to shut its pool down
        parent.wait()
    assert pids
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        ordered_map(_pid_of, range(3), setup=_no_state, workers=workers)


def test_available_cpus_is_this_process_affinity():
    assert available_cpus() == len(os.sched_getaffinity(0)) >= 1


_HEAVY_MAIN = """
import os
import imported_by_main  # appends this process's pid to imports.txt when imported
from cad_perception.synth.parallel import ordered_map

def setup():
    return None

def task(state, item):
    return os.getpid()

if __name__ == "__main__":
    for _ in range(2):  # two pools: the second must not import the main script's modules again
        print(*sorted(set(ordered_map(task, range(8), setup=setup, workers=2))), flush=True)
"""


def test_workers_do_not_import_the_main_scripts_modules_again(tmp_path):
    """Each worker re-runs the parent's main script; its imports come preloaded by the fork
    server (for `cad-perception`, the whole CLI), so they are imported once, not per worker."""
    (tmp_path / "imported_by_main.py").write_text(
        "import os\nwith open(os.path.join(os.path.dirname(__file__), 'imports.txt'), 'a') as f:"
        "\n    f.write(f'{os.getpid()}\\n')\n"
    )
    script = tmp_path / "parent.py"
    script.write_text(_HEAVY_MAIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # importable, as installed packages are
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    workers = {int(pid) for line in result.stdout.split("\n") if line for pid in line.split()}
    importers = [int(pid) for pid in (tmp_path / "imports.txt").read_text().split()]
    assert len(workers) >= 2 and os.getpid() not in workers  # each pool has its own
    assert len(importers) == 2 and not workers & set(importers)  # the parent and the server


def test_main_script_imports_names_the_modules_it_holds(monkeypatch):
    script = types.ModuleType("__main__")
    script.json = json
    script.join = posixpath.join
    script.answer = 42
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert main_script_imports() == ["json", "posixpath"]
