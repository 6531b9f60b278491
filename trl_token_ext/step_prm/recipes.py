"""The ``trl-token train-prm`` command: ``TrainPRMArguments`` + TRL's ``ModelConfig`` on ``trl.TrlParser``.

    trl-token train-prm --model_name_or_path <encoder or LM> --dataset_name steps.jsonl --use_peft --output_dir prm
    trl-token train-prm --config prm.yaml

``ModelConfig`` gives the model, LoRA (``--use_peft``, ``--lora_r``, ``--lora_alpha``, ``--lora_dropout``,
``--lora_target_modules``) and ``--load_in_4bit``; ``TrainPRMArguments`` the data and the training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from trl_token_ext.data import load_dataset_dict, train_eval_test
from trl_token_ext.finetune import ClassifierTrainingResult, print_result, run_recipe
from trl_token_ext.step_prm.data import check_stepwise_dataset
from trl_token_ext.step_prm.train import train_step_prm


@dataclass
class TrainPRMArguments:
    """Data and training arguments of ``trl-token train-prm`` (the model and LoRA come from TRL's ``ModelConfig``)."""

    dataset_name: str = field(
        metadata={
            "help": "Stepwise-supervision data (required; columns prompt, completions = list of steps, labels = one "
            "bool per step): a .jsonl/.json/.parquet file, a folder saved with save_to_disk, or a Hub dataset id."
        },
    )
    output_dir: str = field(default="step-prm", metadata={"help": "Where adapter/, merged/ and metrics.json go."})
    step_separator: str = field(default="\n", metadata={"help": "What follows each step in the PRM's input."})
    max_length: int = field(default=512, metadata={"help": "PRM tokens per row (longer rows are cut at the end)."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of a single-split dataset used for eval."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of a single-split dataset held out for test."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs (early stopping may end sooner)."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (LoRA: 5e-4; full: ~5e-5)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Training batch size (rows)."})
    metric_for_best_model: str = field(
        default="error_f1",
        metadata={"help": "Step metric that picks the best epoch: error_f1, step_accuracy or first_error_accuracy."},
    )
    early_stopping_patience: int = field(default=2, metadata={"help": "Evaluations without gain before stopping."})
    seed: int = field(default=42, metadata={"help": "Seed of the data split and the training."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even if a GPU is available."})

    # passed to `train_step_prm` as they are (besides the data and training fields; the model and LoRA: ModelConfig)
    train_options: ClassVar[tuple[str, ...]] = ("step_separator", "metric_for_best_model")


def load_prm_datasets(args: TrainPRMArguments):
    """``(train, eval, test)`` for ``args.dataset_name``, every split checked row by row (errors name the split,
    row, field and step); a single split is divided by ``eval_fraction`` / ``test_fraction``."""
    loaded = load_dataset_dict(args.dataset_name)
    for split, dataset in loaded.items():  # before splitting, so that rows are the file's rows
        check_stepwise_dataset(dataset, f"{args.dataset_name} ({split})")
    return train_eval_test(loaded, args.eval_fraction, args.test_fraction, args.seed)


def run_train_prm(args: TrainPRMArguments, model_args: Any, splits=None) -> ClassifierTrainingResult:
    """Train and evaluate a step PRM as described by ``args`` and ``model_args`` (a ``trl.ModelConfig``);
    ``splits`` = ``(train, eval, test)`` datasets to use instead of loading ``args.dataset_name``."""
    if not model_args.model_name_or_path:
        raise ValueError("trl-token train-prm: --model_name_or_path is required (an encoder or LM id/folder).")
    return run_recipe(
        train_step_prm,
        args,
        model_args,
        splits,
        load_prm_datasets,
        use_lora=model_args.use_peft,
        load_in_4bit=model_args.load_in_4bit,
    )


def make_parser():
    """`trl.TrlParser` on ``TrainPRMArguments`` and ``trl.ModelConfig`` (``--config`` reads a YAML recipe)."""
    from trl import ModelConfig, TrlParser

    return TrlParser((TrainPRMArguments, ModelConfig), prog="trl-token train-prm")


def train_prm_main(argv: list[str] | None = None) -> ClassifierTrainingResult:
    """Entry point of ``trl-token train-prm`` (``argv`` without the command name). Prints the metrics JSON."""
    args, model_args = make_parser().parse_args_and_config(argv)
    result = run_train_prm(args, model_args)
    return print_result(result, f"step PRM: {result.merged_dir or result.adapter_dir}")
