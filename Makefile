# cad_perception developer commands. Every target does its own set-up first.
VENV ?= .venv
PY := $(VENV)/bin/python
# A random DDS domain per run keeps concurrent test runs (and other robots) apart.
export ROS_DOMAIN_ID ?= $(shell shuf -i 1-101 -n 1)

.PHONY: setup lint format test test-slow bench clean

setup:
	scripts/setup.sh $(VENV)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

# Measured figures of this machine as JSON (CPU); real ShapeNet meshes are timed when the team's
# sample lies beside the repository.
SHAPENET_SAMPLE ?= ../shared/data/shapenet_sample
BENCH_OUT ?= bench.json
bench: setup
	$(VENV)/bin/cad-perception bench --json $(BENCH_OUT) \
		$(if $(wildcard $(SHAPENET_SAMPLE)),--shapenet $(SHAPENET_SAMPLE))

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache *.egg-info
