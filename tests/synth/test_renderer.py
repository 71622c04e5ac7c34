import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from cad_perception.geometry.camera import backproject_depth, project
from cad_perception.geometry.pose import inverse_apply_pose
from cad_perception.synth.renderer import GeometryBuffers, RenderObject, camera_rays, render

K = np.array([[90.0, 0.0, 39.5], [0.0, 95.0, 30.5], [0.0, 0.0, 1.0]])
SIZE = (60, 80)
IDENTITY = np.eye(3)


def quad(half_size: float, flip: bool = False) -> trimesh.Trimesh:
    """A square in the z = 0 plane spanning [-half_size, half_size]^2, two triangles."""
    vertices = half_size * np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    return trimesh.Trimesh(vertices, faces[:, ::-1] if flip else faces, process=False)


def unit_box() -> trimesh.Trimesh:
    """An axis-aligned box with extents (3, 2, 1) / sqrt(14): a normalised (diagonal 1) mesh."""
    return trimesh.creation.box(extents=np.array([3.0, 2.0, 1.0]) / np.sqrt(14.0))


def pixel_rays() -> np.ndarray:
    """(H, W, 3) float64 ray directions K^-1 (u, v, 1) through the pixel centres."""
    v, u = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
    pixels = np.stack([u, v, np.ones_like(u)], axis=-1)
    return pixels @ np.linalg.inv(K).T


def procedural_objects() -> list[trimesh.Trimesh]:
    """Normalised procedural furniture meshes (the CAD library's, with part colours)."""
    procedural = pytest.importorskip("cad_perception.cad.procedural")
    from cad_perception.cad.mesh import normalize_mesh

    return [
        normalize_mesh(procedural.generate(category, seed).mesh).mesh
        for category, seed in (("chair", 1), ("table", 2), ("sofa", 3), ("cabinet", 4))
    ]


def test_camera_rays_pass_through_pixel_centres_with_unit_z():
    rays = camera_rays(K, SIZE)
    assert rays.shape == (*SIZE, 6) and rays.dtype == np.float32
    assert (rays[..., :3] == 0).all()
    assert (rays[..., 5] == 1).all()
    uv = project(
        torch.from_numpy(rays[..., 3:].reshape(-1, 3).astype(np.float64)), torch.from_numpy(K)
    ).reshape(*SIZE, 2)
    v, u = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    np.testing.assert_allclose(uv[..., 0].numpy(), u, atol=1e-4)
    np.testing.assert_allclose(uv[..., 1].numpy(), v, atol=1e-4)


@pytest.mark.parametrize("flip", [False, True])
def test_fronto_parallel_plane_has_constant_depth_and_a_normal_towards_the_camera(flip):
    plane = RenderObject(quad(50.0, flip), IDENTITY, np.array([0.0, 0.0, 2.0]), np.ones(3))
    buffers = render([plane], K, SIZE)
    assert isinstance(buffers, GeometryBuffers)
    assert buffers.depth.shape == SIZE and buffers.depth.dtype == np.float32
    np.testing.assert_allclose(buffers.depth, 2.0, rtol=1e-5)
    assert (buffers.instance == 1).all() and buffers.instance.dtype == np.int32
    np.testing.assert_allclose(buffers.normals, np.broadcast_to([0, 0, -1], (*SIZE, 3)), atol=1e-6)
    np.testing.assert_allclose(buffers.noc[..., 2], 0.0, atol=1e-6)  # the quad's own z


def test_tilted_plane_depth_is_the_analytic_ray_plane_intersection():
    R = Rotation.from_euler("xy", [35.0, -25.0], degrees=True).as_matrix()
    point = np.array([0.3, -0.2, 3.0])
    plane = RenderObject(quad(40.0), R, point, np.ones(3))
    buffers = render([], K, SIZE, background=[plane])
    normal = R[:, 2]
    rays = pixel_rays()
    expected_z = (point @ normal) / (rays @ normal)  # t of R (p - point) . n = 0, rays' z = 1
    assert expected_z.min() > 1.0 and np.ptp(expected_z) > 1.0  # a visibly tilted plane
    np.testing.assert_allclose(buffers.depth, expected_z, rtol=1e-5)
    np.testing.assert_allclose(buffers.points, rays * expected_z[..., None], rtol=1e-5, atol=1e-6)


def box_entry_depth(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic (slab method) entry z of every pixel ray into the box [lower, upper] (inf if the
    ray misses) and the ray's margin from the box's silhouette (t_far - t_near, negative when
    missing)."""
    rays = pixel_rays()
    with np.errstate(divide="ignore"):
        t1, t2 = lower / rays, upper / rays
    t_near = np.minimum(t1, t2).max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    return np.where(t_near <= t_far, t_near, np.inf), t_far - t_near


def test_axis_aligned_box_depth_is_exact():
    mesh = unit_box()
    s = np.array([1.5, 0.7, 2.0])  # anisotropic metric size along the box's axes
    t = np.array([0.25, -0.1, 4.0])
    buffers = render([RenderObject(mesh, IDENTITY, t, s)], K, SIZE)
    half = mesh.extents / 2 * s
    expected, margin = box_entry_depth(t - half, t + half)
    clear = np.abs(margin) > 1e-3  # not grazing the silhouette
    inside = np.isfinite(expected)
    assert (inside & clear).sum() > 200 and (~inside & clear).sum() > 1000
    np.testing.assert_allclose(buffers.depth[inside & clear], expected[inside & clear], rtol=1e-5)
    assert (buffers.depth[~inside & clear] == 0).all()
    assert (buffers.instance[~inside & clear] == 0).all()
    assert np.isnan(buffers.noc[~inside & clear]).all()
    assert (buffers.mesh_ids[~inside & clear] == -1).all()
    assert (buffers.face_ids[~inside & clear] == -1).all()


def random_scene(seed: int) -> list[RenderObject]:
    """Procedural objects with random rotations and anisotropic scales, close enough together
    that they occlude each other."""
    rng = np.random.default_rng(seed)
    objects = []
    for index, mesh in enumerate(procedural_objects()):
        R = Rotation.random(random_state=rng).as_matrix()
        s = rng.uniform(0.5, 1.8, size=3)
        t = np.array([0.35 * (index - 1.5), rng.uniform(-0.2, 0.2), 3.0 + 0.5 * index])
        objects.append(RenderObject(mesh, R, t, s))
    return objects


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noc_map_matches_backprojected_depth_through_the_inverse_pose(seed):
    objects = random_scene(seed)
    buffers = render(objects, K, SIZE)
    points = backproject_depth(torch.from_numpy(buffers.depth), torch.from_numpy(K).float())
    for index, item in enumerate(objects):
        mask = buffers.instance == index + 1
        assert mask.sum() > 20, f"object {index} barely visible"
        pose = (torch.from_numpy(a).float() for a in (item.R, item.t, item.s))
        canonical = inverse_apply_pose(points[torch.from_numpy(mask)], *pose).numpy()
        np.testing.assert_allclose(buffers.noc[mask], canonical, atol=1e-4, rtol=0)
        np.testing.assert_allclose(
            buffers.local_points[mask], buffers.noc[mask] * item.s, rtol=1e-6, atol=1e-7
        )
    # Some object hides part of another: it covers fewer pixels than when rendered alone.
    alone = [(render([item], K, SIZE).instance == 1).sum() for item in objects]
    together = [(buffers.instance == i + 1).sum() for i in range(len(objects))]
    assert any(a > b for a, b in zip(alone, together, strict=True))


@pytest.mark.parametrize("seed", [0, 3])
def test_nocs_are_finite_inside_the_unit_cube_on_objects_and_nan_elsewhere(seed):
    buffers = render(random_scene(seed), K, SIZE)
    on_object = buffers.instance > 0
    assert buffers.noc.shape == (*SIZE, 3) and buffers.noc.dtype == np.float32
    assert np.isfinite(buffers.noc[on_object]).all()
    assert np.abs(buffers.noc[on_object]).max() <= 0.5 + 1e-6
    assert np.isnan(buffers.noc[~on_object]).all()
    assert np.abs(buffers.noc[on_object]).max() > 0.4  # spans the cube, not squashed


def test_face_ids_name_the_hit_triangle():
    objects = random_scene(4)
    buffers = render(objects, K, SIZE)
    for index, item in enumerate(objects):
        mask = buffers.instance == index + 1
        assert (buffers.mesh_ids[mask] == index).all()
        faces = buffers.face_ids[mask]
        # A canonical face normal n maps to R diag(1/s) n in the camera frame.
        normals = (item.mesh.face_normals[faces] / item.s) @ item.R.T
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        cosines = np.abs(np.einsum("nc,nc->n", normals, buffers.normals[mask]))
        assert cosines.min() > 1 - 1e-4


@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearest_object_wins_where_objects_overlap(near_first):
    mesh = unit_box()
    near = RenderObject(mesh, IDENTITY, np.array([-0.1, 0.0, 2.0]), np.full(3, 0.8))
    far = RenderObject(mesh, IDENTITY, np.array([0.1, 0.05, 4.0]), np.full(3, 3.0))
    objects = [near, far] if near_first else [far, near]
    near_id = 1 if near_first else 2
    buffers = render(objects, K, SIZE)
    near_alone = render([near], K, SIZE)
    far_alone = render([far], K, SIZE)
    overlap = (near_alone.instance == 1) & (far_alone.instance == 1)
    assert overlap.sum() > 100
    assert (buffers.instance[overlap] == near_id).all()
    np.testing.assert_array_equal(buffers.depth[overlap], near_alone.depth[overlap])
    np.testing.assert_array_equal(buffers.noc[overlap], near_alone.noc[overlap])
    only_far = (far_alone.instance == 1) & (near_alone.instance == 0)
    assert only_far.sum() > 100 and (buffers.instance[only_far] == 3 - near_id).all()


def test_background_occludes_and_renders_depth_but_has_no_instance_or_noc():
    floor = RenderObject(quad(20.0), IDENTITY, np.array([0.0, 0.0, 5.0]), np.ones(3))
    wall = RenderObject(quad(0.3), IDENTITY, np.array([0.4, 0.0, 1.5]), np.ones(3))  # in front
    box = RenderObject(unit_box(), IDENTITY, np.array([0.0, 0.0, 3.0]), np.full(3, 2.0))
    buffers = render([box], K, SIZE, background=[floor, wall])
    box_alone = render([box], K, SIZE)
    on_box = buffers.instance == 1
    assert on_box.sum() > 100
    background = buffers.instance == 0
    assert background.sum() > 100 and (buffers.depth[background] > 0).all()
    assert np.isnan(buffers.noc[background]).all()
    assert set(np.unique(buffers.mesh_ids[background])) == {1, 2}
    assert np.isfinite(buffers.local_points[background]).all()
    hidden = (box_alone.instance == 1) & (buffers.mesh_ids == 2)  # the wall hides the box
    assert hidden.sum() > 20
    np.testing.assert_allclose(buffers.depth[hidden], 1.5, rtol=1e-5)


def test_an_empty_scene_renders_nothing():
    buffers = render([], K, SIZE)
    assert (buffers.depth == 0).all() and (buffers.instance == 0).all()
    assert np.isnan(buffers.noc).all() and np.isnan(buffers.local_points).all()
    assert (buffers.mesh_ids == -1).all() and (buffers.face_ids == -1).all()
    assert (buffers.normals == 0).all() and (buffers.points == 0).all()


@pytest.mark.parametrize(
    "bad_K",
    [
        np.eye(4),
        np.array([[0.0, 0, 40], [0, 95, 30], [0, 0, 1]]),
        np.array([[90.0, 0, 40], [0, -95, 30], [0, 0, 1]]),
        np.array([[90.0, 0, np.nan], [0, 95, 30], [0, 0, 1]]),
        np.array([[90.0, 0, 40], [0, 95, 30], [0, 0, 2]]),
        np.array([[90.0, 0, 40], [3, 95, 30], [0, 0, 1]]),
    ],
)
def test_invalid_intrinsics_raise(bad_K):
    with pytest.raises(ValueError):
        render([], bad_K, SIZE)
    with pytest.raises(ValueError):
        camera_rays(bad_K, SIZE)


@pytest.mark.parametrize("bad_size", [(0, 80), (60, -1), (60,), (60, 80, 3), (60.5, 80)])
def test_invalid_sizes_raise(bad_size):
    with pytest.raises(ValueError, match="size"):
        render([], K, bad_size)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("t", [0.0, np.nan, 1.0], "finite"),
        ("R", np.full((3, 3), np.inf), "finite"),
        ("s", [1.0, 0.0, 1.0], "s must be > 0"),
        ("s", [1.0, -2.0, 1.0], "s must be > 0"),
        ("R", 2 * np.eye(3), "rotation"),
        ("R", np.diag([1.0, 1.0, -1.0]), "rotation"),
        ("t", [0.0, 1.0], "shape"),
    ],
)
def test_invalid_poses_raise(field, value, message):
    pose = {"R": np.eye(3), "t": np.array([0.0, 0.0, 2.0]), "s": np.ones(3)}
    pose[field] = value
    with pytest.raises(ValueError, match=message):
        RenderObject(unit_box(), **pose)


def test_non_meshes_and_non_render_objects_raise():
    with pytest.raises(ValueError, match="mesh"):
        RenderObject(np.zeros((3, 3)), np.eye(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="RenderObject"):
        render([unit_box()], K, SIZE)
