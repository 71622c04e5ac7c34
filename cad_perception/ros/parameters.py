"""The node's parameters: one schema, declared once and validated at configure.

Every parameter is declared with its description and dynamic typing, so that a wrongly typed
override (`score_threshold:=abc`) does not crash the node at start-up but fails `configure` with
an error naming the parameter and its allowed values. Values are read at configure; changing
one takes effect at the next configure (deactivate, cleanup, set, configure, activate).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from cad_perception.ros.errors import ParameterError

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-int8", "torch")
QOS_CHOICES = ("sensor_data", "reliable")

Value = str | float | int | bool


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: its name, default (whose Python type is the parameter's type),
    description and allowed values (choices, or an inclusive numeric range)."""

    name: str
    default: Value
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def allowed(self) -> str:
        """The allowed values in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = _KIND_NAMES[type(self.default)]
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} in [{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return f"{kind} >= {self.minimum:g}"
        return kind

    def check(self, value: object) -> Value:
        """`value` converted to the parameter's type; ParameterError unless allowed."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise ParameterError(
                f"parameter {self.name} must be {self.allowed}, got {value!r} "
                f"({type(value).__name__})"
            )
        outside_choices = self.choices and value not in self.choices
        below = self.minimum is not None and value < self.minimum  # type: ignore[operator]
        above = self.maximum is not None and value > self.maximum  # type: ignore[operator]
        if outside_choices or below or above:
            raise ParameterError(f"parameter {self.name} must be {self.allowed}, got {value!r}")
        return value  # type: ignore[return-value]


_KIND_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "a boolean"}

SCHEMA: tuple[ParameterSpec, ...] = (
    ParameterSpec("model_dir", "", "Model folder (checkpoint or exported engine); '' = shipped."),
    ParameterSpec("cad_db", "", "CAD database folder; '' = the default procedural database."),
    ParameterSpec("backend", "auto", "Inference backend; auto picks the fastest.", BACKENDS),
    ParameterSpec("device", "", "Torch device (cpu, cuda, cuda:1); '' = automatic."),
    ParameterSpec("score_threshold", 0.5, "Minimum detection score.", minimum=0.0, maximum=1.0),
    ParameterSpec("max_detections", 20, "Most objects reported per image.", minimum=1),
    ParameterSpec("top_k", 3, "Retrieved CAD models per object (the results).", minimum=1),
    ParameterSpec(
        "sync_slop", 0.01, "Seconds an image and a camera_info may differ in stamp.", minimum=0.0
    ),
    ParameterSpec("qos", "sensor_data", "QoS of the input subscriptions.", QOS_CHOICES),
    ParameterSpec("use_compressed", False, "Subscribe to image/compressed instead of image."),
    ParameterSpec("publish_tf", True, "Publish an object frame per detection on /tf."),
    ParameterSpec("publish_debug_image", False, "Publish the overlay image on debug_image."),
    ParameterSpec("object_frame_prefix", "object_", "TF child frame of object i: <prefix><i>."),
    ParameterSpec(
        "publish_collision_objects",
        False,
        "Publish each object's CAD mesh as a moveit_msgs/CollisionObject on collision_object.",
    ),
    ParameterSpec(
        "collision_max_triangles", 2000, "Triangle budget of a collision mesh.", minimum=4
    ),
    ParameterSpec("autostart", True, "Configure and activate on start-up."),
)


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """The validated parameter values (see SCHEMA for their meaning)."""

    model_dir: str
    cad_db: str
    backend: str
    device: str
    score_threshold: float
    max_detections: int
    top_k: int
    sync_slop: float
    qos: str
    use_compressed: bool
    publish_tf: bool
    publish_debug_image: bool
    object_frame_prefix: str
    publish_collision_objects: bool
    collision_max_triangles: int
    autostart: bool


def validate(values: Mapping[str, object]) -> NodeSettings:
    """NodeSettings from {name: value} (a missing name takes its default); ParameterError naming
    every bad parameter and its allowed values, or an unknown name."""
    unknown = sorted(set(values) - {spec.name for spec in SCHEMA})
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}")
    checked, problems = {}, []
    for spec in SCHEMA:
        try:
            checked[spec.name] = spec.check(values.get(spec.name, spec.default))
        except ParameterError as err:
            problems.append(str(err))
    if problems:
        raise ParameterError("; ".join(problems))
    return NodeSettings(**checked)


def declare_parameters(node: Node) -> None:
    """Declare every SCHEMA parameter on `node` with its default and description."""
    for spec in SCHEMA:
        descriptor = ParameterDescriptor(
            description=spec.description,
            additional_constraints=f"{spec.allowed}; read at configure",
            dynamic_typing=True,
        )
        node.declare_parameter(spec.name, spec.default, descriptor)


def read_settings(node: Node) -> NodeSettings:
    """The validated values of the parameters declared by declare_parameters."""
    return validate({spec.name: node.get_parameter(spec.name).value for spec in SCHEMA})
