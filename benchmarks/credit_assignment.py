"""Credit assignment: steps to learn a per-token signal from token rewards vs the same signal as one outcome reward.

Task: a tiny random policy should write tokens from a fixed target set (10 % of the vocabulary, drawn per seed).
The information is identical in both arms:

* outcome arm — stock ``trl.GRPOTrainer``, reward_i = Σ_t 1[y_{i,t} ∈ target] (the sum, one scalar per completion);
* token arm — ``TokenGRPOTrainer``, a constant outcome reward (no outcome signal) and the token reward
  r_{i,t} = 1[y_{i,t} ∈ target] (``--mode``: immediate by default; reward_to_go also works).

Same model, data, optimizer, learning rate and seed in both arms; the arms alternate seed by seed in one run. The
score of a step is the share of target tokens among the tokens generated in that step's batch; "steps to
threshold" is the first step whose 3-step moving average reaches ``--threshold`` (``--max-steps`` + 1 if never).
Writes both learning curves (every seed) as a PNG (``--plot``).

    python benchmarks/credit_assignment.py [--seeds 5] [--max-steps 60] [--threshold 0.5] [--plot PATH]

Last line: ``credit_ratio: <mean steps token arm / mean steps outcome arm>`` (lower is better; target ≤ 0.5).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # tiny models on 2 shared cores: one thread is several times faster than two


class Recorder:
    """Share of target tokens of each generated batch (called from a reward function once per step)."""

    def __init__(self, target: set[int]):
        self.target, self.curve = target, []

    def hits(self, completion_ids) -> list[list[float]]:
        values = [[1.0 if t in self.target else 0.0 for t in ids] for ids in completion_ids]
        total = sum(len(v) for v in values)
        self.curve.append(sum(map(sum, values)) / max(1, total))
        return values


def steps_to_threshold(curve: list[float], threshold: float, window: int = 3) -> int | None:
    """First step (1-based) whose trailing ``window``-step mean reaches ``threshold``; None if none does."""
    for step in range(1, len(curve) + 1):
        recent = curve[max(0, step - window) : step]
        if len(recent) == window and sum(recent) / window >= threshold:
            return step
    return None


def run_arm(arm: str, seed: int, args: argparse.Namespace, model_dir: str, target: set[int]) -> list[float]:
    """Train one arm until the threshold is reached (or ``max_steps``); returns the per-step target share."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer

    recorder = Recorder(target)

    def target_count(completion_ids, **kwargs) -> list[float]:
        return [sum(values) for values in recorder.hits(completion_ids)]

    def target_tokens(completion_ids, **kwargs) -> list[list[float]]:
        return recorder.hits(completion_ids)

    def no_signal(completions, **kwargs) -> list[float]:
        return [0.0] * len(completions)

    class StopAtThreshold(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            if steps_to_threshold(recorder.curve, args.threshold) is not None:
                control.should_training_stop = True
            return control

    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"credit-{arm}-"),
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.completion_length,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        logging_steps=10_000,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        bf16=False,  # TRL's default bf16 autocast is emulated (slow) on CPUs without native bf16
        seed=seed,
    )
    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this", "The food was", "A cat sat"] * 64})
    if arm == "outcome":
        trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=target_count,
            args=GRPOConfig(**common),
            train_dataset=dataset,
            callbacks=[StopAtThreshold()],
        )
    else:
        trainer = TokenGRPOTrainer(
            model=model_dir,
            reward_funcs=no_signal,
            token_reward_funcs=[target_tokens],
            args=TokenGRPOConfig(**common, token_advantage_mode=args.mode, token_advantage_baseline=args.baseline),
            train_dataset=dataset,
            callbacks=[StopAtThreshold()],
        )
    trainer.remove_callback(PrinterCallback)  # keep the output to one line per run
    trainer.train()
    return recorder.curve


def plot(curves: dict[str, list[list[float]]], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    colours = {"outcome": "tab:orange", "token": "tab:blue"}
    labels = {"outcome": "outcome reward (stock GRPO, Σ_t)", "token": "token rewards (TokenGRPOTrainer)"}
    for arm, runs in curves.items():
        for index, curve in enumerate(runs):
            label = labels[arm] if index == 0 else None
            axis.plot(range(1, len(curve) + 1), curve, color=colours[arm], alpha=0.8, label=label)
    axis.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    axis.set_xlabel("GRPO step")
    axis.set_ylabel("share of target tokens in the batch")
    axis.set_title("Credit assignment: the same per-token signal, two ways (one line per seed)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--target-share", type=float, default=0.1, help="share of the vocabulary that is rewarded")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--mode", default="immediate", choices=["immediate", "reward_to_go", "min"])
    parser.add_argument("--baseline", default="position", choices=["position", "token_mean"],
                        help="token_advantage_baseline (the library's default: position)")  # fmt: skip
    parser.add_argument("--plot", default="reports/credit_assignment.png", help="learning-curve PNG path")
    args = parser.parse_args()

    from trl_token_ext.testing import build_tiny_tokenizer, save_tiny_causal_lm

    tokenizer = build_tiny_tokenizer()
    special = set(tokenizer.all_special_ids)
    vocabulary = [i for i in range(len(tokenizer)) if i not in special]
    curves: dict[str, list[list[float]]] = {"outcome": [], "token": []}
    steps: dict[str, list[int]] = {"outcome": [], "token": []}
    seconds: dict[str, float] = {"outcome": 0.0, "token": 0.0}
    print(
        f"tiny policy, {args.batch_size} completions × {args.completion_length} tokens per step, "
        f"lr {args.learning_rate}, token mode {args.mode}, threshold {args.threshold}, max {args.max_steps} steps"
    )
    for seed in range(args.seeds):
        model_dir = str(save_tiny_causal_lm(tempfile.mkdtemp(prefix="credit-model-"), seed=seed))
        target = set(random.Random(seed).sample(vocabulary, max(1, round(args.target_share * len(vocabulary)))))
        order = ["outcome", "token"] if seed % 2 == 0 else ["token", "outcome"]  # interleaved arms
        for arm in order:
            start = time.perf_counter()
            curve = run_arm(arm, seed, args, model_dir, target)
            seconds[arm] += time.perf_counter() - start
            reached = steps_to_threshold(curve, args.threshold)
            curves[arm].append(curve)
            steps[arm].append(reached if reached is not None else args.max_steps + 1)
            shown = reached if reached is not None else f">{args.max_steps}"
            print(f"seed {seed} {arm:7s}: steps to threshold {shown}, first {curve[0]:.3f}, last {curve[-1]:.3f}")
    plot(curves, args.threshold, Path(args.plot))
    for arm in ("outcome", "token"):
        print(f"{arm:7s}: mean steps {statistics.mean(steps[arm]):.1f} {steps[arm]}, {seconds[arm]:.0f} s")
    print(f"learning curves: {args.plot}")
    print(f"credit_ratio: {statistics.mean(steps['token']) / statistics.mean(steps['outcome']):.3f}")


if __name__ == "__main__":
    main()
