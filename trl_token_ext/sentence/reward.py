"""A sentence classifier (e.g. sentiment) as a reward: one score per completion, or sentence-placed token rewards.

``SentenceClassifierReward`` splits each completion into sentences, classifies every sentence of the whole batch in
batched, length-sorted forward passes, and either

* returns one float per completion (the ``aggregate`` of its sentence scores) when called like a TRL reward
  function, so it works in a stock ``GRPOTrainer``/``RLOOTrainer``; or
* returns per-token rewards (``placement``) when called as a token reward function (``TokenGRPOTrainer`` passes
  ``processing_class``, the policy tokenizer used to decode ``completion_ids``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trl_token_ext.alignment import spread_span_scores
from trl_token_ext.choices import (
    PLACEMENTS,
    SCORE_KINDS,
    Placement,
    ScoreKind,
    check_choice,
    label_scores,
    resolve_label,
)
from trl_token_ext.models import ScorerModelArgs, load_scorer_model
from trl_token_ext.sentence.split import align_sentences
from trl_token_ext.text import completion_text, split_sentences

AGGREGATES = ("mean", "min", "last")
CALL_LEVELS = ("auto", "sequence", "token")  # what a call returns


class SentenceClassifierReward:
    """Score the sentences of completions with an ``AutoModelForSequenceClassification``.

    Args:
        model: a Hub id or a folder (a full model, or a PEFT LoRA adapter folder with ``adapter_config.json``),
            or an already loaded sequence-classification model (then pass ``tokenizer`` too, unless the model's
            ``name_or_path`` has one).
        label: the target label, by name from ``config.id2label`` (case-insensitive if unambiguous) or by index;
            optional for a one-logit model.
        output: the score of a sentence (`trl_token_ext.choices.ScoreKind`): ``"prob"`` (softmax, sigmoid for one
            logit), ``"log_prob"`` or ``"logit"``.
        aggregate: sequence-level reward of a completion from its sentence scores: ``"mean"``, ``"min"`` or
            ``"last"``.
        placement: how a sentence's score reaches its tokens at token level (`trl_token_ext.choices.Placement`):
            ``"last"`` puts it on the sentence's last token (Fine-Grained RLHF), ``"even"`` divides it equally among
            its tokens, ``"sum"`` gives each token the full score, ...
        potential: score prefixes instead of sentences and place Φ_k − Φ_{k−1}, where Φ_k scores the completion's
            prefix up to the end of sentence k (Φ_0 = 0), so the rewards telescope to the score of the whole
            completion (potential-based shaping, γ = 1).
        level: ``"auto"`` (token-level when called with a ``processing_class``, as ``TokenGRPOTrainer`` does, else
            sequence-level), ``"sequence"`` or ``"token"``.
        tokenizer: the classifier's tokenizer (default: loaded from ``model``).
        policy_tokenizer: tokenizer decoding ``completion_ids`` at token level when no ``processing_class`` is passed.
        batch_size: sentences per forward pass. max_length: classifier tokens per sentence (longer ones are
            truncated, with one warning); default: the tokenizer's / model's maximum.
        model_init_kwargs: how the classifier loads and where it runs (`trl_token_ext.models.ScorerModelArgs` or a
            dict of its fields: ``device``, ``dtype``, ``load_in_4bit``, ``quantization_config``, ``model_kwargs``,
            ...), as for every model-backed scorer; results are always CPU floats.
        language: pySBD language for sentence splitting.
        empty_reward: the reward of a completion with no sentence (empty or whitespace-only): a float (default 0.0;
            at token level it sits on the last token) or None (TRL treats None as "not scored").
        name: ``__name__`` used in logs (default ``sentence_<label>``).
    """

    def __init__(
        self,
        model: Any,
        label: str | int | None = None,
        output: ScoreKind = "prob",
        aggregate: str = "mean",
        placement: Placement = "last",
        potential: bool = False,
        level: str = "auto",
        tokenizer: Any = None,
        policy_tokenizer: Any = None,
        batch_size: int = 32,
        max_length: int | None = None,
        model_init_kwargs: ScorerModelArgs | Mapping[str, Any] | None = None,
        language: str = "en",
        empty_reward: float | None = 0.0,
        name: str | None = None,
    ):
        owner = "SentenceClassifierReward"
        self.output = check_choice(owner, "output", output, SCORE_KINDS)
        self.aggregate = check_choice(owner, "aggregate", aggregate, AGGREGATES)
        self.placement = check_choice(owner, "placement", placement, PLACEMENTS)
        self.potential = bool(potential)
        self.level = check_choice(owner, "level", level, CALL_LEVELS)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"SentenceClassifierReward: batch_size must be a positive int, got {batch_size!r}.")
        self.model_source = model
        self.label = label
        self.tokenizer_source = tokenizer
        self.policy_tokenizer = policy_tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.model_init_kwargs = ScorerModelArgs.coerce(model_init_kwargs, "SentenceClassifierReward")
        self.language = language
        self.empty_reward = empty_reward
        self._model = None
        self._tokenizer = None
        self._label_index: int | None = None
        self._warned_truncation = False
        self._load()
        self.__name__ = name or f"sentence_{self.label_name}".replace(" ", "_")

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        """Load model and tokenizer (if given by path) and resolve the target label."""
        if self._model is not None:
            return
        from transformers import AutoTokenizer

        self._model = load_scorer_model(
            self.model_source,
            self.model_init_kwargs,
            task="sequence-classification",
            merge_adapter=True,  # unless 4-bit: quantized weights can't absorb the adapter
            owner="SentenceClassifierReward",
        )
        self._tokenizer = self.tokenizer_source or AutoTokenizer.from_pretrained(self._tokenizer_source())
        if self.tokenizer_source is not None:
            self._tokenizer = self.tokenizer_source
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token or self._tokenizer.unk_token
        if getattr(self._model.config, "pad_token_id", None) is None:
            self._model.config.pad_token_id = self._tokenizer.pad_token_id
        self._model.eval()
        self._label_index = self._resolve_label()

    def _tokenizer_source(self) -> str:
        """Where the classifier's tokenizer is saved: the model folder/id, an adapter's base, or a model object's."""
        if not isinstance(self.model_source, (str, Path)):
            return self._model.config.name_or_path
        source = Path(self.model_source)
        adapter_config = source / "adapter_config.json"
        if adapter_config.is_file() and not (source / "tokenizer_config.json").is_file():
            return json.loads(adapter_config.read_text())["base_model_name_or_path"]
        return str(self.model_source)

    def _resolve_label(self) -> int:
        return resolve_label(self._model.config, self.label, "SentenceClassifierReward")

    @property
    def label_name(self) -> str:
        """Name of the target label (from ``id2label``)."""
        id2label = getattr(self._model.config, "id2label", None) or {}
        return str(id2label.get(self._label_index, id2label.get(str(self._label_index), self._label_index)))

    @property
    def classifier_device(self) -> torch.device:
        """The device the classifier's inputs are sent to."""
        init = self.model_init_kwargs
        if init.device is not None and not init.load_in_4bit and init.quantization_config is None:
            return torch.device(init.device)
        return next(self._model.parameters()).device

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.model_source, (str, Path)):  # reloaded on unpickling instead of copying the weights
            state["_model"] = None
            state["_tokenizer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    # ----------------------------------------------------------------- scoring
    def _max_length(self) -> int:
        if self.max_length is not None:
            return int(self.max_length)
        limits = [getattr(self._tokenizer, "model_max_length", None)]
        limits.append(getattr(self._model.config, "max_position_embeddings", None))
        limits = [int(v) for v in limits if isinstance(v, int) and 0 < v < 100_000]
        return min(limits) if limits else 512

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, C) logits → (N,) scores of the target label."""
        return label_scores(logits, self._label_index, self.output)

    def score_texts(self, texts: Sequence[str], truncation_side: str = "right") -> list[float]:
        """Classifier scores of ``texts`` (N,) → (N,) floats, in batched forward passes sorted by length.

        Identical texts are classified once. Texts longer than the classifier's maximum are truncated on
        ``truncation_side`` (one warning per instance).
        """
        self._load()
        if not texts:
            return []
        unique = list(dict.fromkeys(texts))
        tokenizer = self._tokenizer
        max_length = self._max_length()
        lengths = [len(ids) for ids in tokenizer(unique, add_special_tokens=False, verbose=False)["input_ids"]]
        special = tokenizer.num_special_tokens_to_add(pair=False)
        too_long = [i for i, n in enumerate(lengths) if n + special > max_length]
        if too_long and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.__name__}: {len(too_long)} sentence(s) exceed the classifier's max_length ({max_length} "
                f"tokens, longest {max(lengths[i] for i in too_long) + special}) and were truncated; this warning "
                "is shown once.",
                UserWarning,
                stacklevel=3,
            )
        order = sorted(range(len(unique)), key=lambda i: lengths[i], reverse=True)
        scores: dict[int, float] = {}
        device = self.classifier_device
        previous_side = tokenizer.truncation_side
        tokenizer.truncation_side = truncation_side
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                encoded = tokenizer(
                    [unique[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                encoded = {key: value.to(device) for key, value in encoded.items()}
                with torch.inference_mode():
                    logits = self._model(**encoded).logits
                for index, value in zip(chunk, self._transform(logits).cpu().tolist()):
                    scores[index] = float(value)
        finally:
            tokenizer.truncation_side = previous_side
        by_text = {text: scores[i] for i, text in enumerate(unique)}
        return [by_text[text] for text in texts]

    # ----------------------------------------------------------------- reward function API
    def _aggregate(self, values: list[float]) -> float | None:
        if not values:
            return self.empty_reward
        if self.aggregate == "mean":
            return sum(values) / len(values)
        if self.aggregate == "min":
            return min(values)
        return values[-1]

    def sequence_rewards(self, completions: Sequence[Any]) -> list[float | None]:
        """(B,) one reward per completion: the ``aggregate`` of its sentence scores (``empty_reward`` if none)."""
        texts = [completion_text(c) for c in completions]
        sentences = [[text[s:e] for s, e in split_sentences(text, self.language)] for text in texts]
        flat = self.score_texts([s for group in sentences for s in group])
        rewards, cursor = [], 0
        for group in sentences:
            rewards.append(self._aggregate(flat[cursor : cursor + len(group)]))
            cursor += len(group)
        return rewards

    def token_rewards(self, completion_ids: Sequence[Sequence[int]], tokenizer: Any) -> list[list[float] | None]:
        """(B,) per-token rewards, each of ``len(completion_ids[b])``, placed by ``placement``.

        Tokens outside every sentence (whitespace, special tokens) get 0. A completion with no sentence gets
        ``empty_reward`` on its last token (None if ``empty_reward`` is None).
        """
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a multimodal processor wraps its tokenizer
        alignments = [align_sentences(tokenizer, ids, self.language) for ids in completion_ids]
        if self.potential:
            texts = [a.text[a.sentence_spans[0][0] : end] for a in alignments for _, end in a.sentence_spans]
            flat = self.score_texts(texts, truncation_side="left")
        else:
            flat = self.score_texts([sentence for a in alignments for sentence in a.sentences])
        rewards: list[list[float] | None] = []
        cursor = 0
        for ids, alignment in zip(completion_ids, alignments):
            count = len(alignment.sentence_spans)
            scores, cursor = flat[cursor : cursor + count], cursor + count
            if count == 0:
                values = [0.0] * len(ids)
                if self.empty_reward is None:
                    rewards.append(None)
                    continue
                if values:
                    values[-1] = float(self.empty_reward)
                rewards.append(values)
                continue
            if self.potential:  # Φ_k − Φ_{k−1}, Φ_0 = 0
                scores = [score - previous for score, previous in zip(scores, [0.0] + scores[:-1])]
            rewards.append(spread_span_scores(alignment.token_spans, alignment.sentence_spans, scores, self.placement))
        return rewards

    def __call__(
        self,
        prompts: list | None = None,
        completions: list | None = None,
        completion_ids: list | None = None,
        **kwargs,
    ) -> list:
        """TRL reward-function signature: (B,) floats (sequence level) or (B,) per-token lists (token level)."""
        processing_class = kwargs.get("processing_class")
        token_level = self.level == "token" or (self.level == "auto" and processing_class is not None)
        if not token_level:
            if completions is None:
                raise ValueError(f"{self.__name__}: sequence-level scoring needs `completions`.")
            return self.sequence_rewards(completions)
        tokenizer = processing_class if processing_class is not None else self.policy_tokenizer
        if tokenizer is None:
            raise ValueError(
                f"{self.__name__}: token-level scoring needs the policy tokenizer: pass processing_class= (as "
                "TokenGRPOTrainer does) or policy_tokenizer= at construction."
            )
        if completion_ids is None:
            raise ValueError(f"{self.__name__}: token-level scoring needs `completion_ids`.")
        return self.token_rewards(completion_ids, tokenizer)

    def __repr__(self) -> str:
        source = self.model_source if isinstance(self.model_source, (str, Path)) else type(self.model_source).__name__
        return (
            f"SentenceClassifierReward(model={source!r}, label={self.label_name!r}, output={self.output!r}, "
            f"aggregate={self.aggregate!r}, placement={self.placement!r}, potential={self.potential}, "
            f"level={self.level!r})"
        )
