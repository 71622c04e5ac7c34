"""Where the shipped model and the default CAD database live, and building that database.

The default model is `models/default/` of the source tree (a pip editable install or a run
from the repository) or `<prefix>/share/cad_perception/models/default/` (colcon / ament
install); $CAD_PERCEPTION_MODEL overrides both. The default CAD database is the procedural
library (DEFAULT_DB_PER_CATEGORY models of every category, seeds from 0) embedded with the
default model's CAD encoder. It is built deterministically, without network, on first use (or
by `make setup`) under the cache folder: $CAD_PERCEPTION_CACHE, else ~/.cache/cad_perception.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import build_procedural
from cad_perception.engine.factory import default_cache_dir
from cad_perception.model.checkpoint import cad_encoder_key, load_model
from cad_perception.model.embed import embed_database

logger = logging.getLogger(__name__)

DEFAULT_DB_PER_CATEGORY = 24
"""Procedural models per category in the default CAD database."""
DEFAULT_DB_SEED = 0
MODEL_ENV = "CAD_PERCEPTION_MODEL"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def model_candidates(package_root: Path = _PACKAGE_ROOT) -> list[Path]:
    """Folders searched for the default model, in order, for the package at `package_root`:
    the source tree's models/default, then for an install into
    <prefix>/lib/pythonX.Y/site-packages/ the ament share folder <prefix>/share/cad_perception."""
    candidates = [package_root.parent / "models" / "default"]
    if package_root.parent.name in ("site-packages", "dist-packages"):
        prefix = package_root.parents[3]
        candidates.append(prefix / "share" / "cad_perception" / "models" / "default")
    return candidates


def default_model_dir() -> Path:
    """The shipped model's folder; FileNotFoundError saying where it looked when absent."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    candidates = model_candidates()
    for candidate in candidates:
        if (candidate / "model.safetensors").is_file():
            return candidate
    raise FileNotFoundError(
        f"no default model in {', '.join(map(str, candidates))}; pass --model DIR or set "
        f"{MODEL_ENV}"
    )


def default_db_dir() -> Path:
    """Where the default CAD database is (or will be) built."""
    return default_cache_dir() / "default_db"


def ensure_default_db(
    model_dir: str | Path | None = None, *, embed: bool = True, progress: bool = False
) -> Path:
    """The default CAD database, built if missing and (with embed) embedded with `model_dir`'s
    CAD encoder (default: the shipped model) if it lacks those embeddings; returns its folder.

    Building takes about half a minute and happens in a temporary sibling folder renamed into
    place, so an interrupted or concurrent build never leaves a partial database behind.
    """
    target = default_db_dir()
    if not target.exists():
        logger.info("building the default CAD database in %s (once)", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".default_db-", dir=target.parent))
        try:
            with CadDatabase.create(partial / "db") as db:
                build_procedural(db, DEFAULT_DB_PER_CATEGORY, DEFAULT_DB_SEED, progress=progress)
            try:
                os.rename(partial / "db", target)
            except OSError:
                if not target.exists():  # another process finishing first is fine
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    if not embed:
        return target
    model = load_model(model_dir if model_dir is not None else default_model_dir())
    key = cad_encoder_key(model)
    with CadDatabase.open(target) as db:
        if len(db.embedded_ids(key)) < len(db):
            logger.info("embedding the default CAD database with encoder %s@%s", *key)
            embed_database(db, model, only_missing=True, progress=progress)
    return target
