"""The HTML replay report: overlays drawn on the bag's frames, tables, a latency plot whose points
invert to the latencies, relative links only, and a page that renders in headless Chromium."""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cad_perception.cad.database import CadDatabase
from cad_perception.pipeline.overlay import category_colour
from cad_perception.pipeline.replay import ReplayRun, summarize
from cad_perception.pipeline.report import (
    PLOT_SIZE,
    latency_svg,
    overlay_sample,
    render_html,
    write_report,
)
from cad_perception.synth.bag import load_ground_truth, read_bag
from tests.pipeline.test_replay import ReplayFiles, build_replay_files, oracle_run

SCREENSHOT = Path("/tmp/replay_report.png")
"""Where the Chromium test leaves its screenshot for people to look at."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReplayFiles:
    return build_replay_files(tmp_path_factory.mktemp("report"))


def _first_category(files: ReplayFiles) -> str:
    return load_ground_truth(files.bag)[0].category


@pytest.fixture(scope="module")
def report(files: ReplayFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReplayRun]:
    """The report of an oracle run (ground-truth detections) with CAD points drawn."""
    run = oracle_run(files)
    with CadDatabase.open(files.db_dir, readonly=True) as db:
        summary = summarize(run, load_ground_truth(files.bag), lambda c: db.get(c).symmetry)
        out = tmp_path_factory.mktemp("report") / "out"
        index = write_report(out, files.bag, run, summary, lambda c: db.get(c).samples)
    return index, run


def test_overlays_are_the_bag_frames_with_the_detections_drawn(files, report):
    index, run = report
    frames = {f.stamp_ns: f for f in read_bag(files.bag)}
    overlays = sorted((index.parent / "overlays").glob("*.png"))
    assert [int(p.stem) for p in overlays] == sorted(f.stamp_ns for f in run.frames)
    for path in overlays:
        picture = np.asarray(Image.open(path).convert("RGB"))
        raw = frames[int(path.stem)].rgb
        assert picture.shape == raw.shape
        changed = np.any(picture != raw, axis=-1)
        assert 0.001 < changed.mean() < 0.9  # something drawn, the frame still there
        colour = np.array(category_colour(_first_category(files), run.categories))
        assert np.all(picture == colour, axis=-1).sum() > 20, "too few pixels in the GT colour"


def test_page_links_relatively_and_holds_the_tables(report):
    index, run = report
    page = index.read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == len(run.frames)
    for source in sources:
        assert not source.startswith(("/", "file:")) and (index.parent / source).is_file()
    assert "Accuracy per category" in page and "class average" in page
    assert page.count("<td>100.0</td>") >= 6  # a category row and the averages, aligned and + CAD
    assert "<svg" in page and "<polyline" in page


def test_page_without_ground_truth_says_so(files, report):
    _, run = report
    summary = summarize(run, None, lambda c: "none")
    page = render_html(str(files.bag), run, summary, [])
    assert "No accuracy: the bag has no ground truth" in page
    assert "Accuracy per category" not in page and "<h2>Detections</h2>" in page


def test_latency_plot_points_invert_to_the_latencies(report):
    _, run = report
    latencies = [12.0, 30.0, 18.0]
    frames = tuple(dataclasses.replace(run.frames[0], latency_ms=ms) for ms in latencies)
    run = dataclasses.replace(run, frames=frames)
    summary = {"latency_ms": {"median": 18.0, "p90": 27.6}}
    svg = latency_svg(run, summary)
    points = re.search(r'<polyline points="([^"]+)"', svg)[1].split()
    xy = np.array([[float(v) for v in p.split(",")] for p in points])
    top, bottom, y_max = 14, PLOT_SIZE[1] - 34, 50.0  # the axis tops out at 50 ms for 33 ms
    recovered = y_max * (bottom - xy[:, 1]) / (bottom - top)
    np.testing.assert_allclose(recovered, latencies, atol=0.1)
    assert np.all(np.diff(xy[:, 0]) > 0)
    assert "median 18.0 ms" in svg and "p90 27.6 ms" in svg


def test_overlay_sample_prefers_frames_with_masks(report):
    _, run = report
    frames = [dataclasses.replace(f, has_masks=i != 1) for i, f in enumerate(run.frames)]
    run = dataclasses.replace(run, frames=tuple(frames))
    assert [f.stamp_ns for f in overlay_sample(run, 8)] == [frames[0].stamp_ns, frames[2].stamp_ns]
    assert len(overlay_sample(run, 1)) == 1


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium)",
)
def test_report_renders_in_headless_chromium(files, report, tmp_path):
    index, run = report
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,1600", index.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    shutil.copyfile(shot, SCREENSHOT)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert pixels.shape[0] == 1200 * 1600
    assert len(np.unique(pixels, axis=0)) > 500  # text, tables, plot and photos, not blank
    # the overlays' colour made it onto the page: far more pixels than its 11x11 legend swatch
    colour = np.array(category_colour(_first_category(files), run.categories))
    near = np.abs(pixels.astype(int) - colour).max(axis=1) <= 12
    assert near.sum() > 1000, "the overlays' category colour is (almost) absent"
