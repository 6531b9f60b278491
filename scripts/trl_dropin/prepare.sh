#!/usr/bin/env bash
# Extract TRL's test files from a local git mirror (no work tree) at REF, build the offline stand-ins, and lay out
# RUN_DIR for scripts/trl_dropin/run.sh. Nothing from TRL is written into this repository.
#
#   scripts/trl_dropin/prepare.sh <trl-git-dir> <ref> [run-dir]
#   e.g. scripts/trl_dropin/prepare.sh /work/.mirror/huggingface+trl/repo v1.16.0 /tmp/trl-dropin-run
set -euo pipefail
TRL_GIT=${1:?trl git dir}
REF=${2:?tag or commit}
RUN_DIR=${3:-/tmp/trl-dropin-run}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$HERE/../../.venv/bin/python}

mkdir -p "$RUN_DIR"
rm -rf "$RUN_DIR/tests"
git -C "$TRL_GIT" archive "$REF" tests | tar -x -C "$RUN_DIR"
git -C "$TRL_GIT" rev-parse "$REF^{commit}" > "$RUN_DIR/TRL_TESTS_COMMIT"
echo "TRL tests from $REF = $(cat "$RUN_DIR/TRL_TESTS_COMMIT") (VERSION $(git -C "$TRL_GIT" show "$REF:VERSION" 2>/dev/null || echo '?'))"

# Compatibility shim, applied to the scratch copy only: helpers that the tests' testing_utils.py imports from
# trl.import_utils but that the installed trl lacks are defined locally (only when missing).
"$PY" - "$RUN_DIR/tests/testing_utils.py" <<'PYEOF'
import importlib, re, sys
import trl.import_utils as iu

path = sys.argv[1]
src = open(path).read()
m = re.search(r"from trl\.import_utils import \(([^)]*)\)", src)
names = [n.strip() for n in m.group(1).split(",") if n.strip()]
missing = [n for n in names if not hasattr(iu, n)]
if missing:
    kept = [n for n in names if n not in missing]
    block = "from trl.import_utils import (\n" + "".join(f"    {n},\n" for n in kept) + ")\n"
    block += "import importlib.util as _ilu\n"
    for n in missing:
        pkg = n[len("is_"):-len("_available")]
        block += f"def {n}():  # trl_dropin shim\n    return _ilu.find_spec({pkg!r}) is not None\n"
    src = src[: m.start()] + block + src[m.end():]
    open(path, "w").write(src)
print("shimmed into testing_utils.py:", missing or "nothing")
PYEOF

# Optional test dependencies kept out of the project venv: jmespath un-skips TRL's tool/environment tests.
"$PY" -m pip install -q --target "$RUN_DIR/extra" jmespath

"$PY" "$HERE/build_standins.py" "$RUN_DIR"
