"""Weighted Procrustes: known answers, scipy reference, Horn vs SVD, degeneracy, gradients, ONNX."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cad_perception.geometry.procrustes import ProcrustesResult, procrustes_horn, procrustes_svd
from cad_perception.geometry.rotations import geodesic_angle, random_rotations

SOLVERS = [procrustes_svd, procrustes_horn]
DTYPES = [torch.float32, torch.float64]
HORN_VS_SVD_DEG = 0.05


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _transform(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points (B, N, 3) -> R points + t, for R (B, 3, 3), t (B, 3)."""
    return points @ R.transpose(-1, -2) + t[:, None, :]


def _rigid_problem(
    seed: int, batch: int, n: int, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 (src, dst, weights, R, t) with dst = R src + t (+ Gaussian noise), off-centre."""
    g = _generator(seed)
    R = random_rotations(batch, g, torch.float64)
    t = 3 * torch.randn(batch, 3, generator=g, dtype=torch.float64)
    src = torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    src = src + torch.randn(batch, 1, 3, generator=g, dtype=torch.float64)
    weights = 0.1 + torch.rand(batch, n, generator=g, dtype=torch.float64)
    dst = _transform(src, R, t) + noise * torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    return src, dst, weights, R, t


def _three_cluster_problem(
    seed: int, batch: int, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ill-conditioned float64 (src, dst, weights): tight clusters (sigma 1e-3) at 3 centres."""
    g = _generator(seed)
    centres = torch.randn(batch, 3, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch, n), generator=g)
    src = centres.gather(1, labels[..., None].expand(batch, n, 3))
    src = src + 1e-3 * torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    R = random_rotations(batch, g, torch.float64)
    t = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    dst = _transform(src, R, t) + 1e-3 * torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    weights = torch.rand(batch, n, generator=g, dtype=torch.float64)
    return src, dst, weights


def _weighted_mean(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Points (B, N, 3), weights (B, N) -> weighted centroids (B, 3)."""
    return (weights[..., None] * points).sum(1) / weights.sum(1)[:, None]


def _degrees(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(geodesic_angle(R1.double(), R2.double()))


def _scipy_rotations(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Reference R (B, 3, 3) from float64 inputs: weighted centring, Rotation.align_vectors."""
    src_centred = (src - _weighted_mean(src, weights)[:, None]).numpy()
    dst_centred = (dst - _weighted_mean(dst, weights)[:, None]).numpy()
    rotations = [
        Rotation.align_vectors(b, a, weights=w)[0].as_matrix()
        for a, b, w in zip(src_centred, dst_centred, weights.numpy(), strict=True)
    ]
    return torch.from_numpy(np.stack(rotations))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_rigid_transform_exactly(solver, dtype):
    src, dst, weights, R, t = _rigid_problem(seed=0, batch=64, n=20)
    result = solver(src.to(dtype), dst.to(dtype), weights.to(dtype))

    assert isinstance(result, ProcrustesResult)
    assert result.R.dtype == dtype and result.t.dtype == dtype
    assert result.R.shape == (64, 3, 3) and result.t.shape == (64, 3)
    assert result.valid.dtype == torch.bool and result.valid.all()
    angle_tol, t_tol = (1e-9, 1e-9) if dtype == torch.float64 else (2e-3, 2e-4)
    assert _degrees(result.R, R).max() < angle_tol
    torch.testing.assert_close(result.t.double(), t, atol=t_tol, rtol=0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_rotation_of_minimal_three_point_problem(solver):
    src, dst, weights, R, t = _rigid_problem(seed=1, batch=16, n=3)
    result = solver(src, dst, weights)
    assert result.valid.all()
    assert _degrees(result.R, R).max() < 1e-9
    torch.testing.assert_close(result.t, t, atol=1e-9, rtol=0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_rotation_of_similarity_transform(solver):
    # dst = s R src + t: the best rigid fit keeps R; t maps the weighted centroids onto each other.
    src, _, weights, R, t = _rigid_problem(seed=2, batch=64, n=20)
    scale = 0.5 + 1.5 * torch.rand(64, 1, 1, generator=_generator(3), dtype=torch.float64)
    dst = _transform(scale * src, R, t)
    result = solver(src, dst, weights)

    assert _degrees(result.R, R).max() < 1e-9
    expected_t = (
        _weighted_mean(dst, weights) - (R @ _weighted_mean(src, weights)[..., None])[..., 0]
    )
    torch.testing.assert_close(result.t, expected_t, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_matches_scipy_align_vectors_with_noise(solver, dtype):
    src, dst, weights, _, _ = _rigid_problem(seed=4, batch=16, n=25, noise=0.2)
    src, dst, weights = src.to(dtype), dst.to(dtype), weights.to(dtype)
    result = solver(src, dst, weights)

    src, dst, weights = src.double(), dst.double(), weights.double()
    expected = _scipy_rotations(src, dst, weights)
    angle_tol = 1e-7 if dtype == torch.float64 else 2e-3
    assert _degrees(result.R, expected).max() < angle_tol
    src_mean, dst_mean = _weighted_mean(src, weights), _weighted_mean(dst, weights)
    expected_t = dst_mean - (expected @ src_mean[..., None])[..., 0]
    torch.testing.assert_close(result.t.double(), expected_t, atol=1e-4, rtol=0)


def test_horn_matches_svd_in_float32_on_random_problems():
    src, dst, weights, _, _ = _rigid_problem(seed=5, batch=512, n=30, noise=0.3)
    inputs = [x.float() for x in (src, dst, weights)]
    svd, horn = procrustes_svd(*inputs), procrustes_horn(*inputs)

    assert svd.valid.all() and horn.valid.all()
    assert _degrees(horn.R, svd.R).max() < HORN_VS_SVD_DEG
    torch.testing.assert_close(horn.t, svd.t, atol=1e-3, rtol=0)


def test_horn_matches_svd_in_float32_on_three_tight_clusters():
    inputs = [x.float() for x in _three_cluster_problem(seed=6, batch=512, n=30)]
    svd, horn = procrustes_svd(*inputs), procrustes_horn(*inputs)

    assert torch.equal(svd.valid, horn.valid)
    assert svd.valid.float().mean() > 0.95  # only nearly collinear centres are rejected
    both = svd.valid
    assert _degrees(horn.R[both], svd.R[both]).max() < HORN_VS_SVD_DEG
    torch.testing.assert_close(horn.t[both], svd.t[both], atol=1e-3, rtol=0)


def test_horn_stays_close_to_svd_in_float32_on_the_thinnest_valid_clouds():
    # Rods 1.2 % as thick as long sit just above the degeneracy threshold (s2 / s1 ~ 1.4e-4):
    # the float32 error peaks here, and fewer squarings (16) would not converge.
    g = _generator(19)
    rods = torch.randn(512, 30, 3, generator=g, dtype=torch.float64)
    rods = rods * torch.tensor([1.0, 0.012, 0.012], dtype=torch.float64)
    src = rods @ random_rotations(512, g, torch.float64) + torch.randn(512, 1, 3, generator=g)
    R, t = random_rotations(512, g, torch.float64), torch.randn(512, 3, generator=g)
    dst = _transform(src, R, t) + 1e-4 * torch.randn(512, 30, 3, generator=g)
    weights = torch.rand(512, 30, generator=g)
    inputs = [x.float() for x in (src, dst, weights)]
    svd, horn = procrustes_svd(*inputs), procrustes_horn(*inputs)

    assert torch.equal(svd.valid, horn.valid)
    assert 0.9 < svd.valid.float().mean() < 1.0  # the threshold is in play
    assert _degrees(horn.R[svd.valid], svd.R[svd.valid]).max() < 0.1


@pytest.mark.parametrize("solver", SOLVERS)
def test_mirrored_points_give_a_proper_rotation(solver):
    # The best orthogonal map is a reflection; the solvers must return the best rotation.
    src, _, weights, R, t = _rigid_problem(seed=7, batch=32, n=20)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    dst = _transform(src @ mirror, R, t)
    result = solver(src, dst, weights)

    det = torch.linalg.det(result.R)
    torch.testing.assert_close(det, torch.ones_like(det), atol=1e-9, rtol=0)
    assert _degrees(result.R, _scipy_rotations(src, dst, weights)).max() < 1e-6


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_weight_outliers_are_ignored(solver):
    src, dst, weights, R, t = _rigid_problem(seed=8, batch=16, n=20)
    g = _generator(9)
    outliers_src = 5 * torch.randn(16, 10, 3, generator=g, dtype=torch.float64)
    outliers_dst = 5 * torch.randn(16, 10, 3, generator=g, dtype=torch.float64)
    all_src, all_dst = torch.cat((src, outliers_src), 1), torch.cat((dst, outliers_dst), 1)

    ignored = solver(all_src, all_dst, torch.cat((weights, torch.zeros(16, 10)), 1))
    assert _degrees(ignored.R, R).max() < 1e-9
    torch.testing.assert_close(ignored.t, t, atol=1e-9, rtol=0)
    # Counter-check: the same outliers with weight 1 do move the solution.
    counted = solver(all_src, all_dst, torch.cat((weights, torch.ones(16, 10)), 1))
    assert _degrees(counted.R, R).min() > 1.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_negative_weights_act_as_zero(solver):
    src, dst, weights, _, _ = _rigid_problem(seed=10, batch=8, n=20, noise=0.3)
    negative, zero = weights.clone(), weights.clone()
    negative[:, :5], zero[:, :5] = -2.0, 0.0
    a, b = solver(src, dst, negative), solver(src, dst, zero)
    torch.testing.assert_close(a.R, b.R, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.t, b.t, atol=1e-12, rtol=0)
    assert not torch.allclose(a.R, solver(src, dst, weights).R, atol=1e-3)


def _mixed_batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[bool]]:
    """A batch (src, dst, weights) interleaving generic and degenerate entries, and validity."""
    n = 12
    src, dst, weights, _, _ = _rigid_problem(seed=11, batch=9, n=n, noise=0.05)
    along = torch.randn(n, 1, generator=_generator(12), dtype=torch.float64)
    line = torch.tensor([1.0, 2.0, -0.5]) + along * torch.tensor([0.6, -0.3, 0.74])
    weights[1] = 0.0  # all-zero weights
    weights[3, 2:] = 0.0  # two weighted points
    src[4] = torch.tensor([0.3, -1.2, 2.5])  # coincident source points
    src[5] = line  # collinear source points, generic destination points
    dst[6] = line  # generic source points, collinear destination points
    weights[8] = 1e-9  # spread points, but every weight below WEIGHT_EPS
    valid = [True, False, True, False, False, False, False, True, False]
    return src.to(dtype), dst.to(dtype), weights.to(dtype), valid


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_degenerate_entries_are_invalid_identity_and_do_not_contaminate(solver, dtype):
    src, dst, weights, expected_valid = _mixed_batch(dtype)
    result = solver(src, dst, weights)

    assert result.valid.tolist() == expected_valid
    assert torch.isfinite(result.R).all() and torch.isfinite(result.t).all()
    invalid = ~result.valid
    identities = torch.eye(3, dtype=dtype).expand(int(invalid.sum()), 3, 3)
    torch.testing.assert_close(result.R[invalid], identities)
    assert (result.t[invalid] == 0).all()
    for i in torch.nonzero(result.valid)[:, 0].tolist():
        alone = solver(src[i : i + 1], dst[i : i + 1], weights[i : i + 1])
        torch.testing.assert_close(result.R[i : i + 1], alone.R)
        torch.testing.assert_close(result.t[i : i + 1], alone.t)


@pytest.mark.parametrize("solver", SOLVERS)
def test_fewer_than_three_points_are_invalid(solver):
    src, dst, weights, _, _ = _rigid_problem(seed=13, batch=4, n=2)
    result = solver(src, dst, weights)
    assert not result.valid.any()
    assert torch.equal(result.R, torch.eye(3, dtype=torch.float64).expand(4, 3, 3))
    assert (result.t == 0).all()


@pytest.mark.parametrize("solver", SOLVERS)
def test_gradients_are_finite_and_zero_for_degenerate_entries(solver):
    src, dst, weights, expected_valid = _mixed_batch(torch.float32)
    src, dst, weights = (x.clone().requires_grad_() for x in (src, dst, weights))
    result = solver(src, dst, weights)
    g = _generator(14)
    loss = (result.R * torch.randn(9, 3, 3, generator=g)).sum() + (
        result.t * torch.randn(9, 3, generator=g)
    ).sum()
    loss.backward()

    valid = torch.tensor(expected_valid)
    for grad in (src.grad, dst.grad, weights.grad):
        assert torch.isfinite(grad).all()
        assert (grad[~valid] == 0).all()
        assert (grad[valid].abs().flatten(1).amax(1) > 0).all()


def test_horn_gradients_match_svd_gradients():
    src, dst, weights, _, _ = _rigid_problem(seed=15, batch=8, n=30, noise=0.1)
    g = _generator(16)
    loss_R = torch.randn(8, 3, 3, generator=g, dtype=torch.float64)
    loss_t = torch.randn(8, 3, generator=g, dtype=torch.float64)
    grads = []
    for solver in SOLVERS:
        inputs = [x.clone().requires_grad_() for x in (src, dst, weights)]
        result = solver(*inputs)
        ((result.R * loss_R).sum() + (result.t * loss_t).sum()).backward()
        grads.append([x.grad for x in inputs])
    for svd_grad, horn_grad in zip(*grads, strict=True):
        torch.testing.assert_close(horn_grad, svd_grad, atol=1e-9, rtol=1e-7)


class _HornModule(torch.nn.Module):
    def forward(self, src, dst, weights):
        return tuple(procrustes_horn(src, dst, weights))


# The legacy (TorchScript) exporter is the project's choice (ENVIRONMENT.md); its tracer warns
# about the Python shape checks and about its own deprecation.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_horn_exports_to_onnx_and_matches_torch(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is needed for the export check")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the export")
    src, dst, weights, _ = _mixed_batch(torch.float32)
    path = tmp_path / "horn.onnx"
    names = ["src", "dst", "weights"]
    axes = {name: {0: "batch", 1: "points"} for name in names}
    torch.onnx.export(
        _HornModule(), (src, dst, weights), path, dynamo=False, opset_version=17,
        input_names=names, output_names=["R", "t", "valid"], dynamic_axes=axes,
    )  # fmt: skip
    model = onnx.load(path)
    onnx.checker.check_model(model)

    # Run on a different batch size and point count, generic and degenerate entries mixed.
    run_src, run_dst, run_weights, _, _ = _rigid_problem(seed=17, batch=5, n=33, noise=0.2)
    run_weights[2] = 0.0
    run_inputs = [x.float() for x in (run_src, run_dst, run_weights)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    R, t, valid = session.run(None, {n: x.numpy() for n, x in zip(names, run_inputs, strict=True)})
    expected = procrustes_horn(*run_inputs)
    np.testing.assert_allclose(R, expected.R.numpy(), atol=1e-4)
    np.testing.assert_allclose(t, expected.t.numpy(), atol=1e-4)
    np.testing.assert_array_equal(valid, expected.valid.numpy())
    assert valid.tolist() == [True, True, False, True, True]


def _points(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


@pytest.mark.parametrize(
    ("src", "dst", "weights"),
    [
        (_points(2, 5, 3), _points(2, 4, 3), _points(2, 5)),  # N differs
        (_points(2, 5, 3), _points(3, 5, 3), _points(2, 5)),  # B differs
        (_points(5, 3), _points(5, 3), _points(5)),  # no batch dimension
        (_points(2, 5, 2), _points(2, 5, 2), _points(2, 5)),  # 2D points
        (_points(2, 5, 3), _points(2, 5, 3), _points(2, 4)),  # weights N differs
        (_points(2, 5, 3), _points(2, 5, 3), _points(2, 5, 1)),  # weights with a trailing dim
        (_points(2, 5, 3), _points(2, 5, 3).double(), _points(2, 5)),  # dtypes differ
        (_points(2, 5, 3).long(), _points(2, 5, 3).long(), _points(2, 5)),  # not floating
    ],
)
@pytest.mark.parametrize("solver", SOLVERS)
def test_rejects_bad_inputs(solver, src, dst, weights):
    with pytest.raises(ValueError):
        solver(src, dst, weights)
