"""Step-level rewards on tokens: split a completion into steps, score each step, place the score on its tokens.

The shared shape of every step reward: a verifier that checks each line in Python, or a process reward model
(PRM) that scores each reasoning step. A step is the text between two separators (lines by default); its token
span runs from its first character to the start of the next step, so every character of the completion belongs to
exactly one step (leading whitespace to the first, separators and blank lines to the step they follow).

Step-score forms (``form``): ``"raw"`` (s_k), ``"min"`` (min_{j≤k} s_j, the minimum over the steps so far: once a
step is wrong every later step is scored as low; PURE), ``"diff"`` (s_k − s_{k−1} with s_{−1} = 0: a potential-based
form whose sum over a completion telescopes to the last step's score).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trl_token_ext.alignment import Span, spread_span_scores
from trl_token_ext.choices import Placement
from trl_token_ext.scorers._common import TokenScorer, check_placement, decode_with_spans, get_column
from trl_token_ext.text import message_text

STEP_SCORE_FORMS = ("raw", "min", "diff")
StepScoreFn = Callable[..., Sequence[float | None]]


@dataclass(frozen=True)
class Step:
    """One step of a completion: its text (whitespace stripped) and the characters whose tokens carry its score."""

    text: str
    span: Span


def split_steps(text: str, separator: str = "\n") -> list[Step]:
    """The non-empty steps of ``text`` split at ``separator``; their spans tile ``text`` from 0 to ``len(text)``.

    Empty or whitespace-only pieces are not steps: their characters join the step before them (the first step when
    they lead). A text with no non-blank character has no steps.
    """
    if not separator:
        raise ValueError("split_steps: separator must be a non-empty string.")
    starts, texts = [], []
    position = 0
    for piece in text.split(separator):
        stripped = piece.strip()
        if stripped:
            starts.append(position + (len(piece) - len(piece.lstrip())))
            texts.append(stripped)
        position += len(piece) + len(separator)
    if not starts:
        return []
    starts[0] = 0
    ends = [*starts[1:], len(text)]
    return [Step(step_text, (start, end)) for step_text, start, end in zip(texts, starts, ends)]


def apply_step_form(scores: Sequence[float], form: str) -> list[float]:
    """Scores of consecutive steps in ``form`` (``"raw"``, ``"min"`` over the steps so far, or ``"diff"``)."""
    if form not in STEP_SCORE_FORMS:
        raise ValueError(f"form must be one of {STEP_SCORE_FORMS}, got {form!r}.")
    values = [float(score) for score in scores]
    if form == "min":
        return [min(values[: k + 1]) for k in range(len(values))]
    if form == "diff":
        return [value - (values[k - 1] if k else 0.0) for k, value in enumerate(values)]
    return values


class StepReward(TokenScorer):
    """A token reward from one score per step, placed on the step's tokens.

    Args:
        score_steps: ``score_steps(prompt, steps, **columns) -> list[float | None]``, one score per step text (or
            None for the whole completion: then the completion is not scored). Subclasses override ``step_scores``
            instead (a PRM scores a whole batch at once).
        separator: what ends a step (``"\\n"``: lines; ``"\\n\\n"``: paragraphs).
        placement: how a step's score reaches its tokens (`trl_token_ext.alignment.spread_span_scores`): ``"last"``
            (its last token, as PRMs are trained), ``"even"`` (divided equally: the step's tokens sum to the score),
            ``"sum"`` (every token gets the score: the form `token_advantage_mode="min"` needs), ``"mean"``,
            ``"split"``.
        form: ``"raw"``, ``"min"`` or ``"diff"`` (see the module docstring).
        columns: dataset columns passed to ``score_steps`` by name.
        name: the name in the logs.
    """

    default_name = "step_reward"

    def __init__(
        self,
        score_steps: StepScoreFn | None = None,
        separator: str = "\n",
        placement: Placement = "last",
        form: str = "raw",
        columns: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(name or getattr(score_steps, "__name__", None))
        check_placement(placement, self.__name__)
        if form not in STEP_SCORE_FORMS:
            raise ValueError(f"{self.__name__}: form must be one of {STEP_SCORE_FORMS}, got {form!r}.")
        if not separator:
            raise ValueError(f"{self.__name__}: separator must be a non-empty string.")
        self.score_steps = score_steps
        self.separator, self.placement, self.form, self.columns = separator, placement, form, tuple(columns)

    def step_scores(self, prompts: list, steps: list[list[str]], kwargs: dict[str, Any]) -> list[list[float] | None]:
        """One list of step scores (or None) per completion. ``kwargs``: the reward keyword arguments (dataset
        columns) and ``processing_class``, the policy tokenizer. Default: ``score_steps`` on each completion."""
        if self.score_steps is None:
            raise NotImplementedError(f"{self.__name__}: pass score_steps=... or override step_scores.")
        columns = {column: get_column(kwargs, column, self.__name__, len(prompts)) for column in self.columns}
        return [
            None if values is None else list(values)
            for values in (
                self.score_steps(prompt, texts, **{column: columns[column][i] for column in columns})
                for i, (prompt, texts) in enumerate(zip(prompts, steps))
            )
        ]

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        tokenizer = self.require_tokenizer(processing_class)
        decoded = [decode_with_spans(tokenizer, ids) for ids in completion_ids]
        steps = [split_steps(text, self.separator) for text, _ in decoded]
        texts = [[step.text for step in found] for found in steps]
        scores = self.step_scores(prompts, texts, {**kwargs, "processing_class": tokenizer})
        if len(scores) != len(steps):
            raise ValueError(
                f"{self.__name__}: step_scores returned {len(scores)} entries for {len(steps)} completions."
            )
        results: list[list[float] | None] = []
        for index, ((_, spans), found, values) in enumerate(zip(decoded, steps, scores)):
            if values is None:
                results.append(None)
                continue
            if len(values) != len(found):
                raise ValueError(
                    f"{self.__name__}: sample {index} has {len(found)} steps but {len(values)} step scores were given."
                )
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(
                    f"{self.__name__}: sample {index} has a non-finite or non-numeric step score in {values}."
                )
            placed = apply_step_form(values, self.form)
            scores_per_token = spread_span_scores(spans, [step.span for step in found], placed, self.placement)
            if self.placement in ("sum", "mean"):  # every token carries its step's score: special tokens too
                scores_per_token = _fill_unspanned(scores_per_token, spans)
            results.append(scores_per_token)
        return results


def _fill_unspanned(values: list[float], spans: Sequence[Span]) -> list[float]:
    """Give tokens without characters (special tokens such as EOS) the value of the token before them (the first
    token with characters, for leading ones), so that a per-token step score covers the whole completion: under
    ``token_advantage_mode="min"`` an EOS token left at 0 would otherwise be every position's minimum."""
    spanned = [i for i, (start, end) in enumerate(spans) if end > start]
    if not spanned:
        return values
    filled, previous = list(values), values[spanned[0]]
    for index, (start, end) in enumerate(spans):
        if end > start:
            previous = values[index]
        else:
            filled[index] = previous
    return filled


def step_texts(completion: Any, separator: str = "\n") -> list[str]:
    """The step texts of a completion (a string or chat messages), as `StepReward` sees them."""
    return [step.text for step in split_steps(message_text(completion), separator)]
