"""The pieces of the swap into a script's own classes: `TokenRewardConfigMixin` in a config subclass,
`with_token_fields`, `TokenRewardScriptArguments` next to a script's own `TrlParser` dataclasses, and rewards by
name or import path (factories, unknown names, outcome vs token kind)."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import dataclass, field, fields

import pytest
import trl
import yaml
from trl import ScriptArguments, TrlParser

from trl_token_ext import TokenGRPOConfig, TokenRewardConfigMixin, TokenRewardScriptArguments, with_token_fields
from trl_token_ext.config import require_token_fields
from trl_token_ext.registry import build_reward_func, build_reward_funcs, is_factory, resolve

TOKEN_FIELDS = {f.name for f in fields(TokenRewardConfigMixin)}
CPU = {"use_cpu": True, "report_to": "none"}


@dataclass
class ClientConfig(trl.GRPOConfig):
    """A script's own config: extra fields and a __post_init__ that counts its calls."""

    system_prompt: str | None = None
    chat_template: str | None = None
    post_init_calls: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.post_init_calls += 1


@dataclass
class MixedConfig(TokenRewardConfigMixin, ClientConfig):
    pass


@dataclass
class ClientScriptArguments(ScriptArguments):
    """A script's own arguments, with its own (outcome) `reward_funcs`, as open-r1's."""

    reward_funcs: list[str] = field(default_factory=lambda: ["accuracy"])


@dataclass
class SwappedScriptArguments(TokenRewardScriptArguments, ClientScriptArguments):
    pass


def get_penalty_reward(max_penalty: float, ngram: int = 2):
    """A factory in open-r1's style: cannot take `completions`, returns the reward function."""

    def penalty_reward(completions, **kwargs):
        return [max_penalty * ngram] * len(completions)

    return penalty_reward


def scaled_length(completions, scale=1.0, **kwargs):
    return [scale * len(c) for c in completions]


def strict_length(completions):
    return [float(len(c)) for c in completions]


def recipe(tmp_path, **values) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), **CPU, **values}))
    return str(path)


# --------------------------------------------------------------------------------------------- the config classes
@pytest.mark.parametrize(
    "make", [lambda: MixedConfig, lambda: with_token_fields(ClientConfig)], ids=["mixin", "helper"]
)
def test_a_scripts_config_with_token_fields_parses_yaml_and_runs_every_post_init_once(tmp_path, make):
    config_class = make()
    path = recipe(tmp_path, system_prompt="Be brief.", chat_template="{{ x }}", token_advantage_coef=0.25,
                  token_reward_weights=[0.5, 2.0])  # fmt: skip
    (config,) = TrlParser((config_class,)).parse_args_and_config(["--config", path, "--token_advantage_mode", "min"])
    assert isinstance(config, ClientConfig) and isinstance(config, TokenRewardConfigMixin)
    assert (config.system_prompt, config.chat_template) == ("Be brief.", "{{ x }}")
    assert (config.token_advantage_coef, config.token_reward_weights, config.token_advantage_mode) == (
        0.25,
        [0.5, 2.0],
        "min",
    )
    assert config.post_init_calls == 1  # the script's __post_init__, once
    with pytest.raises(ValueError, match="token_reward_gamma must be in"):  # the mixin's validation runs too
        config_class(output_dir=str(tmp_path), token_reward_gamma=2.0, **CPU)
    with pytest.raises(ValueError, match="divisible by num_generations"):  # and TRL's
        config_class(output_dir=str(tmp_path), per_device_train_batch_size=3, num_generations=2, **CPU)


def test_with_token_fields_keeps_the_name_is_cached_and_its_instances_pickle(tmp_path):
    merged = with_token_fields(ClientConfig)
    assert merged is with_token_fields(ClientConfig) and with_token_fields(merged) is merged
    assert with_token_fields(MixedConfig) is MixedConfig and with_token_fields(TokenGRPOConfig) is TokenGRPOConfig
    assert merged.__name__ == "ClientConfig" and issubclass(merged, ClientConfig)
    assert TOKEN_FIELDS <= {f.name for f in fields(merged)} and "system_prompt" in {f.name for f in fields(merged)}
    config = merged(output_dir=str(tmp_path), system_prompt="s", token_advantage_coef=0.5, **CPU)
    for restored in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):  # Trainer saves its args
        assert type(restored) is merged
        assert (restored.system_prompt, restored.token_advantage_coef) == ("s", 0.5)
    with pytest.raises(TypeError, match="takes a dataclass config class"):
        with_token_fields(dict)


@pytest.mark.parametrize("bases", [(trl.GRPOConfig,), (ClientConfig,), (trl.RLOOConfig,)], ids=lambda b: b[0].__name__)
def test_mixin_after_a_trl_config_is_refused_naming_the_right_order(bases):
    with pytest.raises(
        TypeError, match=rf"must come before .*`class Late\(TokenRewardConfigMixin, {bases[0].__name__}\)`"
    ):
        type("Late", (*bases, TokenRewardConfigMixin), {})


def test_mixin_after_a_user_class_that_chains_is_allowed(tmp_path):
    """(MyConfig, TokenGRPOConfig): the script's __post_init__ chains on through super(), so the mixin still runs."""

    @dataclass
    class Tagged:
        tag: str = "t"

        def __post_init__(self):
            super().__post_init__()

    merged = dataclass(type("Merged", (Tagged, TokenGRPOConfig), {}))
    with pytest.raises(ValueError, match="token_advantage_mode='sum'"):
        merged(output_dir=str(tmp_path), token_advantage_mode="sum", **CPU)


def test_require_token_fields_names_the_config_and_the_fix(tmp_path):
    require_token_fields(MixedConfig(output_dir=str(tmp_path), **CPU), "x")  # has them: no error
    with pytest.raises(TypeError) as error:
        require_token_fields(ClientConfig(output_dir=str(tmp_path), **CPU), "token_reward_funcs ['repetition']")
    message = str(error.value)
    assert "token_reward_funcs ['repetition'] needs the token fields" in message
    assert "`class ClientConfig(TokenRewardConfigMixin, GRPOConfig)`" in message
    assert "`ClientConfig = with_token_fields(ClientConfig)`" in message


# ------------------------------------------------------------------------------------- TokenRewardScriptArguments
@pytest.mark.parametrize("layout", ["base", "entry"])
def test_script_arguments_compose_with_a_scripts_own_reward_funcs(tmp_path, layout):
    """As a base of the script's arguments or as one more parser entry: no option clash with `reward_funcs`; dict
    options from YAML and, on the command line, from JSON."""
    classes = (SwappedScriptArguments,) if layout == "base" else (ClientScriptArguments, TokenRewardScriptArguments)
    parser = TrlParser((*classes, MixedConfig))
    path = recipe(
        tmp_path,
        reward_funcs=["accuracy", "format"],
        token_reward_funcs=["repetition"],
        token_reward_kwargs={"repetition": {"n": 2}},
    )
    parsed = parser.parse_args_and_config(["--config", path])
    script, token = (parsed[0], parsed[0]) if layout == "base" else parsed[:2]
    assert script.reward_funcs == ["accuracy", "format"]
    assert token.token_reward_funcs == ["repetition"] and token.token_reward_kwargs == {"repetition": {"n": 2}}
    argv = ["--config", path, "--token_reward_kwargs", json.dumps({"repetition": {"n": 4}})]
    token = parser.parse_args_and_config(argv)[0 if layout == "base" else 1]
    assert token.token_reward_kwargs == {"repetition": {"n": 4}}
    with pytest.raises(ValueError, match="--token_reward_kwargs must be a JSON object or list"):
        parser.parse_args_and_config(["--config", path, "--token_reward_kwargs", "{n: 4"])
    with pytest.raises(ValueError, match=r"token_reward_kwargs has options for \['other'\]"):
        parser.parse_args_and_config(["--config", path, "--token_reward_kwargs", '{"other": {}}'])


def test_a_scripts_own_post_init_after_it_still_runs():
    @dataclass
    class Checked(ScriptArguments):
        seen: bool = False

        def __post_init__(self):
            self.seen = True

    merged = dataclass(type("Merged", (TokenRewardScriptArguments, Checked), {}))
    args = merged(token_reward_funcs="repetition")
    assert args.seen and args.token_reward_funcs == ["repetition"]


def test_a_yaml_scalar_is_one_function_name():
    args = TokenRewardScriptArguments(token_reward_funcs="repetition", token_reward_kwargs='[{"n": 2}]')
    assert args.token_reward_funcs == ["repetition"] and args.token_reward_kwargs == [{"n": 2}]
    assert TokenRewardScriptArguments().build_token_reward_funcs(ClientConfig) == []  # none chosen: no check


def test_build_token_reward_funcs_checks_the_config_then_builds(tmp_path, tiny_tokenizer):
    args = TokenRewardScriptArguments(
        token_reward_funcs=["repetition", f"{__name__}:get_penalty_reward"],
        token_reward_kwargs={"repetition": {"n": 2}, f"{__name__}:get_penalty_reward": {"max_penalty": -0.5}},
    )
    with pytest.raises(TypeError, match=r"ClientConfig has none.*with_token_fields\(ClientConfig\)"):
        args.build_token_reward_funcs(ClientConfig(output_dir=str(tmp_path), **CPU))
    with pytest.raises(ValueError, match=r"token_reward_weights has 1 values for 2 token reward functions"):
        args.build_token_reward_funcs(MixedConfig(output_dir=str(tmp_path), token_reward_weights=[1.0], **CPU))
    bad = TokenRewardScriptArguments(token_reward_funcs=["repetitoin"])
    with pytest.raises(ValueError, match=r"Unknown reward function 'repetitoin'. Valid names are .*'repetition'"):
        bad.build_token_reward_funcs(MixedConfig(output_dir=str(tmp_path), token_reward_weights=[1.0, 2.0], **CPU))
    repetition, penalty = args.build_token_reward_funcs(MixedConfig(output_dir=str(tmp_path), **CPU))
    assert repetition.n == 2 and penalty.__name__ == "penalty_reward"
    assert penalty(prompts=["p"], completions=["a", "b"], completion_ids=[[1], [2]]) == [-1.0, -1.0]
    outcome = TokenRewardScriptArguments(token_reward_funcs=["accuracy_reward"])
    with pytest.raises(ValueError, match=r"'accuracy_reward' scores whole completions.*`reward_funcs`"):
        outcome.build_token_reward_funcs()


# ---------------------------------------------------------------------------------------------------- the registry
def test_a_factory_by_import_path_is_called_once_with_its_options():
    assert is_factory(get_penalty_reward) and not is_factory(scaled_length) and not is_factory(strict_length)
    assert not is_factory(TokenGRPOConfig) and not is_factory(print)
    func = build_reward_func(f"{__name__}:get_penalty_reward", {"max_penalty": -1.0, "ngram": 3})
    assert func.__name__ == "penalty_reward"
    assert func(prompts=["p"], completions=["a"], completion_ids=[[1]]) == [-3.0]  # no 'prompts' TypeError
    with pytest.raises(ValueError, match=r"'.*get_penalty_reward': invalid options \[\].*max_penalty"):
        build_reward_func(f"{__name__}:get_penalty_reward")
    with pytest.raises(ValueError, match=r"invalid options .*unexpected keyword argument 'window'"):
        build_reward_func(f"{__name__}:get_penalty_reward", {"max_penalty": 1.0, "window": 2})


def test_options_a_reward_function_cannot_take_are_refused_when_built():
    assert build_reward_func(f"{__name__}:scaled_length", {"scale": 2.0})(completions=["ab"]) == [4.0]
    with pytest.raises(ValueError, match=r"'.*strict_length': invalid options \['scale'\]"):
        build_reward_func(f"{__name__}:strict_length", {"scale": 2.0})


def test_outcome_rewards_by_name_get_the_clear_error_and_a_scripts_own_registry():
    registry = {"accuracy": strict_length, "penalty": get_penalty_reward}
    funcs = build_reward_funcs(
        ["accuracy", "penalty", f"{__name__}:scaled_length", "think_format_reward"],
        '{"penalty": {"max_penalty": -1.0}}',
        "reward_kwargs",
        registry=registry,
        kind="outcome",
    )
    assert funcs[0] is strict_length and funcs[1](completions=["x"]) == [-2.0] and funcs[2] is scaled_length
    assert funcs[3] is resolve("think_format_reward")
    built = []
    with pytest.raises(ValueError) as error:  # every name is checked before the first is built
        build_reward_funcs(["counted", "acuracy"], registry={**registry, "counted": lambda: built.append(1) or print})
    assert not built
    assert "Unknown reward function 'acuracy'. Valid names are ['accuracy', 'counted', 'penalty', " in str(error.value)
    with pytest.raises(ValueError, match=r"'repetition' is a token reward function.*`token_reward_funcs`"):
        build_reward_funcs(["repetition"], kind="outcome")
    with pytest.raises(ValueError, match="kind must be one of"):
        build_reward_funcs(["accuracy"], registry=registry, kind="sequence")


def test_the_cli_refuses_rewards_of_the_other_kind_before_loading_the_model(tmp_path):
    from trl_token_ext import cli

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "hi"}))
    base = {"model_name_or_path": str(tmp_path / "no-such-model"), "dataset_name": str(data), "bf16": False}
    for values, message in [
        ({"reward_funcs": ["repetition"]}, "'repetition' is a token reward function"),
        ({"token_reward_funcs": ["think_format_reward"]}, "'think_format_reward' scores whole completions"),
    ]:
        with pytest.raises(ValueError, match=message):  # not an OSError from the missing model
            cli.main(["grpo", "--config", recipe(tmp_path, **base, **values)])
