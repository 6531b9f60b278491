"""``trl-token demo``: settings, credit views, report folder, progress, the whole pipeline on tiny models (fast),
SmolLM2 in the slow tier."""

from __future__ import annotations

import io
import json
import logging
import math

import pytest

from trl_token_ext.demo import run as demo
from trl_token_ext.demo import task as demo_task


def test_parse_fills_each_tasks_defaults():
    args = demo._parse(["--tiny"])
    assert demo.task_options(args, "sentiment")["max_completion_length"] == 12
    assert demo.task_options(args, "arithmetic")["steps"] == 6
    real = demo._parse(["--steps", "5"])
    sentiment, arithmetic = demo.task_options(real, "sentiment"), demo.task_options(real, "arithmetic")
    assert (sentiment["steps"], arithmetic["steps"]) == (5, 5)  # a command-line value applies to every task
    assert (sentiment["learning_rate"], arithmetic["learning_rate"]) == (7e-4, 3e-4)
    assert (sentiment["token_advantage_coef"], arithmetic["token_advantage_coef"]) == (0.5, 1.0)
    assert real.task == "all" and real.jobs == 2 and real.split == "test"
    with pytest.raises(SystemExit):
        demo._parse(["--batch_size", "6", "--num_generations", "4"])
    with pytest.raises(SystemExit):
        demo._parse(["--jobs", "0"])


def test_prompts_split_train_validation_and_held_out():
    train = {p[-1]["content"] for p in demo_task.train_prompts()}
    held_out = [p[-1]["content"] for p in demo_task.held_out_prompts()]
    validation = demo_task.held_out_titles("validation")
    assert len(train) == 2 * len(demo_task.MOVIES_TRAIN) and len(held_out) == len(demo_task.MOVIES_HELD_OUT)
    assert not any(movie in text for movie in demo_task.MOVIES_TRAIN for text in held_out)
    assert not set(validation) & (set(demo_task.MOVIES_TRAIN) | set(demo_task.MOVIES_HELD_OUT))
    assert demo_task.held_out_titles() == demo_task.MOVIES_HELD_OUT
    with pytest.raises(ValueError, match="split must be one of"):
        demo_task.held_out_titles("train")


def test_training_data_carries_each_prompts_topic():
    columns = demo_task.train_dataset_columns()
    assert len(columns["prompt"]) == len(columns["topic"]) == 2 * len(demo_task.MOVIES_TRAIN)
    for prompt, topic in zip(columns["prompt"], columns["topic"]):
        movie = topic.removeprefix("A review of the movie ").removesuffix(".")
        assert movie in demo_task.MOVIES_TRAIN and movie in prompt[-1]["content"]


def _fixed(values, name):
    def func(completion_ids, **kwargs):
        return [list(v) for v in values]

    func.__name__ = name
    return func


def test_credit_views_by_hand():
    """Two samples of one prompt (a group of 2): outcome rewards 1 and 0, token reward [1, 0] and [0, 0]."""
    from trl_token_ext.demo.credit import credit_views

    samples = [{"prompt": "p", "text": t, "completion_ids": [5, 6]} for t in ("good", "bad")]
    outcome = ([lambda completions, **kwargs: [1.0, 0.0]], [1.0])
    term = _fixed([[1.0, 0.0], [0.0, 0.0]], "term")
    shown = _fixed([[0.5, 0.5], [-0.5, -0.5]], "shown")
    settings = {"mode": "reward_to_go", "normalization": "group", "gamma": 1.0, "eps": 1e-4, "scale": False}
    views = credit_views(samples, None, 2, outcome, [term, shown], weights=[2.0], settings=settings, coef=0.5)
    # A_out = ±0.5 / (std([1, 0]) + 1e-4), std = 0.70711 (unbiased)
    a_out = 0.5 / (math.sqrt(0.5) + 1e-4)
    # A_tok: reward-to-go [1, 0] / [0, 0]; centred per position: [0.5, 0] / [-0.5, 0]; divided by the group's
    # unbiased std over its 4 tokens sqrt(0.5 / 3) = 0.40825 (+1e-4); times the weight 2
    a_tok = 2 * 0.5 / (math.sqrt(0.5 / 3) + 1e-4)
    assert list(views[0]) == ["term", "shown", "A_tok (token advantage)", "A = A_out + 0.5·A_tok"]
    assert views[0]["term"] == [1.0, 0.0] and views[1]["shown"] == [-0.5, -0.5]  # raw, unweighted
    assert views[0]["A_tok (token advantage)"] == pytest.approx([a_tok, 0.0], rel=1e-4)
    assert views[1]["A_tok (token advantage)"] == pytest.approx([-a_tok, 0.0], rel=1e-4)
    assert views[0]["A = A_out + 0.5·A_tok"] == pytest.approx([a_out + 0.5 * a_tok, a_out], rel=1e-4)
    assert views[1]["A = A_out + 0.5·A_tok"] == pytest.approx([-a_out - 0.5 * a_tok, -a_out], rel=1e-4)
    control = credit_views(samples, None, 2, outcome, [term])
    assert list(control[1]) == ["term", "A = A_out (outcome only)"]
    assert control[1]["A = A_out (outcome only)"] == pytest.approx([-a_out, -a_out], rel=1e-4)


def test_report_dir_is_moved_aside_or_replaced(tmp_path):
    report = tmp_path / "demo"
    assert demo.prepare_report_dir(report, overwrite=False) is None  # nothing there
    report.mkdir()
    assert demo.prepare_report_dir(report, overwrite=False) is None  # empty: reused
    (report / "summary.json").write_text("{}")
    moved = demo.prepare_report_dir(report, overwrite=False)
    assert not report.exists() and (moved / "summary.json").read_text() == "{}"
    assert moved.name.startswith("demo-") and moved.parent == tmp_path
    report.mkdir()
    (report / "summary.json").write_text("{}")
    assert demo.prepare_report_dir(report, overwrite=True) is None and not report.exists()


def test_bitsandbytes_cpu_kernel_message_is_hidden_unless_4bit(caplog):
    from trl_token_ext.demo.quiet import BNB_LOGGER, quiet_third_party

    logger = logging.getLogger(BNB_LOGGER)
    saved = list(logger.filters)
    message = "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already `pip ..."
    try:
        logger.filters = []
        quiet_third_party(load_in_4bit=True)  # on the 4-bit path the message matters: kept
        with caplog.at_level(logging.WARNING, logger=BNB_LOGGER):
            logger.warning(message, "no kernels")
        assert len(caplog.records) == 1
        caplog.clear()
        quiet_third_party(load_in_4bit=False)
        with caplog.at_level(logging.WARNING, logger=BNB_LOGGER):
            logger.warning(message, "no kernels")
            logger.warning("another message")
        assert [r.getMessage() for r in caplog.records] == ["another message"]
    finally:
        logger.filters = saved


def test_progress_shows_step_total_and_eta_first_at_80_columns(monkeypatch):
    from rich.console import Console

    from trl_token_ext.demo import progress

    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    figures = progress.short_figures(
        {"rewards/sentence_positive/mean": 0.79, "reward": 1.2184, "token_rewards/consistency_topic/mean": 0.0312,
         "token_rewards/consistency_repetition/mean": -0.02, "loss": 0.1, "note": "x"}
    )  # fmt: skip
    assert figures == "P(pos)=0.790 reward=1.218 topic=+0.031 repetition=-0.020"
    log = io.StringIO()
    display = progress.ProgressDisplay(Console(file=log, width=80, soft_wrap=True))  # a log file, not a terminal
    display.update({"label": "sentiment/token", "step": 0, "total": 20})  # training starts at t = 100
    now[0] = 160.0
    display.update({"label": "sentiment/token", "step": 3, "total": 20})  # step end: no line in a log file
    display.update({"label": "sentiment/token", "step": 3, "total": 20, "figures": figures})
    display.update({"label": "sentiment/token", "status": "sampling"})
    lines = log.getvalue().splitlines()
    # 60 s for 3 steps: 17 more steps take 340 s = 5:40; the line is not wrapped even past 80 columns
    assert lines == [
        f"sentiment/token        3/20  1:00 ETA 5:40  {figures}",
        "sentiment/token      sampling",
    ]
    terminal = io.StringIO()
    bar = progress.ProgressDisplay(Console(file=terminal, width=80, force_terminal=True, color_system=None))
    bar.update({"label": "arithmetic/control", "step": 0, "total": 16})
    bar.stop()
    assert "arithmetic/control     0/16  0:00 ETA -:--" in terminal.getvalue()
    assert progress.format_clock(3725) == "1:02:05" and progress.format_clock(None) == "-:--"
    assert progress.parse_line(progress.EVENT_PREFIX + '{"step": 1}') == {"step": 1}
    assert progress.parse_line("other output") is None


def _argv(out, *extra):
    return ["demo", "--tiny", "--output_dir", str(out), "--steps", "3", "--heatmap_every", "2", *extra]


def test_tiny_demo_end_to_end_through_the_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from trl_token_ext import cli
    from trl_token_ext.demo.measures import MEASURES, target_checks
    from trl_token_ext.demo.report import fmt, markdown_report, signed
    from trl_token_ext.demo.tasks import LABELS

    out = tmp_path / "report"
    assert cli.main(_argv(out, "--jobs", "1")) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert "nothing is fetched" in printed and "PyPI" not in printed
    # one table per task, before / control / token: every printed number is the summary's
    for task in ("sentiment", "arithmetic"):
        measures = summary["tasks"][task]["measures"]
        assert list(measures) == ["before", "control", "token"]
        assert set(measures["token"]) >= set(LABELS[task])
        table = printed[printed.index(f"{task}: held-out test split") :].splitlines()
        for key, label in LABELS[task].items():
            row = next(line for line in table if line.startswith(f"│ {label[:12]}"))
            cells = [cell.strip() for cell in row.split("│")[2:6]]
            expected = [fmt(measures[arm][key]) for arm in ("before", "control", "token")]
            assert cells == [*expected, signed(measures["token"][key] - measures["control"][key])], (row, expected)
    sentiment = summary["tasks"]["sentiment"]
    assert list(sentiment["measures"]["token"]) == list(MEASURES)
    assert sentiment["targets"]["token"] == target_checks(
        sentiment["measures"]["before"], sentiment["measures"]["token"]
    )
    assert sentiment["eval"] == "test split, 8 movies × 2 samples"
    assert sentiment["token_reward_weights"] == {  # the defaults chosen on validation runs; w_quality 0 is left out
        "consistency_topic": 2.0, "consistency_repetition": 1.0, "extra_sentence": 1.0, "repeated_word": 1.0,
        "shared_opening": 4.0, "unfinished": 1.0,
    }  # fmt: skip
    assert (out / "report.md").read_text() == markdown_report(summary) + "\n"
    assert set(summary["seconds"]) == {"prepare", "arms", "report", "total"} and "wall time: prepare" in printed
    # the report folder holds the report only: no trainer output folders, no tiny models
    assert sorted(p.name for p in out.iterdir()) == ["arithmetic", "report.md", "sentiment", "summary.json"]
    for task in ("sentiment", "arithmetic"):
        names = sorted(p.name for p in (out / task).iterdir())
        assert names == ["comparison.png", "heatmap.html", "samples.md", "training_heatmaps"]
        assert sorted(p.name for p in (out / task / "training_heatmaps").iterdir()) == [
            "step_00002.html",
            "step_00003.html",
        ]
        assert (out / task / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = (out / task / "heatmap.html").read_text()
        assert "outcome only (TRL GRPOTrainer)" in page and "+ token rewards (TokenGRPOTrainer)" in page
        assert 'data-value="' in page
    arithmetic = (out / "arithmetic" / "heatmap.html").read_text()
    assert "line verdict (display)" in arithmetic and "A_tok (token advantage)" in arithmetic
    samples = (out / "sentiment" / "samples.md").read_text()
    assert samples.count("* before (") == samples.count("* control (") == samples.count("* token (") == 16


def test_side_by_side_arms_print_the_numbers_of_one_after_another(tmp_path):
    """`make demo` runs the two arms as child processes; the numbers equal those of ``--jobs 1`` (what a run one
    arm at a time, e.g. on a busy machine, would report)."""
    from trl_token_ext import cli

    assert cli.main(_argv(tmp_path / "one", "--task", "arithmetic", "--jobs", "1")) == 0
    assert cli.main(_argv(tmp_path / "two", "--task", "arithmetic", "--jobs", "2")) == 0
    one, two = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two"))
    assert one["tasks"]["arithmetic"]["measures"] == two["tasks"]["arithmetic"]["measures"]
    assert (tmp_path / "one" / "report.md").read_text().split("wall time")[0] == (
        (tmp_path / "two" / "report.md").read_text().split("wall time")[0]
    )


@pytest.mark.slow
def test_smollm2_demo_reports_both_arms(tmp_path):
    """The documented ``make demo`` run (SmolLM2 + MiniLM classifier, fetched/trained on first use)."""
    summary = demo.main(["--output_dir", str(tmp_path)])
    sentiment = summary["tasks"]["sentiment"]["measures"]
    assert sentiment["token"]["p_positive"] > sentiment["before"]["p_positive"]
    assert sentiment["control"]["p_positive"] > sentiment["before"]["p_positive"]
    assert summary["seconds"]["total"] < 900


def test_a_failing_arm_names_itself_and_shows_its_log(tmp_path):
    from trl_token_ext.demo.arms import run_arms

    options = demo.task_options(demo._parse(["--tiny"]), "arithmetic")
    spec = {"task": "arithmetic", "arm": "token", "options": options, "assets": {"model": str(tmp_path / "no-model")},
            "before": False, "work": str(tmp_path), "report": str(tmp_path / "report")}  # fmt: skip

    class Display:
        def update(self, event):
            pass

    with pytest.raises(RuntimeError, match=r"demo arm arithmetic/token failed:[\s\S]*no-model"):
        run_arms([spec], jobs=2, display=Display())
    assert not (tmp_path / "report").exists()


def test_arithmetic_heatmap_shows_credited_wrong_replies_first():
    from trl_token_ext.demo.report import heatmap_rows

    def sample(verdicts, a_tok):  # one token per line: the display verdicts, the token advantages
        views = {"line verdict (display)": verdicts, "A_tok (token advantage)": a_tok}
        return {"tokens": ["a", "b"], "values": [0.0, 0.0], "views": views}

    # problem 0: its wrong reply (index 1) has no token advantage; problem 1: its wrong reply (index 3) has one
    heat = [sample([1, 1], [0, 0]), sample([-1, 1], [0, 0]), sample([1, 1], [0, 0]), sample([-1, 1], [-1.5, 0])]
    arms = {
        "token": {"heatmap": heat, "after": {"samples": [{"prompt": f"p{i // 2}"} for i in range(4)]}},
        "control": {"heatmap": heat, "after": {"samples": [{"prompt": f"p{i // 2}"} for i in range(4)]}},
    }
    rows = heatmap_rows("arithmetic", arms, per_prompt=2)
    assert [row.prompt.split(" — ")[1] for row in rows] == ["p1", "p1", "p0", "p0"]
    assert rows[0].views["A_tok (token advantage)"] == [-1.5, 0] and rows[2].views["line verdict (display)"] == [-1, 1]


def test_token_arm_builds_its_rewards_through_the_script_arguments(tmp_path, tiny_model_dir):
    """The token arm chooses its token reward functions as a user's script does: a `TokenRewardScriptArguments` of
    registered names, an import path and the demo's own names (``registry=``), with the demo's options."""
    from transformers import AutoModelForCausalLM

    from trl_token_ext.demo import tasks
    from trl_token_ext.demo.arithmetic import LineVerifier
    from trl_token_ext.demo.form import ExtraSentence, RepeatedWord, SharedOpening, Unfinished
    from trl_token_ext.scorers import EmbeddingConsistency, LexiconQuality, LogProbQuality, RepetitionConsistency
    from trl_token_ext.script_args import TokenRewardScriptArguments
    from trl_token_ext.shared_base import SharedBaseModel
    from trl_token_ext.testing import save_tiny_sequence_classifier

    options = demo.task_options(demo._parse(["--tiny"]), "sentiment")
    assets = {"classifier": str(save_tiny_sequence_classifier(tmp_path / "classifier"))}
    recipe = tasks.token_arguments("sentiment", options, assets, policy=None)
    assert isinstance(recipe, TokenRewardScriptArguments)
    assert recipe.token_reward_funcs == [
        "lexicon_quality", "trl_token_ext.scorers:EmbeddingConsistency", "repetition",
        "extra_sentence", "repeated_word", "shared_opening", "unfinished",
    ]  # fmt: skip
    funcs = recipe.build_token_reward_funcs(registry=tasks.own_rewards())
    kinds = [LexiconQuality, EmbeddingConsistency, RepetitionConsistency, ExtraSentence, RepeatedWord, SharedOpening]
    assert [type(f) for f in funcs] == [*kinds, Unfinished]
    assert [f.__name__ for f in funcs] == [
        "quality_lexicon", "consistency_topic", "consistency_repetition",
        "extra_sentence", "repeated_word", "shared_opening", "unfinished",
    ]  # fmt: skip
    assert funcs[0].lexicon == demo_task.TINY_LEXICON
    assert (funcs[1].column, funcs[1].offset, funcs[1].level) == ("topic", 0.3, "sentence")
    assert (funcs[2].n, funcs[2].penalty) == (3, -1.0)
    assert [f.penalty for f in funcs[3:]] == [-1.0] * 4 and funcs[5].words == 3
    # --quality logprob: Q is the frozen starting policy's log-prob, shared with the policy (no second copy)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    logprob = tasks.token_arguments("sentiment", {**options, "quality": "logprob"}, assets, policy)
    assert logprob.token_reward_funcs[0] == "logprob_quality"
    quality = logprob.build_token_reward_funcs(registry=tasks.own_rewards())[0]
    assert isinstance(quality, LogProbQuality) and quality.__name__ == "quality_logprob"
    assert isinstance(quality.model, SharedBaseModel) and quality.model.model is policy and quality.clip_min == -10.0
    # arithmetic: the line verifier, on each line's last token
    options = demo.task_options(demo._parse(["--tiny"]), "arithmetic")
    recipe = tasks.token_arguments("arithmetic", options, {}, policy=None)
    assert recipe.token_reward_funcs == ["line_verifier"] and recipe.token_reward_kwargs == {
        "line_verifier": {"placement": "last"}
    }
    (verifier,) = recipe.build_token_reward_funcs(registry=tasks.own_rewards())
    assert isinstance(verifier, LineVerifier) and verifier.placement == "last" and verifier.__name__ == "line_verifier"
