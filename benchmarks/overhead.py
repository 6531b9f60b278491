"""Step-time overhead of TokenGRPOTrainer over stock GRPOTrainer on a tiny model.

Arm A: stock `GRPOTrainer` with a sequence reward (the number of odd token ids in the completion).
Arm B: `TokenGRPOTrainer` with the same signal as a token reward (1 on each odd token id) and a zero outcome reward.
Both arms train the same tiny random model for the same steps; rounds are interleaved (A, B, A, B, ...) so that
machine load hits both alike, with one torch thread. Prints the median per-step time of each arm, then the ratio.

    python benchmarks/overhead.py [--rounds 7] [--steps 10]

Last line: ``overhead: <token step time / stock step time>`` (target ≤ 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def odd_count_reward(completion_ids, **kwargs):
    return [float(sum(t % 2 for t in ids)) for ids in completion_ids]


def zero_reward(completions, **kwargs):
    return [0.0] * len(completions)


def odd_token_reward(completion_ids, **kwargs):
    return [[float(t % 2) for t in ids] for ids in completion_ids]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    options = parser.parse_args()
    torch.set_num_threads(1)

    from datasets import Dataset
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.testing import save_tiny_causal_lm

    hf_logging.set_verbosity_error()
    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    model_dir = str(save_tiny_causal_lm(work / "model", hidden_size=64))
    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this", "The food was", "A cat sat"] * 64})
    common = dict(
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=32,
        max_steps=options.steps,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
    )

    def stock_round() -> float:
        trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=odd_count_reward,
            args=GRPOConfig(output_dir=str(work / "a"), **common),
            train_dataset=dataset,
        )
        start = time.perf_counter()
        trainer.train()
        return (time.perf_counter() - start) / options.steps

    def token_round() -> float:
        trainer = TokenGRPOTrainer(
            model=model_dir,
            reward_funcs=zero_reward,
            token_reward_funcs=[odd_token_reward],
            args=TokenGRPOConfig(output_dir=str(work / "b"), **common),
            train_dataset=dataset,
        )
        start = time.perf_counter()
        trainer.train()
        return (time.perf_counter() - start) / options.steps

    stock_round(), token_round()  # warm-up: imports, allocator, first compilation of kernels
    stock, token = [], []
    for _ in range(options.rounds):
        stock.append(stock_round())
        token.append(token_round())
    stock_median, token_median = statistics.median(stock), statistics.median(token)
    print(f"stock GRPOTrainer   : {stock_median * 1000:.1f} ms/step (median of {options.rounds} rounds)")
    print(f"TokenGRPOTrainer    : {token_median * 1000:.1f} ms/step")
    print(f"overhead: {token_median / stock_median:.3f}")


if __name__ == "__main__":
    main()
