"""Calling token reward functions, validating what they return, padding to (B, K, T) and weighting.

A token reward function has the signature of a TRL reward function and returns one entry per completion: a
per-token sequence (list, tuple, 1-D tensor or array) as long as that completion's ids, or ``None`` when it does not
score that completion.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trl_token_ext.advantages import overflow_safe_scale

TokenRewardFunc = Callable[..., Sequence[Any]]
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def token_reward_func_name(func: Any) -> str:
    """The name used in logs (``token_rewards/<name>/mean``): ``__name__``, else the class name."""
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


def check_token_reward_funcs(funcs: Sequence[Any] | Any | None, weights: Sequence[float] | None) -> list[Any]:
    """Validate the trainer's ``token_reward_funcs`` and ``token_reward_weights`` at construction time.

    Returns the functions as a list (a single callable is accepted).
    """
    if funcs is None:
        funcs = []
    elif callable(funcs) and not isinstance(funcs, (list, tuple)):
        funcs = [funcs]
    funcs = list(funcs)
    for index, func in enumerate(funcs):
        if not callable(func):
            raise TypeError(
                f"token_reward_funcs[{index}] ({func!r}) is not callable; a token reward function is called like a "
                "TRL reward function and returns one per-token list per completion."
            )
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__):
            raise TypeError(
                f"token_reward_funcs[{index}] ({token_reward_func_name(func)}) is async; token reward functions must "
                "be synchronous."
            )
    if weights is not None and len(weights) != len(funcs):
        raise ValueError(
            f"token_reward_weights has {len(weights)} values but {len(funcs)} token reward functions were given "
            f"({[token_reward_func_name(f) for f in funcs]}); pass one weight per function."
        )
    return funcs


def validate_token_rewards(
    output: Any, func_name: str, completion_ids: Sequence[Sequence[int]]
) -> list[torch.Tensor | None]:
    """Check one function's output against the completions and convert each entry to a float32 1-D tensor.

    Raises:
        ValueError: naming the function and the sample index, for a wrong number of entries, a wrong type, a wrong
            length, or a non-finite value.
    """
    if isinstance(output, (str, bytes, dict)) or not hasattr(output, "__len__"):
        raise ValueError(
            f"Token reward function '{func_name}' returned {type(output).__name__}; expected a list with one "
            f"per-token list (or None) per completion ({len(completion_ids)} completions)."
        )
    if len(output) != len(completion_ids):
        raise ValueError(
            f"Token reward function '{func_name}' returned {len(output)} entries, but {len(completion_ids)} were "
            "expected (one per completion)."
        )
    validated: list[torch.Tensor | None] = []
    for index, (entry, ids) in enumerate(zip(output, completion_ids)):
        if entry is None:
            validated.append(None)
            continue
        if isinstance(entry, (str, bytes, dict)) or isinstance(entry, (int, float)) or not hasattr(entry, "__len__"):
            raise ValueError(
                f"Token reward function '{func_name}' returned {type(entry).__name__} for sample {index}; expected a "
                f"per-token list of {len(ids)} numbers, a 1-D tensor, or None."
            )
        try:
            values = torch.as_tensor(entry if isinstance(entry, torch.Tensor) else list(entry))
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"Token reward function '{func_name}' returned a non-numeric value for sample {index}: {error}"
            ) from error
        if (
            values.dtype == torch.bool
            or values.is_complex()
            or not (values.is_floating_point() or values.dtype in _INTEGER_DTYPES)
        ):
            raise ValueError(
                f"Token reward function '{func_name}' returned dtype {values.dtype} for sample {index}; token rewards "
                "must be real numbers (a float or integer dtype), not bool or complex: convert them with .float()."
            )
        if values.dim() != 1:
            raise ValueError(
                f"Token reward function '{func_name}' returned a {values.dim()}-D value of shape "
                f"{tuple(values.shape)} for sample {index}; expected a 1-D sequence of {len(ids)} numbers."
            )
        if values.numel() != len(ids):
            raise ValueError(
                f"Token reward function '{func_name}' returned {values.numel()} token rewards for sample {index}, "
                f"whose completion has {len(ids)} tokens."
            )
        values = values.detach().to(device="cpu", dtype=torch.float32)
        if not torch.isfinite(values).all():
            position = int((~torch.isfinite(values)).nonzero()[0])
            raise ValueError(
                f"Token reward function '{func_name}' returned a non-finite value ({values[position].item()}) for "
                f"sample {index} at token {position}; return None for a completion it does not score."
            )
        validated.append(values)
    return validated


@dataclass
class TokenRewardBatch:
    """Per-function token rewards of this process's completions.

    Attributes:
        rewards: (B, K, T) raw rewards, zero where a function gave None and past each completion's end.
        present: (B, K) True where function k scored completion b.
    """

    rewards: torch.Tensor
    present: torch.Tensor


def compute_token_rewards(
    funcs: Sequence[TokenRewardFunc],
    func_names: Sequence[str],
    prompts: list,
    completions: list,
    completion_ids: Sequence[Sequence[int]],
    reward_kwargs: dict[str, Any],
) -> TokenRewardBatch:
    """Call every token reward function with the outcome rewards' inputs, validate, and pad into a batch.

    T is the longest completion of this process.
    """
    batch = len(completion_ids)
    length = max((len(ids) for ids in completion_ids), default=0)
    rewards = torch.zeros(batch, len(funcs), length)
    present = torch.zeros(batch, len(funcs), dtype=torch.bool)
    for k, (func, name) in enumerate(zip(funcs, func_names)):
        output = func(prompts=prompts, completions=completions, completion_ids=completion_ids, **reward_kwargs)
        for b, values in enumerate(validate_token_rewards(output, name, completion_ids)):
            if values is not None:
                rewards[b, k, : values.numel()] = values
                present[b, k] = True
    return TokenRewardBatch(rewards=rewards, present=present)


def weighted_token_rewards(
    rewards: torch.Tensor, present: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """r_{b,t} = Σ_k w_k·g_k(b)_t over the functions that scored completion b.

    Args:
        rewards: (B, K, T). present: (B, K). weights: (K,).

    Returns:
        (B, T) weighted rewards and (B,) bool "has a token reward" (at least one function scored it).
    """
    weighted = torch.einsum("bkt,k->bt", rewards * present.unsqueeze(-1), weights.to(rewards.dtype))
    return weighted, present.any(dim=1)


def masked_stats(values: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Mean and unbiased std (NaN if undefined, as TRL logs) of ``values`` over ``mask``; any shapes that broadcast.

    Overflow-safe: computed on ``values / overflow_safe_scale`` and scaled back as Python (double) floats.
    """
    mask = mask.to(values.dtype).expand_as(values)
    count = mask.sum().item()
    if count == 0:
        return math.nan, math.nan
    scale = overflow_safe_scale(values, mask).item()
    values = values / scale
    mean = ((values * mask).sum() / count).item()
    if count < 2:
        return mean * scale, math.nan
    var = (((values - mean) ** 2) * mask).sum().item() / (count - 1)
    return mean * scale, math.sqrt(var) * scale


def check_token_advantages(
    advantages: torch.Tensor,
    valid: torch.Tensor,
    rewards: torch.Tensor,
    present: torch.Tensor,
    weights: torch.Tensor,
    func_names: Sequence[str],
    coef: float,
) -> None:
    """Raise before the loss if λ·A_tok is not finite, or so large that the float32 loss / gradient norm overflow.

    The limit is sqrt(float32 max / N) for N valid tokens (the squared sum of all of them then stays finite).

    Args:
        advantages: (B, T) token advantages A_tok. valid: (B, T) mask. rewards: (B, K, T) raw token rewards.
        present: (B, K). weights: (K,). func_names: K names. coef: λ.

    Raises:
        ValueError: naming the samples (rows of the gathered batch) and the token reward function(s) with the
            largest |w_k·g_k| on them, with the sample, token and value.
    """
    valid = valid.bool()
    limit = math.sqrt(torch.finfo(torch.float32).max / max(int(valid.sum()), 1))
    bad = valid & ~((coef * advantages).abs() <= limit)  # NaN compares False: caught too
    if not bad.any():
        return
    rows = bad.any(dim=1).nonzero().flatten()
    magnitude = rewards[rows].abs() * weights.abs().to(rewards.device).view(1, -1, 1) * present[rows].unsqueeze(-1)
    peaks = magnitude.amax(dim=(0, 2))
    culprits = []
    for k in (peaks == peaks.max()).logical_or(peaks > limit).nonzero().flatten().tolist():
        row, token = divmod(int(magnitude[:, k].argmax()), magnitude.size(2))
        culprits.append(
            f"'{func_names[k]}' (sample {int(rows[row])}, token {token}: {rewards[rows[row], k, token].item():.4g}, "
            f"weight {weights[k].item():g})"
        )
    raise ValueError(
        f"Token advantages are not finite or too large (|λ·A_tok| > {limit:.3g}, which overflows the float32 loss) "
        f"for sample(s) {rows.tolist()[:20]} of the batch. Largest weighted token rewards on them: "
        f"{', '.join(culprits)}. Rewards this large overflow float32 (in the weighted sum Σ_k w_k·g_k, or in the loss "
        "when they are not normalized): return smaller token rewards (None for a completion a function does not "
        "score), lower token_reward_weights / token_advantage_coef, or normalize them (token_reward_normalization="
        "'group' or 'batch')."
    )
