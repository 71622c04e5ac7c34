"""The Pipeline end to end on a small seeded network: any image size, consistent geometry,
torch and onnxruntime agree, bad inputs and unusable databases are refused; `infer` writes
JSON and an overlay."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.cli import main
from cad_perception.engine.factory import create_backend
from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.model.config import DetectorConfig
from cad_perception.pipeline.pipeline import Pipeline, PipelineError
from cad_perception.pipeline.preprocess import fit_image
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig
from tests.model.mini_dataset import mini_config, save_model_and_db

SIZE = (96, 128)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    config = mini_config()
    config = type(config)(**{**config.__dict__, "detector": DetectorConfig(score_threshold=0.0)})
    save_model_and_db(root, config)
    with CadDatabase.open(root / "db", readonly=True) as db:
        frames = list(SceneFrames(db=db, scenes=2, seed=4, config=SceneConfig(image_size=SIZE)))
    return {"model": root / "model", "db": root / "db", "frames": frames, "root": root}


@pytest.fixture(scope="module")
def pipeline(assets: dict) -> Pipeline:
    backend = create_backend(assets["model"], "torch", input_size=SIZE)
    return Pipeline(backend, CadDatabase.open(assets["db"], readonly=True), score_threshold=0.0)


def test_detections_are_consistent(pipeline: Pipeline, assets: dict) -> None:
    frame = assets["frames"][0]
    detections = pipeline(frame.rgb, frame.K)
    assert detections, "a score threshold of 0 keeps the network's detections"
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    db = pipeline.db
    for d in detections:
        assert d.mask.shape == SIZE and d.mask.dtype == bool
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= SIZE[1] and 0 <= y0 <= y1 <= SIZE[0]
        assert d.category in pipeline.categories
        np.testing.assert_allclose(
            quaternion_to_matrix(torch.from_numpy(d.q)).numpy(), d.R, atol=1e-5
        )
        assert len(d.cads) == min(3, len(db.ids(d.category)))
        assert db.get(d.cad_id).category == d.category
        samples = db.get(d.cad_id).samples
        np.testing.assert_allclose(d.extents, d.s * (samples.max(0) - samples.min(0)), rtol=1e-6)
    assert set(pipeline.last_timings) == {"preprocess", "engine", "postprocess", "retrieval"}


def test_a_larger_image_maps_engine_results_back_to_its_pixels(
    pipeline: Pipeline, assets: dict
) -> None:
    frame = assets["frames"][1]
    large_rgb = np.repeat(np.repeat(frame.rgb, 2, axis=0), 2, axis=1)
    K2 = frame.K.copy()
    K2[:2, :2] *= 2
    K2[:2, 2] = 2 * (K2[:2, 2] + 0.5) - 0.5
    engine_image, engine_K, _ = fit_image(large_rgb, K2, SIZE)
    np.testing.assert_allclose(engine_K, frame.K, atol=1e-4)  # same camera at engine size
    out = pipeline.backend(engine_image, engine_K)
    detections = pipeline(large_rgb, K2)
    real = out.classes > 0
    order = np.argsort(-out.scores[real], kind="stable")
    assert len(detections) == real.sum()
    for d, index in zip(detections, np.flatnonzero(real)[order], strict=True):
        np.testing.assert_allclose(d.box, np.clip(2 * out.boxes[index], 0, [256, 192, 256, 192]))
        np.testing.assert_allclose(d.t, out.t[index], rtol=1e-6)
        assert d.category == pipeline.categories[out.classes[index] - 1]
        assert d.mask.shape == (2 * SIZE[0], 2 * SIZE[1])


def test_other_aspect_ratios_run(pipeline: Pipeline, assets: dict) -> None:
    frame = assets["frames"][0]
    square = frame.rgb[:, 16:112]
    K = frame.K.copy()
    K[0, 2] -= 16
    detections = pipeline(square, K)
    assert all(d.mask.shape == (96, 96) for d in detections)


def test_torch_and_onnxruntime_agree(pipeline: Pipeline, assets: dict) -> None:
    onnx = Pipeline(
        create_backend(assets["model"], "onnxruntime", input_size=SIZE, cache_dir=assets["root"]),
        pipeline.db,
        score_threshold=0.0,
    )
    for frame in assets["frames"]:
        a, b = pipeline(frame.rgb, frame.K), onnx(frame.rgb, frame.K)
        assert [d.category for d in a] == [d.category for d in b]
        assert [d.cad_id for d in a] == [d.cad_id for d in b]
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x.box, y.box, atol=0.5)
            np.testing.assert_allclose(x.t, y.t, atol=0.005)
            cos = (np.trace(x.R.T @ y.R) - 1) / 2
            assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 0.5


@pytest.mark.parametrize(
    ("image", "K", "message"),
    [
        (np.zeros((96, 128), np.uint8), np.eye(3), "H, W, 3"),
        (np.zeros((96, 128, 3), np.float64), np.eye(3), "uint8"),
        (np.zeros((96, 128, 3), np.uint8), np.full((3, 3), np.inf), "finite"),
        (np.zeros((96, 128, 3), np.uint8), np.diag([0.0, 1.0, 1.0]), "fx"),
    ],
)
def test_bad_inputs_raise(pipeline: Pipeline, image, K, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pipeline(image, K)


def test_database_without_this_models_embeddings_is_refused(assets: dict, tmp_path: Path) -> None:
    with CadDatabase.create(tmp_path / "db") as db:
        build_procedural(db, 1, 0, progress=False)
    backend = create_backend(assets["model"], "torch", input_size=SIZE)
    with pytest.raises(PipelineError, match="db embed"):
        Pipeline(backend, CadDatabase.open(tmp_path / "db", readonly=True))


def test_the_engine_is_built_with_the_pipeline_score_threshold(assets: dict) -> None:
    built = Pipeline.from_dirs(assets["model"], assets["db"], backend="torch", score_threshold=0.4)
    assert built.score_threshold == built.backend.score_threshold == 0.4
    strict = create_backend(assets["model"], "torch", input_size=SIZE, score_threshold=0.4)
    with pytest.raises(PipelineError, match=r"export it again with `--score-threshold 0\.2`"):
        Pipeline(strict, built.db, score_threshold=0.2)


def test_infer_cli_writes_json_and_overlay(assets: dict, tmp_path: Path, capsys) -> None:
    frame = assets["frames"][0]
    image = tmp_path / "frame.png"
    Image.fromarray(frame.rgb).save(image)
    (fx, _, cx), (_, fy, cy) = frame.K[:2]
    code = main(
        ["infer", str(image), "--fx", str(fx), "--fy", str(fy), "--cx", str(cx), "--cy", str(cy),
         "--model", str(assets["model"]), "--db", str(assets["db"]), "--backend", "torch",
         "--score-threshold", "0", "--json", str(tmp_path / "out.json"),
         "--overlay", str(tmp_path / "overlay.png")]
    )  # fmt: skip
    assert code == 0
    detections = json.loads((tmp_path / "out.json").read_text())["detections"]
    assert detections and {"category", "score", "box", "t", "q", "s", "cad_id"} <= set(
        detections[0]
    )
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape == frame.rgb.shape and not np.array_equal(overlay, frame.rgb)
    assert "objects (torch" in capsys.readouterr().out


def test_infer_cli_names_an_unreadable_image(assets: dict, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code = main(["infer", str(bad), "--fx", "1", "--fy", "1", "--cx", "0", "--cy", "0",
                 "--model", str(assets["model"]), "--db", str(assets["db"])])  # fmt: skip
    assert code == 2
    assert "bad.png: not a readable image" in capsys.readouterr().err
