"""The parameter schema: validation errors, declaration on a real node, and the YAML file."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from rclpy.node import Node
from rclpy.parameter import Parameter

from cad_perception.ros.errors import ParameterError
from cad_perception.ros.parameters import (
    SCHEMA,
    NodeSettings,
    declare_parameters,
    read_settings,
    validate,
)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "cad_perception.yaml"


def test_settings_fields_follow_the_schema_and_defaults_validate():
    assert [f.name for f in dataclasses.fields(NodeSettings)] == [s.name for s in SCHEMA]
    settings = validate({})
    assert dataclasses.asdict(settings) == {spec.name: spec.default for spec in SCHEMA}
    assert settings.backend == "auto" and settings.model_dir == "" and settings.cad_db == ""


def test_integer_for_a_number_is_accepted_as_float():
    settings = validate({"score_threshold": 1, "sync_slop": 0})
    assert settings.score_threshold == 1.0 and isinstance(settings.score_threshold, float)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"backend": "cuda"},
            "backend must be one of auto, tensorrt, onnxruntime, onnxruntime-int8, torch",
        ),
        ({"qos": "best_effort"}, "qos must be one of sensor_data, reliable"),
        ({"score_threshold": 1.5}, "score_threshold must be a number in [0, 1], got 1.5"),
        ({"score_threshold": "abc"}, "score_threshold must be a number in [0, 1], got 'abc'"),
        ({"max_detections": 0}, "max_detections must be an integer >= 1, got 0"),
        ({"top_k": 2.0}, "top_k must be an integer >= 1, got 2.0"),
        ({"top_k": True}, "top_k must be an integer >= 1, got True"),
        ({"sync_slop": -0.1}, "sync_slop must be a number >= 0"),
        ({"publish_tf": 1}, "publish_tf must be a boolean, got 1"),
        ({"model_path": "/m"}, "unknown parameter(s) model_path"),
    ],
)
def test_bad_values_name_the_parameter_and_the_allowed_values(values, expected):
    with pytest.raises(ParameterError, match=re.escape(expected)):
        validate(values)


def test_every_bad_parameter_is_reported_at_once():
    with pytest.raises(ParameterError) as error:
        validate({"backend": "x", "top_k": 0})
    assert "backend" in str(error.value) and "top_k" in str(error.value)


def test_declared_parameters_carry_descriptions_and_wrong_types_fail_at_read(ros_context):
    overrides = [Parameter("score_threshold", value="high"), Parameter("backend", value="torch")]
    node = Node("parameters_test", context=ros_context, parameter_overrides=overrides)
    try:
        declare_parameters(node)  # a wrongly typed override must not raise here
        descriptors = node.describe_parameters([spec.name for spec in SCHEMA])
        for spec, descriptor in zip(SCHEMA, descriptors, strict=True):
            assert descriptor.description == spec.description
            assert spec.allowed in descriptor.additional_constraints
        with pytest.raises(ParameterError, match="score_threshold must be a number"):
            read_settings(node)
        node.set_parameters([Parameter("score_threshold", value=0.25)])
        settings = read_settings(node)
        assert (settings.score_threshold, settings.backend) == (0.25, "torch")
    finally:
        node.destroy_node()


def test_yaml_documents_every_parameter_with_its_default():
    text = CONFIG.read_text()
    values = yaml.safe_load(text)["/**/cad_perception"]["ros__parameters"]
    assert values == {spec.name: spec.default for spec in SCHEMA}
    lines = text.splitlines()
    for spec in SCHEMA:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{spec.name}:"))
        assert lines[index - 1].strip().startswith("#"), f"{spec.name} has no comment above it"
    validate(values)
