"""Train a sentence classifier parameter-efficiently: LoRA (PEFT, task SEQ_CLS) + transformers ``Trainer``.

One label per example (a sentence and its class), accuracy/precision/recall/F1 through ``evaluate`` (offline),
early stopping on F1, and three outputs in ``output_dir``: ``adapter/`` (the LoRA adapter + head, with the
tokenizer and the labelled config), ``merged/`` (a plain model that ``SentenceClassifierReward`` and
``from_pretrained`` load by path) and ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trl_token_ext.finetune import (
    ClassifierTrainingResult,
    check_splits,
    classifier_lora_config,
    fit_and_save,
    padded_tokenizer,
)
from trl_token_ext.sentence.metrics import load_classification_metric


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' empty cell) or an empty / blank string."""
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def _check_column(dataset, column: str, kind: str, split: str, problem: Callable[[Any], str | None]) -> None:
    """Check ``dataset`` has ``column`` and that ``problem(value)`` is None for every example; else a ValueError
    naming ``split``, the column (a ``kind`` column when it is missing) and the example (row) index."""
    if column not in dataset.column_names:
        raise ValueError(f"{split}: {kind} column {column!r} not found; the dataset has {dataset.column_names}.")
    for index, value in enumerate(dataset[column]):
        message = problem(value)
        if message is not None:
            raise ValueError(f"{split}: column {column!r}, example {index}: {message}")


def _text_problem(value: Any) -> str | None:
    if is_missing(value) or not isinstance(value, str):
        return f"expected a non-empty string, got {type(value).__name__} {value!r}."
    return None


def _label_problem(value: Any) -> str | None:
    if is_missing(value):
        return f"missing label ({value!r}); every example needs exactly one label."
    if isinstance(value, (list, tuple, dict)):
        return (
            f"a sentence classifier takes ONE label per example, got {type(value).__name__} {value!r} (per-token "
            "labels belong to a token classifier)."
        )
    return None


def check_texts(dataset, text_column: str, split: str = "dataset") -> None:
    """Check ``dataset`` has ``text_column`` and one non-empty string per example.

    Raises:
        ValueError: naming ``split``, the column and the example (row) index.
    """
    _check_column(dataset, text_column, "text", split, _text_problem)


def check_labels(dataset, label_column: str, split: str = "dataset") -> None:
    """Check ``dataset`` has ``label_column`` with ONE present label (not None, an empty cell, or a list) per example.

    Raises:
        ValueError: naming ``split``, the column and the example (row) index.
    """
    _check_column(dataset, label_column, "label", split, _label_problem)


def encode_labels(
    dataset, label_column: str, labels: Sequence[str] | None, split: str = "dataset"
) -> tuple[Any, list[str]]:
    """Check there is ONE label per example and map label names to indices.

    Returns the dataset with an int ``labels`` column and the label names in index order.

    Raises:
        ValueError (naming ``split``, the column and the example index): missing column, a missing label (None, an
        empty CSV cell), a list label (per-token labels), a label outside ``labels``, or fewer than two classes
        when the labels are inferred.
    """
    check_labels(dataset, label_column, split)
    values = dataset[label_column]
    feature = dataset.features[label_column]
    if labels is None and getattr(feature, "names", None):  # a ClassLabel column knows its names
        labels = list(feature.names)
    if labels is None:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            labels = [str(i) for i in range(max(values) + 1)]
        else:
            labels = sorted({str(v) for v in values})
    labels = [str(label) for label in labels]
    if len(labels) < 2:
        raise ValueError(
            f"{split}: column {label_column!r} has a single class {labels} in all {len(values)} examples; a "
            "classifier needs at least two classes (pass `labels` to name the others)."
        )
    encoded = []
    for index, value in enumerate(values):
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(labels):
                raise ValueError(
                    f"{split}: column {label_column!r}, example {index}: label {value} is not in 0..{len(labels) - 1}."
                )
            encoded.append(value)
        elif str(value) in labels:
            encoded.append(labels.index(str(value)))
        else:
            raise ValueError(
                f"{split}: column {label_column!r}, example {index}: unknown label {value!r}; labels are {labels}."
            )
    if "labels" in dataset.column_names:
        dataset = dataset.remove_columns("labels")
    return dataset.add_column("labels", encoded), labels


def train_sentence_classifier(
    model_name_or_path: str,
    train_dataset,
    eval_dataset,
    output_dir: str | Path,
    *,
    test_dataset=None,
    labels: Sequence[str] | None = None,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int = 128,
    use_lora: bool = True,
    lora_config=None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.1,
    lora_target_modules: Sequence[str] | str | None = None,
    early_stopping_patience: int = 2,
    training_args: dict[str, Any] | None = None,
    keep_checkpoints: bool = False,
) -> ClassifierTrainingResult:
    """Fine-tune ``AutoModelForSequenceClassification`` (LoRA by default) on (sentence, label) examples.

    Args:
        model_name_or_path: encoder (or classifier) id or folder.
        train_dataset, eval_dataset, test_dataset: ``datasets.Dataset`` with ``text_column`` and ``label_column``
            (int or name, one per example); eval picks the best epoch (F1) and stops early, test is held out.
        labels: label names in index order (default: sorted names, or 0..max for ints).
        training_args: overrides of the ``TrainingArguments`` built here (e.g. ``num_train_epochs``,
            ``learning_rate``, ``per_device_train_batch_size``, ``use_cpu``, ``seed``).
        keep_checkpoints: keep ``output_dir/checkpoints`` (the best one is loaded back before saving anyway).

    Returns:
        a ``ClassifierTrainingResult``; ``metrics`` holds ``eval_*`` (best checkpoint) and ``test_*`` values.
    """
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    output_dir = Path(output_dir)
    check_splits(
        "train_sentence_classifier",
        train_dataset,
        eval_dataset,
        test_dataset,
        lambda dataset, name: check_texts(dataset, text_column, name),
    )
    train_dataset, labels = encode_labels(train_dataset, label_column, labels, "train_dataset")
    present = sorted(set(train_dataset["labels"]))
    if len(present) < 2:
        raise ValueError(
            f"train_dataset: column {label_column!r} holds the single class {labels[present[0]]!r} in all "
            f"{len(train_dataset)} examples; a classifier needs examples of at least two classes."
        )
    eval_dataset, _ = encode_labels(eval_dataset, label_column, labels, "eval_dataset")
    if test_dataset is not None:
        test_dataset, _ = encode_labels(test_dataset, label_column, labels, "test_dataset")

    tokenizer = padded_tokenizer(model_name_or_path)

    def tokenize(dataset):
        columns = [c for c in dataset.column_names if c != "labels"]
        return dataset.map(
            lambda batch: tokenizer(batch[text_column], truncation=True, max_length=max_length),
            batched=True,
            remove_columns=columns,
        )

    train_tok, eval_tok = tokenize(train_dataset), tokenize(eval_dataset)
    test_tok = tokenize(test_dataset) if test_dataset is not None else None

    model = AutoModelForSequenceClassification.from_pretrained(
        model_name_or_path,
        num_labels=len(labels),
        problem_type="single_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if use_lora:
        from peft import get_peft_model

        model = get_peft_model(
            model, classifier_lora_config(model, lora_config, lora_r, lora_alpha, lora_dropout, lora_target_modules)
        )

    metric = load_classification_metric()
    average = "binary" if len(labels) == 2 else "macro"

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return metric.compute(
            predictions=logits.argmax(-1).tolist(), references=eval_prediction.label_ids.tolist(), average=average
        )

    return fit_and_save(
        model,
        tokenizer,
        output_dir,
        train_tok,
        eval_tok,
        test_tok,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        metric_for_best_model="f1",
        use_lora=use_lora,
        training_args=training_args,
        early_stopping_patience=early_stopping_patience,
        keep_checkpoints=keep_checkpoints,
        extra_metrics={"labels": labels, "model_name_or_path": str(model_name_or_path)},
    )
