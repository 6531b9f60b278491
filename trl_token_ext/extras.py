"""Optional dependencies: which extra of ``pip install trl-token-ext[...]`` brings which package, and the one
ImportError that names it.

The core install (torch, trl, transformers, accelerate, peft, datasets, evaluate) trains with token rewards; each
extra adds one feature (docs/installation.md).
"""

from __future__ import annotations

import importlib
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


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'trl-token-ext[extra]'``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; the extras are {sorted(EXTRAS)}.")
    return f"pip install 'trl-token-ext[{extra}]'"


def missing_extra(module: str, extra: str, feature: str) -> ImportError:
    """The ImportError for ``feature`` when ``module`` (installed by ``extra``) is missing."""
    return ImportError(f"{feature} needs the {module} package, which is not installed: {install_hint(extra)}")


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``; when it is missing, raise `missing_extra` (naming ``feature`` and the extra to install)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_extra(module, extra, feature) from error
