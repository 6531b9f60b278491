"""One vocabulary (`trl_token_ext.choices`): every scorer places with ``placement=`` from `PLACEMENTS` and scores a
classifier label with ``output=`` from `SCORE_KINDS`; unknown values name the scorer and the allowed values."""

import inspect
import math

import pytest
import torch

import trl_token_ext
from trl_token_ext.choices import PLACEMENTS, SCORE_KINDS, check_choice, label_scores


def test_vocabularies_are_the_documented_literals():
    assert PLACEMENTS == ("sum", "mean", "split", "even", "last")
    assert SCORE_KINDS == ("prob", "log_prob", "logit")


def test_check_choice_names_owner_keyword_and_allowed_values():
    assert check_choice("judge", "placement", "even", PLACEMENTS) == "even"
    with pytest.raises(ValueError, match=r"^judge: placement must be one of \['a', 'b'\], got 'c'\.$"):
        check_choice("judge", "placement", "c", ("a", "b"))


def test_label_scores_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax: (1/4, 3/4)
    assert label_scores(logits, 1, "prob").item() == pytest.approx(0.75)
    assert label_scores(logits, 1, "log_prob").item() == pytest.approx(math.log(0.75))
    assert label_scores(logits, 1, "logit").item() == pytest.approx(math.log(3.0))
    one = torch.tensor([[math.log(3.0)]])  # one logit: sigmoid = 3/4 whatever the label index
    assert label_scores(one, 0, "prob").item() == pytest.approx(0.75)
    assert label_scores(one, 0, "log_prob").item() == pytest.approx(math.log(0.75))
    assert label_scores(one, 0, "logit").item() == pytest.approx(math.log(3.0))


def _scorer_classes():
    return [
        getattr(trl_token_ext, name)
        for name in trl_token_ext.__all__
        if inspect.isclass(getattr(trl_token_ext, name)) and "__init__" in vars(getattr(trl_token_ext, name))
    ]


def test_every_public_class_speaks_one_vocabulary():
    """No constructor keeps the old keywords; each ``placement``/``output`` default is in the one vocabulary."""
    checked = []
    for cls in _scorer_classes():
        parameters = inspect.signature(cls.__init__).parameters
        assert not {"spread", "reduce", "score"} & set(parameters), cls.__name__
        if "placement" in parameters:
            assert parameters["placement"].default in PLACEMENTS, cls.__name__
            checked.append(cls.__name__)
        if "output" in parameters:
            assert parameters["output"].default in SCORE_KINDS, cls.__name__
    assert {"LexiconQuality", "LogProbQuality", "SentenceClassifierReward", "StepReward", "StepPRMReward"} <= set(
        checked
    )


def test_old_values_are_refused_with_the_allowed_ones():
    from trl_token_ext import LexiconQuality, SentenceClassifierReward

    # checked before anything loads: the model path is never read

    allowed = r"\['sum', 'mean', 'split', 'even', 'last'\]"
    with pytest.raises(ValueError, match=rf"lexicon_quality: placement must be one of {allowed}, got 'all'"):
        LexiconQuality({"good": 1.0}, placement="all")
    with pytest.raises(ValueError, match=rf"SentenceClassifierReward: placement must be one of {allowed}, got 'end'"):
        SentenceClassifierReward("never-loaded", label="positive", placement="end")
    with pytest.raises(ValueError, match=r"output must be one of \['prob', 'log_prob', 'logit'\], got 'logprob'"):
        SentenceClassifierReward("never-loaded", label="positive", output="logprob")


def test_resolve_label_by_index_name_and_case_with_errors_naming_the_labels():
    from types import SimpleNamespace

    from trl_token_ext.choices import resolve_label

    config = SimpleNamespace(id2label={0: "NEGATIVE", 1: "POSITIVE"}, num_labels=2)
    assert (resolve_label(config, 0, "c"), resolve_label(config, 1, "c")) == (0, 1)
    assert resolve_label(config, "NEGATIVE", "c") == 0
    assert resolve_label(config, "positive", "c") == 1  # case-insensitive when unique
    with pytest.raises(ValueError, match=r"^c: label index 2 out of range; labels are \['NEGATIVE', 'POSITIVE'\]\.$"):
        resolve_label(config, 2, "c")
    with pytest.raises(ValueError, match=r"^c: label index -1 out of range"):
        resolve_label(config, -1, "c")
    with pytest.raises(
        ValueError, match=r"^c: pass label=\.\.\.; the classifier's labels are \['NEGATIVE', 'POSITIVE'\]"
    ):
        resolve_label(config, None, "c")
    with pytest.raises(ValueError, match=r"^c: unknown label 'neutral'; the classifier's labels are \['NEGATIVE'"):
        resolve_label(config, "neutral", "c")
    assert resolve_label(SimpleNamespace(id2label={}, num_labels=1), None, "c") == 0  # one output: no label needed
    ambiguous = SimpleNamespace(id2label={0: "Yes", 1: "YES"}, num_labels=2)
    assert resolve_label(ambiguous, "YES", "c") == 1
    with pytest.raises(ValueError, match="unknown label 'yes'"):
        resolve_label(ambiguous, "yes", "c")  # two case-folded matches: refused
    assert resolve_label(SimpleNamespace(id2label={0: "a", 1: "b"}), "b", "c") == 1  # num_labels from id2label
    unnamed = SimpleNamespace(num_labels=3)
    assert resolve_label(unnamed, "2", "c") == 2  # labels default to their indices as names
