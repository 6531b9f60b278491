"""Token-reward machinery shared by TokenGRPOTrainer and TokenRLOOTrainer.

One generation batch goes through TRL's hooks (overridden in `trainers._trl.TrlHooks`, the only place that names
TRL's private methods) and the mixin's own steps, carried by one `PendingTokenStep`:

1. ``_new_token_step`` when generation starts (None when no token path is active: TRL runs untouched);
2. ``_score_token_rewards`` right after TRL's outcome rewards: the token reward functions run on the same prompts,
   completions and columns;
3. ``_finish_token_step`` once TRL's generation and scoring return (the template's last step): token advantages,
   A = A_out + λ·A_tok on the loss mask, the per-trainer hook ``_prepare_token_loss``, the step record.

Per-trainer hooks: ``token_leave_one_out`` (RLOO's baseline), ``_generation_logps`` (the per-token log-probs TRL
computed while generating) and ``_prepare_token_loss`` (what the trainer's loss needs besides the advantages).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
import torch.nn.functional as F

from trl_token_ext.advantages import combine_advantages, length_neutral_token_advantages, token_advantages
from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu
from trl_token_ext.kl_reward import kl_token_rewards
from trl_token_ext.sharding import check_scorers_under_sharding
from trl_token_ext.token_rewards import (
    TokenRewardBatch,
    check_token_advantages,
    check_token_reward_funcs,
    compute_token_rewards,
    masked_stats,
    token_reward_func_name,
    weighted_token_rewards,
)
from trl_token_ext.trainers import _trl
from trl_token_ext.trainers.protocols import (
    StatefulTokenReward,
    TokenStepCallback,
    TrainerBoundReward,
    check_token_reward_hooks,
)
from trl_token_ext.trainers.records import OutcomeRewards, TokenStepRecord
from trl_token_ext.trainers.state import PendingTokenStep, TokenSettings

_OWN_COLUMNS = ("prompt", "completion", "completion_ids")
KL_REWARD_NAME = "kl"


def loss_mask(batch: dict[str, Any]) -> torch.Tensor:
    """(B, T) float mask of the tokens the loss sees: completion mask × tool mask (when the batch has one)."""
    mask = batch["completion_mask"].to(torch.float32)
    return mask * batch["tool_mask"] if batch.get("tool_mask") is not None else mask


class TokenRewardMixin(_trl.TrlHooks):
    """Calls token reward functions next to the outcome rewards and turns them into (B, T) token advantages."""

    # RLOO subtracts a leave-one-out baseline from the accumulated token advantages; GRPO's are group-normalized.
    token_leave_one_out: bool = False

    @staticmethod
    def _check_token_reward_funcs(token_reward_funcs: Any, settings: TokenSettings) -> list:
        """Check the functions against the settings before the TRL trainer loads anything; returns them as a list."""
        funcs = check_token_reward_funcs(token_reward_funcs, settings.token_reward_weights)
        check_token_reward_hooks(funcs, [token_reward_func_name(f) for f in funcs])
        return funcs

    def _init_token_rewards(self, token_reward_funcs: list, settings: TokenSettings) -> None:
        """Set up after the TRL trainer's ``__init__`` (``self.args`` and ``self.accelerator`` exist)."""
        self.token_settings = settings
        self.token_reward_funcs = token_reward_funcs
        self.token_reward_func_names = [token_reward_func_name(f) for f in token_reward_funcs]
        self.token_reward_weights = settings.weights_for(len(token_reward_funcs))
        self.token_step_record: TokenStepRecord | None = None
        self.token_kl_ref_model = None
        if settings.token_kl_coef > 0.0 and self._kl_reference_source() == "copy":
            # No TRL reference (beta == 0) and no adapter to disable: keep a frozen copy of the initial policy.
            self.token_kl_ref_model = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
            self.token_kl_ref_model.requires_grad_(False)
        for func in token_reward_funcs:
            if isinstance(func, TrainerBoundReward):
                func.bind_trainer(self)
        self._check_token_advantage_support()
        keep_bnb_4bit_trainable_on_cpu(self.model)  # 4-bit training on CPU with transformers >= 5.24
        check_scorers_under_sharding(token_reward_funcs, self.token_reward_func_names, self.accelerator)

    def _token_path_active(self) -> bool:
        """True when token advantages are computed: token reward functions, or a KL term in the reward."""
        return bool(self.token_reward_funcs) or self.token_settings.token_kl_coef > 0.0

    @property
    def uses_token_loss(self) -> bool:
        """True when the loss takes (B, T) advantages A_out + λ·A_tok (token path active and λ ≠ 0)."""
        return self._token_path_active() and self.token_settings.token_advantage_coef != 0.0

    def _kl_reference_source(self) -> str:
        """Where π_ref of the KL in the reward comes from: 'trl_ref_model', 'adapter_disabled' or 'copy'."""
        if getattr(self, "ref_model", None) is not None:
            return "trl_ref_model"
        from accelerate.utils import is_peft_model

        return "adapter_disabled" if is_peft_model(self.accelerator.unwrap_model(self.model)) else "copy"

    def _check_token_advantage_support(self) -> None:
        """Raise at construction for a TRL loss path that would mis-broadcast (B, T) advantages.

        A fused Liger GRPO loss (``use_liger_kernel=True`` in TRL versions whose trainer builds ``liger_grpo_loss``)
        takes one advantage per sequence. TRL 1.16's ``use_liger_kernel`` only patches layer kernels and its loss
        takes (B, T) advantages, so it passes this check.
        """
        if self.uses_token_loss and getattr(self.args, "use_liger_kernel", False) and hasattr(self, "liger_grpo_loss"):
            raise ValueError(
                f"{type(self).__name__}: use_liger_kernel=True selects TRL's fused Liger GRPO loss, which takes one "
                "advantage per sequence and would silently mis-broadcast the (B, T) token advantages. Set "
                "use_liger_kernel=False, or token_advantage_coef=0 / no token_reward_funcs."
            )

    # ----- per-trainer hooks ----------------------------------------------------------------------------------------
    def _generation_logps(self, output: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, T) log-probs TRL computed while generating: the sampling policy's and the reference's (None where TRL
        did not compute them). GRPO returns them in the batch when it needs them."""
        return output.get("old_per_token_logps"), output.get("ref_per_token_logps")

    def _prepare_token_loss(self, output: dict[str, Any]) -> None:
        """Add to the batch what the trainer's loss needs besides the (B, T) advantages (GRPO: nothing)."""

    # ----- the steps of one generation batch ------------------------------------------------------------------------
    def _new_token_step(self) -> PendingTokenStep | None:
        return PendingTokenStep() if self._token_path_active() else None

    def _score_token_rewards(self, inputs, prompts, completions, completion_ids_list, rewards_per_func) -> None:
        """Call the token reward functions on what TRL's outcome rewards saw (``rewards_per_func``: (B_all, M))."""
        pending = self._token_pending
        if pending is None:
            return
        pending.prompts, pending.completion_ids = list(prompts), [list(ids) for ids in completion_ids_list]
        if not self.token_reward_funcs:  # KL in the reward only: no function columns
            length = max((len(ids) for ids in completion_ids_list), default=0)
            pending.reward_batch = TokenRewardBatch(
                rewards=torch.zeros(len(prompts), 0, length), present=torch.zeros(len(prompts), 0, dtype=torch.bool)
            )
            return
        pending.outcome_rewards = self._local_outcome_rewards(rewards_per_func, len(prompts))
        try:
            pending.reward_batch = self._call_token_reward_funcs(inputs, prompts, completions, completion_ids_list)
        finally:
            pending.outcome_rewards = None

    def _finish_token_step(self, output: dict[str, Any]) -> dict[str, Any]:
        """The template's last step: token advantages, A = A_out + λ·A_tok on the loss mask, the step record."""
        if self._token_pending is None:
            return output
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        token_advantages = self._token_advantages(output, group_size)
        if self.uses_token_loss:
            output["advantages"] = combine_advantages(
                output["advantages"], token_advantages, loss_mask(output), self.token_settings.token_advantage_coef
            )
            self._prepare_token_loss(output)
        self._record_token_step(output)
        return output

    def _token_reward_kwargs(self, inputs: list[dict]) -> dict[str, Any]:
        """The keyword arguments TRL passes to reward functions, plus ``processing_class`` and ``outcome_rewards``."""
        keys = [key for key in inputs[0] if key not in _OWN_COLUMNS]
        kwargs: dict[str, Any] = {key: [example[key] for example in inputs] for key in keys}
        kwargs["trainer_state"] = self.state
        kwargs.update(_trl.reward_logging(self))
        if getattr(self, "environments", None) is not None:
            kwargs["environments"] = self.environments
        kwargs["processing_class"] = self.processing_class
        kwargs["outcome_rewards"] = self._token_pending.outcome_rewards
        return kwargs

    def _local_outcome_rewards(self, rewards_per_func: torch.Tensor, num_local: int) -> OutcomeRewards:
        """This process's rows of the gathered (B_all, M) outcome rewards (TRL's rank-major layout)."""
        start = self.accelerator.process_index * num_local
        per_func = rewards_per_func[start : start + num_local].detach().float().cpu()
        weights = self.reward_weights.detach().float().cpu()
        weighted = (per_func * weights.unsqueeze(0)).nansum(dim=1)
        weighted[torch.isnan(per_func).all(dim=1)] = torch.nan
        return OutcomeRewards(per_func=per_func, weighted=weighted, names=list(self.reward_func_names))

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
        scored = has_reward.tolist()
        _trl.log_completion_column(self, "token_reward", [v if ok else None for v, ok in zip(per_completion, scored)])
        return batch

    def _gather_token_rewards(
        self, batch: TokenRewardBatch, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad to the local completion length, then across processes, and gather all rows (rank-major, as TRL).

        Returns (B_all, K, T_max) rewards, (B_all, K) presence and (B_all, T_max) loss mask.
        """
        device = mask.device
        rewards = F.pad(batch.rewards, (0, mask.size(1) - batch.rewards.size(2))).to(device)
        present = batch.present.to(device)
        if self.accelerator.num_processes > 1:
            rewards = self.accelerator.pad_across_processes(rewards, dim=2)
            mask = self.accelerator.pad_across_processes(mask, dim=1)
            rewards, present, mask = self.accelerator.gather((rewards, present, mask))
        return rewards, present, mask

    def _token_advantages(self, output: dict[str, Any], group_size: int) -> torch.Tensor:
        """(B, T) token advantages A_tok for this process's rows.

        Logs ``token_rewards/<name>/mean|std`` and ``token_advantages/mean|std`` over the valid tokens of the whole
        (gathered) batch.
        """
        settings, pending = self.token_settings, self._token_pending
        batch = pending.reward_batch
        local_mask = loss_mask(output)
        names, weights = self.token_reward_func_names, self.token_reward_weights
        kl_rewards = self._kl_token_rewards(output, local_mask)
        if kl_rewards is not None:  # one more reward column, always present, weight 1 (β_kl is in its values)
            batch = TokenRewardBatch(
                rewards=torch.cat([F.pad(batch.rewards, (0, kl_rewards.size(1) - batch.rewards.size(2))),
                                   kl_rewards.cpu().unsqueeze(1)], dim=1),
                present=torch.cat([batch.present, torch.ones(batch.present.size(0), 1, dtype=torch.bool)], dim=1),
            )  # fmt: skip
            names, weights = [*names, KL_REWARD_NAME], torch.cat([weights, torch.ones(1)])
        rewards, present, mask = self._gather_token_rewards(batch, local_mask)
        weighted, has_reward = weighted_token_rewards(rewards, present, weights.to(rewards.device))
        valid = mask * has_reward.unsqueeze(1)
        kwargs = settings.advantage_kwargs(group_size, self.token_leave_one_out)
        if settings.token_advantage_baseline == "position":
            raw = (len(names) - 1,) if kl_rewards is not None else ()  # β_kl is in the KL column's values
            advantages = length_neutral_token_advantages(
                rewards, present, mask, weights.to(rewards.device), raw_columns=raw, **kwargs
            )
        else:
            advantages = token_advantages(weighted, valid, **kwargs)
        if settings.token_advantage_coef != 0.0:  # every process holds the gathered batch, so all raise together
            check_token_advantages(advantages, valid, rewards, present, weights, names, settings.token_advantage_coef)
        metrics = _trl.mode_metrics(self)
        for k, name in enumerate(names):
            mean, std = masked_stats(rewards[:, k], mask * present[:, k].unsqueeze(1))
            metrics[f"token_rewards/{name}/mean"].append(mean)
            metrics[f"token_rewards/{name}/std"].append(std)
        mean, std = masked_stats(advantages, valid)
        metrics["token_advantages/mean"].append(mean)
        metrics["token_advantages/std"].append(std)
        rows = local_mask.size(0)
        start = self.accelerator.process_index * rows
        local = slice(start, start + rows), slice(0, local_mask.size(1))
        pending.rewards, pending.token_advantages = weighted[local], advantages[local]
        return advantages[local]

    def _kl_token_rewards(self, output: dict[str, Any], mask: torch.Tensor) -> torch.Tensor | None:
        """(B, T) r^KL = −β_kl·k(log π_old − log π_ref) on the loss mask, or None when ``token_kl_coef`` is 0.

        Uses the log-probs TRL computed while generating (`_generation_logps`), else one no-grad forward pass each
        (the policy as it sampled; the reference of `_kl_reference_source`).
        """
        settings = self.token_settings
        if settings.token_kl_coef == 0.0:
            return None
        logps, ref_logps = self._generation_logps(output)
        if logps is None:
            logps = _trl.sampled_logps(self, output, self.model)
        if ref_logps is None:
            source = self._kl_reference_source()
            if source == "adapter_disabled":
                with _trl.reference_adapter(self):
                    ref_logps = _trl.sampled_logps(self, output, self.model)
            else:
                reference = self.ref_model if source == "trl_ref_model" else self.token_kl_ref_model
                ref_logps = _trl.sampled_logps(self, output, reference)
        return kl_token_rewards(logps, ref_logps, mask, settings.token_kl_coef, settings.token_kl_estimator)

    def _stateful_token_funcs(self) -> list[tuple[int, StatefulTokenReward]]:
        return [(k, f) for k, f in enumerate(self.token_reward_funcs) if isinstance(f, StatefulTokenReward)]

    def _save_token_reward_state(self, checkpoint: str) -> None:
        """Save stateful token reward functions in ``<checkpoint>/token_reward_funcs/<index>/``."""
        if not self.args.should_save:
            return
        for index, func in self._stateful_token_funcs():
            func.save_checkpoint(os.path.join(checkpoint, "token_reward_funcs", str(index)))

    def _load_token_reward_state(self, checkpoint: str) -> None:
        for index, func in self._stateful_token_funcs():
            folder = os.path.join(checkpoint, "token_reward_funcs", str(index))
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"Resuming from {checkpoint}: token_reward_funcs[{index}] "
                    f"({self.token_reward_func_names[index]}) keeps state, but the checkpoint has no {folder}."
                )
            func.load_checkpoint(folder)

    def _record_token_step(self, output: dict[str, Any]) -> None:
        """Keep what this step used as ``self.token_step_record`` and hand it to every `TokenStepCallback` (e.g.
        `TokenHeatmapCallback`). Call after the advantages are final."""
        pending = self._token_pending
        mask = loss_mask(output)
        advantages = output["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1) * mask
        self.token_step_record = TokenStepRecord(
            prompts=pending.prompts,
            completion_ids=pending.completion_ids,
            rewards=pending.rewards.detach().cpu(),
            token_advantages=pending.token_advantages.detach().cpu(),
            advantages=advantages.detach().float().cpu(),
            mask=mask.detach().cpu(),
        )
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, TokenStepCallback):
                callback.on_token_step(self.args, self.state, self.token_step_record)
