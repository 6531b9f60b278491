"""Consistency scorers: hand-computed per-token values (repetition, reference support, group agreement)."""

from __future__ import annotations

import pytest
from scorer_fixtures import call, encode, policy_tokenizer

from trl_token_ext.scorers import ReferenceConsistency, RepetitionConsistency, SelfConsistency, jaccard

TEXT = "The movie was wonderful."  # tokens: The, Ġmovie, Ġwas, Ġw, o, nd, er, ful, .


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, [0, 0, 0, -1, -1, -1, -1]),
        (2, [0, 0, 0, 0, -1, -1, -1]),
        (3, [0, 0, 0, 0, 0, -1, -1]),
        (4, [0, 0, 0, 0, 0, 0, -1]),
    ],
)
def test_repetition_ngrams_hand_computed(n, expected):
    (values,) = call(RepetitionConsistency(n=n), [[10, 11, 12, 10, 11, 12, 10]])
    assert values == expected


def test_repetition_prompt_special_tokens_and_edges():
    eos = policy_tokenizer().eos_token_id
    prompt_ids = encode("The movie")
    completion = [prompt_ids[0], prompt_ids[1], 50, 50]
    assert call(RepetitionConsistency(n=2), [completion], prompts=["The movie"])[0] == [0, 0, 0, 0]
    with_prompt = RepetitionConsistency(n=2, penalty=-0.5, include_prompt=True)
    assert call(with_prompt, [completion], prompts=["The movie"])[0] == [0, -0.5, 0, 0]
    assert call(RepetitionConsistency(n=1), [[eos, eos], []]) == [[0, 0], []]
    assert call(RepetitionConsistency(n=1, ignore_special_tokens=False), [[eos, eos]]) == [[0, -1]]
    with pytest.raises(ValueError, match="repetition_consistency: n must be a positive int"):
        RepetitionConsistency(n=0)


def test_reference_consistency_hand_computed():
    scorer = ReferenceConsistency(unsupported=-0.5)
    refs = ["the movie was good", None]
    values = call(scorer, [encode(TEXT), encode(TEXT)], reference=refs)
    # The, movie, was supported (+1 each, one token each); "wonderful" (5 tokens) unsupported: -0.5 / 5 each.
    assert values[0] == pytest.approx([1, 1, 1, -0.1, -0.1, -0.1, -0.1, -0.1, 0])
    assert values[1] is None
    ignoring = ReferenceConsistency(column="source", ignore_words=["THE"], placement="last")
    values = call(ignoring, [encode(TEXT)], source=[["a movie", "was wonderful"]])
    assert values[0] == pytest.approx([0, 1, 1, 0, 0, 0, 0, 1, 0])
    assert call(ignoring, [[], [policy_tokenizer().eos_token_id]], source=["x", "y"]) == [[], [0.0]]


def test_reference_consistency_missing_column_names_column_and_scorer():
    with pytest.raises(
        ValueError, match=r"reference_consistency: the dataset column 'answer' is missing.*'reference'"
    ):
        call(ReferenceConsistency(column="answer"), [encode(TEXT)], reference=["x"])


def test_self_consistency_group_agreement_hand_computed():
    texts = ["A cat sat. The dog ran.", "A cat sat. It is 42.", "The dog ran fast.", "A cat sat."]
    ids = [encode(t) for t in texts]
    prompts = ["p", "p", "p", "q"]  # groups {0, 1, 2} and {3} (alone: unscored)
    values = call(SelfConsistency(), ids, prompts=prompts)
    # Jaccard: "A cat sat." matches completion 1 fully (1.0), nothing in completion 2 (0) -> 0.5.
    # "The dog ran." vs completion 1: 0, vs "The dog ran fast.": 3/4 -> 0.375. "It is 42." agrees with nothing.
    tokens = [policy_tokenizer().convert_ids_to_tokens(i) for i in ids]
    assert tokens[0][6:8] == [".", "ĠThe"] and tokens[1][6:9] == [".", "Ġ", "It"]
    assert values[0] == pytest.approx([0.5] * 7 + [0.375] * 8)
    assert values[1] == pytest.approx([0.5] * 7 + [0.0] * 6)
    assert values[2] == pytest.approx([0.375] * len(ids[2]))
    assert values[3] is None
    # Explicit group size, custom similarity, "split" spread.
    same = SelfConsistency(num_generations=2, similarity=lambda a, b: float(a == b), placement="even")
    values = call(same, [encode("A cat sat."), encode("A cat sat.")], prompts=["x", "y"])
    assert values[0] == pytest.approx([1 / len(ids[3])] * len(ids[3]))
    with pytest.raises(ValueError, match="self_consistency: 3 completions cannot be split into groups"):
        call(SelfConsistency(num_generations=2), ids[:3])


def test_jaccard():
    assert jaccard("The dog ran.", "the dog ran fast") == pytest.approx(0.75)
    assert jaccard("", "") == 0.0


def test_self_consistency_sentences_keep_decimals_and_abbreviations():
    from trl_token_ext.text import sentence_spans

    text = "Dr. Smith paid 2.5 dollars. It was cheap!"
    assert sentence_spans(text) == [("Dr. Smith paid 2.5 dollars.", (0, 27)), ("It was cheap!", (28, 41))]
