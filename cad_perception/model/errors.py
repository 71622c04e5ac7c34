"""Errors of the model layer: bad checkpoints, configurations and training data."""


class ModelError(Exception):
    """Base of the model layer's errors on bad input (files, configurations, data)."""


class CheckpointError(ModelError):
    """A checkpoint that is missing, corrupt, or does not fit the network; the message names
    the file and the reason."""


class ConfigError(ModelError):
    """A configuration dict with unknown keys or values of the wrong type."""


class TrainingDataError(ModelError):
    """A dataset that cannot be trained on (category ids that disagree with the network's,
    CAD ids missing from the CAD database, no annotated images)."""
