# cad_perception developer commands. Every target does its own set-up first.
VENV ?= .venv
PY := $(VENV)/bin/python
# A random DDS domain per run keeps concurrent test runs (and other robots) apart.
export ROS_DOMAIN_ID ?= $(shell shuf -i 1-101 -n 1)

.PHONY: setup lint format test test-slow clean

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

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache *.egg-info
