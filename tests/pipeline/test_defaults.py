"""The default model is found where installs put it; the default CAD database is built once,
deterministically, and embedded with the model."""

from pathlib import Path

import pytest
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.engine.factory import CACHE_ENV
from cad_perception.model.checkpoint import cad_encoder_key, save_checkpoint
from cad_perception.model.roca import Roca
from cad_perception.pipeline import defaults
from tests.model.mini_dataset import mini_config


def test_default_db_is_built_once_and_embedded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(defaults, "DEFAULT_DB_PER_CATEGORY", 1)
    torch.manual_seed(0)
    model = Roca(config=mini_config())
    save_checkpoint(tmp_path / "model", model)
    path = defaults.ensure_default_db(tmp_path / "model")
    assert path == tmp_path / "cache" / "default_db"
    with CadDatabase.open(path, readonly=True) as db:
        assert len(db) == 9 and db.ids("chair") == ["proc-chair-00000"]
        assert len(db.embedded_ids(cad_encoder_key(model))) == 9
        version = db.version
    assert defaults.ensure_default_db(tmp_path / "model") == path
    with CadDatabase.open(path, readonly=True) as db:
        assert db.version == version  # nothing rebuilt or re-embedded
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".default_db-")]


def test_default_model_lookup(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(defaults.MODEL_ENV, raising=False)
    monkeypatch.setattr(defaults, "model_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError, match="--model"):
        defaults.default_model_dir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model.safetensors").write_bytes(b"")
    assert defaults.default_model_dir() == tmp_path / "b"
    monkeypatch.setenv(defaults.MODEL_ENV, str(tmp_path / "elsewhere"))
    assert defaults.default_model_dir() == tmp_path / "elsewhere"


def test_candidates_cover_the_source_tree_and_an_ament_install() -> None:
    candidates = defaults.model_candidates()
    assert candidates == [Path(defaults.__file__).resolve().parents[2] / "models" / "default"]
    installed = Path("/ws/install/cad_perception/lib/python3.12/site-packages/cad_perception")
    assert defaults.model_candidates(installed)[1] == Path(
        "/ws/install/cad_perception/share/cad_perception/models/default"
    )
