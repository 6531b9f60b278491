"""What the token trainers resolve once (`TokenSettings`), carry between TRL's hooks (`PendingTokenStep`), and look
for on token reward functions and callbacks (the protocols of `trl_token_ext.trainers.protocols`)."""

from __future__ import annotations

import dataclasses

import pytest
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
    TokenStepCallback,
    TrainerBoundReward,
    TrainsOwnModel,
)
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
