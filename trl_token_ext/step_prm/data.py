"""Stepwise-supervision data for a token-classification PRM: checks (naming split, row, field, step) and encoding.

The format of the Hub's stepwise-supervision datasets (and of TRL's former ``PRMTrainer``): one row per solution,
``prompt`` (the question, a string), ``completions`` (its steps, a list of strings) and ``labels`` (one bool per
step: is the step correct).
"""

from __future__ import annotations

from typing import Any

from trl_token_ext.sentence.train import is_missing
from trl_token_ext.step_prm.inputs import StepEncodingError, token_classification_input

STEPWISE_COLUMNS = ("prompt", "completions", "labels")
IGNORE_INDEX = -100  # the label of tokens that carry no step label (the loss and the metrics skip them)


def check_stepwise_dataset(dataset, split: str = "dataset") -> None:
    """Check every row: a non-empty ``prompt`` string, a non-empty list of non-blank step strings in
    ``completions``, and ``labels`` with one bool (or 0/1) per step.

    Raises:
        ValueError: naming ``split``, the row, the field and the step.
    """
    missing = [column for column in STEPWISE_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{split}: stepwise-supervision columns {missing} not found; the dataset has {dataset.column_names} "
            f"(expected {list(STEPWISE_COLUMNS)}: the question, its steps, one bool per step)."
        )
    for row, example in enumerate(dataset.select_columns(list(STEPWISE_COLUMNS))):
        prompt, steps, labels = (example[column] for column in STEPWISE_COLUMNS)
        where = f"{split}: row {row}"
        if is_missing(prompt) or not isinstance(prompt, str):
            raise ValueError(f"{where}, field 'prompt': expected a non-empty string, got {_show(prompt)}.")
        if not isinstance(steps, (list, tuple)) or not steps:
            raise ValueError(f"{where}, field 'completions': expected a non-empty list of steps, got {_show(steps)}.")
        for index, step in enumerate(steps):
            if is_missing(step) or not isinstance(step, str):
                raise ValueError(f"{where}, field 'completions', step {index}: expected text, got {_show(step)}.")
        if not isinstance(labels, (list, tuple)) or len(labels) != len(steps):
            count = len(labels) if isinstance(labels, (list, tuple)) else type(labels).__name__
            raise ValueError(
                f"{where}, field 'labels': expected one label per step ({len(steps)}), got {count}: {labels!r}."
            )
        for index, label in enumerate(labels):
            if label not in (True, False) or isinstance(label, float):  # bool, or the ints 0 / 1
                raise ValueError(f"{where}, field 'labels', step {index}: expected a bool, got {_show(label)}.")


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def encode_stepwise(dataset, tokenizer: Any, step_separator: str, max_length: int | None, split: str = "dataset"):
    """``input_ids`` and ``labels`` in TRL's token-classification format (`token_classification_input`): the step's
    label (1 correct, 0 wrong) on the last token of step + separator, ``IGNORE_INDEX`` elsewhere; cut to
    ``max_length`` tokens from the right, as TRL did.

    Raises:
        ValueError: a step that encodes to no token (naming ``split``, the row and the step).
    """
    from datasets import Features, Sequence, Value

    def encode(example: dict[str, Any], row: int) -> dict[str, list[int]]:
        try:
            built = token_classification_input(tokenizer, example["prompt"], example["completions"], step_separator)
        except StepEncodingError as error:
            raise ValueError(f"{split}: row {row}, field 'completions': {error}") from None
        labels = [IGNORE_INDEX] * len(built.ids)
        for position, label in zip(built.positions, example["labels"]):
            labels[position] = int(label)
        return {"input_ids": built.ids[:max_length], "labels": labels[:max_length]}

    features = Features({"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("int64"))})
    return dataset.map(encode, with_indices=True, remove_columns=dataset.column_names, features=features)
