"""Every built-in scorer trains inside TokenGRPOTrainer for a few steps on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from scorer_fixtures import CharRuleTagger, char_tokenizer
from trainer_helpers import grpo_args

from trl_token_ext import TokenGRPOTrainer
from trl_token_ext.scorers import (
    ImplicitPRMQuality,
    LexiconQuality,
    LogProbQuality,
    MetricReward,
    ReferenceConsistency,
    RepetitionConsistency,
    SelfConsistency,
    TokenClassifierQuality,
    WeightedTokenReward,
)


def length_reward(completions, **kwargs):
    return [float(len(c)) / 10.0 for c in completions]


def _implicit_prm(model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return ImplicitPRMQuality(get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora), beta=0.5)


def _char_judge(model_dir):
    from trl_token_ext.testing import build_tiny_causal_lm

    judge = build_tiny_causal_lm(char_tokenizer(), seed=1)
    return LogProbQuality(judge, tokenizer=char_tokenizer(), name="logprob_quality_char")


SCORERS = {
    "logprob_quality": lambda d: LogProbQuality(d),
    "logprob_quality_char": _char_judge,
    "implicit_prm_quality": _implicit_prm,
    "token_classifier_quality": lambda d: TokenClassifierQuality(
        CharRuleTagger(char_tokenizer()), "VOWEL", tokenizer=char_tokenizer()
    ),
    "lexicon_quality": lambda d: LexiconQuality({"the": 1.0, "movie": 0.5, "bad": -1.0, "was": 0.3}),
    "repetition_consistency": lambda d: RepetitionConsistency(n=1),
    "reference_consistency": lambda d: ReferenceConsistency(unsupported=-0.2),
    "self_consistency": lambda d: SelfConsistency(),
    "chrf_reward_shaping": lambda d: MetricReward("chrf").as_token_reward(),
    "seed": lambda d: WeightedTokenReward([(1.0, LogProbQuality(d)), (0.5, RepetitionConsistency(n=1))], name="seed"),
}


@pytest.mark.parametrize("name", list(SCORERS))
def test_scorer_trains_in_token_grpo(name, tiny_model_dir, prompt_dataset, tmp_path):
    scorer = SCORERS[name](tiny_model_dir)
    assert scorer.__name__ == name
    outcome = MetricReward("chrf") if name == "chrf_reward_shaping" else length_reward
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=outcome,
        token_reward_funcs=[scorer],
        args=grpo_args(tmp_path, max_steps=2, learning_rate=1e-2),
        train_dataset=prompt_dataset,
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed, f"{name}: no parameter changed"
    logs = [entry for entry in trainer.state.log_history if f"token_rewards/{name}/mean" in entry]
    assert len(logs) == 2
    assert all(math.isfinite(entry[f"token_rewards/{name}/mean"]) for entry in logs)
    if name == "seed":
        assert "token_rewards/seed/logprob_quality/mean" in logs[0]
        assert logs[0]["token_rewards/seed/logprob_quality/mean"] < 0
        assert "token_rewards/seed/repetition_consistency/mean" in logs[0]


def test_seed_formula_trains_in_token_rloo(tiny_model_dir, prompt_dataset, tmp_path):
    from trl_token_ext.trainers.rloo import TokenRLOOConfig, TokenRLOOTrainer

    seed = WeightedTokenReward(
        [(1.0, LogProbQuality(tiny_model_dir)), (0.5, ReferenceConsistency(unsupported=-0.2))], name="seed"
    )
    trainer = TokenRLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[seed],
        args=grpo_args(tmp_path, TokenRLOOConfig, max_steps=2, learning_rate=1e-2),
        train_dataset=prompt_dataset,
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters())
    logs = [entry for entry in trainer.state.log_history if "token_rewards/seed/mean" in entry]
    assert len(logs) == 2 and logs[0]["token_rewards/seed/logprob_quality/mean"] < 0
    assert "token_rewards/seed/reference_consistency/mean" in logs[0]
