"""PotentialShaping (telescoping identity), WeightedTokenReward (seed formula + component logs), MetricReward."""

from __future__ import annotations

import math

import pytest
from scorer_fixtures import call, encode, policy_tokenizer

from trl_token_ext.scorers import MetricReward, PotentialShaping, RepetitionConsistency, WeightedTokenReward
from trl_token_ext.scorers.metrics import load_metric

TEXT = "The movie was wonderful."
CUMULATIVE = [0, 3, 9, 13, 15, 16, 18, 20, 23, 24]  # characters decoded after 0..9 policy tokens of TEXT


def char_count(completions, **kwargs):
    return [float(len(c)) for c in completions]


def test_shaping_hand_computed():
    assert call(PotentialShaping(char_count), [encode(TEXT)])[0] == pytest.approx([3, 6, 4, 2, 1, 2, 2, 3, 1])
    half = call(PotentialShaping(char_count, gamma=0.5), [encode(TEXT)])[0]
    assert half == pytest.approx([0.5 * CUMULATIVE[t + 1] - CUMULATIVE[t] for t in range(9)])
    assert call(PotentialShaping(char_count), [[]]) == [[]]


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_shaping_telescoping_identity(gamma):
    """Σ_t γ^t F_t = γ^T Φ(end) − Φ(start), also across special tokens (empty character spans)."""

    def phi(prompts, completions, **kwargs):
        return [math.sin(len(p) + sum(map(ord, c)) / 7.0) for p, c in zip(prompts, completions)]

    eos = policy_tokenizer().eos_token_id
    ids = [encode(TEXT) + [eos], encode("A cat sat. The dog ran."), [eos]]
    prompts = ["Review:", "Story:", "x"]
    texts = [policy_tokenizer().decode(i, skip_special_tokens=True) for i in ids]
    values = call(PotentialShaping(phi, gamma=gamma), ids, prompts=prompts)
    for value, text, prompt in zip(values, texts, prompts):
        shaped_return = sum(gamma**t * f for t, f in enumerate(value))
        (end,), (start,) = phi([prompt], [text]), phi([prompt], [""])
        assert shaped_return == pytest.approx(gamma ** len(value) * end - start, abs=1e-9)


def test_shaping_columns_conversational_and_errors():
    seen = {}

    def prefix_of_reference(completions, reference, **kwargs):
        seen["type"] = type(completions[0])
        texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
        return [1.0 if ref.startswith(t) else 0.0 for t, ref in zip(texts, reference)]

    ids = [encode("The movie"), encode("The movie")]  # tokens: The, Ġmovie
    values = call(PotentialShaping(prefix_of_reference), ids, reference=["The movie was", "The film"])
    assert values == [[0.0, 0.0], [0.0, -1.0]]
    assert seen["type"] is str
    messages = [[{"role": "assistant", "content": "The movie"}]]
    shaped = PotentialShaping(prefix_of_reference)(
        prompts=["p"], completions=messages, completion_ids=ids[:1], processing_class=policy_tokenizer(),
        reference=["The film"],
    )  # fmt: skip
    assert shaped == [[0.0, -1.0]] and seen["type"] is list
    assert call(PotentialShaping(lambda completions, **kw: [None] * len(completions)), ids[:1]) == [None]
    with pytest.raises(ValueError, match="potential_shaping: potential_fn returned 1 values for 3 prefixes"):
        call(PotentialShaping(lambda completions, **kw: [0.0]), ids[:1])
    with pytest.raises(ValueError, match="gamma must be in"):
        PotentialShaping(char_count, gamma=1.5)


def fixed_q(completion_ids, **kwargs):
    return [[1.0, 2.0, 3.0] for _ in completion_ids]


def sometimes_c(completion_ids, **kwargs):
    return [[10.0, 10.0, 10.0], None]


def test_weighted_token_reward_seed_formula_and_logs():
    logged = {}
    reward = WeightedTokenReward([(1.0, fixed_q), (0.5, sometimes_c)], name="seed")
    values = call(reward, [[5, 6, 7], [8, 9, 10]], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert values == [[6.0, 7.0, 8.0], [1.0, 2.0, 3.0]]
    assert logged["token_rewards/seed/fixed_q/mean"] == pytest.approx(2.0)
    assert logged["token_rewards/seed/fixed_q/std"] == pytest.approx(math.sqrt(0.8))
    assert logged["token_rewards/seed/sometimes_c/mean"] == pytest.approx(10.0)
    assert call(WeightedTokenReward([(1.0, lambda completion_ids, **k: [None] * 2)]), [[1], [2]]) == [None, None]
    twice = WeightedTokenReward([(1.0, RepetitionConsistency(n=1)), (2.0, RepetitionConsistency(n=1))])
    assert twice.component_names == ["repetition_consistency", "repetition_consistency_1"]
    assert call(twice, [[30, 30]]) == [[0.0, -3.0]]


def test_weighted_token_reward_validates_components():
    bad = WeightedTokenReward([(1.0, lambda completion_ids, **k: [[1.0]] * len(completion_ids))], name="w")
    with pytest.raises(ValueError, match=r"'w/<lambda>' returned 1 token rewards for sample 0"):
        call(bad, [[1, 2]])
    with pytest.raises(TypeError, match="component 0 must be a \\(weight, scorer\\) pair"):
        WeightedTokenReward([fixed_q])


def test_metric_reward_offline_metrics_hand_computed():
    refs = ["the cat sat on the mat", ["a dog", "the cat sat on the mat"], None]
    completions = ["the cat sat on the mat", "the cat sat on the mat", "x"]
    assert MetricReward("sacrebleu")(completions=completions, reference=refs) == [pytest.approx(1.0)] * 2 + [None]
    assert MetricReward("bleu")(completions=completions[:1], reference=refs[:1]) == [pytest.approx(1.0)]
    # ROUGE-L of "the cat sat" vs the 6-word reference: LCS 3, P = 1, R = 1/2, F = 2/3.
    rouge = MetricReward("rouge", name="rouge_l")
    assert rouge(completions=["the cat sat", ""], reference=refs[:1] * 2) == [pytest.approx(2 / 3), 0.0]
    chrf = MetricReward("chrf")(completions=["the cat sat on the mat", "zzz"], reference=refs[:1] * 2)
    assert chrf == [pytest.approx(1.0), pytest.approx(0.0)]
    with pytest.raises(ValueError, match="sacrebleu_reward: the dataset column 'answer' is missing"):
        MetricReward("sacrebleu", reference_column="answer")(completions=["a"], reference=["a"])
    with pytest.raises(ValueError, match="No built-in implementation for metric 'meteor'"):
        load_metric("meteor", source="local")


def test_metric_reward_as_token_reward_telescopes():
    metric = MetricReward("rouge")
    shaping = metric.as_token_reward()
    ids = [encode("the cat sat on the mat"), encode("the dog")]
    refs = ["the cat sat on the mat"] * 2
    values = call(shaping, ids, reference=refs)
    texts = [policy_tokenizer().decode(i) for i in ids]
    full = metric(completions=texts, reference=refs)
    assert [sum(v) for v in values] == pytest.approx(full)
    assert values[0][-1] > 0 and shaping.__name__ == "rouge_reward_shaping"


def test_metric_reward_scores_the_batch_in_one_metric_call_with_the_libraries_values():
    import sacrebleu
    from rouge_score import rouge_scorer

    metric = load_metric("sacrebleu")
    calls = []
    score_batch = metric.score_batch
    metric.score_batch = lambda predictions, references: (
        calls.append(len(predictions)) or score_batch(predictions, references)
    )
    reward = MetricReward(metric)
    completions = ["the cat sat on a mat", "a dog ran", "the cat sat on a mat", "x"]
    refs = ["the cat sat on the mat", "a dog ran far", "the cat sat on the mat", None]
    scores = reward(completions=completions, reference=refs)
    assert calls == [2]  # one call, the two distinct scored pairs
    for score, text, ref in zip(scores[:3], completions, refs):
        assert score == pytest.approx(sacrebleu.corpus_bleu([text], [[ref]]).score / 100)
    assert scores[3] is None
    rouge = MetricReward("rouge", compute_kwargs={"use_stemmer": True})
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score("cats sitting", "the cat sits")
    assert rouge(completions=["the cat sits"], reference=["cats sitting"]) == [
        pytest.approx(expected["rougeL"].fmeasure)
    ]


class _ExactMatch:
    name = "exact_match"

    def compute(self, predictions, references):
        return {"exact_match": float(predictions[0] in references[0])}


def test_metric_reward_takes_any_metric_object_with_compute():
    reward = MetricReward(_ExactMatch(), key="exact_match")
    assert reward.__name__ == "exact_match_reward"
    assert reward(completions=["a", "b"], reference=["a", ["c", "b"]]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="pass key="):
        MetricReward(_ExactMatch())
