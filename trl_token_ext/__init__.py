"""trl-token-ext: dense token-level rewards for Hugging Face TRL's GRPO and RLOO trainers."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# Public name -> module that defines it. Everything is imported lazily so that `import trl_token_ext` stays cheap and
# optional extras (peft, bitsandbytes, matplotlib) are only imported when the feature that needs them is used.
# Library names only: the demo (`trl_token_ext.demo`) and the test builders (`trl_token_ext.testing`) are imported
# by whoever uses them, never from here.
_LAZY: dict[str, str] = {
    "EmbeddingConsistency": "trl_token_ext.scorers",
    "ImplicitPRMQuality": "trl_token_ext.scorers",
    "LexiconQuality": "trl_token_ext.scorers",
    "LogProbQuality": "trl_token_ext.scorers",
    "MetricReward": "trl_token_ext.scorers",
    "OnlineImplicitPRM": "trl_token_ext.scorers",
    "OutcomeRewards": "trl_token_ext.trainers.records",
    "PotentialShaping": "trl_token_ext.scorers",
    "ReferenceConsistency": "trl_token_ext.scorers",
    "RepetitionConsistency": "trl_token_ext.scorers",
    "SelfConsistency": "trl_token_ext.scorers",
    "SentenceClassifierReward": "trl_token_ext.sentence.reward",
    "SharedBaseModel": "trl_token_ext.models",
    "StatefulTokenReward": "trl_token_ext.trainers.protocols",
    "StepPRMReward": "trl_token_ext.scorers",
    "StepReward": "trl_token_ext.scorers",
    "TeacherDistillReward": "trl_token_ext.scorers",
    "TokenClassifierQuality": "trl_token_ext.scorers",
    "TokenGRPOConfig": "trl_token_ext.trainers.grpo",
    "TokenGRPOTrainer": "trl_token_ext.trainers.grpo",
    "TokenHeatmapCallback": "trl_token_ext.visualize",
    "TokenRLOOConfig": "trl_token_ext.trainers.rloo",
    "TokenRLOOTrainer": "trl_token_ext.trainers.rloo",
    "TokenRewardConfigMixin": "trl_token_ext.config",
    "TokenRewardScriptArguments": "trl_token_ext.script_args",
    "TokenScorer": "trl_token_ext.scorers",
    "TokenStepCallback": "trl_token_ext.trainers.protocols",
    "TokenStepRecord": "trl_token_ext.trainers.records",
    "TrainClassifierArguments": "trl_token_ext.sentence.recipes",
    "TrainPRMArguments": "trl_token_ext.step_prm.recipes",
    "TrainerBoundReward": "trl_token_ext.trainers.protocols",
    "TrainsOwnModel": "trl_token_ext.trainers.protocols",
    "WeightedTokenReward": "trl_token_ext.scorers",
    "align_sentences": "trl_token_ext.sentence.split",
    "build_reward_func": "trl_token_ext.registry",
    "heatmap_page": "trl_token_ext.visualize",
    "load_policy": "trl_token_ext.models",
    "load_scorer_model": "trl_token_ext.models",
    "plot_reward_curves": "trl_token_ext.visualize",
    "register_reward": "trl_token_ext.registry",
    "split_sentences": "trl_token_ext.sentence.split",
    "token_heatmap_html": "trl_token_ext.visualize",
    "train_sentence_classifier": "trl_token_ext.sentence.train",
    "train_step_prm": "trl_token_ext.step_prm.train",
    "with_token_fields": "trl_token_ext.config",
}

__all__ = [
    "EmbeddingConsistency",
    "ImplicitPRMQuality",
    "LexiconQuality",
    "LogProbQuality",
    "MetricReward",
    "OnlineImplicitPRM",
    "OutcomeRewards",
    "PotentialShaping",
    "ReferenceConsistency",
    "RepetitionConsistency",
    "SelfConsistency",
    "SentenceClassifierReward",
    "SharedBaseModel",
    "StatefulTokenReward",
    "StepPRMReward",
    "StepReward",
    "TeacherDistillReward",
    "TokenClassifierQuality",
    "TokenGRPOConfig",
    "TokenGRPOTrainer",
    "TokenHeatmapCallback",
    "TokenRLOOConfig",
    "TokenRLOOTrainer",
    "TokenRewardConfigMixin",
    "TokenRewardScriptArguments",
    "TokenScorer",
    "TokenStepCallback",
    "TokenStepRecord",
    "TrainClassifierArguments",
    "TrainPRMArguments",
    "TrainerBoundReward",
    "TrainsOwnModel",
    "WeightedTokenReward",
    "align_sentences",
    "build_reward_func",
    "heatmap_page",
    "load_policy",
    "load_scorer_model",
    "plot_reward_curves",
    "register_reward",
    "split_sentences",
    "token_heatmap_html",
    "train_sentence_classifier",
    "train_step_prm",
    "with_token_fields",
]

if TYPE_CHECKING:
    from trl_token_ext.config import TokenRewardConfigMixin, with_token_fields
    from trl_token_ext.models import SharedBaseModel, load_policy, load_scorer_model
    from trl_token_ext.registry import build_reward_func, register_reward
    from trl_token_ext.scorers import (
        EmbeddingConsistency,
        ImplicitPRMQuality,
        LexiconQuality,
        LogProbQuality,
        MetricReward,
        OnlineImplicitPRM,
        PotentialShaping,
        ReferenceConsistency,
        RepetitionConsistency,
        SelfConsistency,
        StepPRMReward,
        StepReward,
        TeacherDistillReward,
        TokenClassifierQuality,
        TokenScorer,
        WeightedTokenReward,
    )
    from trl_token_ext.script_args import TokenRewardScriptArguments
    from trl_token_ext.sentence.recipes import TrainClassifierArguments
    from trl_token_ext.sentence.reward import SentenceClassifierReward
    from trl_token_ext.sentence.split import align_sentences, split_sentences
    from trl_token_ext.sentence.train import train_sentence_classifier
    from trl_token_ext.step_prm.recipes import TrainPRMArguments
    from trl_token_ext.step_prm.train import train_step_prm
    from trl_token_ext.trainers.grpo import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.trainers.protocols import (
        StatefulTokenReward,
        TokenStepCallback,
        TrainerBoundReward,
        TrainsOwnModel,
    )
    from trl_token_ext.trainers.records import OutcomeRewards, TokenStepRecord
    from trl_token_ext.trainers.rloo import TokenRLOOConfig, TokenRLOOTrainer
    from trl_token_ext.visualize import TokenHeatmapCallback, heatmap_page, plot_reward_curves, token_heatmap_html


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trl_token_ext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
