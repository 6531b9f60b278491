"""Batched per-token log-probabilities of a causal LM on prompt + completion, and alignment to the policy's tokens."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trl_token_ext.alignment import Span, spread_span_scores
from trl_token_ext.scorers._common import decode_with_spans, eval_mode, same_tokenizer
from trl_token_ext.shared_base import adapters_disabled
from trl_token_ext.text import is_conversational, prompt_text


@dataclass
class JudgeSample:
    """One completion as the judge sees it.

    Attributes:
        ids: judge token ids of prompt + completion (after left truncation).
        start: index in ``ids`` of the first completion token.
        dropped: completion tokens cut away by left truncation (they get no score).
        num_completion: judge completion tokens before truncation.
        judge_spans: character spans of the judge completion tokens, or None on the same-tokenizer path.
        policy_spans: character spans of the policy completion tokens (mismatch path only).
    """

    ids: list[int]
    start: int
    dropped: int
    num_completion: int
    judge_spans: list[Span] | None = None
    policy_spans: list[Span] | None = None


@dataclass(eq=False)
class JudgeBatcher:
    """Builds judge inputs and runs batched forward passes (right padding, sorted by length, token budget).

    Args:
        owner: the scorer's name, used in warnings and errors.
        tokenizer: the judge tokenizer, or None to use the policy's (same-tokenizer fast path).
        max_length: judge context; longer prompt + completion is truncated from the left (one warning).
        batch_size: completions per forward pass. max_batch_tokens: cap on batch_size × padded length.
    """

    owner: str
    tokenizer: Any
    max_length: int | None
    batch_size: int
    max_batch_tokens: int
    _warned_truncation: bool = field(default=False, init=False, repr=False)
    _same_for: Any = field(default=None, init=False, repr=False)
    _same: bool = field(default=True, init=False, repr=False)

    def prepare(self, prompts: Sequence[Any], completion_ids: Sequence[Sequence[int]], policy_tokenizer: Any):
        judge = self.tokenizer if self.tokenizer is not None else policy_tokenizer
        if self._same_for is not policy_tokenizer:  # comparing two vocabularies costs ~10 ms at 50k tokens: once
            self._same_for, self._same = policy_tokenizer, same_tokenizer(judge, policy_tokenizer)
        same = self._same
        if not same and not getattr(judge, "is_fast", False):
            raise TypeError(
                f"{self.owner}: the judge tokenizer differs from the policy's and is not a fast tokenizer; character "
                "offsets (return_offsets_mapping) are needed to align the two."
            )
        samples = []
        for prompt, ids in zip(prompts, completion_ids):
            # A chat template writes its own BOS (if any): don't let the tokenizer add another.
            templated = is_conversational(prompt) and bool(getattr(judge, "chat_template", None))
            text = prompt_text(prompt, judge)
            prefix = judge(text, add_special_tokens=not templated)["input_ids"] if text else []
            if not prefix and judge.bos_token_id is not None:
                prefix = [judge.bos_token_id]
            if same:
                sample = JudgeSample(list(prefix) + list(ids), start=len(prefix), dropped=0, num_completion=len(ids))
            else:
                text, policy_spans = decode_with_spans(policy_tokenizer, ids)
                encoded = judge(text, add_special_tokens=False, return_offsets_mapping=True)
                judge_ids = list(encoded["input_ids"])
                sample = JudgeSample(
                    ids=list(prefix) + judge_ids,
                    start=len(prefix),
                    dropped=0,
                    num_completion=len(judge_ids),
                    judge_spans=[tuple(span) for span in encoded["offset_mapping"]],
                    policy_spans=policy_spans,
                )
            self._truncate(sample)
            samples.append(sample)
        return samples, judge

    def _truncate(self, sample: JudgeSample) -> None:
        if self.max_length is None or len(sample.ids) <= self.max_length:
            return
        cut = len(sample.ids) - self.max_length
        sample.ids = sample.ids[cut:]
        sample.dropped = max(cut - sample.start, 0)
        sample.start = max(sample.start - cut, 0)
        if not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.owner}: prompt + completion ({cut + self.max_length} judge tokens) exceeds the judge's "
                f"max length {self.max_length}; truncating from the left (earliest tokens dropped; completion tokens "
                "with no context left get 0). This warning is shown once.",
                stacklevel=4,
            )

    def batches(self, samples: Sequence[JudgeSample]):
        """Yield lists of sample indices, longest first, within ``batch_size`` and ``max_batch_tokens``."""
        order = sorted(range(len(samples)), key=lambda i: -len(samples[i].ids))
        batch: list[int] = []
        for index in order:
            width = len(samples[batch[0]].ids) if batch else len(samples[index].ids)
            if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * width > self.max_batch_tokens):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch


def _accepts_logits_to_keep(model: Any) -> bool:
    """Whether the (base) model's forward takes ``logits_to_keep`` (transformers causal LMs do)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


LOGPROB_CHUNK = 1024  # scored positions per float32 log-softmax in `selected_logprobs`


def selected_logprobs(
    logits: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    targets: torch.Tensor,
    with_entropy: bool = False,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(targets[n]) under logits[rows[n], positions[n]] and, with ``with_entropy``, the entropies, (N,) float32
    on CPU each; logits (B, L, V). ``chunk`` positions at a time: the peak is the logits plus a few (chunk, V) float32
    buffers, not 2–3 more (N, V) copies (gathered rows, float32 copy, log-softmax: 8–10 bytes per scored token and
    vocabulary entry at once). ``chunk`` defaults to ``LOGPROB_CHUNK``."""
    chunk = chunk or LOGPROB_CHUNK
    logps, entropies = [], []
    for start in range(0, len(rows), chunk):
        stop = start + chunk
        picked = logits[rows[start:stop].to(logits.device), positions[start:stop].to(logits.device)]
        log_p = picked.float().log_softmax(-1)
        logps.append(log_p.gather(-1, targets[start:stop, None].to(log_p.device)).squeeze(-1).cpu())
        if with_entropy:
            entropies.append(-(log_p.exp() * log_p).sum(-1).cpu())
    return torch.cat(logps), (torch.cat(entropies) if with_entropy else None)


class _TargetLogProb(torch.autograd.Function):
    """log_softmax(logits)[..., target] with its gradient, ``chunk`` positions at a time (see `target_logprobs`)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
        for row, start in _blocks(logits, chunk):  # views of the (B, L, V) logits: no copy of a strided slice
            block = logits[row, start : start + chunk].float()
            picked = block.gather(-1, targets[row, start : start + chunk, None]).squeeze(-1)
            out[row, start : start + chunk] = picked - block.logsumexp(-1)
        ctx.save_for_backward(logits, targets)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets = ctx.saved_tensors
        chunk = ctx.chunk
        grad_logits = torch.empty_like(logits, memory_format=torch.contiguous_format)
        for row, start in _blocks(logits, chunk):
            g = grad[row, start : start + chunk, None].float()
            block = logits[row, start : start + chunk].float().softmax(-1).mul_(-g)  # ∂ log p_y/∂ z_v = 1[v=y] − p_v
            block.scatter_add_(-1, targets[row, start : start + chunk, None], g)
            grad_logits[row, start : start + chunk] = block
        return grad_logits, None, None


def _blocks(logits: torch.Tensor, chunk: int):
    """(row, start) of every ``chunk``-position block of (B, L, V) logits."""
    return ((row, start) for row in range(logits.size(0)) for start in range(0, logits.size(1), chunk))


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """log_softmax(logits, -1) gathered at ``targets``, float32, differentiable; logits (B, L, V), targets (B, L).

    Same values and gradient as ``logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]``, computed
    ``chunk`` positions at a time (default ``LOGPROB_CHUNK``), saving only the logits for the backward pass: no
    float32 (B, L, V) log-softmax is built or kept, so a PRM update on long completions needs about the logits and
    their gradient. Not TRL's ``selective_log_softmax``: without its Triton kernel (CPU) it took 2.8x the memory and
    3-4x the time at 16k tokens (one (L, V) buffer per row), and it rounds bf16 logits' log-softmax in bf16 (max error
    0.05 vs 0.008 here), which an implicit PRM's small log-ratios cannot afford.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:-1]:
        raise ValueError(f"target_logprobs: logits (B, L, V) and targets (B, L), got {logits.shape} / {targets.shape}")
    return _TargetLogProb.apply(logits, targets, chunk or LOGPROB_CHUNK)


@torch.no_grad()
def completion_logprobs(
    model: Any,
    batcher: JudgeBatcher,
    samples: Sequence[JudgeSample],
    pad_id: int,
    with_entropy: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """log p(x_j | x_<j) for each judge completion token, batched.

    Returns per sample a (num_completion,) float32 CPU tensor (NaN where a token has no context: dropped by
    truncation, or first in an unprompted sequence without BOS), and the same-shaped entropies of the predictive
    distributions when ``with_entropy``.
    """
    device = next(model.parameters()).device
    logps: list[torch.Tensor | None] = [None] * len(samples)
    entropies: list[torch.Tensor | None] = [None] * len(samples)
    for batch in batcher.batches(samples):
        width = max(len(samples[i].ids) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        for row, index in enumerate(batch):
            ids = samples[index].ids
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        # Right padding needs no attention mask in a causal LM: a real token never attends to the pads after it, and
        # positions are 0..len-1 as without padding. Without a mask, attention takes its fused causal kernel.
        logits = None
        if width >= 2:
            # Logits only from the earliest position that predicts a completion token (skips most prompt positions).
            keep = width - min(max(samples[i].start, 1) for i in batch) + 1
            kwargs = {"logits_to_keep": keep} if _accepts_logits_to_keep(model) else {}
            with eval_mode(model):
                logits = model(input_ids=input_ids.to(device), **kwargs).logits
        skipped = width - logits.size(1) if logits is not None else 0  # positions before the kept logits
        # Gather every scored position of the batch, then one log-softmax over those rows only.
        rows, positions, owners = [], [], []
        for row, index in enumerate(batch):
            sample = samples[index]
            first = max(sample.start, 1)  # the completion token at `first` is predicted at `first - 1`
            span = range(first, len(sample.ids))
            rows.extend([row] * len(span))
            positions.extend(span)
            owners.append((index, sample.dropped + (first - sample.start), len(span)))
        selected_logp = selected_entropy = None
        if logits is not None and positions:
            row_index, position_index = torch.tensor(rows), torch.tensor(positions)
            selected_logp, selected_entropy = selected_logprobs(
                logits, row_index, position_index - 1 - skipped, input_ids[row_index, position_index], with_entropy
            )
        cursor = 0
        for index, offset, count in owners:
            values = torch.full((samples[index].num_completion,), float("nan"))
            entropy = torch.full((samples[index].num_completion,), float("nan"))
            if count and selected_logp is not None:
                values[offset:] = selected_logp[cursor : cursor + count]
                if with_entropy:
                    entropy[offset:] = selected_entropy[cursor : cursor + count]
            cursor += count
            logps[index] = values
            entropies[index] = entropy
    return logps, (entropies if with_entropy else None)


def to_policy_tokens(
    sample: JudgeSample, judge_values: torch.Tensor, placement: str, num_policy_tokens: int
) -> list[float]:
    """Judge per-token values (NaN = unscored, counted as 0) → per-policy-token values (T,).

    Same tokenizer: identity. Otherwise, with ``placement="split"`` each judge token's value is divided over the policy
    tokens overlapping it in proportion to the shared characters (the completion's total is conserved); with "sum" /
    "mean" each policy token gets the sum / mean of the judge tokens overlapping its characters (a judge token that
    spans several policy tokens then counts once for each).
    """
    values = torch.nan_to_num(judge_values, nan=0.0)
    if sample.judge_spans is None:
        return values.tolist()
    if not sample.judge_spans:
        return [0.0] * num_policy_tokens
    return spread_span_scores(sample.policy_spans, sample.judge_spans, values.tolist(), placement)


def implicit_rewards(
    model: Any,
    ref_model: Any,
    batcher: JudgeBatcher,
    samples: Sequence[JudgeSample],
    pad_id: int,
    beta: float,
    placement: str,
    lengths: Sequence[int],
) -> list[list[float]]:
    """The implicit process reward (PRIME) r_t = β·(log π_φ(a_t|s_t) − log π_ref(a_t|s_t)) on each policy token.

    ``ref_model`` None: π_ref is ``model`` with its adapter disabled. Returns per sample a list of ``lengths[i]``
    floats (judge tokens moved to the policy's by ``placement``, `to_policy_tokens`); no gradients.
    """
    logps, _ = completion_logprobs(model, batcher, samples, pad_id)
    if ref_model is None:
        with adapters_disabled(model):
            ref_logps, _ = completion_logprobs(model, batcher, samples, pad_id)
    else:
        ref_logps, _ = completion_logprobs(ref_model, batcher, samples, pad_id)
    return [
        to_policy_tokens(sample, beta * (lp - ref), placement, length)
        for sample, lp, ref, length in zip(samples, logps, ref_logps, lengths)
    ]
