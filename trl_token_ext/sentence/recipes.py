"""The ``trl-token train-classifier`` command: ``TrainClassifierArguments`` and ``train_classifier_main``.

``TrainClassifierArguments`` is a plain dataclass with ``metadata={"help": ...}`` fields, so ``trl.TrlParser``
exposes it on the command line and in YAML (``--config``); ``train_classifier_main(argv)`` runs it. The encoder
and the data are always given by the user (the demo's cached sentiment classifier lives in
``trl_token_ext.demo.classifier``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from trl_token_ext.data import load_dataset_dict, train_eval_test
from trl_token_ext.finetune import ClassifierTrainingResult, print_result, run_recipe
from trl_token_ext.sentence.train import check_labels, check_texts, train_sentence_classifier


@dataclass
class TrainClassifierArguments:
    """Arguments of ``trl-token train-classifier``."""

    model_name_or_path: str = field(metadata={"help": "Encoder to fine-tune: a Hub id or a local folder (required)."})
    dataset_name: str = field(
        metadata={
            "help": "Labelled sentences (required): a local .csv/.json/.jsonl/.parquet file, a folder saved with "
            "Dataset(Dict).save_to_disk, or a Hub dataset id."
        },
    )
    output_dir: str = field(
        default="sentence-classifier", metadata={"help": "Where adapter/, merged/ and metrics go."}
    )
    text_column: str = field(default="text", metadata={"help": "Column with the sentence."})
    label_column: str = field(default="label", metadata={"help": "Column with ONE label (name or index) per example."})
    labels: list[str] | None = field(default=None, metadata={"help": "Label names in index order (default: sorted)."})
    eval_fraction: float = field(default=0.1, metadata={"help": "Share of a single-split dataset used for eval."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of a single-split dataset held out for test."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training examples."})
    max_length: int = field(default=64, metadata={"help": "Classifier tokens per sentence (truncation)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs (early stopping may end sooner)."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (LoRA: 5e-4 is a good default)."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    use_lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (+ head) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules given LoRA: names, 'all-linear' or one regex (default: PEFT's choice per model)."},
    )
    early_stopping_patience: int = field(default=2, metadata={"help": "Evaluations without F1 gain before stopping."})
    seed: int = field(default=42, metadata={"help": "Seed of the data split and the training."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even if a GPU is available."})

    # passed to `train_sentence_classifier` as they are (besides the model, data, LoRA and training fields)
    train_options: ClassVar[tuple[str, ...]] = ("labels", "text_column", "label_column", "use_lora")


def load_classifier_datasets(args: TrainClassifierArguments):
    """``(train, eval, test)`` for ``args.dataset_name``, with texts and labels checked (errors name split and row).

    A dataset with ``train``/``validation``(or ``eval``)/``test`` splits is used as is; a single split is divided
    by ``eval_fraction``/``test_fraction`` (stratified when the label column is a ``ClassLabel``).
    """
    loaded = load_dataset_dict(args.dataset_name)
    for split, dataset in loaded.items():  # before splitting, so that rows are the file's rows
        where = f"{args.dataset_name} ({split})"
        check_texts(dataset, args.text_column, where)
        check_labels(dataset, args.label_column, where)
    stratify = args.label_column if hasattr(loaded["train"].features.get(args.label_column), "names") else None
    return train_eval_test(loaded, args.eval_fraction, args.test_fraction, args.seed, stratify)


def run_train_classifier(
    args: TrainClassifierArguments, splits: tuple[Any, Any, Any] | None = None
) -> ClassifierTrainingResult:
    """Train and evaluate a sentence classifier as described by ``args``; ``splits`` = ``(train, eval, test)``
    datasets to use instead of loading ``args.dataset_name``."""
    return run_recipe(train_sentence_classifier, args, args, splits, load_classifier_datasets)


def make_parser():
    """`trl.TrlParser` on ``TrainClassifierArguments`` (``--config`` reads a YAML recipe; command-line flags win)."""
    from trl import TrlParser

    return TrlParser((TrainClassifierArguments,), prog="trl-token train-classifier")


def train_classifier_main(argv: list[str] | None = None) -> ClassifierTrainingResult:
    """Entry point of ``trl-token train-classifier`` (``argv`` without the command name; ``--config recipe.yaml``
    loads the arguments from YAML, as for every ``trl-token`` command). Prints the metrics JSON."""
    (args,) = make_parser().parse_args_and_config(argv)
    result = run_train_classifier(args)
    return print_result(result, f"merged classifier: {result.merged_dir}")
