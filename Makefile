# Quick start:  make demo   (create .venv, install, run the whole DAG on the built-in demo data)
#               make test   (create .venv, install, run the test suite: every tier, as CI does)
#               make test-fast  (the unit tier: no Snakemake run, training process, SLURM, browser or real data)
#               make lint   (ruff, snakefmt --check, snakemake --lint; CI runs it before the tests)
#               make bench  (train/infer images/s of every model and of smp's U-Net -> results/bench.json)
#               make sweep EXP=experiments/aux_weight.yaml  (an experiment's variants x seeds -> runs/<exp>/leaderboard.html)
#               make gpu-check  (on a GPU machine: benchmark + one fold of the competition preset, < 8 min)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= all
DATA_DIR ?= ../shared/data/tgs

.PHONY: demo test test-fast lint bench clean-demo sweep gpu-check gpu-wheels

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile workflow/presets/demo.yaml

test: $(STAMP)
	$(VENV)/bin/python -m pytest --durations=20

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not snakemake and not process and not slurm and not browser and not real_data and not slow" \
	  --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check src tools tests
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/snakemake --lint

bench: $(STAMP)
	mkdir -p results
	$(VENV)/bin/python -m saltnet.performance.bench --out results/bench.json

# An experiment file's variants at each of its seeds, each a run folder under runs/<experiment>/, then the
# leaderboard (runs/<experiment>/leaderboard.html): make sweep EXP=experiments/aux_weight.yaml DATA_DIR=/path/to/tgs
# (DATA_DIR given here overrides the experiment's data_dir; make sweep EXP=experiments/demo_aux_weight.yaml: the demo)
EXP ?= experiments/aux_weight.yaml
sweep: $(STAMP)
	$(VENV)/bin/snakemake -s workflow/sweep.smk --cores $(CORES) --config experiment=$(EXP) \
	  $(if $(filter command line,$(origin DATA_DIR)),data_dir=$(DATA_DIR))

# On a GPU machine (docs/gpu.md): the benchmark on CUDA, then one fold of the competition preset for
# 3 + 2 epochs at 128 and 224 px from random init, then prediction -> results/gpu-check.json. Uses the
# machine's python3 and its torch; the other packages come from .whl/ (make gpu-wheels, wherever pip
# reaches the package registry) when the machine has no internet, else from the registry.
GPU_PYTHON ?= python3
GPU_SITE ?= /tmp/saltnet-gpu-site
gpu-check:
	@if ! PYTHONPATH=src $(GPU_PYTHON) -c "import fastai, pretrainedmodels, jsonschema, saltnet.performance.gpucheck" 2>/dev/null; then \
	  if ls .whl/*.whl >/dev/null 2>&1; then \
	    $(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --target $(GPU_SITE) .whl/*.whl; \
	  else $(GPU_PYTHON) -m pip install -q --target $(GPU_SITE) fastai pretrainedmodels six segmentation-models-pytorch jsonschema; fi; \
	fi
	PYTHONPATH=src:$(GPU_SITE) PYTHONUNBUFFERED=1 $(GPU_PYTHON) -m saltnet.performance.gpucheck --out results/gpu-check.json

# The wheels gpu-check installs on a GPU node without internet (Python 3.12 there); run where pip works.
gpu-wheels: $(STAMP)
	$(VENV)/bin/python tools/gpu_wheels.py .whl
