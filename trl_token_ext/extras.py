"""Optional dependencies: which extra of ``pip install trl-token-ext[...]`` brings which package, and the one
ImportError that names it.

The core install (torch, trl, transformers, accelerate, peft, datasets, evaluate) trains with token rewards; each
extra adds one feature (docs/installation.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

# extra -> the import names of what it installs (pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "classifier": ("sklearn",),
    "demo": ("gguf", "matplotlib", "rich"),
    "lexicon": ("vaderSentiment",),
    "math": ("math_verify",),
    "metrics": ("sacrebleu", "rouge_score"),
    "quantization": ("bitsandbytes",),
    "sentences": ("pysbd",),
    "trackers": ("tensorboard", "wandb"),
}
# extra -> the extras it installs too (``demo = ["trl-token-ext[sentences,classifier]", ...]``)
INCLUDES: dict[str, tuple[str, ...]] = {"demo": ("sentences", "classifier")}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'trl-token-ext[extra]'``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; the extras are {sorted(EXTRAS)}.")
    return f"pip install 'trl-token-ext[{extra}]'"


def extra_modules(extra: str) -> tuple[str, ...]:
    """The import names ``extra`` installs, those of the extras it includes first (``"demo"``: pysbd, sklearn, gguf,
    matplotlib, rich)."""
    install_hint(extra)  # a ValueError names an unknown extra
    return tuple(module for part in (*INCLUDES.get(extra, ()), extra) for module in EXTRAS[part])


def missing_extra(module: str | Sequence[str], extra: str, feature: str) -> ImportError:
    """The ImportError for ``feature`` when ``module`` (installed by ``extra``) is missing; a sequence of modules names
    every missing one."""
    names = [module] if isinstance(module, str) else list(module)
    what = f"the {names[0]} package, which is" if len(names) == 1 else f"the {', '.join(names)} packages, which are"
    return ImportError(f"{feature} needs {what} not installed: {install_hint(extra)}")


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``; when it is missing, raise `missing_extra` (naming ``feature`` and the extra to install)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_extra(module, extra, feature) from error


def require_extra(extra: str, feature: str) -> None:
    """Check, without importing them, that every package of ``extra`` (`extra_modules`) is installed; else raise
    `missing_extra` naming ``feature``, the missing packages and the extra to install. Cheap: call it before any
    work."""
    missing = [module for module in extra_modules(extra) if not _installed(module)]
    if missing:
        raise missing_extra(missing, extra, feature)


def _installed(module: str) -> bool:
    """``module`` is importable (an entry ``None`` in ``sys.modules`` blocks an import, as Python's import does)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None
