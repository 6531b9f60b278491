"""TokenGRPOConfig and TokenGRPOTrainer: TRL's GRPO with dense token-level advantages."""

from __future__ import annotations

from dataclasses import dataclass

from trl import GRPOConfig, GRPOTrainer

from trl_token_ext.advantages import sequence_level_advantages
from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.trainers.state import TokenSettings
from trl_token_ext.trainers.token_mixin import TokenRewardMixin


@dataclass
class TokenGRPOConfig(TokenRewardConfigMixin, GRPOConfig):
    """`trl.GRPOConfig` plus the token-reward fields of `TokenRewardConfigMixin` (see docs/token_grpo.md).

    Parameters:
        Every parameter of [`~trl.GRPOConfig`], and the token-reward parameters below.
    """

    __doc__ = __doc__ + TokenRewardConfigMixin.__doc__.split("Parameters:", 1)[1]


class TokenGRPOTrainer(TokenRewardMixin, GRPOTrainer):
    """`trl.GRPOTrainer` whose advantages are (B, T): A_t = A_out + λ·A_tok_t.

    Takes every argument of `GRPOTrainer` plus ``token_reward_funcs``: callables with a TRL reward function's
    signature (and a ``processing_class`` keyword) returning one per-token list, 1-D tensor or None per completion.
    With no token reward functions, or ``token_advantage_coef == 0``, training is identical to `GRPOTrainer`'s.
    """

    _tag_names = ["trl", "grpo", "trl-token-ext"]  # model cards and Hub tags

    def __init__(
        self, model, reward_funcs=None, args: GRPOConfig | None = None, *rest, token_reward_funcs=None, **kwargs
    ):
        settings = TokenSettings.from_args(args)  # a stock GRPOConfig (or None) gives the defaults
        token_reward_funcs = self._check_token_reward_funcs(token_reward_funcs, settings)
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        self._init_token_rewards(token_reward_funcs, settings)

    # TRL decides these per sequence from the advantage's sign; with (B, T) advantages keep that decision per sequence
    # (the sign of the sequence's mean advantage) instead of letting it silently become per token.
    @staticmethod
    def get_off_policy_mask(advantages, per_token_logps, sampling_per_token_logps, mask, off_policy_threshold):
        return GRPOTrainer.get_off_policy_mask(
            sequence_level_advantages(advantages, mask),
            per_token_logps,
            sampling_per_token_logps,
            mask,
            off_policy_threshold,
        )

    @staticmethod
    def get_gamma_weights(advantages, log_ratio_per_token, mask, importance_sampling_ratio, **kwargs):
        return GRPOTrainer.get_gamma_weights(
            sequence_level_advantages(advantages, mask), log_ratio_per_token, mask, importance_sampling_ratio, **kwargs
        )
