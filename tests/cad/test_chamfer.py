import numpy as np
import pytest

from cad_perception.cad.chamfer import rank_by_chamfer, single_sided_chamfer


def brute_force(points: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """(N,) mean over points of the distance to the nearest sample, from all pairwise distances."""
    pairwise = np.linalg.norm(points[None, :, None, :] - samples[:, None, :, :], axis=-1)
    return pairwise.min(axis=2).mean(axis=1)


def random_shapes(rng: np.random.Generator, count: int, per_shape: int) -> np.ndarray:
    """(count, per_shape, 3) points on boxes of random proportions inside [-0.5, 0.5]^3."""
    shapes = []
    for _ in range(count):
        half = rng.uniform(0.05, 0.5, size=3)
        points = rng.uniform(-1, 1, size=(per_shape, 3))
        axis = rng.integers(0, 3, size=per_shape)
        points[np.arange(per_shape), axis] = np.sign(points[np.arange(per_shape), axis])
        shapes.append(points * half)
    return np.stack(shapes).astype(np.float32)


@pytest.mark.parametrize("chunk_elements", [1, 1000, 1 << 24])
def test_chamfer_matches_brute_force_whatever_the_chunking(chunk_elements):
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(40, 3))
    samples = random_shapes(rng, 7, 60)
    result = single_sided_chamfer(points, samples, chunk_elements=chunk_elements)
    assert result.shape == (7,)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, brute_force(points, samples.astype(np.float64)), atol=1e-6)


def test_known_answer_point_at_the_centre_of_a_sphere():
    rng = np.random.default_rng(1)
    directions = rng.standard_normal((2, 100, 3))
    sphere = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    samples = sphere * np.array([0.1, 0.4])[:, None, None]
    np.testing.assert_allclose(single_sided_chamfer(np.zeros((1, 3)), samples), [0.1, 0.4])


def test_a_partial_view_of_a_cad_is_not_penalised():
    rng = np.random.default_rng(2)
    cad = random_shapes(rng, 1, 500)[0]
    half = cad[cad[:, 0] > 0]
    assert single_sided_chamfer(half, cad[None])[0] == pytest.approx(0.0, abs=1e-6)
    assert single_sided_chamfer(cad, half[None])[0] > 0.01  # the other direction is penalised


def test_the_source_cad_ranks_first_for_its_own_noisy_subsampled_samples():
    rng = np.random.default_rng(3)
    samples = random_shapes(rng, 12, 400)
    ids = [f"cad{i}" for i in range(12)]
    for source in (0, 5, 11):
        query = samples[source, rng.choice(400, 150, replace=False)]
        query = query + rng.normal(0.0, 0.005, size=query.shape)
        result = rank_by_chamfer(query, ids, samples, k=4)
        assert result.ids[0][0] == f"cad{source}"
        assert result.distances.shape == (1, 4)
        assert np.all(np.diff(result.distances[0]) >= 0)
        np.testing.assert_allclose(
            result.distances[0], np.sort(brute_force(query, samples))[:4], atol=1e-6
        )
        assert result.metric == "chamfer"


def test_rank_by_chamfer_returns_everything_when_k_is_large_and_nothing_for_no_cads():
    samples = random_shapes(np.random.default_rng(4), 3, 20)
    result = rank_by_chamfer(samples[1], ["a", "b", "c"], samples, k=10)
    assert sorted(result.ids[0]) == ["a", "b", "c"]
    assert result.ids[0][0] == "b"
    empty = rank_by_chamfer(samples[1], [], np.zeros((0, 20, 3)), k=3)
    assert empty.ids == [[]]
    assert empty.distances.shape == (1, 0)


@pytest.mark.parametrize(
    ("points", "samples", "message"),
    [
        (np.zeros((5, 2)), np.zeros((1, 4, 3)), "points"),
        (np.zeros((0, 3)), np.zeros((1, 4, 3)), "points"),
        (np.zeros((5, 3)), np.zeros((4, 3)), "samples"),
        (np.zeros((5, 3)), np.zeros((1, 0, 3)), "samples"),
    ],
)
def test_bad_shapes_raise_value_errors(points, samples, message):
    with pytest.raises(ValueError, match=message):
        single_sided_chamfer(points, samples)


def test_ids_must_match_the_samples():
    with pytest.raises(ValueError, match="2 ids for 3"):
        rank_by_chamfer(np.zeros((2, 3)), ["a", "b"], np.zeros((3, 4, 3)), k=1)
