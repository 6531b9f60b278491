"""Step-level process reward models: their input formats, and training a token-classification PRM.

* `trl_token_ext.step_prm.inputs`: the three PRM input formats (TRL's token classification, Math-Shepherd,
  Qwen2.5-Math-PRM): ids and the position that scores each step. The reward is
  `trl_token_ext.scorers.StepPRMReward`.
* :func:`train_step_prm`, :func:`train_prm_main` (``trl-token train-prm``), :class:`TrainPRMArguments`: LoRA
  fine-tuning on stepwise-supervision data with transformers' ``Trainer`` and step-level ``evaluate`` metrics.

Training helpers are imported on first use (they pull in ``datasets``/``evaluate``/``peft``).
"""

from __future__ import annotations

from trl_token_ext import _lazy_exports

_lazy_exports(
    globals(),
    {
        "trl_token_ext.step_prm.data": ("check_stepwise_dataset",),
        "trl_token_ext.step_prm.metrics": ("step_metrics",),
        "trl_token_ext.step_prm.recipes": ("TrainPRMArguments", "train_prm_main"),
        "trl_token_ext.step_prm.train": ("train_step_prm",),
    },
)
