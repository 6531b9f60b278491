"""TokenGRPOConfig: validation at creation, help metadata, YAML round trip through TrlParser."""

import dataclasses
import math

import pytest
import yaml
from trl import TrlParser

from trl_token_ext import TokenGRPOConfig
from trl_token_ext.config import TokenRewardConfigMixin

TOKEN_FIELDS = [f.name for f in dataclasses.fields(TokenRewardConfigMixin)]


def make(tmp_path, **kwargs):
    return TokenGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_advantage_mode": "sum"}, r"token_advantage_mode='sum' is not supported.*reward_to_go"),
        ({"token_reward_normalization": "prompt"}, r"token_reward_normalization='prompt' is not supported"),
        ({"token_advantage_baseline": "mean"}, r"token_advantage_baseline='mean' is not supported.*'position'"),
        ({"token_kl_estimator": "k4"}, r"token_kl_estimator='k4' is not supported.*'k3'"),
        ({"token_reward_gamma": 1.5}, r"token_reward_gamma must be in \[0, 1\], got 1.5"),
        ({"token_advantage_coef": float("nan")}, r"token_advantage_coef must be a finite number"),
        ({"token_reward_epsilon": 0.0}, r"token_reward_epsilon must be a finite number > 0"),
        ({"token_reward_weights": [1.0, float("inf")]}, r"token_reward_weights must be finite"),
    ],
)
def test_invalid_values_rejected_at_creation(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **kwargs)


def test_every_token_field_has_help():
    for field in dataclasses.fields(TokenRewardConfigMixin):
        assert field.metadata.get("help"), field.name


def test_parent_validation_still_runs(tmp_path):
    with pytest.raises(ValueError, match="must be divisible by num_generations"):
        make(tmp_path, per_device_train_batch_size=4, num_generations=3)


def test_yaml_round_trip_through_trl_parser(tmp_path):
    recipe = {
        "output_dir": str(tmp_path / "out"),
        "use_cpu": True,
        "token_reward_weights": [1.0, 0.5],
        "token_advantage_coef": 0.25,
        "token_reward_gamma": 0.9,
        "token_advantage_mode": "min",
        "token_reward_normalization": "batch",
        "token_advantage_scale": True,
        "num_generations": 4,
        "per_device_train_batch_size": 4,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    (config,) = TrlParser((TokenGRPOConfig,)).parse_args_and_config(["--config", str(path)])
    for key, value in recipe.items():
        assert getattr(config, key) == value, key
    (from_flags,) = TrlParser((TokenGRPOConfig,)).parse_args_and_config(
        [
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "--token_reward_weights",
            "2.0",
            "3.0",
            "--token_advantage_mode",
            "immediate",
        ]
    )
    assert from_flags.token_reward_weights == [2.0, 3.0]
    assert from_flags.token_advantage_mode == "immediate"


def test_help_lists_token_options(capsys):
    with pytest.raises(SystemExit):
        TrlParser((TokenGRPOConfig,)).parse_args_and_config(["--help"])
    text = capsys.readouterr().out
    for name in TOKEN_FIELDS:
        assert f"--{name}" in text


def make_config(tmp_path, **kwargs):
    return TokenGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 0.5])
def test_gamma_bounds_are_inclusive(tmp_path, gamma):
    assert make_config(tmp_path, token_reward_gamma=gamma).token_reward_gamma == gamma


@pytest.mark.parametrize("gamma", [-0.1, 1.0001])
def test_gamma_outside_the_unit_interval_is_rejected(tmp_path, gamma):
    with pytest.raises(ValueError, match=rf"token_reward_gamma must be in \[0, 1\], got {gamma}"):
        make_config(tmp_path, token_reward_gamma=gamma)


def test_token_field_defaults(tmp_path):
    config = make_config(tmp_path)
    assert config.token_reward_weights is None
    assert config.token_advantage_coef == 1.0
    assert config.token_reward_gamma == 1.0
    assert config.token_advantage_mode == "reward_to_go"
    assert config.token_reward_normalization == "group"
    assert config.token_advantage_scale is False
    assert config.token_reward_epsilon == 1e-4


def test_negative_epsilon_and_infinite_coef_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"token_reward_epsilon must be a finite number > 0, got -0.0001"):
        make_config(tmp_path, token_reward_epsilon=-1e-4)
    with pytest.raises(ValueError, match="token_advantage_coef must be a finite number, got inf"):
        make_config(tmp_path, token_advantage_coef=float("inf"))
    config = make_config(tmp_path, token_advantage_coef=-0.5, token_reward_weights=[-1.0, 2])
    assert (config.token_advantage_coef, config.token_reward_weights) == (-0.5, [-1.0, 2])


# --- numbers in config fields (issue 13) -------------------------------------------------------------------------
def test_config_coerces_scalars_and_numeric_strings(tmp_path):
    args = TokenGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        token_reward_weights=1.0,
        token_advantage_coef="0.5",
        token_reward_gamma="1",
    )
    assert args.token_reward_weights == [1.0] and args.token_advantage_coef == 0.5 and args.token_reward_gamma == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_advantage_coef": "half"}, r"token_advantage_coef must be a real number, got str 'half'"),
        ({"token_reward_weights": [1.0, "x"]}, r"token_reward_weights\[1\] must be a real number, got str 'x'"),
        ({"token_reward_epsilon": math.inf}, r"token_reward_epsilon must be a finite number > 0, got inf"),
        ({"token_reward_gamma": None}, r"token_reward_gamma must be a real number, got None"),
        ({"token_advantage_coef": True}, r"token_advantage_coef must be a real number, got True"),
    ],
)
def test_config_errors_name_the_field(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenGRPOConfig(output_dir=str(tmp_path), use_cpu=True, **kwargs)
