"""Small builders shared by the trainer tests."""

from __future__ import annotations

import torch

from trl_token_ext import TokenGRPOConfig


def grpo_args(tmp_path, config_class=TokenGRPOConfig, **overrides):
    """A fast CPU config: 6 completions (2 prompts × 3) of at most 8 tokens per step."""
    values = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=6,
        num_generations=3,
        max_completion_length=8,
        max_steps=3,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
    )
    values.update(overrides)
    return config_class(**values)


def length_reward(completions, **kwargs):
    """Outcome reward: completion length in characters."""
    return [float(len(c if isinstance(c, str) else c[0]["content"])) for c in completions]


def parity_token_reward(completion_ids, **kwargs):
    """Token reward: 1.0 on odd token ids, 0.0 on even ones (deterministic, no RNG)."""
    return [[float(t % 2) for t in ids] for ids in completion_ids]


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def max_param_diff(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    return max((before[name] - after[name]).abs().max().item() for name in before)


TARGET_TOKENS = frozenset(range(100, 140))


def favour_target_tokens(completion_ids, **kwargs):
    """Token reward: 1.0 on each token id in TARGET_TOKENS."""
    return [[1.0 if t in TARGET_TOKENS else 0.0 for t in ids] for ids in completion_ids]


def zero_reward(completions, **kwargs):
    """Outcome reward with no signal."""
    return [0.0] * len(completions)


def target_mass(model, tokenizer) -> float:
    """Mean next-token probability of TARGET_TOKENS after a few prompts."""
    inputs = tokenizer(["The movie was", "A cat sat", "It is a"], return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = model(**inputs).logits[:, -1].softmax(-1)
    return probs[:, sorted(TARGET_TOKENS)].sum(-1).mean().item()


LOWEST = torch.finfo(torch.float32).min


def masked_sample(completion_ids, **kwargs):
    """Token reward: 0 everywhere but float32's lowest value (a common "masked" value) on every token of sample 1."""
    return [[LOWEST if index == 1 else 0.0] * len(ids) for index, ids in enumerate(completion_ids)]
