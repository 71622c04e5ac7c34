"""The HTML report of a replay: one self-contained folder that opens in a browser.

    DIR/index.html           summary, accuracy (or detections) per category, stage latencies,
                             a latency plot (inline SVG) and the overlays; relative links only
    DIR/overlays/<stamp>.png a sample of frames with their detections drawn (pipeline/overlay.py)

The summary is `replay.summarize`'s dict; the overlays re-read their frames from the bag.
"""

import html
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cad_perception.pipeline.overlay import category_colour, draw_detections
from cad_perception.pipeline.replay import FrameResult, ReplayRun
from cad_perception.synth.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, read_bag

logger = logging.getLogger(__name__)

OVERLAY_FRAMES = 8
"""Frames drawn by default."""
INDEX_FILE = "index.html"
OVERLAY_FOLDER = "overlays"
PLOT_SIZE = (760, 220)
"""Latency plot width and height, pixels."""
_MARGIN = (52, 12, 14, 34)  # left, right, top, bottom

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 26px; }
.note { color: #555; }
table { border-collapse: collapse; margin: 6px 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef1f5; } tr.total td { font-weight: 600; background: #f7f7f7; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 6px; }
.overlays { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figure img { width: 360px; border: 1px solid #999; display: block; }
figcaption { font-size: 12px; color: #444; margin-top: 2px; }
svg text { font-size: 11px; fill: #333; }
"""


def overlay_sample(run: ReplayRun, count: int = OVERLAY_FRAMES) -> list[FrameResult]:
    """Up to `count` evenly spaced processed frames, from those that kept their masks if any."""
    candidates = [f for f in run.frames if f.has_masks] or list(run.frames)
    if not candidates or count < 1:
        return []
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round())
    return [candidates[int(i)] for i in picks]


def write_overlays(
    out_dir: str | Path,
    bag: str | Path,
    frames: Sequence[FrameResult],
    categories: Sequence[str],
    cad_points: Callable[[str], np.ndarray] | None = None,
    *,
    image_topic: str = IMAGE_TOPIC,
    camera_info_topic: str = CAMERA_INFO_TOPIC,
) -> dict[int, Path]:
    """Draw `frames` (their images re-read from `bag`) as out_dir/<stamp>.png; returns
    stamp -> file. cad_points: as in overlay.draw_detections."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f.stamp_ns: f for f in frames}
    written: dict[int, Path] = {}
    bag_frames = read_bag(bag, image_topic=image_topic, camera_info_topic=camera_info_topic)
    for bag_frame in bag_frames:
        frame = wanted.get(bag_frame.stamp_ns)
        if frame is None:
            continue
        picture = draw_detections(
            bag_frame.rgb, bag_frame.K, frame.detections, categories, cad_points
        )
        path = out_dir / f"{frame.stamp_ns}.png"
        Image.fromarray(picture).save(path)
        written[frame.stamp_ns] = path
        if len(written) == len(wanted):
            bag_frames.close()  # type: ignore[attr-defined]
            break
    missing = len(wanted) - len(written)
    if missing:
        logger.warning("%d overlay frames are not in bag %s", missing, bag)
    return written


def write_report(
    out_dir: str | Path,
    bag: str | Path,
    run: ReplayRun,
    summary: dict[str, Any],
    cad_points: Callable[[str], np.ndarray] | None = None,
    *,
    overlays: int = OVERLAY_FRAMES,
    image_topic: str = IMAGE_TOPIC,
    camera_info_topic: str = CAMERA_INFO_TOPIC,
) -> Path:
    """Write the report folder (module docstring) of `run` and its `summary`; returns the path
    of index.html."""
    out_dir = Path(out_dir)
    sample = overlay_sample(run, overlays)
    files = write_overlays(
        out_dir / OVERLAY_FOLDER,
        bag,
        sample,
        run.categories,
        cad_points,
        image_topic=image_topic,
        camera_info_topic=camera_info_topic,
    )
    figures = [
        (files[f.stamp_ns].relative_to(out_dir).as_posix(), f)
        for f in sample
        if f.stamp_ns in files
    ]
    index = out_dir / INDEX_FILE
    index.write_text(render_html(str(bag), run, summary, figures), encoding="utf-8")
    logger.info("wrote the replay report %s", index)
    return index


def render_html(
    bag: str,
    run: ReplayRun,
    summary: dict[str, Any],
    figures: Sequence[tuple[str, FrameResult]],
) -> str:
    """The report page; figures are (relative image path, its frame)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Replay of {_e(Path(bag).name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Replay of {_e(bag)}</h1>",
        f'<p class="note">{_e(_mode_line(summary))}</p>',
        "<h2>Frames and latency</h2>",
        _table(*_frames_table(summary)),
        "<h2>Accuracy per category</h2>" if summary.get("per_class") else "<h2>Detections</h2>",
        _accuracy_section(summary, run.categories),
    ]
    if summary.get("stages_ms"):
        rows = [[stage, f"{ms:.1f}"] for stage, ms in summary["stages_ms"].items()]
        parts += ["<h2>Pipeline stages (median ms)</h2>", _table(["stage", "ms"], rows)]
    parts += ["<h2>Latency per frame</h2>", latency_svg(run, summary)]
    parts += ["<h2>Overlays</h2>", _overlays(figures, run.categories), "</body></html>"]
    return "\n".join(parts) + "\n"


def _mode_line(summary: dict[str, Any]) -> str:
    if summary["mode"] == "live":
        how = "live: published over DDS to the cad_perception node; latency = publish to receive"
    else:
        how = "offline: every frame through the Pipeline; latency = Pipeline wall time"
    return f"{how}; backend {summary['backend']}"


def _frames_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    frames, latency = summary["frames"], summary["latency_ms"]
    counted = "total" if "total" in frames else "published"
    header = [counted, "processed", "dropped", "median latency ms", "p90 latency ms"]
    row = [str(frames[counted]), str(frames["processed"]), str(frames["dropped"])]
    row += [_number(latency["median"]), _number(latency["p90"])]
    return header, [row]


def _accuracy_section(summary: dict[str, Any], categories: Sequence[str]) -> str:
    detections = summary["detections"]
    truth = summary["ground_truth"]
    if not summary.get("per_class"):
        reason = (
            "the bag has no ground truth (ground_truth.json)"
            if truth is None
            else "no ground-truth object lies on a processed frame"
        )
        rows = [[_label(c, categories), str(n)] for c, n in detections.items()]
        note = f'<p class="note">No accuracy: {_e(reason)}; detections and latency only.</p>'
        return note + _table(["category", "detections"], rows, escape_first=False)
    rows = []
    for name, c in summary["per_class"].items():
        rows.append(
            [
                _label(name, categories),
                str(c["total"]),
                str(detections.get(name, 0)),
                f"{c['accuracy']:.1f}",
                f"{c['retrieval_accuracy']:.1f}",
            ]
        )
    total = truth["objects"]
    rows.append(["class average", str(total), "", *_pair(summary, "class_avg")])
    rows.append(["instance average", "", "", *_pair(summary, "instance_avg")])
    header = ["category", "GT objects", "detections", "aligned %", "aligned + CAD %"]
    note = (
        f'<p class="note">Scan2CAD alignment accuracy over {truth["scored_frames"]} processed '
        "frames (predictions after 3D NMS; aligned + CAD also needs the right CAD model).</p>"
    )
    others = [f"{c} {n}" for c, n in detections.items() if c not in summary["per_class"]]
    if others:
        others_note = ", ".join(others)
        note += (
            f'<p class="note">Detections of categories without ground truth: {_e(others_note)}</p>'
        )
    return note + _table(header, rows, escape_first=False, totals=2)


def _pair(summary: dict[str, Any], key: str) -> list[str]:
    return [f"{summary[key]:.1f}", f"{summary['retrieval_' + key]:.1f}"]


def latency_svg(run: ReplayRun, summary: dict[str, Any]) -> str:
    """An inline SVG line plot of latency (ms) per processed frame, with median and p90."""
    width, height = PLOT_SIZE
    left, right, top, bottom = _MARGIN
    latencies = [f.latency_ms for f in run.frames]
    if not latencies:
        return '<p class="note">No frame was processed.</p>'
    y_max = nice_ceiling(1.1 * max(latencies))  # headroom above the highest point
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: float) -> float:
        return left + plot_w * (i / max(len(latencies) - 1, 1))

    def y(ms: float) -> float:
        return top + plot_h * (1.0 - ms / y_max)

    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="latency per frame">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#999"/>',
    ]
    for k in range(5):
        value = y_max * k / 4
        items.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="#e2e2e2"/><text x="{left - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{value:g}</text>'
        )
    last = len(latencies) - 1
    for i in sorted({0, last // 2, last}):
        items.append(f'<text x="{x(i):.1f}" y="{height - 18}" text-anchor="middle">{i}</text>')
    items.append(
        f'<text x="{left + plot_w / 2}" y="{height - 3}" text-anchor="middle">processed frame'
        f'</text><text x="12" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">ms</text>'
    )
    stats = summary["latency_ms"]
    labels = (
        ("median", "#2b8a3e", left + 4, "start"),
        ("p90", "#c92a2a", left + plot_w - 4, "end"),
    )
    for name, colour, label_x, anchor in labels:  # labels at opposite ends never overlap
        level = y(stats[name])
        items.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{level:.1f}" y2="{level:.1f}" '
            f'stroke="{colour}" stroke-dasharray="5 4"/><text x="{label_x}" y="{level - 4:.1f}" '
            f'text-anchor="{anchor}" style="fill:{colour}">{name} {stats[name]:.1f} ms</text>'
        )
    points = " ".join(f"{x(i):.1f},{y(ms):.1f}" for i, ms in enumerate(latencies))
    items.append(f'<polyline points="{points}" fill="none" stroke="#1c5fa8" stroke-width="1.5"/>')
    if len(latencies) == 1:
        items.append(f'<circle cx="{x(0):.1f}" cy="{y(latencies[0]):.1f}" r="3" fill="#1c5fa8"/>')
    items.append("</svg>")
    return "\n".join(items)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (> 0)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** np.floor(np.log10(value))
    return float(next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= value))


def _overlays(figures: Sequence[tuple[str, FrameResult]], categories: Sequence[str]) -> str:
    if not figures:
        return '<p class="note">No overlays (no processed frame).</p>'
    legend = " ".join(_label(c, categories) for c in categories)
    items = [f'<p class="note">Colours: {legend}</p>', '<div class="overlays">']
    for path, frame in figures:
        caption = (
            f"stamp {frame.stamp_ns}: {len(frame.detections)} detections, {frame.latency_ms:.0f} ms"
        )
        if not frame.has_masks:
            caption += " (no masks)"
        items.append(
            f'<figure><img src="{_e(path)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    items.append("</div>")
    return "\n".join(items)


def _label(category: str, categories: Sequence[str]) -> str:
    r, g, b = category_colour(category, categories)
    swatch = f'<span class="swatch" style="background:rgb({r},{g},{b})"></span>'
    return f"{swatch}{_e(category)}"


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    escape_first: bool = True,
    totals: int = 0,
) -> str:
    """An HTML table; the last `totals` rows are set in bold; first-column cells are HTML
    unless escape_first."""
    lines = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for index, row in enumerate(rows):
        first, *rest = row
        cells = [first if not escape_first else _e(first), *map(_e, rest)]
        css = ' class="total"' if index >= len(rows) - totals else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
