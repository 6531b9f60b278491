"""The one seam to TRL: the only module that names private methods and attributes of TRL's trainers and of
transformers' `Trainer` (besides the token trainer classes' own overriding definitions).

`TRL_API` lists every TRL internal the package relies on, with the parameters it passes; tests/test_trl_private_api.py
checks each against the installed TRL (for `GRPOTrainer`, `RLOOTrainer` and `Trainer`) and checks that nothing outside
this module uses one. docs/trl_internals.md says what breaks if one changes.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import RLOOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import nanmax, nanmin, use_adapter


@dataclass(frozen=True)
class TrlApi:
    """One TRL internal the token trainers use.

    Attributes:
        name: the attribute's name.
        owners: where it is looked up: ``"GRPOTrainer"``, ``"RLOOTrainer"``, ``"Trainer"`` (transformers), or a module.
        params: the leading parameters the package relies on (methods, functions); None for attributes.
        use: how the token trainers use it.
    """

    name: str
    owners: tuple[str, ...]
    params: tuple[str, ...] | None
    use: str


_BOTH = ("GRPOTrainer", "RLOOTrainer")
_LOGPS_PARAMS = ("self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy",
                 "compute_aux_loss")  # fmt: skip

TRL_API: tuple[TrlApi, ...] = (
    TrlApi("_calculate_rewards", _BOTH, ("self", "inputs", "prompts", "completions", "completion_ids_list"),
           "overridden: super() computes and gathers the outcome rewards, then the token reward functions run on the "
           "same inputs (their log_extra/log_metric values are flushed with TRL's)"),
    TrlApi("_generate_and_score_completions", _BOTH, ("self", "inputs"),
           "overridden: super() generates and scores; the (B,) advantages then become (B, T) when λ ≠ 0"),
    TrlApi("_get_per_token_logps_and_entropies", _BOTH, _LOGPS_PARAMS,
           "called for log-probs (KL in the reward, RLOO's token loss); overridden to keep the passes TRL runs during "
           "generation before _calculate_rewards (RLOO: the sampling policy's, then the reference's when beta != 0); "
           "its multimodal keyword parameters are the batch keys forwarded to the model (FORWARD_KEYS)"),
    TrlApi("_compute_loss", ("RLOOTrainer",), ("self", "model", "inputs"),
           "overridden by TokenRLOOTrainer: a per-token clipped loss when token advantages are on, else super()"),
    TrlApi("_log_completion_extra", _BOTH, ("self", "column", "values"),
           "the token_reward column of the completions table; the log_extra keyword of token reward functions"),
    TrlApi("_log_metric", _BOTH, ("self", "name", "value"), "the log_metric keyword of token reward functions"),
    TrlApi("_metrics", _BOTH, None, "instance dict mode -> metric name -> values, averaged by TRL's log()"),
    TrlApi("_tag_names", _BOTH, None, "class attribute, model-card tags: extended by the token trainers"),
    TrlApi("get_off_policy_mask", ("GRPOTrainer",),
           ("advantages", "per_token_logps", "sampling_per_token_logps", "mask", "off_policy_threshold"),
           "static, overridden: fed the per-sequence mean of the (B, T) advantages"),
    TrlApi("get_gamma_weights", ("GRPOTrainer",),
           ("advantages", "log_ratio_per_token", "mask", "importance_sampling_ratio"),
           "static, overridden: fed the per-sequence mean of the (B, T) advantages"),
    TrlApi("_save_checkpoint", ("Trainer", *_BOTH), ("self", "model", "trial"),
           "overridden: super(), then stateful token reward functions save into the checkpoint folder"),
    TrlApi("_load_from_checkpoint", ("Trainer", *_BOTH), ("self", "resume_from_checkpoint", "model"),
           "overridden: super(), then stateful token reward functions load from the checkpoint folder"),
    TrlApi("_get_output_dir", ("Trainer",), ("self", "trial"), "the checkpoint folder _save_checkpoint wrote"),
    TrlApi("use_adapter", ("trl.trainer.utils",), ("model", "adapter_name"),
           "the KL-in-reward reference of a PEFT policy: TRL's own adapter switch"),
    TrlApi("disable_gradient_checkpointing", ("trl.models.utils",), ("model", "gradient_checkpointing_kwargs"),
           "no-grad log-prob passes, as TRL runs them"),
    TrlApi("nanmin", ("trl.trainer.utils",), ("tensor",), "RLOO's clip_ratio/low_min"),
    TrlApi("nanmax", ("trl.trainer.utils",), ("tensor",), "RLOO's clip_ratio/high_max"),
    # public attributes set in TRL's __init__ that the token paths read
    TrlApi("aux_loss_enabled", _BOTH, None, "RLOO token loss: add the MoE auxiliary loss as TRL does"),
    TrlApi("router_aux_loss_coef", _BOTH, None, "RLOO token loss: the auxiliary loss's coefficient"),
    TrlApi("epsilon_low", _BOTH, None, "RLOO token loss: the clip range"),
    TrlApi("epsilon_high", _BOTH, None, "RLOO token loss: the clip range"),
    TrlApi("beta", _BOTH, None, "RLOO: whether TRL ran a reference pass during generation"),
    TrlApi("ref_model", _BOTH, None, "the KL-in-reward reference when TRL has one"),
    TrlApi("num_generations", _BOTH, None, "group size in training"),
    TrlApi("num_generations_eval", _BOTH, None, "group size in evaluation"),
    TrlApi("reward_weights", _BOTH, None, "the outcome_rewards keyword's weighted sum"),
    TrlApi("reward_func_names", _BOTH, None, "the outcome_rewards keyword's names"),
)  # fmt: skip

# The batch keys TRL forwards to the model (multimodal inputs): the keyword parameters of its log-prob pass.
FORWARD_KEYS: tuple[str, ...] = tuple(
    name for name in inspect.signature(RLOOTrainer._get_per_token_logps_and_entropies).parameters
    if name not in _LOGPS_PARAMS
)  # fmt: skip


class TrlHooks:
    """The overrides of TRL's private hooks, mixed in under `TokenRewardMixin`: each calls TRL (``super()``) and hands
    over to the mixin's own methods (``_new_token_step``, ``_score_token_rewards``, ``_finish_token_step``,
    ``_save_token_reward_state``, ``_load_token_reward_state``)."""

    _token_pending: Any = None  # the `PendingTokenStep` of the generation batch in flight

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._token_pending = self._new_token_step()
        try:
            return self._finish_token_step(super()._generate_and_score_completions(inputs))
        finally:
            self._token_pending = None

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        pending = self._token_pending
        if pending is not None and pending.capturing:  # TRL's own passes during generation: keep them
            pending.generation_logps.append(result[0])
        return result

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self._token_pending is not None:
            self._token_pending.capturing = False
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._score_token_rewards(inputs, prompts, completions, completion_ids_list, rewards_per_func)
        return rewards_per_func

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        self._save_token_reward_state(folder)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._load_token_reward_state(resume_from_checkpoint)


def mode_metrics(trainer: Any) -> dict[str, list[float]]:
    """TRL's metric lists of the current mode (``"train"`` while the model trains, else ``"eval"``)."""
    return trainer._metrics["train" if trainer.model.training else "eval"]


def reward_logging(trainer: Any) -> dict[str, Callable[..., None]]:
    """The ``log_extra`` and ``log_metric`` keywords TRL passes to reward functions."""
    return {"log_extra": trainer._log_completion_extra, "log_metric": trainer._log_metric}


def log_completion_column(trainer: Any, column: str, values: list) -> None:
    """Add a column (one value per completion of this process) to TRL's completions table."""
    trainer._log_completion_extra(column, values)


def forward_logps(
    trainer: Any, model: Any, batch: dict[str, Any], batch_size: int | None = None, **options: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """TRL's log-prob pass over ``batch``'s prompt + completion tokens (and its multimodal keys).

    ``options``: ``compute_entropy``, ``compute_aux_loss``. Returns (B, T) log-probs, (B, T) entropies or None, and
    the MoE auxiliary loss or None.
    """
    prompt_ids, completion_ids = batch["prompt_ids"], batch["completion_ids"]
    return trainer._get_per_token_logps_and_entropies(
        model,
        torch.cat([prompt_ids, completion_ids], dim=1),
        torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
        completion_ids.size(1),
        batch_size,
        **options,
        **{key: batch.get(key) for key in FORWARD_KEYS},
    )


def sampled_logps(trainer: Any, batch: dict[str, Any], model: Any) -> torch.Tensor:
    """(B, T) log-probs of ``batch``'s completion tokens under ``model`` as TRL computes them at generation: no grad,
    gradient checkpointing off, the mode's per-device batch size."""
    args = trainer.args
    batch_size = args.per_device_train_batch_size if trainer.model.training else args.per_device_eval_batch_size
    with torch.no_grad(), disable_gradient_checkpointing(trainer.model, args.gradient_checkpointing_kwargs):
        logps, _, _ = forward_logps(trainer, model, batch, batch_size)
    return logps


@contextmanager
def reference_adapter(trainer: Any) -> Iterator[None]:
    """The PEFT policy as TRL's reference: its ``"ref"`` adapter when it has one, else every adapter off."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
        yield


def rloo_generation_logps(trainer: Any, output: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) per-token log-probs RLOO computed during generation: the sampling policy's and the reference's (None when
    ``beta == 0``), from the passes kept by `TrlHooks`.

    TRL 1.16's ``RLOOTrainer._generate_and_score_completions`` runs them in that order before ``_calculate_rewards``
    and returns only the old ones' masked sum (``old_logps``); a TRL that changes this raises here instead of training
    on the wrong log-probs.
    """
    kept = trainer._token_pending.generation_logps
    expected = 2 if trainer.beta != 0.0 else 1
    mask = output["completion_mask"]
    if len(kept) != expected or not torch.allclose((kept[0] * mask).sum(1), output["old_logps"], rtol=1e-5, atol=1e-5):
        raise RuntimeError(
            f"{type(trainer).__name__}: RLOOTrainer._generate_and_score_completions ran {len(kept)} log-prob passes "
            f"before _calculate_rewards (expected {expected}, the first summing to its old_logps): the installed TRL "
            "computes RLOO's old log-probs differently from TRL 1.16 (see docs/trl_internals.md)."
        )
    return kept[0], kept[1] if expected == 2 else None


def clip_summary(values: torch.Tensor) -> dict[str, float]:
    """nan-mean, nan-min and nan-max of a gathered 1-D tensor (TRL's clip-ratio statistics)."""
    return {"mean": values.nanmean().item(), "min": nanmin(values).item(), "max": nanmax(values).item()}
