"""NOCs derived from depth, instance map and poses reproduce the renderer's NOC maps."""

import numpy as np
import pytest

from cad_perception.synth.dataset import RocaDataset
from cad_perception.synth.depth_nocs import nocs_from_depth
from tests.model.mini_dataset import build_mini_dataset


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    data_dir, _ = build_mini_dataset(tmp_path_factory.mktemp("nocs"), scenes=3, seed=5)
    return RocaDataset(data_dir)


def test_derived_nocs_match_the_rendered_ones(mini) -> None:
    compared = 0
    for item in mini:
        derived = nocs_from_depth(
            item["depth"].numpy(),
            item["instance"].numpy(),
            item["K"].numpy(),
            item["instances"].numpy(),
            item["R"].double().numpy(),
            item["t"].double().numpy(),
            item["s"].double().numpy(),
        )
        stored = item["noc"].permute(1, 2, 0).numpy()
        on = item["noc_mask"].numpy() & np.isfinite(derived).all(axis=-1)
        errors = np.abs(derived[on] - stored[on]).max(axis=-1)
        assert on.sum() > 100
        assert np.median(errors) < 1e-3 and np.percentile(errors, 99) < 5e-3
        assert np.all(np.isnan(derived[item["instance"].numpy() == 0]))
        compared += int(on.sum())
    assert compared > 1000


def test_known_answer_for_one_pixel() -> None:
    depth = np.zeros((4, 6), np.float32)
    depth[2, 3] = 2.0
    instance = np.zeros((4, 6), np.int32)
    instance[2, 3] = 7
    K = np.array([[2.0, 0, 1], [0, 2, 1], [0, 0, 1]])
    R = np.array([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])  # 90 degrees about z
    noc = nocs_from_depth(depth, instance, K, np.array([7]), R, np.array([[0, 0, 1.0]]),
                          np.array([[2.0, 4, 1]]))  # fmt: skip
    # pixel (u 3, v 2) at depth 2 -> camera (2, 1, 2); minus t -> (2, 1, 1); R^T -> (1, -2, 1)
    np.testing.assert_allclose(noc[2, 3], [0.5, -0.5, 1.0], atol=1e-6)
    assert np.isnan(noc[0, 0]).all()


def test_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        nocs_from_depth(np.zeros((4, 6)), np.zeros((4, 5)), np.eye(3), np.array([1]),
                        np.eye(3)[None], np.zeros((1, 3)), np.ones((1, 3)))  # fmt: skip
    with pytest.raises(ValueError, match="positive"):
        nocs_from_depth(np.zeros((4, 6)), np.zeros((4, 6)), np.eye(3), np.array([1]),
                        np.eye(3)[None], np.zeros((1, 3)), np.zeros((1, 3)))  # fmt: skip
