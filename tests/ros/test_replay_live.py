"""Live replay: the node's Detection3DArray turned back into detections (a round trip through the
node's own message builder), a node that cannot start reported with its log, and the whole
`cad-perception replay --live` over real DDS giving the offline Pipeline's detections."""

import json

import numpy as np
import pytest
from std_msgs.msg import Header

from cad_perception.cad.database import CadDatabase
from cad_perception.cli import main
from cad_perception.pipeline.pipeline import Pipeline
from cad_perception.ros.messages import detections_message
from cad_perception.ros.replay_live import (
    DetectionConverter,
    LiveReplayError,
    SentFrame,
    replay_live,
)
from cad_perception.synth.bag import read_bag
from tests.pipeline.test_replay import BAG_FRAMES, ReplayFiles, build_replay_files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReplayFiles:
    return build_replay_files(tmp_path_factory.mktemp("live_replay"))


@pytest.fixture(scope="module")
def offline(files: ReplayFiles) -> dict[int, list]:
    """The Pipeline's detections of every bag frame, by stamp (what the node must publish)."""
    pipeline = Pipeline.from_dirs(
        files.model_dir, files.db_dir, backend="torch", score_threshold=0.0
    )
    with pipeline.db:
        return {f.stamp_ns: pipeline(f.rgb, f.K) for f in read_bag(files.bag)}


def _assert_same_objects(live, offline) -> None:
    assert [d.category for d in live] == [d.category for d in offline]
    for ours, theirs in zip(live, offline, strict=True):
        assert [m.cad_id for m in ours.cads] == [m.cad_id for m in theirs.cads]
        np.testing.assert_allclose(ours.t, theirs.t, atol=1e-6)
        np.testing.assert_allclose(ours.q, theirs.q, atol=1e-6)
        np.testing.assert_allclose(ours.s, theirs.s, rtol=1e-5)
        np.testing.assert_allclose(ours.extents, theirs.extents, rtol=1e-6)


def test_detection_messages_convert_back_to_the_detections(files, offline):
    frame = next(iter(read_bag(files.bag)))
    detections = offline[frame.stamp_ns]
    assert detections, "the test model should detect something"
    message = detections_message(Header(frame_id="camera"), detections)
    with CadDatabase.open(files.db_dir, readonly=True) as db:
        convert = DetectionConverter(db)
        sent = SentFrame(0.0, frame.K, frame.rgb.shape[:2])
        back = [convert(d, sent) for d in message.detections]
    _assert_same_objects(back, detections)
    height, width = frame.rgb.shape[:2]
    for ours, theirs in zip(back, detections, strict=True):
        # the node's confidence: detection score x the best CAD's retrieval similarity
        assert ours.score == pytest.approx(theirs.score * theirs.cads[0].similarity, abs=1e-6)
        x0, y0, x1, y1 = ours.box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert ours.mask.shape == (height, width) and not ours.mask.any()


def test_a_node_that_cannot_start_is_reported_with_its_log(files, tmp_path):
    with pytest.raises(LiveReplayError, match=r"node exited with status 1 .*configure failed"):
        replay_live(files.bag, model_dir=tmp_path / "no_model", db_dir=files.db_dir)


@pytest.mark.slow  # ~60 s on a busy 2-core CPU: two processes start, a model loads, 3 frames
def test_live_replay_over_dds_gives_the_offline_detections(files, offline, tmp_path, capsys):
    out = tmp_path / "live.json"
    status = main(
        ["replay", str(files.bag), "--live", "--rate", "0.25", "--model", str(files.model_dir),
         "--db", str(files.db_dir), "--backend", "torch", "--score-threshold", "0",
         "--json", str(out), "--report", str(tmp_path / "report")]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert "live on torch" in capsys.readouterr().out
    data = json.loads(out.read_text())
    frames = data["frames"]
    assert data["mode"] == "live" and frames["published"] == BAG_FRAMES
    assert frames["processed"] >= 1 and frames["processed"] + frames["dropped"] == BAG_FRAMES
    assert data["latency_ms"]["median"] > 0
    stamps = [f["stamp_ns"] for f in data["per_frame"]]
    assert set(stamps) <= set(offline)
    for frame in data["per_frame"]:
        ours, theirs = frame["detections"], offline[frame["stamp_ns"]]
        assert [d["cad_id"] for d in ours] == [d.cad_id for d in theirs]
        assert [d["category"] for d in ours] == [d.category for d in theirs]
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a["t"], b.t, atol=1e-6)
            np.testing.assert_allclose(a["q"], b.q, atol=1e-6)
            np.testing.assert_allclose(a["s"], b.s, rtol=1e-5)
    assert (tmp_path / "report" / "index.html").is_file()
