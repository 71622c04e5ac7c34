"""Errors of the engine layer: unusable engine folders, backends and inputs."""

from cad_perception.model.errors import ModelError


class EngineError(ModelError):
    """An engine that cannot be created or run: an unknown or unavailable backend, a folder that
    is neither a checkpoint nor an exported engine, a sidecar that does not fit, a failed
    TensorRT build. The message names the file or setting and what to do."""
