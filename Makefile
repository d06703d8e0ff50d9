# Two set-up commands: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv on first use. torch is installed first, pinned, so that no CUDA build is
# pulled; betty-ml 0.2.1 declares Python < 3.11 and needs --no-deps --ignore-requires-python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bench-quick bench-strategies bench-gpu lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python betty-ml==0.2.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job: TapWeight vs uniform weights vs no continued pretraining on the embedded default
# data, through Ray Tune, with the shared protocol; writes runs/quickstart-<date-time>/report/.
demo: $(STAMP)
	$(BIN)/tapweight run examples/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# CPU benchmarks; they need TAPWEIGHT_DATA_DIR (e.g. ../shared/data) and write BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python bench/featurization.py
	$(BIN)/python bench/tapweight_cost.py
	$(BIN)/python bench/ray_overhead.py
	$(BIN)/python bench/service_load.py

bench-quick: $(STAMP)
	$(BIN)/python bench/featurization.py --quick
	$(BIN)/python bench/tapweight_cost.py --quick
	$(BIN)/python bench/ray_overhead.py --quick
	$(BIN)/python bench/service_load.py --quick

# Every strategy on the five MoleculeNet sets, 3 seeds, with the local runner (one worker per
# core). STRATEGIES_SPEC=examples/molecules_fair_budgets.yaml runs BBBP and ESOL only.
STRATEGIES_SPEC ?= examples/molecules_all_strategies.yaml
bench-strategies: $(STAMP)
	$(BIN)/python bench/harness_comparison.py $(STRATEGIES_SPEC) --local --workers $$(nproc) --out runs/bench-$$(basename $(STRATEGIES_SPEC) .yaml)-$$(date +%Y%m%d-%H%M%S)

# The GPU set (a CUDA machine): TapWeight's cost with MiniLM, every strategy on two text tasks.
bench-gpu: $(STAMP)
	$(BIN)/python bench/tapweight_cost.py --domain text
	$(BIN)/python bench/harness_comparison.py examples/text_all_strategies_gpu.yaml --local --workers 8 --out runs/bench-text-$$(date +%Y%m%d-%H%M%S)

# Static checks CI runs before the tests: ruff (lint and format) and mypy (settings in
# pyproject.toml; it checks tapweight, baselines, harness and service).
lint: $(STAMP)
	$(BIN)/ruff check tapweight baselines harness service tests bench
	$(BIN)/ruff format --check tapweight baselines harness service tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
