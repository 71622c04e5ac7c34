"""The category list and the ShapeNet synset map agree with DESIGN.md and with each other."""

from pathlib import Path

import pytest

from cad_perception.cad.categories import CATEGORIES, SHAPENET_SYNSETS

SHAPENET_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "shapenet_sample"


def test_the_nine_scan2cad_categories_sorted():
    assert CATEGORIES == (
        "bathtub", "bed", "bin", "bookshelf", "cabinet", "chair", "display", "sofa", "table",
    )  # fmt: skip
    assert list(CATEGORIES) == sorted(set(CATEGORIES))


def test_synsets_map_one_to_one_onto_the_categories():
    assert sorted(SHAPENET_SYNSETS.values()) == list(CATEGORIES)
    assert all(len(synset) == 8 and synset.isdigit() for synset in SHAPENET_SYNSETS)
    # Spot checks against ShapeNetCore.v2's taxonomy.
    assert SHAPENET_SYNSETS["03001627"] == "chair"
    assert SHAPENET_SYNSETS["04379243"] == "table"
    assert SHAPENET_SYNSETS["02747177"] == "bin"  # "ashcan, trash can"
    assert SHAPENET_SYNSETS["03211117"] == "display"


@pytest.mark.skipif(not SHAPENET_SAMPLE.is_dir(), reason=f"no ShapeNet sample at {SHAPENET_SAMPLE}")
def test_the_shapenet_sample_synsets_are_known():
    synsets = {path.name for path in SHAPENET_SAMPLE.iterdir() if path.is_dir()}
    assert synsets and synsets <= SHAPENET_SYNSETS.keys()
