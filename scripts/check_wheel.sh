#!/usr/bin/env bash
# Wheel check: build the wheel from this tree, install it into a fresh venv with its CORE dependencies only (torch
# pinned first, from the local CPU wheel as `make install` does), then run scripts/check_wheel.py there: the package
# comes from site-packages, TokenGRPOTrainer trains a tiny model, and each extra's feature names its extra. Last, the
# demo (an optional subpackage shipped behind the [demo] extra): `trl-token demo` stops at once naming the extra.
#   bash scripts/check_wheel.sh        (make wheel-check)
# Leaves .wheel-check/{dist,venv,freeze.txt,check.log}; the last line prints the seconds it took.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
OUT=.wheel-check
start=$(date +%s)
rm -rf "$OUT" && mkdir -p "$OUT/dist"
$PYTHON -m pip wheel --quiet --no-deps -w "$OUT/dist" .
WHEEL=$(ls "$OUT"/dist/trl_token_ext-*.whl)
$PYTHON -m venv "$OUT/venv"
PIP="$OUT/venv/bin/python -m pip"
$PIP install --quiet "$TORCH_SPEC"
$PIP install --quiet "$WHEEL"
$PIP freeze >"$OUT/freeze.txt"
# Run from outside the source tree so that `import trl_token_ext` finds the installed wheel.
(cd "$OUT" && OMP_NUM_THREADS=1 PYTHONPATH= venv/bin/python ../scripts/check_wheel.py) 2>&1 | tee "$OUT/check.log"
grep -q "^wheel_check: ok$" "$OUT/check.log"
# The library imports without the demo's packages; the demo command refuses to start, naming [demo].
(cd "$OUT" && PYTHONPATH= venv/bin/python -c "from trl_token_ext import TokenGRPOTrainer; print('core import:', \
    TokenGRPOTrainer.__name__)")
if (cd "$OUT" && PYTHONPATH= venv/bin/trl-token demo --tiny --output_dir demo-report) >"$OUT/demo.log" 2>&1; then
    echo "the demo ran without the [demo] extra" && exit 1
fi
grep -q "pip install 'trl-token-ext\[demo\]'" "$OUT/demo.log" || { cat "$OUT/demo.log"; exit 1; }
[ ! -e "$OUT/demo-report" ] || { echo "the demo wrote a report without its extra"; exit 1; }
echo "[demo]: $(tail -1 "$OUT/demo.log")"
echo "wheel_check_seconds: $(($(date +%s) - start))"
