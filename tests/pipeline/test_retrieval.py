"""Per-category retrieval: each detection searches only its category, nearest first."""

from pathlib import Path

import numpy as np
import torch

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.model.checkpoint import cad_encoder_key
from cad_perception.model.embed import embed_database
from cad_perception.model.roca import Roca
from cad_perception.pipeline.retrieval import categories_with_cads, retrieve
from tests.model.mini_dataset import mini_config


def test_each_detection_finds_its_own_cad_first(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Roca(config=mini_config()).eval()
    with CadDatabase.create(tmp_path / "db") as db:
        build_procedural(db, 2, 0, progress=False)
        embed_database(db, model, progress=False)
        queries = ["proc-chair-00001", "proc-table-00000", "proc-chair-00000"]
        with torch.no_grad():
            grids = torch.from_numpy(np.stack([db.get(c).voxels for c in queries]))
            embeddings = model.embed_cads(grids).numpy()
        searchable = categories_with_cads(db)
        assert len(searchable) == 9
        names = ["chair", "table", "chair"]
        matches = retrieve(db, cad_encoder_key(model), names, embeddings, 2, searchable)
        assert [m[0].cad_id for m in matches] == queries
        assert all(len(m) == 2 and m[0].distance <= m[1].distance for m in matches)
        assert {m[1].cad_id.split("-")[1] for m in matches} == {"chair", "table"}
        # a category without CADs gets no match
        none = retrieve(db, cad_encoder_key(model), ["chair"], embeddings[:1], 2, {"table"})
        assert none == [()]
