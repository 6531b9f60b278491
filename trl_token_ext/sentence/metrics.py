"""Accuracy, precision, recall and F1 as one ``evaluate`` metric that works offline.

``evaluate.load("accuracy")`` etc. download their scripts from the Hub. This module is itself a local ``evaluate``
metric script (scikit-learn based, as the Hub scripts are): ``load_classification_metric()`` loads it with
``evaluate.load(<this file>)``; the module must stay importable on its own (no package-relative imports).
scikit-learn comes with the ``classifier`` extra.
"""

from __future__ import annotations

import datasets
import evaluate

from trl_token_ext.extras import require

_DESCRIPTION = "Accuracy, precision, recall and F1 of class predictions against references (scikit-learn)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels. references (list of int): true labels.
    average (str): "binary" (default; scores of ``pos_label``), "macro", "micro" or "weighted".
    pos_label (int): the positive class for ``average="binary"``. Default 1.
Returns:
    accuracy, precision, recall, f1 (floats; precision/recall/F1 are 0.0 where undefined).
"""


class ClassificationMetrics(evaluate.Metric):
    """Accuracy, precision, recall and F1 in one ``compute`` call."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, average: str = "binary", pos_label: int = 1) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, precision_recall_fscore_support

        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, average=average, pos_label=pos_label, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
        }


def load_classification_metric(**kwargs) -> evaluate.Metric:
    """This module loaded through ``evaluate.load`` from its local path (offline); needs scikit-learn."""
    require("sklearn", "classifier", "Classifier metrics (train-classifier, train-prm)")
    return evaluate.load(__file__, **kwargs)
