"""benchmarks/verifier_study.py and its pre-registered analysis (benchmarks/verifier_report.py)."""

import json
import math
import os
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import verifier_pairs as pairs  # noqa: E402
import verifier_report as report  # noqa: E402
import verifier_study as study  # noqa: E402


def test_isotonic_pools_adjacent_violators():
    assert report.isotonic([0.1, 0.3, 0.2, 0.4]) == pytest.approx([0.1, 0.25, 0.25, 0.4])
    assert report.isotonic([0.5, 0.1, 0.0]) == pytest.approx([0.2, 0.2, 0.2])
    assert report.isotonic([0.1, 0.2]) == [0.1, 0.2]


def test_completions_to_target_interpolates_the_smoothed_curve_and_censors():
    xs = [0, 80, 160, 240, 320]
    # smoothed: 0.2, 0.3, 0.3, 0.35, 0.5 → 0.4 reached between 240 and 320: 240 + 80 · (0.05 / 0.15)
    value, censored = report.completions_to(xs, [0.2, 0.35, 0.25, 0.35, 0.5], 0.4)
    assert value == pytest.approx(240 + 80 / 3) and not censored
    assert report.completions_to(xs, [0.5, 0.1, 0.1, 0.1, 0.1], 0.4) == (320.0, True)  # the spike is pooled away
    assert report.completions_to(xs, [0.45, 0.5, 0.5, 0.5, 0.5], 0.4) == (0.0, False)


def test_intervals():
    mean, low, high = report.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1 / math.sqrt(3))
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]
    low, high = report.paired_bootstrap(a, b, report.ratio_of_means, resamples=500)
    assert low <= 1.25 <= high and (low, high) == report.paired_bootstrap(a, b, report.ratio_of_means, 500)


def record(arm, seed, accuracies, rate=3e-4, select=False):
    split = "val" if select else "test"
    curve = [
        {"step": 5 * (i + 1), "completions": 80 * (i + 1), split: {"answer_accuracy": acc, "line_accuracy": 0.5,
                                                                    "format_valid": 1.0, "tokens": 30.0}}
        for i, acc in enumerate(accuracies)
    ]  # fmt: skip
    curve[-1]["ood"] = {"answer_accuracy": accuracies[-1] / 2}
    config = {"arm": arm, "seed": seed, "learning_rate": rate, "select": select}
    return {"config": config, "curve": curve, "seconds_per_step": 1.0}


def write(folder, name, data):
    (folder / name).write_text(json.dumps(data))


def test_summary_ratio_and_learning_rate_choice(tmp_path):
    start = {"curve": [{"step": 0, "completions": 0, "test": {"answer_accuracy": 0.2}, "ood": {"answer_accuracy": 0}}]}
    write(tmp_path, "start.json", start)
    for seed, (outcome, verifier) in enumerate([([0.2, 0.3, 0.3, 0.4], [0.4, 0.4, 0.4, 0.5]),
                                                ([0.2, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.5])]):  # fmt: skip
        write(tmp_path, f"outcome_seed{seed}.json", record("outcome", seed, outcome))
        write(tmp_path, f"verifier_seed{seed}.json", record("verifier", seed, verifier))
    runs, loaded_start = report.load_runs(tmp_path)
    summary = report.summarize(runs, loaded_start)
    assert summary["target"] == pytest.approx(0.4)
    # outcome reaches 0.4 at its last point (320) on both seeds; verifier at 80 (seed 0) and 160 (seed 1)
    assert summary["arms"]["outcome"]["completions_to_target"] == [320, 320]
    assert summary["arms"]["verifier"]["completions_to_target"] == [80, 160]
    assert summary["comparisons"]["verifier"]["completions_ratio"] == pytest.approx(120 / 320)
    assert summary["comparisons"]["verifier"]["accuracy_difference"][0] == pytest.approx(0.1)
    # learning-rate selection: best mean val accuracy, ties to the smaller rate; the control inherits (c)'s
    for rate, accs in ((1e-4, [0.3, 0.3]), (3e-4, [0.5, 0.1]), (1e-3, [0.2, 0.2])):
        for seed, acc in zip((100, 101), accs):
            write(tmp_path, f"verifier_seed{seed}_lr{rate:g}.json", record("verifier", seed, [acc], rate, True))
    chosen = report.choose_learning_rates(tmp_path)
    assert chosen == {"verifier": 1e-4, "shuffled": 1e-4}
    assert json.loads((tmp_path / "learning_rates.json").read_text()) == chosen


def test_tiny_study_runs_resumes_and_reports(tmp_path, capsys):
    argv = ["--tiny", "--out", str(tmp_path), "--seeds", "0", "--arms", "outcome", "verifier", "--steps", "1"]
    study.main(argv)
    saved = json.loads((tmp_path / "verifier_seed0.json").read_text())
    assert saved["config"]["arm"] == "verifier" and saved["token_reward_funcs"] == ["line_verifier"]
    assert [p["step"] for p in saved["curve"]] == [1] and {"test", "ood"} <= set(saved["curve"][0])
    assert any("token_rewards/line_verifier/mean" in log for log in saved["train_logs"])
    before = (tmp_path / "verifier_seed0.json").stat().st_mtime_ns
    study.main(argv)  # resumes: nothing left to run
    assert (tmp_path / "verifier_seed0.json").stat().st_mtime_ns == before
    assert "0 runs missing" in capsys.readouterr().out
    report.main(["--out", str(tmp_path), "--no-plot"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("verifier_ratio: ") and lines[-1].startswith("prime_real_ratio: nan")


def test_worker_order_takes_its_own_share_first_then_the_others_jobs():
    todo = ["a", "b", "c", "d", "e"]
    assert study.worker_order(todo, 0, 2) == ["a", "c", "e", "b", "d"]
    assert study.worker_order(todo, 1, 2) == ["b", "d", "a", "c", "e"]
    assert study.worker_order(todo, 0, 1) == todo


def test_claim_is_exclusive_and_skips_finished_runs(tmp_path):
    path = tmp_path / "runs" / "outcome_seed0.json"
    assert study.claim(path)
    marker = tmp_path / "runs" / "outcome_seed0.running"
    assert marker.read_text() == str(os.getpid())
    assert not study.claim(path)  # claimed by a worker
    marker.unlink()
    path.write_text("{}")
    assert not study.claim(path)  # finished
    assert not marker.exists()


def test_direct_pairs_are_paired_by_seed_against_arm_a_target(tmp_path):
    start = {"curve": [{"step": 0, "completions": 0, "test": {"answer_accuracy": 0.2}, "ood": {"answer_accuracy": 0}}]}
    write(tmp_path, "start.json", start)
    curves = {  # arm: (seed 0, seed 1); arm (a) ends at 0.4 on both seeds: the target is 0.4
        "outcome": ([0.2, 0.3, 0.3, 0.4], [0.2, 0.2, 0.3, 0.4]),
        "verifier": ([0.4, 0.4, 0.4, 0.5], [0.3, 0.4, 0.5, 0.5]),
        "shuffled": ([0.3, 0.4, 0.4, 0.4], [0.2, 0.2, 0.2, 0.3]),
        "outcome_lines": ([0.2, 0.2, 0.4, 0.4], [0.2, 0.2, 0.2, 0.2]),
        "verifier_min": ([0.2, 0.3, 0.3, 0.4], [0.2, 0.3, 0.4, 0.6]),
    }
    for arm, by_seed in curves.items():
        for seed, accuracies in enumerate(by_seed):
            write(tmp_path, f"{arm}_seed{seed}.json", record(arm, seed, accuracies))
    runs, loaded = report.load_runs(tmp_path)
    row = pairs.compare(runs, loaded, "verifier", "shuffled")
    assert row["seeds"] == [0, 1]
    # final: verifier 0.5, 0.5; shuffled 0.4, 0.3 → differences 0.1, 0.2
    assert row["accuracy_difference"][0] == pytest.approx(0.15)
    assert row["accuracy_difference"][2] - 0.15 == pytest.approx(12.706 * statistics.stdev([0.1, 0.2]) / math.sqrt(2))
    assert row["ood_difference"][0] == pytest.approx(0.075)  # the fixture's OOD is half the final accuracy
    # completions to 0.4: verifier 80, 160; shuffled 160 and censored at 320 (never reaches 0.4)
    assert row["completions_ratio"] == pytest.approx(240 / 480)
    low, high = row["completions_ratio_bootstrap"]
    assert low == pytest.approx(80 / 160) and high == pytest.approx(160 / 320)
    lines = pairs.main(["--out", str(tmp_path)])
    assert (tmp_path / "pairs.md").read_text().splitlines() == lines
    assert len(lines) == 2 + len(pairs.PAIRS) and lines[2].startswith("| (c) verifier lines as token rewards − (f)")
    (tmp_path / "outcome_lines_seed0.json").unlink()
    (tmp_path / "outcome_lines_seed1.json").unlink()
    with pytest.raises(SystemExit, match="outcome_lines"):
        pairs.main(["--out", str(tmp_path)])
