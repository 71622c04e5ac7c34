"""The backbone alone on torch and on ONNX Runtime: how the two runtimes' convolutions compare
on this CPU.

The backbone (ResNet and feature pyramid) holds the bulk of the network's FLOPs, all of them
convolutions, so the speed-up measured here is roughly the ceiling of the whole pipeline's
speed-up of ONNX Runtime over torch (pipeline/bench.py): the rest of the network is small
operators on which the runtimes are closer.
"""

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from cad_perception.engine.export import OPSET
from cad_perception.engine.onnx_backend import CPU_PROVIDER, session_options
from cad_perception.model.checkpoint import load_model

TURN_PAUSE_S = 0.05
"""Idle time before each timed call when runtimes take turns. torch's OpenMP threads keep
spinning for several milliseconds after their work, and a call started meanwhile shares the
cores with them (scratch: a 1024 GEMM in ONNX Runtime right after one in torch ran at 53
GFLOP/s, 20 ms later at 70)."""


class _BackboneOnly(nn.Module):
    """A network's backbone with its pyramid levels as a tuple (the ONNX exporter's outputs)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image (1, 3, H, W) -> the pyramid levels (1, C, h_l, w_l), finest first."""
        return tuple(self.backbone(image).values())


def compare_backbones(
    model_dir: str | Path, frame: Any, *, iters: int = 20, warmup: int = 3
) -> dict[str, float]:
    """The checkpoint's backbone on torch eager and on ONNX Runtime's CPU provider (exported
    in memory), taking turns on one SceneFrames item with torch's thread count, `warmup`
    untimed rounds then `iters` timed ones: {"torch_ms", "onnxruntime_ms", "speedup"}
    (medians, milliseconds). Each call starts after a pause of TURN_PAUSE_S, for the reason
    given there."""
    network = _BackboneOnly(load_model(model_dir).backbone).eval()
    image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
    graph = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(network, (image,), graph, opset_version=OPSET, dynamo=False)
    options = session_options(torch.get_num_threads())
    session = ort.InferenceSession(graph.getvalue(), options, providers=[CPU_PROVIDER])
    feed = {session.get_inputs()[0].name: image.numpy()}
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    runs = {"torch": lambda: network(image), "onnxruntime": lambda: session.run(None, feed)}
    with torch.inference_mode():
        for index in range(warmup + iters):
            for name in runs if index % 2 == 0 else reversed(runs):
                time.sleep(TURN_PAUSE_S)
                start = time.perf_counter()
                runs[name]()
                if index >= warmup:
                    times[name].append((time.perf_counter() - start) * 1000.0)
    torch_ms, onnx_ms = (float(np.median(times[name])) for name in ("torch", "onnxruntime"))
    return {
        "torch_ms": round(torch_ms, 2),
        "onnxruntime_ms": round(onnx_ms, 2),
        "speedup": round(torch_ms / onnx_ms, 2),
    }
