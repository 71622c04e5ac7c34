import numpy as np
import pytest

from cad_perception.cad import search
from cad_perception.cad.search import SearchResult, VectorIndex


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, k) indices and Euclidean distances by sorting every float64 distance."""
    distances = np.linalg.norm(
        queries[:, None, :].astype(np.float64) - vectors[None, :, :].astype(np.float64), axis=-1
    )
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, 1)


def random_index(rng: np.random.Generator, count: int, dim: int) -> VectorIndex:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    return VectorIndex([f"cad{i}" for i in range(count)], vectors)


@pytest.mark.parametrize(("count", "dim", "seed"), [(1, 3, 0), (7, 8, 1), (300, 64, 2)])
def test_search_equals_brute_force(count, dim, seed):
    rng = np.random.default_rng(seed)
    index = random_index(rng, count, dim)
    queries = rng.standard_normal((6, dim)).astype(np.float32)
    result = index.search(queries, 5)
    order, distances = brute_force(index.vectors, queries, 5)
    assert result.ids == [[f"cad{i}" for i in row] for row in order]
    np.testing.assert_allclose(result.distances, distances, rtol=1e-5, atol=1e-5)
    assert result.distances.dtype == np.float32
    assert result.metric == "l2"


def test_query_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    index = random_index(rng, 50, 4)
    queries = rng.standard_normal((9, 4)).astype(np.float32)
    whole = index.search(queries, 3)
    monkeypatch.setattr(search, "_MAX_DISTANCE_ELEMENTS", 100)  # two queries per block
    blocked = index.search(queries, 3)
    assert blocked.ids == whole.ids
    np.testing.assert_array_equal(blocked.distances, whole.distances)


def test_a_query_equal_to_a_vector_finds_it_at_distance_zero():
    rng = np.random.default_rng(4)
    index = random_index(rng, 20, 16)
    result = index.search(index.vectors[[7, 3]], 1)
    assert result.ids == [["cad7"], ["cad3"]]
    np.testing.assert_allclose(result.distances, 0.0, atol=1e-6)


def test_k_larger_than_the_index_returns_everything_in_order():
    index = VectorIndex(["a", "b", "c"], np.array([[0.0], [3.0], [1.0]], dtype=np.float32))
    result = index.search(np.array([[0.5]]), 10)
    assert result.ids == [["a", "c", "b"]]
    np.testing.assert_allclose(result.distances, [[0.5, 0.5, 2.5]])


def test_an_empty_index_returns_empty_rows():
    index = VectorIndex([], np.zeros((0, 4), dtype=np.float32))
    result = index.search(np.zeros((2, 4)), 3)
    assert result == SearchResult([[], []], result.distances)
    assert result.distances.shape == (2, 0)


@pytest.mark.parametrize(
    ("queries", "k", "message"),
    [
        (np.zeros(4), 1, "shape"),
        (np.zeros((1, 3)), 1, "dimension 3, expected 4"),
        (np.full((1, 4), np.nan), 1, "finite"),
        (np.zeros((1, 4)), 0, "k must be positive"),
    ],
)
def test_bad_queries_raise_value_errors(queries, k, message):
    index = random_index(np.random.default_rng(5), 5, 4)
    with pytest.raises(ValueError, match=message):
        index.search(queries, k)


def test_ids_must_match_the_vectors():
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        VectorIndex(["a", "b"], np.zeros((3, 2)))


def test_the_faiss_path_gives_the_numpy_answer(monkeypatch):
    pytest.importorskip("faiss", reason="faiss is an optional accelerator, not installed here")
    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((200, 32)).astype(np.float32)
    queries = rng.standard_normal((5, 32)).astype(np.float32)
    expected = VectorIndex([str(i) for i in range(200)], vectors).search(queries, 5)
    monkeypatch.setattr(search, "FAISS_MIN_SIZE", 1)
    index = VectorIndex([str(i) for i in range(200)], vectors)
    assert index._faiss_index is not None
    result = index.search(queries, 5)
    assert result.ids == expected.ids
    np.testing.assert_allclose(result.distances, expected.distances, rtol=1e-4)
