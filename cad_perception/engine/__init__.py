"""Inference backends (torch, onnxruntime, tensorrt), ONNX export and the engine cache."""
