"""The ONNX Runtime profile: real sessions on small hand-built graphs, whose convolution FLOPs
are known exactly, and clear refusals."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cad_perception.engine.errors import EngineError
from cad_perception.engine.profile import convolution_flops, profile_onnx, summarise_trace

BATCH, IN_CHANNELS, OUT_CHANNELS, HEIGHT, WIDTH, KERNEL = 2, 8, 16, 12, 10, 3
CONV_FLOPS = 2 * BATCH * HEIGHT * WIDTH * OUT_CHANNELS * IN_CHANNELS * KERNEL * KERNEL
"""2 x N x H x W x Cout x Cin x k x k: a 3 x 3 'same' convolution of the graph below."""


def conv_graph(path: Path) -> Path:
    """x (2, 8, 12, 10) -> Conv 3 x 3 (16 channels, padding 1) -> Relu -> ReduceSum -> y."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(OUT_CHANNELS, IN_CHANNELS, KERNEL, KERNEL)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceSum", ["r"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, [BATCH, IN_CHANNELS, HEIGHT, WIDTH]
            )
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def feeds(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    shape = (BATCH, IN_CHANNELS, HEIGHT, WIDTH)
    return [{"x": rng.normal(size=shape).astype(np.float32)} for _ in range(count)]


def test_profile_counts_the_convolution_flops_of_every_run(tmp_path):
    profile = profile_onnx(conv_graph(tmp_path / "conv.onnx"), feeds(4), warmup=3, threads=1)
    assert profile["runs"] == 4  # the three warm-up runs are left out
    assert profile["convolution"]["gflop"] == pytest.approx(CONV_FLOPS / 1e9, abs=1e-4)
    assert profile["convolution"]["gflops"] > 0
    ops = profile["op_types"]
    conv_ops = [op for op in ops if op in ("Conv", "FusedConv")]
    assert conv_ops, ops
    assert sum(ops[op]["nodes"] for op in conv_ops) == 1.0  # one per run
    assert sum(entry["share"] for entry in ops.values()) == pytest.approx(1.0, abs=1e-3)
    assert list(ops) == sorted(ops, key=lambda op: -ops[op]["ms"])
    assert profile["run_ms"] >= profile["kernel_ms"] > 0
    assert profile["slowest_nodes"][0]["op"] in ops


def test_convolution_flops_of_a_3d_convolution():
    args = {
        "input_type_shape": [{"float": [3, 4, 8, 8, 8]}, {"float": [6, 4, 3, 3, 3]}],
        "output_type_shape": [{"float": [3, 6, 4, 4, 4]}],
    }
    assert convolution_flops(args) == 2 * 3 * 4 * 4 * 4 * 6 * 4 * 27


def test_convolution_flops_without_shapes_is_zero():
    assert convolution_flops({}) == 0.0
    assert convolution_flops({"input_type_shape": [{"float": [1, 2, 3, 3]}]}) == 0.0


def run_event(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def node_event(ts: int, dur: int, op: str) -> dict:
    return {
        "cat": "Node",
        "name": f"n{ts}_kernel_time",
        "ts": ts,
        "dur": dur,
        "args": {"op_name": op},
    }


def test_summary_keeps_only_the_runs_after_the_warm_up():
    events = [
        run_event(0, 100),
        node_event(10, 90, "Slow"),  # warm-up run: skipped
        run_event(200, 50),
        node_event(210, 30, "Add"),
        node_event(245, 10, "Mul"),
        run_event(300, 70),
        node_event(310, 50, "Add"),
    ]
    summary = summarise_trace(events, skip_runs=1)
    assert summary["runs"] == 2
    assert summary["run_ms"] == pytest.approx(0.06)  # median of 50 and 70 microseconds
    assert set(summary["op_types"]) == {"Add", "Mul"}
    assert summary["op_types"]["Add"] == {
        "ms": 0.04,
        "nodes": 1.0,
        "share": pytest.approx(0.8889, abs=1e-4),
    }
    assert summary["kernel_ms"] == pytest.approx(0.045)
    assert summary["convolution"]["gflops"] is None


def test_a_trace_without_runs_is_refused():
    with pytest.raises(EngineError, match="model_run"):
        summarise_trace([node_event(0, 1, "Add")])
    with pytest.raises(EngineError, match="after the 1 skipped"):
        summarise_trace([run_event(0, 10)], skip_runs=1)


def test_profile_refuses_no_feeds_and_an_unreadable_graph(tmp_path):
    with pytest.raises(EngineError, match="at least one"):
        profile_onnx(conv_graph(tmp_path / "conv.onnx"), [])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(EngineError, match="cannot load"):
        profile_onnx(broken, feeds(1))
