"""``trl-token demo``: the whole pipeline on the tiny policy/classifier (fast), SmolLM2 in the slow tier."""

from __future__ import annotations

import json
import re

import pytest

from trl_token_ext.demo import run as demo
from trl_token_ext.demo import task as demo_task


def test_parse_fills_the_defaults_of_each_mode():
    tiny = demo._parse(["--tiny"])
    assert (tiny.steps, tiny.max_completion_length) == (12, 12)
    real = demo._parse(["--steps", "5"])
    assert (real.steps, real.max_completion_length, real.model) == (5, 32, "smollm2")
    with pytest.raises(SystemExit):
        demo._parse(["--batch_size", "6", "--num_generations", "4"])


def test_prompts_split_train_and_held_out():
    train = {p[-1]["content"] for p in demo_task.train_prompts()}
    held_out = [p[-1]["content"] for p in demo_task.held_out_prompts()]
    assert len(train) == 2 * len(demo_task.MOVIES_TRAIN) and len(held_out) == len(demo_task.MOVIES_HELD_OUT)
    assert not any(movie in text for movie in demo_task.MOVIES_TRAIN for text in held_out)


def test_training_data_carries_each_prompts_topic():
    columns = demo_task.train_dataset_columns()
    assert len(columns["prompt"]) == len(columns["topic"]) == 2 * len(demo_task.MOVIES_TRAIN)
    for prompt, topic in zip(columns["prompt"], columns["topic"]):
        movie = topic.removeprefix("A review of the movie ").removesuffix(".")
        assert movie in demo_task.MOVIES_TRAIN and movie in prompt[-1]["content"]
    assert demo_task.held_out_titles() == demo_task.MOVIES_HELD_OUT


def test_token_reward_values_are_the_weighted_sum(tiny_tokenizer):
    samples = [{"prompt": "p", "text": "ab", "completion_ids": [1, 2, 3]}]

    def ones(completion_ids, **kwargs):
        return [[1.0] * len(ids) for ids in completion_ids]

    def position(completion_ids, **kwargs):
        return [list(map(float, range(len(ids)))) for ids in completion_ids]

    values = demo_task.token_reward_values(samples, [ones, position, lambda **k: [None]], [0.5, 2.0, 9.0], None)
    assert values == [[0.5, 2.5, 4.5]]


def test_tiny_demo_end_to_end_through_the_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from trl_token_ext import cli

    out = tmp_path / "report"
    argv = ["--tiny", "--output_dir", str(out), "--steps", "4", "--eval_samples", "2", "--heatmap_every", "2"]
    assert cli.main(["demo", *argv]) == 0
    summary = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert f"before {summary['before']:.3f}" in printed.replace("\n", " ")
    # the printed means are the means of the per-sample rewards written to samples.md
    lines = (out / "samples.md").read_text().splitlines()
    before = [float(m) for line in lines for m in re.findall(r"^\* before \(P\(pos\)=([0-9.]+)\)", line)]
    after = [float(m) for line in lines for m in re.findall(r"^\* after  \(P\(pos\)=([0-9.]+)\)", line)]
    assert len(before) == len(after) == 2 * len(demo_task.MOVIES_HELD_OUT)
    assert sum(before) / len(before) == pytest.approx(summary["before"], abs=1e-3)
    assert sum(after) / len(after) == pytest.approx(summary["after"], abs=1e-3)
    # report: heatmaps during training (steps 2 and 4), final heatmap page, reward curves
    assert sorted(p.name for p in (out / "heatmaps").iterdir()) == ["step_00002.html", "step_00004.html"]
    page = (out / "token_rewards.html").read_text()
    assert page.count('class="row"') == len(before) and 'title="#0 ' in page
    assert (out / "reward_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["steps"] == 4 and summary["threads"] == 1
    # held-out measures: printed before/after, the same P(positive) as the reward means, the target checks recorded
    from trl_token_ext.demo.measures import MEASURES, target_checks

    assert list(summary["measures_before"]) == list(MEASURES) == list(summary["measures_after"])
    assert summary["measures_before"]["p_positive"] == pytest.approx(summary["before"], abs=1e-9)
    assert summary["measures_after"]["p_positive"] == pytest.approx(summary["after"], abs=1e-9)
    assert summary["target"] == target_checks(summary["measures_before"], summary["measures_after"])
    assert summary["target_met"] == all(summary["target"].values())
    assert "names the movie (held out)" in printed and "target p_positive +0.1:" in printed
    assert list(summary["token_reward_weights"]) == ["quality_lexicon", "consistency_topic", "consistency_repetition"]


@pytest.mark.slow
def test_smollm2_demo_improves_the_held_out_reward(tmp_path):
    """The documented ``make demo`` run (SmolLM2 + MiniLM classifier, fetched/trained on first use)."""
    result = demo.main(["--output_dir", str(tmp_path)])
    assert result["after"] > result["before"]
    assert result["target_met"], result["target"]  # docs/demo.md: met on seed 0 (and 2; seed 1 misses perplexity)
    assert result["total_seconds"] < 600
