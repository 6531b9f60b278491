"""TokenGRPOConfig: validation at creation, help metadata, YAML round trip through TrlParser."""

import dataclasses

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
