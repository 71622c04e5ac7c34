"""Exceptions of the synth subpackage; callers (the CLI) catch `SynthError`."""


class SynthError(Exception):
    """Base of every error the synth subpackage raises on bad input or files."""


class DatasetError(SynthError):
    """A dataset on disk cannot be read or is inconsistent.

    The message names the file or record (and the field) at fault.
    """


class BagError(SynthError):
    """A rosbag cannot be written or read.

    Missing or already existing, lacking a topic, holding an unsupported image encoding or
    inconsistent messages; the message names the bag (and the topic or stamp) at fault.
    """
