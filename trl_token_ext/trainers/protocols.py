"""The optional hooks the token trainers look for on token reward functions and callbacks.

A token reward function is any callable with a TRL reward function's signature; it may also implement one of these
protocols, and the trainers (or the CLI, for `TrainsOwnModel`) call it. They are ``runtime_checkable``: the trainers
test ``isinstance(func, TrainerBoundReward)``, so implementing the methods is enough, no base class is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from trl_token_ext.trainers.records import TokenStepRecord


@runtime_checkable
class TrainerBoundReward(Protocol):
    """Needs the trainer (its accelerator, model or state): called once, at the end of the trainer's construction."""

    def bind_trainer(self, trainer: Any) -> None: ...


@runtime_checkable
class StatefulTokenReward(Protocol):
    """Keeps state that must survive a resume (e.g. an online PRM's adapter and optimizer).

    The trainer calls ``save_checkpoint(folder)`` when it saves ``checkpoint-N`` (folder
    ``checkpoint-N/token_reward_funcs/<index>/``, on the processes that save) and ``load_checkpoint(folder)`` when it
    resumes from one. Implement both or neither: the trainer raises at construction for only one.
    """

    def save_checkpoint(self, folder: str) -> None: ...

    def load_checkpoint(self, folder: str) -> None: ...


@runtime_checkable
class TrainsOwnModel(Protocol):
    """Trains the model it scores with (``trains_own_model = True``, e.g. `OnlineImplicitPRM`): the CLI then always
    loads a separate copy for it, never the policy's own model."""

    trains_own_model: bool


@runtime_checkable
class TokenStepCallback(Protocol):
    """A `transformers.TrainerCallback` that also receives, once per generation batch, the `TokenStepRecord` of what
    the trainer used (e.g. `TokenHeatmapCallback`)."""

    def on_token_step(self, args: Any, state: Any, record: TokenStepRecord) -> None: ...


def check_token_reward_hooks(funcs: Sequence[Any], names: Sequence[str]) -> None:
    """Raise (before the trainer loads anything) for a token reward function with half of `StatefulTokenReward`."""
    for index, (func, name) in enumerate(zip(funcs, names)):
        if hasattr(func, "save_checkpoint") != hasattr(func, "load_checkpoint"):
            raise TypeError(
                f"token_reward_funcs[{index}] ({name}) has only one of save_checkpoint/load_checkpoint; a stateful "
                "token reward function needs both (see trl_token_ext.StatefulTokenReward)."
            )
