import numpy as np
import pytest

from cad_perception.engine.output import OUTPUT_NAMES, EngineOutput, engine_output


def arrays(count: int, rows: int = 5) -> dict[str, np.ndarray]:
    classes = np.zeros(rows, np.int32)
    classes[:count] = 3
    return {
        "boxes": np.zeros((rows, 4), np.float16),
        "scores": np.linspace(1, 0, rows),
        "classes": classes,
        "masks": np.zeros((rows, 8, 8), np.float32),
        "R": np.tile(np.eye(3), (rows, 1, 1)),
        "t": np.zeros((rows, 3)),
        "s": np.ones((rows, 3)),
        "valid": np.ones(rows, np.uint8),
        "embeddings": np.zeros((rows, 16)),
    }


def test_engine_output_casts_every_field_to_its_dtype():
    output = engine_output(arrays(count=2))
    assert output._fields == OUTPUT_NAMES
    assert isinstance(output, EngineOutput)
    assert output.classes.dtype == np.int64 and output.valid.dtype == np.bool_
    for name in ("boxes", "scores", "masks", "R", "t", "s", "embeddings"):
        assert getattr(output, name).dtype == np.float32, name
    assert output.count == 2


def test_engine_output_names_missing_fields():
    partial = arrays(count=1)
    del partial["R"], partial["valid"]
    with pytest.raises(ValueError, match="R, valid"):
        engine_output(partial)
