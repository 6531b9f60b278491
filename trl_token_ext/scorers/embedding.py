"""Consistency C(s_t, a_t) from a sentence-embedding model: is each sentence about what it was asked about?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

import torch

from trl_token_ext.choices import Placement, check_choice
from trl_token_ext.models import load_scorer_model
from trl_token_ext.scorers._common import (
    decode_with_spans,
    eval_mode,
    get_column,
    load_tokenizer,
    model_device,
    spread_scores,
)
from trl_token_ext.scorers._model import ModelScorer
from trl_token_ext.text import last_user_message, message_text, sentence_spans

EMBEDDING_LEVELS = ("sentence", "completion", "sequence")  # what one embedding covers


def mean_pooled(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int) -> torch.Tensor:
    """Unit-norm sentence embeddings (N, H): mean of the encoder's last hidden states over the non-pad tokens (the
    pooling of sentence-transformers models such as all-MiniLM-L6-v2), in batches of ``batch_size``."""
    rows = []
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state.float()  # (b, L, H)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(rows) if rows else torch.zeros(0, 0)


@dataclass(eq=False, repr=False)
class EmbeddingConsistency(ModelScorer):
    """C(s_t, a_t) = scale·(cos(e(sentence of a_t), e(reference)) − offset), spread over the sentence's tokens.

    The reference is the prompt's last user message (``column=None``) or a dataset column (a topic, a source
    document, a reference answer); e(·) is a mean-pooled, unit-norm sentence embedding (e.g. all-MiniLM-L6-v2).
    It rewards staying on the asked topic: "Avatar is a stunning film" is closer to "Write one sentence about the
    movie Avatar." than "I'm so glad you enjoyed it!". With ``placement="even"`` (default) a sentence's tokens
    share its score, so a completion's total is Σ over its sentences (``level="completion"``: one score for the
    whole text).
    ``level="sequence"`` makes it an ordinary TRL reward function: one float per completion (the whole text's score,
    from ``completions``), e.g. to put topicality into the outcome reward next to a classifier.

    Args:
        model: an encoder id/path (loaded with ``AutoModel``) or a model object.
        tokenizer: its tokenizer (default: loaded from ``model``).
        column: dataset column holding the reference text; None: the prompt's last user message.
        level: ``"sentence"`` (each sentence scored on its own), ``"completion"`` (the whole completion, on its
            tokens) or ``"sequence"`` (the whole completion, one float: a sequence-level reward function).
        placement: how a sentence's score reaches its tokens (`trl_token_ext.choices.Placement`, default "even").
        scale, offset: score = scale·(cosine − offset); e.g. offset=0.3 makes off-topic sentences negative.
        batch_size, max_length: encoder batching and truncation (encoder tokens per text; at ``"completion"`` /
            ``"sequence"`` level a longer completion is judged by its first ``max_length`` encoder tokens only, so
            for long completions prefer ``"sentence"``, whose cost is linear in the length).
        model_init_kwargs: how `load_scorer_model` loads ``model`` (`ScorerModelArgs` or a dict of its fields).

    Returns per completion a list of ``len(completion_ids[i])`` floats (0 on tokens outside any sentence), with
    ``level="sequence"`` one float, or None when its reference is None.
    """

    default_name = "embedding_consistency"

    model: Any
    tokenizer: Any = None
    _: KW_ONLY
    column: str | None = None
    level: str = "sentence"
    placement: Placement = "even"
    scale: float = 1.0
    offset: float = 0.0
    batch_size: int = 64
    max_length: int = 256

    def _check(self) -> None:
        check_choice(self.__name__, "level", self.level, EMBEDDING_LEVELS)
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise ValueError(f"{self.__name__}: max_length must be an int >= 1, got {self.max_length!r}.")
        self.scale, self.offset = float(self.scale), float(self.offset)

    def _load(self) -> None:
        model = self.model
        self.model = load_scorer_model(model, self.model_init_kwargs, task="feature-extraction", owner=self.__name__)
        self.tokenizer = load_tokenizer(self.tokenizer, model)
        if self.tokenizer is None:
            raise ValueError(f"{self.__name__}: pass tokenizer= (the encoder's) with a model object.")

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm embeddings (N, H) of ``texts``."""
        return mean_pooled(self.model, self.tokenizer, texts, self.batch_size, self.max_length)

    def _references(self, prompts, count: int, kwargs: dict[str, Any]) -> list[str | None]:
        if self.column is None:
            return [last_user_message(p) for p in prompts]
        references = get_column(kwargs, self.column, self.__name__, count)
        return [None if r is None else message_text(r) for r in references]

    def _scores(self, references: list[str | None], pieces: list[tuple[int, str]]) -> list[float]:
        """scale·(cos(e(text), e(reference of its completion)) − offset) for each (completion index, text) piece;
        every distinct reference is embedded once, with the pieces, in one batched pass."""
        unique_refs = sorted({references[index] for index, _ in pieces})
        vectors = self.embed(unique_refs + [text for _, text in pieces])
        ref_vectors = dict(zip(unique_refs, vectors[: len(unique_refs)]))
        return [
            self.scale * (float(vector @ ref_vectors[references[index]]) - self.offset)
            for (index, _), vector in zip(pieces, vectors[len(unique_refs) :])
        ]

    def _sequence_scores(self, completions, references) -> list[float | None]:
        """One score per completion from its text (``level="sequence"``); empty text scores ``scale·(0 − offset)``."""
        texts = [message_text(c).strip() for c in completions]
        scored = [(i, t) for i, (t, r) in enumerate(zip(texts, references)) if t and r is not None]
        values = dict(zip((i for i, _ in scored), self._scores(references, scored)))
        return [None if r is None else values.get(i, -self.scale * self.offset) for i, r in enumerate(references)]

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        references = self._references(prompts, len(completion_ids), kwargs)
        if self.level == "sequence":
            if any(c is None for c in completions):
                raise ValueError(f"{self.__name__}: level='sequence' scores the completions' text; pass completions.")
            return self._sequence_scores(completions, references)
        policy = self.require_tokenizer(processing_class)
        decoded = [decode_with_spans(policy, ids) for ids in completion_ids]
        pieces: list[tuple[int, tuple[int, int], str]] = []  # (completion, char span, text)
        for index, ((text, _), reference) in enumerate(zip(decoded, references)):
            if reference is None:
                continue
            if self.level == "completion":
                stripped = text.strip()
                if stripped:
                    start = text.index(stripped)
                    pieces.append((index, (start, start + len(stripped)), stripped))
            else:
                pieces.extend((index, span, sentence) for sentence, span in sentence_spans(text))
        values = self._scores(references, [(index, text) for index, _, text in pieces])
        items: list[list[tuple[tuple[int, int], float]]] = [[] for _ in completion_ids]
        for (index, span, _), value in zip(pieces, values):
            items[index].append((span, value))
        return [
            None if reference is None else spread_scores(spans, items[index], self.placement)
            for index, ((_, spans), reference) in enumerate(zip(decoded, references))
        ]
