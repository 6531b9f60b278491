"""Analysis of ``benchmarks/verifier_study.py`` (pre-registered in docs/evidence/preregistration.md).

    python benchmarks/verifier_report.py --out docs/evidence/verifier_study

Primary endpoint, per run: final test accuracy (greedy, the fixed test set); and the completions needed to reach
the target — the mean over seeds of arm (a)'s final test accuracy — on the run's smoothed test curve (the
non-decreasing least-squares fit of its eval points, pool-adjacent-violators, linearly interpolated; a run that never
reaches the target is censored at its budget and counted). Comparisons are paired by seed: mean difference with a
t interval and a paired bootstrap interval (seeds resampled); ratios of mean completions with a paired bootstrap
interval. Last lines: ``verifier_ratio: X [lo, hi]`` (arm c / arm a) and ``prime_real_ratio: X [lo, hi]`` (e / a).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LABELS = {
    "outcome": "(a) outcome only",
    "outcome_lines": "(b) outcome + line accuracy",
    "verifier": "(c) verifier lines as token rewards",
    "verifier_min": "(d) verifier, min-form (PURE)",
    "prime": "(e) online implicit PRM",
    "shuffled": "(f) control: shuffled lines",
    "verifier_token_mean": "(c') exploratory: token-mean baseline",
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------- statistics
def isotonic(values: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in values:
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, c1), (m2, c2) = blocks[-2], blocks[-1]
            blocks[-2:] = [[(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2]]
    return [mean for mean, count in blocks for _ in range(int(count))]


def completions_to(xs: Sequence[float], ys: Sequence[float], target: float) -> tuple[float, bool]:
    """First x where the smoothed curve (isotonic fit of ``ys``, linear between points) reaches ``target``;
    (last x, True) when it never does (censored)."""
    fitted = isotonic(ys)
    for i, (x, y) in enumerate(zip(xs, fitted)):
        if y >= target:
            if i == 0:
                return float(x), False
            x0, y0 = xs[i - 1], fitted[i - 1]
            return float(x0 + (x - x0) * (target - y0) / (y - y0)), False
    return float(xs[-1]), True


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and two-sided 95 % t interval (nan bounds for fewer than 2 values)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def paired_bootstrap(a: Sequence[float], b: Sequence[float], stat, resamples: int = 10000, seed: int = 0):
    """Percentile 95 % interval of ``stat(a_sample, b_sample)`` with seeds resampled in pairs."""
    rng = random.Random(seed)
    n, values = len(a), []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        value = stat([a[i] for i in picks], [b[i] for i in picks])
        if math.isfinite(value):
            values.append(value)
    values.sort()
    if not values:
        return math.nan, math.nan
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def ratio_of_means(a: Sequence[float], b: Sequence[float]) -> float:
    return statistics.fmean(a) / statistics.fmean(b) if statistics.fmean(b) > 0 else math.nan


def mean_difference(a: Sequence[float], b: Sequence[float]) -> float:
    return statistics.fmean(x - y for x, y in zip(a, b))


# ---------------------------------------------------------------- loading
def load_runs(out: Path) -> tuple[dict[str, dict[int, dict]], dict | None]:
    """{arm: {seed: record}} of the finished reported runs under ``out``, and the start record."""
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(out.glob("*_seed*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["config"].get("select"):
            continue
        runs.setdefault(record["config"]["arm"], {})[record["config"]["seed"]] = record
    start = out / "start.json"
    return runs, json.loads(start.read_text(encoding="utf-8")) if start.exists() else None


def curve(record: dict, start: dict | None, split: str = "test") -> tuple[list[float], list[float]]:
    """(completions, accuracy) of a run's test curve, starting from the shared step-0 evaluation."""
    points = ([start["curve"][0]] if start else []) + [p for p in record["curve"] if split in p]
    return [p["completions"] for p in points], [p[split]["answer_accuracy"] for p in points]


def final(record: dict, split: str = "test", key: str = "answer_accuracy") -> float:
    return [p for p in record["curve"] if split in p][-1][split][key]


# ---------------------------------------------------------------- report
def summarize(runs: dict[str, dict[int, dict]], start: dict | None) -> dict[str, Any]:
    """Every number of the report, as a dict (written to summary.json)."""
    seeds = sorted(runs.get("outcome", {}))
    summary: dict[str, Any] = {"seeds": seeds, "arms": {}, "comparisons": {}}
    if not seeds:
        return summary
    target = statistics.fmean(final(runs["outcome"][s]) for s in seeds)
    summary["target"] = target
    for arm, by_seed in runs.items():
        common = [s for s in seeds if s in by_seed]
        finals = [final(by_seed[s]) for s in common]
        reach = [completions_to(*curve(by_seed[s], start), target) for s in common]
        summary["arms"][arm] = {
            "seeds": common,
            "final_test_accuracy": t_interval(finals),
            "final_per_seed": finals,
            "completions_to_target": [c for c, _ in reach],
            "censored": sum(c for _, c in reach),
            "final_line_accuracy": statistics.fmean(final(by_seed[s], key="line_accuracy") for s in common),
            "final_format_valid": statistics.fmean(final(by_seed[s], key="format_valid") for s in common),
            "final_tokens": statistics.fmean(final(by_seed[s], key="tokens") for s in common),
            "final_ood_accuracy": t_interval([final(by_seed[s], "ood") for s in common]),
            "seconds_per_step": statistics.fmean(by_seed[s]["seconds_per_step"] for s in common),
        }
    for arm in runs:
        if arm == "outcome":
            continue
        common = [s for s in seeds if s in runs[arm]]
        if len(common) < 2:
            continue
        a = [final(runs["outcome"][s]) for s in common]
        b = [final(runs[arm][s]) for s in common]
        ca = [completions_to(*curve(runs["outcome"][s], start), target)[0] for s in common]
        cb = [completions_to(*curve(runs[arm][s], start), target)[0] for s in common]
        ood_a = [final(runs["outcome"][s], "ood") for s in common]
        ood_b = [final(runs[arm][s], "ood") for s in common]
        summary["comparisons"][arm] = {
            "seeds": common,
            "accuracy_difference": t_interval([y - x for x, y in zip(a, b)]),
            "accuracy_difference_bootstrap": paired_bootstrap(b, a, mean_difference),
            "ood_difference": t_interval([y - x for x, y in zip(ood_a, ood_b)]),
            "completions_ratio": ratio_of_means(cb, ca),
            "completions_ratio_bootstrap": paired_bootstrap(cb, ca, ratio_of_means),
        }
    return summary


def fmt(interval: Sequence[float]) -> str:
    mean, low, high = interval
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def markdown(summary: dict[str, Any], start: dict | None) -> list[str]:
    lines = [f"Seeds: {summary['seeds']}; target (mean final test accuracy of arm a): {summary.get('target', 0):.3f}"]
    if start:
        point = start["curve"][0]
        lines.append(
            f"Starting model (greedy): test accuracy {point['test']['answer_accuracy']:.3f}, lines "
            f"{point['test']['line_accuracy']:.3f}, format {point['test']['format_valid']:.3f}; "
            f"OOD {point['ood']['answer_accuracy']:.3f}"
        )
    lines += [
        "",
        "| arm | final test accuracy (95 % t) | completions to target (per seed) | censored | lines right | format "
        "valid | tokens | OOD accuracy | s/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, row in sorted(summary["arms"].items(), key=lambda item: list(LABELS).index(item[0])):
        lines.append(
            f"| {LABELS.get(arm, arm)} | {fmt(row['final_test_accuracy'])} | "
            f"{', '.join(f'{c:.0f}' for c in row['completions_to_target'])} | {row['censored']} | "
            f"{row['final_line_accuracy']:.3f} | {row['final_format_valid']:.3f} | {row['final_tokens']:.1f} | "
            f"{fmt(row['final_ood_accuracy'])} | {row['seconds_per_step']:.1f} |"
        )
    lines += [
        "",
        "| vs (a) | Δ final accuracy (t) | Δ (paired bootstrap) | Δ OOD (t) | completions ratio [bootstrap] |",
        "| --- | --- | --- | --- | --- |",
    ]
    for arm, row in sorted(summary["comparisons"].items(), key=lambda item: list(LABELS).index(item[0])):
        low, high = row["accuracy_difference_bootstrap"]
        rlow, rhigh = row["completions_ratio_bootstrap"]
        lines.append(
            f"| {LABELS.get(arm, arm)} | {fmt(row['accuracy_difference'])} | [{low:.3f}, {high:.3f}] | "
            f"{fmt(row['ood_difference'])} | {row['completions_ratio']:.3f} [{rlow:.3f}, {rhigh:.3f}] |"
        )
    return lines


def plot(runs: dict[str, dict[int, dict]], start: dict | None, path: Path) -> None:
    """Mean test accuracy over seeds with its 95 % t band, per arm, against completions."""
    from matplotlib.figure import Figure  # the object API: no global backend switch

    figure = Figure(figsize=(7.5, 4.5))
    axis = figure.subplots()
    for arm, by_seed in sorted(runs.items(), key=lambda item: list(LABELS).index(item[0])):
        curves = [curve(record, start) for record in by_seed.values()]
        xs = curves[0][0]
        bands = [t_interval([ys[i] for _, ys in curves if i < len(ys)]) for i in range(len(xs))]
        mean = [b[0] for b in bands]
        low = [b[1] if math.isfinite(b[1]) else b[0] for b in bands]
        high = [b[2] if math.isfinite(b[2]) else b[0] for b in bands]
        axis.plot(xs, mean, marker="o", label=f"{LABELS.get(arm, arm)} ({len(curves)} seeds)")
        axis.fill_between(xs, low, high, alpha=0.15)
    axis.set_xlabel("training completions")
    axis.set_ylabel("test accuracy (greedy)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def choose_learning_rates(out: Path) -> dict[str, float]:
    """The pre-registered choice: per arm, the grid value with the highest mean final val accuracy over the selection
    seeds (ties: the smaller rate); the control (f) takes arm (c)'s rate. Writes ``learning_rates.json`` and
    ``selection.md`` in ``out``."""
    scores: dict[str, dict[float, list[float]]] = {}
    for path in sorted(out.glob("*_seed*_lr*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        config = record["config"]
        scores.setdefault(config["arm"], {}).setdefault(config["learning_rate"], []).append(final(record, "val"))
    grid = sorted({rate for by_rate in scores.values() for rate in by_rate})
    lines = ["| arm | " + " | ".join(f"lr {rate:g}" for rate in grid) + " |", "| --- " * (1 + len(grid)) + "|"]
    chosen: dict[str, float] = {}
    for arm in LABELS:
        if arm not in scores:
            continue
        means = {rate: statistics.fmean(values) for rate, values in sorted(scores[arm].items())}
        chosen[arm] = max(sorted(means), key=lambda rate: (round(means[rate], 9), -rate))
        cells = [f"{means[r]:.3f} ({', '.join(f'{v:.3f}' for v in scores[arm][r])})" for r in sorted(means)]
        lines.append(f"| {LABELS[arm]} | " + " | ".join(cells) + " |")
    if "verifier" in chosen:
        chosen.setdefault("shuffled", chosen["verifier"])
    lines += ["", "Chosen: " + ", ".join(f"{arm} {rate:g}" for arm, rate in chosen.items())]
    (out / "selection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "learning_rates.json", chosen)
    print("\n".join(lines))
    return chosen


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/verifier_study")
    parser.add_argument("--no-plot", dest="plot", action="store_false")
    parser.add_argument("--select", action="store_true", help="choose the learning rates from --select runs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.select:
        return choose_learning_rates(out)
    runs, start = load_runs(out)
    summary = summarize(runs, start)
    lines = markdown(summary, start)
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "summary.json", summary)
    if args.plot and runs:
        plot(runs, start, out / "test_accuracy.png")
    print("\n".join(lines))
    for name, arm in (("verifier_ratio", "verifier"), ("prime_real_ratio", "prime")):
        row = summary["comparisons"].get(arm)
        value, (low, high) = (
            (row["completions_ratio"], row["completions_ratio_bootstrap"]) if row else (math.nan, (math.nan, math.nan))
        )
        print(f"{name}: {value:.3f} [{low:.3f}, {high:.3f}]")
    return summary


if __name__ == "__main__":
    main()
