"""Step-level process reward models (PRMs) as token rewards: `StepPRMReward`.

A `StepReward` whose step scores come from a PRM: the completion is split into steps as `StepReward` does, the steps
of the whole batch are written in the PRM's own input format (`trl_token_ext.step_prm.inputs`: TRL's token
classification, Math-Shepherd's step tag, Qwen2.5-Math-PRM's separator token), scored in batched forward passes
sorted by length, and `StepReward` applies the form (raw / min / diff) and places each score on its step's policy
tokens. Each process scores its own completions; no collective is needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trl_token_ext.choices import Placement, resolve_label
from trl_token_ext.models import ScorerModelArgs, load_scorer_model
from trl_token_ext.scorers._common import eval_mode, get_column, load_tokenizer, model_device
from trl_token_ext.scorers._lm import JudgeBatcher, _accepts_logits_to_keep
from trl_token_ext.scorers.steps import StepReward
from trl_token_ext.step_prm.inputs import (
    BUILDERS,
    QWEN_PRM_SYSTEM_PROMPT,
    STEP_TAGS,
    PRMInput,
    StepEncodingError,
    label_token_ids,
)
from trl_token_ext.text import last_user_message, message_text

PRM_FORMATS = tuple(BUILDERS)
# The Auto class each format loads by id/path: a token classifier, a causal LM, or Qwen2.5-Math-PRM's own model class
# (``AutoModel`` with ``trust_remote_code=True``: ``Qwen2ForProcessRewardModel``, logits (B, L, 2) first).
FORMAT_TASKS = {
    "token_classification": "token-classification",
    "math_shepherd": "causal-lm",
    "qwen_prm": "feature-extraction",
}


class StepPRMReward(StepReward):
    """Token reward from a step-level PRM: one score per step, placed on the step's policy tokens.

    The score of a step is the PRM's probability that the step is correct, read where the PRM's format puts it:

    * ``format="token_classification"`` (TRL's ``PRMTrainer``; ``trl-token train-prm``): P(class ``correct_label``)
      of a token classifier at the last token of each step + ``step_tag`` (default ``"\\n"``);
    * ``format="math_shepherd"``: a causal LM's P(good) = softmax over the logits of the two ``label_tokens``
      (default ``("+", "-")``) at the last token of each ``step_tag`` (default ``" ки"``);
    * ``format="qwen_prm"``: P(class ``correct_label``) of a per-token 2-class head at each ``step_tag``
      (``"<extra_0>"``) in the PRM's chat template (``system_prompt``, the question, the steps).

    Args:
        model: the PRM: an id or folder (loaded with the format's Auto class through
            `trl_token_ext.models.load_scorer_model`: adapter folders too; Qwen2.5-Math-PRM needs
            ``model_init_kwargs={"trust_remote_code": True}``) or a model object (a `SharedBaseModel` too).
        format: one of ``PRM_FORMATS``.
        tokenizer: the PRM's tokenizer (default: the one saved with ``model``; else the policy's).
        separator, placement, form: how completions split into steps, how a step's score reaches its tokens, and
            raw / min / diff (see `StepReward`; default: lines, the step's last token, raw).
        step_tag: what the PRM's input puts after each step (default: the ``prm_step_separator`` a PRM trained by
            ``trl-token train-prm`` saved in its config, else per format, ``STEP_TAGS``).
        correct_label: the "correct" class (index or ``id2label`` name) of the class formats; default 1 (TRL's
            ``True``, Qwen's positive class).
        label_tokens: Math-Shepherd's good and bad tokens: two strings (their ids found as Math-Shepherd's code
            does) or two ids.
        system_prompt: the qwen_prm format's system message (None: none).
        question_column: dataset column holding the question the PRM sees; default: the prompt's last user message
            (the prompt itself when it is a string).
        max_length: PRM context (default ``config.max_position_embeddings``); longer inputs lose their earliest
            tokens; a completion whose first step tags are cut away is not scored (None).
        batch_size, max_batch_tokens: forward passes (completions sorted by length).
        task, model_init_kwargs: loading of an id or folder (`trl_token_ext.models.ScorerModelArgs` or a dict of
            its fields: dtype, device, 4-bit, trust_remote_code, ...; ``task`` overrides the format's Auto class, e.g.
            ``"token-classification"`` for a Qwen-style PRM saved as a token classifier).
    """

    default_name = "step_prm"

    def __init__(
        self,
        model: Any,
        format: str = "token_classification",
        tokenizer: Any = None,
        *,
        separator: str = "\n",
        placement: Placement = "last",
        form: str = "raw",
        step_tag: str | None = None,
        correct_label: int | str = 1,
        label_tokens: Sequence[str] | Sequence[int] = ("+", "-"),
        system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT,
        question_column: str | None = None,
        max_length: int | None = None,
        batch_size: int = 8,
        max_batch_tokens: int = 16384,
        task: str | None = None,
        model_init_kwargs: ScorerModelArgs | Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(separator=separator, placement=placement, form=form, name=name)
        if format not in BUILDERS:
            raise ValueError(f"{self.__name__}: format must be one of {PRM_FORMATS}, got {format!r}.")
        if batch_size < 1:
            raise ValueError(f"{self.__name__}: batch_size must be >= 1, got {batch_size}.")
        if len(label_tokens) != 2:
            raise ValueError(f"{self.__name__}: label_tokens must be (good, bad), got {label_tokens!r}.")
        self.format = format
        self.system_prompt, self.question_column = system_prompt, question_column
        self.model = load_scorer_model(
            model,
            model_init_kwargs,
            task=task or FORMAT_TASKS[format],
            owner=self.__name__,
        )
        self.tokenizer = load_tokenizer(tokenizer, model)
        config = getattr(self.model, "config", None)
        if step_tag is None:  # a PRM trained by `trl-token train-prm` records its separator
            saved = getattr(config, "prm_step_separator", None) if format == "token_classification" else None
            step_tag = STEP_TAGS[format] if saved is None else saved
        self.step_tag = step_tag
        if format == "math_shepherd":
            self.class_index = None
            self.label_tokens = tuple(label_tokens)
        else:
            self.class_index = resolve_label(config, correct_label, self.__name__)
        if max_length is None:
            max_length = getattr(config, "max_position_embeddings", None)
        self.batcher = JudgeBatcher(self.__name__, None, max_length, batch_size, max_batch_tokens)
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ inputs
    def _questions(self, prompts: list, kwargs: dict[str, Any]) -> list[str]:
        if self.question_column is None:
            return [last_user_message(prompt) for prompt in prompts]
        return [message_text(q) for q in get_column(kwargs, self.question_column, self.__name__, len(prompts))]

    def build_input(self, tokenizer: Any, question: str, steps: Sequence[str]) -> PRMInput:
        """The PRM input of one completion (ids and the position of each step's score), before truncation."""
        extra = {"system_prompt": self.system_prompt} if self.format == "qwen_prm" else {}
        return BUILDERS[self.format](tokenizer, question, list(steps), self.step_tag, **extra)

    def _prepare(self, tokenizer: Any, index: int, question: str, steps: list[str]) -> PRMInput | None:
        try:
            sample = self.build_input(tokenizer, question, steps)
        except StepEncodingError as error:
            self._warn("encoding", f"{self.__name__}: sample {index} is not scored (None): {error}")
            return None
        except (TypeError, ValueError) as error:  # the tokenizer does not fit the format: no sample can be scored
            raise type(error)(f"{self.__name__} (format {self.format!r}): {error}") from error
        truncated, cut = sample.truncate_left(self.batcher.max_length)
        if len(truncated.positions) < len(steps):
            self._warn(
                "steps_cut",
                f"{self.__name__}: sample {index} has {len(sample.ids)} PRM tokens, more than max_length "
                f"{self.batcher.max_length}, and its first step tags would be cut: it is not scored (None).",
            )
            return None
        if cut:
            self._warn(
                "prompt_cut",
                f"{self.__name__}: a PRM input ({len(sample.ids)} tokens) exceeds max_length "
                f"{self.batcher.max_length}; its earliest {cut} tokens (the question first) are cut.",
            )
        return truncated

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message + " This warning is shown once.", stacklevel=4)

    # ------------------------------------------------------------------ scores
    def step_scores(self, prompts: list, steps: list[list[str]], kwargs: dict[str, Any]) -> list[list[float] | None]:
        """P(correct) of every step of every completion (see the class docstring), batched."""
        tokenizer = self.tokenizer if self.tokenizer is not None else kwargs["processing_class"]
        questions = self._questions(prompts, kwargs)
        samples = [
            self._prepare(tokenizer, index, question, texts) if texts else None
            for index, (question, texts) in enumerate(zip(questions, steps))
        ]
        scored = [i for i, sample in enumerate(samples) if sample is not None]
        results: list[list[float] | None] = [None if texts else [] for texts in steps]  # None: not scorable
        for index, scores in zip(scored, self._forward([samples[i] for i in scored], tokenizer)):
            results[index] = scores
        return results

    @torch.no_grad()
    def _forward(self, samples: list[PRMInput], tokenizer: Any) -> list[list[float]]:
        """Step scores of each sample, in batches of similar length (right padding, attention mask)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        good_bad = None
        if self.format == "math_shepherd":
            tokens = self.label_tokens
            good_bad = tokens if all(isinstance(t, int) for t in tokens) else label_token_ids(tokenizer, *tokens)
        device = model_device(self.model)
        results: list[list[float]] = [[] for _ in samples]
        for batch in self.batcher.batches(samples):
            width = max(len(samples[i].ids) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for row, index in enumerate(batch):
                ids = samples[index].ids
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention[row, : len(ids)] = 1
            kwargs: dict[str, Any] = {}
            skipped = 0
            if good_bad is not None and _accepts_logits_to_keep(self.model):  # no vocabulary logits for the prompt
                skipped = min(min(samples[i].positions) for i in batch)
                kwargs["logits_to_keep"] = width - skipped
            with eval_mode(self.model):
                output = self.model(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
            logits = output.logits if hasattr(output, "logits") else output[0]
            rows = torch.tensor([row for row, index in enumerate(batch) for _ in samples[index].positions])
            positions = torch.tensor([p - skipped for index in batch for p in samples[index].positions])
            picked = logits[rows.to(logits.device), positions.to(logits.device)].float()
            if good_bad is not None:
                probs = picked[:, list(good_bad)].softmax(-1)[:, 0]
            else:
                self._check_classes(logits)
                probs = picked.softmax(-1)[:, self.class_index]
            probs = probs.cpu().tolist()
            cursor = 0
            for index in batch:
                count = len(samples[index].positions)
                results[index] = probs[cursor : cursor + count]
                cursor += count
        return results

    def _check_classes(self, logits: torch.Tensor) -> None:
        expected = getattr(getattr(self.model, "config", None), "num_labels", None)
        if expected is not None and logits.size(-1) != expected:
            raise ValueError(
                f"{self.__name__}: format {self.format!r} reads per-token class logits (B, L, {expected}), but the "
                f"model returned (..., {logits.size(-1)}); is it a {self.format} PRM (a causal LM needs "
                "format='math_shepherd')?"
            )
