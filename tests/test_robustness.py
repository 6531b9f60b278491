"""Issue 13: what a careless user passes in raises an error naming the culprit, never a silent NaN model.

Each case was first reproduced as a failing test (see the branch history), then fixed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from trainer_helpers import grpo_args, length_reward, max_param_diff, snapshot

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
from trl_token_ext.advantages import _masked_mean_std, normalize_token_rewards, overflow_safe_scale
from trl_token_ext.token_rewards import check_token_advantages, masked_stats, validate_token_rewards

LOWEST = torch.finfo(torch.float32).min
HIGHEST = torch.finfo(torch.float32).max


# ------------------------------------------------------------------ 1. huge but finite token rewards
def test_overflow_safe_scale_is_a_power_of_two_only_for_large_values():
    values = torch.tensor([[0.5, -1.5], [3.0, 0.0], [LOWEST, 1.0]])
    scale = overflow_safe_scale(values, torch.ones_like(values), dim=1)
    assert scale.flatten().tolist() == [1.0, 2.0, 2.0**127]  # 3 = 0.75·2², so s = 2; max|v/s| < 2
    assert overflow_safe_scale(values, torch.tensor([[1, 1], [0, 1], [0, 1]]), dim=1).flatten().tolist() == [1, 1, 1]


def test_normalization_of_float32_extremes_is_finite_and_hand_computed():
    rewards = torch.tensor([[LOWEST, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.ones_like(rewards)
    # the group is one -L among five zeros: mean -L/6, std L·sqrt(1/6) (unbiased: sqrt((25/36 + 5/36)/5) = sqrt(1/6))
    expected_low, expected_zero = -(5 / 6) / math.sqrt(1 / 6), (1 / 6) / math.sqrt(1 / 6)
    for normalization in ("group", "batch"):
        out = normalize_token_rewards(rewards, mask, group_size=2, normalization=normalization)
        assert torch.isfinite(out).all()
        assert out[0, 0].item() == pytest.approx(expected_low, rel=1e-5)
        assert out[1].tolist() == pytest.approx([expected_zero] * 3, rel=1e-5)
    both_ends = torch.tensor([[LOWEST, HIGHEST, 1.0, 2.0]])
    out = normalize_token_rewards(both_ends, torch.ones_like(both_ends), group_size=1)
    assert torch.isfinite(out).all() and out[0, 0] < 0 < out[0, 1]
    mean, std = _masked_mean_std(both_ends, torch.ones_like(both_ends), dim=1)
    assert mean.item() == pytest.approx(0.75) and std.item() == pytest.approx(math.sqrt(2 / 3) * HIGHEST, rel=1e-6)
    mean, std = _masked_mean_std(both_ends[:, :2], torch.ones(1, 2), dim=1)
    assert mean.item() == 0.0 and std.item() == math.inf  # the true std, sqrt(2)·3.4e38, exceeds float32


def test_normalization_of_ordinary_rewards_is_unchanged_bit_for_bit():
    rewards = torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    valid = rewards[mask.bool()]
    expected = (rewards - valid.mean()) / (valid.std() + 1e-4) * mask
    assert torch.equal(normalize_token_rewards(rewards, mask, group_size=2), expected)
    scaled = rewards * 2.0**100  # power-of-two scaling is exact: the same normalized rewards (eps scaled too)
    assert torch.allclose(normalize_token_rewards(scaled, mask, 2, eps=1e-4 * 2.0**100), expected, atol=0, rtol=1e-6)


def test_logged_stats_of_float32_extremes_are_finite():
    mean, std = masked_stats(torch.tensor([LOWEST, 0.0, 0.0, 0.0]), torch.ones(4))
    assert mean == pytest.approx(float(LOWEST) / 4) and std == pytest.approx(-float(LOWEST) / 2)  # sqrt(3/4·L²/3)


def test_advantage_check_names_function_sample_and_token():
    rewards = torch.zeros(4, 2, 3)
    rewards[2, 1, 1] = LOWEST
    rewards[0, 0, 0] = 5.0
    present = torch.ones(4, 2, dtype=torch.bool)
    valid = torch.ones(4, 3)
    weights = torch.tensor([1.0, 0.5])
    advantages = torch.zeros(4, 3)
    check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)  # fine
    advantages[2, 1] = LOWEST / 2
    with pytest.raises(
        ValueError, match=r"sample\(s\) \[2\].*'masked' \(sample 2, token 1: -3\.403e\+38, weight 0\.5"
    ):
        check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)
    advantages[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"not finite or too large .*sample\(s\) \[2\]"):
        check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)
    check_token_advantages(advantages, valid * 0, rewards, present, weights, ["quality", "masked"], 1.0)  # masked


def masked_sample(completion_ids, **kwargs):
    """Token reward: 0 everywhere but float32's lowest value (a common "masked" value) on every token of sample 1."""
    return [[LOWEST if index == 1 else 0.0] * len(ids) for index, ids in enumerate(completion_ids)]


@pytest.mark.parametrize("normalization", ["group", "batch"])
def test_lowest_float32_token_reward_trains_finite(tiny_model_dir, prompt_dataset, tmp_path, normalization):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, max_steps=2, token_reward_normalization=normalization),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    assert all(torch.isfinite(p).all() for p in after.values())
    assert max_param_diff(before, after) > 0
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert all(math.isfinite(log["token_rewards/masked_sample/mean"]) for log in logs)
    assert all(math.isfinite(log["grad_norm"]) and math.isfinite(log["token_advantages/std"]) for log in logs)


def test_lowest_float32_token_reward_without_normalization_raises(tiny_model_dir, prompt_dataset, tmp_path):
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, token_reward_normalization="none", token_advantage_mode="immediate"),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    # the per-position baseline carries sample 1's value to the rest of its group
    match = r"sample\(s\) \[0, 1, 2\].*'masked_sample' \(sample 1, token 0: -3\.403e\+38"
    with pytest.raises(ValueError, match=match):
        trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) == 0.0


# ------------------------------------------------------------------ 5. config fields and reward dtypes
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


def test_yaml_scalar_weight_through_the_parser(tmp_path):
    from trl_token_ext.cli import make_parser

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path}\nuse_cpu: true\ntoken_reward_weights: 1.0\ntoken_advantage_coef: '0.5'\n"
    )
    parsed = make_parser("grpo").parse_args_and_config(["--config", str(recipe)])
    assert parsed[2].token_reward_weights == [1.0] and parsed[2].token_advantage_coef == 0.5


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8, torch.int32, torch.int64])
def test_integer_token_rewards_are_accepted(dtype):
    (values,) = validate_token_rewards([torch.tensor([1, 0, 2], dtype=dtype)], "f", [[5, 6, 7]])
    assert values.dtype == torch.float32 and values.tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    "entry", [torch.tensor([True, False]), [True, False], torch.tensor([1j, 2j])], ids=["bool", "bools", "complex"]
)
def test_bool_or_complex_token_rewards_name_the_dtype(entry):
    with pytest.raises(ValueError, match=r"'f' returned dtype torch\.(bool|complex64) for sample 1; .*real numbers"):
        validate_token_rewards([[0.0, 1.0], entry], "f", [[5, 6], [7, 8]])


# ------------------------------------------------------------------ 2. classifier training data
def _split(texts, labels):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts, "label": labels})


GOOD = _split(["good film", "bad film", "nice", "awful"], ["pos", "neg", "pos", "neg"])


@pytest.mark.parametrize(
    ("train", "evaluation", "message"),
    [
        (_split(["a", "b", "c"], ["pos"] * 3), GOOD, r"train_dataset: column 'label' has a single class \['pos'\]"),
        (_split(["a", "b"], [0, 0]), GOOD, r"train_dataset: column 'label' has a single class \['0'\] in all 2"),
        (_split(["a", "b", "c"], ["pos", None, "neg"]), GOOD, r"train_dataset: column 'label', example 1: missing"),
        (_split(["a", "b", "c"], ["pos", " ", "neg"]), GOOD, r"train_dataset: column 'label', example 1: missing"),
        (_split(["a", None, "c"], ["pos", "neg", "neg"]), GOOD, r"train_dataset: column 'text', example 1: .*None"),
        (GOOD, GOOD.rename_column("text", "sentence"), r"eval_dataset: text column 'text' not found"),
        (GOOD, _split(["a", "b"], ["pos", None]), r"eval_dataset: column 'label', example 1: missing label"),
    ],
    ids=["one-class", "all-zero", "none-label", "blank-label", "none-text", "eval-no-text", "eval-none-label"],
)
def test_classifier_data_is_validated_before_loading_a_model(train, evaluation, message, tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    with pytest.raises(ValueError, match=message):
        train_sentence_classifier("no-such-model", train, evaluation, tmp_path)


def test_single_class_among_given_labels_is_rejected(tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    train = _split(["a", "b", "c"], ["pos"] * 3)
    with pytest.raises(ValueError, match=r"train_dataset: column 'label' holds the single class 'pos' in all 3"):
        train_sentence_classifier("no-such-model", train, GOOD, tmp_path, labels=["neg", "pos"])


def test_test_split_without_text_column_is_named(tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    with pytest.raises(ValueError, match=r"test_dataset: text column 'text' not found"):
        train_sentence_classifier("no-such-model", GOOD, GOOD, tmp_path, test_dataset=GOOD.remove_columns("text"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"bad\.csv: the file is empty"),
        ("text,label\n", r"bad\.csv: the file has a header \['text', 'label'\] but no rows"),
        ("text,label\nfine,pos\nnot, fine,neg\nok,neg\n", r"bad\.csv, line 3: 3 fields, but the header .* has 2"),
        ("text,label\nfine,pos\nempty label,\nok,neg\n", r"bad\.csv \(train\): column 'label', example 1: missing"),
        ("text,label\nfine,pos\n,neg\nok,neg\n", r"bad\.csv \(train\): column 'text', example 1: .*None"),
    ],
    ids=["empty", "header-only", "malformed-row", "empty-label-cell", "empty-text-cell"],
)
def test_unreadable_csv_names_file_and_line(tmp_path, content, message):
    from trl_token_ext.sentence.recipes import train_classifier_main

    path = tmp_path / "bad.csv"
    path.write_text(content)
    argv = ["--dataset_name", str(path), "--model_name_or_path", "no-such-model", "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        train_classifier_main(argv)


def test_unreadable_jsonl_names_file_and_cause(tmp_path):
    from trl_token_ext.data import load_data_file

    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label"\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: could not be read as json: \w+"):
        load_data_file(path)


# ------------------------------------------------------------------ 4. output_dir holding another run's checkpoints
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


# ------------------------------------------------------------------ 5. LogProbQuality without processing_class
def test_logprob_quality_without_processing_class_names_the_sample():
    from scorer_fixtures import char_tokenizer, encode, successor_bigram

    from trl_token_ext.scorers import LogProbQuality

    judge = LogProbQuality(successor_bigram(len(char_tokenizer())), tokenizer=char_tokenizer())
    ascii_ids = char_tokenizer()("ab", add_special_tokens=False)["input_ids"]
    assert len(judge(prompts=["x"], completions=["ab"], completion_ids=[ascii_ids])[0]) == 2  # judge ids: fine
    policy_ids = encode(" wonderful wonderful")
    assert max(policy_ids) >= len(char_tokenizer())
    with pytest.raises(ValueError, match=r"logprob_quality: completion_ids of sample 1 hold token id \d+, outside"):
        judge(prompts=["x", "x"], completions=["ab", "w"], completion_ids=[ascii_ids, policy_ids])


# ------------------------------------------------------------------ 5. staging folders of a killed SmolLM2 conversion
def test_staging_folders_of_killed_conversions_are_removed(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from trl_token_ext.demo import pretrained

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    name = pretrained.SMOLLM2_FOLDER
    legacy = tmp_path / f".{name}-k2j4h5g6"  # the name used before the pid was added
    killed = tmp_path / f".{name}-staging-{dead_pid}-a1b2c3"
    running = tmp_path / f".{name}-staging-{os.getpid()}-d4e5f6"  # a live conversion: kept
    other = tmp_path / ".other-staging-1-x"
    for folder in (legacy, killed, running, other):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path))
    monkeypatch.setattr(pretrained, "locate_smollm2_gguf", lambda: tmp_path / "S.gguf")
    monkeypatch.setattr(pretrained, "convert_gguf", lambda gguf, target: Path(target))
    pretrained.smollm2_path(verbose=False)
    assert not legacy.exists() and not killed.exists()
    assert running.is_dir() and other.is_dir()


def test_failed_conversion_removes_its_staging_folder(tmp_path, monkeypatch):
    import transformers

    from trl_token_ext.demo import pretrained

    class Interrupted:
        def save_pretrained(self, folder):
            (Path(folder) / "model.safetensors").write_bytes(b"partial")
            raise KeyboardInterrupt

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: Interrupted())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        pretrained.convert_gguf(tmp_path / "S.gguf", tmp_path / "converted")
    assert list(tmp_path.iterdir()) == []


def test_weighted_sum_overflowing_float32_names_both_functions():
    from trl_token_ext.advantages import token_advantages
    from trl_token_ext.token_rewards import weighted_token_rewards

    rewards = torch.zeros(2, 2, 3)
    rewards[1, :, 0] = LOWEST  # each value is finite; their sum is not
    present, weights, mask = torch.ones(2, 2, dtype=torch.bool), torch.tensor([1.0, 1.0]), torch.ones(2, 3)
    weighted, _ = weighted_token_rewards(rewards, present, weights)
    advantages = token_advantages(weighted, mask, group_size=2)
    with pytest.raises(
        ValueError, match=r"'f' \(sample 1, token 0: -3\.403e\+38, weight 1\), 'g' \(sample 1, token 0"
    ):
        check_token_advantages(advantages, mask, rewards, present, weights, ["f", "g"], 1.0)


@pytest.mark.parametrize("normalization", ["group", "none"])
def test_rloo_lowest_float32_token_reward(tiny_model_dir, prompt_dataset, tmp_path, normalization):
    from trl_token_ext import TokenRLOOConfig, TokenRLOOTrainer

    trainer = TokenRLOOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[masked_sample],
        args=grpo_args(tmp_path, TokenRLOOConfig, max_steps=2, token_reward_normalization=normalization),
        train_dataset=prompt_dataset,
    )
    before = snapshot(trainer.model)
    if normalization == "none":
        # the leave-one-out baseline carries sample 1's value to the rest of its group
        match = r"sample\(s\) \[0, 1, 2\].*'masked_sample' \(sample 1, token 0: -3\.403e\+38"
        with pytest.raises(ValueError, match=match):
            trainer.train()
        assert max_param_diff(before, snapshot(trainer.model)) == 0.0
    else:
        trainer.train()
        after = snapshot(trainer.model)
        assert all(torch.isfinite(p).all() for p in after.values()) and max_param_diff(before, after) > 0
