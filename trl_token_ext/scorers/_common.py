"""Shared plumbing of the built-in token scorers: base class, text helpers, dataset columns, groups.

Models load through `trl_token_ext.models.load_scorer_model`; span scores reach tokens through
`trl_token_ext.alignment.spread_span_scores`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from trl_token_ext.alignment import Span, spread_span_scores, token_char_spans
from trl_token_ext.choices import PLACEMENTS, Placement, check_choice

logger = logging.getLogger("trl_token_ext.scorers")


class TokenScorer:
    """Base of the built-in token scorers: a picklable callable with a ``__name__`` (used in the logs).

    Subclasses implement ``score(prompts, completions, completion_ids, processing_class, **kwargs)`` returning one
    entry per completion: a list of ``len(completion_ids[i])`` floats, or None.
    """

    default_name = "token_scorer"

    def __init__(self, name: str | None = None) -> None:
        self.__name__ = name or self.default_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r})"

    def __call__(
        self,
        prompts: list | None = None,
        completions: list | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        processing_class: Any = None,
        **kwargs: Any,
    ) -> list[list[float] | None]:
        if completion_ids is None:
            raise TypeError(f"{self.__name__}: completion_ids is required (token scorers score the policy's tokens).")
        completion_ids = [[int(t) for t in ids] for ids in completion_ids]
        prompts = list(prompts) if prompts is not None else [""] * len(completion_ids)
        completions = list(completions) if completions is not None else [None] * len(completion_ids)
        if not (len(prompts) == len(completions) == len(completion_ids)):
            raise ValueError(
                f"{self.__name__}: got {len(prompts)} prompts, {len(completions)} completions and "
                f"{len(completion_ids)} completion_ids; expected one of each per completion."
            )
        if not completion_ids:
            return []
        return self.score(prompts, completions, completion_ids, processing_class, **kwargs)

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs) -> list[list[float] | None]:
        raise NotImplementedError

    def require_tokenizer(self, processing_class: Any) -> Any:
        """The policy tokenizer (``processing_class`` or the tokenizer inside a processor)."""
        tokenizer = getattr(processing_class, "tokenizer", processing_class)
        if tokenizer is None:
            raise TypeError(
                f"{self.__name__}: processing_class (the policy tokenizer) is required to decode completion_ids; "
                "TokenGRPOTrainer passes it, pass it yourself when calling the scorer directly."
            )
        return tokenizer


def decode_with_spans(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[Span]]:
    """Completion text and each token's character span (special tokens get empty spans)."""
    if not ids:
        return "", []
    return token_char_spans(tokenizer, ids, skip_special_tokens=True)


def get_column(kwargs: dict[str, Any], column: str, scorer_name: str, count: int) -> list:
    """The dataset column ``column`` from the reward kwargs, one value per completion."""
    if column not in kwargs:
        available = sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric", "environments"))
        raise ValueError(
            f"{scorer_name}: the dataset column '{column}' is missing from the reward function kwargs "
            f"(available columns: {available}); add it to the dataset or pass column=... to the scorer."
        )
    values = list(kwargs[column])
    if len(values) != count:
        raise ValueError(f"{scorer_name}: column '{column}' has {len(values)} values for {count} completions.")
    return values


def check_placement(placement: str, scorer_name: str) -> Placement:
    """``placement`` if it is one of `trl_token_ext.choices.PLACEMENTS`; else a ValueError naming the scorer."""
    return check_choice(scorer_name, "placement", placement, PLACEMENTS)


def spread_scores(token_spans: Sequence[Span], items: Sequence[tuple[Span, float]], placement: str) -> list[float]:
    """Per-token values (T,) from (character span, score) items placed by ``placement``
    (`trl_token_ext.alignment.spread_span_scores`)."""
    return spread_span_scores(token_spans, [span for span, _ in items], [score for _, score in items], placement)


def group_indices(prompts: Sequence[Any], num_generations: int | None, scorer_name: str) -> list[list[int]]:
    """Indices of the completions of each prompt's group.

    TRL's sampler repeats each prompt ``num_generations`` times consecutively; with ``num_generations=None`` the
    groups are the runs of consecutive equal prompts.
    """
    count = len(prompts)
    if num_generations is not None:
        if num_generations < 1 or count % num_generations:
            raise ValueError(
                f"{scorer_name}: {count} completions cannot be split into groups of num_generations={num_generations}."
            )
        return [list(range(i, i + num_generations)) for i in range(0, count, num_generations)]
    groups: list[list[int]] = []
    for index, prompt in enumerate(prompts):
        if groups and prompts[groups[-1][0]] == prompt:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def model_device(model: Any):
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: Any):
    """Run ``model`` in eval mode (no dropout), restoring its training flag afterwards."""
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def load_tokenizer(tokenizer: Any, model: Any) -> Any:
    """``tokenizer`` (object or id/path); else the tokenizer saved with ``model`` when it is an id/path; else None."""
    from transformers import AutoTokenizer

    if tokenizer is None and isinstance(model, str):
        tokenizer = model
    if isinstance(tokenizer, str):
        return AutoTokenizer.from_pretrained(tokenizer)
    return tokenizer


def same_tokenizer(a: Any, b: Any) -> bool:
    """True when two tokenizers map every token to the same id (then no re-tokenization is needed)."""
    if a is None or b is None or a is b:
        return True
    try:
        return len(a) == len(b) and a.get_vocab() == b.get_vocab()
    except (AttributeError, TypeError):
        return False
