"""The ``trl-token train-classifier`` command: ``TrainClassifierArguments`` and ``train_classifier_main``.

``TrainClassifierArguments`` is a plain dataclass with ``metadata={"help": ...}`` fields, so ``HfArgumentParser`` /
``trl.TrlParser`` expose it on the command line and in YAML; ``train_classifier_main(argv)`` runs it. The encoder
and the data are always given by the user (the demo's cached sentiment classifier lives in
``trl_token_ext.demo.classifier``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl_token_ext.finetune import ClassifierTrainingResult
from trl_token_ext.sentence.train import check_labels, check_texts, train_sentence_classifier

REQUIRED_FIELDS = ("model_name_or_path", "dataset_name")


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


def load_dataset_dict(dataset_name: str):
    """``dataset_name`` as a ``DatasetDict``: a folder saved with ``save_to_disk``, a local data file
    (`load_data_file`) or a Hub dataset id; a single ``Dataset`` becomes its ``train`` split."""
    import datasets

    path = Path(dataset_name)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.is_file():
        loaded = load_data_file(path)
    else:
        loaded = datasets.load_dataset(dataset_name)
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict(train=loaded)
    return loaded


def train_eval_test(loaded, eval_fraction: float, test_fraction: float, seed: int, stratify: str | None = None):
    """``(train, eval, test)`` from a ``DatasetDict``: its ``validation`` (or ``eval``) and ``test`` splits when
    present, else shares of ``train`` (``test_fraction``, then ``eval_fraction`` of the whole)."""
    train = loaded["train"]
    evaluation = loaded.get("validation", loaded.get("eval"))
    test = loaded.get("test")
    if test is None:
        parts = train.train_test_split(test_size=test_fraction, seed=seed, stratify_by_column=stratify)
        train, test = parts["train"], parts["test"]
    if evaluation is None:
        share = eval_fraction / max(1e-9, 1.0 - test_fraction)
        parts = train.train_test_split(test_size=share, seed=seed, stratify_by_column=stratify)
        train, evaluation = parts["train"], parts["test"]
    return train, evaluation, test


def check_csv(path: Path) -> None:
    """Read ``path`` with the csv module and name the first problem: an empty file, a header without rows, or a row
    (by line number) whose field count differs from the header's."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: the file is empty (expected a header line such as 'text,label' and rows).")
        rows = 0
        for row in reader:
            if not row:  # blank line
                continue
            rows += 1
            if len(row) != len(header):
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header {header} has {len(header)} "
                    "(quote fields that contain commas)."
                )
    if rows == 0:
        raise ValueError(f"{path}: the file has a header {header} but no rows.")


def load_data_file(path: Path):
    """A local .csv/.json/.jsonl/.parquet file as a ``DatasetDict``; unreadable or empty files raise a ValueError
    naming the file (and, for CSV, the line) instead of ``datasets``' chained ``DatasetGenerationError``."""
    import datasets

    from trl_token_ext.cli import DATA_FILE_BUILDERS

    kind = DATA_FILE_BUILDERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"dataset_name {str(path)!r}: use a file ending in one of {sorted(DATA_FILE_BUILDERS)} or a folder saved "
            "with save_to_disk."
        )
    if kind == "csv":
        check_csv(path)
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty.")
    try:
        loaded = datasets.load_dataset(kind, data_files=str(path))
    except Exception as error:  # DatasetGenerationError hides the reason in its cause chain
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if "corresponds to no data" in str(error):
            raise ValueError(f"{path}: the file holds no examples.") from error
        raise ValueError(f"{path}: could not be read as {kind}: {type(cause).__name__}: {cause}") from error
    if len(loaded["train"]) == 0:
        raise ValueError(f"{path}: the file holds no examples.")
    return loaded


def run_train_classifier(
    args: TrainClassifierArguments, splits: tuple[Any, Any, Any] | None = None
) -> ClassifierTrainingResult:
    """Train and evaluate a sentence classifier as described by ``args``; ``splits`` = ``(train, eval, test)``
    datasets to use instead of loading ``args.dataset_name``."""
    train, evaluation, test = splits if splits is not None else load_classifier_datasets(args)
    if args.max_train_samples is not None and args.max_train_samples < len(train):
        train = train.shuffle(seed=args.seed).select(range(args.max_train_samples))
    return train_sentence_classifier(
        args.model_name_or_path,
        train,
        evaluation,
        args.output_dir,
        test_dataset=test,
        labels=args.labels,
        text_column=args.text_column,
        label_column=args.label_column,
        max_length=args.max_length,
        use_lora=args.use_lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_target_modules=args.lora_target_modules,
        early_stopping_patience=args.early_stopping_patience,
        training_args={
            "num_train_epochs": args.num_train_epochs,
            "learning_rate": args.learning_rate,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "seed": args.seed,
            "use_cpu": args.use_cpu,
        },
    )


def train_classifier_main(argv: list[str] | None = None) -> ClassifierTrainingResult:
    """Entry point of ``trl-token train-classifier`` (``argv`` without the command name; a single ``.yaml`` path
    loads the arguments from YAML). Prints the metrics JSON."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(TrainClassifierArguments)
    if argv and len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        import yaml

        config = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8")) or {}
        missing = [name for name in REQUIRED_FIELDS if name not in config]
        if missing:
            raise ValueError(f"trl-token train-classifier: {argv[0]} does not set the required {missing}.")
        (args,) = parser.parse_dict(config)
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    result = run_train_classifier(args)
    print(json.dumps({key: value for key, value in result.metrics.items() if key != "labels"}, indent=2))
    print(f"merged classifier: {result.merged_dir}")
    return result
