"""What `token_reward_weights` and `token_advantage_coef` mean with the default `token_advantage_baseline="position"`:
each token reward function's credit has unit std over its group's valid tokens before its weight applies, so weight
w_k is the std of function k's share of A_tok, whatever the completion length and however many other functions
there are; λ multiplies the sum. (Without the std division, the reward-to-go's std grows with the length.)"""

from __future__ import annotations

import pytest
import torch

from trl_token_ext.advantages import combine_advantages, length_neutral_token_advantages

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
