"""A picture of a pipeline benchmark: where each backend's time goes, as one SVG file.

`bench_svg(results)` draws `run_pipeline_benchmarks`' results (pipeline/bench.py):

- one horizontal bar per backend, split into the median milliseconds of the pipeline stages
  (pre-process, engine, post-process, retrieval; the medians of the stages need not add up to
  the end-to-end median exactly), labelled with the end-to-end median and the speed-up over
  the first backend;
- when the results hold the backbone comparison ("backbone"), its two times and speed-up;
- when the results hold an ONNX Runtime profile ("onnxruntime_profile", engine/profile.py),
  one more bar: the engine's kernel time split by operator type, the largest types by name and
  the rest as "other".
"""

import html
from typing import Any

from cad_perception.pipeline.pipeline import STAGES
from cad_perception.pipeline.report import nice_ceiling

WIDTH = 760
"""Picture width, pixels."""
LABEL_WIDTH = 130
"""Left margin for the backend names."""
VALUE_WIDTH = 150
"""Right margin for each bar's figures."""
ROW = 30
"""Height of one bar's row."""
BAR = 20
"""Height of a bar."""
PROFILE_TYPES = 6
"""Operator types named in the profile bar; the rest are summed as "other"."""
STAGE_COLOURS = dict(zip(STAGES, ("#74c0fc", "#1c5fa8", "#f59f00", "#2b8a3e"), strict=True))
OP_COLOURS = ("#1c5fa8", "#f59f00", "#2b8a3e", "#c92a2a", "#7048e8", "#0c8599", "#adb5bd")
"""Colours of the named operator types, then of "other"."""


def bench_svg(results: dict[str, Any]) -> str:
    """The SVG picture (module docstring) of a pipeline benchmark's results dict; ValueError
    naming the missing field when the results lack a backend's stage medians."""
    backends = results.get("backends")
    if not isinstance(backends, dict) or not backends:
        raise ValueError("the benchmark results name no backend (no 'backends' entries)")
    stage_ms = {name: _stage_medians(name, entry) for name, entry in backends.items()}
    scale = nice_ceiling(max(sum(stages.values()) for stages in stage_ms.values()))
    bar_width = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    first = next(iter(backends.values()))["latency_ms"]["total"]["median"]
    items, y = [], ROW + 10  # the first row holds the legend
    for name, stages in stage_ms.items():
        total = backends[name]["latency_ms"]["total"]["median"]
        items.append(_text(LABEL_WIDTH - 8, y + BAR - 5, name, "end"))
        x = float(LABEL_WIDTH)
        for stage, ms in stages.items():
            width = bar_width * ms / scale
            items.append(_rect(x, y, width, STAGE_COLOURS[stage], name, stage, f"{ms:.1f} ms"))
            x += width
        items.append(_text(x + 6, y + BAR - 5, f"{total:.0f} ms ({first / total:.2f}x)"))
        y += ROW
    items.append(_axis(y, scale, bar_width))
    y += ROW
    backbone = results.get("backbone")
    if backbone:
        line = (
            f"backbone alone: torch {backbone['torch_ms']:.0f} ms, ONNX Runtime "
            f"{backbone['onnxruntime_ms']:.0f} ms ({backbone['speedup']:.2f}x)"
        )
        items.append(_text(LABEL_WIDTH, y + 4, line))
        y += ROW - 6
    profile = results.get("onnxruntime_profile")
    if profile:
        y += 10
        coloured = list(zip(_operator_shares(profile).items(), OP_COLOURS, strict=False))
        items.append(_text(LABEL_WIDTH - 8, y + BAR - 5, "ONNX Runtime ops", "end"))
        x = float(LABEL_WIDTH)
        for (op, share), colour in coloured:
            width = bar_width * share
            items.append(_rect(x, y, width, colour, "profile", op, f"{100 * share:.0f} %"))
            if width > 40:
                items.append(_text(x + 3, y + BAR - 5, f"{op} {100 * share:.0f}%", "start", "#fff"))
            x += width
        items.append(_text(x + 6, y + BAR - 5, f"{profile['kernel_ms']:.0f} ms of kernels"))
        swatches = [(f"{op} {100 * share:.1f} %", colour) for (op, share), colour in coloured]
        legend_svg, legend_rows = _legend(swatches, y + ROW)
        items.append(legend_svg)
        y += ROW + 20 * legend_rows
    header = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 6}" '
        f'viewBox="0 0 {WIDTH} {y + 6}" role="img" aria-label="pipeline benchmark" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{y + 6}" fill="#fff"/>',
        _legend(list(STAGE_COLOURS.items()), 10)[0],
    ]
    return "\n".join([*header, *items, "</svg>"]) + "\n"


def _stage_medians(name: str, entry: Any) -> dict[str, float]:
    """{stage: median ms} of one backend's entry; ValueError naming what is missing."""
    try:
        latency = entry["latency_ms"]
        medians = {stage: float(latency[stage]["median"]) for stage in STAGES}
        float(latency["total"]["median"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"backend {name!r} has no median latency for {err} (expected latency_ms.<stage>"
            f".median for total and {', '.join(STAGES)})"
        ) from err
    return medians


def _operator_shares(profile: dict[str, Any]) -> dict[str, float]:
    """The profile's largest PROFILE_TYPES operator types by kernel time and "other", each as
    a share of the total kernel time (summing to 1)."""
    times = {op: float(entry["ms"]) for op, entry in profile["op_types"].items()}
    total = sum(times.values())
    ranked = sorted(times, key=times.__getitem__, reverse=True)
    shares = {op: times[op] / total for op in ranked[:PROFILE_TYPES]}
    rest = sum(times[op] for op in ranked[PROFILE_TYPES:])
    if rest > 0:
        shares["other"] = rest / total
    return shares


def _rect(x: float, y: float, width: float, colour: str, row: str, part: str, value: str) -> str:
    title = html.escape(f"{row}: {part} {value}")
    return (
        f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR}" fill="{colour}" '
        f'data-row="{html.escape(row)}" data-part="{html.escape(part)}"><title>{title}</title>'
        "</rect>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", colour: str = "#222") -> str:
    return (
        f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}" fill="{colour}">'
        f"{html.escape(text)}</text>"
    )


def _axis(y: float, scale: float, bar_width: float) -> str:
    """Ticks under the backend bars, at round steps of milliseconds up to `scale`."""
    step, ticks = nice_ceiling(scale / 5), []
    for k in range(int(scale / step + 1e-9) + 1):
        x = LABEL_WIDTH + bar_width * k * step / scale
        ticks.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 4}" y2="{y + 2}" stroke="#999"/>')
        ticks.append(_text(x, y + 14, f"{k * step:g}", "middle"))
    ticks.append(_text(LABEL_WIDTH + bar_width + 24, y + 14, "ms, median per stage"))
    return "\n".join(ticks)


def _legend(entries: list[tuple[str, str]], top: float) -> tuple[str, int]:
    """Colour swatches with their names from `top` down, in as many rows as the width needs:
    (SVG, rows)."""
    items, x, rows = [], float(LABEL_WIDTH), 1
    for name, colour in entries:
        width = 30 + 7 * len(name)
        if x + width > WIDTH and x > LABEL_WIDTH:
            x, rows = float(LABEL_WIDTH), rows + 1
        y = top + 20 * (rows - 1)
        items.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colour}"/>')
        items.append(_text(x + 16, y + 10, name))
        x += width
    return "\n".join(items), rows
