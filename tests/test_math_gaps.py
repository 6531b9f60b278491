"""Gaps found by mutation testing of the math core (issue 17, docs/testing.md): each test fails on a named mutant.

Expected values are written out by hand; ε is non-zero wherever it changes the result.
"""

from __future__ import annotations

import math

import pytest
import torch

from trl_token_ext.advantages import normalize_token_rewards, sequence_level_advantages, token_advantages
from trl_token_ext.losses import per_token_clipped_pg_loss
from trl_token_ext.token_rewards import masked_stats, validate_token_rewards, weighted_token_rewards

# --- advantages: empty groups, constant rewards, ε, scale ---------------------------------------------------------


def test_group_without_any_token_reward_is_zero_not_nan():
    # group 1 (rows 0-1): valid {1, 2, 3}, mean 2, std 1; group 2 (rows 2-3) has no valid token at all
    rewards = torch.tensor([[1.0, 2], [3, 4], [5, 6], [7, 8]])
    mask = torch.tensor([[1, 1], [1, 0], [0, 0], [0, 0]])
    expected = torch.tensor([[-1 / 1.5, 0], [1 / 1.5, 0], [0, 0], [0, 0]])
    torch.testing.assert_close(normalize_token_rewards(rewards, mask, 2, "group", eps=0.5), expected)
    torch.testing.assert_close(normalize_token_rewards(rewards, torch.zeros_like(mask), 2, "batch"), torch.zeros(4, 2))


@pytest.mark.parametrize("normalization", ["group", "batch"])
def test_constant_rewards_with_default_eps_are_zero_not_nan(normalization):
    rewards = torch.full((4, 3), 3.0)
    mask = torch.ones(4, 3)
    torch.testing.assert_close(normalize_token_rewards(rewards, mask, 2, normalization), torch.zeros(4, 3))


def test_batch_normalization_adds_eps_to_the_std():
    # valid {0, 2, 4}: mean 2, std 2; ε = 0.5 → (r − 2) / 2.5
    rewards = torch.tensor([[0.0, 2], [4, 9]])
    mask = torch.tensor([[1, 1], [1, 0]])
    result = normalize_token_rewards(rewards, mask, group_size=1, normalization="batch", eps=0.5)
    torch.testing.assert_close(result, torch.tensor([[-0.8, 0], [0.8, 0]]))


def test_scale_adds_eps_to_the_std():
    # 'none' + immediate keeps {0, 2, 4} (std 2); scale divides by 2 + 0.5
    rewards = torch.tensor([[0.0, 2], [4, 9]])
    mask = torch.tensor([[1, 1], [1, 0]])
    result = token_advantages(rewards, mask, 1, "immediate", "none", eps=0.5, scale=True)
    torch.testing.assert_close(result, torch.tensor([[0.0, 0.8], [1.6, 0]]))


@pytest.mark.parametrize(
    ("rewards", "mask"),
    [
        ([[2.0, 2], [2, 2]], [[1, 1], [1, 1]]),  # all equal: std 0
        ([[2.0, 7], [9, 9]], [[1, 0], [0, 0]]),  # a single valid token: std 0
    ],
)
def test_scale_leaves_constant_advantages_unchanged(rewards, mask):
    """No spread to rescale: dividing by ε alone would multiply the advantages by 1/ε (×1e4)."""
    rewards, mask = torch.tensor(rewards), torch.tensor(mask)
    result = token_advantages(rewards, mask, 1, "immediate", "none", scale=True)
    torch.testing.assert_close(result, rewards * mask)


def test_scale_of_a_fully_masked_batch_is_zero():
    result = token_advantages(torch.ones(2, 2), torch.zeros(2, 2), 2, "reward_to_go", "group", scale=True)
    torch.testing.assert_close(result, torch.zeros(2, 2))


def test_sequence_level_advantage_of_a_fully_masked_row_is_zero():
    advantages = torch.tensor([[1.0, 2], [3, 4]])
    mask = torch.tensor([[0, 0], [1, 0]])
    torch.testing.assert_close(sequence_level_advantages(advantages, mask), torch.tensor([[0.0], [3.0]]))


def test_leave_one_out_after_group_normalization_and_reward_to_go():
    # one group of 2: valid {1, 3, 5}: mean 3, std 2; ε = 1 → r̃ = (r − 3) / 3 = [[-2/3, 0], [2/3, *]]
    # reward-to-go (γ = 1): [[-2/3, 0], [2/3, 0]]; baseline = the other row at the same position (if valid there)
    rewards = torch.tensor([[1.0, 3], [5, 100]])
    mask = torch.tensor([[1, 1], [1, 0]])
    result = token_advantages(rewards, mask, 2, "reward_to_go", "group", eps=1.0, leave_one_out=True)
    torch.testing.assert_close(result, torch.tensor([[-2 / 3 - 2 / 3, 0], [2 / 3 + 2 / 3, 0]]))


# --- losses: asymmetric clipping --------------------------------------------------------------------------------


def test_clipped_loss_uses_eps_low_below_and_eps_high_above():
    """ε_low = 0.1, ε_high = 0.3: ratios are clipped to [0.9, 1.3]."""
    ratios = torch.tensor([[1.5, 0.5, 3.0], [1.2, 0.85, 0.1]])
    advantages = torch.tensor([[1.0, -1, 1], [1, -1, -1]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    loss, is_low, is_high = per_token_clipped_pg_loss(
        ratios.log(), torch.zeros_like(ratios), advantages, mask, epsilon_low=0.1, epsilon_high=0.3
    )
    # row 0: −min(1.5, 1.3) + −min(−0.5, −0.9) = −1.3 + 0.9; row 1: −1.2 (inside) + −min(−0.85, −0.9) = −1.2 + 0.9
    assert loss.item() == pytest.approx(((-1.3 + 0.9) + (-1.2 + 0.9)) / 2, abs=1e-6)
    assert is_low.tolist() == [[False, True, False], [False, True, False]]
    assert is_high.tolist() == [[True, False, False], [False, False, False]]


# --- token rewards: short lists, one valid token, negative weights -----------------------------------------------


def test_too_short_token_reward_list_is_rejected():
    with pytest.raises(ValueError, match="'short' returned 2 token rewards for sample 1, whose completion has 3"):
        validate_token_rewards([[1.0], [1.0, 2.0]], "short", [[5], [5, 6, 7]])


def test_masked_stats_of_one_valid_token_has_nan_std():
    mean, std = masked_stats(torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 0]]))
    assert mean == 2.0 and math.isnan(std)
    mean, std = masked_stats(torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 1]]))
    assert (mean, std) == (3.5, pytest.approx(math.sqrt(4.5)))


def test_negative_weights_are_applied_with_their_sign():
    rewards = torch.tensor(
        [[[1.0, 2], [10, 20]], [[3, 4], [30, 40]], [[5, 6], [50, 60]]]  # (B=3, K=2, T=2)
    )
    present = torch.tensor([[True, True], [False, True], [False, False]])
    weighted, has_reward = weighted_token_rewards(rewards, present, torch.tensor([-1.0, 0.5]))
    torch.testing.assert_close(weighted, torch.tensor([[-1 + 5.0, -2 + 10.0], [15.0, 20], [0, 0]]))
    assert has_reward.tolist() == [True, True, False]
