"""TokenRLOOTrainer on a tiny random model: equivalence with stock RLOO, the advantages and loss, learning, errors."""

from __future__ import annotations

import pytest
import torch
from trainer_helpers import (
    favour_target_tokens,
    grpo_args,
    length_reward,
    masked_sample,
    max_param_diff,
    parity_token_reward,
    snapshot,
    target_mass,
    zero_reward,
)
from trl import RLOOConfig, RLOOTrainer

from trl_token_ext import TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.losses import per_token_clipped_pg_loss


def rloo_args(tmp_path, config_class=TokenRLOOConfig, **overrides):
    return grpo_args(tmp_path, config_class, **overrides)


def make(model_dir, dataset, tmp_path, token_reward_funcs, reward_funcs=length_reward, **overrides):
    return TokenRLOOTrainer(
        model=model_dir, reward_funcs=reward_funcs, token_reward_funcs=token_reward_funcs,
        args=rloo_args(tmp_path, **overrides), train_dataset=dataset,
    )  # fmt: skip


@pytest.mark.parametrize("num_iterations", [1, 2])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_equivalent_to_stock_without_token_rewards_or_with_zero_coef(
    tiny_model_dir, prompt_dataset, tmp_path, beta, num_iterations
):
    settings = dict(beta=beta, num_iterations=num_iterations)
    stock = RLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        args=rloo_args(tmp_path / "s", RLOOConfig, **settings),
        train_dataset=prompt_dataset,
    )
    stock.train()
    without = make(tiny_model_dir, prompt_dataset, tmp_path / "n", None, **settings)
    without.train()
    zero = make(tiny_model_dir, prompt_dataset, tmp_path / "z", [parity_token_reward], token_advantage_coef=0.0,
                **settings)  # fmt: skip
    zero.train()
    with_tokens = make(tiny_model_dir, prompt_dataset, tmp_path / "t", [parity_token_reward], **settings)
    with_tokens.train()
    reference = snapshot(stock.model)
    assert max_param_diff(snapshot(type(stock.model).from_pretrained(tiny_model_dir)), reference) > 1e-4
    assert max_param_diff(reference, snapshot(without.model)) <= 1e-6
    assert max_param_diff(reference, snapshot(zero.model)) <= 1e-6
    assert max_param_diff(reference, snapshot(with_tokens.model)) > 1e-5  # the token path does change training
    assert "token_rewards/parity_token_reward/mean" in zero.state.log_history[0]


def test_advantages_are_rloo_outcome_plus_leave_one_out_token_part(
    tiny_model_dir, prompt_dataset, tmp_path, monkeypatch
):
    captured = {}
    parent = RLOOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = parent(self, inputs)
        captured.update(outcome=output["advantages"].clone(), ids=output["completion_ids"].clone(),
                        mask=output["completion_mask"].clone())  # fmt: skip
        return output

    monkeypatch.setattr(RLOOTrainer, "_generate_and_score_completions", spy)
    trainer = make(
        tiny_model_dir,
        prompt_dataset,
        tmp_path,
        [parity_token_reward],
        max_steps=1,
        token_advantage_coef=0.5,
        token_advantage_mode="immediate",
        token_reward_normalization="none",
    )
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    mask, ids = captured["mask"], captured["ids"]
    rewards = [[float(t % 2) for t in row[: int(n)]] for row, n in zip(ids.tolist(), mask.sum(1).tolist())]
    expected = torch.zeros_like(mask, dtype=torch.float32)
    for b, row in enumerate(rewards):  # slow reference: loop over the other completions of the group
        group = range(b // 3 * 3, b // 3 * 3 + 3)
        for t, value in enumerate(row):
            others = [rewards[j][t] for j in group if j != b and t < len(rewards[j])]
            baseline = sum(others) / len(others) if others else 0.0
            expected[b, t] = captured["outcome"][b] + 0.5 * (value - baseline)
    torch.testing.assert_close(batch["advantages"], expected)
    # π_old of the per-token loss: TRL's own generation-time log-probs, per token (their masked sum is `old_logps`)
    torch.testing.assert_close((batch["old_per_token_logps"] * mask).sum(1), batch["old_logps"], rtol=0, atol=0)


def test_per_token_clipped_loss_by_hand():
    logps = torch.tensor([[0.0, torch.log(torch.tensor(2.0)).item()], [torch.log(torch.tensor(0.5)).item(), 0.0]])
    old = torch.zeros(2, 2)
    advantages = torch.tensor([[1.0, 1.0], [-2.0, 3.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, low, high = per_token_clipped_pg_loss(logps, old, advantages, mask, epsilon_low=0.2, epsilon_high=0.2)
    # row 0: ratios 1 and 2 (clipped to 1.2 for A > 0): -(1·1) - (1.2·1); row 1: ratio 0.5, A < 0: -min(-1, -1.6)
    expected = ((-1.0 - 1.2) + 1.6) / 2
    assert loss.item() == pytest.approx(expected)
    assert high.tolist() == [[False, True], [False, False]]
    assert low.tolist() == [[False, False], [True, False]]


def test_learns_from_token_rewards(tiny_model_dir, prompt_dataset, tmp_path):
    settings = dict(max_steps=30, learning_rate=1e-2, token_advantage_mode="immediate")
    with_token = make(tiny_model_dir, prompt_dataset, tmp_path / "w", [favour_target_tokens], zero_reward, **settings)
    with_token.train()
    without = make(tiny_model_dir, prompt_dataset, tmp_path / "o", None, zero_reward, **settings)
    without.train()
    tokenizer = with_token.processing_class
    before = target_mass(type(without.model).from_pretrained(tiny_model_dir), tokenizer)
    after_with, after_without = target_mass(with_token.model, tokenizer), target_mass(without.model, tokenizer)
    assert after_with > 1.5 * before
    assert after_with > after_without + 0.05


def test_bad_token_rewards_raise_before_any_update(tiny_model_dir, prompt_dataset, tmp_path):
    def bad(completion_ids, **kwargs):
        return [[float("nan")] * len(ids) for ids in completion_ids]

    trainer = make(tiny_model_dir, prompt_dataset, tmp_path, [bad])
    before = snapshot(trainer.model)
    with pytest.raises(ValueError, match=r"'bad' returned a non-finite value \(nan\) for sample 0"):
        trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) == 0.0


def test_wrong_number_of_weights_rejected(tiny_model_dir, prompt_dataset, tmp_path):
    with pytest.raises(ValueError, match="token_reward_weights has 2 values but 1 token reward functions"):
        make(tiny_model_dir, prompt_dataset, tmp_path, [parity_token_reward], token_reward_weights=[1.0, 1.0])


def test_plain_rloo_config_is_accepted_with_default_token_settings(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenRLOOTrainer(
        model=tiny_model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward],
        args=rloo_args(tmp_path, RLOOConfig, max_steps=2), train_dataset=prompt_dataset,
    )  # fmt: skip
    before = snapshot(trainer.model)
    trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) > 0
    assert "token_advantages/mean" in trainer.state.log_history[0]


@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_token_path_runs_no_log_prob_pass_beyond_stock_rloos(tiny_model_dir, prompt_dataset, tmp_path, beta):
    """Off-policy (2 iterations) with the KL in the reward: the token loss's π_old and the KL's log-probs are the ones
    RLOO computed while generating (kept per token), not a second forward pass."""
    settings = dict(beta=beta, num_iterations=2, max_steps=1)
    stock = RLOOTrainer(model=tiny_model_dir, reward_funcs=length_reward, train_dataset=prompt_dataset,
                        args=rloo_args(tmp_path / "s", RLOOConfig, **settings))  # fmt: skip
    token = make(tiny_model_dir, prompt_dataset, tmp_path / "t", [parity_token_reward], token_kl_coef=0.05, **settings)
    assert token.uses_token_loss and token._kl_reference_source() == ("trl_ref_model" if beta else "copy")
    counts = {}
    for name, trainer in (("stock", stock), ("token", token)):
        original = trainer._get_per_token_logps_and_entropies

        def spy(*args, _original=original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*args, **kwargs)

        trainer._get_per_token_logps_and_entropies = spy
        batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    trl_passes = 2 if beta else 1  # the sampling policy's pass, and the reference's when beta != 0
    kl_copy_pass = 0 if beta else 1  # without TRL's reference, the KL's frozen copy of the initial policy needs one
    assert counts == {"stock": trl_passes, "token": trl_passes + kl_copy_pass}
    torch.testing.assert_close((batch["old_per_token_logps"] * batch["completion_mask"]).sum(1), batch["old_logps"])


@pytest.mark.parametrize("normalization", ["group", "none"])
def test_rloo_lowest_float32_token_reward(tiny_model_dir, prompt_dataset, tmp_path, normalization):
    from trl_token_ext import TokenRLOOConfig, TokenRLOOTrainer

    trainer = TokenRLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, TokenRLOOConfig, max_steps=2, token_reward_normalization=normalization),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    if normalization == "none":
        # the leave-one-out baseline carries sample 1's value to the rest of its group
        match = r"sample\(s\) \[0, 1, 2\].*'masked_sample' \(sample 1, token 0: -3\.403e\+38"
        with pytest.raises(ValueError, match=match):
            trainer.train()
        assert max_param_diff(before, snapshot(trainer.model)) == 0.0
    else:
        trainer.train()
        after = snapshot(trainer.model)
        assert all(torch.isfinite(p).all() for p in after.values()) and max_param_diff(before, after) > 0
