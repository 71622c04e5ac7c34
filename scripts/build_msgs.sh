#!/usr/bin/env bash
# Build the message packages that a ROS 2 install provides but PyPI lacks (msgs/*) into a venv.
# Usage: scripts/build_msgs.sh VENV
# Skips the build when the packages already import (a sourced ROS install, or an earlier build).
set -euo pipefail

venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"

if "$py" - <<'PY' 2>/dev/null
from tf2_msgs.msg import TFMessage  # noqa: F401
from vision_msgs.msg import Detection3DArray, ObjectHypothesisWithPose, VisionInfo  # noqa: F401
PY
then
    echo "[build_msgs] vision_msgs and tf2_msgs already import: nothing to build"
    exit 0
fi

# The message wheels' exported CMake targets name the wheel builder's include paths; point them
# at this interpreter's Python headers and numpy instead (idempotent).
py_include=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_include=$("$py" -c "import numpy; print(numpy.get_include())")
grep -rl --include='*.cmake' -e '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null | while read -r f; do
    sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" "$f"
done

export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
for pkg in vision_msgs tf2_msgs; do
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

"$py" -c "from tf2_msgs.msg import TFMessage; from vision_msgs.msg import Detection3DArray"
echo "[build_msgs] vision_msgs and tf2_msgs installed into $venv"
