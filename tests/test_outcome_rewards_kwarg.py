"""Token reward functions see the step's outcome rewards through the ``outcome_rewards`` keyword."""

from __future__ import annotations

import math

import torch
from trainer_helpers import grpo_args, length_reward, parity_token_reward

from trl_token_ext import TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.trainers.records import OutcomeRewards


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
