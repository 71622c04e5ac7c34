"""The package is an ament_python package that colcon builds, and a pip-installed package."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_EXEC_DEPENDS = {
    "rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "vision_msgs", "tf2_msgs",
    "diagnostic_msgs", "std_msgs",
}  # fmt: skip


def test_package_xml_is_format_3_ament_python_with_the_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "cad_perception"
    assert root.findtext("export/build_type") == "ament_python"
    assert {e.text for e in root.findall("exec_depend")} >= REQUIRED_EXEC_DEPENDS


def test_console_script_runs_from_the_venv():
    script = Path(sys.executable).parent / "cad-perception"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "score" in result.stdout


def test_colcon_builds_the_package_in_a_workspace(tmp_path: Path):
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    if colcon is None:
        pytest.skip("colcon is not installed (it comes with `make setup`)")
    source = tmp_path / "src" / "cad_perception"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*cache*")
    )
    env = {**os.environ, "AMENT_PREFIX_PATH": sys.prefix}
    result = subprocess.run(
        [colcon, "build", "--base-paths", "src"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    install = tmp_path / "install" / "cad_perception"
    # msgs/ carries COLCON_IGNORE: a workspace uses the real vision_msgs and tf2_msgs.
    assert sorted(p.name for p in (tmp_path / "install").iterdir() if p.is_dir()) == [
        "cad_perception"
    ]
    assert (install / "share/ament_index/resource_index/packages/cad_perception").exists()
    assert (install / "share/cad_perception/package.xml").exists()
    assert (install / "share/cad_perception/models/README.md").exists()
    assert (install / "lib/cad_perception/cad-perception").exists()
