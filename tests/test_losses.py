"""`trl_token_ext.losses`: the per-token clipped policy-gradient loss and its clip flags, by hand."""

from __future__ import annotations

import pytest
import torch

from trl_token_ext.losses import per_token_clipped_pg_loss


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
