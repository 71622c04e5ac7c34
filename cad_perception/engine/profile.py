"""Where an ONNX graph spends its time on ONNX Runtime: operator types, slowest nodes and the
rate the convolutions reach, from onnxruntime's own profiler.

`profile_onnx(path, feeds)` runs the graph once per feed after a warm-up, with profiling on,
and summarises the trace (`summarise_trace`). Kernel times are onnxruntime's per-node
"kernel_time" events, so their sum leaves out the session's own work between nodes, which
`run_ms` (onnxruntime's time for a whole run) includes. A control-flow node (If, Loop) is
timed with the subgraph it runs, whose nodes have events of their own, so that time counts
twice in the sums and shares (the exported detector's batched NMS sits in If nodes: a few
milliseconds). Convolution FLOPs (Conv and onnxruntime's
fused FusedConv, 2-D and 3-D) come from each event's recorded shapes:
2 x N x prod(output spatial) x prod(weight shape), so a convolution's achieved GFLOP/s can be
set against the machine's GEMM peak: near the peak there is little left to gain in that layer.
"""

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cad_perception.engine.errors import EngineError
from cad_perception.engine.onnx_backend import open_session, session_options

logger = logging.getLogger(__name__)

CONVOLUTIONS = ("Conv", "FusedConv")
"""Operator types whose FLOPs are counted (onnxruntime fuses Conv + activation into FusedConv)."""

KERNEL_SUFFIX = "_kernel_time"
"""Suffix of onnxruntime's per-node kernel events."""

RUN_EVENT = "model_run"
"""Name of onnxruntime's event spanning one InferenceSession.run."""


def convolution_flops(args: dict[str, Any]) -> float:
    """FLOPs of one convolution event from its recorded shapes (module docstring); 0 when the
    shapes are missing. args: the event's "args" (input_type_shape, output_type_shape)."""
    try:
        weight = next(iter(args["input_type_shape"][1].values()))
        output = next(iter(args["output_type_shape"][0].values()))
    except (KeyError, IndexError, StopIteration):
        return 0.0
    if len(output) < 3 or len(weight) != len(output):
        return 0.0
    batch, spatial = output[0], float(np.prod(output[2:]))
    return 2.0 * batch * spatial * float(np.prod(weight))


def summarise_trace(
    events: Sequence[dict[str, Any]], *, skip_runs: int = 0, top: int = 10
) -> dict[str, Any]:
    """A profiler trace (onnxruntime's JSON event list) -> per-run figures over its runs after
    the first `skip_runs` (warm-up): {"runs", "run_ms" (median of onnxruntime's own run
    times), "kernel_ms", "nodes", "op_types": {op: {"ms", "nodes", "share"}} slowest first,
    "slowest_nodes": [{"name", "op", "ms"}] (the `top` slowest), "convolution": {"ms",
    "gflop", "gflops"}}. A node event belongs to the run whose time span holds its start."""
    windows = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in events
        if event.get("cat") == "Session" and event.get("name") == RUN_EVENT
    )[skip_runs:]
    if not windows:
        raise EngineError(f"the trace holds no {RUN_EVENT!r} event after the {skip_runs} skipped")
    first, last = windows[0][0], windows[-1][1]
    runs = len(windows)
    op_ms: Counter[str] = Counter()
    op_nodes: Counter[str] = Counter()
    node_ms: Counter[tuple[str, str]] = Counter()
    conv_ms = conv_flops = 0.0
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        if not first <= event["ts"] <= last:
            continue
        op = event["args"]["op_name"]
        ms = event["dur"] / 1000.0
        op_ms[op] += ms
        op_nodes[op] += 1
        node_ms[(name.removesuffix(KERNEL_SUFFIX), op)] += ms
        if op in CONVOLUTIONS:
            conv_ms += ms
            conv_flops += convolution_flops(event["args"])
    total = sum(op_ms.values())
    return {
        "runs": runs,
        "run_ms": round(float(np.median([(end - begin) / 1000.0 for begin, end in windows])), 3),
        "kernel_ms": round(total / runs, 3),
        "nodes": round(sum(op_nodes.values()) / runs, 1),
        "op_types": {
            op: {
                "ms": round(ms / runs, 3),
                "nodes": round(op_nodes[op] / runs, 1),
                "share": round(ms / total, 4),
            }
            for op, ms in op_ms.most_common()
        },
        "slowest_nodes": [
            {"name": name, "op": op, "ms": round(ms / runs, 3)}
            for (name, op), ms in node_ms.most_common(top)
        ],
        "convolution": {
            "ms": round(conv_ms / runs, 3),
            "gflop": round(conv_flops / runs / 1e9, 4),
            "gflops": round(conv_flops / (conv_ms / 1000.0) / 1e9, 1) if conv_ms > 0 else None,
        },
    }


def profile_onnx(
    path: str | Path,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    warmup: int = 2,
    threads: int | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> dict[str, Any]:
    """Profile the graph at `path`: `warmup` runs cycling through `feeds`, then one run per
    feed, in one session with the ONNX Runtime backend's options; the summary of the runs
    after the warm-up (summarise_trace)."""
    if not feeds:
        raise EngineError("profiling needs at least one input feed")
    if warmup < 0:
        raise EngineError(f"warmup must be >= 0, got {warmup}")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="cad-perception-profile-") as folder:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "trace")
        session = open_session(path, options, list(providers))
        for index in range(warmup):
            session.run(None, feeds[index % len(feeds)])
        for feed in feeds:
            session.run(None, feed)
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text(encoding="utf-8"))
    summary = summarise_trace(events, skip_runs=warmup)
    logger.info(
        "profiled %s: %.1f ms of kernels per run over %d runs",
        path,
        summary["kernel_ms"],
        summary["runs"],
    )
    return summary
