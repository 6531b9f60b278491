"""WeightedTokenReward: R = Σ_k w_k·scorer_k as one token reward function, logging each component."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from trl_token_ext.token_rewards import masked_stats, token_reward_func_name, validate_token_rewards


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
        log_metric = kwargs.get("log_metric")
        total: list[torch.Tensor | None] = [None] * len(completion_ids)
        for weight, scorer, component in zip(self.weights, self.scorers, self.component_names):
            output = scorer(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            values = validate_token_rewards(output, f"{self.__name__}/{component}", completion_ids)
            for b, value in enumerate(values):
                if value is not None:
                    total[b] = weight * value if total[b] is None else total[b] + weight * value
            if log_metric is not None:
                scored = [v for v in values if v is not None and v.numel()]
                if scored:
                    flat = torch.cat(scored)
                    mean, std = masked_stats(flat, torch.ones_like(flat))
                    log_metric(f"token_rewards/{self.__name__}/{component}/mean", mean)
                    if std == std:  # NaN for a single token
                        log_metric(f"token_rewards/{self.__name__}/{component}/std", std)
        return [None if t is None else t.tolist() for t in total]
