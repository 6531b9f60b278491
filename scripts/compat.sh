#!/usr/bin/env bash
# Compatibility job: build the wheel, install it into plain venvs under .compat/ and run the fast test suite there.
#   scripts/compat.sh oldest   # the lower bounds of pyproject.toml (trl, transformers, accelerate, datasets)
#   scripts/compat.sh newest   # the newest releases on the package index, installed BEFORE the wheel; the wheel's
#                              # install must not change any of them (no downgrade), checked from the pip freezes.
# Each row leaves .compat/<row>/{freeze-before.txt,freeze.txt,pytest.log,result.txt}. torch is installed first,
# pinned, so that pip takes the CPU build on disk (TORCH_SPEC) instead of a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROW=${1:?usage: scripts/compat.sh oldest|newest}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STACK="trl transformers accelerate datasets"
OLDEST="trl==1.16.0 transformers==5.23.0 accelerate==1.15.0 datasets==5.2.0"
OUT=.compat/$ROW
rm -rf "$OUT" && mkdir -p "$OUT" .compat/dist
rm -f .compat/dist/*.whl
$PYTHON -m pip wheel --quiet --no-deps -w .compat/dist .
WHEEL=$(ls .compat/dist/trl_token_ext-*.whl)
$PYTHON -m venv "$OUT/venv"
PIP="$OUT/venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
$PIP install --quiet "$TORCH_SPEC"
if [ "$ROW" = newest ]; then
    $PIP install --quiet --upgrade $STACK
    $PIP freeze >"$OUT/freeze-before.txt"
    $PIP install --quiet "$WHEEL[test,demo]"
else
    $PIP install --quiet "$WHEEL[test,demo]" $OLDEST
fi
$PIP freeze >"$OUT/freeze.txt"
status=ok
if [ "$ROW" = newest ]; then  # the wheel's install changed none of the stack installed before it
    for name in torch $STACK; do
        before=$(grep -i "^$name==" "$OUT/freeze-before.txt" || true)
        after=$(grep -i "^$name==" "$OUT/freeze.txt" || true)
        if [ "$before" != "$after" ]; then echo "CHANGED: $before -> $after" | tee -a "$OUT/result.txt"; status=fail; fi
    done
fi
# The tests import the installed wheel, not the checkout: run pytest from a copy of tests/ outside the source tree.
rm -rf "$OUT/run" && mkdir -p "$OUT/run" && cp -r tests pyproject.toml "$OUT/run/"
for item in examples docs README.md; do ln -s "$PWD/$item" "$OUT/run/$item"; done
(cd "$OUT/run" && OMP_NUM_THREADS=1 ../venv/bin/python -c \
    "import trl_token_ext, sys; assert 'site-packages' in trl_token_ext.__file__, trl_token_ext.__file__" \
    && OMP_NUM_THREADS=1 timeout 3000 ../venv/bin/python -m pytest -q -x -p no:cacheprovider) >"$OUT/pytest.log" 2>&1 \
    || status=fail
grep -iE "^($(echo torch $STACK | tr ' ' '|'))==" "$OUT/freeze.txt" | tee -a "$OUT/result.txt"
tail -1 "$OUT/pytest.log" | tee -a "$OUT/result.txt"
echo "$ROW: $status" | tee -a "$OUT/result.txt"
[ "$status" = ok ]
