"""Realistic completion lengths end to end (issue 11): a tiny-model TokenGRPOTrainer with ≥ 2,048-token completions
and two text scorers trains and logs; and the construction-time guard for loss paths that cannot take (B, T)
advantages."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from trainer_helpers import grpo_args, length_reward, max_param_diff, snapshot

from trl_token_ext import TokenGRPOTrainer
from trl_token_ext.scorers import LexiconQuality, ReferenceConsistency

LENGTH = 2048


@pytest.fixture(scope="module")
def long_context_model_dir(tmp_path_factory):
    """The tiny random Qwen2 with room for 2k-token completions."""
    from trl_token_ext.testing import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_causal_lm(tokenizer, hidden_size=16, num_layers=1)
    model.config.max_position_embeddings = 4 * LENGTH
    path = tmp_path_factory.mktemp("tiny-long-lm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


class RecordingTrainer(TokenGRPOTrainer):
    """Keeps the last batch's advantages and completion mask."""

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.recorded = {key: output[key].detach().clone() for key in ("advantages", "completion_mask")}
        return output


def test_two_text_scorers_on_2k_token_completions(long_context_model_dir, prompt_dataset, tmp_path):
    lexicon = LexiconQuality({"the": 1.0, "movie": 2.0, "bad": -2.0}, name="lexicon")
    consistency = ReferenceConsistency("reference", name="consistency")
    args = grpo_args(
        tmp_path,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=LENGTH,
        generation_kwargs={"min_new_tokens": LENGTH},
        max_steps=1,
        learning_rate=1e-2,
        token_reward_weights=[1.0, 0.5],
    )
    trainer = RecordingTrainer(
        model=long_context_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[lexicon, consistency],
        args=args,
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) > 0
    advantages, mask = trainer.recorded["advantages"], trainer.recorded["completion_mask"]
    assert advantages.dim() == 2 and advantages.size(1) >= LENGTH
    assert mask.sum(dim=1).min().item() >= LENGTH, "every completion has ≥ 2,048 tokens"
    assert torch.isfinite(advantages).all() and (advantages[mask == 0] == 0).all()
    # dense: the advantage varies along each completion (the outcome part alone would be constant per row)
    assert (advantages[mask.bool()].reshape(4, -1).std(dim=1) > 0).all()
    logs = trainer.state.log_history[0]
    for key in ("token_rewards/lexicon/mean", "token_rewards/consistency/mean", "token_advantages/std"):
        assert key in logs and math.isfinite(logs[key]), key
    assert logs["completions/mean_length"] >= LENGTH


def test_fused_liger_loss_with_token_advantages_is_rejected(tiny_model_dir, prompt_dataset, tmp_path):
    """A trainer carrying TRL's fused Liger GRPO loss (one advantage per sequence) cannot take (B, T) advantages.

    TRL 1.16's ``use_liger_kernel`` only patches layer kernels (its loss takes (B, T)), so construction passes;
    the check is exercised by giving the built trainer the fused-loss attribute older TRL versions create.
    """
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[LexiconQuality({"the": 1.0})],
        args=grpo_args(tmp_path),
        train_dataset=prompt_dataset,
    )
    trainer._check_token_advantage_support()  # use_liger_kernel=False
    trainer.args.use_liger_kernel = True
    trainer._check_token_advantage_support()  # TRL 1.16: no fused Liger loss, nothing to guard
    trainer.liger_grpo_loss = object()
    with pytest.raises(ValueError, match="use_liger_kernel=True"):
        trainer._check_token_advantage_support()
    trainer.token_settings = replace(trainer.token_settings, token_advantage_coef=0.0)  # off: the stock path is fine
    trainer._check_token_advantage_support()
