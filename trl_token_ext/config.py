"""Token-reward configuration fields, defined once and mixed into TRL's GRPO and RLOO configs, or into any subclass
of them (a script's own config class): `TokenRewardConfigMixin` first in the bases, or `with_token_fields(cls)`."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

TOKEN_ADVANTAGE_MODES = ("reward_to_go", "immediate", "min")
TOKEN_REWARD_NORMALIZATIONS = ("group", "batch", "none")
TOKEN_ADVANTAGE_BASELINES = ("position", "token_mean")
TOKEN_KL_ESTIMATORS = ("k1", "k2", "k3")


def _choice_field(default: str, choices: tuple[str, ...], help: str) -> Any:
    """A string field limited to ``choices``: listed for the parser (``--help``, argparse's check) and checked by
    `TokenRewardConfigMixin` when set in Python."""
    if default not in choices:
        raise ValueError(f"_choice_field: default {default!r} is not among {choices}.")
    return field(default=default, metadata={"help": help, "choices": list(choices)})


@dataclass
class TokenRewardConfigMixin:
    """Fields shared by `TokenGRPOConfig` and `TokenRLOOConfig`.

    Put first in the bases of any dataclass subclass of a TRL config, yours included::

        @dataclass
        class GRPOConfig(TokenRewardConfigMixin, trl.GRPOConfig):  # or (TokenRewardConfigMixin, MyGRPOConfig)
            system_prompt: str | None = None

    Its ``__post_init__`` validates the token fields, then defers to the next ``__post_init__`` (yours, then TRL's).
    A class that puts it after a TRL config is refused at definition (TRL's ``__post_init__`` does not chain on, so
    the token fields would go unchecked). `with_token_fields` builds the merged class from a config class you import.

    Parameters:
        > Parameters that control the token rewards (in addition to those of the TRL config)

        token_reward_weights (`list[float]` or `None`, *optional*, defaults to `None`):
            Weight w_k of each token reward function: r_t = Σ_k w_k · g_k(x, y)_t, one per function in
            `token_reward_funcs`. If `None`, every weight is `1.0`.
        token_advantage_coef (`float`, *optional*, defaults to `1.0`):
            λ in A_t = A_out + λ · A_tok_t. With `0.0` the trainer computes exactly the stock advantages (token reward
            functions are still called and logged).
        token_reward_gamma (`float`, *optional*, defaults to `1.0`):
            Discount γ in [0, 1] of the `"reward_to_go"` token advantage: A_tok_t = Σ_{j≥t} γ^(j-t) r̃_j.
        token_advantage_mode (`str`, *optional*, defaults to `"reward_to_go"`):
            How normalized token rewards r̃ become token advantages: `"reward_to_go"`, `"immediate"` (r̃_t) or
            `"min"` (min_{j≥t} r̃_j).
        token_advantage_baseline (`str`, *optional*, defaults to `"position"`):
            What the token credit is compared with. `"position"` (length-neutral): each function's raw rewards are
            accumulated by `token_advantage_mode`, then the mean credit of the group's completions at the same position
            is subtracted and the result divided by its std (`token_reward_normalization`) before the weights apply; a
            token with reward 0 adds nothing, and completions of equal return get equal credit whatever their length.
            `"token_mean"` (before 0.1.0): Σ_k w_k·g_k is standardized over all tokens of the group, then accumulated;
            this makes neutral tokens negative and, summed to the end, pushes short completions up.
        token_reward_normalization (`str`, *optional*, defaults to `"group"`):
            The std that puts token credit on the outcome advantage's scale: over the valid tokens of a prompt's
            group of completions (`"group"`), of the whole batch across processes (`"batch"`), or none (`"none"`:
            raw reward units). With `token_advantage_baseline="token_mean"`, the standardization of the weighted
            rewards before accumulation.
        token_advantage_scale (`bool`, *optional*, defaults to `False`):
            Divide the accumulated token advantages by their std over the valid tokens of the batch.
        token_reward_epsilon (`float`, *optional*, defaults to `0.0001`):
            ε added to the std in token reward normalization.
        token_kl_coef (`float`, *optional*, defaults to `0.0`):
            β_kl of the per-token KL in the reward, r^KL_t = -β_kl · k(log π_old - log π_ref), added as one more token
            reward (`0.0`: off). TRL's loss-side KL (`beta`) is left as it is.
        token_kl_estimator (`str`, *optional*, defaults to `"k1"`):
            Estimator k of that KL: `"k1"` (log-ratio), `"k2"` (½ log-ratio²) or `"k3"` (exp(-log-ratio) - 1 +
            log-ratio).
    """

    token_reward_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Weight w_k of each token reward function: r_t = sum_k w_k * g_k(x, y)_t. One weight per "
            "function in `token_reward_funcs`. If `None`, every weight is 1.0."
        },
    )
    token_advantage_coef: float = field(
        default=1.0,
        metadata={
            "help": "λ in A_t = A_out + λ * A_tok_t. With 0.0 the trainer computes exactly the stock advantages "
            "(token reward functions are still called and logged)."
        },
    )
    token_reward_gamma: float = field(
        default=1.0,
        metadata={
            "help": "Discount γ in [0, 1] of the `reward_to_go` token advantage: A_tok_t = Σ_{j≥t} γ^(j-t) r̃_j."
        },
    )
    token_advantage_mode: str = _choice_field(
        "reward_to_go",
        TOKEN_ADVANTAGE_MODES,
        "How normalized token rewards r̃ become token advantages: 'reward_to_go' (Σ_{j≥t} γ^(j-t) r̃_j, "
        "the policy-gradient credit), 'immediate' (r̃_t), or 'min' (min_{j≥t} r̃_j, min-form credit).",
    )
    token_advantage_baseline: str = _choice_field(
        "position",
        TOKEN_ADVANTAGE_BASELINES,
        "What token credit is compared with. 'position' (length-neutral): per function, accumulate the "
        "raw rewards by token_advantage_mode, subtract the mean credit of the group's completions at the same "
        "position, divide by the std of token_reward_normalization, then weight: tokens with reward 0 add nothing "
        "and equal-return completions get equal credit whatever their length. 'token_mean' (before 0.1.0): "
        "standardize sum_k w_k * g_k over all tokens of the group, then accumulate (pushes short completions up).",
    )
    token_reward_normalization: str = _choice_field(
        "group",
        TOKEN_REWARD_NORMALIZATIONS,
        "The std that puts token credit on the outcome advantage's scale: over the valid tokens of a "
        "prompt's group ('group'), of the whole batch across processes ('batch'), or none ('none': raw reward "
        "units). With token_advantage_baseline='token_mean': (r - mean) / (std + eps) of the weighted rewards "
        "before accumulation.",
    )
    token_advantage_scale: bool = field(
        default=False,
        metadata={
            "help": "Divide the accumulated token advantages by their std over the valid tokens of the batch, so that "
            "`reward_to_go` (whose std grows with length) stays on the scale of the outcome advantage."
        },
    )
    token_reward_epsilon: float = field(
        default=1e-4,
        metadata={"help": "ε added to the std in token reward normalization (TRL uses 1e-4 for outcome rewards)."},
    )

    token_kl_coef: float = field(
        default=0.0,
        metadata={
            "help": "β_kl of the per-token KL penalty folded into the token reward: r_t += -β_kl * k(log π_θ(y_t) - "
            "log π_ref(y_t)) (verl's use_kl_in_reward). 0.0 disables it. Independent of TRL's loss-side KL (`beta`); "
            "the reference is TRL's when beta > 0, else the adapter-disabled policy (PEFT) or a frozen copy of the "
            "initial policy. See docs/kl_in_reward.md."
        },
    )
    token_kl_estimator: str = _choice_field(
        "k1",
        TOKEN_KL_ESTIMATORS,
        "Estimator k of the per-token KL in the reward: 'k1' (log-ratio), 'k2' (½ log-ratio²) or 'k3' "
        "(exp(-log-ratio) - 1 + log-ratio).",
    )

    def __init_subclass__(cls, **kwargs):
        """Refuse a class whose MRO puts a TRL / transformers config before this mixin: their ``__post_init__`` does
        not chain on (``TrainingArguments``'s ends the chain), so the token fields would never be validated."""
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        before = [base for base in mro[: mro.index(TokenRewardConfigMixin)] if _is_library_config(base)]
        if before:
            others = ", ".join(base.__name__ for base in cls.__bases__ if base is not TokenRewardConfigMixin)
            raise TypeError(
                f"{cls.__name__}: TokenRewardConfigMixin must come before {before[0].__name__} in the method "
                f"resolution order, or the token fields are never validated: write `class {cls.__name__}("
                f"TokenRewardConfigMixin, {others})`, or use `with_token_fields(...)`."
            )

    def __post_init__(self):
        self._validate_token_fields()
        super().__post_init__()

    def _validate_token_fields(self) -> None:
        self.token_advantage_coef = _real_number("token_advantage_coef", self.token_advantage_coef)
        self.token_reward_gamma = _real_number("token_reward_gamma", self.token_reward_gamma)
        self.token_reward_epsilon = _real_number("token_reward_epsilon", self.token_reward_epsilon)
        self.token_kl_coef = _real_number("token_kl_coef", self.token_kl_coef)
        if self.token_reward_weights is not None:
            weights = self.token_reward_weights
            if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
                weights = [weights]  # a YAML scalar `token_reward_weights: 1.0` is one weight
            self.token_reward_weights = [
                _real_number(f"token_reward_weights[{index}]", weight) for index, weight in enumerate(weights)
            ]
        for choice in dataclasses.fields(TokenRewardConfigMixin):
            choices, value = choice.metadata.get("choices"), getattr(self, choice.name)
            if choices is not None and value not in choices:
                raise ValueError(f"{choice.name}={value!r} is not supported; choose one of {choices}.")
        if not (0.0 <= self.token_reward_gamma <= 1.0):
            raise ValueError(f"token_reward_gamma must be in [0, 1], got {self.token_reward_gamma}.")
        if not math.isfinite(self.token_advantage_coef):
            raise ValueError(f"token_advantage_coef must be a finite number, got {self.token_advantage_coef}.")
        if not (self.token_reward_epsilon > 0 and math.isfinite(self.token_reward_epsilon)):
            raise ValueError(f"token_reward_epsilon must be a finite number > 0, got {self.token_reward_epsilon}.")
        if not (math.isfinite(self.token_kl_coef) and self.token_kl_coef >= 0.0):
            raise ValueError(f"token_kl_coef must be a finite number >= 0, got {self.token_kl_coef}.")
        bad = [w for w in self.token_reward_weights or [] if not math.isfinite(w)]
        if bad:
            raise ValueError(f"token_reward_weights must be finite numbers, got {self.token_reward_weights}.")


def _real_number(name: str, value: Any) -> float:
    """``value`` as a float (numbers and numeric strings such as ``"0.5"``); a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}.") from None


def _is_library_config(cls: type) -> bool:
    """A config class defined by transformers or TRL (their ``__post_init__`` chain stops at TrainingArguments)."""
    return cls.__module__.split(".", 1)[0] in ("transformers", "trl")


def _rebuild_with_token_fields(config_class: type, state: dict[str, Any]) -> Any:
    """Unpickle an instance of ``with_token_fields(config_class)`` (the merged class is rebuilt, not imported)."""
    merged = with_token_fields(config_class)
    instance = merged.__new__(merged)
    instance.__dict__.update(state)
    return instance


@functools.cache
def with_token_fields(config_class: type) -> type:
    """``config_class`` with the token fields: a dataclass ``(TokenRewardConfigMixin, config_class)`` of the same name.

    For a config class you import rather than define (``GRPOConfig = with_token_fields(GRPOConfig)`` after
    ``from my_project.configs import GRPOConfig``): TrlParser, YAML recipes, the class's own fields and its
    ``__post_init__`` work as before, plus every token field. The same class is returned on every call (and
    ``config_class`` itself if it already has the token fields); instances pickle (Trainer saves its args).

    Raises:
        TypeError: ``config_class`` is not a dataclass class.
    """
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        raise TypeError(
            f"with_token_fields takes a dataclass config class (a subclass of trl.GRPOConfig / trl.RLOOConfig), got "
            f"{config_class!r}."
        )
    if issubclass(config_class, TokenRewardConfigMixin):
        return config_class
    namespace = {
        "__module__": config_class.__module__,
        "__qualname__": config_class.__qualname__,
        "__doc__": config_class.__doc__,
        "__reduce__": lambda self: (_rebuild_with_token_fields, (config_class, dict(self.__dict__))),
    }
    return dataclass(type(config_class.__name__, (TokenRewardConfigMixin, config_class), namespace))


def require_token_fields(config: Any, what: str) -> None:
    """Raise a TypeError naming the fix when ``config`` (a training config) has no token fields but ``what`` needs
    them: token settings it would silently ignore."""
    if isinstance(config, TokenRewardConfigMixin):
        return
    name = type(config).__name__
    bases = ", ".join(base.__name__ for base in type(config).__bases__ if base is not object)
    raise TypeError(
        f"{what} needs the token fields (token_reward_weights, token_advantage_coef, ...) on the training config, but "
        f"{name} has none, so they could not be set from its YAML or command line. Give it the token fields: "
        f"`class {name}(TokenRewardConfigMixin, {bases})` (the mixin first, under @dataclass), or "
        f"`{name} = with_token_fields({name})` before the parser is built (both from trl_token_ext); for TRL's own "
        "config, TokenGRPOConfig / TokenRLOOConfig."
    )
