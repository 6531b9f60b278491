"""Aggregation of ``benchmarks/real_ab.py`` results: per-arm summaries, learning-curve plots, the ratio, a
threshold sweep, ``summary.md`` and ``summary.json`` (``python benchmarks/real_ab.py --report-only``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from real_ab_tasks import ARMS, TASKS, bootstrap_mean, bootstrap_ratio, keyword_columns, mean_band, steps_to_threshold

# Thresholds of the sweep table (fixed before the study ran): how the step ratio depends on the chosen threshold.
SWEEPS = {"keywords": (0.6, 0.7, 0.8, 0.9), "sentiment": (0.85, 0.9, 0.95)}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------- aggregate
def load_results(out: Path) -> dict[str, dict[str, list[dict]]]:
    """{task: {arm: [result, ...] sorted by seed}} of every finished run under ``out``."""
    results: dict[str, dict[str, list[dict]]] = {}
    for task in TASKS:
        for path in sorted((out / task).glob("*_seed*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            results.setdefault(task, {}).setdefault(record["config"]["arm"], []).append(record)
    for arms in results.values():
        for runs in arms.values():
            runs.sort(key=lambda r: r["config"]["seed"])
    return results


def arm_summary(runs: list[dict], threshold: float, resamples: int) -> dict[str, Any]:
    """Final held-out score (bootstrap interval), steps to ``threshold`` per seed, seconds per step / eval."""
    finals = [[s["score"] for s in r["final_samples"]] for r in runs]
    steps = [steps_to_threshold(r["curve"], threshold, r["config"]["steps"] + r["config"]["eval_every"]) for r in runs]
    summary = {
        "seeds": [r["config"]["seed"] for r in runs],
        "final_score": sum(map(sum, finals)) / max(1, sum(map(len, finals))),
        "final_interval": list(bootstrap_mean(finals, resamples)),
        "steps_to_threshold": [s for s, _ in steps],
        "censored": [c for _, c in steps],
        "mean_steps": sum(s for s, _ in steps) / len(steps),
        "seconds_per_step": sum(r["wall_seconds_per_step"] for r in runs) / len(runs),
        "seconds_per_eval": sum(r["wall_seconds_per_eval"] for r in runs) / len(runs),
    }
    # area under the held-out curve: the mean score over the evals after step 0, per seed, then over seeds
    auc = [sum(p["held_out_score"] for p in r["curve"][1:]) / max(1, len(r["curve"]) - 1) for r in runs]
    summary["curve_mean"], summary["curve_mean_band"] = mean_band(auc)[0], list(mean_band(auc)[1:])
    if "title_rate" in runs[0]["curve"][-1]:
        summary["final_title_rate"] = sum(r["curve"][-1]["title_rate"] for r in runs) / len(runs)
    return summary


def plot_curves(task: str, arms: dict[str, list[dict]], threshold: float, path: Path) -> None:
    """Held-out score per eval step: mean over seeds and its 95 % t band, one colour per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    colours = {"outcome": "tab:orange", "token": "tab:blue", "shaped": "tab:green"}
    for arm, runs in arms.items():
        steps = sorted({p["step"] for r in runs for p in r["curve"]})
        bands = []
        for step in steps:
            values = [p["held_out_score"] for r in runs for p in r["curve"] if p["step"] == step]
            bands.append(mean_band(values))
        mean, low, high = zip(*bands)
        axis.plot(steps, mean, marker="o", color=colours.get(arm), label=f"{arm} ({len(runs)} seeds)")
        axis.fill_between(steps, low, high, color=colours.get(arm), alpha=0.2)
    axis.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    axis.set(xlabel="GRPO step", ylabel="held-out score", title=f"{task}: held-out score (mean, 95 % band)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def ratio_summary(task: str, arms: dict[str, dict], runs: dict[str, list[dict]], resamples: int) -> dict[str, Any]:
    """Mean steps of the better token arm (token/shaped) ÷ outcome's, with a bootstrap interval over paired seeds."""
    candidates = [arm for arm in ("token", "shaped") if arm in arms]
    if "outcome" not in arms or not candidates:
        return {"task": task, "arm": None, "value": math.nan, "interval": [math.nan, math.nan]}
    best = min(candidates, key=lambda arm: arms[arm]["mean_steps"])
    seeds = sorted(set(arms[best]["seeds"]) & set(arms["outcome"]["seeds"]))
    by_seed = {arm: dict(zip(arms[arm]["seeds"], arms[arm]["steps_to_threshold"])) for arm in (best, "outcome")}
    top, bottom = [by_seed[best][s] for s in seeds], [by_seed["outcome"][s] for s in seeds]
    value = sum(top) / sum(bottom) if seeds and sum(bottom) else math.nan
    interval = bootstrap_ratio(top, bottom, resamples)
    censored = sum(c for arm in (best, "outcome") for c in arms[arm]["censored"])
    return {"task": task, "arm": best, "seeds": seeds, "value": value, "interval": list(interval),
            "censored": censored}  # fmt: skip


def text_measures(texts: list[str]) -> dict[str, float]:
    """Held-out text measures no reward of the study computes: distinct-1/2 over the samples, the share of samples
    repeating a word 3-gram, and the mean length in words."""
    from trl_token_ext.demo.measures import WORD, distinct_n

    repeats = 0
    for text in texts:
        words = [w.lower() for w in WORD.findall(text)]
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        repeats += len(set(grams)) < len(grams)
    count = max(1, len(texts))
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "repeat_rate": repeats / count,
        "words": sum(len(WORD.findall(t)) for t in texts) / count,
    }


class PerplexityJudge:
    """Perplexity of a run's final held-out samples under its starting model (the ``model_path`` it recorded, no
    adapter), given their prompt: fluency as the untrained model judges it. Completion ids are the re-tokenized
    sample texts. NaN when the run recorded no model folder that exists here."""

    def __init__(self, device: str = "cpu") -> None:
        self.device, self.models = device, {}

    def _load(self, path: str) -> tuple[Any, Any]:
        if path not in self.models:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
            self.models[path] = (model, AutoTokenizer.from_pretrained(path))
        return self.models[path]

    def __call__(self, task: str, run: dict[str, Any]) -> float:
        from trl_token_ext.demo.measures import base_perplexity
        from trl_token_ext.demo.task import held_out_prompts

        path = run.get("model_path")
        if not path or not (Path(path) / "config.json").is_file():
            return math.nan
        model, tokenizer = self._load(path)
        prompts = keyword_columns("held_out")["prompt"] if task == "keywords" else held_out_prompts()
        rows = [
            {"prompt": prompts[s["prompt_index"]],
             "completion_ids": tokenizer(s["text"], add_special_tokens=False)["input_ids"]}
            for s in run["final_samples"]
        ]  # fmt: skip
        return base_perplexity(model, tokenizer, rows)


def quality_lines(results: dict[str, dict[str, list[dict]]], summary: dict[str, Any], judge: Any) -> list[str]:
    """Markdown table of the final held-out samples' text measures (and perplexity with a ``judge``) per task and
    arm, means over seeds, with the starting model's samples (arm ``start``) first; also in ``summary["quality"]``."""
    lines = ["## Held-out quality of the final samples (no reward computes these; means over seeds)", ""]
    lines += ["| task | arm | distinct-1 | distinct-2 | repeats a 3-gram | words | perplexity (starting model) |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- |"]
    summary["quality"] = {}
    for task, arms in results.items():
        for arm in (a for a in ("start", *ARMS) if a in arms):
            per_run = []
            for run in arms[arm]:
                measures = text_measures([s["text"] for s in run["final_samples"]])
                measures["perplexity"] = judge(task, run) if judge is not None else math.nan
                per_run.append(measures)
            means = {key: sum(m[key] for m in per_run) / len(per_run) for key in per_run[0]}
            summary["quality"].setdefault(task, {})[arm] = means
            lines.append(
                f"| {task} | {arm} | {means['distinct_1']:.3f} | {means['distinct_2']:.3f} | "
                f"{means['repeat_rate']:.2f} | {means['words']:.1f} | {means['perplexity']:.2f} |"
            )
    return lines + [""]


def sweep_lines(results: dict[str, dict[str, list[dict]]], summary: dict[str, Any]) -> list[str]:
    """Markdown table: mean steps to each ``SWEEPS`` threshold per arm and the token arms' step ratios to outcome;
    also stored under ``summary["sweep"]``."""
    lines = ["## Steps to threshold across thresholds (mean over seeds; censored runs count steps + eval_every)", ""]
    lines += ["| task | threshold | " + " | ".join(ARMS) + " | token / outcome | shaped / outcome |"]
    lines += ["| --- | --- | " + " | ".join("---" for _ in ARMS) + " | --- | --- |"]
    summary["sweep"] = []
    for task, arms in results.items():
        for threshold in SWEEPS.get(task, ()):
            means = {}
            for arm in ARMS:
                if arm in arms:
                    censor = arms[arm][0]["config"]["steps"] + arms[arm][0]["config"]["eval_every"]
                    steps = [steps_to_threshold(r["curve"], threshold, censor)[0] for r in arms[arm]]
                    means[arm] = sum(steps) / len(steps)
            ratios = {arm: means[arm] / means["outcome"] if means.get("outcome") and arm in means else math.nan
                      for arm in ("token", "shaped")}  # fmt: skip
            summary["sweep"].append({"task": task, "threshold": threshold, "mean_steps": means, "ratios": ratios})
            cells = " | ".join(f"{means[a]:.1f}" if a in means else "" for a in ARMS)
            lines.append(f"| {task} | {threshold} | {cells} | {ratios['token']:.2f} | {ratios['shaped']:.2f} |")
    return lines + [""]


def aggregate(out: Path, thresholds: dict[str, float], resamples: int, judge: Any = None) -> dict[str, Any]:
    """Summaries per task and arm, ``<task>_curves.png``, ``summary.md`` and ``summary.json`` under ``out``."""
    results = load_results(out)
    summary: dict[str, Any] = {"thresholds": thresholds, "tasks": {}}
    lines = ["# Real-model A/B: outcome-only vs token-level credit", ""]
    for task, arms in results.items():
        rows = {arm: arm_summary(arms[arm], thresholds[task], resamples) for arm in ARMS if arm in arms}
        summary["tasks"][task] = rows
        plot_curves(task, {arm: arms[arm] for arm in rows}, thresholds[task], out / f"{task}_curves.png")
        lines += [f"## {task} (threshold {thresholds[task]}; never reached = steps + eval_every, marked >)", ""]
        lines += [f"![{task}]({task}_curves.png)", ""]
        lines += ["| arm | seeds | final held-out (95 % CI) | curve mean (95 % band) | steps to threshold "
                  "| mean steps | s/step | s/eval |"]  # fmt: skip
        lines += ["| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for arm, row in rows.items():
            shown = ", ".join(f">{s}" if c else str(s) for s, c in zip(row["steps_to_threshold"], row["censored"]))
            title = f", title {row['final_title_rate']:.2f}" if "final_title_rate" in row else ""
            low, high = row["final_interval"]
            band = row["curve_mean_band"]
            lines.append(
                f"| {arm} | {len(row['seeds'])} | {row['final_score']:.3f} [{low:.3f}, {high:.3f}]{title} "
                f"| {row['curve_mean']:.3f} [{band[0]:.3f}, {band[1]:.3f}] | {shown} "
                f"| {row['mean_steps']:.1f} | {row['seconds_per_step']:.1f} | {row['seconds_per_eval']:.1f} |"
            )
        lines.append("")
    lines += quality_lines(results, summary, judge)
    lines += sweep_lines(results, summary)
    task = "keywords" if "keywords" in results else next(iter(results), None)
    if task is None:
        summary["ratio"] = {"task": None, "arm": None, "value": math.nan, "interval": [math.nan, math.nan]}
    else:
        summary["ratio"] = ratio_summary(task, summary["tasks"][task], results[task], resamples)
    ratio = summary["ratio"]
    lines.append(f"real_ab_ratio ({ratio['task']}, {ratio['arm']} / outcome): {ratio['value']:.3f} "
                 f"[{ratio['interval'][0]:.3f}, {ratio['interval'][1]:.3f}]")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "summary.json", summary)
    return summary
