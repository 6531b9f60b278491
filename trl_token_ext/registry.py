"""Reward and token reward functions by name, for the ``trl-token`` CLI and YAML recipes.

A name is a registered short name (``repetition``, ``logprob_quality``, ``sentence_classifier``, TRL's
``accuracy_reward`` ...) or an import path (``pkg.module:func`` or ``pkg.module.func``). Registered entries are
"module:attribute" strings imported on first use, so this module imports nothing heavy and a missing optional
module only fails when its name is used.

`build_reward_func(name, options)` turns a name and its YAML options into a callable: a class is instantiated
with the options; a factory (registered as one, or any function that cannot take TRL's ``completions`` keyword,
such as ``get_repetition_penalty_reward(ngram_size, max_penalty)``) is called once with them; a reward function
given options gets them as extra keyword arguments on every call (`BoundRewardFunc`, picklable, keeps the
function's ``__name__``). `build_reward_funcs(names, options)` does it for a list, with YAML/JSON options per name.
A script's own name -> function mapping (``registry=``) is looked up first.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
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
# Registered names that score whole completions only (one number each): refused as token reward functions.
_OUTCOME_ONLY: set[str] = {
    "accuracy_reward", "reasoning_accuracy_reward", "think_format_reward", "get_soft_overlong_punishment", "metric",
}  # fmt: skip
KINDS = ("outcome", "token")


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


def valid_names(registry: Mapping[str, Any] | None = None) -> list[str]:
    """The names ``resolve`` knows: the script's own ``registry`` first, then the registered ones (sorted)."""
    own = sorted(registry or {})
    return own + [name for name in registered_names() if name not in own]


def resolve(name: str, registry: Mapping[str, Any] | None = None) -> Any:
    """The object under ``name`` in the script's ``registry``, else registered, else imported from ``pkg.module:attr``
    / ``pkg.module.attr``.

    Raises:
        ValueError: unknown name (listing the valid ones) or an import path that doesn't resolve.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A reward function name must be a non-empty string, got {name!r}.")
    if registry is not None and name in registry:
        return registry[name]
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
            f"Unknown reward function {name!r}. Valid names are {valid_names(registry)}, or an import path such as "
            "'my_package.rewards:my_reward' (or 'my_package.rewards.my_reward')."
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


def _signature(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: let the call report
        return None


def is_factory(target: Any) -> bool:
    """True for a function that cannot take TRL's ``completions`` keyword: it cannot be a reward function, so it builds
    one (``get_repetition_penalty_reward(ngram_size, max_penalty)``). Classes, callable objects and functions taking
    ``completions`` or ``**kwargs`` are not factories."""
    if inspect.isclass(target) or not (inspect.isfunction(target) or inspect.ismethod(target)):
        return False
    signature = _signature(target)
    if signature is None:
        return False
    try:
        signature.bind_partial(completions=[])
    except TypeError:
        return True
    return False


def _check_kind(name: str, target: Any, kind: str | None) -> None:
    """Refuse a token scorer as an outcome reward, or an outcome-only reward as a token reward, naming the fix."""
    if kind is None:
        return
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)} or None, got {kind!r}.")
    # Imported here: the scorers package imports torch and its models, which `trl-token --help`, the recipes'
    # argument parsing and `import trl_token_ext.registry` do not need.
    from trl_token_ext.scorers._common import TokenScorer

    is_scorer = isinstance(target, TokenScorer) or (inspect.isclass(target) and issubclass(target, TokenScorer))
    if kind == "outcome" and is_scorer:
        raise ValueError(
            f"Reward function {name!r} is a token reward function (one reward per token): list it in "
            "`token_reward_funcs`, not in the outcome reward functions."
        )
    if kind == "token" and name in _OUTCOME_ONLY:
        raise ValueError(
            f"Token reward function {name!r} scores whole completions (one number each): list it in the outcome "
            "reward functions (`reward_funcs`), not in `token_reward_funcs`."
        )


def build_reward_func(
    name: str,
    options: Mapping[str, Any] | None = None,
    registry: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Callable[..., Any]:
    """A reward / token reward function from a name (see `resolve`) and its options.

    A class is instantiated with ``options``; a factory (registered with ``factory=True``, or a function that cannot
    take ``completions``: `is_factory`) is called once with them; a reward function or callable object is returned as
    is, or wrapped in `BoundRewardFunc` when options are given. ``kind`` (``"outcome"`` / ``"token"``) refuses a
    function of the other kind.

    Raises:
        ValueError: unknown name, a function of the other ``kind``, or options the class/factory/function does not
            accept (naming the function and the options).
    """
    target = resolve(name, registry)
    _check_kind(name, target, kind)
    options = dict(options or {})
    if inspect.isclass(target) or name in _FACTORIES or is_factory(target):
        if name in _FACTORY_DEFAULTS and not options:
            options = dict(_FACTORY_DEFAULTS[name])
        _check_options(name, target, options, {})
        built = target(**options)
        if not callable(built):
            raise TypeError(f"Reward function {name!r}: {target!r} built a non-callable {type(built).__name__}.")
        _check_kind(name, built, kind)
        return built
    if not callable(target):
        raise TypeError(f"Reward function {name!r} resolves to {type(target).__name__}, which is not callable.")
    if not options:
        return target
    _check_options(name, target, options, {"completions": []})
    return BoundRewardFunc(target, options)


def _check_options(name: str, target: Any, options: dict[str, Any], call_keywords: dict[str, Any]) -> None:
    signature = _signature(target)
    if signature is None:
        return
    try:
        signature.bind_partial(**call_keywords, **options)
        if not call_keywords:  # built once: every required argument must be among the options
            signature.bind(**options)
    except TypeError as error:
        raise ValueError(f"Reward function {name!r}: invalid options {sorted(options)} ({error}).") from None


def parse_options(value: Any, flag: str) -> dict | list | None:
    """Options as given in YAML (a mapping or a list of mappings) or on the command line (the same as JSON text)."""
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"--{flag} must be a JSON object or list, got {value!r} ({error}).") from None
    if not isinstance(parsed, (dict, list)):
        raise ValueError(f"--{flag} must be a JSON object or list, got {value!r}.")
    return parsed


def name_list(names: str | Sequence[str] | None) -> list[str]:
    """Function names as a list (a YAML scalar ``token_reward_funcs: repetition`` is one name)."""
    if names is None:
        return []
    return [names] if isinstance(names, str) else list(names)


def options_for(names: Sequence[str], options: dict | list | None, flag: str) -> list[dict[str, Any]]:
    """One options mapping per function name, from ``{name: options}`` or a list in the order of ``names``."""
    if options is None:
        return [{} for _ in names]
    if isinstance(options, list):
        if len(options) != len(names):
            raise ValueError(f"{flag} lists {len(options)} option mappings for {len(names)} functions {list(names)}.")
        result = [{} if opts is None else opts for opts in options]
    else:
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"{flag} has options for {unknown}, which are not among the functions {list(names)}.")
        result = [options.get(name) or {} for name in names]
    for name, opts in zip(names, result):
        if not isinstance(opts, Mapping):
            raise ValueError(f"{flag}: the options of {name!r} must be a mapping, got {opts!r}.")
    return [dict(opts) for opts in result]


def parse_reward_args(names: Any, options: Any, flag: str) -> tuple[list[str] | None, dict | list | None]:
    """A recipe's function names (None when there are none) and their options (``flag``, parsed by `parse_options`),
    checked against each other by `options_for`, so that a mismatch fails when the arguments are parsed."""
    names = name_list(names) or None
    options = parse_options(options, flag)
    options_for(names or [], options, flag)
    return names, options


def check_reward_names(
    names: str | Sequence[str] | None, registry: Mapping[str, Any] | None = None, kind: str | None = None
) -> list[Any]:
    """Resolve every name (see `resolve`) and refuse one of the other ``kind``, without building anything (cheap:
    run it before loading models). Returns the resolved targets."""
    targets = [resolve(name, registry) for name in name_list(names)]
    for name, target in zip(name_list(names), targets):
        _check_kind(name, target, kind)
    return targets


def build_reward_funcs(
    names: str | Sequence[str] | None,
    options: Any = None,
    flag: str = "reward_kwargs",
    *,
    registry: Mapping[str, Any] | None = None,
    kind: str | None = None,
    prepare: Callable[[str, Any, dict[str, Any]], dict[str, Any]] | None = None,
) -> list[Callable[..., Any]]:
    """Reward functions from names and their options (YAML mapping/list, or its JSON text), in order.

    Args:
        names: names or import paths (see `resolve`). options: ``{name: {option: value}}`` or a list of mappings in
            the order of ``names``. flag: the option's name, for errors. registry: the script's own name -> function
            mapping, looked up first. kind: ``"outcome"`` / ``"token"`` (see `build_reward_func`).
        prepare: ``prepare(name, target, options) -> options`` before building (the CLI shares the policy's weights).

    Raises:
        ValueError: unknown names (listing the valid ones), options for names not listed, bad options; before any
            function is built.
    """
    names = name_list(names)
    per_name = options_for(names, parse_options(options, flag), flag)
    targets = check_reward_names(names, registry, kind)  # every name checked before anything is built
    funcs = []
    for name, target, opts in zip(names, targets, per_name):
        if prepare is not None:
            opts = prepare(name, target, opts)
        funcs.append(build_reward_func(name, opts, registry, kind))
    return funcs
