"""Step-level process reward models: their input formats, and training a token-classification PRM.

* `trl_token_ext.step_prm.inputs`: the three PRM input formats (TRL's token classification, Math-Shepherd,
  Qwen2.5-Math-PRM): ids and the position that scores each step. The reward is
  `trl_token_ext.scorers.StepPRMReward`.
* :func:`train_step_prm`, :func:`train_prm_main` (``trl-token train-prm``), :class:`TrainPRMArguments`: LoRA
  fine-tuning on stepwise-supervision data with transformers' ``Trainer`` and step-level ``evaluate`` metrics.

Training helpers are imported on first use (they pull in ``datasets``/``evaluate``/``peft``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "check_stepwise_dataset": "trl_token_ext.step_prm.data",
    "step_metrics": "trl_token_ext.step_prm.metrics",
    "train_step_prm": "trl_token_ext.step_prm.train",
    "TrainPRMArguments": "trl_token_ext.step_prm.recipes",
    "train_prm_main": "trl_token_ext.step_prm.recipes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trl_token_ext.step_prm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
