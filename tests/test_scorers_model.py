"""`ModelScorer`: the shared keyword arguments of the model-backed scorers, checked before anything loads."""

from __future__ import annotations

import inspect
from dataclasses import KW_ONLY, dataclass
from typing import Any

import pytest

from trl_token_ext.models import ScorerModelArgs
from trl_token_ext.scorers import (
    EmbeddingConsistency,
    ImplicitPRMQuality,
    LogProbQuality,
    OnlineImplicitPRM,
    TeacherDistillReward,
    TokenClassifierQuality,
)
from trl_token_ext.scorers._model import ModelScorer

SHARED = ["placement", "max_length", "batch_size", "model_init_kwargs", "name"]


@dataclass(eq=False, repr=False)
class Recorder(ModelScorer):
    """Records the order of the construction steps."""

    default_name = "recorder"

    model: Any
    _: KW_ONLY
    threshold: float = 0.0

    def _check(self) -> None:
        self.steps = ["check"]
        if self.threshold < 0:
            raise ValueError(f"{self.__name__}: threshold must be >= 0, got {self.threshold}.")

    def _load(self) -> None:
        self.steps.append("load")


def test_shared_checks_then_own_checks_then_load():
    scorer = Recorder("m", threshold=1.0, model_init_kwargs={"dtype": "float32"}, batch_size=3)
    assert scorer.steps == ["check", "load"]
    assert scorer.__name__ == "recorder" and repr(scorer) == "Recorder(name='recorder')"
    assert scorer.model_init_kwargs == ScorerModelArgs(dtype="float32")
    assert (scorer.placement, scorer.max_length, scorer.batch_size) == ("split", None, 3)
    assert len({scorer, Recorder("m")}) == 2  # hashable, equal only to itself
    with pytest.raises(ValueError, match=r"^rec: threshold must be >= 0, got -1"):
        Recorder("m", threshold=-1, name="rec")
    with pytest.raises(TypeError):
        Recorder("m", "split")  # the shared arguments are keyword-only


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"^rec: batch_size must be an int >= 1, got 0\."),
        ({"batch_size": True}, r"^rec: batch_size must be an int >= 1, got True\."),
        ({"batch_size": 2.0}, r"^rec: batch_size must be an int >= 1, got 2\.0\."),
        ({"placement": "middle"}, r"^rec: placement must be one of"),
        ({"model_init_kwargs": {"devise": "cpu"}}, r"^rec: unknown model_init_kwargs \['devise'\]"),
    ],
)
def test_bad_shared_argument_is_refused_before_the_subclass_runs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Recorder("m", name="rec", threshold=-1, **kwargs)  # threshold is bad too: the shared checks come first


@pytest.mark.parametrize(
    "scorer",
    [
        LogProbQuality,
        ImplicitPRMQuality,
        TeacherDistillReward,
        OnlineImplicitPRM,
        TokenClassifierQuality,
        EmbeddingConsistency,
    ],
)
def test_every_model_backed_scorer_takes_the_shared_keywords(scorer):
    parameters = inspect.signature(scorer).parameters
    assert issubclass(scorer, ModelScorer)
    for name in SHARED:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (scorer.__name__, name)
    positional = [p.name for p in parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional[0] in ("model", "teacher") and "tokenizer" in positional
