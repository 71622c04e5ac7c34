"""The training loop on a generated mini dataset: the loss decreases, checkpoints and the CSV
log are written, resume repeats an uninterrupted run exactly, and the helpers' known answers."""

import csv
import dataclasses
import shutil

import pytest
import safetensors.torch
import torch

from cad_perception.model.checkpoint import WEIGHTS_FILE, load_training_state
from cad_perception.model.errors import ModelError, TrainingDataError
from cad_perception.model.roca import LOSS_KEYS
from cad_perception.model.train import (
    LOG_COLUMNS,
    BalancedBatches,
    TrainConfig,
    checkpoints,
    image_weights,
    learning_rate,
    train,
)
from cad_perception.synth.dataset import RocaDataset
from tests.model.mini_dataset import build_mini_dataset, mini_config

STEPS = 16
CONFIG = TrainConfig(
    steps=STEPS, batch_size=2, lr=1e-3, warmup=2, checkpoint_every=12, log_every=4, seed=3
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return build_mini_dataset(tmp_path_factory.mktemp("mini"))


@pytest.fixture(scope="module")
def run(mini, tmp_path_factory):
    data_dir, db_path = mini
    out_dir = tmp_path_factory.mktemp("run")
    torch.set_num_threads(2)
    result = train(mini_config(), CONFIG, data_dir, db_path, out_dir, progress=False)
    return result, out_dir


def test_loss_decreases(run) -> None:
    result, _ = run
    assert result.first_step == 0 and result.last_step == STEPS
    assert len(result.losses) == STEPS
    first, last = sum(result.losses[:4]) / 4, sum(result.losses[-4:]) / 4
    assert last < 0.9 * first, result.losses


def test_checkpoints_and_log(run) -> None:
    result, out_dir = run
    assert list(checkpoints(out_dir)) == [12, STEPS]
    assert result.checkpoint == out_dir / f"checkpoint-{STEPS:07d}"
    state = load_training_state(result.checkpoint)
    assert state["step"] == STEPS and state["train_config"]["lr"] == CONFIG.lr
    with result.log.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames) == LOG_COLUMNS
    assert [int(row["step"]) for row in rows] == [4, 8, 12, 16]
    for row in rows:
        parts = sum(float(row[key]) for key in LOSS_KEYS)
        assert float(row["total"]) == pytest.approx(parts, rel=1e-5)
        assert float(row["seconds"]) > 0
    expected = sum(result.losses[:4]) / 4
    assert float(rows[0]["total"]) == pytest.approx(expected, rel=1e-5)
    assert float(rows[0]["lr"]) == pytest.approx(
        sum(learning_rate(CONFIG, step) for step in range(4)) / 4
    )


def test_resume_repeats_the_uninterrupted_run(run, mini, tmp_path) -> None:
    result, out_dir = run
    data_dir, db_path = mini
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(out_dir, resumed_dir)
    shutil.rmtree(resumed_dir / f"checkpoint-{STEPS:07d}")  # interrupted after step 12
    resumed = train(
        mini_config(), CONFIG, data_dir, db_path, resumed_dir, resume=True, progress=False
    )
    assert resumed.first_step == 12
    assert resumed.losses == pytest.approx(result.losses[12:], rel=1e-6, abs=1e-6)
    expected = safetensors.torch.load_file(result.checkpoint / WEIGHTS_FILE)
    weights = safetensors.torch.load_file(resumed.checkpoint / WEIGHTS_FILE)
    for key, value in expected.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-5, atol=1e-6)
    with resumed.log.open(newline="") as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == [4, 8, 12, 16]


def test_refuses_to_overwrite_or_resume_nothing(run, mini, tmp_path) -> None:
    _, out_dir = run
    data_dir, db_path = mini
    with pytest.raises(ModelError, match="already holds checkpoints"):
        train(mini_config(), CONFIG, data_dir, db_path, out_dir, progress=False)
    with pytest.raises(ModelError, match="nothing to resume"):
        train(mini_config(), CONFIG, data_dir, db_path, tmp_path, resume=True, progress=False)
    with pytest.raises(ModelError, match="already trained 16 steps"):
        train(mini_config(), CONFIG, data_dir, db_path, out_dir, resume=True, progress=False)


def test_refuses_categories_that_disagree_with_the_network(mini, tmp_path) -> None:
    data_dir, db_path = mini
    config = mini_config()
    reversed_config = dataclasses.replace(
        config,
        categories=config.categories[::-1],
        alignment=dataclasses.replace(
            config.alignment, category_scales=config.alignment.category_scales[::-1]
        ),
    )
    with pytest.raises(TrainingDataError, match="category id 1 is 'bathtub'"):
        train(reversed_config, CONFIG, data_dir, db_path, tmp_path, progress=False)


def test_image_weights_favour_rare_categories(mini) -> None:
    data_dir, _ = mini
    annotations = RocaDataset(data_dir).annotations
    weights = image_weights(annotations)
    counts: dict[int, int] = {}
    for image in annotations.images:
        for category in {a.category_id for a in annotations.of_image(image.id)}:
            counts[category] = counts.get(category, 0) + 1
    for weight, image in zip(weights.tolist(), annotations.images, strict=True):
        present = {a.category_id for a in annotations.of_image(image.id)}
        assert weight == pytest.approx(max(1 / counts[c] for c in present))


def test_balanced_batches_are_reproducible_per_step_and_skip_empty_images() -> None:
    weights = torch.tensor([0.0, 1.0, 0.5, 0.0, 2.0], dtype=torch.float64)
    whole = list(BalancedBatches(weights, 3, seed=1, start=0, stop=50))
    tail = list(BalancedBatches(weights, 3, seed=1, start=40, stop=50))
    assert tail == whole[40:]
    drawn = [index for batch in whole for index in batch]
    assert set(drawn) == {1, 2, 4}
    assert drawn.count(4) > drawn.count(2)
    with pytest.raises(TrainingDataError, match="no image"):
        BalancedBatches(torch.zeros(3), 1, 0, 0, 1)


def test_learning_rate_schedule_known_answers() -> None:
    config = TrainConfig(steps=110, lr=1.0, warmup=10)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 9) == pytest.approx(1.0)
    assert learning_rate(config, 10) == pytest.approx(1.0)
    assert learning_rate(config, 60) == pytest.approx(0.55)
    assert learning_rate(config, 110) == pytest.approx(0.1)


def test_train_config_validation() -> None:
    with pytest.raises(ValueError, match="amp needs a CUDA device"):
        TrainConfig(amp=True)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)


def test_random_backgrounds_take_part_in_training(mini, tmp_path) -> None:
    data_dir, db_path = mini
    losses = []
    for probability in (0.0, 1.0):
        augment = dataclasses.replace(CONFIG.augment, background_probability=probability)
        config = dataclasses.replace(CONFIG, steps=2, augment=augment)
        out_dir = tmp_path / f"p{probability}"
        result = train(mini_config(), config, data_dir, db_path, out_dir, progress=False)
        losses.append(result.losses)
    assert all(torch.isfinite(torch.tensor(run)).all() for run in losses)
    assert losses[0][0] != losses[1][0]  # same seed and batch: only the backgrounds differ
