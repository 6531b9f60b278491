"""``trl-token demo`` (what ``make demo`` runs): what token rewards add to GRPO, measured against a control, offline.

Two tasks on SmolLM2-135M-Instruct + LoRA (fp32, CPU), each trained twice with the same outcome reward, prompts,
budget, seed and learning rate: once with TRL's ``GRPOTrainer`` (the control: outcome only) and once with
``TokenGRPOTrainer`` (outcome + token rewards). Both are sampled on the same held-out prompts with the same seed.

* ``sentiment``: positive one-sentence reviews of the asked movie; outcome = a MiniLM classifier's P(positive) +
  topicality, token rewards = each sentence's similarity to the movie and a penalty on repeated 3-grams;
* ``arithmetic``: multi-step addition; outcome = the answer is right, token reward = each line's verifier verdict
  on that line (a local signal).

Prints one table per task (before / control / token / difference) of held-out measures no reward computes, samples
side by side, each phase's wall time, and writes ``<output_dir>/``: ``summary.json``, ``report.md`` and per task
``comparison.png`` (reward curves of both arms), ``heatmap.html`` (per-term token rewards and advantages),
``samples.md``, ``training_heatmaps/``.

    trl-token demo                      # both tasks, the two arms of each side by side (~13 min on 2 cores)
    trl-token demo --task sentiment     # what make demo runs (~5 min of training and sampling)
    trl-token demo --task arithmetic    # one task
    trl-token demo --tiny               # the same pipeline on a tiny random policy and classifier (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from trl_token_ext.demo.arms import ARMS
from trl_token_ext.demo.tasks import DEFAULTS, TASKS

TASK_CHOICES = ("all", *TASKS)
SETTINGS = tuple(DEFAULTS["sentiment"]["real"])  # options whose default depends on the task and on --tiny


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="trl-token demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--task", default="all", choices=TASK_CHOICES, help="Which task (default: both).")
    add("--tiny", action="store_true", help="Tiny random policy and classifier (tests, smoke runs).")
    add("--model", default="smollm2", help="'smollm2' (default, offline) or a model id / folder.")
    add("--classifier", default=None, help="Sentiment classifier folder (default: the cached MiniLM one).")
    add("--output_dir", default="reports/demo", help="Report folder (default: reports/demo).")
    add("--overwrite", action="store_true", help="Replace an earlier report there (default: move it aside).")
    add("--split", default="test", choices=["test", "validation"], help="Reported prompts (validation: tuning).")
    add("--jobs", type=int, default=2, help="Arms run side by side as child processes (1: one after another here).")
    add("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="Which arms (default both; one: tuning runs).")
    for key in SETTINGS:
        kind = float if key in ("learning_rate", "temperature", "token_advantage_coef") else int
        add(f"--{key}", type=kind, default=None, help="Default: per task (see docs/demo.md).")
    add("--load_in_4bit", action="store_true", help="NF4 base weights (GPU; degrades the GGUF).")
    add("--quality", default="lexicon", choices=["lexicon", "logprob"], help="sentiment: the Q scorer.")
    add("--w_quality", type=float, default=0.0, help="sentiment: weight of Q (VADER word valences; 0: off).")
    add("--w_topic", type=float, default=2.0, help="sentiment: weight of C_topic (similarity to the movie).")
    add("--w_topic_outcome", type=float, default=1.0, help="sentiment: weight of topicality in the outcome.")
    add("--w_repetition", type=float, default=1.0, help="sentiment: weight of C_repetition (repeated 3-grams).")
    add("--w_extra_sentence", type=float, default=1.0, help="sentiment: weight of the penalty on a 2nd sentence.")
    add("--w_repeated_word", type=float, default=1.0, help="sentiment: weight of the penalty on a repeated word.")
    add("--w_shared_opening", type=float, default=4.0, help="sentiment: weight of the penalty on a shared opening.")
    add("--w_unfinished", type=float, default=1.0, help="sentiment: weight of the penalty on a cut-off reply.")
    add("--token_kl_coef", type=float, default=0.0, help="sentiment: β_kl of the per-token KL in the reward.")
    add("--heatmap_every", type=int, default=10, help="Training heatmaps of the token arm every N steps.")
    add("--threads", type=int, default=1, help="torch threads per arm (1 is fastest on 2 shared cores).")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for task in TASKS:
        options = task_options(args, task)
        if options["batch_size"] % options["num_generations"]:
            parser.error(
                f"{task}: --batch_size {options['batch_size']} must be a multiple of --num_generations "
                f"{options['num_generations']}."
            )
    if args.jobs < 1:
        parser.error("--jobs must be >= 1.")
    return args


def task_options(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """Every setting of one task's arms: the command line, else the task's default for the mode."""
    defaults = DEFAULTS[task]["tiny" if args.tiny else "real"]
    options = {key: value for key, value in vars(args).items() if key not in SETTINGS}
    options.update({key: defaults[key] if getattr(args, key) is None else getattr(args, key) for key in SETTINGS})
    return options


def prepare_report_dir(report: Path, overwrite: bool) -> Path | None:
    """Make room for a new report: an earlier one is deleted (``overwrite``) or moved to ``<report>-<its time>``
    (returned)."""
    if not report.exists() or not any(report.iterdir()):
        return None
    if overwrite:
        shutil.rmtree(report)
        return None
    stamp = datetime.fromtimestamp(report.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = report.with_name(f"{report.name}-{stamp}")
    index = 1
    while target.exists():
        target, index = report.with_name(f"{report.name}-{stamp}-{index}"), index + 1
    report.rename(target)
    return target


def prepare_assets(args: argparse.Namespace, tasks: list[str], work: Path, console: Any) -> dict[str, Any]:
    """The policy folder and, for the sentiment task, the classifier (built, fetched or trained once here, before
    any arm starts, so that the arms only read them)."""
    if args.tiny:
        from trl_token_ext.testing import save_tiny_causal_lm, save_tiny_sequence_classifier

        console.print("policy and classifier: tiny random models, built offline (nothing is fetched)")
        assets = {"model": str(save_tiny_causal_lm(work / "tiny-policy", seed=args.seed))}
        if "sentiment" in tasks:
            assets["classifier"] = args.classifier or str(save_tiny_sequence_classifier(work / "tiny-classifier"))
        return assets
    from trl_token_ext.demo.pretrained import resolve_model_name

    assets = {"model": resolve_model_name(args.model)}
    console.print(f"policy: {assets['model']}")
    if "sentiment" in tasks:
        from trl_token_ext.demo.classifier import prepare_classifier
        from trl_token_ext.demo.data import minilm_dir, vader_lexicon_path

        minilm_dir(), vader_lexicon_path()  # fetched once here, read by both arms
        assets["classifier"] = prepare_classifier(False, work, args.classifier)
        metrics = Path(assets["classifier"]).parent / "metrics.json"  # a classifier trained by the demo
        if metrics.is_file():
            assets["classifier_test_accuracy"] = json.loads(metrics.read_text(encoding="utf-8")).get("test_accuracy")
        accuracy = assets.get("classifier_test_accuracy", "n/a")
        console.print(f"sentiment classifier: {assets['classifier']} (test accuracy {accuracy})")
    return assets


def _task_summary(task: str, options: dict[str, Any], arms: dict[str, Any]) -> dict[str, Any]:
    from trl_token_ext.demo.measures import target_checks

    before = next(result["before"]["measures"] for result in arms.values() if "before" in result)
    present = [arm for arm in ("control", "token") if arm in arms]
    measures = {"before": before, **{arm: arms[arm]["after"]["measures"] for arm in present}}
    count, per = options["eval_prompts"], options["eval_samples"]
    unit = "movies" if task == "sentiment" else "problems"
    summary = {
        "eval": f"{options['split']} split, {count} {unit} × {per} samples",
        "settings": options,
        "measures": measures,
        "token_reward_weights": arms[present[-1]]["token_reward_weights"],
        "outcome_reward_weights": arms[present[-1]]["outcome_reward_weights"],
        "seconds": {arm: arms[arm]["seconds"] for arm in present},
    }
    if task == "sentiment":
        summary["targets"] = {arm: target_checks(before, measures[arm]) for arm in present}
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to ``<output_dir>/summary.json``)."""
    args = _parse(argv)
    from trl_token_ext.demo.quiet import quiet_third_party

    quiet_third_party(args.load_in_4bit)
    import torch
    from rich.console import Console

    from trl_token_ext.demo import report as reporting
    from trl_token_ext.demo.arms import run_arms
    from trl_token_ext.demo.progress import ProgressDisplay

    torch.set_num_threads(args.threads)
    console = Console(soft_wrap=not Console().is_terminal)  # no hard-wrapped lines in log files
    start, load_start = time.perf_counter(), os.getloadavg()
    tasks = list(TASKS) if args.task == "all" else [args.task]
    report = Path(args.output_dir)
    moved = prepare_report_dir(report, args.overwrite)
    if moved is not None:
        console.print(f"The earlier report in {report}/ was moved to {moved}/.")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="trl-token-demo-") as tmp:
        work = Path(tmp)
        console.print("[bold]1/3[/bold] preparing the policy and the rewards")
        assets = prepare_assets(args, tasks, work, console)
        seconds["prepare"] = time.perf_counter() - start
        options = {task: task_options(args, task) for task in tasks}
        arms = [arm for arm in ("token", "control") if arm in args.arms]
        before_arm = "control" if "control" in arms else "token"  # samples the starting model too
        specs = [
            {"task": task, "arm": arm, "options": options[task], "assets": assets, "before": arm == before_arm,
             "work": str(work), "report": str(report / task)}
            for task in tasks for arm in arms
        ]  # fmt: skip
        side = "side by side" if args.jobs > 1 else "one after another"
        console.print(
            f"[bold]2/3[/bold] training {len(specs)} arm{'s' if len(specs) > 1 else ''} ({', '.join(tasks)}; "
            f"{' and '.join(arms)}), {side}"
        )
        display = ProgressDisplay(console)
        try:
            results = run_arms(specs, args.jobs, display)
        finally:
            display.stop()
        seconds["arms"] = time.perf_counter() - start - seconds["prepare"]
    console.print("[bold]3/3[/bold] report")
    command = " ".join(["trl-token demo", *(sys.argv[1:] if argv is None else argv)])
    summary: dict[str, Any] = {"command": command, "tasks": {}}
    written = ["summary.json", "report.md"]
    for task in tasks:
        results_of = {result["arm"]: result for result in results if result["task"] == task}
        summary["tasks"][task] = _task_summary(task, options[task], results_of)
        files = reporting.write_task_report(report / task, task, summary["tasks"][task], results_of)
        written += [f"{task}/{name}" for name in files]
        reporting.print_samples(console, task, summary["tasks"][task], results_of)
    seconds["report"] = time.perf_counter() - start - seconds["prepare"] - seconds["arms"]
    seconds["total"] = time.perf_counter() - start
    summary.update(
        seconds=seconds,
        load_average={"start": load_start, "end": os.getloadavg()},
        machine={"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                 "python": platform.python_version(), "torch": torch.__version__},
        jobs=args.jobs,
        assets=assets if not args.tiny else {"model": "tiny", "classifier": "tiny"},  # no temporary paths
        finished=datetime.now().isoformat(timespec="seconds"),
    )  # fmt: skip
    reporting.print_tables(console, summary)
    report.mkdir(parents=True, exist_ok=True)
    (report / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (report / "report.md").write_text(reporting.markdown_report(summary) + "\n", encoding="utf-8")
    console.print(f"Report: {report}/ ({', '.join(written)})")
    return summary


if __name__ == "__main__":
    main()
