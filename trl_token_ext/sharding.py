"""Scorers that hold a model, under sharded training (FSDP, DeepSpeed ZeRO-3): checked when the trainer is built.

A scorer's forward passes run on each process separately, in a number that depends on that process's completions
(batching by length). That is harmless for a model every process holds whole, and a hang for a sharded one: each
forward pass of a sharded model all-gathers its parameters, a collective every process must join. So:

* a judge that shares the policy's weights (`SharedBaseModel`, ``model: policy``) under FSDP or ZeRO-3 → error;
* a scorer model whose parameters DeepSpeed partitioned (loaded while ZeRO-3's ``zero.Init`` was active) → error;
* a scorer model loaded by path otherwise (DDP, ZeRO-1/2, FSDP: accelerate only wraps the policy) → fine: each
  process holds a full copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from trl_token_ext.models import SharedBaseModel


def sharding_strategy(accelerator: Any) -> str | None:
    """``"FSDP"`` or ``"DeepSpeed ZeRO-3"`` when the policy's parameters are sharded across processes, else None."""
    from accelerate.utils import DistributedType

    kind = getattr(accelerator, "distributed_type", None)
    if kind == DistributedType.FSDP:
        return "FSDP"
    if kind == DistributedType.DEEPSPEED:
        plugin = getattr(getattr(accelerator, "state", None), "deepspeed_plugin", None)
        if getattr(plugin, "zero_stage", None) == 3:
            return "DeepSpeed ZeRO-3"
    return None


def scorer_models(func: Any, depth: int = 3) -> Iterator[Any]:
    """The models (`SharedBaseModel` or ``torch.nn.Module``) a reward function holds, looked up through its
    attributes, lists and tuples (wrappers such as `WeightedTokenReward` included), ``depth`` levels deep."""
    if isinstance(func, (SharedBaseModel, torch.nn.Module)):
        yield func
        return
    if depth == 0:
        return
    if isinstance(func, (list, tuple)):
        values = list(func)
    else:
        values = list(getattr(func, "__dict__", {}).values())
    for value in values:
        if isinstance(value, (str, bytes, int, float, bool, torch.Tensor)) or value is None:
            continue
        yield from scorer_models(value, depth - 1)


def _partitioned(model: torch.nn.Module) -> bool:
    return any(hasattr(parameter, "ds_id") for parameter in model.parameters())


def check_scorers_under_sharding(funcs: Sequence[Any], names: Sequence[str], accelerator: Any) -> None:
    """Raise a ValueError naming the first scorer whose model would make processes disagree on collectives."""
    strategy = sharding_strategy(accelerator)
    for func, name in zip(funcs, names):
        for model in scorer_models(func):
            if isinstance(model, SharedBaseModel) and strategy is not None:
                raise ValueError(
                    f"Token reward function {name!r} scores with the policy's own weights (SharedBaseModel, "
                    f"`model: policy`), which {strategy} shards across processes: processes would run different "
                    "numbers of forward passes and hang. Give it its own model path (each process then holds a full "
                    "copy), or train with DDP or DeepSpeed ZeRO-1/2."
                )
            if isinstance(model, torch.nn.Module) and _partitioned(model):
                raise ValueError(
                    f"Token reward function {name!r} holds a model whose parameters DeepSpeed ZeRO-3 partitioned "
                    "(it was loaded inside `zero.Init`): processes would run different numbers of forward passes "
                    "and hang. Load the scorer before the trainer/accelerator is set up, or use ZeRO-1/2."
                )
