"""Reward and token reward functions by name, for the ``trl-token`` CLI and YAML recipes.

A name is a registered short name (``repetition``, ``logprob_quality``, ``sentence_classifier``, TRL's
``accuracy_reward`` ...) or an import path (``pkg.module:func`` or ``pkg.module.func``). Registered entries are
"module:attribute" strings imported on first use, so this module imports nothing heavy and a missing optional
module only fails when its name is used.

`build_reward_func(name, options)` turns a name and its YAML options into a callable: a class is instantiated
with the options, a registered factory is called with them, and a plain function given options gets them as extra
keyword arguments on every call (`BoundRewardFunc`, picklable, keeps the function's ``__name__``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

# name -> "module:attribute"
_REGISTRY: dict[str, str] = {
    # token scorers (trl_token_ext.scorers)
    "repetition": "trl_token_ext.scorers:RepetitionConsistency",
    "reference_consistency": "trl_token_ext.scorers:ReferenceConsistency",
    "self_consistency": "trl_token_ext.scorers:SelfConsistency",
    "logprob_quality": "trl_token_ext.scorers:LogProbQuality",
    "implicit_prm": "trl_token_ext.scorers:ImplicitPRMQuality",
    "online_implicit_prm": "trl_token_ext.scorers:OnlineImplicitPRM",
    "teacher_distill": "trl_token_ext.scorers:TeacherDistillReward",
    "lexicon_quality": "trl_token_ext.scorers:LexiconQuality",
    "token_classifier": "trl_token_ext.scorers:TokenClassifierQuality",
    "potential_shaping": "trl_token_ext.scorers:PotentialShaping",
    "metric": "trl_token_ext.scorers:MetricReward",
    "step_prm": "trl_token_ext.scorers:StepPRMReward",
    # sentence classifier: a token reward in TokenGRPOTrainer, a sequence reward in a stock TRL trainer
    "sentence_classifier": "trl_token_ext.sentence.reward:SentenceClassifierReward",
    # TRL's outcome rewards (the names `trl grpo` accepts)
    "accuracy_reward": "trl.rewards:accuracy_reward",
    "reasoning_accuracy_reward": "trl.rewards:reasoning_accuracy_reward",
    "think_format_reward": "trl.rewards:think_format_reward",
    "get_soft_overlong_punishment": "trl.rewards:get_soft_overlong_punishment",
}
# Objects registered from Python (`register_reward(name, callable)`).
_OBJECTS: dict[str, Callable[..., Any]] = {}
# Registered functions that build the reward function from the options instead of being it.
_FACTORIES: set[str] = {"get_soft_overlong_punishment"}
# `trl grpo` calls this factory with fixed values when the recipe gives none; do the same for the same recipes.
_FACTORY_DEFAULTS: dict[str, dict[str, Any]] = {
    "get_soft_overlong_punishment": {"max_completion_len": 1280, "soft_punish_cache": 256}
}


def registered_names() -> list[str]:
    """Sorted registered names."""
    return sorted(_REGISTRY)


def register_reward(name: str, target: str | Callable[..., Any], factory: bool = False) -> None:
    """Register ``target`` (an object or a "module:attribute" string) under ``name``; ``factory``: call it with the
    options to get the reward function."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"A reward name must be a non-empty string without ':', got {name!r}.")
    if isinstance(target, str):
        if ":" not in target:
            raise ValueError(f"register_reward({name!r}): a string target must be 'module:attribute', got {target!r}.")
        _REGISTRY[name] = target
    else:
        if not callable(target):
            raise TypeError(f"register_reward({name!r}): target {target!r} is not callable.")
        _OBJECTS[name] = target
        _REGISTRY[name] = f"<object>:{name}"
    if factory:
        _FACTORIES.add(name)
    else:
        _FACTORIES.discard(name)


def _import_attribute(module_name: str, attribute: str, name: str) -> Any:
    if os.getcwd() not in sys.path:  # as `trl grpo`: modules next to the recipe are importable
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"Reward function {name!r}: cannot import module {module_name!r} ({error}).") from error
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"Reward function {name!r}: module {module_name!r} has no attribute {attribute!r}.") from None


def resolve(name: str) -> Any:
    """The object registered under ``name``, or imported from ``pkg.module:attr`` / ``pkg.module.attr``.

    Raises:
        ValueError: unknown name (listing the registered ones) or an import path that doesn't resolve.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A reward function name must be a non-empty string, got {name!r}.")
    if name in _REGISTRY:
        module_name, attribute = _REGISTRY[name].split(":", 1)
        if module_name == "<object>":
            return _OBJECTS[attribute]
        return _import_attribute(module_name, attribute, name)
    if ":" in name:
        module_name, attribute = name.split(":", 1)
    elif "." in name:
        module_name, attribute = name.rsplit(".", 1)
    else:
        raise ValueError(
            f"Unknown reward function {name!r}. Registered names: {registered_names()}; or pass an import path "
            "such as 'my_package.rewards:my_reward' (or 'my_package.rewards.my_reward')."
        )
    return _import_attribute(module_name, attribute, name)


class BoundRewardFunc:
    """A reward function called with fixed extra keyword ``options`` (picklable, unlike a lambda or partial).

    ``__name__`` is the function's, so logs read ``rewards/<func>/mean`` / ``token_rewards/<func>/mean``.
    """

    def __init__(self, func: Callable[..., Any], options: Mapping[str, Any], name: str | None = None):
        self.func = func
        self.options = dict(options)
        self.__name__ = name or getattr(func, "__name__", type(func).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs, **self.options)

    def __repr__(self) -> str:
        return f"BoundRewardFunc({self.__name__}, {self.options})"


def build_reward_func(name: str, options: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """A reward / token reward function from a name (see `resolve`) and its options.

    A class is instantiated with ``options``; a registered factory is called with them; a function or a callable
    object is returned as is, or wrapped in `BoundRewardFunc` when options are given.

    Raises:
        ValueError: unknown name, or options the class/factory does not accept (naming the function).
    """
    target = resolve(name)
    options = dict(options or {})
    if inspect.isclass(target) or name in _FACTORIES:
        if name in _FACTORY_DEFAULTS and not options:
            options = dict(_FACTORY_DEFAULTS[name])
        try:
            inspect.signature(target).bind(**options)
        except TypeError as error:
            raise ValueError(f"Reward function {name!r}: invalid options {sorted(options)} ({error}).") from None
        except ValueError:  # no signature (builtins): let the call report
            pass
        built = target(**options)
        if not callable(built):
            raise TypeError(f"Reward function {name!r}: {target!r} built a non-callable {type(built).__name__}.")
        return built
    if not callable(target):
        raise TypeError(f"Reward function {name!r} resolves to {type(target).__name__}, which is not callable.")
    return BoundRewardFunc(target, options) if options else target
