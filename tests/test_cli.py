"""`trl-token` CLI (TrlParser recipes, 4-bit + LoRA training of a tiny model) and the reward registry."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import yaml

from trl_token_ext import cli
from trl_token_ext.registry import BoundRewardFunc, build_reward_func, options_for, registered_names, resolve

RECIPES = sorted((Path(__file__).resolve().parents[1] / "examples" / "recipes").glob("*.yaml"))


def length_reward(completions, scale=1.0, **kwargs):
    """Outcome reward used through its import path."""
    return [scale * len(c) for c in completions]


def first_half(completion_ids, **kwargs):
    return [[1.0 if t < len(ids) / 2 else -1.0 for t in range(len(ids))] for ids in completion_ids]


# ------------------------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("path", [f"{__name__}:length_reward", f"{__name__}.length_reward"])
def test_registry_resolves_import_paths(path):
    assert resolve(path) is length_reward


def test_function_with_options_is_bound_and_picklable():
    func = build_reward_func(f"{__name__}:length_reward", {"scale": 2.0})
    assert isinstance(func, BoundRewardFunc) and func.__name__ == "length_reward"
    assert func(completions=["abc", "de"]) == [6.0, 4.0]
    assert pickle.loads(pickle.dumps(func))(completions=["abcd"]) == [8.0]
    assert build_reward_func(f"{__name__}:length_reward") is length_reward


def test_builtin_scorer_by_name_gets_its_options(tiny_tokenizer):
    scorer = build_reward_func("repetition", {"n": 2, "penalty": -1.0})
    ids = [[40, 41, 40, 41, 40]]  # bigrams (40,41) (41,40) (40,41)* (41,40)*: the last two tokens repeat a bigram
    out = scorer(prompts=["p"], completions=["c"], completion_ids=ids, processing_class=tiny_tokenizer)
    assert [list(map(float, row)) for row in out] == [[0.0, 0.0, 0.0, -1.0, -1.0]]
    default = build_reward_func("repetition")  # n=3: (40,41,40) then (41,40,41), (40,41,40)* repeats
    out = default(prompts=["p"], completions=["c"], completion_ids=ids, processing_class=tiny_tokenizer)
    assert [list(map(float, row)) for row in out] == [[0.0, 0.0, 0.0, 0.0, -1.0]]
    with pytest.raises(ValueError, match=r"'repetition': invalid options \['window'\]"):
        build_reward_func("repetition", {"window": 3})


def test_every_registered_name_resolves_to_a_callable():
    for name in registered_names():
        assert callable(resolve(name)), name
    assert {"repetition", "logprob_quality", "sentence_classifier", "accuracy_reward"} <= set(registered_names())


def test_register_reward_by_object_string_and_factory(monkeypatch):
    from trl_token_ext import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_FACTORIES", set(registry._FACTORIES))
    registry.register_reward("my_length", length_reward)
    registry.register_reward("my_half", f"{__name__}:first_half")
    registry.register_reward("my_scaled", lambda scale: BoundRewardFunc(length_reward, {"scale": scale}), factory=True)
    assert build_reward_func("my_length") is length_reward and resolve("my_half") is first_half
    assert build_reward_func("my_scaled", {"scale": 3.0})(completions=["ab"]) == [6.0]
    assert {"my_length", "my_half", "my_scaled"} <= set(registered_names())
    with pytest.raises(ValueError, match="must be 'module:attribute'"):
        registry.register_reward("bad", "no_colon")


def test_trl_factory_gets_trl_script_defaults():
    func = build_reward_func("get_soft_overlong_punishment")  # as `trl grpo`: max 1280, cache 256
    assert func(completion_ids=[[0] * 1024, [0] * 1280]) == [0.0, -1.0]


def test_unknown_reward_name_lists_registered_names():
    with pytest.raises(ValueError, match=r"Unknown reward function 'repetitoin'") as error:
        resolve("repetitoin")
    assert "'logprob_quality'" in str(error.value) and "'repetition'" in str(error.value)
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg.rewards'"):
        resolve("no_such_pkg.rewards:f")


# ------------------------------------------------------------------------------------------------------------ CLI
def test_grpo_help_lists_token_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["grpo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--token_reward_funcs",
        "--token_reward_kwargs",
        "--token_reward_weights",
        "--token_advantage_coef",
        "--token_advantage_mode",
        "--reward_funcs",
        "--load_in_4bit",
        "--use_peft",
        "--lora_target_modules",
    ):
        assert flag in text, flag


def test_unknown_command_and_missing_delegate(capsys):
    assert cli.main(["ppo"]) == 2
    assert "unknown command 'ppo'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"trl-token demo is not available: trl_token_ext.no_such_module.main"):
        cli._delegate("demo", "trl_token_ext.no_such_module", "main", [])


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_parse_with_4bit_lora_and_registered_scorers(recipe):
    parser = cli.make_parser("grpo")
    script_args, reward_args, training_args, model_args, _ = parser.parse_args_and_config(
        ["--config", str(recipe), "--bf16", "false", "--use_cpu", "true"]  # this machine has no GPU
    )
    assert model_args.load_in_4bit and model_args.use_peft and model_args.use_bnb_nested_quant
    assert model_args.bnb_4bit_quant_type == "nf4" and training_args.gradient_checkpointing
    assert reward_args.token_reward_funcs and script_args.dataset_name
    for name in (reward_args.reward_funcs or []) + reward_args.token_reward_funcs:
        assert callable(resolve(name)), name
    options_for(reward_args.token_reward_funcs, reward_args.token_reward_kwargs, "token_reward_kwargs")


def test_command_line_overrides_recipe_and_parses_json_options(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"output_dir": str(tmp_path), "max_steps": 5, "use_cpu": True, "token_reward_funcs": ["a"]})
    )
    parser = cli.make_parser("grpo")
    argv = ["--config", str(recipe), "--max_steps", "2", "--token_reward_kwargs", '{"a": {"n": 2}}']
    _, reward_args, training_args, _, _ = parser.parse_args_and_config(argv)
    assert training_args.max_steps == 2 and reward_args.token_reward_kwargs == {"a": {"n": 2}}
    with pytest.raises(ValueError, match=r"token_reward_kwargs has options for \['b'\]"):
        options_for(["a"], {"b": {}}, "token_reward_kwargs")
    with pytest.raises(ValueError, match=r"lists 2 option mappings for 1 functions"):
        options_for(["a"], [{}, {}], "token_reward_kwargs")


@pytest.fixture(scope="module")
def tiny64_dir(tmp_path_factory):
    from trl_token_ext.testing import save_tiny_causal_lm

    return str(save_tiny_causal_lm(tmp_path_factory.mktemp("tiny64-cli"), hidden_size=64))


def write_recipe(tmp_path: Path, model_dir: str, **overrides) -> Path:
    data = tmp_path / "prompts.jsonl"
    prompts = ["The movie was", "I loved this", "The food was", "A cat sat", "It is a", "What a bad"]
    data.write_text("\n".join(json.dumps({"prompt": p}) for p in prompts * 2))
    recipe = {
        "model_name_or_path": model_dir,
        "dtype": "float32",
        "load_in_4bit": True,
        "use_bnb_nested_quant": True,
        "use_peft": True,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "lora_target_modules": ["q_proj", "v_proj", "up_proj"],
        "dataset_name": str(data),
        "reward_funcs": [f"{__name__}:length_reward"],
        "reward_kwargs": {f"{__name__}:length_reward": {"scale": 0.5}},
        "token_reward_funcs": ["logprob_quality", "repetition", f"{__name__}.first_half"],
        "token_reward_kwargs": {"logprob_quality": {"model": "policy"}, "repetition": {"n": 2}},
        "token_reward_weights": [1.0, 0.5, 0.25],
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 6,
        "num_generations": 3,
        "max_completion_length": 8,
        "max_steps": 1,
        "beta": 0.1,
        "learning_rate": 0.05,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
        "logging_steps": 1,
        "seed": 0,
    }
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_cli_trains_4bit_lora_tiny_model_from_yaml_recipe(tmp_path, tiny64_dir, monkeypatch):
    from peft import PeftModel

    from trl_token_ext.models import SharedBaseModel

    trainers = []
    run_training = cli.run_training
    monkeypatch.setattr(cli, "run_training", lambda *a, **k: trainers.append(run_training(*a, **k)) or trainers[-1])
    recipe = write_recipe(tmp_path, tiny64_dir)
    assert cli.main(["grpo", "--config", str(recipe), "--max_steps", "2"]) == 0

    (trainer,) = trainers
    assert trainer.state.global_step == 2  # the command line overrode the recipe's max_steps: 1
    assert isinstance(trainer.model, PeftModel) and trainer.ref_model is None
    assert trainer.model.get_base_model().is_loaded_in_4bit
    judge, repetition, half = trainer.token_reward_funcs
    assert isinstance(judge.model, SharedBaseModel) and judge.model.model is trainer.model.get_base_model()
    assert repetition.n == 2 and half.__name__ == "first_half"
    assert trainer.reward_funcs[0].options == {"scale": 0.5}
    logs = {key: value for entry in trainer.state.log_history for key, value in entry.items()}
    assert logs["token_rewards/logprob_quality/mean"] <= 0.0  # log-probs of the frozen base
    assert math.isfinite(logs["token_rewards/logprob_quality/mean"])
    assert logs["token_rewards/first_half/std"] > 0.9  # ±1 per token
    # completions have up to 8 characters and scale 0.5: the outcome reward is half the completion's length
    assert 0.0 <= logs["rewards/length_reward/mean"] <= 0.5 * 8 * 4
    assert (tmp_path / "out" / "adapter_config.json").exists()  # LoRA adapter saved, not the 4-bit base


def test_cli_unknown_reward_and_policy_sharing_without_lora(tmp_path, tiny64_dir):
    recipe = write_recipe(tmp_path, tiny64_dir, token_reward_funcs=["repetitoin"], token_reward_kwargs=None)
    with pytest.raises(ValueError, match=r"Unknown reward function 'repetitoin'.*'repetition'"):
        cli.main(["grpo", "--config", str(recipe)])
    recipe = write_recipe(
        tmp_path,
        tiny64_dir,
        load_in_4bit=False,
        use_peft=False,
        token_reward_weights=None,
        token_reward_funcs=["logprob_quality"],
        token_reward_kwargs={"logprob_quality": {"model": "policy"}},
    )
    with pytest.raises(
        ValueError, match=r"'logprob_quality': model='policy' shares the policy's base model.*use_peft"
    ):
        cli.main(["grpo", "--config", str(recipe)])
    recipe = write_recipe(tmp_path, tiny64_dir, use_peft=False)
    with pytest.raises(ValueError, match=r"load_in_4bit=True needs use_peft=True"):
        cli.main(["grpo", "--config", str(recipe)])


@pytest.mark.slow
def test_swap_in_example_runs_under_accelerate_launch_with_two_processes():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "examples/swap_in_grpo.py", "--tiny"]
    out = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "token_rewards/repetition_consistency/mean" in out.stdout + out.stderr


@pytest.mark.parametrize("command", ["grpo", "rloo"])
def test_token_rewards_only_recipe_trains_with_zero_outcome_reward(command, tmp_path, tiny_model_dir, monkeypatch):
    if command == "rloo":
        pytest.importorskip("trl_token_ext.trainers.rloo")
    trainers = []
    run_training = cli.run_training
    monkeypatch.setattr(cli, "run_training", lambda *a, **k: trainers.append(run_training(*a, **k)) or trainers[-1])
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        load_in_4bit=False,
        use_peft=False,
        beta=0.0,
        reward_funcs=None,
        reward_kwargs=None,
        token_reward_funcs=[f"{__name__}:first_half"],
        token_reward_kwargs=None,
        token_reward_weights=None,
    )
    assert cli.main([command, "--config", str(recipe)]) == 0
    (trainer,) = trainers
    assert type(trainer).__name__ == f"Token{command.upper()}Trainer"
    assert [f.__name__ for f in trainer.reward_funcs] == ["zero"]
    logs = {key: value for entry in trainer.state.log_history for key, value in entry.items()}
    assert logs["rewards/zero/mean"] == 0.0 and logs["token_rewards/first_half/std"] > 0.9
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_scorer_model_by_path_loads_in_4bit_when_the_recipe_does(tiny64_dir, tiny_model_dir):
    import bitsandbytes as bnb
    from trl import ModelConfig

    model_args = ModelConfig(model_name_or_path=tiny_model_dir, load_in_4bit=True, use_peft=True)
    options = [  # a list: one name used three times
        {"model": tiny64_dir},
        {"model": tiny64_dir, "model_init_kwargs": {"load_in_4bit": False}},
        {"model": tiny64_dir, "model_init_kwargs": {"dtype": "float32"}},
    ]
    judge, full_precision, typed = cli.build_reward_funcs(
        ["logprob_quality"] * 3, options, "token_reward_kwargs", None, model_args
    )
    assert isinstance(judge.model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert judge.model_init_kwargs.quantization_config.load_in_4bit  # the policy's NF4 settings
    assert type(full_precision.model.model.layers[0].self_attn.q_proj).__name__ == "Linear"  # opted out
    assert isinstance(typed.model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)  # other fields kept, 4-bit too
    assert typed.model_init_kwargs.dtype == "float32"
    with pytest.raises(ValueError, match=r"logprob_quality: unknown model_init_kwargs \['load_in_8bit'\]; known: \["):
        unknown = {"logprob_quality": {"model": tiny64_dir, "model_init_kwargs": {"load_in_8bit": True}}}
        cli.build_reward_funcs(["logprob_quality"], unknown, "token_reward_kwargs", None, model_args)


def test_cli_online_prm_on_the_policys_checkpoint_gets_its_own_copy(tmp_path, tiny64_dir, monkeypatch):
    """The PRIME recipe's PRM names the policy's checkpoint: it must load a separate copy (its adapter trains),
    never share the policy's model (TRL then rejects the policy, or the PRM's adapter would sit on the policy)."""
    from peft import PeftModel

    from trl_token_ext.models import SharedBaseModel

    trainers = []
    run_training = cli.run_training
    monkeypatch.setattr(cli, "run_training", lambda *a, **k: trainers.append(run_training(*a, **k)) or trainers[-1])
    prm_options = {
        "model": tiny64_dir,
        "beta": 0.5,
        "learning_rate": 1e-2,
        "model_init_kwargs": {"load_in_4bit": False},
    }
    recipe = write_recipe(
        tmp_path,
        tiny64_dir,
        token_reward_funcs=["online_implicit_prm"],
        token_reward_kwargs={"online_implicit_prm": prm_options},
        token_reward_weights=None,
        beta=0.0,
    )
    assert cli.main(["rloo", "--config", str(recipe)]) == 0
    (trainer,) = trainers
    (prm,) = trainer.token_reward_funcs
    assert isinstance(trainer.model, PeftModel) and isinstance(prm.model, PeftModel)
    assert prm.model.get_base_model() is not trainer.model.get_base_model()
    assert not any("lora_" in name for name, _ in trainer.model.get_base_model().lm_head.named_parameters())
    assert prm.num_updates == 1  # it trained on the step's outcome labels

    recipe = write_recipe(
        tmp_path,
        tiny64_dir,
        token_reward_funcs=["online_implicit_prm"],
        token_reward_kwargs={"online_implicit_prm": {"model": "policy"}},
        token_reward_weights=None,
    )
    with pytest.raises(ValueError, match=r"'online_implicit_prm': model='policy' is not allowed: it trains its own"):
        cli.main(["rloo", "--config", str(recipe)])
    from trl_token_ext.scorers import OnlineImplicitPRM

    with pytest.raises(ValueError, match=r"online_implicit_prm: model is a SharedBaseModel"):
        OnlineImplicitPRM(SharedBaseModel(trainer.model.get_base_model()))


def test_yaml_scalar_weight_through_the_parser(tmp_path):
    from trl_token_ext.cli import make_parser

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path}\nuse_cpu: true\ntoken_reward_weights: 1.0\ntoken_advantage_coef: '0.5'\n"
    )
    parsed = make_parser("grpo").parse_args_and_config(["--config", str(recipe)])
    assert parsed[2].token_reward_weights == [1.0] and parsed[2].token_advantage_coef == 0.5


# --- output_dir holding another run's checkpoints (issue 13) -----------------------------------------------------
def _grpo_argv(output_dir, *extra):
    return ["grpo", "--output_dir", str(output_dir), "--use_cpu", "true", "--token_reward_funcs", "repetition",
            "--model_name_or_path", "no-such-model", "--dataset_name", "no-such-dataset", *extra]  # fmt: skip


def test_cli_refuses_output_dir_with_checkpoints_of_another_run(tmp_path):
    from trl_token_ext.cli import main

    for step in (10, 2):
        (tmp_path / f"checkpoint-{step}").mkdir()
    expected = (
        rf"output_dir '{tmp_path}' already holds checkpoints of another run \(checkpoint-2, checkpoint-10\).*"
        rf"--resume_from_checkpoint {tmp_path}/checkpoint-10.*--overwrite_output_dir true"
    )
    with pytest.raises(ValueError, match=expected):
        main(_grpo_argv(tmp_path))
    assert (tmp_path / "checkpoint-10").is_dir()


def test_check_output_dir_allows_resume_empty_or_overwrite(tmp_path):
    from trl_token_ext.cli import check_output_dir

    check_output_dir(str(tmp_path / "new"), None, False)  # does not exist yet
    (tmp_path / "logs").mkdir()
    check_output_dir(str(tmp_path), None, False)  # no checkpoints
    (tmp_path / "checkpoint-3").mkdir()
    check_output_dir(str(tmp_path), str(tmp_path / "checkpoint-3"), False)  # resuming
    check_output_dir(str(tmp_path), True, False)
    check_output_dir(str(tmp_path), None, True, is_main_process=False)  # only the main process deletes
    assert (tmp_path / "checkpoint-3").is_dir()
    check_output_dir(str(tmp_path), None, True)
    assert not (tmp_path / "checkpoint-3").exists() and (tmp_path / "logs").is_dir()
