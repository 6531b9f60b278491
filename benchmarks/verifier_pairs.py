"""Direct paired comparisons between the arms of ``benchmarks/verifier_study.py``, beside the pre-registered analysis.

    python benchmarks/verifier_pairs.py --out docs/evidence/verifier_study

The pre-registered report (``benchmarks/verifier_report.py``) compares every arm with arm (a); the pre-registration
names two more questions, read there only through both arms' comparisons with (a): (c) vs (f), whether the place of
the credit matters, and (c) vs (b), whether tokens beat one scalar carrying the same information. This script asks
them directly, with the report's own functions and settings (paired by seed: mean difference with a t interval and a
paired bootstrap interval, completions to the same target and their ratio with a paired bootstrap interval). Written
while the last reported runs were running, after the first results had been seen; it adds comparisons and changes
none of the report's. Writes ``pairs.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verifier_report as report  # noqa: E402

# (first, second, the question the difference first − second answers)
PAIRS = (
    ("verifier", "shuffled", "does the place of the credit matter (same line scores, right vs shuffled lines)?"),
    ("verifier", "outcome_lines", "tokens vs one scalar carrying the same information"),
    ("verifier_min", "verifier", "PURE's min-form credit vs the default reward-to-go"),
)


def compare(runs: dict[str, dict[int, dict]], start: dict | None, first: str, second: str) -> dict[str, Any]:
    """Paired differences ``first − second`` over their common seeds (completions to arm (a)'s mean final test
    accuracy, as in the report)."""
    seeds = sorted(set(runs[first]) & set(runs[second]))
    target = statistics.fmean(report.final(runs["outcome"][s]) for s in sorted(runs["outcome"]))

    def finals(arm: str, split: str = "test", key: str = "answer_accuracy") -> list[float]:
        return [report.final(runs[arm][s], split, key) for s in seeds]

    def completions(arm: str) -> list[float]:
        return [report.completions_to(*report.curve(runs[arm][s], start), target)[0] for s in seeds]

    a, b = finals(first), finals(second)
    ca, cb = completions(first), completions(second)
    return {
        "seeds": seeds,
        "accuracy_difference": report.t_interval([x - y for x, y in zip(a, b)]),
        "accuracy_difference_bootstrap": report.paired_bootstrap(a, b, report.mean_difference),
        "line_accuracy_difference": report.t_interval(
            [x - y for x, y in zip(finals(first, key="line_accuracy"), finals(second, key="line_accuracy"))]
        ),
        "ood_difference": report.t_interval([x - y for x, y in zip(finals(first, "ood"), finals(second, "ood"))]),
        "completions_ratio": report.ratio_of_means(ca, cb),
        "completions_ratio_bootstrap": report.paired_bootstrap(ca, cb, report.ratio_of_means),
    }


def markdown(rows: list[tuple[str, str, str, dict[str, Any]]]) -> list[str]:
    lines = [
        "| comparison | question | Δ final accuracy (t) | Δ (paired bootstrap) | Δ lines right (t) | Δ OOD (t) | "
        "completions ratio [bootstrap] |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for first, second, question, row in rows:
        low, high = row["accuracy_difference_bootstrap"]
        rlow, rhigh = row["completions_ratio_bootstrap"]
        lines.append(
            f"| {report.LABELS[first]} − {report.LABELS[second]} | {question} | "
            f"{report.fmt(row['accuracy_difference'])} | [{low:.3f}, {high:.3f}] | "
            f"{report.fmt(row['line_accuracy_difference'])} | "
            f"{report.fmt(row['ood_difference'])} | {row['completions_ratio']:.3f} [{rlow:.3f}, {rhigh:.3f}] |"
        )
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/verifier_study")
    args = parser.parse_args(argv)
    out = Path(args.out)
    runs, start = report.load_runs(out)
    missing = sorted(({arm for pair in PAIRS for arm in pair[:2]} | {"outcome"}) - set(runs))
    if missing:
        raise SystemExit(f"verifier_pairs: no result files of arm(s) {', '.join(missing)} in {out}")
    rows = [(first, second, question, compare(runs, start, first, second)) for first, second, question in PAIRS]
    lines = markdown(rows)
    (out / "pairs.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
