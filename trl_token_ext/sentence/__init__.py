"""Sentence-level classifier rewards and the training of the classifier that gives them.

* :func:`split_sentences` / :func:`align_sentences`: sentence character spans, and the policy tokens of each.
* :class:`SentenceClassifierReward`: a sequence-classification model as a TRL reward function (one float per
  completion) or as a token reward function (``placement`` = end / spread / potential).
* :func:`train_sentence_classifier`, :func:`train_classifier_main` (``trl-token train-classifier``),
  :class:`TrainClassifierArguments`: LoRA fine-tuning with transformers' ``Trainer`` and offline ``evaluate`` metrics.

The demo's ready-trained sentiment classifier is ``trl_token_ext.demo.classifier.sentiment_classifier_path``.

Training and metric helpers are imported on first use (they pull in ``datasets``/``evaluate``/``peft``).
"""

from __future__ import annotations

import importlib
from typing import Any

from trl_token_ext.sentence.reward import SentenceClassifierReward
from trl_token_ext.sentence.split import SentenceAlignment, align_sentences
from trl_token_ext.text import split_sentences

_LAZY = {
    "ClassificationMetrics": "trl_token_ext.sentence.metrics",
    "load_classification_metric": "trl_token_ext.sentence.metrics",
    "ClassifierTrainingResult": "trl_token_ext.sentence.train",
    "train_sentence_classifier": "trl_token_ext.sentence.train",
    "TrainClassifierArguments": "trl_token_ext.sentence.recipes",
    "train_classifier_main": "trl_token_ext.sentence.recipes",
}

__all__ = [
    "ClassificationMetrics",
    "ClassifierTrainingResult",
    "SentenceAlignment",
    "SentenceClassifierReward",
    "TrainClassifierArguments",
    "align_sentences",
    "load_classification_metric",
    "split_sentences",
    "train_classifier_main",
    "train_sentence_classifier",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trl_token_ext.sentence' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
