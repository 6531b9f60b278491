"""Token advantage math against tensors written out by hand.

Batch: 2 prompts × 3 completions, T = 3. Group 1 is rows 0-2, group 2 rows 3-5. Masked positions hold garbage (7, 9)
to show they are ignored. Group 1's valid rewards {4, 0, 2, 0, 4} and group 2's {0, 4, 2} both have mean 2 and
(unbiased) std 2; the whole batch's {4, 0, 2, 0, 4, 0, 4, 2} has mean 2 and std sqrt(24 / 7).
"""

import math

import pytest
import torch
from trainer_helpers import LOWEST

from trl_token_ext.advantages import (
    _masked_mean_std,
    combine_advantages,
    discounted_reward_to_go,
    leave_one_out_baseline,
    length_neutral_token_advantages,
    min_reward_to_go,
    normalize_token_rewards,
    overflow_safe_scale,
    sequence_level_advantages,
    token_advantages,
)

REWARDS = torch.tensor([[4.0, 0, 2], [0, 7, 7], [4, 7, 7], [0, 4, 7], [2, 7, 7], [9, 9, 9]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]])
S = math.sqrt(24 / 7)  # batch std
GAMMA = 0.5

EXPECTED = {
    ("immediate", "group"): [[1, -1, 0], [-1, 0, 0], [1, 0, 0], [-1, 1, 0], [0, 0, 0], [0, 0, 0]],
    ("immediate", "batch"): [
        [2 / S, -2 / S, 0],
        [-2 / S, 0, 0],
        [2 / S, 0, 0],
        [-2 / S, 2 / S, 0],
        [0, 0, 0],
        [0] * 3,
    ],
    ("immediate", "none"): [[4, 0, 2], [0, 0, 0], [4, 0, 0], [0, 4, 0], [2, 0, 0], [0, 0, 0]],
    # reward-to-go with γ = 0.5: [a, b, c] -> [a + b/2 + c/4, b + c/2, c]
    ("reward_to_go", "group"): [[0.5, -1, 0], [-1, 0, 0], [1, 0, 0], [-0.5, 1, 0], [0, 0, 0], [0, 0, 0]],
    ("reward_to_go", "batch"): [
        [1 / S, -2 / S, 0],
        [-2 / S, 0, 0],
        [2 / S, 0, 0],
        [-1 / S, 2 / S, 0],
        [0] * 3,
        [0] * 3,
    ],
    ("reward_to_go", "none"): [[4.5, 1, 2], [0, 0, 0], [4, 0, 0], [2, 4, 0], [2, 0, 0], [0, 0, 0]],
    # min-form: suffix minimum over valid positions
    ("min", "group"): [[-1, -1, 0], [-1, 0, 0], [1, 0, 0], [-1, 1, 0], [0, 0, 0], [0, 0, 0]],
    ("min", "batch"): [[-2 / S, -2 / S, 0], [-2 / S, 0, 0], [2 / S, 0, 0], [-2 / S, 2 / S, 0], [0] * 3, [0] * 3],
    ("min", "none"): [[0, 0, 2], [0, 0, 0], [4, 0, 0], [0, 4, 0], [2, 0, 0], [0, 0, 0]],
}


@pytest.mark.parametrize(("mode", "normalization"), list(EXPECTED))
def test_token_advantages_by_hand(mode, normalization):
    result = token_advantages(
        REWARDS, MASK, group_size=3, mode=mode, normalization=normalization, gamma=GAMMA, eps=0.0
    )
    torch.testing.assert_close(result, torch.tensor(EXPECTED[(mode, normalization)], dtype=torch.float32))


def test_padding_positions_are_zero_for_every_mode():
    for mode, normalization in EXPECTED:
        result = token_advantages(REWARDS, MASK, 3, mode, normalization, gamma=0.9)
        assert (result[MASK == 0] == 0).all(), (mode, normalization)


def test_epsilon_is_added_to_the_std():
    result = normalize_token_rewards(REWARDS, MASK, group_size=3, normalization="group", eps=0.5)
    assert result[0, 0].item() == pytest.approx((4 - 2) / (2 + 0.5))


def test_group_with_a_single_valid_token_has_zero_std():
    rewards = torch.tensor([[3.0, 0], [0, 0]])
    mask = torch.tensor([[1, 0], [0, 0]])
    torch.testing.assert_close(normalize_token_rewards(rewards, mask, 2, "group", eps=1e-4), torch.zeros(2, 2))


def test_group_size_must_divide_batch():
    with pytest.raises(ValueError, match="multiple of the group size 4"):
        normalize_token_rewards(REWARDS, MASK, group_size=4)


def test_reward_to_go_gamma_one_is_reverse_cumsum_and_gamma_zero_is_immediate():
    rewards = torch.tensor([[1.0, 2, 3, 4]])
    mask = torch.tensor([[1, 1, 1, 0]])
    torch.testing.assert_close(discounted_reward_to_go(rewards, mask, 1.0), torch.tensor([[6.0, 5, 3, 0]]))
    torch.testing.assert_close(discounted_reward_to_go(rewards, mask, 0.0), torch.tensor([[1.0, 2, 3, 0]]))


def test_masked_hole_counts_as_a_step_but_adds_nothing():
    # a tool-output token in the middle (mask 0) contributes no reward but still discounts what follows
    rewards = torch.tensor([[1.0, 100, 4]])
    mask = torch.tensor([[1, 0, 1]])
    torch.testing.assert_close(discounted_reward_to_go(rewards, mask, 0.5), torch.tensor([[1 + 0.25 * 4, 0, 4]]))
    torch.testing.assert_close(min_reward_to_go(rewards, mask), torch.tensor([[1.0, 0, 4]]))


def test_scale_divides_by_batch_std_of_token_advantages():
    result = token_advantages(REWARDS, MASK, 3, "immediate", "none", eps=0.0, scale=True)
    values = REWARDS[MASK.bool()]
    torch.testing.assert_close(result[MASK.bool()], values / values.std())


def test_combine_advantages_by_hand():
    outcome = torch.tensor([1.0, -1, 0, 0.5, -0.5, 2])
    token = torch.tensor(EXPECTED[("immediate", "group")], dtype=torch.float32)
    loss_mask = MASK
    expected = torch.tensor(
        [[1.5, 0.5, 1.0], [-1.5, 0, 0], [0.5, 0, 0], [0, 1, 0], [-0.5, 0, 0], [0, 0, 0]], dtype=torch.float32
    )
    torch.testing.assert_close(combine_advantages(outcome, token, loss_mask, coef=0.5), expected)


def test_sequence_level_advantages_is_masked_mean():
    advantages = torch.tensor([[1.0, -3, 100], [2, 2, 2]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(sequence_level_advantages(advantages, mask), torch.tensor([[-1.0], [2.0]]))
    column = torch.tensor([[0.3], [-0.2]])
    assert sequence_level_advantages(column, mask) is column


def test_unknown_mode_and_normalization_rejected():
    with pytest.raises(ValueError, match="Unknown token advantage mode 'sum'"):
        token_advantages(REWARDS, MASK, 3, mode="sum")
    with pytest.raises(ValueError, match="Unknown token reward normalization 'prompt'"):
        token_advantages(REWARDS, MASK, 3, normalization="prompt")


def test_leave_one_out_baseline_by_hand():
    # group 1 rows 0-2, group 2 rows 3-5 (same REWARDS / MASK as above, raw values)
    baseline = leave_one_out_baseline(REWARDS, MASK, group_size=3)
    expected = torch.tensor(
        [
            [(0 + 4) / 2, 0, 0],  # t=0: others 0 and 4; t=1, t=2: no other completion is valid there
            [(4 + 4) / 2, 0, 0],
            [(4 + 0) / 2, 0, 0],
            [2 / 1, 0, 0],  # t=0: row 4 only (row 5 is fully masked); t=1: nobody else
            [0 / 1, 0, 0],
            [0, 0, 0],
        ]
    )
    torch.testing.assert_close(baseline, expected)


def test_rloo_token_advantages_by_hand():
    """'none' normalization, immediate mode, leave-one-out: A = r − mean of the others' r at the same position."""
    rewards = torch.tensor([[1.0, 2, 3], [3, 4, 0], [5, 0, 0], [2, 2, 2], [4, 4, 0], [0, 6, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 0]])
    result = token_advantages(rewards, mask, 3, mode="immediate", normalization="none", leave_one_out=True)
    expected = torch.tensor(
        [
            [1 - (3 + 5) / 2, 2 - 4, 3 - 0],
            [3 - (1 + 5) / 2, 4 - 2, 0],
            [5 - (1 + 3) / 2, 0, 0],
            [2 - (4 + 0) / 2, 2 - (4 + 6) / 2, 2 - 0],
            [4 - (2 + 0) / 2, 4 - (2 + 6) / 2, 0],
            [0 - (2 + 4) / 2, 6 - (2 + 4) / 2, 0],
        ]
    )
    torch.testing.assert_close(result, expected)
    # reward-to-go first (γ = 1), then the baseline of the others' reward-to-go
    rtg = token_advantages(rewards, mask, 3, mode="reward_to_go", normalization="none", leave_one_out=True)
    assert rtg[0].tolist() == pytest.approx([6 - (7 + 5) / 2, 5 - 4, 3 - 0])


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


HIGHEST = torch.finfo(torch.float32).max


# --- huge but finite token rewards (issue 13) ---------------------------------------------------------------------
def test_overflow_safe_scale_is_a_power_of_two_only_for_large_values():
    values = torch.tensor([[0.5, -1.5], [3.0, 0.0], [LOWEST, 1.0]])
    scale = overflow_safe_scale(values, torch.ones_like(values), dim=1)
    assert scale.flatten().tolist() == [1.0, 2.0, 2.0**127]  # 3 = 0.75·2², so s = 2; max|v/s| < 2
    assert overflow_safe_scale(values, torch.tensor([[1, 1], [0, 1], [0, 1]]), dim=1).flatten().tolist() == [1, 1, 1]


def test_normalization_of_float32_extremes_is_finite_and_hand_computed():
    rewards = torch.tensor([[LOWEST, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.ones_like(rewards)
    # the group is one -L among five zeros: mean -L/6, std L·sqrt(1/6) (unbiased: sqrt((25/36 + 5/36)/5) = sqrt(1/6))
    expected_low, expected_zero = -(5 / 6) / math.sqrt(1 / 6), (1 / 6) / math.sqrt(1 / 6)
    for normalization in ("group", "batch"):
        out = normalize_token_rewards(rewards, mask, group_size=2, normalization=normalization)
        assert torch.isfinite(out).all()
        assert out[0, 0].item() == pytest.approx(expected_low, rel=1e-5)
        assert out[1].tolist() == pytest.approx([expected_zero] * 3, rel=1e-5)
    both_ends = torch.tensor([[LOWEST, HIGHEST, 1.0, 2.0]])
    out = normalize_token_rewards(both_ends, torch.ones_like(both_ends), group_size=1)
    assert torch.isfinite(out).all() and out[0, 0] < 0 < out[0, 1]
    mean, std = _masked_mean_std(both_ends, torch.ones_like(both_ends), dim=1)
    assert mean.item() == pytest.approx(0.75) and std.item() == pytest.approx(math.sqrt(2 / 3) * HIGHEST, rel=1e-6)
    mean, std = _masked_mean_std(both_ends[:, :2], torch.ones(1, 2), dim=1)
    assert mean.item() == 0.0 and std.item() == math.inf  # the true std, sqrt(2)·3.4e38, exceeds float32


def test_normalization_of_ordinary_rewards_is_unchanged_bit_for_bit():
    rewards = torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    valid = rewards[mask.bool()]
    expected = (rewards - valid.mean()) / (valid.std() + 1e-4) * mask
    assert torch.equal(normalize_token_rewards(rewards, mask, group_size=2), expected)
    scaled = rewards * 2.0**100  # power-of-two scaling is exact: the same normalized rewards (eps scaled too)
    assert torch.allclose(normalize_token_rewards(scaled, mask, 2, eps=1e-4 * 2.0**100), expected, atol=0, rtol=1e-6)


# What `token_reward_weights` and `token_advantage_coef` mean with the default `token_advantage_baseline="position"`:
# each token reward function's credit has unit std over its group's valid tokens before its weight applies, so
# weight w_k is the std of function k's share of A_tok, whatever the completion length and however many other
# functions there are; λ multiplies the sum. (Without the std division, the reward-to-go's std grows with the length.)
GROUP = 4


def batch(length: int, functions: int, seed: int, ragged: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(2·G, K, T) sparse token rewards (70 % zeros, the others in [-1, 1)) of two groups of G completions and their
    (2·G, T) mask."""
    generator = torch.Generator().manual_seed(seed)
    shape = (2 * GROUP, functions, length)
    rewards = (torch.rand(shape, generator=generator) * 2 - 1) * (torch.rand(shape, generator=generator) < 0.3)
    lengths = torch.full((2 * GROUP,), length)
    if ragged:
        lengths = torch.randint(length // 2, length + 1, (2 * GROUP,), generator=generator)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).float()
    return rewards, mask


def advantages(rewards, mask, weights, normalization="group", mode="reward_to_go"):
    present = torch.ones(rewards.size(0), rewards.size(1), dtype=torch.bool)
    return length_neutral_token_advantages(
        rewards, present, mask, torch.tensor(weights), GROUP, mode=mode, normalization=normalization, eps=1e-12
    )


def group_stds(values: torch.Tensor, mask: torch.Tensor) -> list[float]:
    return [values[g * GROUP : (g + 1) * GROUP][mask[g * GROUP : (g + 1) * GROUP].bool()].std().item() for g in (0, 1)]


@pytest.mark.parametrize("mode", ["reward_to_go", "immediate", "min"])
@pytest.mark.parametrize("ragged", [False, True], ids=["equal", "ragged"])
def test_a_weight_is_the_std_of_its_share_whatever_the_length(mode, ragged):
    raw_stds = []
    for length in (8, 32, 128):
        rewards, mask = batch(length, 1, seed=length, ragged=ragged)
        assert group_stds(advantages(rewards, mask, [0.5], mode=mode), mask) == pytest.approx([0.5, 0.5], rel=1e-5)
        raw_stds.append(sum(group_stds(advantages(rewards, mask, [0.5], "none", mode), mask)) / 2)
    if mode == "reward_to_go":  # what the division by the std takes out: raw credit grows with the length
        assert raw_stds[2] > 2 * raw_stds[0], raw_stds


def test_a_weight_means_the_same_however_many_functions_there_are():
    rewards, mask = batch(24, 3, seed=0, ragged=True)
    alone = [advantages(rewards[:, k : k + 1], mask, [1.0]) for k in range(3)]
    weights = [1.0, 0.5, -2.0]
    together = advantages(rewards, mask, weights)
    torch.testing.assert_close(together, sum(w * a for w, a in zip(weights, alone)))
    torch.testing.assert_close(advantages(rewards, mask, [1.0, 0.0, 0.0]), alone[0])  # others don't rescale it
    for k, weight in enumerate(weights):
        assert group_stds(weight * alone[k], mask) == pytest.approx([abs(weight)] * 2, rel=1e-5)


def test_the_coefficient_multiplies_the_token_term():
    rewards, mask = batch(16, 2, seed=1)
    token = advantages(rewards, mask, [1.0, 1.0])
    outcome = torch.linspace(-1.0, 1.0, rewards.size(0))
    for coef in (0.25, 1.0):
        term = combine_advantages(outcome, token, mask, coef) - outcome.unsqueeze(1) * mask
        torch.testing.assert_close(term, coef * token)
