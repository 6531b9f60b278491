"""trl-token-ext: dense token-level rewards for Hugging Face TRL's GRPO and RLOO trainers."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

# The one table of public names: module -> the names it defines, both sorted. Everything is imported lazily so
# that `import trl_token_ext` stays cheap and optional extras (peft, bitsandbytes, matplotlib) are only imported when
# the feature that needs them is used. `__all__` and the lazy lookup are derived from it. Library names only: the demo
# (`trl_token_ext.demo`) and the test builders (`trl_token_ext.testing`) are imported by whoever uses them.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "trl_token_ext.config": ("TokenRewardConfigMixin", "with_token_fields"),
    "trl_token_ext.curves": ("plot_reward_curves",),
    "trl_token_ext.models": ("SharedBaseModel", "load_policy", "load_scorer_model"),
    "trl_token_ext.registry": ("build_reward_func", "register_reward"),
    "trl_token_ext.scorers": (
        "EmbeddingConsistency",
        "ImplicitPRMQuality",
        "LexiconQuality",
        "LogProbQuality",
        "MetricReward",
        "OnlineImplicitPRM",
        "PotentialShaping",
        "ReferenceConsistency",
        "RepetitionConsistency",
        "SelfConsistency",
        "StepPRMReward",
        "StepReward",
        "TeacherDistillReward",
        "TokenClassifierQuality",
        "TokenScorer",
        "WeightedTokenReward",
    ),
    "trl_token_ext.script_args": ("TokenRewardScriptArguments",),
    "trl_token_ext.sentence.recipes": ("TrainClassifierArguments",),
    "trl_token_ext.sentence.reward": ("SentenceClassifierReward",),
    "trl_token_ext.sentence.split": ("align_sentences",),
    "trl_token_ext.sentence.train": ("train_sentence_classifier",),
    "trl_token_ext.step_prm.recipes": ("TrainPRMArguments",),
    "trl_token_ext.step_prm.train": ("train_step_prm",),
    "trl_token_ext.text": ("split_sentences",),
    "trl_token_ext.trainers.grpo": ("TokenGRPOConfig", "TokenGRPOTrainer"),
    "trl_token_ext.trainers.protocols": (
        "StatefulTokenReward",
        "TokenStepCallback",
        "TrainerBoundReward",
        "TrainsOwnModel",
    ),
    "trl_token_ext.trainers.records": ("OutcomeRewards", "TokenStepRecord"),
    "trl_token_ext.trainers.rloo": ("TokenRLOOConfig", "TokenRLOOTrainer"),
    "trl_token_ext.visualize": ("TokenHeatmapCallback", "heatmap_page", "token_heatmap_html"),
}
_LAZY: dict[str, str] = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trl_token_ext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
