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
    "trl_token_ext.scorers._common": ("TokenScorer",),
    "trl_token_ext.scorers.combine": ("WeightedTokenReward",),
    "trl_token_ext.scorers.consistency": ("ReferenceConsistency", "RepetitionConsistency", "SelfConsistency"),
    "trl_token_ext.scorers.distill": ("TeacherDistillReward",),
    "trl_token_ext.scorers.embedding": ("EmbeddingConsistency",),
    "trl_token_ext.scorers.lexicon": ("LexiconQuality",),
    "trl_token_ext.scorers.metrics": ("MetricReward",),
    "trl_token_ext.scorers.online_prm": ("OnlineImplicitPRM",),
    "trl_token_ext.scorers.quality": ("ImplicitPRMQuality", "LogProbQuality", "TokenClassifierQuality"),
    "trl_token_ext.scorers.shaping": ("PotentialShaping",),
    "trl_token_ext.scorers.step_prm": ("StepPRMReward",),
    "trl_token_ext.scorers.steps": ("StepReward",),
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


def _lazy_exports(namespace: dict[str, Any], exports: dict[str, tuple[str, ...]]) -> None:
    """Give the package whose globals are ``namespace`` the names of ``exports`` (module -> the names it defines),
    each imported from its module on first access (PEP 562 ``__getattr__``, then cached), listed in ``__all__``
    (sorted, with the names already there) and ``dir()``. Used by this package, `trl_token_ext.sentence` and
    `trl_token_ext.step_prm`."""
    lazy = {name: module for module, names in exports.items() for name in names}
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in lazy:
            value = namespace[name] = getattr(importlib.import_module(lazy[name]), name)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    namespace.update(__getattr__=__getattr__, __dir__=__dir__, __all__=sorted({*namespace.get("__all__", ()), *lazy}))


_lazy_exports(globals(), _EXPORTS)
