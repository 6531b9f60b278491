"""LogProbQuality throughput: one batched call vs a per-completion loop (same judge, same completions); and
MetricReward throughput on 64 completions against the measured "before" (issue 14).

Run: ``python benchmarks/scorers.py [--completions 64] [--batch-size 16] [--repeats 5]``.
Arms are interleaved; the last line is ``scorer_speedup: <batched tokens/s ÷ loop tokens/s>``.

MetricReward "before" (commit f6474b3: one ``evaluate`` ``Metric.compute`` per completion through the copied offline
scripts, HF_HUB_OFFLINE=1), measured on this 2-core machine with this script's 64 completions: sacrebleu 156
completions/s, rouge 4.5 completions/s. "After" (one batch per call through sacrebleu / rouge-score, same values):
4,937 and 1,806 completions/s (31.6× and 400×; ROUGE's old path also ran a bootstrap aggregator per completion).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

METRIC_BEFORE = {"sacrebleu": 156.2, "rouge": 4.5}  # completions/s at f6474b3 (see the module docstring)


def metric_throughput(count: int = 64, repeats: int = 5) -> None:
    """Print MetricReward's completions/s on ``count`` random word strings, and the ratio to the recorded before."""
    from trl_token_ext.scorers import MetricReward

    rng = random.Random(0)
    words = "the cat sat on a mat dog ran far away from home big small red blue green".split()
    references = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 20))) for _ in range(count)]
    completions = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 20))) for _ in range(count)]
    for name, before in METRIC_BEFORE.items():
        reward = MetricReward(name)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            reward(completions=completions, reference=references)
            times.append(time.perf_counter() - start)
        rate = count / statistics.median(times)
        print(f"metric_reward {name}: {rate:,.1f} completions/s on {count} (before {before}: {rate / before:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--completions", type=int, default=64)
    parser.add_argument("--min-tokens", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16, help="batched arm's completions per forward pass")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    metric_throughput()

    from trl_token_ext.scorers import LogProbQuality
    from trl_token_ext.testing import CORPUS, build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    judge = build_tiny_causal_lm(tokenizer, hidden_size=args.hidden_size, num_layers=args.layers)
    rng = random.Random(0)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    completion_ids = [
        [rng.choice(vocab) for _ in range(rng.randint(args.min_tokens, args.max_tokens))]
        for _ in range(args.completions)
    ]
    prompts = [rng.choice(CORPUS) for _ in completion_ids]
    completions = [tokenizer.decode(ids) for ids in completion_ids]
    tokens = sum(len(ids) for ids in completion_ids)
    batched = LogProbQuality(judge, batch_size=args.batch_size)
    single = LogProbQuality(judge, batch_size=1)

    def run_batched():
        return batched(
            prompts=prompts, completions=completions, completion_ids=completion_ids, processing_class=tokenizer
        )

    def run_loop():
        return [
            single(prompts=[p], completions=[c], completion_ids=[ids], processing_class=tokenizer)[0]
            for p, c, ids in zip(prompts, completions, completion_ids)
        ]

    # Same values from both arms (right padding keeps positions exact).
    for a, b in zip(run_batched(), run_loop()):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4)
    times: dict[str, list[float]] = {"batched": [], "loop": []}
    for _ in range(args.repeats):
        for name, fn in (("batched", run_batched), ("loop", run_loop)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rates = {name: tokens / statistics.median(values) for name, values in times.items()}
    print(f"completions={args.completions} tokens={tokens} judge hidden={args.hidden_size} layers={args.layers}")
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} tokens/s (median of {args.repeats})")
    print(f"scorer_speedup: {rates['batched'] / rates['loop']:.2f}")


if __name__ == "__main__":
    main()
