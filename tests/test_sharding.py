"""Scorers holding a model under sharded training: a clear error at construction instead of a hang."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType

from trl_token_ext.models import SharedBaseModel
from trl_token_ext.scorers import RepetitionConsistency, WeightedTokenReward
from trl_token_ext.sharding import check_scorers_under_sharding, scorer_models, sharding_strategy


def accelerator(kind, zero_stage=None):
    plugin = SimpleNamespace(zero_stage=zero_stage) if zero_stage else None
    return SimpleNamespace(distributed_type=kind, state=SimpleNamespace(deepspeed_plugin=plugin))


class Judge:
    """A scorer holding a model, as LogProbQuality / SentenceClassifierReward do."""

    def __init__(self, model):
        self.model, self.name = model, "judge"

    def __call__(self, completion_ids, **kwargs):
        return [[0.0] * len(ids) for ids in completion_ids]


@pytest.mark.parametrize(
    "acc,expected",
    [
        (accelerator(DistributedType.NO), None),
        (accelerator(DistributedType.MULTI_CPU), None),
        (accelerator(DistributedType.MULTI_GPU), None),
        (accelerator(DistributedType.DEEPSPEED, zero_stage=2), None),
        (accelerator(DistributedType.DEEPSPEED, zero_stage=3), "DeepSpeed ZeRO-3"),
        (accelerator(DistributedType.FSDP), "FSDP"),
    ],
)
def test_sharding_strategy(acc, expected):
    assert sharding_strategy(acc) == expected


def test_models_found_through_wrappers():
    shared = SharedBaseModel(torch.nn.Linear(2, 2))
    combined = WeightedTokenReward([(1.0, Judge(shared)), (0.5, RepetitionConsistency())])
    assert list(scorer_models(combined)) == [shared]
    assert list(scorer_models(RepetitionConsistency())) == []


@pytest.mark.parametrize("kind,stage", [(DistributedType.FSDP, None), (DistributedType.DEEPSPEED, 3)])
def test_policy_sharing_judge_rejected_when_the_policy_is_sharded(kind, stage):
    judge = Judge(SharedBaseModel(torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"'judge' scores with the policy's own weights.*(FSDP|ZeRO-3) shards"):
        check_scorers_under_sharding([judge], ["judge"], accelerator(kind, stage))
    check_scorers_under_sharding([judge], ["judge"], accelerator(DistributedType.MULTI_GPU))  # DDP: fine


def test_scorer_with_its_own_full_model_is_fine_and_a_partitioned_one_rejected():
    model = torch.nn.Linear(2, 2)
    check_scorers_under_sharding([Judge(model)], ["judge"], accelerator(DistributedType.FSDP))
    model.weight.ds_id = 0  # what DeepSpeed's zero.Init leaves on the parameters it partitions
    with pytest.raises(ValueError, match=r"'judge' holds a model whose parameters DeepSpeed ZeRO-3 partitioned"):
        check_scorers_under_sharding([Judge(model)], ["judge"], accelerator(DistributedType.DEEPSPEED, 3))
