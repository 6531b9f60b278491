"""Per-token KL penalty folded into the token reward (verl ``use_kl_in_reward``, OpenRLHF, ROLL).

With π_θ the policy that sampled the completion and π_ref the reference, the token reward gets the term
r^KL_t = −β_kl · k(t), where k is one of Schulman's estimators of KL(π_θ ‖ π_ref) at token t, computed from the
sampled token's log-probabilities (log_ratio_t = log π_θ(y_t|y<t) − log π_ref(y_t|y<t)):

* ``k1``: log_ratio_t (unbiased; can be negative per token; its sum over the completion is the sequence log-ratio)
* ``k2``: ½·log_ratio_t² (low variance, biased)
* ``k3``: exp(−log_ratio_t) − 1 + log_ratio_t (unbiased and ≥ 0; TRL's loss-side KL uses it)
"""

from __future__ import annotations

import torch

from trl_token_ext.config import TOKEN_KL_ESTIMATORS as KL_ESTIMATORS


def per_token_kl(logps: torch.Tensor, ref_logps: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """KL estimate per token. ``logps``, ``ref_logps``: (B, T) log-probs of the sampled tokens; returns (B, T)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(
            f"per_token_kl: estimator={estimator!r} is not supported; choose one of {list(KL_ESTIMATORS)}."
        )
    log_ratio = logps.float() - ref_logps.float()
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    return torch.expm1(-log_ratio) + log_ratio


def kl_token_rewards(
    logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, coef: float, estimator: str = "k1"
) -> torch.Tensor:
    """r^KL = −coef · k(log π − log π_ref) on ``mask`` (B, T), 0 elsewhere (padding may hold any finite value)."""
    kl = per_token_kl(logps, ref_logps, estimator)
    return torch.where(mask.bool(), -coef * kl, torch.zeros_like(kl))
