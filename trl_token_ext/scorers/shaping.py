"""Potential-based reward shaping (Ng, Harada & Russell 1999) over completion prefixes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trl_token_ext.scorers._common import TokenScorer, decode_with_spans

_NOT_FORWARDED = ("log_extra", "log_metric")


class PotentialShaping(TokenScorer):
    """F_t = γ·Φ(prefix_{≤t}) − Φ(prefix_{<t}) for every completion token t = 0..T−1.

    Φ is any prefix score, called like a TRL reward function on all prefixes of the batch at once:
    ``potential_fn(prompts=[...], completions=[prefix texts], completion_ids=[prefix ids], **columns)`` → one float
    per prefix, where prefix_{<0} is the empty completion and each dataset column is repeated for the prefixes of its
    completion. A stock TRL reward function (e.g. :class:`MetricReward`, a classifier probability) is thus a potential.
    The shaped return telescopes, Σ_t γ^t F_t = γ^T Φ(end) − Φ(start), so the optimal policy is unchanged.

    Prefix texts come from the policy tokenizer's character spans; conversational completions get their prefixes as
    ``[{"role": "assistant", "content": prefix}]``. Each completion costs T+1 potential evaluations (deduplicated
    per completion when consecutive prefixes decode to the same text, e.g. around special tokens).
    """

    default_name = "potential_shaping"

    def __init__(self, potential_fn: Callable[..., Any], gamma: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name)
        if not callable(potential_fn):
            raise TypeError(f"{self.__name__}: potential_fn must be callable, got {type(potential_fn).__name__}.")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"{self.__name__}: gamma must be in [0, 1], got {gamma}.")
        self.potential_fn, self.gamma = potential_fn, float(gamma)

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        policy = self.require_tokenizer(processing_class)
        count = len(completion_ids)
        columns = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == count}
        shared = {k: v for k, v in kwargs.items() if k not in columns and k not in _NOT_FORWARDED}
        call_prompts, call_texts, call_ids, owners = [], [], [], []
        call_columns: dict[str, list] = {k: [] for k in columns}
        # unique[b][t] = index into the potential calls of prefix_{<t} (t = 0..T).
        unique: list[list[int]] = []
        for b, ids in enumerate(completion_ids):
            text, spans = decode_with_spans(policy, ids)
            ends = [0] + [end for _, end in spans]
            slots, last_end = [], None
            for t, end in enumerate(ends):
                if end != last_end:
                    prefix = text[:end]
                    conversational = isinstance(completions[b], list)
                    call_texts.append([{"role": "assistant", "content": prefix}] if conversational else prefix)
                    call_prompts.append(prompts[b])
                    call_ids.append(ids[:t])
                    owners.append(b)
                    for key in columns:
                        call_columns[key].append(columns[key][b])
                    last_end = end
                slots.append(len(call_texts) - 1)
            unique.append(slots)
        values = self.potential_fn(
            prompts=call_prompts,
            completions=call_texts,
            completion_ids=call_ids,
            processing_class=processing_class,
            **call_columns,
            **{k: v for k, v in shared.items() if k != "processing_class"},
        )
        values = list(values)
        if len(values) != len(call_texts):
            raise ValueError(
                f"{self.__name__}: potential_fn returned {len(values)} values for {len(call_texts)} prefixes."
            )
        results: list[list[float] | None] = []
        for slots in unique:
            phi = [values[i] for i in slots]
            if any(v is None for v in phi):
                results.append(None)
                continue
            phi = [float(v) for v in phi]
            results.append([self.gamma * phi[t + 1] - phi[t] for t in range(len(slots) - 1)])
        return results
