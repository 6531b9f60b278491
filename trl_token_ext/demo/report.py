"""The demo's report: the token-vs-control table, the reward-curve plot, samples side by side, heatmaps, summary.

Everything printed or written comes from the arms' results (`demo.arms.run_arm`) gathered in ``summary.json``, and
:func:`markdown_report` renders the same numbers for the docs, so a document quoting a run can be checked against
that run's ``summary.json`` (``python -m trl_token_ext.demo.report reports/demo/summary.json``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from trl_token_ext.demo.tasks import LABELS

ARM_TITLES = {"control": "outcome only (TRL GRPOTrainer)", "token": "+ token rewards (TokenGRPOTrainer)"}
COLUMNS = ("before", "control", "token")


def fmt(value: float | None) -> str:
    """A measure as printed everywhere: 3 decimals, or 2 from 10 on (``n/a`` for None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def signed(value: float) -> str:
    """``+0.123`` / ``-0.123`` (3 decimals, 2 from 10 on; no ``-0.000``)."""
    text = f"{value:+.2f}" if abs(value) >= 10 else f"{value:+.3f}"
    return text.replace("-", "+") if float(text) == 0 else text


def table_rows(task_summary: dict[str, Any], task: str) -> list[tuple[str, str, str, str, str]]:
    """(measure, before, control, token, token − control) per measure of ``task``, formatted (``n/a`` for an arm
    that was not run: ``--arms``)."""
    measures = task_summary["measures"]
    rows = []
    for key, label in LABELS[task].items():
        before, control, token = (measures[arm][key] if arm in measures else None for arm in COLUMNS)
        difference = signed(token - control) if token is not None and control is not None else "n/a"
        rows.append((label, fmt(before), fmt(control), fmt(token), difference))
    return rows


def before_samples(arms: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out samples of the starting model (sampled by one arm before it trained)."""
    return next(result["before"]["samples"] for result in arms.values() if "before" in result)


def print_tables(console: Any, summary: dict[str, Any]) -> None:
    """The token-vs-control table of every task, the target checks, and the phases' wall times."""
    from rich.table import Table

    for task, task_summary in summary["tasks"].items():
        table = Table(title=f"{task}: held-out {task_summary['eval']} (same prompts and sampling seed)")
        for column in ("measure", "before", "control", "token", "token − control"):
            table.add_column(column, justify="left" if column == "measure" else "right")
        for row in table_rows(task_summary, task):
            table.add_row(*row)
        console.print(table)
        for arm, missed in target_verdicts(task_summary):
            verdict = "[green]all met[/green]" if not missed else f"[red]missed:[/red] {', '.join(missed)}"
            console.print(f"  {task} {arm} target: {verdict}")
    console.print(phase_line(summary))


def target_verdicts(task_summary: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(arm, the names of its missed target checks) for each arm with targets (empty list: all met)."""
    return [
        (arm, [name for name, ok in checks.items() if not ok])
        for arm, checks in task_summary.get("targets", {}).items()
    ]


def phase_line(summary: dict[str, Any]) -> str:
    """``wall time: prepare 12 s, arms 301 s, ... (load average at start 0.10, at end 2.05)``."""
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in summary["seconds"].items())
    load = summary["load_average"]
    return f"wall time: {parts} (1-min load average at start {load['start'][0]:.2f}, at end {load['end'][0]:.2f})"


def print_samples(console: Any, task: str, task_summary: dict[str, Any], arms: dict[str, Any]) -> None:
    """The first sample of each held-out prompt (at most 4 prompts) before / control / token, side by side."""
    from rich.table import Table

    per_prompt = task_summary["settings"]["eval_samples"]
    table = Table(title=f"{task}: first held-out sample before / control / token", show_lines=True)
    table.add_column("prompt", max_width=22)
    present = [arm for arm in ARM_TITLES if arm in arms]
    for column in ("before", *present):
        table.add_column(column, ratio=1)
    before = before_samples(arms)
    for index in range(0, min(len(before), 4 * per_prompt), per_prompt):
        cells = [before[index]] + [arms[arm]["after"]["samples"][index] for arm in present]
        table.add_row(cells[0]["prompt"], *(f"{c['text']}\n[dim]outcome {c['reward']:.2f}[/dim]" for c in cells))
    console.print(table)


def write_samples(path: Path, task: str, arms: dict[str, Any]) -> None:
    """``samples.md``: every held-out sample before, after the control and after the token arm."""
    lines = [f"# {task}: held-out samples before / control / token (same prompts, same sampling seed)", ""]
    for index, old in enumerate(before_samples(arms)):
        lines += [f"## {old['prompt']} (sample {index})", ""]
        lines += [f"* before ({old['reward']:.3f}): {old['text']!r}"]
        for arm in (arm for arm in ARM_TITLES if arm in arms):
            sample = arms[arm]["after"]["samples"][index]
            lines += [f"* {arm} ({sample['reward']:.3f}): {sample['text']!r}"]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def heatmap_rows(task: str, arms: dict[str, Any], per_prompt: int, limit: int = 8) -> list[Any]:
    """Token and control rows of the held-out samples, prompt by prompt: sentiment — each prompt's first sample;
    arithmetic — for each problem the first token-arm sample with a wrong line, preferring one whose token
    advantage is not all zero (a group of identical replies gets none); problems with such a sample first."""
    from trl_token_ext.visualize import HeatmapRow

    present = [arm for arm in ("token", "control") if arm in arms]
    first = arms[present[0]]
    count = len(first["after"]["samples"]) // per_prompt
    chosen = []
    for problem in range(count):
        indices = range(problem * per_prompt, (problem + 1) * per_prompt)
        pick = problem * per_prompt
        if task == "arithmetic":
            views = [first["heatmap"][i]["views"] for i in indices]
            wrong = [i for i, v in zip(indices, views) if any(x < 0 for x in v["line verdict (display)"])]
            credited = [i for i in wrong if any(views[i - indices[0]].get("A_tok (token advantage)", []))]
            pick = (credited or wrong or [pick])[0]
            chosen.append((not wrong, not credited, problem, pick))
        else:
            chosen.append((False, False, problem, pick))
    rows = []
    for *_, index in sorted(chosen)[:limit]:
        for arm in present:
            row = HeatmapRow(**arms[arm]["heatmap"][index])
            row.prompt = f"{ARM_TITLES[arm]} — {arms[arm]['after']['samples'][index]['prompt']}"
            rows.append(row)
    return rows


def write_task_report(folder: Path, task: str, task_summary: dict[str, Any], arms: dict[str, Any]) -> list[str]:
    """``comparison.png``, ``heatmap.html`` and ``samples.md`` of one task in ``folder``; returns the file names."""
    from trl_token_ext.curves import plot_reward_curves
    from trl_token_ext.visualize import write_heatmap_page

    folder.mkdir(parents=True, exist_ok=True)
    present = [arm for arm in ("token", "control") if arm in arms]
    histories = {ARM_TITLES[arm]: arms[arm]["log_history"] for arm in present}
    keys = [f"rewards/{name}/mean" for name in arms[present[0]]["outcome_reward_weights"]]
    if "token" in arms:
        keys += [f"token_rewards/{name}/mean" for name in arms["token"]["token_reward_weights"]]
    plot_reward_curves(histories, folder / "comparison.png", keys=keys, title=f"{task}: token rewards vs control")
    intro = (
        "Each held-out sample after training, token arm and control, one line per view: each token reward term's "
        "raw value (per-term colour scale), then the advantage each token would get in a group of the "
        f"{task_summary['settings']['eval_samples']} samples of its prompt. Green: pushed up, red: pushed down."
    )
    write_heatmap_page(
        folder / "heatmap.html",
        heatmap_rows(task, arms, task_summary["settings"]["eval_samples"]),
        f"{task}: where the credit lands (held-out samples after training)",
        intro=intro,
    )
    write_samples(folder / "samples.md", task, arms)
    return ["comparison.png", "heatmap.html", "samples.md"]


def markdown_report(summary: dict[str, Any]) -> str:
    """The tables of :func:`print_tables` in Markdown (what docs/demo.md quotes)."""
    lines = []
    for task, task_summary in summary["tasks"].items():
        lines += [f"**{task}** (held-out {task_summary['eval']}):", ""]
        lines += ["| measure | before | control | token | token − control |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {' | '.join(row)} |" for row in table_rows(task_summary, task)]
        lines.append("")
        for arm, missed in target_verdicts(task_summary):
            lines.append(f"* {task} {arm} target: {'all met' if not missed else 'missed: ' + ', '.join(missed)}")
        lines += [""] if task_summary.get("targets") else []
    accuracy = summary.get("assets", {}).get("classifier_test_accuracy")
    if accuracy is not None and "sentiment" in summary["tasks"]:
        lines += [f"sentiment classifier (trained on this machine): test accuracy {accuracy:.3f}", ""]
    lines.append(phase_line(summary))
    return "\n".join(lines)


# The measures of the compact tables (seed ranges, choice runs), per task.
KEY_MEASURES = {
    "sentiment": ("p_positive", "title_rate", "perplexity", "distinct_1", "template_share", "cutoff_share",
                  "sentences", "adjacent_repeats"),
    "arithmetic": ("answer_accuracy", "line_accuracy", "format_valid", "cutoff_share"),
}  # fmt: skip


def compare_table(runs: dict[str, dict[str, Any]], task: str) -> str:
    """One Markdown row per run and arm (before, control, token) of ``task``'s key measures, then for each measure
    the range of token − control over the runs."""
    keys = KEY_MEASURES[task]
    lines = [
        "| run | settings | arm | " + " | ".join(keys) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in keys) + " |",
    ]
    differences: dict[str, list[float]] = {key: [] for key in keys}
    for name, summary in runs.items():
        task_summary = summary["tasks"][task]
        settings = task_summary["settings"]
        weights = ", ".join(
            f"{name.removeprefix('consistency_')} {weight:g}"
            for name, weight in task_summary["token_reward_weights"].items()
        )
        described = f"{task_summary['eval']}, seed {settings['seed']}, lr {settings['learning_rate']:g}"
        described += f"; token terms: {weights}"
        measures = task_summary["measures"]
        for arm in (arm for arm in COLUMNS if arm in measures):
            cells = " | ".join(fmt(measures[arm][key]) for key in keys)
            lines.append(f"| {name} | {described} | {arm} | {cells} |")
        for key in keys:
            if "token" in measures and "control" in measures:
                differences[key].append(measures["token"][key] - measures["control"][key])
    counted = len(next(iter(differences.values())))
    if counted > 1:
        spans = " | ".join(f"{signed(min(v))} … {signed(max(v))}" for v in differences.values())
        lines.append(f"| token − control, range over {counted} runs | | | {spans} |")
    return "\n".join(lines)


# Per task: the words before its numbers and (label, measure) of each number the README sentence quotes.
HEADLINE = {
    "sentiment": ("held-out", (("P(positive)", "p_positive"), ("movie named", "title_rate"),
                               ("template share", "template_share"))),
    "arithmetic": ("arithmetic", (("answers right", "answer_accuracy"), ("lines right", "line_accuracy"))),
}  # fmt: skip


def task_headline(task: str, measures: dict[str, dict[str, float]]) -> str:
    """``<task words> <label> before → control outcome-only / token with token rewards, <label> b → c / t, ...``."""
    lead, quoted = HEADLINE[task]
    parts = []
    for index, (label, key) in enumerate(quoted):
        before, control, token = (fmt(measures[arm][key]) for arm in COLUMNS)
        parts.append(
            f"{label} {before} → {control} outcome-only / {token} with token rewards"
            if index == 0
            else f"{label} {before} → {control} / {token}"
        )
    return f"{lead} {', '.join(parts)}"


def headline(summary: dict[str, Any]) -> str:
    """One sentence of the run's key numbers (what README.md quotes)."""
    parts = [task_headline(task, summary["tasks"][task]["measures"]) for task in HEADLINE if task in summary["tasks"]]
    side = "side by side" if summary.get("jobs", 1) > 1 else "one after another"
    load = summary["load_average"]["start"][0]
    return (
        f"{'; '.join(parts)} ({clock(summary['seconds']['total'])} in all, {clock(summary['seconds']['prepare'])} of "
        f"it preparation; arms {side}; {summary['machine']['cpus']} cores, load average {load:.1f} at the start)"
    )


def clock(seconds: float) -> str:
    """``7 min 05 s``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


GENERATED = re.compile(
    r"<!-- demo-report: (?P<args>[^>]*?) -->(?P<lead>\s*)(?P<body>.*?)(?P<trail>\s*)<!-- /demo-report -->", re.S
)


def render(argv: list[str]) -> str:
    """The text ``python -m trl_token_ext.demo.report ARGV`` prints (without the final newline)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trl_token_ext.demo.report", description=main.__doc__)
    parser.add_argument("summaries", nargs="*", help="summary.json files of demo runs")
    parser.add_argument("--headline", action="store_true", help="the README sentence of one run")
    parser.add_argument("--compare", choices=sorted(LABELS), default=None, help="one row per run and arm of a task")
    parser.add_argument("--refresh", nargs="+", default=None, help="rewrite the generated blocks of these files")
    args = parser.parse_args(argv)
    if args.refresh:
        return "\n".join(f"refreshed {path}" for path in args.refresh if refresh(Path(path)))
    loaded = {Path(path).parent.name: json.loads(Path(path).read_text(encoding="utf-8")) for path in args.summaries}
    if not loaded:
        parser.error("give at least one summary.json")
    if args.compare:
        return compare_table(loaded, args.compare)
    first = next(iter(loaded.values()))
    return headline(first) if args.headline else markdown_report(first)


def refresh(path: Path) -> bool:
    """Rewrite every ``<!-- demo-report: ARGS -->…<!-- /demo-report -->`` block of ``path`` with ``render(ARGS)``
    (the documents quote runs only through these blocks): on lines of its own when the block spans lines, else
    inline. True when something changed."""
    text = path.read_text(encoding="utf-8")

    def replace(match: re.Match) -> str:
        start, end = f"<!-- demo-report: {match.group('args')} -->", "<!-- /demo-report -->"
        newline = "\n" if "\n" in match.group("lead") + match.group("trail") else ""  # a block, or inline text
        return f"{start}{newline}{render(match.group('args').split())}{newline}{end}"

    new = GENERATED.sub(replace, text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> None:
    """``python -m trl_token_ext.demo.report SUMMARY.json``: the Markdown tables of a run (``--headline``: the
    README sentence; ``--compare TASK A.json B.json ...``: one row per run and arm; ``--refresh FILE...``: rewrite
    the generated blocks of documents)."""
    print(render(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
