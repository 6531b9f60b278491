"""PRIME's online implicit process reward model (Cui et al. 2025, "Process Reinforcement through Implicit Rewards").

The PRM is a causal LM π_φ (a LoRA adapter on a frozen base) whose reference π_ref is the same model with the adapter
disabled. Its token reward is the implicit process reward r_t = β·(log π_φ(y_t|x,y_<t) − log π_ref(y_t|x,y_<t)), and
after each generation batch it is trained on the batch's outcome labels l ∈ [0, 1] with PRIME's cross-entropy

    L(φ) = −mean_i [ l_i·log σ(z_i) + (1 − l_i)·log(1 − σ(z_i)) ],   z_i = β·Σ_t (log π_φ − log π_ref)(y_{i,t}),

so that Σ_t r_t becomes a calibrated outcome logit and each r_t the credit of token t (Rafailov et al. 2024, "From r
to Q*"; Yuan et al. 2024, "Free process rewards without process labels").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from trl_token_ext.choices import Placement
from trl_token_ext.models import ScorerModelArgs
from trl_token_ext.scorers._common import eval_mode, model_device
from trl_token_ext.scorers._lm import JudgeSample, target_logprobs
from trl_token_ext.scorers._lm import implicit_rewards as implicit_process_rewards
from trl_token_ext.scorers.quality import _CausalLMScorer
from trl_token_ext.shared_base import SharedBaseModel, adapters_disabled, has_adapter

UPDATE_MODES = ("before", "after", "none")
STATE_FILE = "prm_state.pt"


class OnlineImplicitPRM(_CausalLMScorer):
    """Implicit PRM updated online from the outcome rewards the trainer passes (``outcome_rewards`` keyword).

    Args:
        model: causal LM id/path or model object (loaded through `trl_token_ext.models.load_scorer_model`; 4-bit with
            ``model_init_kwargs={"load_in_4bit": True}``). Without an adapter, one is added from ``peft_config``; an
            adapter folder is trained on.
        tokenizer: the PRM's tokenizer (default: saved with ``model``, else the policy's); another vocabulary than the
            policy's is aligned by characters (``placement``, as in `LogProbQuality`; "split" keeps Σ_t r_t).
        peft_config: `peft.LoraConfig` of the adapter to add (default r=8, alpha=16, all linear layers, no dropout).
        beta: β of the implicit reward (PRIME uses 0.05).
        learning_rate, weight_decay, max_grad_norm: the PRM's own AdamW (PRIME: lr 1e-6 on a 7B model; tiny models need
            more); ``optimizer_factory(params) -> torch.optim.Optimizer`` replaces AdamW.
        update_epochs: optimizer steps of the cross-entropy on each batch (PRIME: 1); more let a PRM that learns too
            slowly fit each batch further (all steps on the same batch, each a full pass over it).
        logit_bias: learn a scalar offset b of the outcome logit, z_i = b + β·Σ_t log π_φ/π_ref (default False:
            PRIME's z_i without b). With unbalanced labels (success rate p far from 0.5) the PRM otherwise spends its
            first updates on fitting logit(p) by lowering (p < 0.5) or raising every sampled token, most of all the
            policy's frequent ones — credit unrelated to the outcome; b absorbs the base rate. Not part of r_t.
        label_threshold: label l = 1 if the outcome > threshold else 0 (PRIME's verifiable 0/1 outcomes); None uses
            the outcome itself, which must lie in [0, 1] (continuous labels).
        label_reward: name of the outcome reward function giving the label; None: TRL's weighted sum of all of them.
        update: "before" (PRIME's default: update on the batch, then score it with the updated PRM), "after" (score,
            then update) or "none" (a static implicit PRM).
        placement, max_length, batch_size, max_batch_tokens, model_init_kwargs: as in `ImplicitPRMQuality`
            (batch_size, max_batch_tokens also bound the update's batches).

    The update runs only in training mode and only when ``outcome_rewards`` is passed (TokenGRPOTrainer /
    TokenRLOOTrainer do). With several processes every process updates on its own rows, gradients are summed across
    processes and divided by the global number of labelled completions, so all processes keep the same adapter.
    Trainer checkpoints save the adapter (``save_pretrained``) and the optimizer; resuming restores both.
    """

    default_name = "online_implicit_prm"
    trains_own_model = True  # the CLI gives it its own copy of the checkpoint, never the policy's model

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        peft_config: Any = None,
        beta: float = 0.05,
        learning_rate: float = 1e-6,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0,
        optimizer_factory: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
        update_epochs: int = 1,
        logit_bias: bool = False,
        label_threshold: float | None = 0.5,
        label_reward: str | None = None,
        update: str = "before",
        placement: Placement = "split",
        max_length: int | None = None,
        batch_size: int = 16,
        max_batch_tokens: int = 16384,
        model_init_kwargs: ScorerModelArgs | Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        # Not a dataclass (its ``update`` argument and method share a name): the shared keyword arguments go to
        # `ModelScorer`, whose construction runs `_check`, then `_load`.
        self.model, self.tokenizer, self.peft_config = model, tokenizer, peft_config
        self.beta, self.update_mode, self.update_epochs, self.logit_bias = beta, update, update_epochs, logit_bias
        self.label_threshold, self.label_reward = label_threshold, label_reward
        self.learning_rate, self.weight_decay, self.max_grad_norm = learning_rate, weight_decay, max_grad_norm
        self.optimizer_factory = optimizer_factory
        super().__init__(
            placement=placement,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            model_init_kwargs=model_init_kwargs,
            name=name,
        )

    def _check(self) -> None:
        if self.update_mode not in UPDATE_MODES:
            raise ValueError(f"{self.__name__}: update must be one of {UPDATE_MODES}, got {self.update_mode!r}.")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"{self.__name__}: beta must be a finite number > 0, got {self.beta}.")
        self.beta = float(self.beta)
        epochs = self.update_epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"{self.__name__}: update_epochs must be an int ≥ 1, got {epochs!r}.")
        if isinstance(self.model, SharedBaseModel):
            raise ValueError(
                f"{self.__name__}: model is a SharedBaseModel (the policy's weights), but this PRM trains its own "
                "adapter on its model; pass the checkpoint (a path or Hub id) or a separate model object."
            )

    def _load(self) -> None:
        init = self.model_init_kwargs
        self._device_given = init.device is not None or init.quantization_config is not None or init.load_in_4bit
        super()._load()
        if not has_adapter(self.model):
            from peft import LoraConfig, get_peft_model

            config = self.peft_config or LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
            )
            self.model = get_peft_model(self.model, config)
        for param_name, param in self.model.named_parameters():  # the adapter (and its modules_to_save) only
            param.requires_grad_("lora_" in param_name or "modules_to_save" in param_name)
        self.model.eval()  # no dropout; gradients still flow through the adapter
        # b of z_i = b + β·Σ_t log-ratio (a trainable scalar, listed with the adapter's parameters), or None
        self.logit_bias = (
            torch.nn.Parameter(torch.zeros((), device=model_device(self.model))) if self.logit_bias else None
        )
        self.optimizer: torch.optim.Optimizer | None = None
        self.num_updates = 0
        self._accelerator: Any = None
        self._trainer: Any = None

    # ----- binding, state ------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The adapter's trainable parameters (LoRA, ``modules_to_save``), then ``logit_bias`` when learned."""
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        return params + ([("logit_bias", self.logit_bias)] if self.logit_bias is not None else [])

    def bind_trainer(self, trainer: Any) -> None:
        """Called by the token trainers: run on this process's device, share the adapter of process 0."""
        self._trainer, self._accelerator = trainer, trainer.accelerator
        if not self._device_given:
            self.model.to(trainer.accelerator.device)
        if self.logit_bias is not None:
            self.logit_bias.data = self.logit_bias.data.to(model_device(self.model))
        if trainer.accelerator.num_processes > 1:
            from accelerate.utils import broadcast

            params = [p for _, p in self.trainable_parameters()]
            flat = broadcast(torch.cat([p.detach().reshape(-1) for p in params]), from_process=0)
            torch.nn.utils.vector_to_parameters(flat, params)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_trainer"] = state["_accelerator"] = None  # the trainer is not part of the reward function
        return state

    def _get_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            params = [p for _, p in self.trainable_parameters()]
            if self.optimizer_factory is not None:
                self.optimizer = self.optimizer_factory(params)
            else:
                self.optimizer = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        return self.optimizer

    def save_checkpoint(self, folder: str) -> None:
        """Adapter (PEFT ``save_pretrained``, loadable by `ImplicitPRMQuality`) and ``prm_state.pt`` (adapter
        tensors, optimizer state, number of updates)."""
        os.makedirs(folder, exist_ok=True)
        if hasattr(self.model, "save_pretrained"):
            self.model.save_pretrained(folder)
        state = {
            "adapter": {n: p.detach().cpu() for n, p in self.trainable_parameters()},
            "optimizer": self._get_optimizer().state_dict(),
            "num_updates": self.num_updates,
        }
        torch.save(state, os.path.join(folder, STATE_FILE))

    def load_checkpoint(self, folder: str) -> None:
        state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
        params = dict(self.trainable_parameters())
        missing = sorted(set(params) - set(state["adapter"]))
        if missing:
            raise ValueError(f"{self.__name__}: {folder} lacks adapter tensors {missing[:3]}...; another PRM?")
        with torch.no_grad():
            for param_name, param in params.items():
                param.copy_(state["adapter"][param_name])
        self._get_optimizer().load_state_dict(state["optimizer"])
        self.num_updates = int(state["num_updates"])

    # ----- math ----------------------------------------------------------------------------------------------------
    def sequence_log_ratios(self, samples: Sequence[JudgeSample], pad_id: int) -> torch.Tensor:
        """(N,) Σ_t (log π_φ − log π_ref)(y_t) over each sample's scored completion tokens, differentiable in φ."""
        device = model_device(self.model)
        width = max(len(s.ids) for s in samples)
        input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
        scored = torch.zeros(len(samples), max(width - 1, 0))
        for row, sample in enumerate(samples):
            input_ids[row, : len(sample.ids)] = torch.tensor(sample.ids, dtype=torch.long)
            scored[row, max(sample.start, 1) - 1 : len(sample.ids) - 1] = 1.0  # position j-1 predicts token j
        input_ids, scored = input_ids.to(device), scored.to(device)
        targets = input_ids[:, 1:]
        with eval_mode(self.model):
            log_p = target_logprobs(self.model(input_ids=input_ids).logits[:, :-1], targets)
        with adapters_disabled(self.model), torch.no_grad():
            ref = target_logprobs(self.model(input_ids=input_ids).logits[:, :-1], targets)
        return ((log_p - ref) * scored).sum(-1)

    def labels(self, outcome_rewards: Any) -> torch.Tensor:
        """(B,) labels in [0, 1] from the trainer's `OutcomeRewards` (NaN where the outcome is missing)."""
        if self.label_reward is None:
            values = outcome_rewards.weighted
        elif self.label_reward in outcome_rewards.names:
            values = outcome_rewards.per_func[:, outcome_rewards.names.index(self.label_reward)]
        else:
            raise ValueError(
                f"{self.__name__}: label_reward={self.label_reward!r} is not an outcome reward function "
                f"({outcome_rewards.names})."
            )
        values = values.float()
        if self.label_threshold is not None:
            return torch.where(values.isnan(), values, (values > self.label_threshold).float())
        bad = ((values < 0) | (values > 1)).nonzero()
        if bad.numel():
            row = int(bad[0])
            raise ValueError(
                f"{self.__name__}: continuous labels (label_threshold=None) must lie in [0, 1]; completion {row} has "
                f"outcome {values[row].item()}. Set label_threshold, or rescale the outcome reward."
            )
        return values

    def outcome_logits(self, samples: Sequence[JudgeSample], pad_id: int) -> torch.Tensor:
        """(N,) z_i = β·Σ_t (log π_φ − log π_ref)(y_{i,t}) (+ b with ``logit_bias``), differentiable in φ (and b)."""
        z = self.beta * self.sequence_log_ratios(samples, pad_id)
        return z + self.logit_bias if self.logit_bias is not None else z

    def update(self, samples: Sequence[JudgeSample], labels: torch.Tensor, pad_id: int) -> dict[str, float]:
        """``update_epochs`` optimizer steps of PRIME's cross-entropy on this batch (every process must call it).

        Returns the loss and, from the pre-update z_i (first epoch), the accuracy of sign(z_i) against the labels
        and the correlation of z_i with them, over this process's labelled rows.
        """
        valid = [i for i in range(len(samples)) if not math.isnan(float(labels[i]))]
        count = torch.tensor([float(len(valid))], device=model_device(self.model))
        if self._accelerator is not None and self._accelerator.num_processes > 1:
            count = self._accelerator.reduce(count, reduction="sum")
        stats = self._update_step(samples, labels, pad_id, valid, count)  # reported: from the pre-update z_i
        for _ in range(self.update_epochs - 1):
            self._update_step(samples, labels, pad_id, valid, count)
        return stats

    def _update_step(self, samples, labels: torch.Tensor, pad_id: int, valid: list[int], count: torch.Tensor):
        """One optimizer step of the cross-entropy over the ``valid`` rows (``count``: global number of them)."""
        optimizer = self._get_optimizer()
        params = [p for _, p in self.trainable_parameters()]
        distributed = self._accelerator is not None and self._accelerator.num_processes > 1
        optimizer.zero_grad(set_to_none=False)
        loss_sum, logits = 0.0, torch.zeros(len(samples))
        chosen = [samples[i] for i in valid]
        for batch in self.batcher.batches(chosen) if chosen else []:
            z = self.outcome_logits([chosen[j] for j in batch], pad_id)
            target = labels[[valid[j] for j in batch]].to(z.device)
            loss = F.binary_cross_entropy_with_logits(z, target, reduction="sum")
            (loss / count.clamp(min=1.0)).backward()
            loss_sum += loss.item()
            logits[[valid[j] for j in batch]] = z.detach().float().cpu()
        for param in params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        if distributed:  # one collective: the flat gradient summed over processes, written back into .grad
            flat = self._accelerator.reduce(torch.cat([p.grad.reshape(-1) for p in params]), reduction="sum")
            offset = 0
            for param in params:
                param.grad.copy_(flat[offset : offset + param.numel()].view_as(param))
                offset += param.numel()
        if count.item() > 0:
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            optimizer.step()
            self.num_updates += 1
        optimizer.zero_grad(set_to_none=False)
        return self._update_stats(loss_sum, logits[valid], labels[valid].float())

    @staticmethod
    def _update_stats(loss_sum: float, z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        if z.numel() == 0:
            return {}
        stats = {"loss": loss_sum / z.numel(), "accuracy": ((z > 0).float() == (labels > 0.5).float()).float().mean()}
        if z.numel() > 1 and z.std() > 0 and labels.std() > 0:
            stats["correlation"] = torch.corrcoef(torch.stack([z, labels]))[0, 1]
        return {key: float(value) for key, value in stats.items()}

    def implicit_rewards(self, samples: Sequence[JudgeSample], pad_id: int, lengths: Sequence[int]) -> list:
        """r_t = β·(log π_φ − log π_ref) per policy token (no grad), one list per sample (`_lm.implicit_rewards`)."""
        return implicit_process_rewards(
            self.model, None, self.batcher, samples, pad_id, self.beta, self.placement, lengths
        )

    def _training(self) -> bool:
        trainer = self._trainer
        return trainer is None or bool(getattr(trainer.model, "training", True))

    def score(self, prompts, completions, completion_ids, processing_class, outcome_rewards=None, **kwargs):
        samples, judge = self.batcher.prepare(
            prompts, completion_ids, self._policy_tokenizer(processing_class, completion_ids)
        )
        pad_id = self._pad_id(judge)
        lengths = [len(ids) for ids in completion_ids]
        learn = self.update_mode != "none" and outcome_rewards is not None and self._training()
        rewards = None if learn and self.update_mode == "before" else self.implicit_rewards(samples, pad_id, lengths)
        if learn:
            stats = self.update(samples, self.labels(outcome_rewards), pad_id)
            log_metric = kwargs.get("log_metric")
            if log_metric is not None:
                for key, value in stats.items():
                    log_metric(f"{self.__name__}/{key}", value)
        if rewards is None:
            rewards = self.implicit_rewards(samples, pad_id, lengths)
        return rewards
