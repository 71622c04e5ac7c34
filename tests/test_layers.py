"""The architecture of DESIGN.md: imports point down the layer stack; only ros/ imports rclpy."""

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "cad_perception"

# Layers from top to bottom; a module may import its own layer and the layers below it. This is
# DESIGN.md's stack with one refinement: synth renders scenes from the CAD library, so it sits
# above cad.
LAYERS = ["ros", "cli", "pipeline", "engine", "model", "synth", "cad", "eval", "geometry"]
ROS_ONLY = {
    "rclpy", "rosidl_runtime_py", "std_msgs", "sensor_msgs", "geometry_msgs", "vision_msgs",
    "visualization_msgs", "tf2_msgs", "diagnostic_msgs", "shape_msgs",
}  # fmt: skip


def layer_of(module: str) -> str | None:
    """The layer name of a `cad_perception.<layer>...` module, None for the package root."""
    parts = module.split(".")
    if parts[0] != "cad_perception" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def test_every_subpackage_layer_is_a_package():
    for layer in ("ros", "engine", "model", "synth", "cad", "eval", "geometry"):
        assert (PACKAGE_DIR / layer / "__init__.py").exists(), f"cad_perception/{layer}/ missing"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_imports_point_down(path: Path):
    module = ".".join(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    own = layer_of(module)
    for name in imports_of(path):
        root = name.split(".")[0]
        if root in ROS_ONLY:
            assert own == "ros", f"{module} imports {name}: only cad_perception.ros may use ROS"
        target = layer_of(name)
        if own is not None and target is not None:
            assert LAYERS.index(target) >= LAYERS.index(own), (
                f"{module} ({own}) imports {name} ({target}), a layer above it"
            )
