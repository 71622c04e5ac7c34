"""ParamSampler: named, recorded, rounded, JSON-ready parameters."""

import json

import numpy as np
import pytest

from cad_perception.cad.procedural.design import PRECISION, ParamSampler


def test_uniform_values_are_rounded_recorded_and_in_range():
    p = ParamSampler(np.random.default_rng(0))
    values = [p.uniform(f"v{k}", 0.2, 0.7) for k in range(200)]
    assert all(0.2 <= v <= 0.7 for v in values)
    assert all(round(v, PRECISION) == v for v in values)
    assert [p.params[f"v{k}"] for k in range(200)] == values
    assert len(set(values)) > 100


def test_integer_covers_both_ends_of_its_range():
    p = ParamSampler(np.random.default_rng(1))
    values = {p.integer(f"n{k}", 2, 4) for k in range(100)}
    assert values == {2, 3, 4}
    assert all(type(v) is int for v in p.params.values())


def test_choice_and_flag():
    p = ParamSampler(np.random.default_rng(2))
    options = ("a", "b", "c")
    picks = {p.choice(f"c{k}", options) for k in range(60)}
    assert picks == set(options)
    assert p.flag("never", 0.0) is False
    assert p.flag("always", 1.0) is True
    flags = [p.flag(f"f{k}") for k in range(200)]
    assert 60 < sum(flags) < 140


def test_params_round_trip_through_json():
    p = ParamSampler(np.random.default_rng(3))
    p.uniform("width", 0.4, 0.6)
    p.integer("count", 1, 3)
    p.choice("style", ("box", "round"))
    p.flag("arms")
    p.record("derived", 0.25)
    assert json.loads(json.dumps(p.params)) == p.params


def test_same_seed_same_params():
    def draw(seed: int) -> dict:
        p = ParamSampler(np.random.default_rng(seed))
        p.uniform("a", 0, 1)
        p.choice("b", ("x", "y", "z"))
        p.integer("c", 0, 100)
        return p.params

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_misuse_is_rejected():
    p = ParamSampler(np.random.default_rng(4))
    p.uniform("width", 0.1, 0.2)
    with pytest.raises(ValueError, match="twice"):
        p.integer("width", 1, 2)
    with pytest.raises(ValueError, match="empty range"):
        p.uniform("depth", 0.3, 0.2)
    with pytest.raises(ValueError, match="empty range"):
        p.integer("count", 3, 2)
    with pytest.raises(ValueError, match="no options"):
        p.choice("style", ())
