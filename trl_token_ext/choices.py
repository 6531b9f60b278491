"""The package's one vocabulary: how a span's score reaches its tokens, what a classifier's score is.

Every scorer takes ``placement=`` with values from `PLACEMENTS` (`trl_token_ext.alignment.spread_span_scores` does
the placing) and every classifier-backed scorer takes ``output=`` with values from `SCORE_KINDS` (`label_scores`)
for the label that `resolve_label` finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:  # tensor methods only: importing the vocabulary does not import torch
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
        # log σ(x) = log_softmax([0, x])[1], stable for large |x|
        log_p = (column.unsqueeze(-1) * column.new_tensor([0.0, 1.0])).log_softmax(dim=-1)[:, 1]
    else:
        if output == "logit":
            return logits[:, label]
        log_p = logits.log_softmax(dim=-1)[:, label]
    return log_p if output == "log_prob" else log_p.exp()


def resolve_label(config: Any, label: int | str | None, owner: str) -> int:
    """The class index of ``label`` (an index, or a name of ``config.id2label``, case-insensitive when unique); None
    is allowed for a single-output model only.

    Raises:
        ValueError: naming ``owner`` and listing the model's labels.
    """
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    num_labels = getattr(config, "num_labels", len(id2label)) or len(id2label)
    valid = [id2label.get(i, str(i)) for i in range(num_labels)]
    if label is None:
        if num_labels == 1:
            return 0
        raise ValueError(f"{owner}: pass label=...; the classifier's labels are {valid}.")
    if isinstance(label, int) and not isinstance(label, bool):
        if 0 <= label < num_labels:
            return label
        raise ValueError(f"{owner}: label index {label} out of range; labels are {valid}.")
    if label in valid:
        return valid.index(label)
    folded = [i for i, name in enumerate(valid) if name.lower() == str(label).lower()]
    if len(folded) == 1:
        return folded[0]
    raise ValueError(f"{owner}: unknown label {label!r}; the classifier's labels are {valid}.")
