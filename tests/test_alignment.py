"""`trl_token_ext.alignment`: token character spans (fast path and decode-prefix fallback), span overlap and the
placement of span scores on tokens, by hand. (Linear-time behaviour: test_alignment_linear.py.)"""

from __future__ import annotations

import random

import pytest
from scorer_fixtures import policy_tokenizer

from trl_token_ext import alignment
from trl_token_ext.alignment import TokenSpanIndex, overlapping_tokens, spread_span_scores, token_char_spans


class SlowTokenizer:
    """A view of a tokenizer without ``is_fast``: forces `token_char_spans`'s decode-prefix fallback."""

    is_fast = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


def test_empty_span_tokens_overlap_nothing():
    # token 1 is a special token / byte fragment at position 3; a span covering position 3 must skip it
    spans = [(0, 3), (3, 3), (3, 6)]
    assert overlapping_tokens(spans, (2, 5)) == [0, 2]
    assert overlapping_tokens(spans, (3, 3)) == []
    assert overlapping_tokens(spans, (6, 9)) == []
    assert overlapping_tokens(spans, (5, 6)) == [2]


def test_fallback_credits_a_multi_byte_character_to_the_token_completing_it():
    tokenizer = policy_tokenizer()
    ids = tokenizer("café ok", add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in ids] == ["c", "a", "f", "\ufffd", "\ufffd", " o", "k"]  # é is 2 bytes
    text, spans = token_char_spans(SlowTokenizer(tokenizer), ids)
    assert text == "café ok"
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 3), (3, 4), (4, 6), (6, 7)]


def test_fallback_and_fast_path_agree_on_whole_characters():
    tokenizer = policy_tokenizer()
    ids = tokenizer("The movie was great, e.g. 3.50!", add_special_tokens=False)["input_ids"]
    fast = token_char_spans(tokenizer, ids)
    assert fast == token_char_spans(SlowTokenizer(tokenizer), ids)
    assert fast[1][0] == (0, 3) and fast[1][-1] == (30, 31)


def test_special_tokens_get_empty_spans_in_the_fallback():
    tokenizer = policy_tokenizer()
    ids = tokenizer("good", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "good"
    assert spans[-1] == (4, 4) and all(e > s for s, e in spans[:-1])


def test_fallback_keeps_special_tokens_and_spacing_in_the_middle():
    tokenizer = policy_tokenizer()
    good = tokenizer("good", add_special_tokens=False)["input_ids"]
    comma = tokenizer(" , ok .", add_special_tokens=False)["input_ids"]
    ids = good + [tokenizer.eos_token_id] + comma  # not re-encodable: the decode-prefix fallback runs
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "good , ok ."  # no clean-up of " ," / " ."
    assert spans[len(good)] == (4, 4)  # the special token in the middle gets an empty span
    assert spans[-1][1] == len(text) and [s for s, _ in spans[len(good) + 1 :]][0] == 4


def test_fallback_credits_a_truncated_multi_byte_character_to_the_last_token():
    tokenizer = policy_tokenizer()
    ids = tokenizer("café", add_special_tokens=False)["input_ids"][:-1]  # cut inside é
    text, spans = token_char_spans(SlowTokenizer(tokenizer), ids)
    assert text == "caf\ufffd" and spans[-1] == (3, 4)


def test_a_decode_only_tokenizer_uses_the_fallback():
    tokenizer = policy_tokenizer()

    class DecodeOnly:  # no is_fast attribute, not callable
        def decode(self, *args, **kwargs):
            return tokenizer.decode(*args, **kwargs)

    ids = tokenizer("a cat", add_special_tokens=False)["input_ids"]
    assert token_char_spans(DecodeOnly(), ids) == token_char_spans(tokenizer, ids)


def wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer that, like BERT checkpoints, cleans up tokenization spaces by default."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", ",", "it", "is", ".", "ok"]
    tokenizer = Tokenizer(models.WordPiece({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", sep_token="[SEP]", clean_up_tokenization_spaces=True
    )


def test_wordpiece_spaces_before_punctuation_are_kept():
    """WordPiece decoding would "clean up" " ," into ","; spans must index the text as the tokens produce it."""
    tokenizer = wordpiece_tokenizer()
    ids = tokenizer("yes , it is . ok", add_special_tokens=False)["input_ids"]
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "yes , it is . ok"
    assert spans == [(0, 3), (3, 5), (5, 8), (8, 11), (11, 13), (13, 16)]  # a token's span holds its leading space
    sep = ids[:2] + [tokenizer.sep_token_id] + ids[2:]  # a special token in the middle: an empty span, same others
    text, spans = token_char_spans(tokenizer, sep)
    assert text == "yes , it is . ok"
    assert spans == [(0, 3), (3, 5), (5, 5), (5, 8), (8, 11), (11, 13), (13, 16)]


def test_last_token_of_span_is_gone():
    assert not hasattr(alignment, "last_token_of_span")


def test_split_placement_ignores_spans_that_only_touch_a_token():
    assert spread_span_scores([(0, 3), (3, 3)], [(3, 5)], [1.0], placement="split") == [0.0, 0.0]
    assert spread_span_scores([(0, 3), (3, 4)], [(1, 4)], [3.0], placement="split") == [2.0, 1.0]


def test_spread_span_scores_default_sum_and_mean():
    spans = [(0, 2), (2, 4), (4, 6)]
    assert spread_span_scores(spans, [(0, 4), (2, 4)], [1.0, 3.0]) == [1.0, 4.0, 0.0]
    assert spread_span_scores(spans, [(0, 4), (2, 4)], [1.0, 3.0], placement="mean") == [1.0, 2.0, 0.0]
    with pytest.raises(ValueError, match=r"placement must be one of \[.*\], got 'max'"):
        spread_span_scores(spans, [], [], placement="max")


# Tokens: [0, 2) [2, 5) [5, 5) (empty: a special token) [5, 9).  Spans: A = [1, 6) score 6.0, B = [4, 9) score 2.0.
TOKENS = [(0, 2), (2, 5), (5, 5), (5, 9)]
SPANS, SCORES = [(1, 6), (4, 9)], [6.0, 2.0]


@pytest.mark.parametrize(
    "placement, expected",
    [
        ("sum", [6.0, 8.0, 0.0, 8.0]),  # A covers tokens 0, 1, 3; B covers 1, 3
        ("mean", [6.0, 4.0, 0.0, 4.0]),
        ("split", [6.0 * 1 / 5, 6.0 * 3 / 5 + 2.0 * 1 / 5, 0.0, 6.0 * 1 / 5 + 2.0 * 4 / 5]),  # shared characters
        ("even", [2.0, 2.0 + 1.0, 0.0, 2.0 + 1.0]),
        ("last", [0.0, 0.0, 0.0, 8.0]),
    ],
)
def test_spread_span_scores_hand_computed(placement, expected):
    assert spread_span_scores(TOKENS, SPANS, SCORES, placement=placement) == pytest.approx(expected)


def test_spread_span_scores_conserves_totals_and_rejects_unknown_modes():
    for placement in ("split", "even", "last"):
        assert sum(spread_span_scores(TOKENS, SPANS, SCORES, placement=placement)) == pytest.approx(8.0)
    assert spread_span_scores(TOKENS, [(5, 5)], [1.0]) == [0.0] * 4  # a span over no character is dropped
    with pytest.raises(
        ValueError, match=r"spread_span_scores: placement must be one of \['sum', 'mean', 'split', 'even', 'last'\]"
    ):
        spread_span_scores(TOKENS, SPANS, SCORES, placement="max")


# TokenSpanIndex (bisection over sorted token spans) against the O(S·T) scan it replaces.
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
