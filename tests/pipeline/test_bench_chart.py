"""The benchmark picture: bars in proportion to the stage medians, labels, profile shares."""

import xml.etree.ElementTree as ET

import pytest

from cad_perception.pipeline.bench_chart import PROFILE_TYPES, bench_svg

SVG = "{http://www.w3.org/2000/svg}"


def entry(preprocess: float, engine: float, postprocess: float, retrieval: float, total: float):
    stages = {"preprocess": preprocess, "engine": engine, "postprocess": postprocess,
              "retrieval": retrieval, "total": total}  # fmt: skip
    return {"latency_ms": {name: {"median": ms, "p90": ms + 5} for name, ms in stages.items()}}


def results(profile: bool = False) -> dict:
    found = {
        "backends": {
            "torch": entry(1.0, 190.0, 2.0, 1.0, 195.0),
            "onnxruntime": entry(1.0, 150.0, 2.0, 1.0, 156.0),
        },
        "backbone": {"torch_ms": 107.1, "onnxruntime_ms": 86.3, "speedup": 1.24},
    }
    if profile:
        ops = {"Conv": 70.0, "RoiAlign": 5.0, "Gemm": 4.0, "If": 3.0, "NMS": 2.0, "Add": 1.5,
               "Mul": 1.0, "Slice": 0.5}  # fmt: skip
        found["onnxruntime_profile"] = {
            "kernel_ms": sum(ops.values()),
            "op_types": {op: {"ms": ms, "nodes": 1} for op, ms in ops.items()},
        }
    return found


def segments(svg: str, row: str) -> dict[str, float]:
    """{part: width} of one bar's rectangles."""
    root = ET.fromstring(svg)
    return {
        rect.get("data-part"): float(rect.get("width"))
        for rect in root.iter(f"{SVG}rect")
        if rect.get("data-row") == row
    }


def texts(svg: str) -> list[str]:
    return [text.text for text in ET.fromstring(svg).iter(f"{SVG}text")]


def test_backend_bars_are_in_proportion_to_their_stage_medians() -> None:
    svg = bench_svg(results())
    torch_bar, onnx_bar = segments(svg, "torch"), segments(svg, "onnxruntime")
    assert list(torch_bar) == ["preprocess", "engine", "postprocess", "retrieval"]
    assert torch_bar["engine"] / onnx_bar["engine"] == pytest.approx(190 / 150, rel=1e-3)
    assert torch_bar["engine"] / torch_bar["postprocess"] == pytest.approx(95, rel=1e-2)
    assert "195 ms (1.00x)" in texts(svg) and "156 ms (1.25x)" in texts(svg)
    assert "backbone alone: torch 107 ms, ONNX Runtime 86 ms (1.24x)" in texts(svg)
    assert [t for t in texts(svg) if t.isdigit()] == ["0", "50", "100", "150", "200"]  # ticks
    assert segments(svg, "profile") == {}


def test_profile_bar_names_the_largest_operator_types_and_sums_the_rest() -> None:
    svg = bench_svg(results(profile=True))
    bar = segments(svg, "profile")
    assert PROFILE_TYPES == 6  # the six largest by name, Mul and Slice as "other"
    assert list(bar) == ["Conv", "RoiAlign", "Gemm", "If", "NMS", "Add", "other"]
    assert bar["other"] / bar["Conv"] == pytest.approx(1.5 / 70.0, rel=1e-2)
    whole = sum(bar.values())
    assert bar["Conv"] / whole == pytest.approx(70.0 / 87.0, rel=1e-2)
    assert "87 ms of kernels" in texts(svg) and "other 1.7 %" in texts(svg)


def test_names_are_escaped() -> None:
    found = results()
    found["backends"]["<b>&"] = found["backends"].pop("torch")
    root = ET.fromstring(bench_svg(found))  # parses: the name is escaped
    assert "<b>&" in [text.text for text in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    "broken, message",
    [
        ({}, "no backend"),
        ({"backends": {}}, "no backend"),
        ({"backends": {"torch": {"latency_ms": {"total": {"median": 1.0}}}}}, "'preprocess'"),
        ({"backends": {"torch": {"latency": {}}}}, "backend 'torch'"),
    ],
)
def test_results_without_stage_medians_are_refused(broken: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench_svg(broken)
