"""Train a sentence classifier parameter-efficiently: LoRA (PEFT, task SEQ_CLS) + transformers ``Trainer``.

One label per example (a sentence and its class), accuracy/precision/recall/F1 through ``evaluate`` (offline),
early stopping on F1, and three outputs in ``output_dir``: ``adapter/`` (the LoRA adapter + head, with the
tokenizer and the labelled config), ``merged/`` (a plain model that ``SentenceClassifierReward`` and
``from_pretrained`` load by path) and ``metrics.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trl_token_ext.sentence.metrics import load_classification_metric


@dataclass
class ClassifierTrainingResult:
    """Where ``train_sentence_classifier`` saved its outputs, and the metrics it measured."""

    output_dir: str
    adapter_dir: str
    merged_dir: str
    metrics_path: str
    metrics: dict[str, Any]


def _is_missing(value: Any) -> bool:
    """None, NaN (pandas' empty cell) or an empty / blank string."""
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def check_texts(dataset, text_column: str, split: str = "dataset") -> None:
    """Check ``dataset`` has ``text_column`` and one non-empty string per example.

    Raises:
        ValueError: naming ``split``, the column and the example (row) index.
    """
    if text_column not in dataset.column_names:
        raise ValueError(f"{split}: text column {text_column!r} not found; the dataset has {dataset.column_names}.")
    for index, value in enumerate(dataset[text_column]):
        if _is_missing(value) or not isinstance(value, str):
            raise ValueError(
                f"{split}: column {text_column!r}, example {index}: expected a non-empty string, got "
                f"{type(value).__name__} {value!r}."
            )


def check_labels(dataset, label_column: str, split: str = "dataset") -> None:
    """Check ``dataset`` has ``label_column`` with ONE present label (not None, an empty cell, or a list) per example.

    Raises:
        ValueError: naming ``split``, the column and the example (row) index.
    """
    if label_column not in dataset.column_names:
        raise ValueError(f"{split}: label column {label_column!r} not found; the dataset has {dataset.column_names}.")
    for index, value in enumerate(dataset[label_column]):
        if _is_missing(value):
            raise ValueError(
                f"{split}: column {label_column!r}, example {index}: missing label ({value!r}); every example needs "
                "exactly one label."
            )
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(
                f"{split}: column {label_column!r}, example {index}: a sentence classifier takes ONE label per "
                f"example, got {type(value).__name__} {value!r} (per-token labels belong to a token classifier)."
            )


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


def _target_modules(target_modules: Sequence[str] | str | None) -> list[str] | str | None:
    """PEFT's ``target_modules``: None (PEFT's default for the architecture), ``"all-linear"``, a regex string or a
    list of module names (a one-item list holding ``"all-linear"`` or a regex is passed as the string)."""
    if not target_modules:
        return None
    if isinstance(target_modules, str):
        return target_modules
    target_modules = list(target_modules)
    if len(target_modules) == 1 and (target_modules[0] == "all-linear" or not target_modules[0].isidentifier()):
        return target_modules[0]
    return target_modules


def _lora_config(model, lora_config, lora_r: int, lora_alpha: int, lora_dropout: float, target_modules):
    from peft import LoraConfig, TaskType

    if lora_config is not None:
        return lora_config
    names = {name.split(".")[-1] for name, _ in model.named_modules()}
    # BERT-style models: the pooler feeds the classifier and is part of the head, so it is trained too.
    modules_to_save = [name for name in ("classifier", "score", "pooler") if name in names]
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=_target_modules(target_modules),
        modules_to_save=modules_to_save,
    )


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
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
    )

    output_dir = Path(output_dir)
    splits = {"train_dataset": train_dataset, "eval_dataset": eval_dataset, "test_dataset": test_dataset}
    for name, dataset in splits.items():
        if dataset is None and name == "test_dataset":
            continue
        if dataset is None or len(dataset) == 0:
            raise ValueError(f"train_sentence_classifier: {name} is empty.")
        check_texts(dataset, text_column, name)
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

    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

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
            model, _lora_config(model, lora_config, lora_r, lora_alpha, lora_dropout, lora_target_modules)
        )

    metric = load_classification_metric()
    average = "binary" if len(labels) == 2 else "macro"

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return metric.compute(
            predictions=logits.argmax(-1).tolist(), references=eval_prediction.label_ids.tolist(), average=average
        )

    settings: dict[str, Any] = {
        "output_dir": str(output_dir / "checkpoints"),
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "f1",
        "greater_is_better": True,
        "save_total_limit": 1,
        "num_train_epochs": 3,
        "learning_rate": 5e-4 if use_lora else 5e-5,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 128,
        "warmup_steps": 0.06,
        "weight_decay": 0.01,
        "logging_steps": 50,
        "report_to": "none",
        "seed": 42,
    }
    settings.update(training_args or {})
    if settings.get("eval_strategy") == "steps" and "save_steps" not in (training_args or {}):
        settings["save_steps"] = settings.get("eval_steps")
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**settings),
        train_dataset=train_tok,
        eval_dataset=eval_tok,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=early_stopping_patience)],
    )
    train_output = trainer.train()
    metrics: dict[str, Any] = {"train_runtime": train_output.metrics.get("train_runtime")}
    metrics.update(trainer.evaluate(eval_tok, metric_key_prefix="eval"))
    if test_tok is not None:
        metrics.update(trainer.evaluate(test_tok, metric_key_prefix="test"))
    metrics.update(
        labels=labels,
        num_train=len(train_tok),
        num_eval=len(eval_tok),
        num_test=len(test_tok) if test_tok is not None else 0,
        epochs_run=trainer.state.epoch,
        best_checkpoint_f1=trainer.state.best_metric,
        model_name_or_path=str(model_name_or_path),
        use_lora=use_lora,
    )

    adapter_dir, merged_dir = output_dir / "adapter", output_dir / "merged"
    model = trainer.model
    if use_lora:
        model.save_pretrained(adapter_dir)
        model.base_model.model.config.save_pretrained(adapter_dir)  # the labelled config (id2label) for loaders
        tokenizer.save_pretrained(adapter_dir)
        model = model.merge_and_unload()
    model.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    if not keep_checkpoints:
        shutil.rmtree(settings["output_dir"], ignore_errors=True)
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, default=str))
    return ClassifierTrainingResult(
        output_dir=str(output_dir),
        adapter_dir=str(adapter_dir) if use_lora else "",
        merged_dir=str(merged_dir),
        metrics_path=str(metrics_path),
        metrics=metrics,
    )
