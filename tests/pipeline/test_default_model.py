"""The shipped model on a small fresh synthetic test set: accuracy above a floor, so a broken,
untrained or swapped model fails here.

On these 16 scenes (score threshold 0.05) the shipped batch-norm checkpoint (stage 4 of
models/default/README.md) measured detection AP50 56.2 % with 31 of 42 objects matched (the
GroupNorm model before it: 44.6 %, 30; step 1800: 34.5 %, 29); a seeded untrained network
(measured for an earlier, wider configuration) got 0 % and matched none. Its alignment
accuracy is still about 2 % (models/default/README.md), so the floors are on detection; raise
them, and add alignment floors, as the model improves.

The same scenes through the onnxruntime engines (float32 and INT8, exported into a temporary
cache) must score like the eager network: the deployed engine is what robots run."""

from pathlib import Path

import pytest

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.factory import CACHE_ENV
from cad_perception.pipeline.defaults import default_model_dir, ensure_default_db
from cad_perception.pipeline.evaluate import evaluate
from cad_perception.synth.dataset import write_dataset
from cad_perception.synth.generate import SceneFrames
from cad_perception.synth.scene import SceneConfig

SCENES = 16
SEED = 95000
"""Never used for training (training seeds: models/default/README.md)."""

FLOORS = {
    "detection_ap50": 14.0,
    "matched_objects": 10,
}
"""Lowest acceptable figures on these scenes (a quarter to a third of the measured ones)."""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model folder, default database, dataset folder) of the test scenes."""
    try:
        model_dir = default_model_dir()
    except FileNotFoundError as err:
        pytest.fail(f"the shipped model is missing: {err}")
    db_dir = ensure_default_db(model_dir)
    data_dir = tmp_path_factory.mktemp("default_model") / "data"
    with CadDatabase.open(db_dir, readonly=True) as db:
        frames = SceneFrames(
            db=db,
            scenes=SCENES,
            seed=SEED,
            config=SceneConfig(image_size=(240, 320)),
            split="train",
        )
        write_dataset(frames, data_dir, progress=False)
    return Path(model_dir), Path(db_dir), data_dir


@pytest.fixture(scope="module")
def report(scenes: tuple[Path, Path, Path]) -> dict:
    return evaluate(*scenes, score_threshold=0.05, progress=False)


def test_shipped_model_is_above_the_floor(report: dict) -> None:
    assert report["gt_objects"] >= SCENES
    for key, floor in FLOORS.items():
        assert report[key] >= floor, f"{key} {report[key]:.1f} is below the floor {floor}"


ENGINE_TOLERANCES = {
    # backend: (matched objects, AP50 points, median t metres, median R degrees, accuracy points)
    "onnxruntime": (1, 1.0, 0.01, 1.0, 2.0),
    "onnxruntime-int8": (3, 5.0, 0.05, 5.0, 5.0),
}
"""How far an engine's figures may stray from the eager network's on these scenes: float32
agrees up to rounding; INT8 (engine/quantize.py) trades a little accuracy for speed."""


@pytest.mark.parametrize("backend", sorted(ENGINE_TOLERANCES))
def test_engines_score_like_the_eager_network(
    scenes: tuple[Path, Path, Path], report: dict, tmp_path_factory, backend: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "engine_cache"))
        engine = evaluate(*scenes, score_threshold=0.05, backend=backend, progress=False)
    matched, ap50, translation, rotation, accuracy = ENGINE_TOLERANCES[backend]
    assert engine["backend"] == backend and report["backend"] == "torch"
    assert engine["noc_l1_error"] is None and engine["depth_abs_error_m"] is None
    assert abs(engine["matched_objects"] - report["matched_objects"]) <= matched
    assert engine["detection_ap50"] == pytest.approx(report["detection_ap50"], abs=ap50)
    assert engine["median_translation_error_m"] == pytest.approx(
        report["median_translation_error_m"], abs=translation
    )
    assert engine["median_rotation_error_deg"] == pytest.approx(
        report["median_rotation_error_deg"], abs=rotation
    )
    for key in ("class_avg", "instance_avg", "retrieval_class_avg"):
        assert engine[key] == pytest.approx(report[key], abs=accuracy), key


def test_shipped_model_files_are_small_and_safe() -> None:
    model_dir = Path(default_model_dir())
    weights = model_dir / "model.safetensors"
    assert weights.stat().st_size <= 60 * 2**20
    assert (model_dir / "config.json").is_file() and (model_dir / "README.md").is_file()
    assert not list(model_dir.glob("*.pt")) and not list(model_dir.glob("*.pth"))
