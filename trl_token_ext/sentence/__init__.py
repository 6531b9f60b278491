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

from trl_token_ext import _lazy_exports
from trl_token_ext.sentence.reward import SentenceClassifierReward
from trl_token_ext.sentence.split import SentenceAlignment, align_sentences
from trl_token_ext.text import split_sentences

__all__ = ["SentenceAlignment", "SentenceClassifierReward", "align_sentences", "split_sentences"]
_lazy_exports(
    globals(),
    {
        "trl_token_ext.sentence.metrics": ("ClassificationMetrics", "load_classification_metric"),
        "trl_token_ext.sentence.recipes": ("TrainClassifierArguments", "train_classifier_main"),
        "trl_token_ext.sentence.train": ("ClassifierTrainingResult", "train_sentence_classifier"),
    },
)
