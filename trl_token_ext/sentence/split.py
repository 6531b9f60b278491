"""Alignment of sentences to a policy's completion tokens.

Sentences come from `trl_token_ext.text.split_sentences` (pySBD). Alignment goes through
:mod:`trl_token_ext.alignment`, so it works for any tokenizer family (byte-level BPE, SentencePiece, WordPiece):
each completion is decoded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trl_token_ext.alignment import Span, TokenSpanIndex, token_char_spans
from trl_token_ext.text import split_sentences


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
