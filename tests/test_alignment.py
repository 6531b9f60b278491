"""`trl_token_ext.alignment`: token character spans (fast path and decode-prefix fallback), span overlap and the
placement of span scores on tokens, by hand. (Linear-time behaviour: test_alignment_linear.py.)"""

from __future__ import annotations

import pytest
from scorer_fixtures import policy_tokenizer

from trl_token_ext import alignment
from trl_token_ext.alignment import overlapping_tokens, spread_span_scores, token_char_spans


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
