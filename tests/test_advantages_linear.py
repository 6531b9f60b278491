"""Linear-time token advantages against the quadratic reference implementations they replaced.

The references below are the original (T, T)-matrix / per-position formulas, kept here only as test oracles (the way
Liger-Kernel tests a fast kernel against a slow reference); the library must never use them.
"""

import math

import pytest
import torch

from trl_token_ext.advantages import (
    discounted_reward_to_go,
    leave_one_out_baseline,
    min_reward_to_go,
    token_advantages,
)


def reference_reward_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The original O(T²) version: one (T, T) discount matrix."""
    length = rewards.size(1)
    positions = torch.arange(length)
    steps = positions.unsqueeze(1) - positions.unsqueeze(0)
    discount = torch.where(steps >= 0, torch.pow(gamma, steps.clamp(min=0).to(rewards.dtype)), 0.0)
    mask = mask.to(rewards.dtype)
    return ((rewards * mask) @ discount) * mask


def reference_min_to_go(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-position loop over the suffix: min over valid j ≥ t."""
    out = torch.zeros_like(rewards)
    for b in range(rewards.size(0)):
        for t in range(rewards.size(1)):
            if mask[b, t]:
                out[b, t] = min(rewards[b, j] for j in range(t, rewards.size(1)) if mask[b, j])
    return out


def reference_leave_one_out(values: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per-element loop: mean over the other valid completions of the group at the same position."""
    out = torch.zeros_like(values)
    for b in range(values.size(0)):
        group = range(b - b % group_size, b - b % group_size + group_size)
        for t in range(values.size(1)):
            others = [values[j, t] for j in group if j != b and mask[j, t]]
            if mask[b, t] and others:
                out[b, t] = sum(others) / len(others)
    return out


def random_inputs(batch: int, length: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards and a mask with holes and ragged ends (each row valid up to a random length, ~10 % holes inside)."""
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, length, generator=generator, dtype=dtype)
    lengths = torch.randint(0, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).float()
    holes = torch.rand(batch, length, generator=generator) < 0.1
    return rewards, mask * (~holes).float()


CASES = [(1, 1), (2, 5), (4, 63), (4, 64), (3, 65), (6, 130), (2, 2049)]
GAMMAS = [1.0, 0.99, 0.9, 0.5, 0.0]


@pytest.mark.parametrize(("batch", "length"), CASES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_reward_to_go_matches_quadratic_reference(batch, length, gamma):
    rewards, mask = random_inputs(batch, length, seed=length * 7 + batch)
    expected = reference_reward_to_go(rewards, mask, gamma)
    torch.testing.assert_close(discounted_reward_to_go(rewards, mask, gamma), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reward_to_go_float32_matches_reference(gamma):
    rewards, mask = random_inputs(3, 700, seed=3, dtype=torch.float32)
    expected = reference_reward_to_go(rewards.double(), mask, gamma).float()
    torch.testing.assert_close(discounted_reward_to_go(rewards, mask, gamma), expected, rtol=1e-5, atol=1e-4)


def test_reward_to_go_at_32k_tokens_is_finite_and_exact_at_the_ends():
    """γ < 1 at T = 32k: no γ^(-t) overflow; the last token is its own reward, the first a geometric sum."""
    length, gamma = 32_768, 0.99
    rewards = torch.ones(2, length)
    mask = torch.ones(2, length)
    result = discounted_reward_to_go(rewards, mask, gamma)
    assert torch.isfinite(result).all()
    assert result[0, -1].item() == pytest.approx(1.0)
    assert result[0, -2].item() == pytest.approx(1.0 + gamma)
    assert result[0, 0].item() == pytest.approx((1 - gamma**length) / (1 - gamma), rel=1e-5)
    assert discounted_reward_to_go(rewards, mask, 1.0)[1, 0].item() == pytest.approx(length)


@pytest.mark.parametrize(("batch", "length"), [(2, 5), (4, 40), (3, 129)])
def test_min_to_go_matches_reference(batch, length):
    rewards, mask = random_inputs(batch, length, seed=length)
    torch.testing.assert_close(min_reward_to_go(rewards, mask), reference_min_to_go(rewards, mask))


@pytest.mark.parametrize(("group_size", "length"), [(2, 7), (3, 33), (4, 70)])
def test_leave_one_out_matches_reference(group_size, length):
    values, mask = random_inputs(2 * group_size, length, seed=group_size)
    expected = reference_leave_one_out(values, mask, group_size)
    torch.testing.assert_close(leave_one_out_baseline(values, mask, group_size), expected)


@pytest.mark.parametrize("mode", ["reward_to_go", "immediate", "min"])
@pytest.mark.parametrize("normalization", ["group", "batch", "none"])
@pytest.mark.parametrize("leave_one_out", [False, True])
def test_token_advantages_match_reference_pipeline(mode, normalization, leave_one_out):
    """The whole pipeline (normalize → accumulate → LOO → scale) against the references, groups of 4, T = 150."""
    rewards, mask = random_inputs(8, 150, seed=11)
    gamma = 0.95
    kwargs = dict(group_size=4, normalization=normalization, gamma=gamma, eps=1e-4)
    immediate = token_advantages(rewards, mask, mode="immediate", **kwargs)  # normalized rewards only
    if mode == "reward_to_go":
        expected = reference_reward_to_go(immediate, mask, gamma)
    elif mode == "min":
        expected = reference_min_to_go(immediate, mask)
    else:
        expected = immediate
    if leave_one_out:
        expected = expected - reference_leave_one_out(expected, mask, 4)
    result = token_advantages(rewards, mask, mode=mode, leave_one_out=leave_one_out, **kwargs)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_no_quadratic_buffer_at_16k():
    """16 rows × 16k tokens (a (T, T) float matrix would be 1 GB): finite, zero on masked positions."""
    rewards, mask = random_inputs(16, 16_384, seed=0, dtype=torch.float32)
    result = discounted_reward_to_go(rewards, mask, 0.999)
    assert result.shape == (16, 16_384) and torch.isfinite(result).all()
    assert math.isclose(result[mask == 0].abs().sum().item(), 0.0)
