"""The credit on each token of held-out samples, as the trainer would give it: what the demo's heatmaps show.

For prompt-major samples (G per prompt, a group as in training):

* each token reward function's raw values g_k (per term, before weights);
* A_out = (r − mean of the group) / (std of the group + 1e-4), r = Σ_m v_m·f_m the weighted outcome rewards (TRL's
  default ``scale_rewards="group"``, with TRL's ``nanstd``);
* A_tok = `length_neutral_token_advantages` of the g_k with the trainer's token settings (token arm only);
* A = A_out + λ·A_tok on every token (the control: A = A_out, the same on every token of a completion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMNS = ("topic", "title", "numbers")  # dataset columns a sample may carry for the reward functions


def reward_inputs(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments TRL passes reward functions, for ``samples`` (conversational completions)."""
    columns = {key: [s[key] for s in samples] for key in COLUMNS if samples and key in samples[0]}
    return {
        "prompts": [s["prompt"] for s in samples],
        "completions": [[{"role": "assistant", "content": s["text"]}] for s in samples],
        "completion_ids": [s["completion_ids"] for s in samples],
        **columns,
    }


def group_advantages(rewards: Any, group_size: int) -> Any:
    """(B,) (r − group mean) / (group std + 1e-4), NaN-aware as TRL's default (an all-NaN row gets 0)."""
    import torch
    from trl.trainer.utils import nanstd

    grouped = rewards.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    std = nanstd(grouped, dim=1).repeat_interleave(group_size)
    return torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)


def outcome_rewards(samples: Sequence[dict[str, Any]], funcs: Sequence[Any], weights: Sequence[float]) -> Any:
    """(B,) Σ_m v_m·f_m over the outcome functions that scored each sample (NaN where none did)."""
    import torch

    inputs = reward_inputs(samples)
    columns = [
        torch.tensor([float("nan") if v is None else float(v) for v in func(**inputs)], dtype=torch.float32)
        for func in funcs
    ]
    per_func = torch.stack(columns, dim=1)
    weighted = (per_func * torch.tensor(weights, dtype=torch.float32)).nansum(dim=1)
    return torch.where(torch.isnan(per_func).all(dim=1), torch.full_like(weighted, float("nan")), weighted)


def credit_views(
    samples: Sequence[dict[str, Any]],
    tokenizer: Any,
    group_size: int,
    outcome: tuple[Sequence[Any], Sequence[float]],
    terms: Sequence[Any],
    weights: Sequence[float] | None = None,
    settings: dict[str, Any] | None = None,
    coef: float = 0.0,
) -> list[dict[str, list[float]]]:
    """Per sample, the named per-token views: each function of ``terms`` (raw), then A_tok and A for the token arm
    (``weights`` of the trained terms — the first ``len(weights)`` of ``terms`` — with ``settings``: the trainer's
    token advantage settings (`trainer_settings`) and ``coef`` = λ), or A = A_out for the control
    (``settings=None``). ``outcome``: (functions, weights)."""
    import torch

    from trl_token_ext.advantages import length_neutral_token_advantages
    from trl_token_ext.token_rewards import compute_token_rewards, token_reward_func_name

    inputs = reward_inputs(samples)
    names = [token_reward_func_name(func) for func in terms]
    extra = {key: value for key, value in inputs.items() if key not in ("prompts", "completions", "completion_ids")}
    batch = compute_token_rewards(
        terms,
        names,
        inputs["prompts"],
        inputs["completions"],
        inputs["completion_ids"],
        reward_kwargs={"processing_class": tokenizer, **extra},
    )
    lengths = [len(ids) for ids in inputs["completion_ids"]]
    mask = (torch.arange(batch.rewards.size(2)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    a_out = group_advantages(outcome_rewards(samples, *outcome), group_size)
    total = a_out.unsqueeze(1) * mask
    a_tok = None
    if settings is not None and weights:
        trained = len(weights)
        a_tok = length_neutral_token_advantages(
            batch.rewards[:, :trained],
            batch.present[:, :trained],
            mask,
            torch.tensor(weights, dtype=torch.float32),
            group_size,
            **settings,
        )
        total = total + coef * a_tok
    views = []
    for b, length in enumerate(lengths):
        view = {name: batch.rewards[b, k, :length].tolist() for k, name in enumerate(names)}
        if a_tok is not None:
            view["A_tok (token advantage)"] = a_tok[b, :length].tolist()
            view[f"A = A_out + {coef:g}·A_tok"] = total[b, :length].tolist()
        else:
            view["A = A_out (outcome only)"] = total[b, :length].tolist()
        views.append(view)
    return views


def trainer_settings(args: Any) -> dict[str, Any]:
    """The token advantage settings of a `TokenGRPOConfig`, as `length_neutral_token_advantages` keywords."""
    return {
        "mode": args.token_advantage_mode,
        "normalization": args.token_reward_normalization,
        "gamma": args.token_reward_gamma,
        "eps": args.token_reward_epsilon,
        "scale": args.token_advantage_scale,
    }
