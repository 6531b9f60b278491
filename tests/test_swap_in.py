"""Acceptance test of README's "Swap it into an existing TRL script" on a client-shaped script.

tests/swap_client/train_grpo.py is a stock TRL GRPO script written the way clients write theirs (open-r1's grpo.py
and the like): its own `GRPOConfig(trl.GRPOConfig)` with extra fields and a ``__post_init__``, its own script
arguments with ``reward_funcs``, reward functions that return None for some samples, one `TrlParser`. The test reads
the ```diff blocks of README's swap section and applies them to that file literally, then trains a tiny model for 2
steps: stock vs swapped with no token rewards (bit-identical logs and parameters), and swapped with token rewards
chosen in the YAML (trains, logs ``token_rewards/*``; one weight of 0.5 halves the token term; the token advantage's
std is within 2x of the outcome advantage's with the defaults).
"""

from __future__ import annotations

import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).resolve().parent / "swap_client"
TOKEN_FUNC = "client_rewards:get_token_id_reward"
TIMING_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "step_time"}


def readme_swap_diffs() -> list[str]:
    """The bodies of the ```diff blocks of README's swap section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Swap it into an existing TRL script", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```diff\n(.*?)```", section, re.S)


def apply_diff(source: str, diff: str) -> str:
    """Apply a README-style diff to ``source``.

    Hunks are separated by lines that read ``...``; in a hunk, lines starting with a space are context, ``-`` removed,
    ``+`` added. Each hunk's old text (context and removed lines) must occur exactly once in ``source``.
    """
    hunks: list[list[str]] = [[]]
    for line in diff.rstrip("\n").split("\n"):
        if line.strip() == "...":
            hunks.append([])
        else:
            hunks[-1].append(line)
    for hunk in filter(None, hunks):
        old = "\n".join(line[1:] for line in hunk if line[:1] in (" ", "-", "")) + "\n"
        new = "\n".join(line[1:] for line in hunk if line[:1] in (" ", "+", "")) + "\n"
        if any(line[:1] not in (" ", "-", "+", "") for line in hunk):
            raise ValueError(f"Not a diff line in README's swap diff: {hunk}")
        count = source.count(old)
        if count != 1:
            raise ValueError(f"README's swap diff: the hunk's old text occurs {count} times in the script:\n{old}")
        source = source.replace(old, new)
    return source


def test_apply_diff_replaces_each_hunk_once_and_refuses_a_missing_or_ambiguous_one():
    source = "a\nb\nc\nb\n"
    assert apply_diff(source, " a\n-b\n+B\n...\n c\n+d") == "a\nB\nc\nd\nb\n"
    with pytest.raises(ValueError, match="occurs 2 times"):
        apply_diff(source, "-b\n+B")
    with pytest.raises(ValueError, match="occurs 0 times"):
        apply_diff(source, "-x\n+y")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    """The stock script, the swapped script (README's diffs applied), the client's rewards, data and a recipe."""
    root = tmp_path_factory.mktemp("swap-in")
    stock = (CLIENT / "train_grpo.py").read_text(encoding="utf-8")
    diffs = readme_swap_diffs()
    assert len(diffs) >= 2, "README's swap section must hold the config diff and the YAML-selection diff"
    swapped = stock
    for diff in diffs[:2]:
        swapped = apply_diff(swapped, diff)
    (root / "train_grpo.py").write_text(stock, encoding="utf-8")
    (root / "train_grpo_token.py").write_text(swapped, encoding="utf-8")
    shutil.copy(CLIENT / "client_rewards.py", root / "client_rewards.py")
    problems = [("What is 2 + 3?", "5"), ("Add 10 and 4.", "14"), ("Name a colour.", None), ("What is 7 - 2?", "n/a")]
    lines = [json.dumps({"problem": problem, "answer": answer}) for problem, answer in problems * 4]
    (root / "problems.jsonl").write_text("\n".join(lines), encoding="utf-8")
    recipe = {
        "model_name_or_path": tiny_model_dir,
        "dtype": "float32",
        "dataset_name": str(root / "problems.jsonl"),
        "reward_funcs": ["format", "answer", "length"],
        "length_target": 16,
        "system_prompt": "You add numbers.",
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}",
        "run_tags": ["swap-test"],
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 0.01,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "seed": 0,
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return root


def run_script(root: Path, script: str, out: str, *flags: str) -> dict:
    """Run ``script`` as ``python script --config recipe.yaml --output_dir out *flags`` in this process, from ``root``;
    returns the log history, the saved parameters, the parsed config and the (outcome, token, mask, coef) tensors the
    token trainer combined at each step."""
    from trl_token_ext.trainers import token_mixin

    combined = []
    original = token_mixin.combine_advantages

    def spy(outcome, token, mask, coef):
        combined.append((outcome.detach().clone(), token.detach().clone(), mask.detach().clone(), coef))
        return original(outcome, token, mask, coef)

    argv = [script, "--config", str(root / "recipe.yaml"), "--output_dir", str(root / out), *flags]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(token_mixin, "combine_advantages", spy)
        patch.setattr(sys, "argv", argv)
        patch.chdir(root)
        patch.syspath_prepend(str(root))
        namespace = runpy.run_path(str(root / script), run_name="__main__")
    state = json.loads((root / out / "trainer_state.json").read_text())
    return {
        "logs": state["log_history"],
        "params": load_file(str(root / out / "model.safetensors")),
        "config": namespace["training_args"],
        "combined": combined,
    }


def comparable(logs: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key not in TIMING_KEYS} for entry in logs]


@pytest.fixture(scope="module")
def runs(workspace):
    token = ["--token_reward_funcs", TOKEN_FUNC, "--token_reward_kwargs", json.dumps({TOKEN_FUNC: {"modulus": 3}})]
    return {
        "stock": run_script(workspace, "train_grpo.py", "stock"),
        "off": run_script(workspace, "train_grpo_token.py", "off"),
        "on": run_script(workspace, "train_grpo_token.py", "on", *token),
        "half": run_script(workspace, "train_grpo_token.py", "half", *token, "--token_reward_weights", "0.5"),
    }


def test_readme_swap_keeps_the_scripts_own_config_fields_and_post_init(runs):
    from trl_token_ext import TokenRewardConfigMixin

    stock, swapped = runs["stock"]["config"], runs["on"]["config"]
    assert not isinstance(stock, TokenRewardConfigMixin) and isinstance(swapped, TokenRewardConfigMixin)
    for config in (stock, swapped):
        assert config.system_prompt == "You add numbers." and config.chat_template.startswith("{% for m")
        assert config.run_tags == ["swap-test", "G4"]  # the script's __post_init__ ran, once
    assert swapped.token_reward_weights is None and swapped.token_advantage_coef == 1.0
    assert runs["half"]["config"].token_reward_weights == [0.5]


def test_swapped_script_without_token_rewards_is_bit_identical_to_stock(runs):
    stock, off = runs["stock"], runs["off"]
    assert comparable(off["logs"]) == comparable(stock["logs"])
    assert len(stock["logs"]) >= 2 and not off["combined"]
    assert stock["params"].keys() == off["params"].keys()
    for name, value in stock["params"].items():
        assert torch.equal(value, off["params"][name]), name


def test_token_rewards_from_the_yaml_train_and_log(runs):
    stock, on = runs["stock"], runs["on"]
    assert len(on["combined"]) == 2  # one generation batch per step, both combined with token advantages
    changed = [name for name, value in stock["params"].items() if not torch.equal(value, on["params"][name])]
    assert changed, "token rewards left every parameter as stock training made it"
    steps = [entry for entry in on["logs"] if "token_advantages/std" in entry]
    assert len(steps) == 2
    for entry in steps:
        assert "token_rewards/token_id_reward/mean" in entry and entry["token_advantages/std"] > 0
        assert "rewards/answer_reward/mean" in entry  # an outcome reward with None samples


def token_term(record) -> torch.Tensor:
    """λ·A_tok on the valid tokens (B, T) of one step."""
    _, token, mask, coef = record
    return coef * token * mask


def knob_measures(runs) -> dict[str, float]:
    """The step-1 token term's std with weight 1.0 and 0.5, and each step's token / outcome advantage std."""
    measures = {
        "token_term_std_weight_1.0": token_term(runs["on"]["combined"][0])[runs["on"]["combined"][0][2].bool()].std(),
        "token_term_std_weight_0.5": token_term(runs["half"]["combined"][0])[
            runs["half"]["combined"][0][2].bool()
        ].std(),
    }
    for step, (outcome, token, mask, _) in enumerate(runs["on"]["combined"], start=1):
        measures[f"step{step}_outcome_advantage_std"] = outcome.std()
        measures[f"step{step}_token_advantage_std"] = token[mask.bool()].std()
    return {key: float(value) for key, value in measures.items()}


def test_knobs_mean_what_they_say_with_the_defaults(runs):
    """One token function: weight 0.5 gives half the token term of weight 1.0 (same samples at step 1); with the
    defaults the token advantage's std is within 2x of the outcome advantage's at every step."""
    half, full = token_term(runs["half"]["combined"][0]), token_term(runs["on"]["combined"][0])
    torch.testing.assert_close(half, 0.5 * full)
    measures = knob_measures(runs)
    print("swap-in knobs:", json.dumps({key: round(value, 4) for key, value in measures.items()}))
    assert measures["token_term_std_weight_1.0"] > 0
    for step in (1, 2):
        outcome, token = measures[f"step{step}_outcome_advantage_std"], measures[f"step{step}_token_advantage_std"]
        assert outcome > 0 and 0.5 <= token / outcome <= 2.0, (step, token, outcome)
    logged = [entry["token_advantages/std"] for entry in runs["on"]["logs"] if "token_advantages/std" in entry]
    assert logged == pytest.approx([measures["step1_token_advantage_std"], measures["step2_token_advantage_std"]])
