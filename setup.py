"""Build script: an ament_python package that is also pip-installable in a plain venv."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "cad_perception"
ROOT = Path(__file__).resolve().parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file below `folder` under share/<package>/<folder>."""
    if not (ROOT / folder).is_dir():
        return []
    entries = []
    directories = [ROOT / folder, *(p for p in (ROOT / folder).rglob("*") if p.is_dir())]
    for directory in sorted(directories):
        files = sorted(str(f.relative_to(ROOT)) for f in directory.iterdir() if f.is_file())
        if files:
            entries.append((f"share/{PACKAGE}/{directory.relative_to(ROOT)}", files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROCA single-image CAD retrieval and 9-DoF alignment for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("rviz"),
        *tree("models"),
    ],
    install_requires=["numpy", "scipy", "torch", "tqdm"],
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "cad-perception = cad_perception.cli:main",
            "cad_perception_node = cad_perception.ros.node:main",
        ],
    },
)
