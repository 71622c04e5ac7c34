"""Errors of the ROS adapter: bad parameters and input messages that cannot become a frame."""

from enum import StrEnum


class Problem(StrEnum):
    """What was wrong with an input frame (the key of throttled warnings and diagnostics)."""

    UNSUPPORTED_ENCODING = "unsupported image encoding"
    INCONSISTENT_IMAGE = "image step or data size inconsistent with width/height"
    EMPTY_IMAGE = "empty image"
    UNDECODABLE_IMAGE = "compressed image does not decode"
    INVALID_CAMERA_INFO = "invalid camera_info"
    SIZE_MISMATCH = "camera_info size differs from the image"
    STAMP_BACKWARDS = "stamps going backwards"
    NO_CAMERA_INFO = "no camera_info"
    PIPELINE_FAILED = "pipeline failed"


class ParameterError(ValueError):
    """A node parameter with a value outside its allowed values; the message names both."""


class InputError(ValueError):
    """An input message the node skips; `problem` says which kind, the message the details and
    what to do."""

    def __init__(self, problem: Problem, message: str):
        super().__init__(message)
        self.problem = problem
