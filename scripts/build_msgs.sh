#!/usr/bin/env bash
# Build the message packages that a ROS 2 install provides but PyPI lacks (msgs/*) into a venv.
# Usage: scripts/build_msgs.sh VENV
# Skips the build when the packages already import (a sourced ROS install, or an earlier build).
set -euo pipefail

venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"

# Each package with the import that proves it is present, in build order (dependencies first).
packages=(
    "vision_msgs:from vision_msgs.msg import Detection3DArray, ObjectHypothesisWithPose, VisionInfo"
    "tf2_msgs:from tf2_msgs.msg import TFMessage"
    "object_recognition_msgs:from object_recognition_msgs.msg import ObjectType"
    "moveit_msgs:from moveit_msgs.msg import CollisionObject"
)
missing=()
for entry in "${packages[@]}"; do
    if "$py" -c "${entry#*:}" 2>/dev/null; then
        echo "[build_msgs] ${entry%%:*} already imports: skipped"
    else
        missing+=("${entry%%:*}")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# The message wheels' exported CMake targets name the wheel builder's include paths; point them
# at this interpreter's Python headers and numpy instead (idempotent).
py_include=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_include=$("$py" -c "import numpy; print(numpy.get_include())")
{ grep -rl --include='*.cmake' -e '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null || true; } |
while read -r f; do
    sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" "$f"
done

export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
for pkg in "${missing[@]}"; do
    echo "[build_msgs] building $pkg"
    build="$venv/build-msgs/$pkg"
    mkdir -p "$build"
    cmake -S "$root/msgs/$pkg" -B "$build" -Wno-dev \
        -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
        -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF >"$build.log" 2>&1 \
        || { tail -n 30 "$build.log"; echo "[build_msgs] configuring $pkg failed: see $build.log"; exit 1; }
    { cmake --build "$build" -j2 && cmake --install "$build"; } >>"$build.log" 2>&1 \
        || { tail -n 30 "$build.log"; echo "[build_msgs] building $pkg failed: see $build.log"; exit 1; }
done

for entry in "${packages[@]}"; do
    "$py" -c "${entry#*:}"
done
echo "[build_msgs] ${missing[*]} installed into $venv"
