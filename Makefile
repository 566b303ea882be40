# Quick start:  make demo   (create .venv, install, run the whole DAG on the built-in demo data)
#               make test   (create .venv, install, run the test suite)
#               make bench  (train/infer images/s of every model and of smp's U-Net -> results/bench.json)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= all
DATA_DIR ?= ../shared/data/tgs

.PHONY: demo test lint bench clean-demo ablation

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

bench: $(STAMP)
	mkdir -p results
	$(VENV)/bin/python -m saltnet.bench --out results/bench.json

# What each recipe part buys on the real data: short one-fold proxies (about 8 min each on 2 cores).
ablation: $(STAMP)
	$(VENV)/bin/python -m saltnet.ablate --data-dir $(DATA_DIR) --out results/ablation.json
