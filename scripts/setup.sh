#!/usr/bin/env bash
# One-command set-up: system library, virtual environment, pinned Python and ROS 2 wheels, the
# message packages PyPI lacks, and this package in editable mode.
# Usage: scripts/setup.sh [VENV]   (default .venv; PYTHON selects the interpreter, default python3)
# Idempotent: when nothing it depends on changed since the last successful run it returns at once.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv}
python=${PYTHON:-python3}
stamp="$venv/.setup-stamp"
cd "$root"

inputs_hash() {
    cat requirements.txt requirements-ros.txt setup.py scripts/setup.sh scripts/build_msgs.sh \
        msgs/*/package.xml msgs/*/CMakeLists.txt msgs/*/msg/*.msg | sha256sum | cut -d' ' -f1
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(inputs_hash)" ] && [ -x "$venv/bin/python" ]; then
    echo "[setup] $venv is up to date"
    exit 0
fi

# open3d needs libusb at import time.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing libusb-1.0-0 with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
    else
        echo "[setup] libusb-1.0-0 is missing; run:  sudo apt-get install -y libusb-1.0-0" >&2
        exit 1
    fi
fi

# Headless Chromium renders the replay report in its test (and opens it for people); optional.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing chromium with apt-get (for the replay report check)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
            || echo "[setup] chromium could not be installed; the report render test will skip" >&2
    else
        echo "[setup] optional: sudo apt-get install -y chromium (renders the replay report test)"
    fi
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "[setup] $python is $("$python" --version 2>&1); Python >= 3.11 is required (set PYTHON=...)" >&2
    exit 1
fi
[ -x "$venv/bin/python" ] || { echo "[setup] creating $venv"; "$python" -m venv "$venv"; }

# pip, without the warnings some machines' pip configuration prints for absent local indexes.
pip() {
    "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
echo "[setup] installing Python dependencies (first run: a few minutes, ~7 GB)"
pip install -r requirements.txt -r requirements-ros.txt
pip install --no-deps -e .

scripts/build_msgs.sh "$venv"

# The default CAD database (procedural, deterministic, no network), embedded with the shipped
# model when there is one; commands build it on first use too.
echo "[setup] default CAD database"
if [ -f models/default/model.safetensors ]; then
    "$venv/bin/cad-perception" db default --quiet
else
    "$venv/bin/cad-perception" db default --no-embed --quiet
fi

inputs_hash >"$stamp"
echo "[setup] done: $venv"
