"""Sentence spans on tricky texts, and sentence → policy-token alignment for three tokenizer families."""

from __future__ import annotations

import pytest

from trl_token_ext.sentence.split import align_sentences
from trl_token_ext.text import split_sentences


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith paid $3.50 for 2.5 kg of apples, e.g. red ones. Then he left.",
            ["Dr. Smith paid $3.50 for 2.5 kg of apples, e.g. red ones.", "Then he left."],
        ),
        (
            "The U.S. economy grew 3.2% in Q1. Mr. Jones agreed.",
            ["The U.S. economy grew 3.2% in Q1.", "Mr. Jones agreed."],
        ),
        ("First line\nSecond line without period", ["First line", "Second line without period"]),
        ("Shopping:\n1. Buy milk\n2. Walk the dog", ["Shopping:", "1. Buy milk", "2. Walk the dog"]),
        ("- item one\n- item two\n\nDone!", ["- item one", "- item two", "Done!"]),
        ("no terminal punctuation at all", ["no terminal punctuation at all"]),
        ("今天天气很好。我们去公园吧！你来吗？好的", ["今天天气很好。", "我们去公园吧！", "你来吗？", "好的"]),
        ("  Hello world!  How are you?   Fine.  ", ["Hello world!", "How are you?", "Fine."]),
        ("Good. Good. Good.", ["Good.", "Good.", "Good."]),
        ("", []),
        ("  \n\t ", []),
    ],
)
def test_split_sentences_tricky_texts(text, expected):
    assert sentences(text) == expected


def test_split_sentences_spans_are_exact_offsets():
    text = "Good. Good.\nGood"
    assert split_sentences(text) == [(0, 5), (6, 11), (12, 16)]


def test_split_sentences_rejects_non_string():
    with pytest.raises(TypeError, match="expects a str"):
        split_sentences(["not", "a", "string"])


@pytest.fixture(scope="module", params=["byte_level_bpe", "wordpiece", "sentencepiece_unigram"])
def any_tokenizer(request):
    if request.param == "byte_level_bpe":
        from trl_token_ext.testing import build_tiny_tokenizer

        return request.param, build_tiny_tokenizer()
    if request.param == "wordpiece":
        from trl_token_ext.testing import build_wordpiece_tokenizer

        return request.param, build_wordpiece_tokenizer()
    from trl_token_ext.testing import build_unigram_tokenizer

    return request.param, build_unigram_tokenizer()


def test_alignment_maps_each_sentence_to_its_tokens(any_tokenizer):
    family, tokenizer = any_tokenizer
    ids = tokenizer("The movie was great. I hated it!", add_special_tokens=False)["input_ids"]
    alignment = align_sentences(tokenizer, ids)
    assert len(alignment.token_spans) == len(ids)
    # The decoded text may be lowercased (WordPiece uncased) or differ in spacing; sentences follow it.
    assert [s.lower().strip() for s in alignment.sentences] == ["the movie was great.", "i hated it!"]
    first, second = alignment.sentence_tokens
    first_visible = min(i for i, (start, end) in enumerate(alignment.token_spans) if end > start)
    assert first and second and first[0] == first_visible and second[-1] == len(ids) - 1, family
    assert max(first) < min(second), family  # sentences own disjoint, ordered tokens
    last_first = alignment.last_tokens()[0]
    start, end = alignment.token_spans[last_first]
    assert alignment.text[start:end].strip().endswith("."), family  # the first sentence ends on the "." token
    # Every token inside a sentence is covered; tokens left out are whitespace only.
    covered = set(first) | set(second)
    for index, (start, end) in enumerate(alignment.token_spans):
        if index not in covered:
            assert not alignment.text[start:end].strip(), (family, index)


def test_alignment_byte_level_bpe_hand_checked():
    from trl_token_ext.testing import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    ids = tokenizer("Hi. Bye", add_special_tokens=False)["input_ids"]
    alignment = align_sentences(tokenizer, ids)
    pieces = [alignment.text[s:e] for s, e in alignment.token_spans]
    assert "".join(pieces) == "Hi. Bye"
    assert alignment.sentence_spans == [(0, 3), (4, 7)]
    dot = pieces.index(".")
    assert alignment.last_tokens() == [dot, len(ids) - 1]


def test_alignment_skips_special_tokens():
    from trl_token_ext.testing import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    ids = tokenizer("Hi. Bye", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    alignment = align_sentences(tokenizer, ids)
    assert alignment.text == "Hi. Bye"
    assert alignment.token_spans[-1][0] == alignment.token_spans[-1][1]  # EOS has an empty span
    assert alignment.last_tokens()[-1] == len(ids) - 2
