"""TokenSpanIndex (bisection over sorted token spans) against the O(S·T) scan it replaces."""

import random

import pytest

from trl_token_ext.alignment import TokenSpanIndex, overlapping_tokens, spread_span_scores


def _contiguous_spans(rng: random.Random, count: int) -> list[tuple[int, int]]:
    spans, position = [], 0
    for _ in range(count):
        width = rng.choice([0, 0, 1, 2, 3, 5])  # empty spans: specials and byte fragments
        spans.append((position, position + width))
        position += width
    return spans


@pytest.mark.parametrize("seed", range(20))
def test_index_equals_scan_on_contiguous_spans(seed):
    rng = random.Random(seed)
    spans = _contiguous_spans(rng, rng.randint(0, 60))
    index = TokenSpanIndex(spans)
    assert index.sorted
    text_length = spans[-1][1] if spans else 0
    for _ in range(50):
        start = rng.randint(0, text_length + 2)
        query = (start, start + rng.randint(0, 12))
        assert index.overlapping(query) == overlapping_tokens(spans, query)


def test_unsorted_spans_fall_back_to_a_scan():
    spans = [(4, 6), (0, 2), (2, 4), (3, 3)]
    index = TokenSpanIndex(spans)
    assert not index.sorted
    assert index.overlapping((1, 5)) == [0, 1, 2]


def test_empty_span_tokens_never_overlap():
    spans = [(0, 2), (2, 2), (2, 5)]
    assert TokenSpanIndex(spans).overlapping((2, 3)) == [2]
    assert TokenSpanIndex(spans).overlapping((1, 3)) == [0, 2]


@pytest.mark.parametrize("placement", ["sum", "mean", "split", "even", "last"])
def test_spread_unchanged_by_the_index(placement):
    """The placement through the index equals a placement that scans every token for every span."""
    rng = random.Random(7)
    spans = _contiguous_spans(rng, 40)
    length = spans[-1][1]
    char_spans = [(a, a + rng.randint(1, 6)) for a in sorted(rng.randint(0, length) for _ in range(15))]
    scores = [rng.uniform(-2, 2) for _ in char_spans]
    expected = [0.0] * len(spans)
    counts = [0] * len(spans)
    for (start, end), score in zip(char_spans, scores):
        tokens = overlapping_tokens(spans, (start, end))
        if not tokens:
            continue
        if placement == "last":
            expected[tokens[-1]] += score
        elif placement == "even":
            for i in tokens:
                expected[i] += score / len(tokens)
        elif placement == "split":
            shared = [min(spans[i][1], end) - max(spans[i][0], start) for i in tokens]
            for i, size in zip(tokens, shared):
                expected[i] += score * size / sum(shared)
        else:
            for i in tokens:
                expected[i] += score
                counts[i] += 1
    if placement == "mean":
        expected = [t / c if c else 0.0 for t, c in zip(expected, counts)]
    assert spread_span_scores(spans, char_spans, scores, placement=placement) == pytest.approx(expected, abs=1e-12)


def test_unsorted_spans_are_detected_and_scanned():
    """Starts in order but ends not, or a later token starting before an earlier one: bisection would miss tokens."""
    assert not TokenSpanIndex([(0, 5), (1, 2)]).sorted
    assert not TokenSpanIndex([(2, 3), (0, 4)]).sorted
    assert not TokenSpanIndex([(0, 1), (1, 2), (0, 1)]).sorted  # every adjacent pair is checked, not every other one
    index = TokenSpanIndex([(5, 6), (0, 1)])
    assert index.overlapping((0, 1)) == [1]  # a bisection over the unsorted ends would find nothing


def test_fallback_scan_uses_half_open_intervals():
    index = TokenSpanIndex([(2, 4), (0, 2)])  # unsorted: the scan
    assert index.overlapping((4, 5)) == []  # touching at 4 is no overlap
    assert index.overlapping((0, 2)) == [1]  # touching at 2 is no overlap
    assert index.overlapping((3, 3)) == [0]  # as overlapping_tokens: start < e and s < end
    assert index.overlapping((3, 3)) == overlapping_tokens([(2, 4), (0, 2)], (3, 3))
