"""The launch file: what can be checked without launch_ros (not on PyPI), and loading it where
launch_ros imports."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "cad_perception.launch.py"


def constants() -> dict[str, object]:
    """The launch file's upper-case module constants, read without importing launch."""
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id.isupper()
    }


def test_launch_file_compiles_and_names_existing_files_and_the_console_script():
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")
    values = constants()
    assert values["PACKAGE"] == "cad_perception"
    assert (ROOT.joinpath(*values["PARAMS_FILE"])).is_file()
    rviz = yaml.safe_load(ROOT.joinpath(*values["RVIZ_FILE"]).read_text())
    topics = {d.get("Topic", {}).get("Value") for d in rviz["Visualization Manager"]["Displays"]}
    assert {"/markers", "/debug_image"} <= topics
    assert '*tree("rviz")' in (ROOT / "setup.py").read_text()
    assert re.search(
        rf'"{values["EXECUTABLE"]} = cad_perception\.ros\.node:main"',
        (ROOT / "setup.py").read_text(),
    )
    parameters = yaml.safe_load(ROOT.joinpath(*values["PARAMS_FILE"]).read_text())
    # the file's parameters reach the launched node, in whatever namespace it is launched
    assert f"/**/{values['NODE_NAME']}" in parameters
    text = LAUNCH.read_text()
    for remapping in (
        '("image", image)',
        '("camera_info", LaunchConfiguration("camera_info_topic"))',
    ):
        assert remapping in text


def test_launch_defaults_match_the_parameters_file():
    values = constants()
    parameters = yaml.safe_load((ROOT / "config" / "cad_perception.yaml").read_text())
    assert (
        values["DEFAULTS"]["backend"]
        == parameters["/**/cad_perception"]["ros__parameters"]["backend"]
    )
    assert set(values["DEFAULTS"]) | {"params_file"} == {
        "namespace", "image_topic", "camera_info_topic", "params_file", "backend", "use_rviz"
    }  # fmt: skip


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not on PyPI; runs in a ROS 2 workspace",
)
def test_launch_description_loads():
    spec = importlib.util.spec_from_file_location("cad_perception_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.entities if hasattr(a, "default_value")}
    assert {"namespace", "image_topic", "camera_info_topic", "params_file", "backend"} <= names
