"""The documents quote demo runs only through generated blocks, each equal to what its command prints from the run's
committed ``summary.json``; the heatmap screenshots they show exist; README states one Python version; no committed
symlink leaves the repository."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from trl_token_ext.demo.report import GENERATED, render

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/demo.md")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_generated_blocks_equal_what_the_report_prints(document, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = list(GENERATED.finditer(text))
    assert blocks, f"{document} quotes no demo run"
    for block in blocks:
        expected = render(block.group("args").split())
        assert block.group("body") == expected, (
            f"{document}: the block of `{block.group('args')}` differs from what it prints; run "
            f"`python -m trl_token_ext.demo.report --refresh {document}`"
        )


def test_the_quoted_first_run_time_is_the_measured_one():
    """docs/demo/first_run.txt is the timing log of the fresh clone's first `make demo` (install included)."""
    from trl_token_ext.demo.report import clock

    log = (ROOT / "docs/demo/first_run.txt").read_text(encoding="utf-8")
    seconds = float(re.search(r"^make demo end .* rc 0 seconds ([0-9.]+) ", log, re.M).group(1))
    for document in DOCUMENTS:
        assert f"first `make demo` took {clock(seconds)}" in (ROOT / document).read_text(encoding="utf-8"), document


def test_the_heatmap_screenshots_are_shown():
    text = (ROOT / "docs/demo.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((demo/[^)]+\.png)\)", text)
    assert {"demo/heatmap_sentiment.png", "demo/heatmap_arithmetic.png"} <= set(images)
    for image in images:
        assert (ROOT / "docs" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_states_one_python_version():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(re.findall(r"Python:?\s*(?:≥|>=)?\s*3\.\d+", text)) == 1


def test_no_committed_symlink_points_outside_the_repository():
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        mode, _, _, path = line.split(maxsplit=3)
        if mode == "120000":
            target = os.readlink(ROOT / path)
            resolved = (ROOT / path).parent.joinpath(target).resolve()
            assert not os.path.isabs(target) and resolved.is_relative_to(ROOT), (path, target)


def _summary(p_token: float) -> dict:
    sentiment = {
        "p_positive": 0.5,
        "title_rate": 0.6,
        "perplexity": 7.0,
        "distinct_1": 0.4,
        "distinct_2": 0.8,
        "words": 20.0,
        "template_share": 0.2,
        "cutoff_share": 0.5,
        "sentences": 1.5,
        "adjacent_repeats": 0.0,
    }
    arithmetic = {"answer_accuracy": 0.25, "line_accuracy": 0.5, "format_valid": 0.75, "lines": 3.0,
                  "cutoff_share": 0.0}  # fmt: skip
    settings = {"seed": 0, "learning_rate": 7e-4, "eval_samples": 4}
    return {
        "tasks": {
            "sentiment": {
                "eval": "test split, 8 movies × 4 samples", "settings": settings,
                "measures": {"before": sentiment, "control": {**sentiment, "p_positive": 0.7},
                             "token": {**sentiment, "p_positive": p_token}},
                "token_reward_weights": {"consistency_topic": 2.0},
                "targets": {"control": {"p_positive +0.1": True, "template_share no worse": True},
                            "token": {"p_positive +0.1": True, "template_share no worse": False}},
            },
            "arithmetic": {
                "eval": "test split, 16 problems × 4 samples", "settings": settings,
                "measures": {"before": arithmetic, "control": arithmetic, "token": arithmetic},
                "token_reward_weights": {"line_verifier": 1.0},
            },
        },
        "seconds": {"prepare": 61.0, "arms": 500.4, "report": 3.2, "total": 564.6},
        "load_average": {"start": [0.25, 0.5, 0.5], "end": [2.0, 1.0, 0.5]},
        "machine": {"cpus": 2},
        "assets": {"classifier_test_accuracy": 0.7918},
        "jobs": 2,
    }  # fmt: skip


def test_report_blocks_are_refreshed_from_the_summaries(tmp_path, monkeypatch):
    import json

    from trl_token_ext.demo.report import compare_table, headline, markdown_report, refresh

    monkeypatch.chdir(tmp_path)
    for name, p_token in (("a", 0.9), ("b", 0.65)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(_summary(p_token)))
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run: <!-- demo-report: --headline a/summary.json -->old<!-- /demo-report -->.\n\n"
        "<!-- demo-report: a/summary.json -->\n<!-- /demo-report -->\n"
        "<!-- demo-report: --compare sentiment a/summary.json b/summary.json -->\nstale\n<!-- /demo-report -->\n"
    )
    assert refresh(doc) and not refresh(doc)  # the second refresh changes nothing
    text = doc.read_text()
    first, second = _summary(0.9), _summary(0.65)
    line = headline(first)
    assert f"Run: <!-- demo-report: --headline a/summary.json -->{line}<!-- /demo-report -->." in text
    assert line.startswith("held-out P(positive) 0.500 → 0.700 outcome-only / 0.900 with token rewards")
    assert line.endswith(
        "(9 min 25 s in all, 1 min 01 s of it preparation; arms side by side; 2 cores, load average 0.2 at the start)"
    )
    assert f"<!-- demo-report: a/summary.json -->\n{markdown_report(first)}\n<!-- /demo-report -->" in text
    assert "| P(positive) (outcome reward) | 0.500 | 0.700 | 0.900 | +0.200 |" in text
    assert "* sentiment control target: all met\n* sentiment token target: missed: template_share no worse\n" in text
    assert "sentiment classifier (trained on this machine): test accuracy 0.792" in text
    table = compare_table({"a": first, "b": second}, "sentiment")
    assert table in text and "stale" not in text
    # token − control over the two runs: +0.200 and -0.050
    assert table.splitlines()[-1].startswith(
        "| token − control, range over 2 runs | | | -0.050 … +0.200 | +0.000 … +0.000"
    )


def test_headline_words_each_task_alike():
    """One sentence per task, the same words for both: the first measure names the arms, the rest are b → c / t."""
    from trl_token_ext.demo.report import headline, task_headline

    measures = {
        "before": {"answer_accuracy": 0.15625, "line_accuracy": 0.5},
        "control": {"answer_accuracy": 0.5, "line_accuracy": 0.75},
        "token": {"answer_accuracy": 0.4375, "line_accuracy": 12.345},
    }
    assert task_headline("arithmetic", measures) == (
        "arithmetic answers right 0.156 → 0.500 outcome-only / 0.438 with token rewards, lines right 0.500 → 0.750 / "
        "12.35"
    )
    summary = _summary(0.9)
    summary["tasks"]["arithmetic"] = {"measures": measures}
    sentence = headline(summary)  # sentiment first, then arithmetic, joined by "; "
    assert (
        sentence.startswith("held-out P(positive) 0.500 → 0.700 outcome-only / 0.900 with token rewards, movie named ")
        and "template share" in sentence.split("; arithmetic answers right 0.156 → 0.500 outcome-only")[0]
    )
