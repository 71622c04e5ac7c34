"""Exceptions of the eval subpackage; callers (the CLI) catch `EvalError`."""


class EvalError(Exception):
    """Base of every error the eval subpackage raises on bad input."""


class RecordFileError(EvalError):
    """A record file cannot be read or does not hold valid JSON."""


class InvalidRecordError(EvalError, ValueError):
    """A record list or one of its records is malformed.

    `index` is the record's 0-based position in its list (None for a problem with the list
    itself) and `field` the offending key (None when the whole record is at fault).
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None):
        super().__init__(message)
        self.index = index
        self.field = field


class EmptyGroundTruthError(EvalError, ValueError):
    """Accuracy was asked for against an empty ground-truth set, where it is undefined."""
