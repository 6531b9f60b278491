"""Quality scorers Q(s_t, a_t): judge LM log-probability, implicit PRM, token classifier, lexicon."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import torch

from trl_token_ext.alignment import spread_span_scores
from trl_token_ext.choices import SCORE_KINDS, Placement, ScoreKind, check_choice, label_scores
from trl_token_ext.models import has_adapter, load_scorer_model
from trl_token_ext.scorers._common import (
    decode_with_spans,
    eval_mode,
    load_tokenizer,
    model_device,
    same_tokenizer,
)
from trl_token_ext.scorers._lm import JudgeBatcher, completion_logprobs, implicit_rewards, to_policy_tokens
from trl_token_ext.scorers._model import ModelScorer

CENTER_MODES = (None, "completion", "entropy")


@dataclass(eq=False, repr=False)
class _CausalLMScorer(ModelScorer):
    """Shared setup of scorers that run a causal LM over prompt + completion (``max_batch_tokens``: the cap on
    batch_size × padded length of a forward pass)."""

    _: KW_ONLY
    max_batch_tokens: int = 16384

    def _load(self) -> None:
        self._setup_lm(self.model, self.tokenizer)

    def _setup_lm(self, model: Any, tokenizer: Any) -> None:
        """Load ``model`` (id, folder or object) and its tokenizer; the batcher with the resolved ``max_length``."""
        self.model = load_scorer_model(model, self.model_init_kwargs, owner=self.__name__)
        self.tokenizer = load_tokenizer(tokenizer, model)
        if self.max_length is None:
            self.max_length = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        self.batcher = JudgeBatcher(
            self.__name__, self.tokenizer, self.max_length, self.batch_size, self.max_batch_tokens
        )

    def _policy_tokenizer(self, processing_class: Any, completion_ids: list[list[int]]) -> Any:
        """The policy tokenizer; without one, the judge's own (then completion ids must be judge ids: checked)."""
        if processing_class is None and self.tokenizer is not None:
            vocab = len(self.tokenizer)
            for index, ids in enumerate(completion_ids):
                outside = [t for t in ids if not 0 <= t < vocab]
                if outside:
                    raise ValueError(
                        f"{self.__name__}: completion_ids of sample {index} hold token id {outside[0]}, outside the "
                        f"judge tokenizer's {vocab} ids; without processing_class they are read as judge ids. Pass "
                        "processing_class=<the policy tokenizer> (TokenGRPOTrainer does) to decode and re-tokenize."
                    )
            return self.tokenizer
        return self.require_tokenizer(processing_class)

    def _pad_id(self, judge_tokenizer) -> int:
        pad = judge_tokenizer.pad_token_id
        return pad if pad is not None else (judge_tokenizer.eos_token_id or 0)


@dataclass(eq=False, repr=False)
class LogProbQuality(_CausalLMScorer):
    """Q(s_t, a_t) = log p_judge(a_t | prompt, a_<t): how likely a reference/judge LM finds each generated token.

    Args:
        model: a causal LM id/path (loaded with ``AutoModelForCausalLM.from_pretrained``) or a model object.
        tokenizer: the judge tokenizer (id/path/object); default: the one saved with ``model`` when it is an id/path,
            else the policy's. When it maps tokens like the policy's, completion ids are scored as they are;
            otherwise the decoded text is re-tokenized and aligned by characters: ``placement="split"``
            (default) divides each judge token's score over the policy tokens sharing its characters, in proportion
            to the shared characters (totals conserved); "sum" / "mean" give each policy token the sum / mean of the
            judge tokens overlapping it ("even", "last": `trl_token_ext.choices.Placement`).
        clip_min, clip_max: clamp each judge token's log-prob (e.g. ``clip_min=-10``).
        center: None; ``"completion"`` subtracts the completion's mean score; ``"entropy"`` adds the judge's
            predictive entropy, i.e. log p(a_t) − E_{a~p}[log p(a)] (surprise relative to the expected surprise).
        max_length: judge context (default ``config.max_position_embeddings``); longer inputs are cut from the left.
        batch_size, max_batch_tokens: forward-pass batching.
        model_init_kwargs: how `trl_token_ext.models.load_scorer_model` (the loader of every model-backed scorer)
            loads ``model`` given by id or folder: a `trl_token_ext.models.ScorerModelArgs` or a dict of its fields
            (``dtype``, ``device``, ``quantization_config``, ``load_in_4bit``, ``trust_remote_code``,
            ``model_kwargs``); default float32 on CUDA when available.
        name: ``__name__`` in the logs. The keyword arguments shared by every model-backed scorer are
            `trl_token_ext.scorers._model.ModelScorer`'s.
    """

    default_name = "logprob_quality"

    model: Any
    tokenizer: Any = None
    _: KW_ONLY
    clip_min: float | None = None
    clip_max: float | None = None
    center: str | None = None

    def _check(self) -> None:
        if self.center not in CENTER_MODES:
            raise ValueError(f"{self.__name__}: center must be one of {CENTER_MODES}, got {self.center!r}.")

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        samples, judge = self.batcher.prepare(
            prompts, completion_ids, self._policy_tokenizer(processing_class, completion_ids)
        )
        logps, entropies = completion_logprobs(
            self.model, self.batcher, samples, self._pad_id(judge), with_entropy=self.center == "entropy"
        )
        results = []
        for index, (sample, values) in enumerate(zip(samples, logps)):
            if self.clip_min is not None or self.clip_max is not None:
                values = values.clamp(min=self.clip_min, max=self.clip_max)
            if self.center == "entropy":
                values = values + entropies[index]
            elif self.center == "completion":
                scored = values[~values.isnan()]
                if scored.numel():
                    values = values - scored.mean()
            results.append(to_policy_tokens(sample, values, self.placement, len(completion_ids[index])))
        return results


@dataclass(eq=False, repr=False)
class ImplicitPRMQuality(_CausalLMScorer):
    """Implicit process reward (PRIME): r_t = β·(log π_φ(a_t|s_t) − log π_ref(a_t|s_t)).

    When ``model`` carries a PEFT adapter (a ``PeftModel``, or an adapter folder loaded by id/path) and ``ref_model``
    is None, π_ref is the same model with its adapter disabled, so only one base model is in memory. Alignment to a
    policy with another tokenizer works as in :class:`LogProbQuality` (``placement`` of overlapping PRM tokens).
    ``model_init_kwargs`` is LogProbQuality's; ``ref_model`` loads the same way, unquantized, on the PRM's device.
    """

    default_name = "implicit_prm_quality"

    model: Any
    ref_model: Any = None
    beta: float = 0.05
    tokenizer: Any = None

    def _check(self) -> None:
        self.beta = float(self.beta)

    def _load(self) -> None:
        super()._load()
        ref_model = self.ref_model
        if ref_model is None:
            if not has_adapter(self.model):
                raise ValueError(
                    f"{self.__name__}: ref_model is required unless model is a PEFT model (then the reference is the "
                    "same model with its adapter disabled)."
                )
            self.ref_model = None
        else:
            unquantized = self.model_init_kwargs.replace(
                device=model_device(self.model), quantization_config=None, load_in_4bit=False
            )
            self.ref_model = load_scorer_model(ref_model, unquantized, owner=self.__name__)

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        samples, judge = self.batcher.prepare(
            prompts, completion_ids, self._policy_tokenizer(processing_class, completion_ids)
        )
        lengths = [len(ids) for ids in completion_ids]
        return implicit_rewards(
            self.model, self.ref_model, self.batcher, samples, self._pad_id(judge), self.beta, self.placement, lengths
        )


@dataclass(eq=False, repr=False)
class TokenClassifierQuality(ModelScorer):
    """Q(s_t, a_t) = score of label ``label`` from any ``AutoModelForTokenClassification`` on the completion text.

    Classifier tokens are aligned to the policy's by character offsets (``placement``: "mean" / "sum" of the
    overlapping classifier tokens, "split" by shared characters, ...). ``output`` (`trl_token_ext.choices.ScoreKind`):
    "prob" (softmax probability; sigmoid for a one-logit model), "log_prob" or "logit" of the label. Loading
    arguments as in :class:`LogProbQuality`.
    """

    default_name = "token_classifier_quality"

    model: Any
    label: str
    tokenizer: Any = None
    _: KW_ONLY
    output: ScoreKind = "prob"
    placement: Placement = "mean"

    def _check(self) -> None:
        self.output = check_choice(self.__name__, "output", self.output, SCORE_KINDS)

    def _load(self) -> None:
        model, label = self.model, self.label
        self.model = load_scorer_model(model, self.model_init_kwargs, task="token-classification", owner=self.__name__)
        self.tokenizer = load_tokenizer(self.tokenizer, model)
        id2label = {int(k): v for k, v in getattr(self.model.config, "id2label", {}).items()}
        matches = [i for i, name_ in id2label.items() if name_ == label]
        if not matches:
            raise ValueError(
                f"{self.__name__}: unknown label {label!r}; the classifier's labels (id2label) are "
                f"{[id2label[i] for i in sorted(id2label)]}."
            )
        self.label_id = matches[0]
        self.max_length = self.max_length or getattr(self.model.config, "max_position_embeddings", None)
        self._warned_truncation = False

    @torch.no_grad()
    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        policy = self.require_tokenizer(processing_class)
        tokenizer = self.tokenizer if self.tokenizer is not None else policy
        same = same_tokenizer(tokenizer, policy)
        if not same and not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"{self.__name__}: the classifier tokenizer must be a fast tokenizer (character offsets).")
        device = model_device(self.model)
        results: list[list[float] | None] = []
        for begin in range(0, len(completion_ids), self.batch_size):
            chunk = completion_ids[begin : begin + self.batch_size]
            decoded = [decode_with_spans(policy, ids) for ids in chunk]
            if same:
                rows, offsets = [list(ids) for ids in chunk], None
            else:
                encoded = tokenizer([text for text, _ in decoded], return_offsets_mapping=True)
                rows, offsets = encoded["input_ids"], encoded["offset_mapping"]
            rows = [self._truncate(row) for row in rows]
            width = max((len(row) for row in rows), default=0)
            if width == 0:
                results.extend([[0.0] * len(ids) for ids in chunk])
                continue
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for i, row in enumerate(rows):
                input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                attention[i, : len(row)] = 1
            with eval_mode(self.model):
                logits = self.model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            for i, ids in enumerate(chunk):
                values = label_scores(logits[i, : len(rows[i])], self.label_id, self.output).cpu()
                if same:
                    results.append(values.tolist() + [0.0] * (len(ids) - len(rows[i])))
                else:
                    spans = [tuple(s) for s in offsets[i][: len(rows[i])]]
                    _, policy_spans = decoded[i]
                    results.append(spread_span_scores(policy_spans, spans, values.tolist(), self.placement))
        return results

    def _truncate(self, row: list[int]) -> list[int]:
        if self.max_length is None or len(row) <= self.max_length:
            return row
        if not self._warned_truncation:
            self._warned_truncation = True
            import warnings

            warnings.warn(
                f"{self.__name__}: a completion has {len(row)} classifier tokens, more than max_length "
                f"{self.max_length}; tokens past it get 0. This warning is shown once.",
                stacklevel=3,
            )
        return row[: self.max_length]
