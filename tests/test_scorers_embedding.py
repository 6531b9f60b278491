"""EmbeddingConsistency: cosine similarity of each sentence to a reference, spread over the sentence's tokens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from trl_token_ext.scorers import EmbeddingConsistency
from trl_token_ext.scorers.embedding import last_user_message
from trl_token_ext.testing import build_wordpiece_tokenizer


class BagOfTokens(torch.nn.Module):
    """An 'encoder' whose hidden state at each position is the one-hot vector of its token: mean pooling then gives
    the token-count vector, so cosines are hand-computable from the encoder tokenizer's ids."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(last_hidden_state=torch.nn.functional.one_hot(input_ids, self.vocab_size).float())


def count_cosine(tokenizer, a: str, b: str) -> float:
    """Cosine of the token-count vectors of ``a`` and ``b`` (special tokens included, as the encoder sees them)."""
    va, vb = (torch.bincount(torch.tensor(tokenizer(t)["input_ids"]), minlength=len(tokenizer)) for t in (a, b))
    va, vb = va.float(), vb.float()
    return float(va @ vb / (va.norm() * vb.norm()))


@pytest.fixture(scope="module")
def encoder_tokenizer():
    return build_wordpiece_tokenizer()


@pytest.fixture(scope="module")
def scorer_factory(encoder_tokenizer):
    def make(**kwargs):
        model = BagOfTokens(len(encoder_tokenizer))
        return EmbeddingConsistency(model, encoder_tokenizer, **kwargs)

    return make


def _sentence_tokens(tokenizer, ids, text_piece):
    """Indices of the policy tokens whose decoded text lies inside ``text_piece``'s first occurrence."""
    from trl_token_ext.alignment import token_char_spans

    text, spans = token_char_spans(tokenizer, ids, skip_special_tokens=True)
    start = text.index(text_piece)
    end = start + len(text_piece)
    return [i for i, (a, b) in enumerate(spans) if a < end and b > start and b > a]


def test_sentence_level_scores_are_cosines_split_over_each_sentence(scorer_factory, encoder_tokenizer, tiny_tokenizer):
    reference = "the movie was good"
    first, second = "The movie was great.", "The food was bad."
    ids = tiny_tokenizer(f"{first} {second}", add_special_tokens=False)["input_ids"]
    scorer = scorer_factory(column="reference", scale=2.0, offset=0.25)
    (values,) = scorer(prompts=["p"], completion_ids=[ids], processing_class=tiny_tokenizer, reference=[reference])
    assert len(values) == len(ids)
    for sentence in (first, second):
        tokens = _sentence_tokens(tiny_tokenizer, ids, sentence)
        expected = 2.0 * (count_cosine(encoder_tokenizer, sentence, reference) - 0.25)
        assert sum(values[i] for i in tokens) == pytest.approx(expected, abs=1e-5)
        assert max(values[i] for i in tokens) == pytest.approx(min(values[i] for i in tokens), abs=1e-6)  # even
    covered = set(_sentence_tokens(tiny_tokenizer, ids, first)) | set(_sentence_tokens(tiny_tokenizer, ids, second))
    assert all(values[i] == 0.0 for i in range(len(ids)) if i not in covered)
    # the on-topic sentence scores higher than the off-topic one
    assert count_cosine(encoder_tokenizer, first, reference) > count_cosine(encoder_tokenizer, second, reference)


def test_completion_level_gives_one_cosine_for_the_whole_text(scorer_factory, encoder_tokenizer, tiny_tokenizer):
    text = "The movie was great. The food was bad."
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    scorer = scorer_factory(column="reference", level="completion", placement="last")
    (values,) = scorer(prompts=["p"], completion_ids=[ids], processing_class=tiny_tokenizer, reference=["good food"])
    nonzero = [v for v in values if v != 0.0]
    assert len(nonzero) == 1 and values[-1] == nonzero[0]
    assert nonzero[0] == pytest.approx(count_cosine(encoder_tokenizer, text, "good food"), abs=1e-5)


def test_sequence_level_is_a_trl_reward_function(scorer_factory, encoder_tokenizer, tiny_tokenizer):
    """One float per completion from its text (as TRL calls reward functions: no processing_class), equal to the
    completion level's token total; None reference -> None; empty text -> scale·(0 − offset)."""
    texts = ["The movie was great. The food was bad.", "", "good food"]
    scorer = scorer_factory(column="reference", level="sequence", scale=2.0, offset=0.25)
    ids = [tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    out = scorer(prompts=["p"] * 3, completions=completions, completion_ids=ids, reference=["good food", "x", None])
    assert out[0] == pytest.approx(2.0 * (count_cosine(encoder_tokenizer, texts[0], "good food") - 0.25), abs=1e-5)
    assert out[1] == pytest.approx(-0.5) and out[2] is None
    tokens = scorer_factory(column="reference", level="completion", scale=2.0, offset=0.25)(
        prompts=["p"], completion_ids=ids[:1], processing_class=tiny_tokenizer, reference=["good food"]
    )
    assert sum(tokens[0]) == pytest.approx(out[0], abs=1e-5)
    with pytest.raises(ValueError, match="level='sequence' scores the completions' text"):
        scorer(prompts=["p"], completion_ids=ids[:1], reference=["good food"])


def test_default_reference_is_the_last_user_message(scorer_factory, encoder_tokenizer, tiny_tokenizer):
    prompt = [
        {"role": "system", "content": "You are a film critic."},
        {"role": "user", "content": "the food was good"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "the movie was bad"},
    ]
    assert last_user_message(prompt) == "the movie was bad" and last_user_message("plain") == "plain"
    ids = tiny_tokenizer("The movie was bad.", add_special_tokens=False)["input_ids"]
    (values,) = scorer_factory()(prompts=[prompt], completion_ids=[ids], processing_class=tiny_tokenizer)
    expected = count_cosine(encoder_tokenizer, "The movie was bad.", "the movie was bad")
    assert sum(values) == pytest.approx(expected, abs=1e-5)


def test_none_reference_and_empty_completion(scorer_factory, tiny_tokenizer):
    ids = tiny_tokenizer("Good movie.", add_special_tokens=False)["input_ids"]
    scorer = scorer_factory(column="reference")
    out = scorer(
        prompts=["p", "p", "p"],
        completion_ids=[ids, ids, []],
        processing_class=tiny_tokenizer,
        reference=[None, "good movie", "good movie"],
    )
    assert out[0] is None and out[2] == [] and len(out[1]) == len(ids) and sum(out[1]) > 0


def test_identical_sentence_scores_one_with_a_real_encoder(tmp_path, tiny_tokenizer):
    """A saved tiny BERT, loaded with AutoModel (task 'feature-extraction'): a sentence equal to the reference has
    cosine 1 (padding in the shared batch does not change its embedding)."""
    from trl_token_ext.testing import save_tiny_sequence_classifier

    folder = save_tiny_sequence_classifier(tmp_path / "encoder")
    scorer = EmbeddingConsistency(str(folder), column="reference", batch_size=8)
    assert type(scorer.model).__name__ == "BertModel" and not scorer.model.training
    ids = tiny_tokenizer("the movie was good. a cat sat on the long mat today", add_special_tokens=False)["input_ids"]
    (values,) = scorer(
        prompts=["p"], completion_ids=[ids], processing_class=tiny_tokenizer, reference=["the movie was good."]
    )
    tokens = _sentence_tokens(tiny_tokenizer, ids, "the movie was good.")
    assert sum(values[i] for i in tokens) == pytest.approx(1.0, abs=1e-5)
    rest = [i for i in range(len(ids)) if i not in tokens and values[i] != 0.0]
    assert rest and all(math.isfinite(values[i]) for i in rest) and sum(values[i] for i in rest) < 1.0 - 1e-4


def test_bad_arguments_and_missing_column_name_the_culprit(scorer_factory, tiny_tokenizer):
    with pytest.raises(ValueError, match="topic_c: level must be one of"):
        scorer_factory(level="word", name="topic_c")
    with pytest.raises(
        ValueError, match=r"placement must be one of \['sum', 'mean', 'split', 'even', 'last'\], got 'all'"
    ):
        scorer_factory(placement="all")
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0\."):
        scorer_factory(batch_size=0)
    with pytest.raises(ValueError, match=r"max_length must be an int >= 1, got 0\."):
        scorer_factory(max_length=0)
    with pytest.raises(ValueError, match="topic_c: the dataset column 'topic' is missing"):
        scorer_factory(column="topic", name="topic_c")(
            prompts=["p"], completion_ids=[[1, 2]], processing_class=tiny_tokenizer, reference=["x"]
        )
    with pytest.raises(ValueError, match="pass tokenizer="):
        EmbeddingConsistency(BagOfTokens(4))
