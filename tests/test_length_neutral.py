"""The length-neutral token path (``token_advantage_baseline="position"``) against tensors written out by hand.

One group of 3 completions, T = 3: rewards r0 = [1, 0, 2], r1 = [0, 3, ·], r2 = [2, ·, ·] (· masked, holding 9 to
show it is ignored). Per-position means of the valid values are the baselines; a position with one valid completion
(t = 2) gets 0.
"""

import math
from dataclasses import fields

import pytest
import torch

from trl_token_ext.advantages import length_neutral_token_advantages, position_centered, token_advantages
from trl_token_ext.config import TokenRewardConfigMixin

REWARDS = torch.tensor([[1.0, 0, 2], [0, 3, 9], [2, 9, 9]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
ONE = torch.ones(3, 1, dtype=torch.bool)

# centred by hand: immediate t0 mean 1, t1 mean 1.5; reward-to-go G = [3, 2, 2], [3, 3], [2]: t0 mean 8/3, t1 2.5;
# min-form suffix minima [0, 0, 2], [0, 3], [2]: t0 mean 2/3, t1 1.5
CENTRED = {
    "immediate": [[0, -1.5, 0], [-1, 1.5, 0], [1, 0, 0]],
    "reward_to_go": [[1 / 3, -0.5, 0], [1 / 3, 0.5, 0], [-2 / 3, 0, 0]],
    "min": [[-2 / 3, -1.5, 0], [-2 / 3, 1.5, 0], [4 / 3, 0, 0]],
}
# unbiased std over the 6 valid tokens (their mean is 0): sqrt(Σ x² / 5)
STD = {
    "immediate": math.sqrt(6.5 / 5),
    "reward_to_go": math.sqrt(7 / 6 / 5),
    "min": math.sqrt((8 / 9 + 4.5 + 16 / 9) / 5),
}


def neutral(rewards, present=ONE, weights=(1.0,), **kwargs):
    settings = dict(group_size=3, eps=0.0) | kwargs
    return length_neutral_token_advantages(
        rewards.unsqueeze(1) if rewards.dim() == 2 else rewards, present, MASK, torch.tensor(weights), **settings
    )


@pytest.mark.parametrize("mode", list(CENTRED))
def test_position_centred_credit_by_hand(mode):
    expected = torch.tensor(CENTRED[mode])
    torch.testing.assert_close(neutral(REWARDS, mode=mode, normalization="none"), expected)
    torch.testing.assert_close(neutral(REWARDS, mode=mode, normalization="group"), expected / STD[mode])
    torch.testing.assert_close(neutral(REWARDS, mode=mode, normalization="batch"), expected / STD[mode])


def test_leave_one_out_scales_the_centred_value_by_n_over_n_minus_one():
    # t0: 3 valid → × 3/2; t1: 2 valid → × 2; t2: alone → 0
    expected = torch.tensor([[0, -3.0, 0], [-1.5, 3, 0], [1.5, 0, 0]])
    result = neutral(REWARDS, mode="immediate", normalization="none", leave_one_out=True)
    torch.testing.assert_close(result, expected)
    # the same as subtracting the mean of the *other* valid completions at each position
    torch.testing.assert_close(result[0, 1], REWARDS[0, 1] - REWARDS[1, 1])


def test_gamma_discounts_the_reward_to_go_before_centring():
    # γ = 0.5: G = [1 + 0 + 0.5, 0 + 1, 2] = [1.5, 1, 2]; [0 + 1.5, 3]; [2]. t0 mean 5/3, t1 mean 2
    expected = torch.tensor([[1.5 - 5 / 3, -1, 0], [1.5 - 5 / 3, 1, 0], [2 - 5 / 3, 0, 0]])
    torch.testing.assert_close(neutral(REWARDS, mode="reward_to_go", normalization="none", gamma=0.5), expected)


def test_weights_apply_after_each_function_is_scaled_and_none_rows_are_left_out():
    """Two functions, weights 2 and -1; the second does not score row 1 (None): its baseline uses rows 0 and 2."""
    second = torch.tensor([[4.0, 4, 4], [7, 7, 7], [0, 9, 9]])
    present = torch.tensor([[True, True], [True, False], [True, True]])
    result = neutral(torch.stack([REWARDS, second], dim=1), present, (2.0, -1.0), mode="immediate")
    # second function, rows 0 and 2: t0 mean 2 → [2, ·, ·] and [-2]; t1, t2: row 0 alone → 0. std of {2, 0, 0, -2}
    second_std = math.sqrt(8 / 3)
    expected_second = torch.tensor([[2.0, 0, 0], [0, 0, 0], [-2, 0, 0]]) / second_std
    expected = 2 * torch.tensor(CENTRED["immediate"]) / STD["immediate"] - expected_second
    torch.testing.assert_close(result, expected)


def test_one_weight_scales_the_token_advantage():
    """With one function a weight is not scaled out (it was, before: standardizing w·g removes w)."""
    half = neutral(REWARDS, weights=(0.5,))
    full = neutral(REWARDS, weights=(1.0,))
    torch.testing.assert_close(half, 0.5 * full)
    assert full.abs().max() > 0


def test_raw_columns_are_centred_but_keep_their_units():
    kl = torch.stack([REWARDS, -0.3 * REWARDS], dim=1)
    present = torch.ones(3, 2, dtype=torch.bool)
    result = length_neutral_token_advantages(
        kl, present, MASK, torch.tensor([0.0, 1.0]), group_size=3, mode="immediate", raw_columns=(1,)
    )
    torch.testing.assert_close(result, -0.3 * torch.tensor(CENTRED["immediate"]))


def test_scale_divides_the_sum_by_its_batch_std():
    result = neutral(REWARDS, mode="immediate", normalization="none", scale=True)
    valid = result[MASK.bool()]
    torch.testing.assert_close(valid.std(), torch.tensor(1.0))


def test_position_centered_alone_and_counts():
    values = torch.tensor([[5.0, 1], [3, 7]])
    result = position_centered(values, torch.tensor([[1, 1], [1, 0]]), 2)
    torch.testing.assert_close(result, torch.tensor([[1.0, 0], [-1, 0]]))
    with pytest.raises(ValueError, match="multiple of the group size"):
        position_centered(values, torch.ones(2, 2), 3)


# ------------------------------------------------------------------ the worked example of docs/token_grpo.md
def worked_example():
    """Four completions of equal quality: a keyword (reward 1) first and last, 0 between; lengths 8, 16, 24, 32."""
    lengths = [8, 16, 24, 32]
    rewards, mask = torch.zeros(4, 32), torch.zeros(4, 32)
    for i, length in enumerate(lengths):
        mask[i, :length] = 1
        rewards[i, 0] = rewards[i, length - 1] = 1.0
    return rewards, mask, lengths


def mean_token_advantage(advantages, mask):
    return (advantages * mask).sum(1) / mask.sum(1)


def test_worked_example_default_gives_equal_mean_token_advantage_whatever_the_length():
    rewards, mask, _ = worked_example()
    defaults = {f.name: f.default for f in fields(TokenRewardConfigMixin)}
    assert (defaults["token_advantage_baseline"], defaults["token_advantage_mode"]) == ("position", "reward_to_go")
    result = length_neutral_token_advantages(
        rewards.unsqueeze(1),
        torch.ones(4, 1, dtype=torch.bool),
        mask,
        torch.ones(1),
        group_size=4,
        mode=defaults["token_advantage_mode"],
        normalization=defaults["token_reward_normalization"],
        gamma=defaults["token_reward_gamma"],
        eps=defaults["token_reward_epsilon"],
    )
    means = mean_token_advantage(result, mask)
    # by hand: every completion's reward-to-go is 2 at t = 0 and 1 after, so every position's baseline equals it
    assert (means - means[0]).abs().max() < 1e-6
    assert result.abs().max() < 1e-6


def test_worked_example_token_mean_baseline_pushes_the_short_completion_up():
    """The pre-0.1.0 path (pooled token mean): the numbers of docs/token_grpo.md's table."""
    rewards, mask, lengths = worked_example()
    result = token_advantages(rewards, mask, group_size=4, mode="reward_to_go", normalization="group")
    # pooled: 8 ones among 80 valid tokens → mean 0.1, std s; a neutral token is -0.1/s, a keyword 0.9/s
    s = math.sqrt((8 * 0.81 + 72 * 0.01) / 79)
    expected_first = [(0.9 * 2 - 0.1 * (length - 2)) / (s + 1e-4) for length in lengths]
    torch.testing.assert_close(result[:, 0], torch.tensor(expected_first))
    means = mean_token_advantage(result, mask).tolist()
    assert means[0] > 2.2 and means[3] < -2.0  # +2.235 ... -2.049


def test_equal_returns_at_different_positions_differ_only_by_the_reward_to_go_ordering():
    """Two equal-length completions with equal returns but rewards early vs late: the late one's earlier tokens lead to
    more reward, so they get more credit — the baseline is per position, not a length or quality penalty."""
    rewards = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    mask = torch.ones(2, 3)
    result = length_neutral_token_advantages(
        rewards.unsqueeze(1), torch.ones(2, 1, dtype=torch.bool), mask, torch.ones(1), 2, normalization="none"
    )
    # G = [1, 0, 0] and [1, 1, 1]; means [1, 0.5, 0.5]
    torch.testing.assert_close(result, torch.tensor([[0.0, -0.5, -0.5], [0, 0.5, 0.5]]))


def test_lowest_float32_rewards_stay_finite():
    lowest = torch.finfo(torch.float32).min
    rewards = torch.tensor([[lowest, 0, 0], [0, 0, 0], [0, 0, 0]])
    result = neutral(rewards, mode="reward_to_go")
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result[:, 0], torch.tensor([-2 / 3, 1 / 3, 1 / 3]) / math.sqrt(2 / 15))
    raw = neutral(rewards, mode="reward_to_go", normalization="none")
    torch.testing.assert_close(raw[:, 0], torch.tensor([2 / 3, -1 / 3, -1 / 3]) * lowest)


def test_docs_table_is_what_the_length_bias_script_prints(capsys):
    """docs/token_grpo.md quotes `python benchmarks/length_bias.py`: the table must be its output, line for line."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    import length_bias

    assert length_bias.main() == 0.0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "length_bias_ratio: 0.000"
    docs = (root / "docs" / "token_grpo.md").read_text(encoding="utf-8").splitlines()
    start = docs.index(printed[0])
    assert docs[start : start + len(printed) - 1] == printed[:-1]
