"""Token reward functions chosen from a script's YAML recipe or command line, next to any script's own arguments.

    @dataclass
    class ScriptArguments(TokenRewardScriptArguments, trl.ScriptArguments):  # or a parser entry of its own
        reward_funcs: list[str] = ...                                        # the script's own fields: no clash

    trainer = TokenGRPOTrainer(..., token_reward_funcs=script_args.build_token_reward_funcs(training_args))

Every field is ``token_``-prefixed, so the dataclass composes with other scripts' `trl.TrlParser` dataclasses
(open-r1's ``reward_funcs``, TRL's ``ScriptArguments``) without clashing options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trl_token_ext.config import require_token_fields
from trl_token_ext.registry import build_reward_funcs, parse_reward_args, resolve


@dataclass
class TokenRewardScriptArguments:
    """Token reward functions by registered name or import path, with their options (YAML, or JSON on the command
    line). Use it as a base of a script's arguments (first in the bases) or as one more `trl.TrlParser` dataclass.

    Parameters:
        token_reward_funcs (`list[str]` or `None`, *optional*, defaults to `None`):
            Registered names (`repetition`, `logprob_quality`, `sentence_classifier`, ...) or import paths
            (`my_pkg.rewards:my_token_reward`); a factory (a function that cannot take `completions`) is called once
            with its options.
        token_reward_kwargs (`dict`, `list` or `str`, *optional*, defaults to `None`):
            Options per function: `{name: {option: value}}` or a list of mappings in the order of
            `token_reward_funcs`; on the command line the same as JSON text.
    """

    token_reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Token reward functions: registered names (`repetition`, `reference_consistency`, "
            "`self_consistency`, `logprob_quality`, `implicit_prm`, `lexicon_quality`, `token_classifier`, "
            "`sentence_classifier`, ...) or import paths (`my_pkg.rewards:my_token_reward`); a factory (a function "
            "that cannot take `completions`) is called once with its options. Weighted by `token_reward_weights`."
        },
    )
    token_reward_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Options of the token reward functions: {name: {option: value}} or a list in the order of "
            '`token_reward_funcs` (YAML, or JSON on the command line: \'{"repetition": {"n": 2}}\').'
        },
    )

    def __post_init__(self):
        self.token_reward_funcs, self.token_reward_kwargs = parse_reward_args(
            self.token_reward_funcs, self.token_reward_kwargs, "token_reward_kwargs"
        )
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # a script's own arguments after this class in the bases
            parent()

    def build_token_reward_funcs(
        self,
        config: Any = None,
        *,
        registry: Mapping[str, Any] | None = None,
        prepare: Callable[[str, Any, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> list[Callable[..., Any]]:
        """The ``token_reward_funcs`` to give `TokenGRPOTrainer` / `TokenRLOOTrainer` (``[]`` when none are chosen).

        Args:
            config: the training config; with functions chosen it must have the token fields (else a TypeError names
                the fix) and one ``token_reward_weights`` entry per function, checked before anything is built.
            registry: the script's own name -> function mapping, looked up before the registered names.
            prepare: ``prepare(name, target, options) -> options`` before each function is built.

        Raises:
            TypeError: ``config`` has no token fields. ValueError: unknown names (listing the valid ones), an outcome
                reward as a token reward, bad options, or a weight count that does not match.
        """
        names = self.token_reward_funcs or []
        if names and config is not None:
            require_token_fields(config, f"token_reward_funcs {names}")
            for name in names:  # unknown names first: a clearer error than a weight count
                resolve(name, registry)
            weights = config.token_reward_weights
            if weights is not None and len(weights) != len(names):
                raise ValueError(
                    f"token_reward_weights has {len(weights)} values for {len(names)} token reward functions "
                    f"{names}; give one weight per function."
                )
        return build_reward_funcs(
            names, self.token_reward_kwargs, "token_reward_kwargs", registry=registry, kind="token", prepare=prepare
        )
