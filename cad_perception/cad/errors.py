"""Exceptions of the cad subpackage; callers (the CLI, the database builder) catch `CadError`."""


class CadError(Exception):
    """Base of every error the cad subpackage raises on bad input."""


class MeshError(CadError):
    """A mesh file cannot be used: missing, of an unsupported type, unreadable, or degenerate.

    The message names the file (or the mesh's source) and the reason.
    """


class DatabaseError(CadError):
    """A CAD database cannot be built, opened, read or queried."""
