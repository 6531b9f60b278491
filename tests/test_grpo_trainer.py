"""TokenGRPOTrainer on a tiny random model: equivalence with stock GRPO, the math, errors, PEFT, resume."""

from __future__ import annotations

import math
from dataclasses import replace

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
from trl import GRPOConfig, GRPOTrainer

from trl_token_ext import TokenGRPOTrainer
from trl_token_ext.scorers import LexiconQuality, ReferenceConsistency
from trl_token_ext.trainers import token_mixin


def run_stock(model_dir, dataset, tmp_path, **overrides):
    trainer = GRPOTrainer(
        model=model_dir,
        reward_funcs=length_reward,
        args=grpo_args(tmp_path / "stock", GRPOConfig, **overrides),
        train_dataset=dataset,
    )
    trainer.train()
    return trainer


def run_token(model_dir, dataset, tmp_path, token_reward_funcs, name="token", reward_funcs=length_reward, **overrides):
    trainer = TokenGRPOTrainer(
        model=model_dir,
        reward_funcs=reward_funcs,
        token_reward_funcs=token_reward_funcs,
        args=grpo_args(tmp_path / name, **overrides),
        train_dataset=dataset,
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize("num_iterations", [1, 2])
@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo", "bnpo"])
def test_equivalent_to_stock_without_token_rewards_or_with_zero_coef(
    tiny_model_dir, prompt_dataset, tmp_path, loss_type, beta, num_iterations
):
    settings = dict(loss_type=loss_type, beta=beta, num_iterations=num_iterations)
    stock = snapshot(run_stock(tiny_model_dir, prompt_dataset, tmp_path, **settings).model)
    without = run_token(tiny_model_dir, prompt_dataset, tmp_path, None, name="none", **settings)
    zero_coef = run_token(
        tiny_model_dir,
        prompt_dataset,
        tmp_path,
        [parity_token_reward],
        name="zero",
        token_advantage_coef=0.0,
        **settings,
    )
    initial = snapshot(type(without.model).from_pretrained(tiny_model_dir))
    assert max_param_diff(initial, stock) > 1e-4  # training moved the parameters
    assert max_param_diff(stock, snapshot(without.model)) <= 1e-6
    assert max_param_diff(stock, snapshot(zero_coef.model)) <= 1e-6
    # λ = 0 still calls and logs the token reward functions
    assert "token_rewards/parity_token_reward/mean" in zero_coef.state.log_history[0]


def reference_token_advantages(token_rewards, lengths, group_size, gamma):
    """Slow reference: group normalization over valid tokens then discounted reward-to-go, in plain Python."""
    result = []
    for start in range(0, len(token_rewards), group_size):
        group = token_rewards[start : start + group_size]
        values = [v for row in group for v in row]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        for row in group:
            normalized = [(v - mean) / (std + 1e-4) for v in row]
            result.append([sum(gamma ** (j - t) * normalized[j] for j in range(t, len(row))) for t in range(len(row))])
    return result


def test_advantages_are_outcome_plus_coef_times_token_advantages(
    tiny_model_dir, prompt_dataset, tmp_path, monkeypatch
):
    """Capture one batch and recompute A = A_out + λ·A_tok with a slow reference implementation (the pooled
    token-mean path; the default length-neutral path: tests/test_trainer_loss_inputs.py)."""
    captured = {}
    parent = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = parent(self, inputs)
        captured["outcome"] = output["advantages"].clone()
        captured["completion_ids"] = output["completion_ids"].clone()
        captured["mask"] = output["completion_mask"].clone()
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[parity_token_reward],
        args=grpo_args(
            tmp_path,
            max_steps=1,
            token_advantage_coef=0.5,
            token_reward_gamma=0.9,
            token_advantage_baseline="token_mean",
        ),
        train_dataset=prompt_dataset,
    )
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    mask = captured["mask"]
    lengths = mask.sum(1).tolist()
    ids = [row[: int(n)].tolist() for row, n in zip(captured["completion_ids"], lengths)]
    token_adv = reference_token_advantages(parity_token_reward(ids), lengths, group_size=3, gamma=0.9)
    expected = torch.zeros_like(batch["advantages"])
    for b, row in enumerate(token_adv):
        for t, value in enumerate(row):
            expected[b, t] = captured["outcome"][b] + 0.5 * value
    assert batch["advantages"].shape == mask.shape
    torch.testing.assert_close(batch["advantages"], expected, atol=1e-5, rtol=1e-5)


def test_token_reward_raises_frequency_of_rewarded_tokens(tiny_model_dir, prompt_dataset, tmp_path):
    """A token reward on a set of token ids raises their probability; the same run without it does not."""
    settings = dict(max_steps=30, learning_rate=3e-2, token_advantage_mode="immediate", beta=0.0)
    with_token = run_token(
        tiny_model_dir, prompt_dataset, tmp_path, [favour_target_tokens], "with", zero_reward, **settings
    )
    without = run_token(tiny_model_dir, prompt_dataset, tmp_path, None, "without", zero_reward, **settings)
    tokenizer = with_token.processing_class
    before = target_mass(type(without.model).from_pretrained(tiny_model_dir), tokenizer)
    after_with, after_without = target_mass(with_token.model, tokenizer), target_mass(without.model, tokenizer)
    assert after_with > 1.5 * before
    assert after_with > after_without + 0.05


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda ids: [[0.0] * len(i) for i in ids[:-1]], r"'bad' returned 5 entries, but 6 were expected"),
        (lambda ids: [[0.0] * (len(i) + 1) for i in ids], r"'bad' returned \d+ token rewards for sample 0"),
        (
            lambda ids: [[float("nan")] * len(i) for i in ids],
            r"'bad' returned a non-finite value \(nan\) for sample 0",
        ),
        (
            lambda ids: [[float("inf")] * len(i) for i in ids],
            r"'bad' returned a non-finite value \(inf\) for sample 0",
        ),
        (lambda ids: [1.0 for i in ids], r"'bad' returned float for sample 0"),
    ],
)
def test_bad_token_rewards_raise_before_any_update(tiny_model_dir, prompt_dataset, tmp_path, output, message):
    def bad(completion_ids, **kwargs):
        return output(completion_ids)

    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[bad],
        args=grpo_args(tmp_path),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    with pytest.raises(ValueError, match=message):
        trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) == 0.0


def test_wrong_number_of_weights_rejected_at_construction(tiny_model_dir, prompt_dataset, tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(GRPOTrainer, "__init__", lambda *a, **k: loaded.append(1))
    with pytest.raises(ValueError, match="token_reward_weights has 1 values but 2 token reward functions"):
        TokenGRPOTrainer(
            model=tiny_model_dir,
            reward_funcs=length_reward,
            token_reward_funcs=[parity_token_reward, parity_token_reward],
            args=grpo_args(tmp_path, token_reward_weights=[1.0]),
            train_dataset=prompt_dataset,
        )
    assert loaded == []  # rejected before the model is loaded


def test_none_means_no_token_reward(tiny_model_dir, prompt_dataset, tmp_path, monkeypatch):
    """Completions a function returns None for get exactly the outcome advantage."""
    captured = {}
    original = token_mixin.TokenRewardMixin._token_advantages

    def spy(self, output, group_size):
        captured["outcome"] = output["advantages"].clone()
        result = original(self, output, group_size)
        captured["token"] = result
        return result

    monkeypatch.setattr(token_mixin.TokenRewardMixin, "_token_advantages", spy)

    def first_group_only(completion_ids, **kwargs):
        return [[1.0 * (t % 3) for t in ids] if b < 3 else None for b, ids in enumerate(completion_ids)]

    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[first_group_only],
        args=grpo_args(tmp_path, max_steps=1),
        train_dataset=prompt_dataset,
    )
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    assert (captured["token"][3:] == 0).all()
    mask = batch["completion_mask"][3:].bool()
    expected = captured["outcome"][3:].unsqueeze(1).expand_as(mask)
    torch.testing.assert_close(batch["advantages"][3:][mask], expected[mask])
    assert captured["token"][:3].abs().sum() > 0


def test_logs_token_metrics_and_completion_column(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = run_token(tiny_model_dir, prompt_dataset, tmp_path, [parity_token_reward], token_reward_weights=[2.0])
    logs = trainer.state.log_history[0]
    for key in [
        "token_rewards/parity_token_reward/mean",
        "token_rewards/parity_token_reward/std",
        "token_advantages/mean",
        "token_advantages/std",
    ]:
        assert key in logs
    assert 0.0 <= logs["token_rewards/parity_token_reward/mean"] <= 1.0  # raw, unweighted values
    assert len(trainer._logs["extra"]["token_reward"]) == len(trainer._logs["completion"])


def test_lora_trains_adapter_only(tiny_model_dir, prompt_dataset, tmp_path):
    from peft import LoraConfig

    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path, learning_rate=1e-2, beta=0.1),
        train_dataset=prompt_dataset,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    lora = [n for n in before if "lora_" in n]
    assert lora and any((before[n] - after[n]).abs().max() > 0 for n in lora)
    assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)


def test_stock_trl_rewards_and_conversational_prompts(tiny_model_dir, conversational_dataset, tmp_path):
    from trl.rewards import think_format_reward

    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=[think_format_reward, length_reward],
        token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path),
        train_dataset=conversational_dataset,
    )
    before = snapshot(trainer.model)
    trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) > 0
    assert "rewards/think_format_reward/mean" in trainer.state.log_history[0]
    assert isinstance(trainer._logs["completion"][0], list)  # conversational completions reached the functions


def test_num_generations_must_divide_batch_as_in_trl(tmp_path):
    with pytest.raises(ValueError, match="divisible by num_generations"):
        grpo_args(tmp_path, per_device_train_batch_size=4, num_generations=3)


def test_resume_from_checkpoint_continues(tiny_model_dir, prompt_dataset, tmp_path):
    settings = dict(max_steps=4, save_strategy="steps", save_steps=2, learning_rate=1e-2)
    first = run_token(
        tiny_model_dir, prompt_dataset, tmp_path, [parity_token_reward], "run", **{**settings, "max_steps": 2}
    )
    at_checkpoint = snapshot(first.model)
    resumed = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path / "run", **settings),
        train_dataset=prompt_dataset,
    )
    loaded = {}
    original_step = resumed.training_step

    def record_first_step(model, inputs, num_items_in_batch):
        loaded.setdefault("params", snapshot(model))
        return original_step(model, inputs, num_items_in_batch)

    resumed.training_step = record_first_step
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert max_param_diff(at_checkpoint, loaded["params"]) == 0.0  # resumed from the checkpoint's weights
    assert max_param_diff(at_checkpoint, snapshot(resumed.model)) > 0  # and kept training
    steps = [log["step"] for log in resumed.state.log_history if "token_advantages/mean" in log]
    assert steps == [1, 2, 3, 4]


def test_eval_uses_num_generations_eval_groups(tiny_model_dir, prompt_dataset, tmp_path, monkeypatch):
    seen = []
    original = token_mixin.TokenRewardMixin._token_advantages

    def spy(self, output, group_size):
        seen.append((self.model.training, group_size, output["completion_mask"].size(0)))
        return original(self, output, group_size)

    monkeypatch.setattr(token_mixin.TokenRewardMixin, "_token_advantages", spy)
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path, num_generations_eval=2, per_device_eval_batch_size=4, max_steps=1),
        train_dataset=prompt_dataset, eval_dataset=prompt_dataset.select(range(4)),
    )  # fmt: skip
    metrics = trainer.evaluate()
    assert (False, 2, 4) in seen
    assert "eval_token_advantages/mean" in metrics
    assert "eval_token_rewards/parity_token_reward/mean" in metrics


def test_buffered_generation_splits_token_advantages(tiny_model_dir, prompt_dataset, tmp_path):
    """steps_per_generation = 2: one generation of 12 completions feeds two optimizer steps of 6 (B, T) rows."""
    trainer = run_token(
        tiny_model_dir, prompt_dataset, tmp_path, [parity_token_reward], steps_per_generation=2, max_steps=4,
        learning_rate=1e-2,
    )  # fmt: skip
    assert trainer.state.global_step == 4
    buffered = trainer._buffered_inputs
    assert len(buffered) == 2
    for batch in buffered:
        assert batch["advantages"].shape == batch["completion_mask"].shape
        assert batch["advantages"].size(0) == 6
        assert (batch["advantages"][batch["completion_mask"] == 0] == 0).all()


def test_plain_grpo_config_is_accepted_with_default_token_settings(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir, reward_funcs=length_reward, token_reward_funcs=[parity_token_reward],
        args=grpo_args(tmp_path, GRPOConfig, max_steps=2), train_dataset=prompt_dataset,
    )  # fmt: skip
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    assert batch["advantages"].shape == batch["completion_mask"].shape  # default λ = 1: token advantages applied
    trainer.train()
    assert "token_advantages/mean" in trainer.state.log_history[0]


def test_reward_funcs_is_optional_as_in_trl(tiny_model_dir, prompt_dataset, tmp_path):
    """TRL 1.16 lets the reward come from an environment; without any reward source it raises its own error."""
    with pytest.raises(ValueError, match="No reward source provided"):
        TokenGRPOTrainer(model=tiny_model_dir, args=grpo_args(tmp_path), train_dataset=prompt_dataset)


@pytest.mark.parametrize("normalization", ["group", "batch"])
def test_lowest_float32_token_reward_trains_finite(tiny_model_dir, prompt_dataset, tmp_path, normalization):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, max_steps=2, token_reward_normalization=normalization),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    assert all(torch.isfinite(p).all() for p in after.values())
    assert max_param_diff(before, after) > 0
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert all(math.isfinite(log["token_rewards/masked_sample/mean"]) for log in logs)
    assert all(math.isfinite(log["grad_norm"]) and math.isfinite(log["token_advantages/std"]) for log in logs)


def test_lowest_float32_token_reward_without_normalization_raises(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, token_reward_normalization="none", token_advantage_mode="immediate"),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    # the per-position baseline carries sample 1's value to the rest of its group
    match = r"sample\(s\) \[0, 1, 2\].*'masked_sample' \(sample 1, token 0: -3\.403e\+38"
    with pytest.raises(ValueError, match=match):
        trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) == 0.0


# Realistic completion lengths end to end (issue 11): a tiny-model TokenGRPOTrainer with ≥ 2,048-token completions
# and two text scorers trains and logs; and the construction-time guard for loss paths that cannot take (B, T)
# advantages.
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
