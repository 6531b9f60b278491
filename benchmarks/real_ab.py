"""Real-model A/B: does token-level credit give better models than outcome-only GRPO? (issue #12, part 2)

SmolLM2-135M-Instruct + LoRA (offline), the same prompts, budget, optimizer and seeds for every arm:

* ``outcome``: stock ``trl.GRPOTrainer``, the task's signals as ordinary reward functions (summed by TRL);
* ``token``: ``TokenGRPOTrainer``, the same outcome reward plus the *same* signals placed on sentences/tokens
  (``token_reward_funcs``, λ = 0.5, scaled reward-to-go advantages): only where the credit lands changes;
* ``shaped``: ``token`` + quality Q (VADER lexicon / log-prob under the frozen base) + repetition C.

Tasks (``real_ab_tasks.py``): ``keywords`` (use three required words; outcome = share present, token reward
= 1/k on the first occurrence of each) and ``sentiment`` (the demo's: P(positive) + topicality). Held-out prompts
are sampled (2 per prompt, seeded) at step 0 and every ``--eval_every`` steps. One JSON per (task, arm, seed) in
``<out>/<task>/<arm>_seed<k>.json``, written as each run ends: a rerun skips finished runs (seed-major order, so
partial results stay balanced). The aggregate (``<out>/summary.md``, ``summary.json``, ``<task>_curves.png``): final
held-out score per arm with a bootstrap 95 % interval, steps to a held-out threshold (censored at steps +
eval_every), seconds per step.

    OMP_NUM_THREADS=1 python benchmarks/real_ab.py [--tasks keywords sentiment] [--seeds 0 1 2] [--steps 20]
    python benchmarks/real_ab.py --report-only          # aggregate existing results
    python benchmarks/real_ab.py --tiny --steps 2       # tiny random models, a smoke run

Last line: ``real_ab_ratio: <mean steps to threshold of the better token arm (token/shaped) / outcome arm>`` on
the keywords task (lower is better; < 1: token credit reaches the threshold sooner); the line before gives its
bootstrap 95 % interval over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_ab_report import PerplexityJudge, aggregate, write_json  # noqa: E402
from real_ab_tasks import ARMS, TASKS, Task, make_task  # noqa: E402

DEFAULTS = {
    "real": dict(steps=20, eval_every=2, max_completion_length=32, learning_rate=1e-3, lora_r=16),
    "tiny": dict(steps=4, eval_every=2, max_completion_length=8, learning_rate=2e-2, lora_r=8),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--tiny`` changes the defaults of the unset ones); clear errors on bad values."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--model", default="smollm2", help="'smollm2' (offline) or a causal LM id/folder with a chat template")
    add("--device", default="cpu", help="cpu (default) or cuda[:i]")
    add("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    add("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    add("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add("--steps", type=int, default=None, help="GRPO steps per run (20; --tiny 4)")
    add("--eval_every", "--eval-every", type=int, default=None, help="held-out eval period in steps (2; --tiny 2)")
    add("--out", default="reports/real_ab", help="results folder (one JSON per run, summary, plots)")
    add("--threads", type=int, default=1, help="torch threads (1 is fastest on 2 shared cores)")
    add("--tiny", action="store_true", help="tiny random policy/classifier/encoder (tests, smoke runs)")
    add("--report-only", "--report_only", dest="report_only", action="store_true", help="aggregate, no training")
    add("--no-perplexity", dest="perplexity", action="store_false", help="skip the starting model's perplexity")
    add("--num_generations", "--num-generations", type=int, default=4)
    add("--batch_size", "--batch-size", type=int, default=8, help="per_device_train_batch_size")
    add("--max_completion_length", "--max-completion-length", type=int, default=None, help="32; --tiny 8")
    add("--learning_rate", "--learning-rate", type=float, default=None, help="1e-3; --tiny 2e-2")
    add("--lora_r", "--lora-r", type=int, default=None, help="LoRA rank (alpha = 2r, dropout 0); 16, --tiny 8")
    add("--load_in_4bit", "--load-in-4bit", action="store_true", help="NF4 base weights (GPU)")
    add("--temperature", type=float, default=0.8)
    add("--token_advantage_coef", "--token-advantage-coef", type=float, default=0.5, help="λ")
    add("--mode", default="reward_to_go", choices=["reward_to_go", "immediate", "min"], help="token_advantage_mode")
    add("--placement", default="even", choices=["even", "last"], help="sentiment: P(pos) on sentence tokens")
    add("--w_quality_keywords", "--w-quality-keywords", type=float, default=0.1, help="keywords shaped: Q weight")
    add("--eval_samples", "--eval-samples", type=int, default=2, help="samples per held-out prompt")
    add("--threshold-keywords", "--threshold_keywords", dest="threshold_keywords", type=float, default=0.6)
    add("--threshold-sentiment", "--threshold_sentiment", dest="threshold_sentiment", type=float, default=0.9)
    add("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    args = p.parse_args(argv)
    for key, value in DEFAULTS["tiny" if args.tiny else "real"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    problems = [
        message
        for ok, message in [
            (min(args.steps, args.eval_every, args.eval_samples, args.threads, args.bootstrap) >= 1,
             "--steps, --eval_every, --eval_samples, --threads and --bootstrap must be >= 1"),
            (args.num_generations >= 2, "--num_generations must be >= 2"),
            (args.batch_size % args.num_generations == 0, "--batch_size must be a multiple of --num_generations"),
            (len(set(args.seeds)) == len(args.seeds), "--seeds must be distinct"),
            (args.device == "cpu" or args.device.startswith("cuda"), "--device must be cpu or cuda[:i]"),
        ]
        if not ok
    ]  # fmt: skip
    if problems:
        p.error("; ".join(problems))
    return args


def result_path(out: Path, task: str, arm: str, seed: int) -> Path:
    return out / task / f"{arm}_seed{seed}.json"


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("steps", "eval_every", "num_generations", "batch_size", "max_completion_length", "learning_rate",
            "lora_r", "load_in_4bit", "temperature", "token_advantage_coef", "mode", "placement",
            "w_quality_keywords", "eval_samples", "device", "tiny", "model")  # fmt: skip
    return {key: getattr(args, key) for key in keys} | {"beta": 0.0, "token_advantage_scale": True}


def make_callback(task: Task, tokenizer: Any, args: argparse.Namespace, seed: int, record: dict, label: str) -> Any:
    """A ``TrainerCallback`` timing the steps, logging the train reward and evaluating held-out prompts at step 0,
    every ``eval_every`` steps and at the last step."""
    from transformers import TrainerCallback

    class HeldOutEval(TrainerCallback):
        def _eval(self, step: int, model: Any) -> None:
            start = time.perf_counter()
            result = task.evaluate(
                model, tokenizer, args.eval_samples, args.max_completion_length, args.temperature, seed
            )
            record["eval_seconds"].append(time.perf_counter() - start)
            record["curve"].append({"step": step, **result["means"]})
            record["final_samples"] = [
                {k: s[k] for k in ("prompt_index", "text", "score", "title_mentioned") if k in s}
                for s in result["samples"]
            ]
            shown = " ".join(f"{k}={v:.3f}" for k, v in result["means"].items())
            print(f"[{label}] step {step:3d}: {shown} ({record['eval_seconds'][-1]:.2f} s eval)", flush=True)

        def on_train_begin(self, args_, state, control, model=None, **kwargs):
            self._eval(0, model)

        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, model=None, **kwargs):
            record["step_seconds"].append(time.perf_counter() - self.started)
            if state.global_step % args.eval_every == 0 or state.global_step == state.max_steps:
                self._eval(state.global_step, model)

        def on_log(self, args_, state, control, logs=None, **kwargs):
            key = f"rewards/{record['primary']}/mean"
            if logs and key in logs:
                record["train_rewards"][str(state.global_step)] = float(logs[key])

    return HeldOutEval()


def run_one(task: Task, arm: str, seed: int, args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    """Train one (task, arm, seed) run; returns its result record (config, curve, samples, timings)."""
    import transformers
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.demo.task import load_demo_policy

    start = time.perf_counter()
    transformers.set_seed(seed)
    policy, peft_config, tokenizer = load_demo_policy(model_path, args.lora_r, args.load_in_4bit)
    rewards = task.arm(arm, policy, tokenizer)
    label = f"{task.name}/{arm}/seed{seed}"
    record: dict[str, Any] = {"curve": [], "step_seconds": [], "eval_seconds": [], "train_rewards": {}}
    record["primary"] = rewards.primary
    common = dict(
        output_dir=str(Path(args.out) / ".runs" / label.replace("/", "_")),
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        beta=0.0,
        gradient_checkpointing=False,
        bf16=False,  # TRL's bf16 autocast is ~10x slower on CPUs without native bf16
        use_cpu=args.device == "cpu",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
    )
    trainer_kwargs = dict(
        model=policy,
        reward_funcs=rewards.reward_funcs,
        train_dataset=Dataset.from_dict(task.train_columns()),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[make_callback(task, tokenizer, args, seed, record, label)],
    )
    transformers.set_seed(seed)  # the LoRA initialisation and sampling start from the same state in every arm
    if arm == "outcome":
        trainer = GRPOTrainer(args=GRPOConfig(**common), **trainer_kwargs)
    else:
        config = TokenGRPOConfig(
            **common,
            token_reward_weights=rewards.token_weights,
            token_advantage_coef=args.token_advantage_coef,
            token_advantage_mode=args.mode,
            token_advantage_scale=True,
            token_advantage_baseline="token_mean",  # the earlier design's baseline (its results are committed)
        )
        trainer = TokenGRPOTrainer(args=config, token_reward_funcs=rewards.token_funcs, **trainer_kwargs)
    trainer.remove_callback(PrinterCallback)
    loaded = time.perf_counter()
    trainer.train()
    for point in record["curve"]:
        point["train_reward"] = record["train_rewards"].get(str(point["step"]))
    steps = record["step_seconds"]
    record |= {
        "config": run_settings(args) | task.describe() | {"task": task.name, "arm": arm, "seed": seed},
        "reward_funcs": [f.__name__ for f in rewards.reward_funcs],
        "token_reward_funcs": dict(
            zip([getattr(f, "__name__", str(f)) for f in rewards.token_funcs], rewards.token_weights)
        ),  # fmt: skip
        "model_path": model_path,
        "wall_seconds_per_step": sum(steps) / max(1, len(steps)),
        "wall_seconds_per_eval": sum(record["eval_seconds"]) / max(1, len(record["eval_seconds"])),
        "load_seconds": loaded - start,
        "total_seconds": time.perf_counter() - start,
    }
    return record


def resolve_model(args: argparse.Namespace, out: Path) -> str:
    """The policy folder: a tiny random model with ``--tiny``, else ``resolve_model_name(--model)``."""
    if args.tiny:
        from trl_token_ext.testing import save_tiny_causal_lm

        folder = out / ".assets" / "tiny-policy"
        return str(folder if (folder / "config.json").exists() else save_tiny_causal_lm(folder, seed=0))
    from trl_token_ext.demo.pretrained import resolve_model_name

    return resolve_model_name(args.model)


def quiet() -> None:
    import warnings

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def start_record(task: Task, seed: int, args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    """The starting model's held-out samples for ``seed`` (what every arm's step-0 eval sees), as a result record
    with arm ``start`` (the reference row of the quality table)."""
    import transformers

    from trl_token_ext.demo.task import load_demo_policy

    transformers.set_seed(seed)
    policy, _, tokenizer = load_demo_policy(model_path, args.lora_r, args.load_in_4bit)
    result = task.evaluate(policy, tokenizer, args.eval_samples, args.max_completion_length, args.temperature, seed)
    keep = ("prompt_index", "text", "score", "title_mentioned")
    return {
        "config": run_settings(args) | task.describe() | {"task": task.name, "arm": "start", "seed": seed},
        "curve": [{"step": 0, **result["means"]}],
        "final_samples": [{k: s[k] for k in keep if k in s} for s in result["samples"]],
        "model_path": model_path,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the missing (task, arm, seed) runs seed-major, then aggregate; returns the summary."""
    args = parse_args(argv)
    out = Path(args.out)
    if not args.report_only:
        import torch

        torch.set_num_threads(args.threads)
        quiet()
        model_path, tasks = None, {}
        for seed in args.seeds:
            for name in args.tasks:
                for arm in args.arms:
                    path = result_path(out, name, arm, seed)
                    if path.exists():
                        done = json.loads(path.read_text(encoding="utf-8"))["config"]
                        changed = sorted(k for k, v in run_settings(args).items() if done.get(k, v) != v)
                        note = f" (WARNING: it was run with other {', '.join(changed)})" if changed else ""
                        print(f"[{name}/{arm}/seed{seed}] done already: {path}{note}")
                        continue
                    model_path = model_path or resolve_model(args, out)
                    if name not in tasks:
                        tasks[name] = make_task(name, args.tiny, out / ".assets", args.device, args)
                    record = run_one(tasks[name], arm, seed, args, model_path)
                    record["threshold"] = getattr(args, f"threshold_{name}")
                    write_json(path, record)
                    print(f"[{name}/{arm}/seed{seed}] {record['wall_seconds_per_step']:.2f} s/step -> {path}")
            for name in args.tasks:  # the starting model's samples: the reference row of the quality table
                path = result_path(out, name, "start", seed)
                if not path.exists():
                    model_path = model_path or resolve_model(args, out)
                    if name not in tasks:
                        tasks[name] = make_task(name, args.tiny, out / ".assets", args.device, args)
                    write_json(path, start_record(tasks[name], seed, args, model_path))
    thresholds = {task: getattr(args, f"threshold_{task}") for task in TASKS}
    judge = PerplexityJudge(args.device) if args.perplexity else None
    summary = aggregate(out, thresholds, args.bootstrap, judge)
    ratio = summary.get("ratio", {})
    print(f"summary: {out / 'summary.md'}")
    low, high = ratio.get("interval", [math.nan, math.nan])
    print(
        f"real_ab_ratio 95% interval ({ratio.get('task')}, {ratio.get('arm')} vs outcome, bootstrap over seeds): "
        f"[{low:.3f}, {high:.3f}]; {ratio.get('censored', 0)} censored runs (never reached: steps + eval_every)"
    )
    print(f"real_ab_ratio: {ratio.get('value', math.nan):.3f}")
    return summary


if __name__ == "__main__":
    main()
