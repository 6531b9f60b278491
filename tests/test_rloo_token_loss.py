"""TokenRLOOTrainer's per-token loss against TRL's RLOO loss: values by hand (λ ≠ 0), TRL's metric set, and the MoE
auxiliary loss on a tiny Qwen2-MoE model with router logits on."""

from __future__ import annotations

import math

import pytest
import torch
from trainer_helpers import grpo_args, length_reward, parity_token_reward
from trl import RLOOConfig, RLOOTrainer

from trl_token_ext import TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.trainers import _trl

# Two completions of three tokens after a two-token prompt; the second completion's last token is padding.
PROMPT_IDS = [[40, 41], [42, 43]]
COMPLETION_IDS = [[100, 101, 102], [103, 104, 0]]
COMPLETION_MASK = [[1, 1, 1], [1, 1, 0]]


def hand_batch(trainer, ratios, advantages):
    """A loss batch whose per-token ratio π/π_old is ``ratios``: π_old = π · ratio⁻¹ under TRL's own log-prob pass."""
    batch = {
        "prompt_ids": torch.tensor(PROMPT_IDS),
        "prompt_mask": torch.ones(2, 2, dtype=torch.long),
        "completion_ids": torch.tensor(COMPLETION_IDS),
        "completion_mask": torch.tensor(COMPLETION_MASK),
        "advantages": advantages,
    }
    with torch.no_grad():
        logps, _, _ = _trl.forward_logps(trainer, trainer.model, batch)
    batch["old_per_token_logps"] = logps - torch.tensor(ratios).log()
    batch["old_logps"] = (batch["old_per_token_logps"] * batch["completion_mask"]).sum(1)
    return batch


def token_trainer(model_dir, dataset, tmp_path, **overrides):
    trainer = TokenRLOOTrainer(
        model=model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path, TokenRLOOConfig, beta=0.0, **overrides), train_dataset=dataset,
    )  # fmt: skip
    trainer.model.train()
    return trainer


def test_token_loss_by_hand_with_lambda(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = token_trainer(tiny_model_dir, prompt_dataset, tmp_path, token_advantage_coef=0.5)
    assert trainer.uses_token_loss and trainer.epsilon_low == trainer.epsilon_high == 0.2
    # A = A_out + λ·A_tok with λ = 0.5: A_out = (1, −1), A_tok = ((0.5, −4, 2), (1, −2, ·)) → A below (0 off the mask)
    advantages = torch.tensor([[1.25, -1.0, 2.0], [-0.5, -2.0, 0.0]])
    batch = hand_batch(trainer, [[1.0, 0.5, 2.0], [0.5, 2.0, 1.0]], advantages)
    loss = trainer._compute_loss(trainer.model, batch)
    # −min(ρA, clip(ρ, 0.8, 1.2)·A) per token:
    #   row 0: ρ=1, A=1.25 → −1.25; ρ=0.5, A=−1 → −min(−0.5, −0.8) = 0.8 (low-clipped); ρ=2, A=2 → −min(4, 2.4) = −2.4
    #          (high-clipped); sum −2.85
    #   row 1: ρ=0.5, A=−0.5 → −min(−0.25, −0.4) = 0.4 (low-clipped); ρ=2, A=−2 → −min(−4, −2.4) = 4 (not clipped: the
    #          pessimistic term); padding 0; sum 4.4
    # mean over the two completions: (−2.85 + 4.4) / 2 = 0.775
    assert loss.item() == pytest.approx(0.775, abs=1e-5)
    metrics = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    # per completion, the share of its tokens clipped: row 0 low 1/3, high 1/3, either 2/3; row 1: 1/2, 0, 1/2
    assert metrics["clip_ratio/low_mean"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert metrics["clip_ratio/low_min"] == pytest.approx(1 / 3)
    assert metrics["clip_ratio/high_mean"] == pytest.approx((1 / 3 + 0) / 2)
    assert metrics["clip_ratio/high_max"] == pytest.approx(1 / 3)
    assert metrics["clip_ratio/region_mean"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    with torch.no_grad():
        _, entropies, _ = _trl.forward_logps(trainer, trainer.model, batch, compute_entropy=True)
    assert metrics["entropy"] == pytest.approx((entropies * batch["completion_mask"]).sum().item() / 5, rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())


def test_token_loss_logs_trls_metric_set(tiny_model_dir, prompt_dataset, tmp_path):
    stock = RLOOTrainer(model=tiny_model_dir, reward_funcs=length_reward, train_dataset=prompt_dataset,
                        args=grpo_args(tmp_path / "s", RLOOConfig, beta=0.0))  # fmt: skip
    stock.model.train()
    token = token_trainer(tiny_model_dir, prompt_dataset, tmp_path / "t")
    ratios = [[1.0] * 3] * 2
    stock._compute_loss(stock.model, hand_batch(stock, ratios, torch.tensor([1.0, -1.0])))
    token._compute_loss(token.model, hand_batch(token, ratios, torch.tensor([[1.0] * 3, [-1.0] * 3])))
    assert set(token._metrics["train"]) == set(stock._metrics["train"])
    assert "clip_ratio/high_max" in token._metrics["train"] and "aux_loss" not in token._metrics["train"]


def test_a_sequence_without_valid_tokens_is_skipped_by_the_clip_statistics(tiny_model_dir, prompt_dataset, tmp_path):
    token = token_trainer(tiny_model_dir, prompt_dataset, tmp_path)
    batch = hand_batch(token, [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]], torch.ones(2, 3))
    batch["completion_mask"] = torch.tensor([[1, 1, 1], [0, 0, 0]])  # e.g. a truncated completion, masked
    token._compute_loss(token.model, batch)
    metrics = token._metrics["train"]
    assert metrics["clip_ratio/high_mean"][-1] == 1.0 and metrics["clip_ratio/high_max"][-1] == 1.0
    assert not math.isnan(metrics["clip_ratio/low_min"][-1])


@pytest.fixture(scope="module")
def tiny_moe_dir(tmp_path_factory):
    """A tiny random Qwen2-MoE (4 experts, 2 per token, router logits on, auxiliary coefficient 0.5)."""
    from transformers import GenerationConfig, Qwen2MoeConfig, Qwen2MoeForCausalLM

    from trl_token_ext.testing import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = Qwen2MoeConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        num_experts=4, num_experts_per_tok=2, output_router_logits=True, router_aux_loss_coef=0.5,
        max_position_embeddings=128, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2MoeForCausalLM(config)
    model.generation_config = GenerationConfig(pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-moe")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_moe_auxiliary_loss_reaches_the_token_loss_as_it_reaches_stock_rloos(tiny_moe_dir, prompt_dataset, tmp_path):
    stock = RLOOTrainer(model=tiny_moe_dir, reward_funcs=length_reward, train_dataset=prompt_dataset,
                        args=grpo_args(tmp_path / "s", RLOOConfig, beta=0.0))  # fmt: skip
    stock.model.train()
    token = token_trainer(tiny_moe_dir, prompt_dataset, tmp_path / "t")
    assert stock.aux_loss_enabled and token.aux_loss_enabled and token.router_aux_loss_coef == 0.5
    ratios = [[1.0] * 3] * 2
    # zero advantages: the policy-gradient part is exactly 0, so both losses are 0.5 · (the load-balancing loss)
    stock_loss = stock._compute_loss(stock.model, hand_batch(stock, ratios, torch.zeros(2)))
    token_loss = token._compute_loss(token.model, hand_batch(token, ratios, torch.zeros(2, 3)))
    assert token_loss.item() > 0
    assert token_loss.item() == pytest.approx(stock_loss.item(), rel=1e-6)
    assert token._metrics["train"]["aux_loss"] == pytest.approx(stock._metrics["train"]["aux_loss"])
    assert set(token._metrics["train"]) == set(stock._metrics["train"])
    stock_loss.backward()
    token_loss.backward()
    routers = [name for name, _ in token.model.named_parameters() if name.endswith("mlp.gate.weight")]
    assert routers
    stock_params, token_params = dict(stock.model.named_parameters()), dict(token.model.named_parameters())
    for name in routers:  # the gradient reaching the routers is the auxiliary loss's, the same as stock RLOO's
        assert token_params[name].grad.abs().sum() > 0
        torch.testing.assert_close(token_params[name].grad, stock_params[name].grad, rtol=1e-5, atol=1e-7)


def test_moe_token_rloo_trains(tiny_moe_dir, prompt_dataset, tmp_path):
    trainer = token_trainer(tiny_moe_dir, prompt_dataset, tmp_path, max_steps=2, token_advantage_mode="immediate")
    # Generation without router logits (transformers 5.23's Qwen2-MoE fails to compute the balancing loss over a KV
    # cache, stock RLOO alike); TRL's loss pass still asks for them (`compute_aux_loss`).
    trainer.model.config.output_router_logits = False
    assert trainer.aux_loss_enabled
    before = {name: param.detach().clone() for name, param in trainer.model.named_parameters()}
    trainer.train()
    routers = [name for name in before if name.endswith("mlp.gate.weight")]
    params = dict(trainer.model.named_parameters())
    assert all(not torch.equal(before[name], params[name]) for name in routers)
    logs = [log for log in trainer.state.log_history if "aux_loss" in log]
    assert len(logs) == 2 and all(log["aux_loss"] > 0 for log in logs)
