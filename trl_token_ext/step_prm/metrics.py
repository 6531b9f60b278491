"""Step-level metrics of a PRM through ``evaluate``: step accuracy, F1 of the error class, first-error accuracy.

Each is reported with the score of the majority-class baseline, the constant prediction of the training set's most
frequent value (step label; position of the first wrong step, or none), and of the evaluated split's own majority
(``split_baseline_*``: for the two accuracies the best constant prediction in hindsight, which training data of
another mix, such as built solutions added to sampled ones, cannot lower).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from trl_token_ext.sentence.metrics import load_classification_metric

NO_ERROR = -1  # the first-error position of a solution whose steps are all correct
CORRECT, ERROR = 1, 0


def first_error(labels: Sequence[int]) -> int:
    """Index of the first wrong step (label 0), or ``NO_ERROR``."""
    return next((index for index, label in enumerate(labels) if label == ERROR), NO_ERROR)


def step_rows(predictions: np.ndarray, label_ids: np.ndarray, ignore_index: int = -100) -> tuple[list, list]:
    """Per-row lists of predicted and true step labels, read where ``label_ids`` (N, L) is not ``ignore_index``;
    ``predictions`` (N, L) are class indices."""
    predicted, true = [], []
    for prediction, labels in zip(predictions, label_ids):
        mask = labels != ignore_index
        predicted.append([int(v) for v in prediction[mask]])
        true.append([int(v) for v in labels[mask]])
    return predicted, true


def majority_baseline(rows: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The most frequent step label and the most frequent first-error position of ``rows`` (training labels)."""
    steps = Counter(label for row in rows for label in row)
    firsts = Counter(first_error(row) for row in rows)
    return steps.most_common(1)[0][0], firsts.most_common(1)[0][0]


def step_metrics(
    predicted: Sequence[Sequence[int]], true: Sequence[Sequence[int]], baseline: tuple[int, int]
) -> dict[str, float]:
    """``step_accuracy``, ``error_precision`` / ``error_recall`` / ``error_f1`` (the wrong step as the positive
    class), ``first_error_accuracy`` (the first wrong step, or "none", located exactly), each one's ``baseline_*``
    for the constant predictions ``baseline`` = (step label, first-error position) and ``split_baseline_*`` for the
    majority of ``true`` itself (`majority_baseline`)."""
    metric = load_classification_metric()
    flat_true = [label for row in true for label in row]
    flat_pred = [label for row in predicted for label in row]
    first_true = [first_error(row) for row in true]
    first_pred = [first_error(row) for row in predicted]
    steps = metric.compute(predictions=flat_pred, references=flat_true, average="binary", pos_label=ERROR)
    firsts = metric.compute(predictions=first_pred, references=first_true, average="micro")
    metrics = {
        "step_accuracy": steps["accuracy"],
        "error_precision": steps["precision"],
        "error_recall": steps["recall"],
        "error_f1": steps["f1"],
        "first_error_accuracy": firsts["accuracy"],
    }
    for prefix, constant in (("baseline_", baseline), ("split_baseline_", majority_baseline(true))):
        base = metric.compute(predictions=[constant[0]] * len(flat_true), references=flat_true, pos_label=ERROR)
        base_firsts = metric.compute(
            predictions=[constant[1]] * len(first_true), references=first_true, average="micro"
        )
        metrics[f"{prefix}step_accuracy"] = base["accuracy"]
        metrics[f"{prefix}error_f1"] = base["f1"]
        metrics[f"{prefix}first_error_accuracy"] = base_firsts["accuracy"]
    return {**metrics, "num_steps": float(len(flat_true))}
