"""Fine-tune a classifier with transformers' ``Trainer``: LoRA config, training, best checkpoint, saved outputs.

Shared by the sentence classifier (``sentence/train.py``: one label per sentence) and the step-level PRM
(``step_prm/train.py``: one label per step token). Each caller builds its model, tokenized splits, collator and
metrics; `fit_and_save` trains with early stopping on ``metric_for_best_model``, evaluates the eval and test splits
and writes ``adapter/`` (LoRA adapter + head, the labelled config and the tokenizer), ``merged/`` (a plain model
loadable by path) and ``metrics.json`` in ``output_dir``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ClassifierTrainingResult:
    """Where a classifier training run saved its outputs, and the metrics it measured."""

    output_dir: str
    adapter_dir: str
    merged_dir: str
    metrics_path: str
    metrics: dict[str, Any]


def target_modules(modules: Sequence[str] | str | None) -> list[str] | str | None:
    """PEFT's ``target_modules``: None (PEFT's default for the architecture), ``"all-linear"``, a regex string or a
    list of module names (a one-item list holding ``"all-linear"`` or a regex is passed as the string)."""
    if not modules:
        return None
    if isinstance(modules, str):
        return modules
    modules = list(modules)
    if len(modules) == 1 and (modules[0] == "all-linear" or not modules[0].isidentifier()):
        return modules[0]
    return modules


def classifier_lora_config(
    model, lora_config, lora_r: int, lora_alpha: int, lora_dropout: float, modules, task_type: str = "SEQ_CLS"
):
    """``lora_config`` if given, else a `peft.LoraConfig` of ``task_type`` (``SEQ_CLS`` / ``TOKEN_CLS``) whose
    ``modules_to_save`` are the model's head (``classifier`` / ``score``, and a BERT pooler that feeds it)."""
    from peft import LoraConfig, TaskType

    if lora_config is not None:
        return lora_config
    names = {name.split(".")[-1] for name, _ in model.named_modules()}
    modules_to_save = [name for name in ("classifier", "score", "pooler") if name in names]
    return LoraConfig(
        task_type=TaskType[task_type],
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules(modules),
        modules_to_save=modules_to_save,
    )


def check_splits(owner: str, train: Any, evaluation: Any, test: Any, check: Callable[[Any, str], None]) -> dict:
    """The given splits by name (``train_dataset``, ``eval_dataset``, and ``test_dataset`` unless None), each checked
    by ``check(dataset, name)``; a ValueError naming ``owner`` and the split when train or eval is None or a split is
    empty."""
    splits = {"train_dataset": train, "eval_dataset": evaluation, "test_dataset": test}
    for name, dataset in list(splits.items()):
        if dataset is None and name == "test_dataset":
            del splits[name]
            continue
        if dataset is None or len(dataset) == 0:
            raise ValueError(f"{owner}: {name} is empty.")
        check(dataset, name)
    return splits


def padded_tokenizer(model_name_or_path: str) -> Any:
    """The checkpoint's tokenizer, with the end-of-sequence (else unknown) token as pad token when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def fit_and_save(
    model,
    tokenizer,
    output_dir: str | Path,
    train_dataset,
    eval_dataset,
    test_dataset=None,
    *,
    data_collator,
    compute_metrics: Callable[[Any], dict[str, float]],
    metric_for_best_model: str,
    use_lora: bool,
    merge: bool = True,
    training_args: dict[str, Any] | None = None,
    early_stopping_patience: int = 2,
    keep_checkpoints: bool = False,
    preprocess_logits_for_metrics: Callable | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> ClassifierTrainingResult:
    """Train ``model`` (a PEFT model when ``use_lora``) on tokenized splits and save it (see the module docstring).

    Args:
        training_args: overrides of the ``TrainingArguments`` defaults here (epochs 3, lr 5e-4 with LoRA else 5e-5,
            batch 32, eval/save each epoch, best checkpoint by ``metric_for_best_model``).
        merge: write ``merged/`` (with LoRA: the adapter merged into the base; not possible on 4-bit weights).
        extra_metrics: added to ``metrics.json`` (labels, sizes, ...).

    Returns:
        a ``ClassifierTrainingResult``; ``metrics`` holds ``eval_*`` (best checkpoint) and ``test_*`` values.
    """
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

    output_dir = Path(output_dir)
    settings: dict[str, Any] = {
        "output_dir": str(output_dir / "checkpoints"),
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": metric_for_best_model,
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
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=early_stopping_patience)],
    )
    train_output = trainer.train()
    metrics: dict[str, Any] = {"train_runtime": train_output.metrics.get("train_runtime")}
    metrics.update(trainer.evaluate(eval_dataset, metric_key_prefix="eval"))
    if test_dataset is not None:
        metrics.update(trainer.evaluate(test_dataset, metric_key_prefix="test"))
    metrics.update(
        num_train=len(train_dataset),
        num_eval=len(eval_dataset),
        num_test=len(test_dataset) if test_dataset is not None else 0,
        epochs_run=trainer.state.epoch,
        **{f"best_checkpoint_{metric_for_best_model}": trainer.state.best_metric},
        use_lora=use_lora,
        **(extra_metrics or {}),
    )

    adapter_dir, merged_dir = output_dir / "adapter", output_dir / "merged"
    model = trainer.model
    if use_lora:
        model.save_pretrained(adapter_dir)
        model.base_model.model.config.save_pretrained(adapter_dir)  # the labelled config (id2label) for loaders
        tokenizer.save_pretrained(adapter_dir)
        model = model.merge_and_unload() if merge else None
    if model is not None:
        model.save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
    if not keep_checkpoints:
        shutil.rmtree(settings["output_dir"], ignore_errors=True)
    metrics_path = output_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, default=str))
    return ClassifierTrainingResult(
        output_dir=str(output_dir),
        adapter_dir=str(adapter_dir) if use_lora else "",
        merged_dir=str(merged_dir) if model is not None else "",
        metrics_path=str(metrics_path),
        metrics=metrics,
    )


def recipe_training(args: Any, train: Any) -> tuple[Any, dict[str, Any]]:
    """What a fine-tuning recipe (``trl-token train-classifier`` / ``train-prm`` arguments) sets beyond the model:
    ``train`` cut to ``args.max_train_samples`` (shuffled by ``args.seed``), and the `TrainingArguments` overrides
    (epochs, learning rate, batch size, seed, CPU)."""
    if args.max_train_samples is not None and args.max_train_samples < len(train):
        train = train.shuffle(seed=args.seed).select(range(args.max_train_samples))
    overrides = {
        "num_train_epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "seed": args.seed,
        "use_cpu": args.use_cpu,
    }
    return train, overrides


LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")  # same names in trl.ModelConfig


def run_recipe(
    train_fn: Callable[..., ClassifierTrainingResult],
    args: Any,
    model: Any,
    splits: tuple[Any, Any, Any] | None,
    load_splits: Callable[[Any], tuple[Any, Any, Any]],
    **options: Any,
) -> ClassifierTrainingResult:
    """Run a fine-tuning recipe: ``args`` (`TrainClassifierArguments` / `TrainPRMArguments`), ``model`` (whatever
    holds ``model_name_or_path`` and the LoRA shape `LORA_FIELDS`: the same arguments, or a ``trl.ModelConfig``).

    ``splits`` = ``(train, eval, test)``, or ``load_splits(args)``, cut and overridden by `recipe_training`, go to
    ``train_fn`` (`train_sentence_classifier` / `train_step_prm`) with the arguments every recipe has, the recipe's
    own ones named in ``args.train_options``, and ``options``."""
    train, evaluation, test = splits if splits is not None else load_splits(args)
    train, overrides = recipe_training(args, train)
    own = ("max_length", "early_stopping_patience") + tuple(args.train_options)
    return train_fn(
        model.model_name_or_path,
        train,
        evaluation,
        args.output_dir,
        test_dataset=test,
        training_args=overrides,
        **{name: getattr(model, name) for name in LORA_FIELDS},
        **{name: getattr(args, name) for name in own},
        **options,
    )


def print_result(result: ClassifierTrainingResult, saved: str) -> ClassifierTrainingResult:
    """Print a fine-tuning command's metrics JSON (labels left out) and where the model went (``saved``)."""
    print(json.dumps({key: value for key, value in result.metrics.items() if key != "labels"}, indent=2))
    print(saved)
    return result
