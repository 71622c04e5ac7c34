"""The dataset writer and reader on frames rendered here with the renderer (no scene generator)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.mesh import normalize_mesh
from cad_perception.cad.procedural import generate
from cad_perception.geometry.camera import backproject_depth
from cad_perception.geometry.pose import inverse_apply_pose
from cad_perception.geometry.rotations import quaternion_to_matrix
from cad_perception.synth import encoding, rle
from cad_perception.synth.dataset import RocaDataset, dataset_to_records, write_dataset
from cad_perception.synth.errors import DatasetError
from cad_perception.synth.frame import Frame, FrameObject
from cad_perception.synth.renderer import RenderObject, render

SIZE = (120, 160)
K = np.array([[150.0, 0.0, 79.5], [0.0, 150.0, 59.5], [0.0, 0.0, 1.0]])
MODELS = [("chair", 1, "none"), ("table", 2, "rot2"), ("sofa", 3, "none"), ("cabinet", 4, "none")]
FRAME_COUNT = 3


def floor() -> RenderObject:
    """A large floor plane 1.2 m below the camera (y down), facing up."""
    plane = trimesh.Trimesh(
        np.array([[-20, 1.2, 0.1], [20, 1.2, 0.1], [20, 1.2, 40], [-20, 1.2, 40]], float),
        np.array([[0, 1, 2], [0, 2, 3]]),
        process=False,
    )
    return RenderObject.in_camera_frame(plane)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1))


def render_frame(meshes: dict, rng: np.random.Generator) -> Frame:
    """A frame of the four models at random poses 2-5 m in front of the camera."""
    objects, infos = [], []
    for index, (category, seed, sym) in enumerate(MODELS):
        normalized = meshes[category, seed]
        s = rng.uniform(0.8, 1.25, size=3) / normalized.factor
        R = Rotation.from_euler("yx", [rng.uniform(0, 360), rng.uniform(-15, 15)], degrees=True)
        t = np.array([(index - 1.5) * 0.9, rng.uniform(-0.2, 0.4), rng.uniform(2.0, 5.0)])
        objects.append(RenderObject(normalized.mesh, R.as_matrix(), t, s))
        infos.append((category, seed, sym))
    buffers = render(objects, K, SIZE, background=[floor()])
    rgb = np.clip((buffers.normals * 0.5 + 0.5) * 255, 0, 255).astype(np.uint8)
    frame_objects = []
    for index, (obj, (category, seed, sym)) in enumerate(zip(objects, infos, strict=True)):
        mask = buffers.instance == index + 1
        if mask.sum() < 20:
            continue
        frame_objects.append(
            FrameObject(
                instance=index + 1,
                cad_id=f"proc-{category}-{seed:05d}",
                category=category,
                symmetry=sym,
                R=obj.R,
                t=obj.t,
                s=obj.s,
                bbox=bbox_of(mask),
                visible_pixels=int(mask.sum()),
                occlusion_ratio=0.25,
            )
        )
    return Frame(
        rgb=rgb,
        depth=buffers.depth,
        instance=buffers.instance,
        noc=buffers.noc,
        K=K.copy(),
        objects=tuple(frame_objects),
    )


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    meshes = {
        (category, seed): normalize_mesh(generate(category, seed).mesh)
        for category, seed, _ in MODELS
    }
    rng = np.random.default_rng(3)
    result = [render_frame(meshes, rng) for _ in range(FRAME_COUNT)]
    assert all(len(frame.objects) >= 2 for frame in result)
    return result


@pytest.fixture(scope="module")
def dataset_dir(frames, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    path = write_dataset(
        frames, root, scene_ids=[f"scene{i}" for i in range(FRAME_COUNT)], progress=False
    )
    assert path == root / "annotations.json"
    return root


@pytest.fixture
def copy_dir(dataset_dir, tmp_path) -> Path:
    """A private copy of the dataset to break."""
    return Path(shutil.copytree(dataset_dir, tmp_path / "copy"))


def load_json(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


def save_json(root: Path, data: dict) -> None:
    (root / "annotations.json").write_text(json.dumps(data))


def test_annotation_file_follows_the_schema(dataset_dir, frames):
    data = load_json(dataset_dir)
    assert data["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]
    assert [image["id"] for image in data["images"]] == [1, 2, 3]
    image = data["images"][1]
    assert image == {
        "id": 2,
        "file_name": "images/000002.png",
        "height": SIZE[0],
        "width": SIZE[1],
        "scene_id": "scene1",
        "intrinsics": K.tolist(),
        "depth_file": "depth/000002.png",
        "noc_file": "noc/000002.png",
        "instance_file": "instance/000002.png",
    }
    annotations = data["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    assert len(annotations) == sum(len(frame.objects) for frame in frames)
    pairs = [(i + 1, obj) for i, frame in enumerate(frames) for obj in frame.objects]
    for annotation, (image_id, obj) in zip(annotations, pairs, strict=True):
        assert annotation["image_id"] == image_id
        assert annotation["instance"] == obj.instance
        assert annotation["category_id"] == CATEGORIES.index(obj.category) + 1
        assert annotation["model"] == {"cad_id": obj.cad_id, "category": obj.category}
        assert annotation["sym"] == obj.symmetry and annotation["iscrowd"] == 0
        assert annotation["bbox"] == list(obj.bbox)
        assert annotation["area"] == obj.visible_pixels == rle.area(annotation["segmentation"])
        assert annotation["segmentation"]["size"] == list(SIZE)
        assert annotation["occlusion_ratio"] == 0.25
        q = annotation["q"]
        assert q[0] >= 0
        R = quaternion_to_matrix(torch.tensor(q, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(R, obj.R, atol=1e-12)
        np.testing.assert_allclose(annotation["t"], obj.t, atol=0)
        np.testing.assert_allclose(annotation["s"], obj.s, atol=0)


def test_stored_files_decode_to_the_frames(dataset_dir, frames):
    for index, frame in enumerate(frames, start=1):
        stem = f"{index:06d}.png"
        np.testing.assert_array_equal(encoding.read_rgb(dataset_dir / "images" / stem), frame.rgb)
        instance = encoding.read_instance(dataset_dir / "instance" / stem)
        np.testing.assert_array_equal(instance, frame.instance)
        depth = encoding.read_depth(dataset_dir / "depth" / stem)
        np.testing.assert_allclose(depth, frame.depth, atol=0.5e-3 + 1e-6, rtol=0)


def test_depth_back_projected_through_the_inverse_pose_reproduces_the_stored_noc(dataset_dir):
    """The key ground-truth check, on the quantised files as the reader decodes them."""
    dataset = RocaDataset(dataset_dir)
    pixels = 0
    for item in dataset:
        points = backproject_depth(item["depth"].double(), item["K"].double())
        for n in range(len(item["labels"])):
            mask = item["masks"][n]
            assert item["noc_mask"][mask].all(), "an object pixel without NOC"
            noc = item["noc"].permute(1, 2, 0)[mask].double()
            predicted = inverse_apply_pose(
                points[mask], item["R"][n].double(), item["t"][n].double(), item["s"][n].double()
            )
            errors = (predicted - noc).norm(dim=-1)  # canonical units
            assert errors.median() < 1e-3, item["cad_ids"][n]
            assert torch.quantile(errors, 0.99) < 5e-3, item["cad_ids"][n]
            assert noc.abs().max() <= 0.5 + 1e-4
            pixels += len(errors)
    assert pixels > 2000


def test_every_stored_noc_lies_in_the_canonical_box_and_only_on_objects(dataset_dir):
    for index in range(1, FRAME_COUNT + 1):
        noc = encoding.read_noc(dataset_dir / "noc" / f"{index:06d}.png")
        instance = encoding.read_instance(dataset_dir / "instance" / f"{index:06d}.png")
        valid = np.isfinite(noc).all(axis=-1)
        np.testing.assert_array_equal(valid, instance > 0)
        assert np.abs(noc[valid]).max() <= 0.5 + 1e-4


def test_masks_instance_map_annotations_and_boxes_agree(dataset_dir, frames):
    dataset = RocaDataset(dataset_dir)
    assert len(dataset) == FRAME_COUNT
    for item, frame in zip(dataset, frames, strict=True):
        instances = [obj.instance for obj in frame.objects]
        assert item["instances"].tolist() == instances
        assert item["cad_ids"] == [obj.cad_id for obj in frame.objects]
        assert item["sym"] == [obj.symmetry for obj in frame.objects]
        assert item["masks"].shape == (len(instances), *SIZE)
        for n, value in enumerate(instances):
            np.testing.assert_array_equal(item["masks"][n].numpy(), item["instance"] == value)
            x, y, w, h = bbox_of(item["masks"][n].numpy())
            assert item["boxes"][n].tolist() == [x, y, x + w, y + h]
        assert item["image"].shape == (3, *SIZE) and item["image"].dtype == torch.float32
        np.testing.assert_allclose(
            item["image"].permute(1, 2, 0).numpy() * 255, frame.rgb, atol=1e-3
        )
        assert item["K"].tolist() == K.tolist()
        assert item["scene_id"].startswith("scene")


def test_records_export_the_ground_truth_poses(dataset_dir, frames):
    records = dataset_to_records(dataset_dir / "annotations.json")
    pairs = [(i + 1, obj) for i, frame in enumerate(frames) for obj in frame.objects]
    assert len(records) == len(pairs)
    for record, (image_id, obj) in zip(records, pairs, strict=True):
        assert record.scene == str(image_id) and record.score is None
        assert (record.category, record.cad_id, record.sym) == (
            obj.category,
            obj.cad_id,
            obj.symmetry,
        )
        R = quaternion_to_matrix(torch.tensor(record.q, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(R, obj.R, atol=1e-9)
        np.testing.assert_allclose(record.t, obj.t, atol=1e-12)
        np.testing.assert_allclose(record.s, obj.s, atol=1e-12)


def test_an_interrupted_write_leaves_no_annotation_file(frames, tmp_path):
    def failing():
        yield frames[0]
        raise RuntimeError("renderer crashed")

    write_dataset(frames[:1], tmp_path, progress=False)
    with pytest.raises(RuntimeError):
        write_dataset(failing(), tmp_path, progress=False)
    assert (tmp_path / "images" / "000001.png").exists()
    assert not (tmp_path / "annotations.json").exists()


def test_writer_rejects_a_frame_whose_bbox_disagrees_with_its_pixels(frames, tmp_path):
    obj = frames[0].objects[0]
    x, y, w, h = obj.bbox
    wrong = FrameObject(**{**obj.__dict__, "bbox": (x, y, w + 1, h)})
    frame = Frame(**{**frames[0].__dict__, "objects": (wrong,)})
    with pytest.raises(ValueError, match="bbox"):
        write_dataset([frame], tmp_path, progress=False)


def test_writer_rejects_a_wrong_number_of_scene_ids(frames, tmp_path):
    with pytest.raises(ValueError, match="scene_ids"):
        write_dataset(frames[:2], tmp_path, scene_ids=["a"], progress=False)


def test_missing_file_is_named(copy_dir):
    (copy_dir / "depth" / "000002.png").unlink()
    dataset = RocaDataset(copy_dir)
    dataset[0]
    with pytest.raises(DatasetError, match=r"image id 2, field 'depth_file'.*000002\.png"):
        dataset[1]


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"annotations\.json"):
        RocaDataset(tmp_path)


def test_annotation_pointing_to_a_missing_image_is_named(copy_dir):
    data = load_json(copy_dir)
    data["annotations"][1]["image_id"] = 99
    save_json(copy_dir, data)
    with pytest.raises(DatasetError, match=r"annotation 1: field 'image_id'.*99"):
        RocaDataset(copy_dir)


def test_wrong_size_png_is_named(copy_dir):
    encoding.write_instance(copy_dir / "instance" / "000001.png", np.zeros((10, 12), np.int32))
    with pytest.raises(DatasetError, match=r"'instance_file'.*10x12 pixels.*120x160"):
        RocaDataset(copy_dir)[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["annotations"][0].update(category_id=42),
            r"annotation 0: field 'category_id'",
        ),
        (lambda d: d["annotations"][0]["model"].update(category="bed"), r"field 'category'"),
        (lambda d: d["annotations"][0].update(s=[1.0, 0.0, 1.0]), r"field 's'"),
        (lambda d: d["annotations"][0].update(sym="rot3"), r"field 'sym'"),
        (lambda d: d["annotations"][0].pop("t"), r"missing field 't'"),
        (lambda d: d["images"][0].update(height="120"), r"image 0: field 'height'"),
        (lambda d: d["images"][0].update(intrinsics=[[1, 0], [0, 1]]), r"field 'intrinsics'"),
        (  # without a NOC file the NOCs need the instance map (and depth) to be derived
            lambda d: [d["images"][0].pop(key) for key in ("noc_file", "instance_file")],
            r"image 0 \(id 1\): missing 'noc_file'",
        ),
        (lambda d: d["categories"].append({"id": 1, "name": "x"}), r"category 9: field 'id'"),
    ],
)
def test_inconsistent_records_are_named(copy_dir, change, message):
    data = load_json(copy_dir)
    change(data)
    save_json(copy_dir, data)
    with pytest.raises(DatasetError, match=message):
        RocaDataset(copy_dir)


def test_segmentation_disagreeing_with_the_instance_map_is_named(copy_dir):
    data = load_json(copy_dir)
    first, second = data["annotations"][:2]
    first["segmentation"] = second["segmentation"]
    save_json(copy_dir, data)
    with pytest.raises(DatasetError, match=r"annotation id 1: field 'segmentation'"):
        RocaDataset(copy_dir)[0]


def test_bbox_disagreeing_with_the_mask_is_named(copy_dir):
    data = load_json(copy_dir)
    data["annotations"][0]["bbox"][2] += 1
    save_json(copy_dir, data)
    with pytest.raises(DatasetError, match=r"annotation id 1: field 'bbox'"):
        RocaDataset(copy_dir)[0]


def test_roca_variants_of_the_schema_are_read(copy_dir):
    """ROCA's own field names: alignment_id, id_cad, __SYM_* symmetries, 4x4 intrinsics, and
    annotations without an RLE (masks then come from the instance map)."""
    data = load_json(copy_dir)
    reference = RocaDataset(copy_dir)[0]
    for image in data["images"]:
        image["intrinsics"] = np.pad(np.array(image["intrinsics"]), (0, 1)).tolist()
        image["intrinsics"][3][3] = 1.0
    for annotation in data["annotations"]:
        annotation["alignment_id"] = annotation.pop("instance")
        annotation["model"] = {"id_cad": annotation["model"]["cad_id"]}
        annotation["sym"] = {"none": "__SYM_NONE", "rot2": "__SYM_ROTATE_UP_2"}[annotation["sym"]]
        del annotation["segmentation"]
    save_json(copy_dir, data)
    item = RocaDataset(copy_dir, load_rgb=False, load_noc=False)[0]
    assert "image" not in item and "noc" not in item
    for key in ("masks", "boxes", "instances", "R", "t", "s", "K"):
        torch.testing.assert_close(item[key], reference[key])
    assert item["sym"] == reference["sym"] and item["cad_ids"] == reference["cad_ids"]
    with pytest.raises(DatasetError, match="load_instance=True"):
        RocaDataset(copy_dir, load_instance=False)
