"""Character-offset alignment between a policy's tokens and any other segmentation of the same text.

Scorers that work on text (a judge LM with another tokenizer, a token classifier, a lexicon, a sentence classifier)
produce scores on character spans; these helpers map them back onto the policy's completion tokens.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from trl_token_ext.choices import PLACEMENTS, Placement, check_choice  # noqa: F401 (PLACEMENTS is public here)

logger = logging.getLogger("trl_token_ext.alignment")

Span = tuple[int, int]

_REPLACEMENT = "\ufffd"
# Tokens are decoded in blocks of ~8, each with ≥ 8 tokens of left context (SentencePiece's leading-space strip and
# WordPiece's "##" rule look at the neighbours). Blocks and contexts start where a character starts, so no window
# starts inside a multi-byte character split into byte tokens (byte-level BPE, SentencePiece byte fallback).
# Windows hold ≤ ~50 tokens whatever T is: the whole alignment is O(T).
_BLOCK_TOKENS = 8
_CONTEXT_TOKENS = 8
_MAX_SHIFT = 4  # blocks and contexts move at most this many times their size to find a character start
_MAX_CHAR_TOKENS = 4  # a UTF-8 character has at most 4 bytes, so it spans at most 4 (non-empty) tokens
_WARNED: set[str] = set()  # tokenizer classes already warned about inexact spans


def _special_ids(tokenizer: Any) -> set[int]:
    """Ids that ``decode(..., skip_special_tokens=True)`` drops."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # fast tokenizer: exactly the added tokens the Rust decoder treats as special
        return {int(i) for i, token in backend.get_added_tokens_decoder().items() if token.special}
    return {int(i) for i in getattr(tokenizer, "all_special_ids", [])}


def _batch_decoder(tokenizer: Any) -> Callable[[list[tuple[int, ...]]], list[str]]:
    """Decode many id lists at once, special tokens kept and no clean-up (one Rust call for fast tokenizers)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return lambda batch: backend.decode_batch(batch, skip_special_tokens=False)
    return lambda batch: [
        tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False) for ids in batch
    ]


def _char_starts(decode_many: Callable[[list[tuple[int, ...]]], list[str]], ids: tuple[int, ...]) -> list[bool]:
    """(T,) whether each token starts at a character boundary of the decoded text.

    Walks from token 0: from a boundary b, the next one is b + k for the smallest k ≤ 4 with ``ids[b:b+k]`` decoding
    to whole characters (no U+FFFD); b + 1 when none does (invalid bytes). Only tokens that do not decode to whole
    characters on their own need the longer windows.
    """
    alone = [_REPLACEMENT not in piece for piece in decode_many([ids[p : p + 1] for p in range(len(ids))])]
    partial = [p for p in range(len(ids)) if not alone[p]]
    longer = decode_many([ids[p : p + k] for p in partial for k in range(2, _MAX_CHAR_TOKENS + 1)])
    steps = [1] * len(ids)  # tokens from each token to the next character start
    for rank, p in enumerate(partial):
        pieces = longer[rank * (_MAX_CHAR_TOKENS - 1) : (rank + 1) * (_MAX_CHAR_TOKENS - 1)]
        ok = [k for k, piece in enumerate(pieces, start=2) if _REPLACEMENT not in piece and p + k <= len(ids)]
        steps[p] = ok[0] if ok else 1
    starts = [False] * len(ids)
    boundary = 0
    while boundary < len(ids):
        starts[boundary] = True
        boundary += steps[boundary]
    return starts


def _block_starts(clean: list[bool]) -> list[int]:
    """Start of each block: every ≥ _BLOCK_TOKENS tokens, at a character start (forced after _MAX_SHIFT blocks)."""
    starts = [0]
    for n in range(1, len(clean)):
        since = n - starts[-1]
        if (since >= _BLOCK_TOKENS and clean[n]) or since >= _MAX_SHIFT * _BLOCK_TOKENS:
            starts.append(n)
    return starts


def _context_start(clean: list[bool], block_start: int) -> int:
    """A character start ≥ _CONTEXT_TOKENS tokens before ``block_start`` (or 0)."""
    start = max(0, block_start - _CONTEXT_TOKENS)
    floor = max(0, block_start - _MAX_SHIFT * _CONTEXT_TOKENS)
    while start > floor and not clean[start]:
        start -= 1
    return start


def _token_ends(
    decode_many: Callable[[list[tuple[int, ...]]], list[str]], ids: tuple[int, ...], text: str
) -> tuple[list[int], bool]:
    """(T,) end offset of each token in ``text`` (the decoding of ``ids``), and whether the windows agreed with it.

    Token n ends where the decoding of the tokens up to n ends, a trailing U+FFFD (an incomplete multi-byte
    character) not counted until a later token completes it; ends never decrease. The decoding up to n is read off
    a window ``ids[context:n+1]`` as its length beyond the decoding of ``ids[context:block_start]``.
    """
    clean = _char_starts(decode_many, ids)
    starts = _block_starts(clean)
    bounds = [*starts, len(ids)]
    windows = []
    for block, start in enumerate(starts):
        context = _context_start(clean, start)
        windows.append(ids[context:start])
        windows.extend(ids[context : n + 1] for n in range(start, bounds[block + 1]))
    decoded = iter(decode_many(windows))
    ends: list[int] = []
    cursor, exact = 0, True
    for block, start in enumerate(starts):
        base, offset = next(decoded), cursor
        window = base
        for n in range(start, bounds[block + 1]):
            window = next(decoded)
            if n < len(ids) - 1:
                window = window.rstrip(_REPLACEMENT)
            cursor = max(cursor, min(len(text), offset + len(window) - len(base)))
            ends.append(cursor)
        exact = exact and window.startswith(base) and text.startswith(window[len(base) :], offset)
    return ends, exact and cursor == len(text)


def token_char_spans(tokenizer, token_ids: Sequence[int], skip_special_tokens: bool = True) -> tuple[str, list[Span]]:
    """Decode ``token_ids`` and return the text with each token's character span ``[start, end)`` in it.

    Works for any tokenizer (byte-level BPE, SentencePiece with byte fallback, WordPiece), in O(T): a token's span is
    the text its decoding adds to the decoding of the few tokens before it (all windows decoded in one batch). The
    spans are contiguous and cover the text, so every character belongs to exactly one token. Special tokens (when
    skipped) and byte fragments of a multi-byte character that a later token completes get empty spans at the
    current end of the text; the completing token carries the whole character. Sampled (non-canonical) id sequences
    and special tokens anywhere in ``token_ids`` take the same path.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow).
        token_ids: (T,) ids.
        skip_special_tokens: drop special tokens from the text, as ``tokenizer.decode`` does.

    Returns:
        ``(text, spans)`` with ``text == tokenizer.decode(token_ids, skip_special_tokens=...,
        clean_up_tokenization_spaces=False)`` and (T,) spans.
    """
    token_ids = [int(t) for t in token_ids]
    text = tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    special = _special_ids(tokenizer) if skip_special_tokens else set()
    kept = [index for index, token in enumerate(token_ids) if token not in special]
    kept_ids = tuple(token_ids[i] for i in kept)  # tuple windows: fewer objects for the garbage collector to track
    ends, exact = _token_ends(_batch_decoder(tokenizer), kept_ids, text) if kept else ([], True)
    # Invalid bytes (U+FFFD in the text, e.g. a completion cut inside a character) legitimately disagree.
    if not exact and _REPLACEMENT not in text and type(tokenizer).__name__ not in _WARNED:
        _WARNED.add(type(tokenizer).__name__)
        logger.warning(
            "token_char_spans: the windowed decodings of this %s do not match its decoded text; token spans are "
            "approximate (contiguous, clamped to the text).",
            type(tokenizer).__name__,
        )
    end_of = dict(zip(kept, ends))
    spans: list[Span] = []
    cursor = 0
    for index in range(len(token_ids)):  # skipped special tokens: an empty span at the current end of the text
        end = len(text) if kept and index == kept[-1] else end_of.get(index, cursor)
        spans.append((cursor, end))
        cursor = end
    return text, spans


class TokenSpanIndex:
    """Answers "which tokens overlap this character span?" in O(log T + k) for sorted token spans.

    Token spans from `token_char_spans` are contiguous and non-decreasing, so the first token ending after a span's
    start is found by bisection and the scan stops at the first token starting at or after its end: placing S spans
    costs O(T + S·log T + overlaps) instead of O(S·T). Unsorted spans fall back to a full scan per query.
    """

    def __init__(self, token_spans: Sequence[Span]):
        self.spans = [(int(s), int(e)) for s, e in token_spans]
        self.ends = [e for _, e in self.spans]
        self.sorted = all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(self.spans, self.spans[1:]))

    def overlapping(self, char_span: Span) -> list[int]:
        """Indices of the tokens whose non-empty span overlaps ``char_span`` (half-open intervals), ascending."""
        start, end = char_span
        if not self.sorted:
            return [i for i, (s, e) in enumerate(self.spans) if e > s and s < end and e > start]
        found = []
        for i in range(bisect.bisect_right(self.ends, start), len(self.spans)):
            s, e = self.spans[i]
            if s >= end:
                break
            if e > s:
                found.append(i)
        return found


def overlapping_tokens(token_spans: Sequence[Span], char_span: Span) -> list[int]:
    """Indices of the tokens whose non-empty span overlaps ``char_span`` (half-open intervals).

    For many spans over the same tokens, build one `TokenSpanIndex` instead (O(log T) per span).
    """
    start, end = char_span
    return [i for i, (s, e) in enumerate(token_spans) if e > s and s < end and e > start]


def spread_span_scores(
    token_spans: Sequence[Span],
    char_spans: Sequence[Span],
    scores: Sequence[float],
    placement: Placement = "sum",
) -> list[float]:
    """Per-token scores from scores on character spans: the one span → token placement of every scorer.

    ``placement`` (`trl_token_ext.choices.Placement`) says how a span's score reaches the (non-empty) tokens
    overlapping it:

    * ``"sum"``: each gets the full score (a token overlapping several spans gets their sum);
    * ``"mean"``: each gets the mean score of the spans overlapping it;
    * ``"split"``: the score is divided in proportion to the characters each shares with the span (the total is
      conserved; used to move scores between two tokenizations of one text);
    * ``"even"``: the score is divided equally among them (the total is conserved);
    * ``"last"``: the last of them gets it (e.g. a sentence's score on its final token).

    Tokens overlapping no span get 0.0; spans overlapping no token are dropped.

    Args:
        token_spans: (T,) character spans of the policy tokens.
        char_spans: (S,) character spans carrying scores. scores: (S,).

    Returns:
        (T,) list of floats.
    """
    check_choice("spread_span_scores", "placement", placement, PLACEMENTS)
    totals = [0.0] * len(token_spans)
    counts = [0] * len(token_spans)
    span_index = TokenSpanIndex(token_spans)
    for (start, end), score in zip(char_spans, scores):
        tokens = span_index.overlapping((start, end))
        if not tokens:
            continue
        score = float(score)
        if placement == "last":
            totals[tokens[-1]] += score
        elif placement == "even":
            for index in tokens:
                totals[index] += score / len(tokens)
        elif placement == "split":
            shared = [min(token_spans[i][1], end) - max(token_spans[i][0], start) for i in tokens]
            for index, size in zip(tokens, shared):
                totals[index] += score * size / sum(shared)
        else:
            for index in tokens:
                totals[index] += score
                counts[index] += 1
    if placement == "mean":
        return [total / count if count else 0.0 for total, count in zip(totals, counts)]
    return totals
