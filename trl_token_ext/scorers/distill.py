"""On-policy distillation token reward: the teacher's log-probability of each policy token (minus the student's).

r_t = log π_T(y_t | x, y_<t)                                   (``subtract_student=False``)
r_t = log π_T(y_t | x, y_<t) − log π_θ(y_t | x, y_<t)           (``subtract_student=True``: −k1 of KL(π_θ ‖ π_T))

Summed over a completion the second is the negative log-ratio log π_T(y)/π_θ(y), whose expectation under the policy
is −KL(π_θ ‖ π_T): maximizing it is reverse-KL distillation on the policy's own samples (MiniLLM, slime, SkyRL).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import torch

from trl_token_ext.scorers._lm import JudgeBatcher, completion_logprobs, to_policy_tokens
from trl_token_ext.scorers.quality import _CausalLMScorer


@dataclass(eq=False, repr=False)
class TeacherDistillReward(_CausalLMScorer):
    """Teacher log-prob (or teacher − student log-prob) per policy token.

    Args:
        teacher: a causal LM id/path or model object, loaded through `trl_token_ext.models.load_scorer_model`
            (frozen; ``model_init_kwargs={"load_in_4bit": True}`` for a 4-bit teacher).
        tokenizer: the teacher tokenizer (default: the one saved with ``teacher``, else the policy's). With another
            vocabulary than the policy's, the decoded completion is re-tokenized and each teacher token's log-prob is
            divided over the policy tokens sharing its characters (``placement="split"``: the completion's total
            log π_T(y) is conserved; "sum"/"mean" as in `LogProbQuality`).
        subtract_student: subtract the student's log-prob of each policy token (temperature 1, no grad).
        student: the student model for ``subtract_student``; default: the policy of the trainer this reward is given
            to (`TokenGRPOTrainer`/`TokenRLOOTrainer` bind it), in its current state at each step.
        clip_min: lower clamp of the teacher's per-token log-prob (e.g. -10), against a few tokens dominating.
        max_length, batch_size, max_batch_tokens, model_init_kwargs: as in `LogProbQuality`.
    """

    default_name = "teacher_distill"

    teacher: Any
    tokenizer: Any = None
    _: KW_ONLY
    subtract_student: bool = False
    student: Any = None
    clip_min: float | None = None

    def _load(self) -> None:
        self._setup_lm(self.teacher, self.tokenizer)  # the loaded teacher is ``self.model``
        # The student always reads the policy's own tokens (no tokenizer of its own: the same-tokenizer path).
        self.student_batcher = JudgeBatcher(self.__name__, None, None, self.batch_size, self.max_batch_tokens)
        self._trainer_model: Any = None

    def bind_trainer(self, trainer: Any) -> None:
        """Called by the token trainers at construction: the default student is ``trainer``'s policy."""
        self._trainer_model = trainer.accelerator.unwrap_model(trainer.model)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_trainer_model"] = None  # the trainer's policy is not part of the reward function
        return state

    def _student_model(self) -> Any:
        model = self.student if self.student is not None else self._trainer_model
        if model is None:
            raise ValueError(
                f"{self.__name__}: subtract_student=True needs the student: pass student=<model>, or give this reward "
                "to TokenGRPOTrainer/TokenRLOOTrainer, which bind their policy."
            )
        return model

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        policy_tokenizer = self._policy_tokenizer(processing_class, completion_ids)
        samples, judge = self.batcher.prepare(prompts, completion_ids, policy_tokenizer)
        teacher_logps, _ = completion_logprobs(self.model, self.batcher, samples, self._pad_id(judge))
        rewards = []
        for sample, values, ids in zip(samples, teacher_logps, completion_ids):
            if self.clip_min is not None:
                values = values.clamp(min=self.clip_min)
            rewards.append(torch.tensor(to_policy_tokens(sample, values, self.placement, len(ids))))
        if self.subtract_student:
            student_samples, _ = self.student_batcher.prepare(prompts, completion_ids, policy_tokenizer)
            student_logps, _ = completion_logprobs(
                self._student_model(), self.student_batcher, student_samples, self._pad_id(policy_tokenizer)
            )
            rewards = [r - torch.nan_to_num(s, nan=0.0) for r, s in zip(rewards, student_logps)]
        return [r.tolist() for r in rewards]
