"""CAD embeddings stored under the model's encoder version; float16 checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.model.checkpoint import cad_encoder_key, load_model, save_checkpoint
from cad_perception.model.embed import embed_database
from cad_perception.model.roca import Roca
from tests.model.mini_dataset import mini_config


@pytest.fixture
def model() -> Roca:
    torch.manual_seed(0)
    return Roca(config=mini_config()).eval()


def test_embeddings_are_the_encoders_and_retrieve_themselves(model: Roca, tmp_path: Path) -> None:
    with CadDatabase.create(tmp_path / "db") as db:
        build_procedural(db, 2, 0, progress=False)
        name, version, count = embed_database(db, model, batch_size=5, progress=False)
        assert (name, version) == cad_encoder_key(model) and count == len(db) == 18
        cad_id = db.ids("chair")[1]
        with torch.no_grad():
            expected = model.embed_cads(torch.from_numpy(db.get(cad_id).voxels[None])).numpy()
        result = db.search("chair", expected, 1, encoder=(name, version))
        assert result.ids[0][0] == cad_id
        assert result.distances[0, 0] == pytest.approx(0.0, abs=1e-5)
        # a new CAD: only it is embedded with only_missing
        build_procedural(db, 3, 0, progress=False)
        assert embed_database(db, model, only_missing=True, progress=False)[2] == 9
        assert embed_database(db, model, only_missing=True, progress=False)[2] == 0
        assert len(db.embedded_ids((name, version))) == len(db) == 27


def test_encoder_version_follows_the_cad_encoder_weights(model: Roca) -> None:
    before = cad_encoder_key(model)
    with torch.no_grad():
        model.retrieval_head.noc_encoder.linear.weight.add_(1.0)  # not the CAD encoder
    assert cad_encoder_key(model) == before
    with torch.no_grad():
        model.retrieval_head.cad_encoder.linear.weight.add_(1e-3)
    assert cad_encoder_key(model)[1] != before[1]


def test_half_checkpoint_is_half_the_size_and_loads_rounded(model: Roca, tmp_path: Path) -> None:
    full = save_checkpoint(tmp_path / "full", model) / "model.safetensors"
    half = save_checkpoint(tmp_path / "half", model, half=True) / "model.safetensors"
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_model(tmp_path / "half")
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype
        if value.is_floating_point():
            np.testing.assert_array_equal(got.numpy(), value.half().float().numpy())
        else:
            assert torch.equal(got, value)
