"""What a token trainer resolves once (`TokenSettings`) and carries between TRL hooks (`PendingTokenStep`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.token_rewards import TokenRewardBatch
from trl_token_ext.trainers.records import OutcomeRewards

_CONFIG_DEFAULTS = {f.name: f.default for f in fields(TokenRewardConfigMixin)}


@dataclass(frozen=True)
class TokenSettings:
    """The token-reward fields of the trainer's config, read once at construction (named as in the config).

    A stock `trl.GRPOConfig` / `trl.RLOOConfig` (drop-in use) has none of them: every field then takes the
    config's default. See `TokenRewardConfigMixin` for what each field means.
    """

    token_reward_weights: tuple[float, ...] | None
    token_advantage_coef: float
    token_reward_gamma: float
    token_advantage_mode: str
    token_advantage_baseline: str
    token_reward_normalization: str
    token_advantage_scale: bool
    token_reward_epsilon: float
    token_kl_coef: float
    token_kl_estimator: str

    @classmethod
    def from_args(cls, args: Any) -> TokenSettings:
        """The settings of ``args`` (a token config, a stock TRL config, or None), defaults where a field is absent."""
        values = {f.name: getattr(args, f.name, _CONFIG_DEFAULTS[f.name]) for f in fields(cls)}
        weights = values["token_reward_weights"]
        values["token_reward_weights"] = None if weights is None else tuple(float(w) for w in weights)
        return cls(**values)

    def weights_for(self, num_funcs: int) -> torch.Tensor:
        """(K,) float32 weights w_k of the token reward functions: ``token_reward_weights``, or 1.0 each."""
        weights = self.token_reward_weights if self.token_reward_weights is not None else (1.0,) * num_funcs
        return torch.tensor(weights, dtype=torch.float32)

    def advantage_kwargs(self, group_size: int, leave_one_out: bool) -> dict[str, Any]:
        """Keyword arguments of `advantages.token_advantages` / `length_neutral_token_advantages`."""
        return dict(
            group_size=group_size,
            mode=self.token_advantage_mode,
            normalization=self.token_reward_normalization,
            gamma=self.token_reward_gamma,
            eps=self.token_reward_epsilon,
            scale=self.token_advantage_scale,
            leave_one_out=leave_one_out,
        )


@dataclass
class PendingTokenStep:
    """One generation batch on its way through TRL's hooks (created when generation starts, dropped at its end).

    Attributes:
        capturing: True until TRL computes the outcome rewards: the log-prob passes TRL runs before them (the
            sampling policy's, then the reference's when ``beta != 0``) are kept in ``generation_logps``, in order.
        generation_logps: (B, T) log-probs of those passes.
        outcome_rewards: the ``outcome_rewards`` keyword, set only while the token reward functions run.
        reward_batch: what the token reward functions returned, this process's rows (None: no token path).
        prompts, completion_ids: this process's prompts and completion ids, as the reward functions saw them.
        rewards, token_advantages: (B, T) weighted token rewards and A_tok of this process's rows, once computed.
    """

    capturing: bool = True
    generation_logps: list[torch.Tensor] = field(default_factory=list)
    outcome_rewards: OutcomeRewards | None = None
    reward_batch: TokenRewardBatch | None = None
    prompts: list | None = None
    completion_ids: list[list[int]] | None = None
    rewards: torch.Tensor | None = None
    token_advantages: torch.Tensor | None = None
