"""TokenRLOOConfig and TokenRLOOTrainer: TRL's RLOO with dense token-level advantages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import RLOOConfig, RLOOTrainer

from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.losses import per_token_clipped_pg_loss, sequence_clip_fractions
from trl_token_ext.trainers import _trl
from trl_token_ext.trainers.state import TokenSettings
from trl_token_ext.trainers.token_mixin import TokenRewardMixin, loss_mask


@dataclass
class TokenRLOOConfig(TokenRewardConfigMixin, RLOOConfig):
    """`trl.RLOOConfig` plus the token-reward fields of `TokenRewardConfigMixin` (see docs/token_rloo.md).

    Parameters:
        Every parameter of [`~trl.RLOOConfig`], and the token-reward parameters below.
    """

    __doc__ = __doc__ + TokenRewardConfigMixin.__doc__.split("Parameters:", 1)[1]


class TokenRLOOTrainer(TokenRewardMixin, RLOOTrainer):
    """`trl.RLOOTrainer` with per-token advantages A_t = A_out + λ·(Â_t − b_t) and a per-token clipped loss.

    A_out is stock RLOO's leave-one-out advantage; Â is the token advantage of `token_advantage_mode` and b_t the mean
    Â of the other completions of the same group at position t. With no token reward functions, or
    ``token_advantage_coef == 0``, training is identical to `RLOOTrainer`'s (its sequence-level loss is used).
    """

    _tag_names = ["trl", "rloo", "trl-token-ext"]  # model cards and Hub tags

    token_leave_one_out = True

    def __init__(self, model, reward_funcs, args: RLOOConfig | None = None, *rest, token_reward_funcs=None, **kwargs):
        settings = TokenSettings.from_args(args)  # a stock RLOOConfig (or None) gives the defaults
        token_reward_funcs = self._check_token_reward_funcs(token_reward_funcs, settings)
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        self._init_token_rewards(token_reward_funcs, settings)

    def _generation_logps(self, output: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """RLOO computes the sampling policy's per-token log-probs (and the reference's when ``beta != 0``) at every
        generation but returns only their masked sum: the ones it computed are kept (no second forward pass)."""
        return _trl.rloo_generation_logps(self, output)

    def _prepare_token_loss(self, output: dict[str, Any]) -> None:
        """The per-token loss's π_old: TRL's own generation-time log-probs, per token (``old_logps`` is their sum)."""
        output["old_per_token_logps"] = self._generation_logps(output)[0]

    def _compute_loss(self, model, inputs):
        """TRL's RLOO loss with one ratio per token when token advantages are on (``uses_token_loss``), else TRL's.

        L = mean_i Σ_t −min(ρ_{i,t}·A_{i,t}, clip(ρ_{i,t})·A_{i,t})·mask_{i,t} (+ the MoE auxiliary loss, as TRL adds
        it); metrics as TRL's: ``entropy``, ``aux_loss``, ``clip_ratio/{low_mean,low_min,high_mean,high_max,
        region_mean}`` over sequences (each sequence's value: the share of its tokens clipped).
        """
        if not self.uses_token_loss:
            return super()._compute_loss(model, inputs)
        mask = loss_mask(inputs)
        per_token_logps, entropies, aux_loss = _trl.forward_logps(
            self, model, inputs, compute_entropy=True, compute_aux_loss=self.aux_loss_enabled
        )
        loss, is_low, is_high = per_token_clipped_pg_loss(
            per_token_logps, inputs["old_per_token_logps"], inputs["advantages"], mask, self.epsilon_low,
            self.epsilon_high,
        )  # fmt: skip
        metrics = _trl.mode_metrics(self)
        if self.aux_loss_enabled:  # unscaled, as TRL adds it (the Trainer divides by gradient accumulation)
            loss = loss + self.router_aux_loss_coef * aux_loss
            metrics["aux_loss"].append(self.accelerator.gather_for_metrics(aux_loss).mean().item())
        stats = self.accelerator.reduce(torch.stack([(entropies * mask).sum(), mask.sum()]), reduction="sum")
        metrics["entropy"].append((stats[0] / stats[1].clamp(min=1.0)).item())
        low, high, region = (self.accelerator.gather(v) for v in sequence_clip_fractions(is_low, is_high, mask))
        low, high = _trl.clip_summary(low), _trl.clip_summary(high)
        metrics["clip_ratio/low_mean"].append(low["mean"])
        metrics["clip_ratio/low_min"].append(low["min"])
        metrics["clip_ratio/high_mean"].append(high["mean"])
        metrics["clip_ratio/high_max"].append(high["max"])
        metrics["clip_ratio/region_mean"].append(region.nanmean().item())
        return loss
