"""Data files at the bottom of the package: one loader of local data files for every command, and the splits.

`load_data_file` reads a .csv/.json/.jsonl/.parquet/.txt file with ``datasets`` and names the file (and the CSV
line) on any problem; `load_dataset_dict` adds folders saved with ``save_to_disk`` and Hub ids; `train_eval_test`
makes the three splits the fine-tuning commands need.
"""

from __future__ import annotations

from pathlib import Path

DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


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


def load_data_file(path: Path, split: str = "train"):
    """A local .csv/.json/.jsonl/.parquet/.txt file as a ``DatasetDict`` with one split named ``split``; unreadable or
    empty files raise a ValueError naming the file (and, for CSV, the line) instead of ``datasets``' chained
    ``DatasetGenerationError``."""
    import datasets

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
        loaded = datasets.load_dataset(kind, data_files={split: str(path)})
    except Exception as error:  # DatasetGenerationError hides the reason in its cause chain
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if "corresponds to no data" in str(error):
            raise ValueError(f"{path}: the file holds no examples.") from error
        raise ValueError(f"{path}: could not be read as {kind}: {type(cause).__name__}: {cause}") from error
    if len(loaded[split]) == 0:
        raise ValueError(f"{path}: the file holds no examples.")
    return loaded
