"""Token-reward machinery shared by TokenGRPOTrainer and TokenRLOOTrainer.

The mixin relies on the TRL internals listed in docs/trl_internals.md: ``_calculate_rewards`` (called inside the
parent's ``_generate_and_score_completions``, with the final prompts and decoded completions), the
``completion_mask``/``tool_mask`` of the returned batch, ``_log_completion_extra``/``_log_metric`` and ``_metrics``.
"""

from __future__ import annotations

from dataclasses import fields
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
        keep_bnb_4bit_trainable_on_cpu(self.model)  # 4-bit training on CPU with transformers >= 5.24
        check_scorers_under_sharding(token_reward_funcs, self.token_reward_func_names, self.accelerator)

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
        return advantages[start : start + rows, : loss_mask.size(1)]
