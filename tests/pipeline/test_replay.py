"""Offline replay: every bag frame through the Pipeline (compared with calling it directly),
scoring with known answers (an oracle of the ground truth scores 100 %, a shifted one 0 %), the
run JSON round trip, the mask budget, and bad inputs."""

import dataclasses
import json
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.database import CadDatabase
from cad_perception.eval.records import AlignmentRecord
from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.pipeline.detection import CadMatch, Detection
from cad_perception.pipeline.pipeline import Pipeline
from cad_perception.pipeline.replay import (
    FrameResult,
    ReplayError,
    ReplayRun,
    prediction_records,
    replay_bag,
    run_from_json,
    run_to_json,
    summarize,
)
from cad_perception.synth.bag import load_ground_truth, read_bag, write_bag
from cad_perception.synth.errors import BagError
from cad_perception.synth.generate import PathFrames
from cad_perception.synth.scene import SceneConfig
from tests.model.mini_dataset import mini_config, save_model_and_db

BAG_FRAMES = 3
BAG_SIZE = (120, 160)


class ReplayFiles(NamedTuple):
    model_dir: Path
    db_dir: Path
    bag: Path


def build_replay_files(root: Path) -> ReplayFiles:
    """A seeded untrained mini model that detects (score threshold 0, at most 4 objects), a
    1-CAD-per-category database embedded with it, and a 3-frame 120x160 bag of that database."""
    config = mini_config()
    detector = dataclasses.replace(
        config.detector, score_threshold=0.0, detections_per_image=4, rpn_post_nms_top_n_test=50
    )
    save_model_and_db(root, dataclasses.replace(config, detector=detector))
    with CadDatabase.open(root / "db", readonly=True) as db:
        frames = PathFrames(
            db=db, frames=BAG_FRAMES, seed=1, config=SceneConfig(image_size=BAG_SIZE)
        )
        write_bag(frames, root / "bag", progress=False)
    return ReplayFiles(root / "model", root / "db", root / "bag")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReplayFiles:
    return build_replay_files(tmp_path_factory.mktemp("replay"))


@pytest.fixture(scope="module")
def pipeline(files: ReplayFiles) -> Pipeline:
    pipeline = Pipeline.from_dirs(
        files.model_dir, files.db_dir, backend="torch", score_threshold=0.0
    )
    yield pipeline
    pipeline.db.close()


@pytest.fixture(scope="module")
def offline_run(files: ReplayFiles, pipeline: Pipeline) -> ReplayRun:
    """The bag replayed offline, masks kept on at most 2 frames (mask_frames=1)."""
    return replay_bag(pipeline, files.bag, mask_frames=1)


def _symmetry(db_dir: Path):
    db = CadDatabase.open(db_dir, readonly=True)
    return lambda cad_id: db.get(cad_id).symmetry


def oracle_run(files: ReplayFiles, shift_m: float = 0.0, frames: int | None = None) -> ReplayRun:
    """A run whose detections are the bag's ground truth (t shifted along x by shift_m), plus a
    lower-scoring duplicate of each (which 3D NMS must remove), on the first `frames` frames."""
    truth = load_ground_truth(files.bag)
    results = []
    for frame in list(read_bag(files.bag))[:frames]:
        size = frame.rgb.shape[:2]
        detections = []
        for record in (r for r in truth if r.scene == str(frame.stamp_ns)):
            t = np.asarray(record.t) + np.array([shift_m, 0.0, 0.0])
            for score, nudge in ((0.9, 0.0), (0.5, 0.05)):
                detections.append(_detection(record, t + nudge, score, size))
        results.append(FrameResult(frame.stamp_ns, size, tuple(detections), 10.0, {}))
    return ReplayRun("offline", "oracle", CATEGORIES, BAG_FRAMES, tuple(results))


def _detection(record: AlignmentRecord, t: np.ndarray, score: float, size) -> Detection:
    q = np.asarray(record.q)
    return Detection(
        category=record.category,
        score=score,
        box=np.array([1.0, 2.0, 30.0, 40.0], np.float32),
        mask=np.zeros(size, bool),
        R=quaternion_to_matrix(torch.from_numpy(q)).numpy(),
        q=q,
        t=t,
        s=np.asarray(record.s),
        extents=np.asarray(record.s),
        alignment_valid=True,
        cads=(CadMatch(record.cad_id, 0.25), CadMatch("other", math.nan)),
    )


def test_offline_replay_runs_every_frame_through_the_pipeline(files, pipeline, offline_run):
    run = offline_run
    frames = list(read_bag(files.bag))
    assert [f.stamp_ns for f in run.frames] == [f.stamp_ns for f in frames]
    assert (run.mode, run.backend, run.published, run.dropped) == ("offline", "torch", 3, 0)
    assert sum(len(f.detections) for f in run.frames) > 0
    direct = pipeline(frames[0].rgb, frames[0].K)
    assert [d.category for d in run.frames[0].detections] == [d.category for d in direct]
    for ours, theirs in zip(run.frames[0].detections, direct, strict=True):
        np.testing.assert_allclose(ours.t, theirs.t, atol=1e-6)
        np.testing.assert_array_equal(ours.mask, theirs.mask)
        assert ours.cad_id == theirs.cad_id
    for result in run.frames:
        stages = result.stages_ms
        assert set(stages) == {"preprocess", "engine", "postprocess", "retrieval"}
        assert result.latency_ms >= sum(stages.values()) > 0  # the wall time holds the stages


def test_masks_are_kept_for_evenly_spaced_frames_only(offline_run):
    assert [f.has_masks for f in offline_run.frames] == [True, False, True]  # mask_frames=1
    assert any(d.mask.any() for d in offline_run.frames[0].detections)
    dropped = offline_run.frames[1]
    assert all(d.mask.shape == dropped.image_size and not d.mask.any() for d in dropped.detections)


def test_oracle_scores_100_percent_and_a_shifted_one_0(files):
    truth = load_ground_truth(files.bag)
    assert len(truth) > 0
    symmetry = _symmetry(files.db_dir)
    perfect = summarize(oracle_run(files), truth, symmetry)
    assert perfect["class_avg"] == perfect["instance_avg"] == 100.0
    assert perfect["retrieval_instance_avg"] == 100.0
    assert perfect["ground_truth"] == {"objects": len(truth), "scored_frames": BAG_FRAMES}
    assert sum(perfect["detections"].values()) == 2 * len(truth)
    shifted = summarize(oracle_run(files, shift_m=0.5), truth, symmetry)
    assert shifted["instance_avg"] == 0.0
    assert perfect["latency_ms"] == {"median": 10.0, "p90": 10.0}


def test_only_processed_frames_are_scored_and_the_rest_count_as_dropped(files):
    truth = load_ground_truth(files.bag)
    run = oracle_run(files, frames=1)
    summary = summarize(run, truth, _symmetry(files.db_dir))
    first = str(run.frames[0].stamp_ns)
    assert summary["frames"] == {"total": BAG_FRAMES, "processed": 1, "dropped": BAG_FRAMES - 1}
    assert summary["ground_truth"]["objects"] == sum(r.scene == first for r in truth)
    assert summary["instance_avg"] == 100.0


def test_summary_without_ground_truth_has_detections_and_latency_only(files):
    run = dataclasses.replace(oracle_run(files), mode="live")
    summary = summarize(run, None, _symmetry(files.db_dir))
    assert summary["ground_truth"] is None
    assert "class_avg" not in summary and "per_class" not in summary
    assert summary["frames"] == {"published": BAG_FRAMES, "processed": BAG_FRAMES, "dropped": 0}
    truth = Counter(r.category for r in load_ground_truth(files.bag))
    assert summary["detections"] == {category: 2 * n for category, n in truth.items()}


def test_prediction_records_carry_the_stamp_and_the_retrieved_cads_symmetry(files):
    run = oracle_run(files, frames=1)
    records = prediction_records(run, lambda cad_id: f"sym of {cad_id}")
    det = run.frames[0].detections[0]
    assert records[0].scene == str(run.frames[0].stamp_ns)
    assert (records[0].cad_id, records[0].sym) == (det.cad_id, f"sym of {det.cad_id}")
    assert records[0].score == det.score


def test_run_json_round_trips(files):
    run = oracle_run(files)
    text = json.dumps(run_to_json(run), allow_nan=False)  # NaN distances become null
    back = run_from_json(json.loads(text))
    assert (back.mode, back.backend, back.published, back.categories) == (
        run.mode, run.backend, run.published, run.categories,
    )  # fmt: skip
    for ours, theirs in zip(back.frames, run.frames, strict=True):
        assert (ours.stamp_ns, ours.image_size, ours.latency_ms) == (
            theirs.stamp_ns, theirs.image_size, theirs.latency_ms,
        )  # fmt: skip
        assert not ours.has_masks
        for a, b in zip(ours.detections, theirs.detections, strict=True):
            assert (a.category, a.cad_id) == (b.category, b.cad_id)
            np.testing.assert_allclose(a.R, b.R, atol=1e-9)
            for name in ("t", "q", "s", "extents", "box"):
                np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-6)
            assert a.cads[0].distance == 0.25 and math.isnan(a.cads[1].distance)
            assert a.mask.shape == b.mask.shape and not a.mask.any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("frames"), "missing field 'frames'"),
        (lambda d: d.update(mode="fast"), "mode must be one of"),
        (lambda d: d["frames"][0]["detections"][0].update(t=[0, 1]), "frame 0, detection 0: t"),
        (lambda d: d["frames"][1].update(image_size=[0, 3]), "frame 1: image_size"),
        (lambda d: d.update(published=1), "published 1 < 3"),
    ],
)
def test_malformed_run_json_is_rejected_naming_the_field(files, change, message):
    data = run_to_json(oracle_run(files))
    change(data)
    with pytest.raises(ReplayError, match=message):
        run_from_json(json.loads(json.dumps(data)))


def test_bad_bags_raise_bag_errors_naming_the_problem(files, pipeline, tmp_path):
    with pytest.raises(BagError, match="no bag at"):
        replay_bag(pipeline, tmp_path / "missing")
    with pytest.raises(BagError, match="has no topic /camera/depth"):
        replay_bag(pipeline, files.bag, image_topic="/camera/depth")
    broken = tmp_path / "bag"
    shutil.copytree(files.bag, broken)
    (broken / "ground_truth.json").write_text('[{"scene": "1"}]')
    with pytest.raises(BagError, match=r"invalid ground truth .* missing field 'category'"):
        load_ground_truth(broken)
