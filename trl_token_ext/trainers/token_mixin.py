"""Token-reward machinery shared by TokenGRPOTrainer and TokenRLOOTrainer.

The mixin relies on the TRL internals listed in docs/trl_internals.md: ``_calculate_rewards`` (called inside the
parent's ``_generate_and_score_completions``, with the final prompts and decoded completions), the
``completion_mask``/``tool_mask`` of the returned batch, ``_log_completion_extra``/``_log_metric`` and ``_metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from trl_token_ext.advantages import token_advantages
from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu
from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.sharding import check_scorers_under_sharding
from trl_token_ext.token_rewards import (
    TokenRewardBatch,
    compute_token_rewards,
    masked_stats,
    token_reward_func_name,
    weighted_token_rewards,
)

_TOKEN_FIELD_DEFAULTS = {f.name: f.default for f in fields(TokenRewardConfigMixin)}
_OWN_COLUMNS = ("prompt", "completion", "completion_ids")


def token_setting(args: Any, name: str) -> Any:
    """A token field of ``args``; its default when ``args`` is a plain TRL config (drop-in use)."""
    return getattr(args, name, _TOKEN_FIELD_DEFAULTS[name])


def check_token_advantages(
    advantages: torch.Tensor,
    valid: torch.Tensor,
    rewards: torch.Tensor,
    present: torch.Tensor,
    weights: torch.Tensor,
    func_names: Sequence[str],
    coef: float,
) -> None:
    """Raise before the loss if λ·A_tok is not finite, or so large that the float32 loss / gradient norm overflow.

    The limit is sqrt(float32 max / N) for N valid tokens (the squared sum of all of them then stays finite).

    Args:
        advantages: (B, T) token advantages A_tok. valid: (B, T) mask. rewards: (B, K, T) raw token rewards.
        present: (B, K). weights: (K,). func_names: K names. coef: λ.

    Raises:
        ValueError: naming the samples (rows of the gathered batch) and the token reward function(s) with the
            largest |w_k·g_k| on them, with the sample, token and value.
    """
    valid = valid.bool()
    limit = math.sqrt(torch.finfo(torch.float32).max / max(int(valid.sum()), 1))
    bad = valid & ~((coef * advantages).abs() <= limit)  # NaN compares False: caught too
    if not bad.any():
        return
    rows = bad.any(dim=1).nonzero().flatten()
    magnitude = rewards[rows].abs() * weights.abs().to(rewards.device).view(1, -1, 1) * present[rows].unsqueeze(-1)
    peaks = magnitude.amax(dim=(0, 2))
    culprits = []
    for k in (peaks == peaks.max()).logical_or(peaks > limit).nonzero().flatten().tolist():
        row, token = divmod(int(magnitude[:, k].argmax()), magnitude.size(2))
        culprits.append(
            f"'{func_names[k]}' (sample {int(rows[row])}, token {token}: {rewards[rows[row], k, token].item():.4g}, "
            f"weight {weights[k].item():g})"
        )
    raise ValueError(
        f"Token advantages are not finite or too large (|λ·A_tok| > {limit:.3g}, which overflows the float32 loss) "
        f"for sample(s) {rows.tolist()[:20]} of the batch. Largest weighted token rewards on them: "
        f"{', '.join(culprits)}. Rewards this large overflow float32 (in the weighted sum Σ_k w_k·g_k, or in the loss "
        "when they are not normalized): return smaller token rewards (None for a completion a function does not "
        "score), lower token_reward_weights / token_advantage_coef, or normalize them (token_reward_normalization="
        "'group' or 'batch')."
    )


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


class TokenRewardMixin:
    """Calls token reward functions next to the outcome rewards and turns them into (B, T) token advantages."""

    # RLOO subtracts a leave-one-out baseline from the accumulated token advantages; GRPO's are group-normalized.
    token_leave_one_out: bool = False

    def _init_token_rewards(self, token_reward_funcs: list) -> None:
        """Set up after the TRL trainer's ``__init__`` (``self.args`` and ``self.accelerator`` exist)."""
        self.token_reward_funcs = token_reward_funcs
        self.token_reward_func_names = [token_reward_func_name(f) for f in token_reward_funcs]
        weights = token_setting(self.args, "token_reward_weights")
        weights = [1.0] * len(token_reward_funcs) if weights is None else [float(w) for w in weights]
        self.token_reward_weights = torch.tensor(weights, dtype=torch.float32)
        self._token_reward_batch: TokenRewardBatch | None = None
        self._token_step_inputs: tuple[list, list] | None = None
        self._token_step_partial: dict[str, torch.Tensor] | None = None
        self.token_step_record: TokenStepRecord | None = None
        self._check_token_advantage_support()
        keep_bnb_4bit_trainable_on_cpu(self.model)  # 4-bit training on CPU with transformers >= 5.24
        check_scorers_under_sharding(token_reward_funcs, self.token_reward_func_names, self.accelerator)

    def _check_token_advantage_support(self) -> None:
        """Raise at construction for a TRL loss path that would mis-broadcast (B, T) advantages.

        A fused Liger GRPO loss (``use_liger_kernel=True`` in TRL versions whose trainer builds ``liger_grpo_loss``)
        takes one advantage per sequence. TRL 1.16's ``use_liger_kernel`` only patches layer kernels and its loss
        takes (B, T) advantages, so it passes this check.
        """
        active = bool(self.token_reward_funcs) and token_setting(self.args, "token_advantage_coef") != 0.0
        if active and getattr(self.args, "use_liger_kernel", False) and hasattr(self, "liger_grpo_loss"):
            raise ValueError(
                f"{type(self).__name__}: use_liger_kernel=True selects TRL's fused Liger GRPO loss, which takes one "
                "advantage per sequence and would silently mis-broadcast the (B, T) token advantages. Set "
                "use_liger_kernel=False, or token_advantage_coef=0 / no token_reward_funcs."
            )

    def _token_reward_kwargs(self, inputs: list[dict]) -> dict[str, Any]:
        """The keyword arguments TRL passes to reward functions, plus ``processing_class``."""
        keys = [key for key in inputs[0] if key not in _OWN_COLUMNS]
        kwargs: dict[str, Any] = {key: [example[key] for example in inputs] for key in keys}
        kwargs["trainer_state"] = self.state
        kwargs["log_extra"] = self._log_completion_extra
        kwargs["log_metric"] = self._log_metric
        if getattr(self, "environments", None) is not None:
            kwargs["environments"] = self.environments
        kwargs["processing_class"] = self.processing_class
        return kwargs

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.token_reward_funcs:
            self._token_reward_batch = self._call_token_reward_funcs(inputs, prompts, completions, completion_ids_list)
            self._token_step_inputs = (list(prompts), [list(ids) for ids in completion_ids_list])
        return rewards_per_func

    def _call_token_reward_funcs(self, inputs, prompts, completions, completion_ids_list) -> TokenRewardBatch:
        """Compute this process's token rewards; every process raises if any process's functions failed.

        Agreeing on the failure before the next collective keeps a bad value on one rank from hanging the others.
        """
        error: BaseException | None = None
        batch = None
        try:
            batch = compute_token_rewards(
                self.token_reward_funcs,
                self.token_reward_func_names,
                prompts,
                completions,
                completion_ids_list,
                self._token_reward_kwargs(inputs),
            )
        except Exception as caught:  # re-raised below, after the other processes know
            error = caught
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([int(error is not None)], device=self.accelerator.device)
            if self.accelerator.gather(flag).any() and error is None:
                raise RuntimeError("A token reward function raised on another process; see that process's error.")
        if error is not None:
            raise error
        weighted, has_reward = weighted_token_rewards(batch.rewards, batch.present, self.token_reward_weights)
        lengths = torch.tensor([len(ids) for ids in completion_ids_list], dtype=torch.float32).clamp(min=1)
        per_completion = (weighted.sum(dim=1) / lengths).tolist()
        self._log_completion_extra(
            "token_reward", [value if scored else None for value, scored in zip(per_completion, has_reward.tolist())]
        )
        return batch

    def _gather_token_rewards(
        self, batch: TokenRewardBatch, loss_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad to the local completion length, then across processes, and gather all rows (rank-major, as TRL).

        Returns (B_all, K, T_max) rewards, (B_all, K) presence and (B_all, T_max) loss mask.
        """
        device = loss_mask.device
        rewards = F.pad(batch.rewards, (0, loss_mask.size(1) - batch.rewards.size(2))).to(device)
        present = batch.present.to(device)
        mask = loss_mask.to(torch.float32)
        if self.accelerator.num_processes > 1:
            rewards = self.accelerator.pad_across_processes(rewards, dim=2)
            mask = self.accelerator.pad_across_processes(mask, dim=1)
            rewards, present, mask = self.accelerator.gather((rewards, present, mask))
        return rewards, present, mask

    def _token_advantages(self, output: dict[str, Any], group_size: int) -> torch.Tensor | None:
        """(B, T) token advantages A_tok for this process's rows, or None without token reward functions.

        Logs ``token_rewards/<name>/mean|std`` and ``token_advantages/mean|std`` over the valid tokens of the whole
        (gathered) batch.
        """
        batch, self._token_reward_batch = self._token_reward_batch, None
        if batch is None:
            return None
        loss_mask = output["completion_mask"]
        if output.get("tool_mask") is not None:
            loss_mask = loss_mask * output["tool_mask"]
        rewards, present, mask = self._gather_token_rewards(batch, loss_mask)
        weighted, has_reward = weighted_token_rewards(rewards, present, self.token_reward_weights.to(rewards.device))
        valid = mask * has_reward.unsqueeze(1)
        advantages = token_advantages(
            weighted,
            valid,
            group_size=group_size,
            mode=token_setting(self.args, "token_advantage_mode"),
            normalization=token_setting(self.args, "token_reward_normalization"),
            gamma=token_setting(self.args, "token_reward_gamma"),
            eps=token_setting(self.args, "token_reward_epsilon"),
            scale=token_setting(self.args, "token_advantage_scale"),
            leave_one_out=self.token_leave_one_out,
        )
        coef = token_setting(self.args, "token_advantage_coef")
        if coef != 0.0:  # every process holds the gathered batch, so all raise together
            check_token_advantages(
                advantages, valid, rewards, present, self.token_reward_weights, self.token_reward_func_names, coef
            )
        metrics = self._metrics["train" if self.model.training else "eval"]
        for k, name in enumerate(self.token_reward_func_names):
            func_mask = mask * present[:, k].unsqueeze(1)
            mean, std = masked_stats(rewards[:, k], func_mask)
            metrics[f"token_rewards/{name}/mean"].append(mean)
            metrics[f"token_rewards/{name}/std"].append(std)
        mean, std = masked_stats(advantages, valid)
        metrics["token_advantages/mean"].append(mean)
        metrics["token_advantages/std"].append(std)
        rows = loss_mask.size(0)
        start = self.accelerator.process_index * rows
        local = slice(start, start + rows), slice(0, loss_mask.size(1))
        self._token_step_partial = {"rewards": weighted[local], "token_advantages": advantages[local]}
        return advantages[local]

    def _record_token_step(self, output: dict[str, Any]) -> None:
        """Keep what this step used as ``self.token_step_record`` and hand it to every callback that has an
        ``on_token_step(args, state, record)`` method (e.g. `TokenHeatmapCallback`). Call after the advantages are
        final."""
        partial, self._token_step_partial = self._token_step_partial, None
        inputs, self._token_step_inputs = self._token_step_inputs, None
        if partial is None or inputs is None:
            return
        mask = output["completion_mask"].to(torch.float32)
        if output.get("tool_mask") is not None:
            mask = mask * output["tool_mask"]
        advantages = output["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1) * mask
        self.token_step_record = TokenStepRecord(
            prompts=inputs[0],
            completion_ids=inputs[1],
            rewards=partial["rewards"].detach().cpu(),
            token_advantages=partial["token_advantages"].detach().cpu(),
            advantages=advantages.detach().float().cpu(),
            mask=mask.detach().cpu(),
        )
        for callback in self.callback_handler.callbacks:
            hook = getattr(callback, "on_token_step", None)
            if hook is not None:
                hook(self.args, self.state, self.token_step_record)
