"""`trl_token_ext.scorers._common`: the `TokenScorer` base class and the plumbing scorers share (tokenizer
comparison, dataset columns, groups, decoding with spans, spreading span scores), by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scorer_fixtures import policy_tokenizer

from trl_token_ext.scorers._common import (
    TokenScorer,
    check_placement,
    decode_with_spans,
    get_column,
    group_indices,
    same_tokenizer,
    spread_scores,
)


def word_level_tokenizer(vocab: dict[str, int]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


def test_same_tokenizer_compares_vocabularies_not_sizes():
    """Like Llama-2 and Mistral (both 32,000 ids): same size, different ids."""
    first = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2})
    swapped = word_level_tokenizer({"[UNK]": 0, "good": 2, "bad": 1})
    copy = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2})
    bigger = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2, "ok": 3})
    assert len(first) == len(swapped)
    assert not same_tokenizer(first, swapped)
    assert same_tokenizer(first, copy)
    assert not same_tokenizer(first, bigger)
    assert same_tokenizer(first, None) and same_tokenizer(None, first)
    assert not same_tokenizer(first, object())  # no vocabulary: cannot be the same


class ConstantScorer(TokenScorer):
    default_name = "constant"

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        return [[1.0] * len(ids) for ids in completion_ids]


@pytest.mark.parametrize(
    ("prompts", "completions", "message"),
    [
        (["a"], ["x", "y"], "got 1 prompts, 2 completions and 2 completion_ids"),
        (["a", "b"], ["x"], "got 2 prompts, 1 completions and 2 completion_ids"),
        (["a", "b", "c"], None, "got 3 prompts, 2 completions and 2 completion_ids"),
    ],
)
def test_scorer_rejects_length_mismatches(prompts, completions, message):
    with pytest.raises(ValueError, match=f"constant: {message}"):
        ConstantScorer()(prompts=prompts, completions=completions, completion_ids=[[1], [2, 3]])


def test_scorer_defaults_and_empty_batch():
    assert repr(ConstantScorer(name="mine")) == "ConstantScorer(name='mine')"
    assert ConstantScorer()(completion_ids=[[1], [2, 3]]) == [[1.0], [1.0, 1.0]]
    assert ConstantScorer(name="mine")(completion_ids=[]) == []
    with pytest.raises(TypeError, match="mine: completion_ids is required"):
        ConstantScorer(name="mine")(prompts=["a"])


def test_get_column_rejects_a_column_of_the_wrong_length():
    with pytest.raises(ValueError, match="judge: column 'reference' has 1 values for 2 completions"):
        get_column({"reference": ["r"]}, "reference", "judge", 2)
    with pytest.raises(ValueError, match=r"available columns: \['answer'\]"):
        get_column({"answer": [1, 2], "trainer_state": None}, "reference", "judge", 2)
    assert get_column({"reference": ("r", "s")}, "reference", "judge", 2) == ["r", "s"]


def test_require_tokenizer_unwraps_processors_and_rejects_none():
    tokenizer = policy_tokenizer()
    assert ConstantScorer().require_tokenizer(SimpleNamespace(tokenizer=tokenizer)) is tokenizer
    assert ConstantScorer().require_tokenizer(tokenizer) is tokenizer
    with pytest.raises(TypeError, match="constant: processing_class .* TokenGRPOTrainer passes it, pass it yourself"):
        ConstantScorer().require_tokenizer(None)


class PromptLengthScorer(TokenScorer):
    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        return [[float(len(p)), float(c is None)] for p, c in zip(prompts, completions)]


def test_scorer_fills_missing_prompts_with_empty_strings_and_completions_with_none():
    assert PromptLengthScorer()(completion_ids=[[1, 2]]) == [[0.0, 1.0]]
    assert PromptLengthScorer()(prompts=["abc"], completions=["x"], completion_ids=[(1, 2)]) == [[3.0, 0.0]]


def test_decode_with_spans_of_no_tokens():
    assert decode_with_spans(policy_tokenizer(), []) == ("", [])


def test_get_column_lists_only_dataset_columns():
    kwargs = {"answer": [1], "trainer_state": 0, "log_extra": 0, "log_metric": 0, "environments": 0}
    with pytest.raises(ValueError, match=r"\(available columns: \['answer'\]\); add it to the dataset"):
        get_column(kwargs, "reference", "judge", 1)


def test_spread_scores_modes_accumulate_overlapping_spans():
    spans = [(0, 2), (2, 4), (4, 6)]
    items = [((0, 0), 9.0), ((0, 4), 2.0), ((7, 9), 5.0), ((2, 6), 1.0)]  # (7, 9) and (0, 0) overlap no token
    assert spread_scores(spans, items, "sum") == [2.0, 3.0, 1.0]
    assert spread_scores(spans, items, "last") == [0.0, 2.0, 1.0]
    assert spread_scores(spans, items, "even") == [1.0, 1.5, 0.5]
    assert spread_scores(spans, [((0, 2), 0.0), ((0, 2), 3.0)], "last") == [3.0, 0.0, 0.0]
    assert spread_scores(spans, [((0, 4), 2.0), ((2, 4), 3.0)], "last") == [0.0, 5.0, 0.0]
    with pytest.raises(ValueError, match="q: placement must be one of .*got 'first'"):
        check_placement("first", "q")
    with pytest.raises(ValueError, match="q: placement must be one of"):
        check_placement("all", "q")  # the old `spread` vocabulary is gone


def test_group_indices_with_groups_of_one_and_of_two():
    assert group_indices(["a", "a", "b", "b"], 2, "s") == [[0, 1], [2, 3]]
    assert group_indices(["a", "b"], 1, "s") == [[0], [1]]
    assert group_indices(["a", "a", "b", "a"], None, "s") == [[0, 1], [2], [3]]
    with pytest.raises(ValueError, match="s: 3 completions cannot be split into groups of num_generations=2"):
        group_indices(["a"] * 3, 2, "s")
