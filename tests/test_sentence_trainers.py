"""SentenceClassifierReward inside an unmodified trl.GRPOTrainer (sequence level) and inside TokenGRPOTrainer
(token level, each placement), with a tiny random policy and a tiny random BERT classifier."""

from __future__ import annotations

import math

import pytest
from trainer_helpers import grpo_args


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    from trl_token_ext.testing import save_tiny_sequence_classifier

    return str(save_tiny_sequence_classifier(tmp_path_factory.mktemp("tiny-classifier-trainers")))


def _args(config_class, tmp_path, **overrides):
    return grpo_args(tmp_path, config_class, **{"max_steps": 2, **overrides})


def _changed(before, model) -> float:
    return max((before[n] - p.detach()).abs().max().item() for n, p in model.named_parameters())


def test_stock_grpo_trainer_uses_sequence_level_reward(tiny_model_dir, tiny_classifier_dir, prompt_dataset, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext.sentence.reward import SentenceClassifierReward

    reward = SentenceClassifierReward(tiny_classifier_dir, label="positive")
    trainer = GRPOTrainer(
        model=tiny_model_dir, reward_funcs=reward, args=_args(GRPOConfig, tmp_path), train_dataset=prompt_dataset
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = [
        row["rewards/sentence_positive/mean"]
        for row in trainer.state.log_history
        if "rewards/sentence_positive/mean" in row
    ]
    assert len(logged) == 2
    assert all(0.0 <= value <= 1.0 for value in logged)  # mean of softmax probabilities (or 0.0 when empty)
    assert _changed(before, trainer.model) > 0


@pytest.mark.parametrize("placement", [{"placement": "last"}, {"placement": "even"}, {"potential": True}])
def test_token_grpo_trainer_each_placement(tiny_model_dir, tiny_classifier_dir, prompt_dataset, tmp_path, placement):
    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.sentence.reward import SentenceClassifierReward

    sentence = SentenceClassifierReward(tiny_classifier_dir, label="positive", **placement)
    calls = []

    def outcome(completions, **kwargs):
        calls.append(len(completions))
        return [0.0] * len(completions)

    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=[outcome, sentence],  # the same object is also a sequence-level reward
        token_reward_funcs=[sentence],
        args=_args(TokenGRPOConfig, tmp_path),
        train_dataset=prompt_dataset,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    rows = [row for row in trainer.state.log_history if "token_rewards/sentence_positive/mean" in row]
    assert len(rows) == 2 and calls == [6, 6]
    for row in rows:
        assert math.isfinite(row["token_rewards/sentence_positive/mean"])
        assert 0.0 <= row["rewards/sentence_positive/mean"] <= 1.0
        if placement == "end":
            # every sentence puts one probability in [0, 1] on one token: the token mean is within [0, 1].
            assert 0.0 <= row["token_rewards/sentence_positive/mean"] <= 1.0
    assert _changed(before, trainer.model) > 0
