"""What the token trainers resolve once (`TokenSettings`), carry between TRL's hooks (`PendingTokenStep`), and look
for on token reward functions and callbacks (the protocols of `trl_token_ext.trainers.protocols`)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from trainer_helpers import grpo_args, length_reward, parity_token_reward
from trl import GRPOConfig, RLOOConfig

from trl_token_ext import (
    OnlineImplicitPRM,
    StatefulTokenReward,
    TokenGRPOConfig,
    TokenGRPOTrainer,
    TokenHeatmapCallback,
    TokenRewardConfigMixin,
    TokenRLOOConfig,
    TokenRLOOTrainer,
    TokenStepCallback,
    TrainerBoundReward,
    TrainsOwnModel,
)
from trl_token_ext.trainers.records import OutcomeRewards
from trl_token_ext.trainers.state import TokenSettings


def test_settings_have_every_config_field():
    assert [f.name for f in dataclasses.fields(TokenSettings)] == [
        f.name for f in dataclasses.fields(TokenRewardConfigMixin)
    ]


@pytest.mark.parametrize("stock", [None, GRPOConfig, RLOOConfig])
def test_a_stock_config_gives_the_defaults(stock, tmp_path):
    args = None if stock is None else stock(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    settings = TokenSettings.from_args(args)
    defaults = {f.name: f.default for f in dataclasses.fields(TokenRewardConfigMixin)}
    assert dataclasses.asdict(settings) == defaults
    assert settings.token_advantage_coef == 1.0 and settings.token_advantage_baseline == "position"


def test_settings_read_a_token_config_once_and_are_frozen(tmp_path):
    args = TokenRLOOConfig(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, token_reward_weights=[2, "0.5"],
        token_advantage_coef=0.25, token_advantage_baseline="token_mean", token_kl_coef=0.1,
    )  # fmt: skip
    settings = TokenSettings.from_args(args)
    assert settings.token_reward_weights == (2.0, 0.5)  # a tuple: nothing can change it in place
    assert (settings.token_advantage_coef, settings.token_advantage_baseline) == (0.25, "token_mean")
    assert settings.token_kl_coef == 0.1
    assert settings.weights_for(2).tolist() == [2.0, 0.5]
    assert TokenSettings.from_args(None).weights_for(3).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.token_advantage_coef = 0.0


def test_trainer_resolves_settings_at_construction(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path, GRPOConfig, max_steps=1), train_dataset=prompt_dataset,
    )  # fmt: skip
    assert trainer.token_settings == TokenSettings.from_args(None)
    assert trainer.uses_token_loss
    trainer.token_settings = dataclasses.replace(trainer.token_settings, token_advantage_coef=0.0)
    assert not trainer.uses_token_loss
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    assert batch["advantages"].dim() == 1  # λ = 0: TRL's own (B,) advantages
    assert trainer._token_pending is None  # the step's pending record is dropped when the step ends
    assert trainer.token_step_record is not None


def test_protocols_recognise_the_hooks(tmp_path):
    callback = TokenHeatmapCallback(tmp_path)
    assert isinstance(callback, TokenStepCallback)
    assert not isinstance(parity_token_reward, (TrainerBoundReward, StatefulTokenReward, TokenStepCallback))
    prm = object.__new__(OnlineImplicitPRM)  # the class's hooks, without loading a model
    for protocol in (TrainerBoundReward, StatefulTokenReward, TrainsOwnModel):
        assert isinstance(prm, protocol), protocol


def test_half_a_stateful_token_reward_is_rejected(tiny_model_dir, prompt_dataset, tmp_path):
    class SavesOnly:
        __name__ = "saves_only"

        def __call__(self, completion_ids, **kwargs):
            return [[0.0] * len(ids) for ids in completion_ids]

        def save_checkpoint(self, folder):
            pass

    with pytest.raises(TypeError, match=r"token_reward_funcs\[1\] \(saves_only\) has only one of save_checkpoint"):
        TokenGRPOTrainer(
            model=tiny_model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward, SavesOnly()],
            args=grpo_args(tmp_path, TokenGRPOConfig), train_dataset=prompt_dataset,
        )  # fmt: skip


# Token reward functions see the step's outcome rewards through the ``outcome_rewards`` keyword.
def short_or_none(completions, **kwargs):
    """Outcome reward: 1.0 for completions under 10 characters, None for the first completion of the batch."""
    return [None if i == 0 else float(len(c) < 10) for i, c in enumerate(completions)]


class Spy:
    """Token reward function that records what it was called with."""

    __name__ = "spy"

    def __init__(self):
        self.calls = []

    def __call__(self, completions, completion_ids, **kwargs):
        self.calls.append((list(completions), kwargs["outcome_rewards"]))
        return parity_token_reward(completion_ids)


def expected_outcomes(completions, weights):
    lengths = [float(len(c)) for c in completions]
    shorts = [math.nan if i == 0 else float(len(c) < 10) for i, c in enumerate(completions)]
    per_func = torch.tensor([lengths, shorts]).T
    weighted = torch.tensor(
        [a * weights[0] + (0.0 if math.isnan(b) else b * weights[1]) for a, b in per_func.tolist()]
    )
    return per_func, weighted


def test_grpo_token_reward_sees_per_function_and_weighted_outcome_rewards(tiny_model_dir, prompt_dataset, tmp_path):
    spy = Spy()
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=[length_reward, short_or_none],
        token_reward_funcs=[spy],
        args=grpo_args(tmp_path, max_steps=2, reward_weights=[0.5, 2.0]),
        train_dataset=prompt_dataset,
    )
    trainer.train()
    assert len(spy.calls) == 2
    for completions, outcome in spy.calls:
        assert isinstance(outcome, OutcomeRewards)
        assert outcome.names == ["length_reward", "short_or_none"]
        per_func, weighted = expected_outcomes(completions, [0.5, 2.0])
        assert outcome.per_func.shape == (6, 2) and outcome.weighted.shape == (6,)
        torch.testing.assert_close(outcome.per_func, per_func, equal_nan=True)
        torch.testing.assert_close(outcome.weighted, weighted)
    assert trainer._token_pending is None  # the outcome rewards live only while the step's token functions run


def test_rloo_token_reward_sees_outcome_rewards(tiny_model_dir, prompt_dataset, tmp_path):
    spy = Spy()
    trainer = TokenRLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=[length_reward, short_or_none],
        token_reward_funcs=[spy],
        args=grpo_args(tmp_path, TokenRLOOConfig, max_steps=1),
        train_dataset=prompt_dataset,
    )
    trainer.train()
    completions, outcome = spy.calls[0]
    per_func, weighted = expected_outcomes(completions, [1.0, 1.0])
    torch.testing.assert_close(outcome.per_func, per_func, equal_nan=True)
    torch.testing.assert_close(outcome.weighted, weighted)
