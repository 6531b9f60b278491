"""The package's one vocabulary: how a span's score reaches its tokens, what a classifier's score is.

Every scorer takes ``placement=`` with values from `PLACEMENTS` (`trl_token_ext.alignment.spread_span_scores` does
the placing) and every classifier-backed scorer takes ``output=`` with values from `SCORE_KINDS` (`label_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch

Placement = Literal["sum", "mean", "split", "even", "last"]
"""How a span's score reaches the tokens overlapping it: ``"sum"`` each gets it (a token under several spans gets
their sum), ``"mean"`` each gets the mean of its spans, ``"split"`` divided in proportion to shared characters,
``"even"`` divided equally, ``"last"`` the last token gets it."""
PLACEMENTS: tuple[str, ...] = get_args(Placement)

ScoreKind = Literal["prob", "log_prob", "logit"]
"""A classifier's score of a label: softmax probability (sigmoid for one logit), its log, or the raw logit."""
SCORE_KINDS: tuple[str, ...] = get_args(ScoreKind)


def check_choice(owner: str, keyword: str, value: object, allowed: Sequence[object]) -> object:
    """``value`` if it is one of ``allowed``; else a ValueError naming ``owner``, ``keyword`` and the allowed
    values."""
    if value not in allowed:
        raise ValueError(f"{owner}: {keyword} must be one of {list(allowed)}, got {value!r}.")
    return value


def label_scores(logits: torch.Tensor, label: int, output: str) -> torch.Tensor:
    """(N, C) logits → (N,) scores of class ``label`` as ``output`` (`ScoreKind`); a one-logit (C = 1) model is
    binary: sigmoid / log-sigmoid of its logit."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        column = logits[:, 0]
        if output == "logit":
            return column
        log_p = torch.nn.functional.logsigmoid(column)
    else:
        if output == "logit":
            return logits[:, label]
        log_p = logits.log_softmax(dim=-1)[:, label]
    return log_p if output == "log_prob" else log_p.exp()
