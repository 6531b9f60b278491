# Everything starts from `make demo` or `make test` on a fresh machine: only Python 3.10+ and make are assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first, pinned, so that pip takes the CPU build on disk instead of a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-slow docs-check test-compat lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,demo]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/trl-token demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Every command written in README.md, docs/ and the example and recipe headers, on tiny models, offline (~15 min).
docs-check: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m docs tests/test_docs_commands.py $(PYTEST_ARGS)

# The fast suite against the built wheel in fresh venvs under .compat/: oldest supported trl/transformers/
# accelerate/datasets, then the newest on the package index (installed before the wheel: no downgrade allowed).
test-compat: $(STAMP)
	PYTHON=$(BIN)/python TORCH_SPEC="$(TORCH_SPEC)" bash scripts/compat.sh oldest
	PYTHON=$(BIN)/python TORCH_SPEC="$(TORCH_SPEC)" bash scripts/compat.sh newest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; OMP_NUM_THREADS=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
