"""What a category generator returns, and the sampler that draws and records its parameters."""

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

from cad_perception.cad.procedural.parts import Part

T = TypeVar("T")

PRECISION = 3
"""Decimals kept of every real parameter (millimetres, or thousandths of a ratio or degree)."""


class Design(NamedTuple):
    """A generated model before assembly: its parts, its symmetry about y, its parameters."""

    parts: list[Part]
    symmetry: str
    params: dict[str, Any]


class ParamSampler:
    """Draws named shape parameters from a generator and records them in `params`.

    Real values are rounded to PRECISION decimals before they are returned, so the recorded
    parameters describe the geometry exactly and are JSON-serialisable.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.params: dict[str, Any] = {}

    def uniform(self, name: str, low: float, high: float) -> float:
        """A real value in [low, high]."""
        if low > high:
            raise ValueError(f"parameter {name!r}: empty range [{low}, {high}]")
        return self.record(name, round(float(self.rng.uniform(low, high)), PRECISION))

    def integer(self, name: str, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        if low > high:
            raise ValueError(f"parameter {name!r}: empty range [{low}, {high}]")
        return self.record(name, int(self.rng.integers(low, high + 1)))

    def choice(self, name: str, options: Sequence[str]) -> str:
        """One of the options, uniformly."""
        if not options:
            raise ValueError(f"parameter {name!r}: no options")
        return self.record(name, str(options[self.rng.integers(len(options))]))

    def flag(self, name: str, probability: float = 0.5) -> bool:
        """True with the given probability."""
        return self.record(name, bool(self.rng.random() < probability))

    def record(self, name: str, value: T) -> T:
        """Record a derived parameter; every name is recorded once."""
        if name in self.params:
            raise ValueError(f"parameter {name!r} recorded twice")
        self.params[name] = value
        return value
