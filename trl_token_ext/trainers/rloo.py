"""TokenRLOOConfig and TokenRLOOTrainer: TRL's RLOO with dense token-level advantages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import RLOOConfig, RLOOTrainer

from trl_token_ext.advantages import combine_advantages
from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.losses import per_token_clipped_pg_loss
from trl_token_ext.token_rewards import check_token_reward_funcs
from trl_token_ext.trainers.token_mixin import FORWARD_KEYS, TokenRewardMixin, token_setting


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
        token_reward_funcs = check_token_reward_funcs(token_reward_funcs, token_setting(args, "token_reward_weights"))
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        self._init_token_rewards(token_reward_funcs)

    def _uses_token_loss(self) -> bool:
        return self._token_path_active() and token_setting(self.args, "token_advantage_coef") != 0.0

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        token_advantages = self._token_advantages(output, group_size)
        if token_advantages is not None and self._uses_token_loss():
            output["advantages"] = combine_advantages(
                output["advantages"],
                token_advantages,
                output["completion_mask"],
                token_setting(self.args, "token_advantage_coef"),
            )
            if not self._on_policy():
                output["old_per_token_logps"] = self._old_per_token_logps(output)
        self._record_token_step(output)
        return output

    def _on_policy(self) -> bool:
        """True when every use of a generation batch falls in the optimizer step that generated it (GRPO's rule):
        then π_old is the current policy and the loss takes the old log-probs as its own, detached."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        return self.args.gradient_accumulation_steps % generate_every == 0

    def _old_per_token_logps(self, output: dict[str, Any]) -> torch.Tensor:
        """(B, T) log-probs of the completion tokens under the policy that sampled them, for the per-token ratio.

        TRL's RLOO keeps only their masked sum (``output["old_logps"]``), so they are computed here, explicitly, from
        the returned batch with the same forward pass TRL uses for it (no grad, gradient checkpointing off, the
        batch's prompt and completion masks): one more forward pass per generation batch, only when off-policy.
        """
        return self._completion_logps(output, self.model)

    def _compute_loss(self, model, inputs):
        if inputs["advantages"].dim() == 1:
            return super()._compute_loss(model, inputs)
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        mask = inputs["completion_mask"]
        per_token_logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([inputs["prompt_mask"], mask], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
            **{key: inputs.get(key) for key in FORWARD_KEYS},
        )
        old_per_token_logps = inputs.get("old_per_token_logps")  # None on-policy: π_old is the current policy
        if old_per_token_logps is None:
            old_per_token_logps = per_token_logps.detach()
        loss, is_low, is_high = per_token_clipped_pg_loss(
            per_token_logps, old_per_token_logps, inputs["advantages"], mask, self.epsilon_low,
            self.epsilon_high,
        )  # fmt: skip
        metrics = self._metrics["train" if self.model.training else "eval"]
        for name, values in (("entropy", entropies), ("clip_ratio/low_mean", is_low.float()),
                             ("clip_ratio/high_mean", is_high.float())):  # fmt: skip
            stats = self.accelerator.reduce(torch.stack([(values * mask).sum(), mask.sum().float()]), reduction="sum")
            metrics[name].append((stats[0] / stats[1].clamp(min=1.0)).item())
        return loss
