"""WeightedTokenReward: R = Σ_k w_k·scorer_k as one token reward function, logging each component."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from trl_token_ext.token_rewards import (
    compute_token_rewards,
    masked_stats,
    token_reward_func_name,
    weighted_token_rewards,
)


class WeightedTokenReward:
    """R(s_t, a_t) = Σ_k w_k·g_k(s_t, a_t), e.g. the seed formula w_quality·Q + w_consistency·C.

    A completion that some components leave unscored (None) gets the weighted sum of the others; None when none
    scores it. Each component's mean/std over the scored tokens of the batch is logged through the ``log_metric``
    kwarg as ``token_rewards/<name>/<component>/mean|std`` (``<component>`` = the scorer's ``__name__``).
    """

    def __init__(self, components: Sequence[tuple[float, Callable[..., Any]]], *, name: str = "weighted_token_reward"):
        self.__name__ = name
        if not components:
            raise ValueError(f"{name}: give at least one (weight, scorer) pair.")
        self.weights: list[float] = []
        self.scorers: list[Callable[..., Any]] = []
        self.component_names: list[str] = []
        for index, pair in enumerate(components):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not callable(pair[1]):
                raise TypeError(f"{name}: component {index} must be a (weight, scorer) pair, got {pair!r}.")
            weight, scorer = pair
            if not isinstance(weight, (int, float)):
                raise TypeError(f"{name}: weight of component {index} must be a number, got {weight!r}.")
            component = token_reward_func_name(scorer)
            if component in self.component_names:
                component = f"{component}_{index}"
            self.weights.append(float(weight))
            self.scorers.append(scorer)
            self.component_names.append(component)

    def __repr__(self) -> str:
        parts = ", ".join(f"({w}, {n})" for w, n in zip(self.weights, self.component_names))
        return f"WeightedTokenReward([{parts}], name={self.__name__!r})"

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[list[float] | None]:
        if completion_ids is None:
            raise TypeError(f"{self.__name__}: completion_ids is required.")
        names = [f"{self.__name__}/{component}" for component in self.component_names]
        batch = compute_token_rewards(self.scorers, names, prompts, completions, completion_ids, kwargs)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            lengths = torch.tensor([len(ids) for ids in completion_ids])
            tokens = torch.arange(batch.rewards.size(2)) < lengths.unsqueeze(1)  # (B, T)
            for k, component in enumerate(self.component_names):
                mean, std = masked_stats(batch.rewards[:, k], tokens & batch.present[:, k].unsqueeze(1))
                if mean == mean:  # NaN when no token was scored
                    log_metric(f"token_rewards/{self.__name__}/{component}/mean", mean)
                if std == std:  # NaN for a single token
                    log_metric(f"token_rewards/{self.__name__}/{component}/std", std)
        weighted, has_reward = weighted_token_rewards(batch.rewards, batch.present, torch.tensor(self.weights))
        return [
            weighted[b, : len(ids)].tolist() if scored else None
            for b, (ids, scored) in enumerate(zip(completion_ids, has_reward.tolist()))
        ]
