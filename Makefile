# cad_perception developer commands. Every target does its own set-up first.
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/cad-perception
# A random DDS domain per run keeps concurrent test runs (and other robots) apart.
export ROS_DOMAIN_ID ?= $(shell shuf -i 1-101 -n 1)

.PHONY: setup lint format test test-slow bench soak heldout demo clean

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
	$(CLI) bench --profile --iters 40 --json $(BENCH_OUT) --svg $(BENCH_OUT:.json=.svg) \
		$(if $(wildcard $(SHAPENET_SAMPLE)),--shapenet $(SHAPENET_SAMPLE))
	$(PY) -m cad_perception.ros.bench --duration 60 --json bench-node.json

# The node at 30 Hz for 10 minutes (shipped model): drops, latency and memory growth as JSON.
soak: setup
	$(PY) -m cad_perception.ros.bench --duration 600 --json soak.json

# The whole job on the embedded defaults: a synthetic camera bag with ground truth, replayed live
# over DDS through the node (shipped model, default CAD database), scored, with an HTML report.
DEMO ?= build/demo
DEMO_FRAMES ?= 30
DEMO_RATE ?= 0.2
demo: setup
	rm -rf $(DEMO)/bag
	$(CLI) synth-bag --out $(DEMO)/bag --frames $(DEMO_FRAMES) --seed 7 --quiet
	$(CLI) replay $(DEMO)/bag --live --rate $(DEMO_RATE) --report $(DEMO)/report \
		--json $(DEMO)/replay.json
	@echo "report: $(DEMO)/report/index.html (overlays beside it); JSON: $(DEMO)/replay.json"

# The shipped model's held-out figures (models/default/README.md): two test sets rendered with
# seeds never used in training, one from the CADs it trained on, one from held-out CADs.
HELDOUT ?= build/heldout
HELDOUT_SCENES ?= 200
heldout: setup
	$(CLI) synth --split train --seed 90000 --scenes $(HELDOUT_SCENES) --out $(HELDOUT)/seen --quiet
	$(CLI) synth --unseen-cads --seed 91000 --scenes $(HELDOUT_SCENES) --out $(HELDOUT)/unseen \
		--quiet
	$(CLI) eval --data $(HELDOUT)/seen --json $(HELDOUT)/seen.json --quiet
	$(CLI) eval --data $(HELDOUT)/unseen --json $(HELDOUT)/unseen.json --quiet

# Reproduce (or continue, with INIT=models/default) the shipped model's training on this machine:
# the training scenes use the CAD library's train split and seeds the held-out sets never use.
TRAIN_DATA ?= build/train_data
TRAIN_CONFIG ?= models/train_default.yaml
TRAIN_RUN ?= build/train_default
TRAIN_SCENES ?= 2500
INIT ?=
train-default: setup
	[ -f $(TRAIN_DATA)/annotations.json ] || $(CLI) synth --split train --seed 1000 \
		--scenes $(TRAIN_SCENES) --out $(TRAIN_DATA) --quiet
	$(CLI) train --config $(TRAIN_CONFIG) --data $(TRAIN_DATA) \
		--db "$$($(CLI) db default --no-embed --quiet)" --out $(TRAIN_RUN) \
		$(if $(INIT),--init-checkpoint $(INIT)) $(if $(wildcard $(TRAIN_RUN)/checkpoint-*),--resume)

# Copy a checkpoint into models/default as float16 safetensors + config (CHECKPOINT=run/checkpoint-N).
ship-default: setup
	$(PY) -c "import sys; from cad_perception.model.checkpoint import load_model, save_checkpoint; \
		save_checkpoint('models/default.new', load_model(sys.argv[1]), half=True)" $(CHECKPOINT)
	cp models/default/README.md models/default.new/ 2>/dev/null || true
	rm -rf models/default && mv models/default.new models/default

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache *.egg-info
