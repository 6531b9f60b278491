"""Pure tensor functions turning per-token rewards into per-token advantages.

Shapes: B completions (rows, grouped by prompt: rows ``[g*G, (g+1)*G)`` form group g), T completion positions.
``mask`` is a (B, T) 0/1 tensor of valid tokens (completion mask × tool mask × "has a token reward").
Every output is zero where ``mask`` is zero.
"""

from __future__ import annotations

import torch

from trl_token_ext.config import TOKEN_ADVANTAGE_MODES, TOKEN_REWARD_NORMALIZATIONS


def overflow_safe_scale(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """A power of two s ≥ 1 with max |values / s| < 2 over the valid entries (along ``dim``, keepdim; all if None).

    Dividing by s is exact (a power of two), so statistics of ``values / s`` cannot overflow for any finite float32
    input and equal those of ``values`` (scaled) bit for bit; s is 1 wherever every valid |value| is below 2.
    """
    magnitude = torch.where(mask.bool(), values.abs(), torch.zeros_like(values))
    peak = magnitude.amax() if dim is None else magnitude.amax(dim=dim, keepdim=True)
    exponent = torch.frexp(peak).exponent  # peak = m · 2^e with m in [0.5, 1)
    return torch.ldexp(torch.ones_like(peak), (exponent - 1).clamp(min=0))


def _masked_mean_std(values: torch.Tensor, mask: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased (Bessel-corrected, as TRL's ``nanstd``) std of ``values`` where ``mask`` is 1, along ``dim``.

    The std is 0 where fewer than two values are valid. Computed on ``values / overflow_safe_scale`` and scaled back,
    so no intermediate sum overflows; the std itself is inf only if the true std exceeds the dtype's range.
    """
    mask = mask.to(values.dtype)
    scale = overflow_safe_scale(values, mask, dim)
    values = values / scale
    count = mask.sum(dim=dim, keepdim=True)
    mean = (values * mask).sum(dim=dim, keepdim=True) / count.clamp(min=1)
    sq_dev = ((values - mean) ** 2 * mask).sum(dim=dim, keepdim=True)
    var = torch.where(count > 1, sq_dev / (count - 1).clamp(min=1), torch.zeros_like(sq_dev))
    return mean * scale, var.sqrt() * scale


def _standardize(values: torch.Tensor, mask: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """(values - mean) / (std + eps) along ``dim`` over ``mask``, zero where ``mask`` is 0; overflow-safe.

    Evaluated as (v/s - mean/s) / (std/s + eps/s) with s = `overflow_safe_scale` (identical to the plain formula
    whenever s = 1), so a finite float32 reward such as ``torch.finfo(torch.float32).min`` cannot produce inf/NaN.
    """
    scale = overflow_safe_scale(values, mask, dim)
    scaled = values / scale
    mean, std = _masked_mean_std(scaled, mask, dim)
    denominator = (std + eps / scale).clamp(min=torch.finfo(values.dtype).tiny)
    return (scaled - mean) / denominator * mask


def normalize_token_rewards(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    normalization: str = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Standardize token rewards: r̃ = (r - mean) / (std + eps) over the valid tokens of each group, or of the batch.

    Overflow-safe: any finite rewards (even ``torch.finfo(torch.float32).min``) give finite normalized rewards.

    Args:
        rewards: (B, T) token rewards.
        mask: (B, T) valid-token mask.
        group_size: G, completions per prompt; B must be a multiple of G (only used for ``"group"``).
        normalization: ``"group"`` (DeepSeekMath process supervision), ``"batch"`` or ``"none"``.
        eps: added to the std.

    Returns:
        (B, T) normalized rewards, zero where ``mask`` is zero.
    """
    if normalization not in TOKEN_REWARD_NORMALIZATIONS:
        raise ValueError(
            f"Unknown token reward normalization {normalization!r}; use one of {TOKEN_REWARD_NORMALIZATIONS}."
        )
    mask = mask.to(rewards.dtype)
    if normalization == "none":
        return rewards * mask
    if normalization == "batch":
        return _standardize(rewards.reshape(1, -1), mask.reshape(1, -1), 1, eps).reshape(rewards.shape)
    batch, length = rewards.shape
    if batch % group_size != 0:
        raise ValueError(f"Batch of {batch} completions is not a multiple of the group size {group_size}.")
    grouped = rewards.reshape(batch // group_size, group_size * length)
    grouped_mask = mask.reshape(batch // group_size, group_size * length)
    return _standardize(grouped, grouped_mask, 1, eps).reshape(batch, length)


_RTG_CHUNK = 32


def _suffix_discounted_sum(values: torch.Tensor, gamma: float) -> torch.Tensor:
    """S_t = Σ_{j≥t} γ^(j-t) values_j along dim 1, in O(B·T·C) time and O(B·T + C²) memory (C = chunk size).

    Positions are cut into chunks of C: inside a chunk a (C, C) upper-triangular matmul, across chunks the same
    recursion on the chunk totals with γ^C. Only non-negative powers of γ appear, so γ < 1 cannot overflow.
    """
    batch, length = values.shape
    chunk = min(_RTG_CHUNK, length)
    if chunk <= 1:
        return values.clone()
    chunks = -(-length // chunk)
    padded = torch.nn.functional.pad(values, (0, chunks * chunk - length)).reshape(batch, chunks, chunk)
    offsets = torch.arange(chunk, device=values.device)
    steps = offsets.unsqueeze(1) - offsets.unsqueeze(0)  # steps[j, t] = j - t
    discount = torch.where(steps >= 0, torch.pow(gamma, steps.clamp(min=0).to(values.dtype)), 0.0)
    local = padded @ discount  # (B, N, C): suffix sums inside each chunk
    if chunks > 1:
        # carry[n] = S at the first position of chunk n+1: the suffix sum over chunks of the chunk totals with γ^C
        totals = local[:, :, 0]
        after = _suffix_discounted_sum(totals, gamma**chunk)
        carry = torch.nn.functional.pad(after[:, 1:], (0, 1))
        tail = torch.pow(gamma, (chunk - offsets).to(values.dtype))  # γ^(C - t) ≥ 0, from position t to chunk end
        local = local + carry.unsqueeze(2) * tail
    return local.reshape(batch, chunks * chunk)[:, :length]


def discounted_reward_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """A_t = Σ_{j≥t} γ^(j-t) r_j over valid positions j (masked positions add nothing but still count as steps).

    Linear in T (chunked suffix sums, see `_suffix_discounted_sum`); numerically safe for any γ in [0, 1].

    Args:
        rewards: (B, T). mask: (B, T). gamma: discount in [0, 1].

    Returns:
        (B, T), zero where ``mask`` is zero.
    """
    mask = mask.to(rewards.dtype)
    return _suffix_discounted_sum(rewards * mask, float(gamma)) * mask


def min_reward_to_go(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A_t = min_{j≥t, valid} r_j (min-form credit assignment).

    Args:
        rewards: (B, T). mask: (B, T).

    Returns:
        (B, T), zero where ``mask`` is zero.
    """
    valid = mask.bool()
    filled = rewards.masked_fill(~valid, float("inf"))
    suffix_min = torch.cummin(filled.flip(1), dim=1).values.flip(1)
    return torch.where(valid, suffix_min, torch.zeros_like(rewards))


def _by_group(values: torch.Tensor, mask: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values · mask, mask) as (B/G, G, T) tensors of the mask's float type: one slice per prompt's group.

    Raises:
        ValueError: B is not a multiple of ``group_size``.
    """
    batch, length = values.shape
    if batch % group_size != 0:
        raise ValueError(f"Batch of {batch} completions is not a multiple of the group size {group_size}.")
    mask = mask.to(values.dtype)
    return (values * mask).reshape(-1, group_size, length), mask.reshape(-1, group_size, length)


def leave_one_out_baseline(values: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """b_{i,t} = mean of ``values[j, t]`` over the other completions j ≠ i of i's group that are valid at position t.

    The position-wise RLOO baseline of token advantages (0 where no other completion of the group reaches t).

    Args:
        values: (B, T). mask: (B, T). group_size: G; B must be a multiple of G.

    Returns:
        (B, T), zero where ``mask`` is zero.
    """
    grouped, counts = _by_group(values, mask, group_size)
    others_sum = grouped.sum(dim=1, keepdim=True) - grouped
    others_count = counts.sum(dim=1, keepdim=True) - counts
    baseline = torch.where(others_count > 0, others_sum / others_count.clamp(min=1), torch.zeros_like(others_sum))
    return (baseline * counts).reshape(values.shape)


def token_advantages(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    mode: str = "reward_to_go",
    normalization: str = "group",
    gamma: float = 1.0,
    eps: float = 1e-4,
    scale: bool = False,
    leave_one_out: bool = False,
) -> torch.Tensor:
    """Token advantages A_tok (B, T) from raw token rewards (B, T): normalize, then accumulate by ``mode``.

    ``leave_one_out=True`` (RLOO) then subtracts `leave_one_out_baseline` of the accumulated values.
    ``scale=True`` finally divides by their std over the valid tokens of the batch (plus ``eps``), keeping
    ``reward_to_go`` (whose std grows with length) on the scale of the outcome advantage. Constant advantages (std 0:
    all equal, or fewer than two valid tokens) are left as they are instead of being multiplied by 1/``eps``.
    """
    if mode not in TOKEN_ADVANTAGE_MODES:
        raise ValueError(f"Unknown token advantage mode {mode!r}; use one of {TOKEN_ADVANTAGE_MODES}.")
    normalized = normalize_token_rewards(rewards, mask, group_size, normalization, eps)
    advantages = accumulate_token_rewards(normalized, mask, mode, gamma)
    if leave_one_out:
        advantages = advantages - leave_one_out_baseline(advantages, mask, group_size)
    return _scale_to_unit_std(advantages, mask, eps) if scale else advantages


def accumulate_token_rewards(rewards: torch.Tensor, mask: torch.Tensor, mode: str, gamma: float = 1.0) -> torch.Tensor:
    """(B, T) per-token credit from (B, T) token rewards by ``mode``: ``"reward_to_go"`` (Σ_{j≥t} γ^(j-t) r_j),
    ``"immediate"`` (r_t) or ``"min"`` (min_{j≥t} r_j); zero where ``mask`` is zero."""
    if mode not in TOKEN_ADVANTAGE_MODES:
        raise ValueError(f"Unknown token advantage mode {mode!r}; use one of {TOKEN_ADVANTAGE_MODES}.")
    if mode == "immediate":
        return rewards * mask.to(rewards.dtype)
    if mode == "reward_to_go":
        return discounted_reward_to_go(rewards, mask, gamma)
    return min_reward_to_go(rewards, mask)


def _scale_to_unit_std(advantages: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """``advantages / (std + eps)`` with the std over the batch's valid tokens; unchanged when that std is 0."""
    _, std = _masked_mean_std(advantages.reshape(1, -1), mask.to(advantages.dtype).reshape(1, -1), dim=1)
    return torch.where(std > 0, advantages / (std + eps), advantages)


def position_centered(values: torch.Tensor, mask: torch.Tensor, group_size: int, leave_one_out: bool = False):
    """values_{i,t} − b_t with b_t the mean of ``values[j, t]`` over the completions j of i's group valid at t.

    The baseline depends on the position and on the group, never on the completion's own length or later tokens, so
    completions of equal return get equal credit whatever their length, and tokens whose reward is 0 add nothing.
    ``leave_one_out=True`` (RLOO) uses the mean of the *other* valid completions instead, which is the same centred
    value times n_t / (n_t - 1). A completion alone at position t gets 0 there (no baseline to compare with).

    Args:
        values: (B, T) accumulated token credit. mask: (B, T). group_size: G; B must be a multiple of G.

    Returns:
        (B, T), zero where ``mask`` is zero.
    """
    grouped, valid = _by_group(values, mask, group_size)
    counts = valid.sum(dim=1, keepdim=True)
    mean = grouped.sum(dim=1, keepdim=True) / counts.clamp(min=1)
    factor = counts / (counts - 1).clamp(min=1) if leave_one_out else torch.ones_like(counts)
    centred = torch.where(counts > 1, (grouped - mean) * factor, torch.zeros_like(grouped))
    return (centred * valid).reshape(values.shape)


def _divide_by_std(values: torch.Tensor, mask: torch.Tensor, group_size: int, normalization: str, eps: float):
    """``values / (std + eps)`` with the std over the valid tokens of each group (``"group"``) or of the batch
    (``"batch"``); ``"none"`` returns ``values`` unchanged."""
    if normalization not in TOKEN_REWARD_NORMALIZATIONS:
        raise ValueError(
            f"Unknown token reward normalization {normalization!r}; use one of {TOKEN_REWARD_NORMALIZATIONS}."
        )
    if normalization == "none":
        return values
    if normalization == "group" and values.size(0) % group_size != 0:
        raise ValueError(f"Batch of {values.size(0)} completions is not a multiple of the group size {group_size}.")
    rows = 1 if normalization == "batch" else values.size(0) // group_size
    flat, flat_mask = values.reshape(rows, -1), mask.to(values.dtype).reshape(rows, -1)
    scale = overflow_safe_scale(flat, flat_mask, dim=1)
    _, std = _masked_mean_std(flat / scale, flat_mask, dim=1)
    return (flat / scale / (std + eps / scale)).reshape(values.shape) * mask


def length_neutral_token_advantages(
    rewards: torch.Tensor,
    present: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    group_size: int,
    mode: str = "reward_to_go",
    normalization: str = "group",
    gamma: float = 1.0,
    eps: float = 1e-4,
    leave_one_out: bool = False,
    scale: bool = False,
    raw_columns: tuple[int, ...] = (),
) -> torch.Tensor:
    """A_tok = Σ_k w_k · Â_k, with Â_k the position-centred, std-scaled credit of function k (``baseline="position"``).

    For every function k, over the rows it scored: accumulate its raw rewards by ``mode`` (`accumulate_token_rewards`),
    subtract the per-position group baseline (`position_centered`), and divide by the std of the result over the
    valid tokens of the group / batch (``normalization``; ``"none"``: raw units). Rewards are never shifted before
    accumulation, so a token with reward 0 adds nothing and equal-return completions get equal credit whatever their
    length. Each function is on unit scale before its weight applies, so a weight means the same with one function
    or many. Columns in ``raw_columns`` (the KL in the reward: β_kl is in its values) are centred but not scaled.

    Args:
        rewards: (B, K, T) raw token rewards. present: (B, K) which rows function k scored. mask: (B, T) valid tokens.
        weights: (K,). group_size: G. leave_one_out: RLOO's baseline (see `position_centered`).
        scale: finally divide by the std over the batch's valid tokens (``token_advantage_scale``).

    Returns:
        (B, T), zero where ``mask`` is zero or no function scored the row.
    """
    batch, functions, length = rewards.shape
    mask = mask.to(rewards.dtype)
    total = torch.zeros(batch, length, dtype=rewards.dtype, device=rewards.device)
    for k in range(functions):
        func_mask = mask * present[:, k].to(rewards.dtype).unsqueeze(1)
        unit = overflow_safe_scale(rewards[:, k], func_mask)  # a power of two: exact, and no sum below overflows
        credit = accumulate_token_rewards(rewards[:, k] / unit, func_mask, mode, gamma)
        credit = position_centered(credit, func_mask, group_size, leave_one_out)
        if k in raw_columns or normalization == "none":
            credit = credit * unit  # raw reward units (inf if they overflow: `check_token_advantages` names it)
        else:
            credit = _divide_by_std(credit, func_mask, group_size, normalization, eps / unit)
        total = total + weights[k].to(rewards.dtype) * credit
    valid = mask * present.any(dim=1).to(rewards.dtype).unsqueeze(1)
    total = total * valid
    return _scale_to_unit_std(total, valid, eps) if scale else total


def combine_advantages(
    outcome_advantages: torch.Tensor, token_advantages: torch.Tensor, mask: torch.Tensor, coef: float
) -> torch.Tensor:
    """A_t = A_out + λ·A_tok_t on the valid tokens (``mask`` is the loss mask), zero elsewhere.

    Args:
        outcome_advantages: (B,). token_advantages: (B, T). mask: (B, T). coef: λ.

    Returns:
        (B, T).
    """
    mask = mask.to(token_advantages.dtype)
    return (outcome_advantages.unsqueeze(1) + coef * token_advantages) * mask


def sequence_level_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reduce (B, T) advantages to one value per sequence, (B, 1): the mean over the sequence's valid tokens.

    Used where TRL takes a per-sequence decision from the advantage's sign (off-policy sequence masking, VESPO's
    gamma parameters), so that those rules stay per sequence with token advantages. (B, 1) input is returned as is.
    """
    if advantages.dim() == 2 and advantages.size(1) > 1:
        mask = mask.to(advantages.dtype)
        return (advantages * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    return advantages
