"""Per-token KL folded into the token reward: estimators by hand, and the trainer's advantages."""

from __future__ import annotations

import math

import pytest
import torch
from trainer_helpers import grpo_args, length_reward, max_param_diff, snapshot
from trl import GRPOTrainer

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.kl_reward import kl_token_rewards, per_token_kl

LOGPS = torch.tensor([[-1.0, -2.0, -0.5]])
REF = torch.tensor([[-1.5, -1.0, -0.5]])  # log-ratios 0.5, -1.0, 0.0


def test_estimators_by_hand():
    torch.testing.assert_close(per_token_kl(LOGPS, REF, "k1"), torch.tensor([[0.5, -1.0, 0.0]]))
    torch.testing.assert_close(per_token_kl(LOGPS, REF, "k2"), torch.tensor([[0.125, 0.5, 0.0]]))
    k3 = [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0, 0.0]
    torch.testing.assert_close(per_token_kl(LOGPS, REF, "k3"), torch.tensor([k3]))


def test_kl_token_rewards_scaled_negated_and_masked():
    mask = torch.tensor([[1, 1, 0]])
    got = kl_token_rewards(LOGPS, REF + torch.tensor([[0.0, 0.0, float("inf")]]), mask, coef=0.2, estimator="k1")
    torch.testing.assert_close(got, torch.tensor([[-0.1, 0.2, 0.0]]))


def test_unknown_estimator_and_negative_coef_rejected(tmp_path):
    with pytest.raises(ValueError, match="k4"):
        per_token_kl(LOGPS, REF, "k4")
    with pytest.raises(ValueError, match="token_kl_estimator"):
        TokenGRPOConfig(output_dir=str(tmp_path), token_kl_estimator="k4")
    with pytest.raises(ValueError, match="token_kl_coef"):
        TokenGRPOConfig(output_dir=str(tmp_path), token_kl_coef=-1.0)


def completion_logps(model, batch, temperature):
    """log π(y_t | x, y_<t) of the batch's completion tokens, by hand (one forward pass over prompt + completion)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits
    width = batch["completion_ids"].size(1)
    logits = logits[:, -width - 1 : -1].float() / temperature
    return logits.log_softmax(-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)


def centred_by_position(values, mask, group_size):
    """values − the mean of the group's valid values at each position (0 where a completion is alone), by hand."""
    out = torch.zeros_like(values)
    for i in range(values.size(0)):
        group = range(i // group_size * group_size, (i // group_size + 1) * group_size)
        for t in range(values.size(1)):
            members = [k for k in group if mask[k, t]]
            if mask[i, t] and len(members) > 1:
                out[i, t] = values[i, t] - sum(values[k, t] for k in members) / len(members)
    return out


@pytest.mark.parametrize(("estimator", "baseline"), [("k1", "token_mean"), ("k3", "token_mean"), ("k1", "position")])
def test_grpo_advantages_add_minus_beta_kl_against_adapter_disabled_reference(
    tiny_model_dir, prompt_dataset, tmp_path, monkeypatch, estimator, baseline
):
    """KL only (no token functions), immediate: A_t = A_out − β_kl·k_t exactly with no normalization (token_mean);
    the length-neutral path centres −β_kl·k_t on each position's group mean and keeps its units (β_kl is not
    normalized away)."""
    from peft import LoraConfig

    captured = {}
    parent = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = parent(self, inputs)
        captured["outcome"] = output["advantages"].clone()
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    args = grpo_args(
        tmp_path, token_kl_coef=0.3, token_kl_estimator=estimator, token_advantage_mode="immediate", bf16=False,
        token_advantage_baseline=baseline, token_reward_normalization="none" if baseline == "token_mean" else "group",
    )  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir, reward_funcs=length_reward, args=args, train_dataset=prompt_dataset, peft_config=lora
    )
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    model, mask = trainer.model, batch["completion_mask"]
    logps = completion_logps(model, batch, args.temperature)
    with model.disable_adapter():
        ref = completion_logps(model, batch, args.temperature)
    kl = per_token_kl(logps, ref, estimator)
    assert (kl * mask).abs().max() > 1e-3  # the adapter moves the policy away from the reference
    penalty = 0.3 * (kl if baseline == "token_mean" else centred_by_position(kl * mask, mask, group_size=3))
    expected = (captured["outcome"].unsqueeze(1) - penalty) * mask
    torch.testing.assert_close(batch["advantages"] * mask, expected, atol=1e-5, rtol=1e-4)
    assert trainer.token_step_record is not None


def test_grpo_kl_uses_trl_reference_when_beta_positive_and_trains(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        args=grpo_args(tmp_path, max_steps=2, beta=0.1, token_kl_coef=0.5, token_kl_estimator="k3"),
        train_dataset=prompt_dataset,
    )
    assert trainer._kl_reference_source() == "trl_ref_model" and trainer.token_kl_ref_model is None
    before = snapshot(trainer.model)
    trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) > 1e-4
    assert "token_rewards/kl/mean" in trainer.state.log_history[0]


def test_rloo_kl_in_reward_with_frozen_copy_reference(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenRLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        args=grpo_args(
            tmp_path, TokenRLOOConfig, max_steps=3, beta=0.0, token_kl_coef=1.0, token_reward_normalization="none"
        ),
        train_dataset=prompt_dataset,
    )
    assert trainer._kl_reference_source() == "copy"
    reference = snapshot(trainer.token_kl_ref_model)
    trainer.train()
    assert max_param_diff(reference, snapshot(trainer.token_kl_ref_model)) == 0.0  # the reference stays frozen
    assert max_param_diff(reference, snapshot(trainer.model)) > 1e-4
    kl_means = [
        entry["token_rewards/kl/mean"] for entry in trainer.state.log_history if "token_rewards/kl/mean" in entry
    ]
    assert kl_means[0] == pytest.approx(0.0, abs=1e-6)  # step 1: policy == reference
    assert kl_means[-1] != pytest.approx(0.0, abs=1e-7)  # later steps: −β·KL of the moved policy
