"""Pure per-token policy-gradient losses."""

from __future__ import annotations

import torch


def per_token_clipped_pg_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clipped surrogate with one ratio per token, summed over each sequence's tokens, averaged over sequences.

    loss = mean_i Σ_t −min(ρ_{i,t}·A_{i,t}, clip(ρ_{i,t}, 1−ε_low, 1+ε_high)·A_{i,t})·mask_{i,t},
    ρ_{i,t} = exp(log π(a_t|s_t) − log π_old(a_t|s_t)). Summing over tokens matches the sequence loss of RLOO, whose
    ratio is built from summed log-probs: with A_{i,t} = A_i and ρ = 1 both give the gradient
    mean_i A_i·∇Σ_t log π(a_t|s_t).

    Args:
        per_token_logps, old_per_token_logps, advantages, mask: (B, T).

    Returns:
        the scalar loss, and (B, T) boolean masks of low- and high-clipped tokens.
    """
    ratio = torch.exp(per_token_logps - old_per_token_logps)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss = -torch.min(ratio * advantages, clipped * advantages)
    loss = (per_token_loss * mask).sum(dim=1).mean()
    is_low_clipped = (ratio < 1 - epsilon_low) & (advantages < 0) & mask.bool()
    is_high_clipped = (ratio > 1 + epsilon_high) & (advantages > 0) & mask.bool()
    return loss, is_low_clipped, is_high_clipped


def sequence_clip_fractions(
    is_low_clipped: torch.Tensor, is_high_clipped: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence, the fraction of its valid tokens whose ratio was clipped low, high, and either way.

    With one ratio per sequence (TRL's RLOO loss) every token of a sequence is clipped or none is, and these are TRL's
    per-sequence 0/1 indicators; with per-token ratios they are the share of the sequence's tokens. A sequence with no
    valid token gets NaN (TRL's nan-aware statistics skip it).

    Args:
        is_low_clipped, is_high_clipped: (B, T) booleans (already False off ``mask``). mask: (B, T) 0/1.

    Returns:
        three (B,) float tensors: low, high, region (= low or high).
    """
    count = mask.sum(dim=1).float()
    count = torch.where(count > 0, count, torch.full_like(count, float("nan")))
    low = is_low_clipped.float().sum(dim=1) / count
    high = is_high_clipped.float().sum(dim=1) / count
    region = (is_low_clipped | is_high_clipped).float().sum(dim=1) / count
    return low, high, region
