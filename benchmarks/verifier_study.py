"""Pre-registered study: does per-line verifier credit on tokens train better than one outcome score? (issue #22)

Task (``trl_token_ext.demo.arithmetic``): "Add 14, 27 and 11." → one line ``a + b = c`` per step, then
``Answer: N``; fresh training problems every step, a fixed test set and an out-of-distribution set (larger numbers)
from separate random streams, never trained on. SmolLM2-135M-Instruct + LoRA, offline. Every arm has the same
outcome reward (the answer is right, 0/1), prompt stream, steps, completions per step, max tokens and seeds:

* ``outcome`` (a): stock ``trl.GRPOTrainer`` on the outcome only;
* ``outcome_lines`` (b): stock GRPO, outcome + the share of correct lines as a second sequence-level reward
  (the same information as (c), one scalar per completion);
* ``verifier`` (c): ``TokenGRPOTrainer``, outcome + each line's verifier score (1 right / 0 wrong) on the line's
  last token as a token reward, the library's defaults (length-neutral ``position`` baseline, reward-to-go, λ = 1);
* ``verifier_min`` (d): (c) with min-form credit (PURE): the line score on every token of the line,
  ``token_advantage_mode="min"``;
* ``prime`` (e): ``OnlineImplicitPRM`` (a LoRA copy of the starting model) learning from the outcome alone, its
  implicit process rewards as the token reward (no verifier: what most users have);
* ``shuffled`` (f): control — (c) with each completion's line scores permuted among its lines (same sum, wrong
  place).

Runs write one JSON each (``<out>/<arm>_seed<k>.json``, atomically, when the run ends); a rerun skips finished runs,
so an interrupted study resumes where it stopped. ``--worker i/n`` runs every n-th missing job first, then takes
the others' jobs that no worker has claimed yet (two workers, one thread each, share the cores). The starting
model's evaluation (greedy, so identical for every arm and seed) is computed once into ``<out>/start.json``. The
analysis is ``benchmarks/verifier_report.py`` (pre-registered in docs/evidence/preregistration.md).

    OMP_NUM_THREADS=1 python benchmarks/verifier_study.py --out reports/verifier_study --seeds 0 1 2 3 4
    python benchmarks/verifier_study.py --tiny --steps 2 --out /tmp/vs     # tiny random models, a smoke run
    python benchmarks/verifier_study.py --select --learning-rates 3e-4 1e-3 --seeds 100 101   # learning-rate choice
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verifier_report import write_json  # noqa: E402

ARMS = ("outcome", "outcome_lines", "verifier", "verifier_min", "prime", "shuffled")
EXPLORATORY_ARMS = ("verifier_token_mean",)  # (c) with the pre-0.1.0 pooled token-mean baseline
DEFAULTS = {
    "real": dict(steps=24, eval_every=6, max_completion_length=48, learning_rate=3e-4, test_size=200, ood_size=200),
    "tiny": dict(steps=2, eval_every=1, max_completion_length=12, learning_rate=2e-2, test_size=6, ood_size=4),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--model", default="smollm2", help="'smollm2' (offline) or a causal LM id/folder with a chat template")
    add("--device", default="cpu", help="cpu (default) or cuda[:i]")
    add("--arms", nargs="+", default=list(ARMS), choices=ARMS + EXPLORATORY_ARMS)
    add("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    add("--steps", type=int, default=None, help="GRPO steps per run (24; --tiny 2)")
    add("--eval_every", "--eval-every", type=int, default=None, help="test-set evaluation period in steps (6)")
    add("--prompts_per_step", "--prompts-per-step", type=int, default=1)
    add("--num_generations", "--num-generations", type=int, default=8)
    add("--max_completion_length", "--max-completion-length", type=int, default=None, help="48; --tiny 12")
    add("--temperature", type=float, default=0.7)
    add("--learning_rate", "--learning-rate", type=float, default=None, help="policy LoRA learning rate (3e-4)")
    add("--learning_rates", "--learning-rates", type=float, nargs="+", default=None,
        help="with --select: the grid; without: ignored")  # fmt: skip
    add("--lr_file", "--lr-file", default=None, help="JSON {arm: learning rate} chosen by --select (overrides)")
    add("--lora_r", "--lora-r", type=int, default=16)
    add("--test_size", "--test-size", type=int, default=None, help="fixed test problems (200)")
    add("--ood_size", "--ood-size", type=int, default=None, help="out-of-distribution problems (200)")
    add("--prm_learning_rate", "--prm-learning-rate", type=float, default=1e-4, help="arm prime: the PRM's AdamW lr")
    add("--prm_beta", "--prm-beta", type=float, default=0.05, help="arm prime: β of the implicit reward")
    add("--select", action="store_true", help="learning-rate selection: evaluate on the val split, final step only")
    add("--out", default="reports/verifier_study")
    add("--worker", default="1/1", help="i/n: run every n-th missing job starting at the i-th (1-based)")
    add("--threads", type=int, default=1)
    add("--tiny", action="store_true", help="tiny random policy (tests, smoke runs)")
    args = p.parse_args(argv)
    for key, value in DEFAULTS["tiny" if args.tiny else "real"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    index, _, count = args.worker.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        p.error(f"--worker must be i/n with 1 <= i <= n, got {args.worker!r}")
    args.worker_index, args.worker_count = int(index) - 1, int(count)
    if min(args.steps, args.eval_every, args.prompts_per_step, args.test_size, args.ood_size) < 1:
        p.error("--steps, --eval_every, --prompts_per_step, --test_size and --ood_size must be >= 1")
    if args.num_generations < 2:
        p.error("--num_generations must be >= 2")
    if args.select and not args.learning_rates:
        p.error("--select needs --learning-rates (the grid)")
    return args


# ---------------------------------------------------------------- jobs
def jobs(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    """(arm, seed, learning rate) of every run, seed-major (partial results stay balanced across arms)."""
    chosen = json.loads(Path(args.lr_file).read_text()) if args.lr_file else {}
    rates = args.learning_rates if args.select else [None]
    return [
        (arm, seed, rate if rate is not None else float(chosen.get(arm, args.learning_rate)))
        for seed in args.seeds
        for arm in args.arms
        for rate in rates
    ]


def worker_order(todo: list, index: int, count: int) -> list:
    """The order in which worker ``index`` (0-based) of ``count`` tries the missing jobs: its own share
    (``todo[index::count]``) first, then everyone else's in ``todo`` order, so that a worker that finishes early takes
    over jobs nobody has started (a job is started by one worker only: ``claim``)."""
    own = todo[index::count]
    return own + [job for job in todo if job not in own]


def claim(path: Path) -> bool:
    """Create the ``.running`` claim of a run's result ``path`` atomically; False if it is finished or claimed."""
    if path.exists():
        return False
    marker = path.with_suffix(".running")
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w") as stream:
        stream.write(str(os.getpid()))
    return True


def result_path(args: argparse.Namespace, arm: str, seed: int, rate: float) -> Path:
    suffix = f"_lr{rate:g}" if args.select else ""
    return Path(args.out) / f"{arm}_seed{seed}{suffix}.json"


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("steps", "eval_every", "prompts_per_step", "num_generations", "max_completion_length", "temperature",
            "lora_r", "test_size", "ood_size", "prm_learning_rate", "prm_beta", "select", "tiny", "model",
            "device")  # fmt: skip
    return {key: getattr(args, key) for key in keys}


def code_version() -> str:
    """The git commit of the checkout (with ``+dirty`` for uncommitted changes), or 'unknown'. Read once at start
    (``CODE``): the code a process runs is the code it imported, even if the checkout changes later."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "trl_token_ext", "benchmarks"], cwd=root,
                               capture_output=True, text=True, check=True)  # fmt: skip
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


CODE = code_version()


# ---------------------------------------------------------------- evaluation
def greedy_texts(model: Any, tokenizer: Any, problems: list[list[int]], max_new_tokens: int, batch: int = 50):
    """Greedy completions of ``problems``; returns (texts, completion token counts), in order.

    Prompts of equal token length are batched without padding, and the prefix they all share (the system line and
    the two worked examples) is run once: its KV cache is copied to every batch (2-3x faster on a CPU; the same
    greedy tokens as without the cache).
    """
    import copy

    import torch
    from transformers import DynamicCache

    from trl_token_ext.demo import arithmetic as ar

    encoded = [
        tokenizer(tokenizer.apply_chat_template(ar.prompt(p), tokenize=False, add_generation_prompt=True),
                  add_special_tokens=False)["input_ids"]
        for p in problems
    ]  # fmt: skip
    shared = 0
    while all(shared < len(ids) - 1 and ids[shared] == encoded[0][shared] for ids in encoded):
        shared += 1
    was_training = model.training
    model.eval()
    results: dict[int, tuple[str, int]] = {}
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(index)
    with torch.no_grad():
        prefix = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([encoded[0][:shared]], device=model.device), past_key_values=prefix)
        for length, indices in sorted(by_length.items()):
            for start in range(0, len(indices), batch):
                chunk = indices[start : start + batch]
                ids = torch.tensor([encoded[i] for i in chunk], device=model.device)
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(chunk))
                output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=cache,
                                        do_sample=False, max_new_tokens=max_new_tokens,
                                        pad_token_id=tokenizer.pad_token_id)  # fmt: skip
                for i, row in zip(chunk, output[:, length:].tolist()):
                    kept = []
                    for token in row:
                        if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                            break
                        kept.append(token)
                    results[i] = (tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept))
    model.train(was_training)
    return [results[i][0] for i in range(len(problems))], [results[i][1] for i in range(len(problems))]


def evaluate(model: Any, tokenizer: Any, problems: list[list[int]], args: argparse.Namespace, keep: int = 8):
    """Held-out measures on ``problems`` (greedy): answer/line accuracy, format validity, lines, tokens."""
    from trl_token_ext.demo import arithmetic as ar

    start = time.perf_counter()
    texts, lengths = greedy_texts(model, tokenizer, problems, args.max_completion_length)
    measures = ar.evaluate_texts(texts, problems)
    measures["tokens"] = sum(lengths) / max(1, len(lengths))
    measures["truncated"] = sum(n >= args.max_completion_length for n in lengths) / max(1, len(lengths))
    measures["correct"] = [int(ar.final_answer(t) == sum(p)) for t, p in zip(texts, problems)]
    measures["seconds"] = time.perf_counter() - start
    measures["samples"] = [{"numbers": p, "text": t} for p, t in zip(problems[:keep], texts[:keep])]
    return measures


def eval_sets(args: argparse.Namespace) -> dict[str, list[list[int]]]:
    from trl_token_ext.demo import arithmetic as ar

    if args.select:  # learning rates are chosen on the val split, never on the reported test set
        return {"val": ar.problems("val", args.test_size)}
    return {
        "test": ar.problems("test", args.test_size),
        "ood": ar.problems("ood", args.ood_size, ar.OUT_OF_DISTRIBUTION),
    }


# ---------------------------------------------------------------- one run
def arm_rewards(arm: str, seed: int, args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    """Outcome reward functions, token reward functions and token config fields of ``arm``."""
    from trl_token_ext.demo import arithmetic as ar

    outcome = [ar.AnswerCorrect()]
    if arm == "outcome":
        return {"reward_funcs": outcome}
    if arm == "outcome_lines":
        return {"reward_funcs": [*outcome, ar.LineAccuracy()]}
    if arm == "verifier":
        return {"reward_funcs": outcome, "token_funcs": [ar.LineVerifier(placement="last")], "config": {}}
    if arm == "verifier_token_mean":
        config = {"token_advantage_baseline": "token_mean"}
        return {"reward_funcs": outcome, "token_funcs": [ar.LineVerifier(placement="last")], "config": config}
    if arm == "shuffled":
        verifier = ar.LineVerifier(placement="last", shuffle=True, seed=seed, name="line_verifier_shuffled")
        return {"reward_funcs": outcome, "token_funcs": [verifier], "config": {}}
    if arm == "verifier_min":
        verifier = ar.LineVerifier(placement="sum")
        return {"reward_funcs": outcome, "token_funcs": [verifier], "config": {"token_advantage_mode": "min"}}
    if arm == "prime":
        from peft import LoraConfig

        from trl_token_ext import OnlineImplicitPRM

        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        prm = OnlineImplicitPRM(
            model_path, peft_config=lora, beta=args.prm_beta, learning_rate=args.prm_learning_rate,
            logit_bias=True, model_init_kwargs={"device": args.device, "dtype": "float32"},
        )  # fmt: skip
        return {"reward_funcs": outcome, "token_funcs": [prm], "config": {}}
    raise ValueError(f"unknown arm {arm!r}")


def make_callback(model_path: str, tokenizer: Any, args: argparse.Namespace, record: dict, label: str) -> Any:
    """Times steps, keeps the train rewards, evaluates at every ``eval_every`` steps and at the end."""
    from transformers import TrainerCallback

    sets = eval_sets(args)

    class HeldOut(TrainerCallback):
        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, model=None, **kwargs):
            record["step_seconds"].append(time.perf_counter() - self.started)
            last = state.global_step == state.max_steps
            if args.select and not last:
                return
            if state.global_step % args.eval_every and not last:
                return
            point = {"step": state.global_step, "completions": state.global_step * args.prompts_per_step
                     * args.num_generations}  # fmt: skip
            for name, problems in sets.items():
                if name == "ood" and not last:
                    continue
                point[name] = evaluate(model, tokenizer, problems, args)
            record["curve"].append(point)
            shown = " ".join(f"{n}={point[n]['answer_accuracy']:.3f}" for n in sets if n in point)
            print(f"[{label}] step {state.global_step}: {shown}", flush=True)

        def on_log(self, args_, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                keep = {k: v for k, v in logs.items() if k.startswith(("rewards/", "token_", "completions/", "loss"))}
                record["train_logs"].append({"step": state.global_step, **keep})

    return HeldOut()


def run_one(arm: str, seed: int, rate: float, args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    import transformers
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.demo import arithmetic as ar
    from trl_token_ext.demo.task import load_demo_policy

    started = time.perf_counter()
    label = f"{arm}/seed{seed}/lr{rate:g}"
    transformers.set_seed(seed)
    policy, peft_config, tokenizer = load_demo_policy(model_path, args.lora_r, False)
    rewards = arm_rewards(arm, seed, args, model_path)
    record: dict[str, Any] = {"curve": [], "step_seconds": [], "train_logs": []}
    train = ar.problems("train", args.steps * args.prompts_per_step, seed=seed)  # fresh problems every step
    common = dict(
        output_dir=str(Path(args.out) / ".runs" / label.replace("/", "_")),
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        max_steps=args.steps,
        learning_rate=rate,
        beta=0.0,
        bf16=False,  # TRL's bf16 autocast is ~10x slower on CPUs without native bf16
        use_cpu=args.device == "cpu",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
    )
    kwargs = dict(
        model=policy,
        reward_funcs=rewards["reward_funcs"],
        train_dataset=Dataset.from_dict(ar.columns(train)),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[make_callback(model_path, tokenizer, args, record, label)],
    )
    transformers.set_seed(seed)  # the LoRA initialisation and sampling start from the same state in every arm
    if "token_funcs" not in rewards:
        trainer = GRPOTrainer(args=GRPOConfig(**common), **kwargs)
    else:
        config = TokenGRPOConfig(**common, **rewards["config"])
        trainer = TokenGRPOTrainer(args=config, token_reward_funcs=rewards["token_funcs"], **kwargs)
    trainer.remove_callback(PrinterCallback)
    loaded = time.perf_counter()
    trainer.train()
    token_funcs = rewards.get("token_funcs", [])
    record |= {
        "config": run_settings(args) | {"arm": arm, "seed": seed, "learning_rate": rate},
        "reward_funcs": [f.__name__ for f in rewards["reward_funcs"]],
        "token_reward_funcs": [f.__name__ for f in token_funcs],
        "token_config": rewards.get("config"),
        "code": CODE,
        "model_path": model_path,
        "seconds_per_step": sum(record["step_seconds"]) / max(1, len(record["step_seconds"])),
        "load_seconds": loaded - started,
        "total_seconds": time.perf_counter() - started,
    }
    return record


def start_record(args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    """The starting model's evaluation on every set (greedy: the same for every arm and seed)."""
    from trl_token_ext.demo.task import load_demo_policy

    policy, _, tokenizer = load_demo_policy(model_path, args.lora_r, False)
    point = {"step": 0, "completions": 0}
    for name, problems in eval_sets(args).items():
        point[name] = evaluate(policy, tokenizer, problems, args)
    return {"config": run_settings(args) | {"arm": "start"}, "curve": [point], "code": CODE}


def resolve_model(args: argparse.Namespace) -> str:
    if args.tiny:
        from trl_token_ext.testing import save_tiny_causal_lm

        folder = Path(args.out) / ".assets" / "tiny-policy"
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    quiet()
    out = Path(args.out)
    model_path = resolve_model(args)
    start = out / ("start_val.json" if args.select else "start.json")
    if args.worker_index == 0 and not start.exists():
        write_json(start, start_record(args, model_path))
    todo = [job for job in jobs(args) if not result_path(args, *job).exists()]
    own = len(todo[args.worker_index :: args.worker_count])
    print(f"{len(todo)} runs missing; worker {args.worker} runs {own}, then unclaimed ones", flush=True)
    for arm, seed, rate in worker_order(todo, args.worker_index, args.worker_count):
        path = result_path(args, arm, seed, rate)
        if not claim(path):
            continue
        try:
            record = run_one(arm, seed, rate, args, model_path)
            write_json(path, record)
            print(f"[{arm}/seed{seed}/lr{rate:g}] {record['seconds_per_step']:.1f} s/step -> {path}", flush=True)
        finally:
            path.with_suffix(".running").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
