"""What the token trainers hand to others: the step record (heatmaps, callbacks) and the outcome rewards (token
reward functions' ``outcome_rewards`` keyword)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenStepRecord:
    """What the trainer used for one generation batch, for this process's rows (B completions, padded to T).

    Attributes:
        prompts: (B,) the prompts as the reward functions saw them. completion_ids: (B,) per-completion token ids.
        rewards: (B, T) weighted token rewards Σ_k w_k·g_k (0 where no function scored the completion).
        token_advantages: (B, T) the token advantage A_tok (after RLOO's leave-one-out baseline), 0 off ``mask``.
        advantages: (B, T) the advantages the loss used: A_out + λ·A_tok on ``mask`` (A_out broadcast when λ = 0).
        mask: (B, T) the loss mask (completion × tool mask, truncated rows zeroed by ``mask_truncated_completions``).
    """

    prompts: list
    completion_ids: list[list[int]]
    rewards: torch.Tensor
    token_advantages: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor


@dataclass
class OutcomeRewards:
    """The step's outcome rewards, passed to token reward functions as the ``outcome_rewards`` keyword.

    Attributes:
        per_func: (B, M) float32 CPU tensor, this process's rows (the completions the function is called with), one
            column per outcome reward function (``trainer.reward_func_names``); NaN where a function returned None.
        weighted: (B,) Σ_m v_m·f_m with TRL's ``reward_weights`` v (NaN-skipping sum, as TRL computes it before
            normalization; NaN where no function scored the completion).
        names: (M,) the outcome reward functions' names.
    """

    per_func: torch.Tensor
    weighted: torch.Tensor
    names: list[str]
