"""Token-reward machinery shared by TokenGRPOTrainer and TokenRLOOTrainer.

The mixin relies on the TRL internals listed in docs/trl_internals.md: ``_calculate_rewards`` (called inside the
parent's ``_generate_and_score_completions``, with the final prompts and decoded completions), the
``completion_mask``/``tool_mask`` of the returned batch, ``_log_completion_extra``/``_log_metric`` and ``_metrics``;
for the KL in the reward also ``_get_per_token_logps_and_entropies``, ``ref_model`` and the batch's
``old_per_token_logps``/``ref_per_token_logps``; for stateful token reward functions Trainer's ``_save_checkpoint``
and ``_load_from_checkpoint``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import fields
from typing import Any

import torch
import torch.nn.functional as F

from trl_token_ext.advantages import length_neutral_token_advantages, token_advantages
from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu
from trl_token_ext.config import TokenRewardConfigMixin
from trl_token_ext.kl_reward import kl_token_rewards
from trl_token_ext.sharding import check_scorers_under_sharding
from trl_token_ext.token_rewards import (
    TokenRewardBatch,
    check_token_advantages,
    compute_token_rewards,
    masked_stats,
    token_reward_func_name,
    weighted_token_rewards,
)
from trl_token_ext.trainers.records import OutcomeRewards, TokenStepRecord

_TOKEN_FIELD_DEFAULTS = {f.name: f.default for f in fields(TokenRewardConfigMixin)}
_OWN_COLUMNS = ("prompt", "completion", "completion_ids")
# Keys of a generated batch that are forwarded to the model (multimodal models), by name.
FORWARD_KEYS = (
    "pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
    "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids",
)  # fmt: skip
KL_REWARD_NAME = "kl"


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
        self._token_step_inputs: tuple[list, list] | None = None
        self._token_step_partial: dict[str, torch.Tensor] | None = None
        self.token_step_record: TokenStepRecord | None = None
        self._outcome_rewards: OutcomeRewards | None = None
        self.token_kl_ref_model = None
        if token_setting(self.args, "token_kl_coef") > 0.0 and self._kl_reference_source() == "copy":
            # No TRL reference (beta == 0) and no adapter to disable: keep a frozen copy of the initial policy.
            self.token_kl_ref_model = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
            self.token_kl_ref_model.requires_grad_(False)
        for func in token_reward_funcs:
            if hasattr(func, "bind_trainer"):
                func.bind_trainer(self)
        self._check_token_advantage_support()
        keep_bnb_4bit_trainable_on_cpu(self.model)  # 4-bit training on CPU with transformers >= 5.24
        check_scorers_under_sharding(token_reward_funcs, self.token_reward_func_names, self.accelerator)

    def _token_path_active(self) -> bool:
        """True when token advantages are computed: token reward functions, or a KL term in the reward."""
        return bool(self.token_reward_funcs) or token_setting(self.args, "token_kl_coef") > 0.0

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
        active = self._token_path_active() and token_setting(self.args, "token_advantage_coef") != 0.0
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
        kwargs["outcome_rewards"] = self._outcome_rewards
        return kwargs

    def _local_outcome_rewards(self, rewards_per_func: torch.Tensor, num_local: int) -> OutcomeRewards:
        """This process's rows of the gathered (B_all, M) outcome rewards (TRL's rank-major layout)."""
        start = self.accelerator.process_index * num_local
        per_func = rewards_per_func[start : start + num_local].detach().float().cpu()
        weights = self.reward_weights.detach().float().cpu()
        weighted = (per_func * weights.unsqueeze(0)).nansum(dim=1)
        weighted[torch.isnan(per_func).all(dim=1)] = torch.nan
        return OutcomeRewards(per_func=per_func, weighted=weighted, names=list(self.reward_func_names))

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.token_reward_funcs:
            self._outcome_rewards = self._local_outcome_rewards(rewards_per_func, len(prompts))
            try:
                self._token_reward_batch = self._call_token_reward_funcs(
                    inputs, prompts, completions, completion_ids_list
                )
            finally:
                self._outcome_rewards = None
        elif self._token_path_active():  # KL in the reward only: no function columns
            length = max((len(ids) for ids in completion_ids_list), default=0)
            self._token_reward_batch = TokenRewardBatch(
                rewards=torch.zeros(len(prompts), 0, length), present=torch.zeros(len(prompts), 0, dtype=torch.bool)
            )
        if self._token_path_active():
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
        names, weights = self.token_reward_func_names, self.token_reward_weights
        kl_rewards = self._kl_token_rewards(output, loss_mask)
        if kl_rewards is not None:  # one more reward column, always present, weight 1 (β_kl is in its values)
            batch = TokenRewardBatch(
                rewards=torch.cat([F.pad(batch.rewards, (0, kl_rewards.size(1) - batch.rewards.size(2))),
                                   kl_rewards.cpu().unsqueeze(1)], dim=1),
                present=torch.cat([batch.present, torch.ones(batch.present.size(0), 1, dtype=torch.bool)], dim=1),
            )  # fmt: skip
            names, weights = [*names, KL_REWARD_NAME], torch.cat([weights, torch.ones(1)])
        rewards, present, mask = self._gather_token_rewards(batch, loss_mask)
        weighted, has_reward = weighted_token_rewards(rewards, present, weights.to(rewards.device))
        valid = mask * has_reward.unsqueeze(1)
        settings = dict(
            group_size=group_size,
            mode=token_setting(self.args, "token_advantage_mode"),
            normalization=token_setting(self.args, "token_reward_normalization"),
            gamma=token_setting(self.args, "token_reward_gamma"),
            eps=token_setting(self.args, "token_reward_epsilon"),
            scale=token_setting(self.args, "token_advantage_scale"),
            leave_one_out=self.token_leave_one_out,
        )
        if token_setting(self.args, "token_advantage_baseline") == "position":
            raw = (len(names) - 1,) if kl_rewards is not None else ()  # β_kl is in the KL column's values
            advantages = length_neutral_token_advantages(
                rewards, present, mask, weights.to(rewards.device), raw_columns=raw, **settings
            )
        else:
            advantages = token_advantages(weighted, valid, **settings)
        coef = token_setting(self.args, "token_advantage_coef")
        if coef != 0.0:  # every process holds the gathered batch, so all raise together
            check_token_advantages(advantages, valid, rewards, present, weights, names, coef)
        metrics = self._metrics["train" if self.model.training else "eval"]
        for k, name in enumerate(names):
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

    def _kl_token_rewards(self, output: dict[str, Any], loss_mask: torch.Tensor) -> torch.Tensor | None:
        """(B, T) r^KL = −β_kl·k(log π_old − log π_ref) on the loss mask, or None when ``token_kl_coef`` is 0.

        Uses the batch's ``old_per_token_logps`` / ``ref_per_token_logps`` when TRL computed them, else one no-grad
        forward pass each (the policy as it sampled; the reference of `_kl_reference_source`).
        """
        coef = token_setting(self.args, "token_kl_coef")
        if coef == 0.0:
            return None
        logps = output.get("old_per_token_logps")
        if logps is None:
            logps = self._completion_logps(output, self.model)
        ref_logps = output.get("ref_per_token_logps")
        if ref_logps is None:
            source = self._kl_reference_source()
            if source == "adapter_disabled":
                from trl.trainer.utils import use_adapter

                model = self.accelerator.unwrap_model(self.model)
                with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
                    ref_logps = self._completion_logps(output, self.model)
            else:
                ref_logps = self._completion_logps(
                    output, self.ref_model if source == "trl_ref_model" else self.token_kl_ref_model
                )
        return kl_token_rewards(logps, ref_logps, loss_mask, coef, token_setting(self.args, "token_kl_estimator"))

    def _completion_logps(self, output: dict[str, Any], model: Any) -> torch.Tensor:
        """(B, T) log-probs of the batch's completion tokens under ``model``: TRL's own forward pass, no grad,
        gradient checkpointing off, the batch's prompt and completion masks."""
        from trl.models.utils import disable_gradient_checkpointing

        mode = "train" if self.model.training else "eval"
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        prompt_ids, completion_ids = output["prompt_ids"], output["completion_ids"]
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([prompt_ids, completion_ids], dim=1),
                torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1),
                completion_ids.size(1),
                batch_size,
                **{key: output.get(key) for key in FORWARD_KEYS},
            )
        return logps

    def _stateful_token_funcs(self) -> list[tuple[int, Any]]:
        return [(k, f) for k, f in enumerate(self.token_reward_funcs) if hasattr(f, "save_checkpoint")]

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint, plus the state of stateful token reward functions (e.g. an online PRM) in
        ``checkpoint-N/token_reward_funcs/<index>/``."""
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        for index, func in self._stateful_token_funcs():
            if self.args.should_save:
                func.save_checkpoint(os.path.join(folder, "token_reward_funcs", str(index)))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        for index, func in self._stateful_token_funcs():
            folder = os.path.join(resume_from_checkpoint, "token_reward_funcs", str(index))
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"Resuming from {resume_from_checkpoint}: token_reward_funcs[{index}] "
                    f"({self.token_reward_func_names[index]}) keeps state, but the checkpoint has no {folder}."
                )
            func.load_checkpoint(folder)

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
