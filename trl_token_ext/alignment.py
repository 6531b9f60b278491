"""Character-offset alignment between a policy's tokens and any other segmentation of the same text.

Scorers that work on text (a judge LM with another tokenizer, a token classifier, a lexicon, a sentence classifier)
produce scores on character spans; these helpers map them back onto the policy's completion tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[int, int]


def token_char_spans(tokenizer, token_ids: Sequence[int], skip_special_tokens: bool = True) -> tuple[str, list[Span]]:
    """Decode ``token_ids`` and return the text with each token's character span ``[start, end)`` in it.

    Works for any tokenizer (byte-level BPE, SentencePiece, WordPiece): a token's span is the text its decoding adds
    to the decoding of the tokens before it. Special tokens (when skipped) and byte fragments of a multi-byte
    character that is completed by a later token get empty spans at the current end of the text.

    Fast path: when re-encoding the decoded text with offsets gives back exactly ``token_ids``, those offsets are used.
    """
    token_ids = [int(t) for t in token_ids]
    text = tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    if getattr(tokenizer, "is_fast", False) and token_ids:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if encoded["input_ids"] == token_ids:
            return text, [tuple(span) for span in encoded["offset_mapping"]]
    spans: list[Span] = []
    previous = 0
    for end_index in range(1, len(token_ids) + 1):
        prefix = tokenizer.decode(
            token_ids[:end_index], skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )
        # A trailing U+FFFD is an incomplete multi-byte character: it belongs to the token that completes it.
        length = len(prefix.rstrip("\ufffd")) if end_index < len(token_ids) else len(text)
        length = max(previous, min(length, len(text)))
        spans.append((previous, length))
        previous = length
    return text, spans


def overlapping_tokens(token_spans: Sequence[Span], char_span: Span) -> list[int]:
    """Indices of the tokens whose non-empty span overlaps ``char_span`` (half-open intervals)."""
    start, end = char_span
    return [i for i, (s, e) in enumerate(token_spans) if e > s and s < end and e > start]


def spread_span_scores(
    token_spans: Sequence[Span],
    char_spans: Sequence[Span],
    scores: Sequence[float],
    reduce: str = "sum",
) -> list[float]:
    """Per-token scores from scores on character spans.

    Each token gets the scores of the spans overlapping it, combined by ``reduce``: ``"sum"`` or ``"mean"``
    (tokens overlapping no span get 0.0).

    Args:
        token_spans: (T,) character spans of the policy tokens.
        char_spans: (S,) character spans carrying scores. scores: (S,).

    Returns:
        (T,) list of floats.
    """
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}.")
    totals = [0.0] * len(token_spans)
    counts = [0] * len(token_spans)
    for span, score in zip(char_spans, scores):
        for index in overlapping_tokens(token_spans, span):
            totals[index] += float(score)
            counts[index] += 1
    if reduce == "mean":
        return [total / count if count else 0.0 for total, count in zip(totals, counts)]
    return totals
