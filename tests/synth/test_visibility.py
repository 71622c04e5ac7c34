import numpy as np
import pytest
import trimesh

from cad_perception.synth.renderer import RenderObject, render
from cad_perception.synth.visibility import projected_boxes, unoccluded_pixel_counts

K = np.array([[100.0, 0.0, 79.5], [0.0, 100.0, 59.5], [0.0, 0.0, 1.0]])
SIZE = (120, 160)


def box(centre, extents, yaw: float = 0.0) -> RenderObject:
    """A normalised box mesh posed to the given metric extents and camera-frame centre."""
    extents = np.asarray(extents, dtype=np.float64)
    unit = extents / np.linalg.norm(extents)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return RenderObject(
        trimesh.creation.box(extents=unit), R, np.asarray(centre, float), extents / unit
    )


def test_projected_boxes_bound_the_rendered_pixels():
    objects = [box([0.0, 0.0, 3.0], [1.0, 0.6, 0.5], 0.4), box([-1.2, 0.3, 2.0], [0.3, 0.3, 0.3])]
    boxes, depths = projected_boxes(objects, K, SIZE)
    buffers = render(objects, K, SIZE)
    for index, (u0, v0, u1, v1) in enumerate(boxes):
        rows, columns = np.nonzero(buffers.instance == index + 1)
        assert u0 <= columns.min() and columns.max() <= u1
        assert v0 <= rows.min() and rows.max() <= v1
        assert u1 - u0 <= np.ptp(columns) + 40  # tight-ish: a bounding box, not the image
    assert depths[0, 0] < 3.0 < depths[0, 1]
    # A box straddling the camera plane covers the whole image; one behind the camera none.
    near, outside = box([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), box([30.0, 0.0, 2.0], [1.0, 1.0, 1.0])
    boxes, _ = projected_boxes([near, outside], K, SIZE)
    assert boxes[0].tolist() == [0, 0, 159, 119]
    assert boxes[1, 0] > boxes[1, 2]


def test_unoccluded_counts_equal_renders_of_each_object_alone():
    rng = np.random.default_rng(0)
    for _ in range(5):
        objects = [
            box(
                [rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(2, 5)],
                rng.uniform(0.3, 1.2, size=3),
                rng.uniform(0, np.pi),
            )
            for _ in range(5)
        ]
        visible = np.bincount(render(objects, K, SIZE).instance.ravel(), minlength=6)[1:]
        counts = unoccluded_pixel_counts(objects, K, SIZE, visible)
        alone = [np.count_nonzero(render([item], K, SIZE).instance) for item in objects]
        assert counts.tolist() == alone
        assert (counts >= visible).all()
    assert (counts > visible).any()  # some occlusion happened


def test_only_needed_objects_are_counted_and_shapes_are_checked():
    objects = [box([0.0, 0.0, 3.0], [1.0, 1.0, 1.0]), box([0.0, 0.0, 5.0], [1.0, 1.0, 1.0])]
    visible = np.bincount(render(objects, K, SIZE).instance.ravel(), minlength=3)[1:]
    counts = unoccluded_pixel_counts(objects, K, SIZE, visible, needed=np.array([False, True]))
    assert counts[0] == -1 and counts[1] > visible[1]
    with pytest.raises(ValueError, match="visible_pixels"):
        unoccluded_pixel_counts(objects, K, SIZE, visible[:1])
