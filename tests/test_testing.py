"""The offline builders of ``trl_token_ext.testing`` are deterministic across processes (issue 13 item 3: the
WordPiece (and Unigram) trainers gave different vocabularies in different processes, so fixture-dependent tests
flaked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, torch
from trl_token_ext.testing import (
    build_tiny_sequence_classifier, build_tiny_tokenizer, build_unigram_tokenizer, build_wordpiece_tokenizer,
)
wordpiece = build_wordpiece_tokenizer()
model = build_tiny_sequence_classifier(wordpiece)
print(json.dumps({
    "wordpiece": wordpiece.get_vocab(),
    "bpe": build_tiny_tokenizer().get_vocab(),
    "unigram": build_unigram_tokenizer().get_vocab(),
    "weight_sum": float(sum(p.double().sum() for p in model.parameters())),
}))
"""


def _build_in_fresh_process() -> dict:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tokenizers_and_weights_are_identical_in_two_processes():
    first, second = _build_in_fresh_process(), _build_in_fresh_process()
    assert first["wordpiece"] == second["wordpiece"]
    assert first["bpe"] == second["bpe"]
    assert first["unigram"] == second["unigram"]
    assert first["weight_sum"] == second["weight_sum"]


def test_wordpiece_vocab_keeps_corpus_words_whole_and_falls_back_to_characters():
    from trl_token_ext.testing import build_wordpiece_tokenizer, wordpiece_vocab

    assert list(wordpiece_vocab(["b a", "ab"])) == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "b",
        "##a",
        "##b",
        "ab",
    ]
    tokenizer = build_wordpiece_tokenizer()
    assert tokenizer.tokenize("The movie was wonderful. I hated it!") == [
        "the", "movie", "was", "wonderful", ".", "i", "hated", "it", "!",
    ]  # fmt: skip
    assert tokenizer.tokenize("Mood") == ["m", "##o", "##o", "##d"]  # not a corpus word
    assert tokenizer.tokenize("今天") == ["今", "天"]
    assert tokenizer.tokenize("zebra")[0] == "[UNK]"  # "z" is not in the corpus alphabet


def test_unigram_pieces_are_corpus_words_with_word_marks():
    from trl_token_ext.testing import build_unigram_tokenizer

    tokenizer = build_unigram_tokenizer()
    ids = tokenizer("The movie was great. I hated it!", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "▁The",
        "▁movie",
        "▁was",
        "▁great",
        ".",
        "▁I",
        "▁hated",
        "▁it",
        "!",
    ]
    assert tokenizer.decode(ids) == "The movie was great. I hated it!"
    assert tokenizer.tokenize("Moo") == ["▁", "M", "o", "o"]  # not a corpus word: single characters


@pytest.mark.parametrize("builder", ["build_tiny_tokenizer", "build_wordpiece_tokenizer", "build_unigram_tokenizer"])
def test_same_builder_twice_in_one_process_gives_the_same_ids(builder):
    import trl_token_ext.testing as testing

    assert getattr(testing, builder)().get_vocab() == getattr(testing, builder)().get_vocab()
