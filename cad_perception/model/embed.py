"""Store a model's CAD embeddings in a CAD database (`cad-perception db embed`)."""

import logging

import numpy as np
import torch
from tqdm import tqdm

from cad_perception.cad.database import CadDatabase
from cad_perception.model.checkpoint import cad_encoder_key
from cad_perception.model.roca import Roca

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_database(
    db: CadDatabase,
    model: Roca,
    *,
    batch_size: int = 64,
    only_missing: bool = False,
    progress: bool = True,
) -> tuple[str, str, int]:
    """Embed the CADs of `db` with `model`'s CAD encoder and store the (N, D) vectors under
    `cad_encoder_key(model)`; returns (encoder name, version, CADs embedded).

    only_missing=True skips CADs that already have a vector of this encoder version (the
    database was extended after the last run). One database transaction for all vectors.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    name, version = cad_encoder_key(model)
    ids = db.ids()
    if only_missing:
        stored = db.embedded_ids((name, version))
        ids = [cad_id for cad_id in ids if cad_id not in stored]
    if not ids:
        logger.info("every CAD of %s already has a %s@%s embedding", db.root, name, version)
        return name, version, 0
    model.eval()
    device = next(model.parameters()).device
    vectors = []
    batches = range(0, len(ids), batch_size)
    for start in tqdm(batches, desc="embedding CADs", unit="batch", disable=not progress):
        grids = np.stack([db.get(cad_id).voxels for cad_id in ids[start : start + batch_size]])
        embedded = model.embed_cads(torch.from_numpy(grids).to(device))
        vectors.append(embedded.float().cpu().numpy())
    db.put_embeddings(name, version, ids, np.concatenate(vectors))
    logger.info("stored %d %s@%s embeddings in %s", len(ids), name, version, db.root)
    return name, version, len(ids)
