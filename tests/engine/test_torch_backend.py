import numpy as np
import pytest
import torch

from cad_perception.engine.errors import EngineError
from cad_perception.engine.torch_backend import TorchBackend
from cad_perception.model.checkpoint import cad_encoder_key, load_model
from tests.engine.conftest import intrinsics, synthetic_image

SIZE = (64, 96)


def test_outputs_are_the_networks_detections(mini_checkpoint):
    backend = TorchBackend.from_checkpoint(mini_checkpoint, input_size=SIZE, device="cpu")
    model = load_model(mini_checkpoint)
    assert backend.name == "torch" and backend.input_size == SIZE
    assert backend.categories == model.config.categories
    assert backend.encoder == cad_encoder_key(model)
    image, K = synthetic_image(3, SIZE), intrinsics(SIZE)
    output = backend(image, K)
    with torch.no_grad():
        raw = model(torch.from_numpy(image)[None], torch.from_numpy(K)[None])
    count = len(raw.classes)
    assert output.count == count > 0
    np.testing.assert_allclose(output.boxes[:count], raw.boxes.numpy(), atol=1e-4)
    np.testing.assert_allclose(output.t[:count], raw.t.numpy(), atol=1e-5)
    np.testing.assert_array_equal(output.classes[:count], raw.classes.numpy())


def test_half_precision_needs_cuda(mini_checkpoint):
    with pytest.raises(EngineError, match="needs a CUDA device"):
        TorchBackend.from_checkpoint(mini_checkpoint, device="cpu", half=True)
