"""Train a token-classification step PRM (TRL's former ``PRMTrainer`` format) with LoRA and transformers' Trainer.

Stepwise-supervision rows (``prompt``, ``completions``, ``labels``; `trl_token_ext.step_prm.data`) become token
classification examples: the label of each step (1 correct, 0 wrong) on the last token of step + ``step_separator``.
The model is ``AutoModelForTokenClassification`` with two labels (``error``, ``correct``), a LoRA adapter (PEFT task
``TOKEN_CLS``; the head trains fully), optionally on NF4 4-bit weights; step-level metrics through ``evaluate``
(`trl_token_ext.step_prm.metrics`), the best epoch by ``metric_for_best_model``. `StepPRMReward` loads the result
(``merged/``, or ``adapter/`` with 4-bit) with ``format="token_classification"``; the separator is saved in its
config (``prm_step_separator``) and read back as the scorer's default ``step_tag``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu
from trl_token_ext.finetune import (
    ClassifierTrainingResult,
    check_splits,
    classifier_lora_config,
    fit_and_save,
    padded_tokenizer,
)
from trl_token_ext.models import default_device, nf4_config
from trl_token_ext.step_prm.data import IGNORE_INDEX, check_stepwise_dataset, encode_stepwise
from trl_token_ext.step_prm.metrics import majority_baseline, step_metrics, step_rows

PRM_LABELS = ("error", "correct")  # index = TRL's int(label): False -> 0, True -> 1


def train_step_prm(
    model_name_or_path: str,
    train_dataset,
    eval_dataset,
    output_dir: str | Path,
    *,
    test_dataset=None,
    step_separator: str = "\n",
    max_length: int = 512,
    use_lora: bool = True,
    lora_config=None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.1,
    lora_target_modules: Sequence[str] | str | None = None,
    load_in_4bit: bool = False,
    metric_for_best_model: str = "error_f1",
    early_stopping_patience: int = 2,
    training_args: dict[str, Any] | None = None,
    keep_checkpoints: bool = False,
) -> ClassifierTrainingResult:
    """Fine-tune a token classifier (LoRA by default) as a step PRM on stepwise-supervision datasets.

    Args:
        model_name_or_path: encoder or decoder id/folder (``AutoModelForTokenClassification``).
        train_dataset, eval_dataset, test_dataset: ``datasets.Dataset`` with ``prompt``, ``completions``,
            ``labels``; checked row by row before anything loads. Eval picks the best epoch, test is held out.
        step_separator: what follows each step in the PRM's input (TRL's ``step_separator``).
        max_length: PRM tokens per row (cut from the right, as TRL did).
        load_in_4bit: NF4 weights (needs ``use_lora``; the head stays in full precision; no ``merged/``).
        metric_for_best_model: a key of `trl_token_ext.step_prm.metrics.step_metrics` (default ``error_f1``).
        training_args: overrides of the ``TrainingArguments`` defaults (`trl_token_ext.finetune.fit_and_save`).

    Returns:
        a ``ClassifierTrainingResult``: ``eval_*`` / ``test_*`` step metrics and their majority-class baselines.

    Raises:
        ValueError: an empty split, a malformed row (split, row, field and step named), a training set with one
            class only, or ``load_in_4bit`` without ``use_lora``.
    """
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    splits = check_splits("train_step_prm", train_dataset, eval_dataset, test_dataset, check_stepwise_dataset)
    train_labels = [[int(label) for label in row] for row in train_dataset["labels"]]
    if len({label for row in train_labels for label in row}) < 2:
        raise ValueError(
            f"train_dataset: every step of its {len(train_labels)} rows has the same label; a PRM needs correct "
            "and wrong steps."
        )
    if load_in_4bit and not use_lora:
        raise ValueError("train_step_prm: load_in_4bit=True needs use_lora=True (4-bit weights cannot be trained).")

    tokenizer = padded_tokenizer(model_name_or_path)
    encoded = {
        name: encode_stepwise(dataset, tokenizer, step_separator, max_length, name) for name, dataset in splits.items()
    }
    model = _load_token_classifier(AutoModelForTokenClassification, model_name_or_path, load_in_4bit)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.config.prm_step_separator = step_separator  # StepPRMReward's default step_tag
    if use_lora:
        from peft import get_peft_model

        config = classifier_lora_config(
            model, lora_config, lora_r, lora_alpha, lora_dropout, lora_target_modules, task_type="TOKEN_CLS"
        )
        model = get_peft_model(model, config)

    baseline = majority_baseline(train_labels)

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predicted, true = step_rows(eval_prediction.predictions, eval_prediction.label_ids, IGNORE_INDEX)
        return step_metrics(predicted, true, baseline)

    return fit_and_save(
        model,
        tokenizer,
        output_dir,
        encoded["train_dataset"],
        encoded["eval_dataset"],
        encoded.get("test_dataset"),
        data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE_INDEX),
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=_predicted_classes,
        metric_for_best_model=metric_for_best_model,
        use_lora=use_lora,
        merge=not load_in_4bit,
        training_args=training_args,
        early_stopping_patience=early_stopping_patience,
        keep_checkpoints=keep_checkpoints,
        extra_metrics={
            "labels": list(PRM_LABELS),
            "model_name_or_path": str(model_name_or_path),
            "step_separator": step_separator,
            "majority_step_label": baseline[0],
            "majority_first_error": baseline[1],
        },
    )


def _predicted_classes(logits, labels):
    """(B, L, 2) logits -> (B, L) class indices, so evaluation keeps no logits."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(-1)


def _load_token_classifier(auto_class, model_name_or_path: str, load_in_4bit: bool):
    """Two labels (``PRM_LABELS``); NF4 with the head kept in full precision and PEFT's k-bit preparation."""
    kwargs: dict[str, Any] = {}
    if load_in_4bit:
        kwargs = {
            "quantization_config": nf4_config(["classifier", "score"], double_quant=False),
            "device_map": {"": str(default_device())},
        }
    model = auto_class.from_pretrained(
        model_name_or_path,
        num_labels=len(PRM_LABELS),
        id2label=dict(enumerate(PRM_LABELS)),
        label2id={label: i for i, label in enumerate(PRM_LABELS)},
        ignore_mismatched_sizes=True,
        **kwargs,
    )
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        keep_bnb_4bit_trainable_on_cpu(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model
