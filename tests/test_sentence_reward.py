"""SentenceClassifierReward: placements and aggregates with a fake classifier of known outputs, and the real
batched classification path on a tiny random BERT (length-sorted batches, truncation, labels, outputs, pickling)."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch

from trl_token_ext.sentence.reward import SentenceClassifierReward
from trl_token_ext.text import completion_text

SCORES = {"The movie was great.": 0.9, "I hated it!": 0.2, "The movie was great. I hated it!": 0.3, "Fine.": 0.5}


class FakeReward(SentenceClassifierReward):
    """Known scores per text (case-insensitive); records what it was asked to classify."""

    def _load(self) -> None:
        self._label_index = 0
        self.calls: list[list[str]] = []

    @property
    def label_name(self) -> str:
        return "fake"

    def score_texts(self, texts, truncation_side="right"):
        self.calls.append(list(texts))
        table = {key.lower(): value for key, value in SCORES.items()}
        return [table[text.lower()] for text in texts]


@pytest.fixture(scope="module")
def bpe():
    from trl_token_ext.testing import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    from trl_token_ext.testing import save_tiny_sequence_classifier

    return str(save_tiny_sequence_classifier(tmp_path_factory.mktemp("tiny-classifier")))


TEXT = "The movie was great. I hated it!"


def _ids(tokenizer, text=TEXT):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_bpe_token_layout_precondition(bpe):
    """The hand-computed vectors below assume this tokenization of TEXT (15 tokens)."""
    pieces = [bpe.decode([t]) for t in _ids(bpe)]
    assert pieces == ["The", " movie", " was", " g", "r", "e", "at", ".", " ", "I", " ", "hat", "ed", " it", "!"]


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        # sentence 1 = tokens 0..7 (ends on "."), token 8 is the space between, sentence 2 = tokens 9..14.
        ({"placement": "last"}, [0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0.2]),
        ({"placement": "even"}, [0.9 / 8] * 8 + [0.0] + [0.2 / 6] * 6),
        ({"placement": "sum"}, [0.9] * 8 + [0.0] + [0.2] * 6),
        # Φ1 = score("The movie was great.") = 0.9, Φ2 = score(whole text) = 0.3 → 0.9 then 0.3 − 0.9.
        ({"potential": True}, [0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0.3 - 0.9]),
        ({"potential": True, "placement": "even"}, [0.9 / 8] * 8 + [0.0] + [(0.3 - 0.9) / 6] * 6),
    ],
)
def test_placements_give_hand_computed_token_vectors(bpe, placement, expected):
    reward = FakeReward("fake", **placement)
    out = reward(prompts=["p"], completions=[TEXT], completion_ids=[_ids(bpe)], processing_class=bpe)
    assert out[0] == pytest.approx(expected)
    asked = reward.calls[0]
    assert asked == (
        ["The movie was great.", TEXT] if "potential" in placement else ["The movie was great.", "I hated it!"]
    )


def test_placements_with_wordpiece_policy_tokenizer():
    from trl_token_ext.testing import build_wordpiece_tokenizer

    tokenizer = build_wordpiece_tokenizer()
    ids = _ids(tokenizer)  # the . i hated it ! → [the, movie, was, great, ., i, hated, it, !]
    assert [tokenizer.decode([t]) for t in ids] == ["the", "movie", "was", "great", ".", "i", "hated", "it", "!"]
    out = FakeReward("fake", placement="last")(completions=[TEXT], completion_ids=[ids], processing_class=tokenizer)
    assert out[0] == pytest.approx([0, 0, 0, 0, 0.9, 0, 0, 0, 0.2])


@pytest.mark.parametrize(("aggregate", "expected"), [("mean", 0.55), ("min", 0.2), ("last", 0.2)])
def test_sequence_level_aggregates(aggregate, expected):
    reward = FakeReward("fake", aggregate=aggregate)
    assert reward(prompts=["p", "q"], completions=[TEXT, "Fine."]) == pytest.approx([expected, 0.5])


def test_whole_batch_is_classified_in_one_call_and_conversational_completions():
    reward = FakeReward("fake")
    completions = [[{"role": "assistant", "content": TEXT}], [{"role": "assistant", "content": "Fine."}]]
    assert reward(prompts=["p", "q"], completions=completions) == pytest.approx([0.55, 0.5])
    assert reward.calls == [["The movie was great.", "I hated it!", "Fine."]]


def test_empty_and_whitespace_completions(bpe):
    reward = FakeReward("fake")
    assert reward(completions=["", "   \n ", "Fine.  \n\n   "]) == [0.0, 0.0, 0.5]
    assert reward.calls[-1] == ["Fine."]  # whitespace-only pieces are never classified
    assert FakeReward("fake", empty_reward=None)(completions=["", "Fine."]) == [None, 0.5]
    ids = [[], _ids(bpe, "  "), _ids(bpe, "Fine.")]
    out = reward(completions=None, completion_ids=ids, processing_class=bpe)
    assert out[0] == [] and out[1] == [0.0] * len(ids[1]) and out[2][-1] == pytest.approx(0.5)
    out = FakeReward("fake", empty_reward=None)(completion_ids=ids[:2], processing_class=bpe)
    assert out == [None, None]


def test_level_selection(bpe):
    reward = FakeReward("fake", level="token", policy_tokenizer=bpe)
    assert len(reward(completions=[TEXT], completion_ids=[_ids(bpe)])[0]) == len(_ids(bpe))
    sequence = FakeReward("fake", level="sequence")
    assert sequence(completions=[TEXT], completion_ids=[_ids(bpe)], processing_class=bpe) == pytest.approx([0.55])
    with pytest.raises(ValueError, match="policy tokenizer"):
        FakeReward("fake", level="token")(completions=[TEXT], completion_ids=[_ids(bpe)])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"placement": "middle"}, "placement"), ({"output": "score"}, "output"), ({"aggregate": "max"}, "aggregate")],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FakeReward("fake", **kwargs)


def test_completion_text_rejects_other_types():
    with pytest.raises(TypeError, match="completion"):
        completion_text(3)


# ---------------------------------------------------------------- real classification path (tiny BERT)


def test_label_resolution(tiny_classifier_dir):
    assert SentenceClassifierReward(tiny_classifier_dir, label="positive")._label_index == 1
    assert SentenceClassifierReward(tiny_classifier_dir, label="NEGATIVE")._label_index == 0
    assert SentenceClassifierReward(tiny_classifier_dir, label=1).__name__ == "sentence_positive"
    with pytest.raises(ValueError, match=r"unknown label 'joy'.*\['negative', 'positive'\]"):
        SentenceClassifierReward(tiny_classifier_dir, label="joy")
    with pytest.raises(ValueError, match="pass label="):
        SentenceClassifierReward(tiny_classifier_dir)


@pytest.mark.parametrize("output", ["prob", "logit", "log_prob"])
def test_batched_length_sorted_scores_match_one_by_one(tiny_classifier_dir, output):
    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive", output=output, batch_size=2)
    model, tokenizer = reward._model, reward._tokenizer
    texts = ["Good.", "The movie was wonderful and the acting was great.", "Bad food.", "A cat sat on the mat.", "Hi"]
    shapes = []
    original = model.forward

    def recording_forward(*args, **kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return original(*args, **kwargs)

    model.forward = recording_forward
    scores = reward.score_texts(texts)
    del model.forward
    assert [s[0] for s in shapes] == [2, 2, 1]  # 5 sentences, batch_size 2
    assert [s[1] for s in shapes] == sorted((s[1] for s in shapes), reverse=True)  # longest batch first
    expected = []
    with torch.no_grad():
        for text in texts:  # the naive way: one sentence per forward pass, no padding
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            value = {"prob": logits.softmax(-1)[1], "log_prob": logits.log_softmax(-1)[1], "logit": logits[1]}[output]
            expected.append(value.item())
    assert scores == pytest.approx(expected, abs=1e-5)


def test_overlong_sentence_is_truncated_with_one_warning(tiny_classifier_dir):
    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive", max_length=8)
    long_text = "the movie was wonderful and the acting was great and the music was good"
    with pytest.warns(UserWarning, match="exceed the classifier's max_length") as record:
        first = reward.sequence_rewards([long_text + "."])
        reward.sequence_rewards(["the food was good and the service was friendly and fast."])
    assert len([w for w in record if "max_length" in str(w.message)]) == 1
    # Truncation keeps the first 6 word pieces + [CLS]/[SEP]: same score as the truncated text itself.
    assert first == pytest.approx(reward.score_texts(["the movie was wonderful and the"]), abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reward.sequence_rewards(["Good."])  # short sentences never warn


def test_pickle_reloads_from_path(tiny_classifier_dir):
    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive")
    state = reward.__getstate__()
    assert state["_model"] is None  # weights are not copied into the pickle
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "sentence_positive"
    assert clone.sequence_rewards(["Good. Bad."]) == pytest.approx(reward.sequence_rewards(["Good. Bad."]))


def test_in_memory_model_and_explicit_cpu_device(tiny_classifier_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    reward = SentenceClassifierReward(
        model, label="positive", tokenizer=tokenizer, model_init_kwargs={"device": "cpu"}
    )
    assert reward.classifier_device == torch.device("cpu")
    assert "BertForSequenceClassification" in repr(reward)
    by_path = SentenceClassifierReward(tiny_classifier_dir, label="positive")
    assert reward.sequence_rewards(["Good."]) == pytest.approx(by_path.sequence_rewards(["Good."]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_classifier_on_gpu_policy_on_cpu(tiny_classifier_dir, bpe):
    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive", device="cuda")
    cpu = SentenceClassifierReward(tiny_classifier_dir, label="positive", model_init_kwargs={"device": "cpu"})
    ids = [_ids(bpe)]  # policy token ids live on the CPU (lists)
    out = reward(completion_ids=ids, processing_class=bpe)
    assert all(isinstance(v, float) for v in out[0])
    assert out[0] == pytest.approx(cpu(completion_ids=ids, processing_class=bpe)[0], abs=1e-4)


def test_potential_prefixes_keep_their_end_when_truncated(tiny_classifier_dir):
    from trl_token_ext.testing import build_wordpiece_tokenizer

    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive", potential=True, max_length=6)
    policy = build_wordpiece_tokenizer()
    text = "the movie was wonderful and great. i hated it."
    ids = policy(text, add_special_tokens=False)["input_ids"]
    with pytest.warns(UserWarning, match="max_length"):
        out = reward(completion_ids=[ids], processing_class=policy)[0]
    # Φ2 = score of the whole text truncated on the LEFT to 4 word pieces + [CLS]/[SEP]: "i hated it ."
    phi1 = reward.score_texts(["the movie was wonderful and great."], truncation_side="left")[0]
    phi2 = reward.score_texts(["i hated it."])[0]
    # the(0) movie was wonderful and great .(6) i hated it .(10): Φ1 on the first ".", Φ2 − Φ1 on the second. The
    # tiny random classifier scores all texts within ~1e-4 of each other, so compare by position, not by "nonzero".
    assert out == pytest.approx([0.0] * 6 + [phi1] + [0.0] * 3 + [phi2 - phi1], abs=1e-6)
    assert sum(out) == pytest.approx(phi2, abs=1e-5)  # the rewards telescope to the last prefix score


def test_load_in_4bit(tiny_classifier_dir):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    quantized = SentenceClassifierReward(
        tiny_classifier_dir, label="positive", model_init_kwargs={"load_in_4bit": True}
    )
    assert isinstance(quantized._model.bert.encoder.layer[0].attention.self.query, bnb.nn.Linear4bit)
    full = SentenceClassifierReward(tiny_classifier_dir, label="positive")
    texts = ["Good. Bad.", "The movie was wonderful and the acting was great."]
    assert quantized.sequence_rewards(texts) == pytest.approx(full.sequence_rewards(texts), abs=0.02)
