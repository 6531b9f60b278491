"""Sentence segmentation with character offsets, and alignment of sentences to a policy's completion tokens.

Segmentation uses pySBD (rule-based "Golden Rules" sentence boundary detection: abbreviations, decimals, lists,
quotes, CJK terminators), imported lazily. Alignment goes through :mod:`trl_token_ext.alignment`, so it works for
any tokenizer family (byte-level BPE, SentencePiece, WordPiece): each completion is decoded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from trl_token_ext.alignment import Span, TokenSpanIndex, token_char_spans


@lru_cache(maxsize=8)
def _segmenter(language: str):
    try:
        import pysbd
    except ImportError as error:  # pragma: no cover - exercised only without the dependency
        raise ImportError(
            "split_sentences needs the `pysbd` package (rule-based sentence boundary detection): pip install pysbd"
        ) from error
    return pysbd.Segmenter(language=language, clean=False, char_span=False)


def split_sentences(text: str, language: str = "en") -> list[Span]:
    """Character spans ``[start, end)`` of the sentences of ``text``, in order, without surrounding whitespace.

    Handles abbreviations ("Dr.", "e.g."), decimals ("3.50"), newlines and list items (each line of a list is a
    sentence), text without terminal punctuation (the rest is one sentence) and CJK terminators (。！？).
    Whitespace-only text gives no span.

    Args:
        text: the text to split.
        language: a pySBD language code ("en" also splits CJK terminators).

    Returns:
        (S,) list of ``(start, end)`` with ``text[start:end]`` the stripped sentence; ``end > start``.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects a str, got {type(text).__name__}.")
    if not text.strip():
        return []
    spans: list[Span] = []
    cursor = 0
    for piece in _segmenter(language).segment(text):
        stripped = piece.strip()
        if not stripped:
            continue
        # With clean=False the pieces are consecutive slices of the text; find() keeps this robust if one is not.
        start = text.find(stripped, cursor)
        if start < 0:  # pragma: no cover - pySBD altered the text; fall back to the cursor position
            start = cursor
        end = start + len(stripped)
        spans.append((start, end))
        cursor = end
    return spans


@dataclass
class SentenceAlignment:
    """Sentences of one completion and the policy tokens that carry them.

    Attributes:
        text: the decoded completion.
        token_spans: (T,) each token's ``[start, end)`` character span in ``text``.
        sentence_spans: (S,) each sentence's character span (stripped, non-empty).
        sentence_tokens: (S,) the indices of the tokens overlapping each sentence, ascending (may be empty when a
            sentence lies inside a token that the tokenizer decodes with an empty span).
    """

    text: str
    token_spans: list[Span]
    sentence_spans: list[Span] = field(default_factory=list)
    sentence_tokens: list[list[int]] = field(default_factory=list)

    @property
    def sentences(self) -> list[str]:
        """(S,) the sentence strings."""
        return [self.text[start:end] for start, end in self.sentence_spans]

    def last_tokens(self) -> list[int | None]:
        """(S,) index of each sentence's last token (None for a sentence no token overlaps)."""
        return [tokens[-1] if tokens else None for tokens in self.sentence_tokens]


def align_sentences(
    tokenizer, token_ids: Sequence[int], language: str = "en", skip_special_tokens: bool = True
) -> SentenceAlignment:
    """Decode ``token_ids`` once, split the text into sentences and map each sentence to its tokens."""
    text, token_spans = token_char_spans(tokenizer, token_ids, skip_special_tokens=skip_special_tokens)
    sentence_spans = split_sentences(text, language=language)
    index = TokenSpanIndex(token_spans)
    return SentenceAlignment(
        text=text,
        token_spans=list(token_spans),
        sentence_spans=sentence_spans,
        sentence_tokens=[index.overlapping(span) for span in sentence_spans],
    )
