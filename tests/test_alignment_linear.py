"""token_char_spans in O(T) for byte-level BPE, SentencePiece (byte fallback) and WordPiece, against the quadratic
reference it replaced (one prefix decode per token, kept here only as a test oracle, Liger-Kernel style).

Every case checks the partition property (spans contiguous, covering the decoded text, so every character belongs
to exactly one token) and equality with the reference: EOS and special tokens at the end and inside, sampled
(non-canonical) segmentations, multi-byte characters split across tokens (CJK, emoji, accented Latin).
"""

from __future__ import annotations

import logging
import random

import pytest
from alignment_tokenizers import BUILDERS, MIXED_TEXT

from trl_token_ext.alignment import token_char_spans


def reference_token_char_spans(tokenizer, token_ids, skip_special_tokens=True):
    """The original O(T²) algorithm: a token ends where the decoding of the prefix up to it ends."""
    token_ids = [int(t) for t in token_ids]
    text = tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    spans, previous = [], 0
    for end_index in range(1, len(token_ids) + 1):
        prefix = tokenizer.decode(
            token_ids[:end_index], skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )
        length = len(prefix.rstrip("\ufffd")) if end_index < len(token_ids) else len(text)
        length = max(previous, min(length, len(text)))
        spans.append((previous, length))
        previous = length
    return text, spans


@pytest.fixture(scope="module", params=list(BUILDERS))
def tokenizer(request):
    return BUILDERS[request.param]()


def eos_id(tokenizer) -> int:
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def sampled_segmentation(tokenizer, text: str, seed: int) -> list[int]:
    """A valid but non-canonical id sequence: the text cut at random character boundaries, each piece encoded."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), k=len(text) // 3))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    return [token for piece in pieces for token in encode(tokenizer, piece)]


def assert_partition(text: str, spans: list[tuple[int, int]]) -> None:
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "spans must be contiguous"
    assert all(start <= end for start, end in spans)


def check(tokenizer, ids, skip_special_tokens=True):
    text, spans = token_char_spans(tokenizer, ids, skip_special_tokens=skip_special_tokens)
    expected_text, expected_spans = reference_token_char_spans(tokenizer, ids, skip_special_tokens)
    assert text == expected_text
    assert len(spans) == len(ids)
    assert_partition(text, spans)
    assert spans == expected_spans
    return text, spans


TEXTS = [
    MIXED_TEXT,
    "这部电影很好看。我很喜欢。" * 3,
    "😀👍🎉 emoji 👨‍👩‍👧 family",
    "Café crème brûlée, naïve façade — señor.",
    "The movie was great. I hated it! " * 5,
]


@pytest.mark.parametrize("text", TEXTS)
def test_canonical_ids_with_and_without_eos(tokenizer, text, caplog):
    ids = encode(tokenizer, text)
    with caplog.at_level(logging.WARNING, logger="trl_token_ext.alignment"):
        check(tokenizer, ids)
        check(tokenizer, [*ids, eos_id(tokenizer)])
        check(tokenizer, [*ids, eos_id(tokenizer), eos_id(tokenizer)])
    assert not caplog.records, "an exact tokenizer must not need the approximate path"


def test_eos_at_end_gives_the_same_spans_as_without(tokenizer):
    """The issue-13 symptom: a trailing EOS must not change which tokens carry which characters."""
    ids = encode(tokenizer, TEXTS[1])
    _, plain = token_char_spans(tokenizer, ids)
    _, with_eos = token_char_spans(tokenizer, [*ids, eos_id(tokenizer)])
    assert with_eos[:-1] == plain
    assert with_eos[-1][0] == with_eos[-1][1] == plain[-1][1]


@pytest.mark.parametrize("text", TEXTS[:3])
def test_special_tokens_inside_the_completion(tokenizer, text):
    ids = encode(tokenizer, text)
    special = eos_id(tokenizer)
    for position in (0, 1, len(ids) // 2, len(ids) - 1):
        mixed = [*ids[:position], special, *ids[position:]]
        text_out, spans = check(tokenizer, mixed)
        assert spans[position][0] == spans[position][1], "a skipped special token has an empty span"
    # kept in the text: placed between characters (inside one it would split the character into invalid bytes)
    middle = len(text) // 2
    check(tokenizer, [*encode(tokenizer, text[:middle]), special, *encode(tokenizer, text[middle:])], False)


@pytest.mark.parametrize("seed", range(4))
def test_sampled_non_canonical_segmentations(tokenizer, seed):
    for text in TEXTS:
        ids = sampled_segmentation(tokenizer, text, seed)
        check(tokenizer, ids)
        check(tokenizer, [*ids, eos_id(tokenizer)])


def test_multi_byte_characters_belong_to_the_token_that_completes_them():
    tokenizer = BUILDERS["byte_level_bpe"]()
    ids = encode(tokenizer, "好")
    assert len(ids) > 1, "precondition: the tiny byte-level BPE splits this character into byte tokens"
    text, spans = token_char_spans(tokenizer, [*ids, eos_id(tokenizer)])
    assert text == "好"
    assert spans == [(0, 0)] * (len(ids) - 1) + [(0, 1), (1, 1)]


@pytest.mark.parametrize("seed", range(3))
def test_random_ids_keep_the_partition(tokenizer, seed):
    """Arbitrary sampled ids (invalid UTF-8 fragments, stray specials): still a contiguous cover of the text."""
    rng = random.Random(seed)
    ids = [rng.randrange(len(tokenizer)) for _ in range(300)]
    text, spans = token_char_spans(tokenizer, ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert len(spans) == len(ids)
    assert_partition(text, spans) if text else None


def test_long_completion_matches_reference_on_a_sample_of_positions():
    """2k tokens ending in EOS (the issue's case) on the linear path; the reference checked on the first 300."""
    tokenizer = BUILDERS["byte_level_bpe"]()
    ids = sampled_segmentation(tokenizer, MIXED_TEXT * 25, seed=0)[:2048] + [eos_id(tokenizer)]
    text, spans = token_char_spans(tokenizer, ids)
    assert_partition(text, spans)
    head = ids[:300]
    assert token_char_spans(tokenizer, head) == reference_token_char_spans(tokenizer, head)


def test_empty_and_all_special():
    tokenizer = BUILDERS["byte_level_bpe"]()
    assert token_char_spans(tokenizer, []) == ("", [])
    assert token_char_spans(tokenizer, [eos_id(tokenizer)] * 3) == ("", [(0, 0)] * 3)


def test_sentence_reward_spread_credits_the_same_tokens_with_and_without_eos():
    """Issue 13 point 5: placement='spread' on CJK text credited 42 tokens without EOS and 14 with it."""
    from trl_token_ext.sentence.reward import SentenceClassifierReward

    class ConstantReward(SentenceClassifierReward):
        def _load(self) -> None:
            self._label_index = 0

        @property
        def label_name(self) -> str:
            return "constant"

        def score_texts(self, texts, truncation_side="right"):
            return [1.0] * len(texts)

    tokenizer = BUILDERS["byte_level_bpe"]()
    ids = encode(tokenizer, "这部电影很好看。我很喜欢。")
    reward = ConstantReward("constant", placement="even")
    plain, with_eos = reward(completion_ids=[ids, [*ids, eos_id(tokenizer)]], processing_class=tokenizer)
    assert with_eos[:-1] == plain and with_eos[-1] == 0.0
    credited = [index for index, value in enumerate(plain) if value]
    assert len(credited) == 13, "one token per character: the token completing each 3-byte character"
