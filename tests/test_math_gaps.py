"""Gaps found by mutation testing of the math core (issue 17, docs/testing.md): each test fails on a named mutant.

Expected values are written out by hand; ε is non-zero wherever it changes the result.
"""

from __future__ import annotations

import math

import pytest
import torch

from trl_token_ext.advantages import (
    discounted_reward_to_go,
    leave_one_out_baseline,
    normalize_token_rewards,
    sequence_level_advantages,
    token_advantages,
)
from trl_token_ext.losses import per_token_clipped_pg_loss
from trl_token_ext.token_rewards import (
    check_token_reward_funcs,
    compute_token_rewards,
    masked_stats,
    validate_token_rewards,
    weighted_token_rewards,
)

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


def test_scale_divides_a_std_below_one_too():
    result = token_advantages(
        torch.tensor([[0.0, 1.0]]), torch.ones(1, 2), 1, "immediate", "none", eps=0.5, scale=True
    )
    torch.testing.assert_close(result, torch.tensor([[0.0, 1 / (math.sqrt(0.5) + 0.5)]]))


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


def test_clip_flags_at_the_boundaries_and_nonzero_old_logps():
    """ε_low = ε_high = 0.1, old log-probs −1: the ratio is exp(logp − old), the flags need A ≠ 0 of the right sign."""
    ratios = torch.tensor([[0.5, 0.95, 1.2, 1.5, 0.5, 1.5]], dtype=torch.float64)
    advantages = torch.tensor([[0.0, -2, -2, 0, 0.5, 2]], dtype=torch.float64)
    old = torch.full_like(ratios, -1.0)
    loss, is_low, is_high = per_token_clipped_pg_loss(old + ratios.log(), old, advantages, torch.ones(1, 6), 0.1, 0.1)
    # −min(ρA, clip(ρ)A): 0, 1.9, 2.4 (= −min(−2.4, −2.2)), 0, −0.25 (= −min(0.25, 0.45)), −2.2 (= −min(3, 2.2))
    assert loss.item() == pytest.approx(1.9 + 2.4 - 0.25 - 2.2)
    assert is_low.tolist() == [[False] * 6]
    assert is_high.tolist() == [[False] * 5 + [True]]
    # ε = 0 and ρ exactly 1: not clipped
    logps = torch.tensor([[-1.0, -2.0]])
    _, is_low, is_high = per_token_clipped_pg_loss(
        logps, logps, torch.tensor([[2.0, -2.0]]), torch.ones(1, 2), 0.0, 0.0
    )
    assert not is_low.any() and not is_high.any()


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


# --- defaults, dtypes, devices and boolean masks ------------------------------------------------------------------


def test_defaults_are_group_normalization_eps_1e4_and_gamma_one():
    rewards = torch.tensor([[0.0, 2], [4, 9]])
    mask = torch.tensor([[1, 1], [1, 0]])
    normalized = [[-2 / (2 + 1e-4), 0], [2 / (2 + 1e-4), 0]]  # valid {0, 2, 4}: mean 2, std 2
    torch.testing.assert_close(normalize_token_rewards(rewards, mask, 2), torch.tensor(normalized))
    # reward-to-go with γ = 1: row 0 is [-1 + 0, 0]
    expected = torch.tensor([[normalized[0][0], 0], [normalized[1][0], 0]])
    torch.testing.assert_close(token_advantages(rewards, mask, 2), expected)
    torch.testing.assert_close(discounted_reward_to_go(rewards, torch.ones(2, 2)), torch.tensor([[2.0, 2], [13, 9]]))


def test_two_valid_tokens_use_the_bessel_corrected_std():
    # valid {1, 3}: mean 2, unbiased std sqrt(2)
    result = normalize_token_rewards(torch.tensor([[1.0, 3]]), torch.tensor([[1, 1]]), 1, "group", eps=0.0)
    torch.testing.assert_close(result, torch.tensor([[-1 / math.sqrt(2), 1 / math.sqrt(2)]]))


def test_float64_rewards_and_boolean_masks():
    rewards = torch.tensor([[1.0, 2, 3], [4, 5, 6]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    rtg = discounted_reward_to_go(rewards, mask, 0.5)
    assert rtg.dtype == torch.float64
    torch.testing.assert_close(rtg, torch.tensor([[2.0, 2, 0], [4, 0, 0]], dtype=torch.float64))
    baseline = leave_one_out_baseline(rewards, mask, group_size=2)
    torch.testing.assert_close(baseline, torch.tensor([[4.0, 0, 0], [1, 0, 0]], dtype=torch.float64))
    result = token_advantages(rewards, mask, 2, "immediate", "none", leave_one_out=True)
    torch.testing.assert_close(result, torch.tensor([[-3.0, 2, 0], [3, 0, 0]], dtype=torch.float64))


def test_every_function_stays_on_the_input_device():
    """On the meta device (no data): a helper tensor created on the default device instead would raise."""
    rewards = torch.empty(4, 3, device="meta")
    mask = torch.empty(4, 3, device="meta")
    for mode in ("reward_to_go", "immediate", "min"):
        result = token_advantages(rewards, mask, 2, mode, scale=True, leave_one_out=True)
        assert result.device.type == "meta" and result.shape == (4, 3)


def test_group_size_errors_name_the_sizes():
    with pytest.raises(ValueError, match="Batch of 3 completions is not a multiple of the group size 2"):
        leave_one_out_baseline(torch.zeros(3, 2), torch.ones(3, 2), 2)


def test_entries_without_a_length_are_rejected_even_if_iterable():
    entries = (x for x in [1.0, 2.0])
    with pytest.raises(ValueError, match="'gen' returned generator for sample 0; expected a per-token list of 2"):
        validate_token_rewards([entries], "gen", [[5, 6]])


def test_compute_token_rewards_of_no_completions_and_errors_name_the_function():
    def none_reward(completion_ids, **kwargs):
        return [None] * len(completion_ids)

    batch = compute_token_rewards([none_reward], ["none_reward"], [], [], [], {})
    assert batch.rewards.shape == (0, 1, 0) and batch.present.dtype == torch.bool
    batch = compute_token_rewards([none_reward], ["none_reward"], ["p"], ["c"], [[7, 8]], {})
    assert batch.present.dtype == torch.bool and batch.present.tolist() == [[False]]
    with pytest.raises(ValueError, match="Token reward function 'bad' returned 1 token rewards for sample 0"):
        compute_token_rewards([lambda **kwargs: [[1.0]]], ["bad"], ["p"], ["c"], [[7, 8]], {})


def test_weights_of_another_dtype_are_cast_to_the_rewards():
    weighted, _ = weighted_token_rewards(
        torch.ones(1, 2, 2), torch.ones(1, 2, dtype=torch.bool), torch.tensor([0.5, 2.0], dtype=torch.float64)
    )
    assert weighted.dtype == torch.float32 and weighted.tolist() == [[2.5, 2.5]]


def test_check_token_reward_funcs_accepts_any_iterable_and_rejects_async_callables():
    def f(**kwargs):
        return []

    assert check_token_reward_funcs(iter([f]), None) == [f]

    class AsyncScorer:
        async def __call__(self, **kwargs):
            return []

    with pytest.raises(TypeError, match=r"token_reward_funcs\[1\] \(AsyncScorer\) is async; .* must be synchronous\."):
        check_token_reward_funcs([f, AsyncScorer()], None)
    with pytest.raises(TypeError, match="is called like a TRL reward function and returns one per-token list per"):
        check_token_reward_funcs([3], None)
