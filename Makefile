# Everything starts from `make demo` or `make test` on a fresh machine: only Python 3.10+ and make are assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first, pinned, so that pip takes the CPU build on disk instead of a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-slow docs-check test-compat mutation lint format bench real-ab verifier-study clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,demo]"
	touch $(STAMP)

install: $(STAMP)

# The sentiment task trained twice (token rewards / outcome-only control) side by side, one thread per arm, within
# 10 minutes on 2 cores (docs/demo.md). `make demo DEMO_ARGS="--task arithmetic"` runs the second task,
# `DEMO_ARGS="--task all"` both; `DEMO_ARGS="--task sentiment --jobs 1"` one arm at a time.
DEMO_ARGS ?= --task sentiment
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/trl-token demo $(DEMO_ARGS)

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

# The fast benchmarks (minutes); the real-model studies take hours on 2 cores: `make real-ab`, `make verifier-study`
# (both resumable).
bench: $(STAMP)
	@for f in $(filter-out benchmarks/real_ab% benchmarks/verifier_%,$(wildcard benchmarks/*.py)); do echo "== $$f"; OMP_NUM_THREADS=1 $(BIN)/python $$f || exit 1; done

# docs/evidence.md: SmolLM2-135M-Instruct + LoRA, 2 tasks x 3 arms x 3 seeds, results under reports/real_ab.
real-ab: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_ab.py --out reports/real_ab

# docs/evidence.md: the pre-registered verifier study (docs/evidence/preregistration.md), two runs at a time.
VERIFIER_OUT ?= reports/verifier_study
verifier-study: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/verifier_study.py --out $(VERIFIER_OUT) --lr-file \
		docs/evidence/verifier_study/selection/learning_rates.json --worker 1/2 & \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/verifier_study.py --out $(VERIFIER_OUT) --lr-file \
		docs/evidence/verifier_study/selection/learning_rates.json --worker 2/2; wait
	$(BIN)/python benchmarks/verifier_report.py --out $(VERIFIER_OUT)

# Mutation testing of the math core against its fast tests ([tool.mutmut] in pyproject.toml; docs/testing.md).
# ~6 min on 2 cores; not part of `make test`. Run before each release.
# Scope: every function of the math-core files, of the vocabulary (choices.py) and text helpers (text.py), and the
# span helpers of scorers/_common.py (its model loading is not math and is covered by the scorer integration tests).
COMMON := trl_token_ext.scorers._common
MUTATION_SCOPE ?= "trl_token_ext.advantages.*" "trl_token_ext.losses.*" "trl_token_ext.token_rewards.*" \
	"trl_token_ext.config.*" "trl_token_ext.alignment.*" "trl_token_ext.choices.*" "trl_token_ext.text.*" \
	"$(COMMON).x*TokenScorer*" "$(COMMON).x_decode_with_spans*" "$(COMMON).x_get_column*" \
	"$(COMMON).x_check_placement*" "$(COMMON).x_spread_scores*" "$(COMMON).x_group_indices*" \
	"$(COMMON).x_same_tokenizer*"
mutation: $(STAMP)
	rm -rf mutants && mkdir mutants
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 $(MUTATION_SCOPE) > mutants/run.log 2>&1 \
		|| (tail -c 3000 mutants/run.log; exit 1)
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache mutants

# A wheel built from the tree, installed with its core dependencies only in a fresh venv: trains a tiny model, and
# each extra's feature names its extra (docs/installation.md; a few minutes, needs the package index).
.PHONY: wheel-check
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python TORCH_SPEC="$(TORCH_SPEC)" bash scripts/check_wheel.sh
