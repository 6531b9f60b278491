"""Token-reward path at realistic completion lengths: time and peak memory vs T (issue 11).

Run: ``python benchmarks/scaling.py [--lengths 256 1024 4096 16384] [--batch 16] [--trainer-length 2048]``.

Sections (CPU, one torch thread):
  * token advantages, B = ``--batch`` rows, each mode (and the RLOO leave-one-out), plus the old quadratic
    reward-to-go for comparison (up to ``--reference-max``);
  * alignment: `token_char_spans` of one byte-level BPE completion of T sampled (non-canonical) tokens ending in EOS;
  * every text scorer, two completions of T tokens, time per 1,000 tokens (a scorer whose next length is estimated
    above ``--budget`` seconds from a quadratic extrapolation is skipped there);
  * TokenGRPOTrainer at T = ``--trainer-length`` on a tiny model: token-reward work vs the step's forward + backward.
Peak memory is the growth of the process's peak RSS while the piece runs (measured in a forked child).
The last line is ``scaling_exponent: <x>``: the largest log-log slope of time vs T between 1k and 16k (or the
longest length measured) among the token-path pieces (advantages, alignment, the text scorers).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import time
from collections.abc import Callable

import torch

MIXED = "The café was great! 这部电影很好看。 I loved it 😀👍 — naïve, e.g. 3.50 kg. Don't stop. The movie was bad. "


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(float(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_rss_mib(fn: Callable[[], object]) -> float:
    """Growth of the peak resident memory while ``fn`` runs, in a forked child (MiB)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        fn()  # warm-up: one-time initialisation (kernels, thread pools) is not the piece's memory
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak (VmHWM) to the current resident size
        start = _status_kib("VmRSS")
        fn()
        os.write(write, str(max(0.0, _status_kib("VmHWM") - start) / 1024).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        value = float(pipe.read() or "nan")
    os.waitpid(pid, 0)
    return value


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def slope(times: dict[int, float], low: int, high: int) -> float | None:
    """Log-log slope of time between two lengths; None when either is missing or they coincide."""
    if low in times and high in times and high > low and times[low] > 0:
        return math.log(times[high] / times[low]) / math.log(high / low)
    return None


def reference_reward_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The pre-issue-11 O(T²) implementation (a (T, T) discount matrix), for comparison only."""
    positions = torch.arange(rewards.size(1))
    steps = positions.unsqueeze(1) - positions.unsqueeze(0)
    discount = torch.where(steps >= 0, torch.pow(gamma, steps.clamp(min=0).to(rewards.dtype)), 0.0)
    return ((rewards * mask) @ discount) * mask


def advantage_pieces(batch: int) -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    from trl_token_ext.advantages import length_neutral_token_advantages, token_advantages

    def run(**kwargs):
        return lambda r, m: token_advantages(r, m, group_size=4, **kwargs)

    def position(**kwargs):  # the default baseline ("position"): one reward function, rows (B, 1, T)
        def call(r, m):
            present, weights = torch.ones(r.shape[0], 1), torch.ones(1)
            return length_neutral_token_advantages(r.unsqueeze(1), present, m, weights, group_size=4, **kwargs)

        return call

    return {
        "advantages position baseline, reward_to_go (default)": position(mode="reward_to_go"),
        "advantages position baseline, RLOO leave-one-out": position(mode="reward_to_go", leave_one_out=True),
        "advantages reward_to_go γ=1": run(mode="reward_to_go", gamma=1.0),
        "advantages reward_to_go γ=0.99": run(mode="reward_to_go", gamma=0.99),
        "advantages immediate": run(mode="immediate"),
        "advantages min": run(mode="min"),
        "advantages RLOO (rtg + leave-one-out)": run(mode="reward_to_go", gamma=0.99, leave_one_out=True),
        "advantages scale=True, batch norm": run(mode="reward_to_go", normalization="batch", scale=True),
    }


def sampled_ids(tokenizer, length: int, seed: int) -> list[int]:
    """``length`` ids ending in EOS: the mixed text cut at random places and encoded piecewise (non-canonical)."""
    rng = random.Random(seed)
    ids: list[int] = []
    while len(ids) < length - 1:
        text = MIXED * 4
        cut = rng.randrange(1, len(text))
        ids += tokenizer(text[:cut], add_special_tokens=False)["input_ids"]
        ids += tokenizer(text[cut:], add_special_tokens=False)["input_ids"]
    return ids[: length - 1] + [tokenizer.eos_token_id]


def build_scorers(tmp: str) -> dict[str, tuple[Callable, bool]]:
    """name -> (scorer, linear_expected). Inherent super-linear costs are flagged False."""
    from trl_token_ext.scorers import (
        LexiconQuality,
        LogProbQuality,
        MetricReward,
        PotentialShaping,
        ReferenceConsistency,
        RepetitionConsistency,
        SelfConsistency,
        TokenClassifierQuality,
    )
    from trl_token_ext.sentence.reward import SentenceClassifierReward
    from trl_token_ext.testing import build_tiny_causal_lm, build_tiny_tokenizer, save_tiny_sequence_classifier

    judge_tokenizer = build_tiny_tokenizer(vocab_size=500)
    judge = build_tiny_causal_lm(judge_tokenizer, hidden_size=16, num_layers=1)
    classifier_dir = str(save_tiny_sequence_classifier(os.path.join(tmp, "classifier")))
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(classifier_dir)
    config.max_position_embeddings = 40_000
    tagger = AutoModelForTokenClassification.from_config(config)
    return {
        "LexiconQuality": (LexiconQuality({"the": 1.0, "great": 2.0, "bad": -2.0}), True),
        "ReferenceConsistency": (ReferenceConsistency("reference"), True),
        # Pairwise sentence comparison within the group: quadratic in T by definition (docstring).
        "SelfConsistency": (SelfConsistency(2), False),
        "RepetitionConsistency": (RepetitionConsistency(), True),
        "MetricReward(sacrebleu)": (MetricReward("sacrebleu", source="local"), True),
        "SentenceClassifierReward(even)": (
            SentenceClassifierReward(classifier_dir, label="positive", placement="even", max_length=64),
            True,
        ),
        # Model-backed judges: their own full attention is O(T^2) (as the policy's forward is); everything around
        # it (decoding, alignment, placement) is linear. Reported, excluded from the exponent.
        "LogProbQuality(other tokenizer)": (LogProbQuality(judge, judge_tokenizer, max_length=64_000), False),
        "TokenClassifierQuality": (
            TokenClassifierQuality(tagger, "positive", AutoTokenizer.from_pretrained(classifier_dir)),
            False,
        ),
        "PotentialShaping(prefix word count)": (
            PotentialShaping(lambda completions, **_: [float(len(c.split())) for c in completions], name="shaping"),
            False,
        ),
    }


def trainer_ratio(length: int, tmp: str) -> tuple[float, float, float]:
    """(token-reward seconds, forward+backward seconds, ratio) of one TokenGRPOTrainer step at T = ``length``."""
    from datasets import Dataset

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.scorers import LexiconQuality, ReferenceConsistency
    from trl_token_ext.testing import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_causal_lm(tokenizer, hidden_size=64, num_layers=2)
    model.config.max_position_embeddings = 4 * length
    timings = {"token": 0.0, "generate": 0.0, "step": 0.0}

    def timed(key, method):
        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                timings[key] += time.perf_counter() - start

        return wrapper

    class Timed(TokenGRPOTrainer):
        _call_token_reward_funcs = timed("token", TokenGRPOTrainer._call_token_reward_funcs)
        _token_advantages = timed("token", TokenGRPOTrainer._token_advantages)
        _generate_and_score_completions = timed("generate", TokenGRPOTrainer._generate_and_score_completions)
        training_step = timed("step", TokenGRPOTrainer.training_step)

    args = TokenGRPOConfig(
        output_dir=os.path.join(tmp, "trainer"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=length,
        generation_kwargs={"min_new_tokens": length},
        max_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        token_reward_weights=[1.0, 0.5],
    )
    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this"] * 2, "reference": ["great movie"] * 4})
    trainer = Timed(
        model=model,
        reward_funcs=lambda completions, **_: [float(len(c)) for c in completions],
        token_reward_funcs=[LexiconQuality({"the": 1.0}), ReferenceConsistency("reference")],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    forward_backward = timings["step"] - timings["generate"]
    return timings["token"], forward_backward, timings["token"] / forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-max", type=int, default=4096, help="longest T for the old quadratic version")
    parser.add_argument("--budget", type=float, default=60.0, help="skip a scorer whose next call exceeds this (s)")
    parser.add_argument("--trainer-length", type=int, default=2048, help="0 skips the trainer section")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import tempfile

    from trl_token_ext.alignment import token_char_spans
    from trl_token_ext.testing import build_tiny_tokenizer

    lengths = sorted(args.lengths)
    tokenizer = build_tiny_tokenizer()
    times: dict[str, dict[int, float]] = {}
    linear: dict[str, bool] = {}

    def record(name: str, length: int, seconds: float, memory: float | None, per_1k: float | None = None) -> None:
        times.setdefault(name, {})[length] = seconds
        extra = f"  {per_1k * 1000:9.2f} ms/1k tok" if per_1k is not None else ""
        memory_text = f"{memory:9.1f} MiB" if memory is not None else "        —"
        print(f"{name:42s} T={length:6d}  {seconds * 1000:10.2f} ms  peak +{memory_text}{extra}", flush=True)

    print(f"# token advantages, B={args.batch} (group size 4), float32")
    for name, piece in advantage_pieces(args.batch).items():
        linear[name] = True
        for length in lengths:
            generator = torch.Generator().manual_seed(length)
            rewards = torch.randn(args.batch, length, generator=generator)
            mask = (torch.rand(args.batch, length, generator=generator) > 0.1).float()
            call = functools.partial(piece, rewards, mask)
            record(name, length, best_time(call, 10 * args.repeats), peak_rss_mib(call))
    linear["memory floor: rewards * mask"] = False  # one elementwise op: what the memory hierarchy alone costs
    for length in lengths:
        rewards, mask = torch.randn(args.batch, length), torch.ones(args.batch, length)
        call = functools.partial(torch.mul, rewards, mask)
        record("memory floor: rewards * mask", length, best_time(call, 10 * args.repeats), peak_rss_mib(call))
    linear["old quadratic reward_to_go γ=0.99"] = False
    for length in [t for t in lengths if t <= args.reference_max]:
        rewards, mask = torch.randn(args.batch, length), torch.ones(args.batch, length)
        call = functools.partial(reference_reward_to_go, rewards, mask, 0.99)
        record("old quadratic reward_to_go γ=0.99", length, best_time(call, 1), peak_rss_mib(call))

    print("# alignment: byte-level BPE, sampled ids ending in EOS, one completion")
    linear["alignment token_char_spans"] = True
    completions = {length: [sampled_ids(tokenizer, length, seed) for seed in (0, 1)] for length in lengths}
    for length in lengths:
        call = functools.partial(token_char_spans, tokenizer, completions[length][0])
        record("alignment token_char_spans", length, best_time(call, args.repeats), peak_rss_mib(call))

    with tempfile.TemporaryDirectory() as tmp:
        print("# text scorers, 2 completions of T tokens (+ time per 1,000 tokens)")
        for name, (scorer, expected_linear) in build_scorers(tmp).items():
            linear[name] = expected_linear
            previous: tuple[int, float] | None = None
            warm = completions[lengths[0]]
            scorer(prompts=["Review:"] * 2, completions=[tokenizer.decode(i[:32]) for i in warm],
                   completion_ids=[i[:32] for i in warm], processing_class=tokenizer,
                   reference=["The movie was great."] * 2)  # fmt: skip  # warm-up: lazy imports, first kernels
            for length in lengths:
                if previous and previous[1] * (length / previous[0]) ** 2 > args.budget:
                    print(f"{name:42s} T={length:6d}  skipped (quadratic estimate > {args.budget:.0f} s)")
                    continue
                ids = completions[length]
                texts = [tokenizer.decode(i, skip_special_tokens=True) for i in ids]
                kwargs = dict(
                    prompts=["Review:"] * 2,
                    completions=texts,
                    completion_ids=ids,
                    processing_class=tokenizer,
                    reference=["The movie was great and the café too."] * 2,
                )
                call = functools.partial(scorer, **kwargs)
                seconds = best_time(call, 1 if previous and previous[1] > 5 else 2)
                record(name, length, seconds, None, per_1k=seconds / (2 * length / 1000))
                previous = (length, seconds)
        if args.trainer_length:
            token_s, step_s, ratio = trainer_ratio(args.trainer_length, tmp)
            print(
                f"# TokenGRPOTrainer T={args.trainer_length} (tiny Qwen2, 4 completions, lexicon + reference "
                f"consistency): token-reward work {token_s:.2f} s, policy forward+backward {step_s:.2f} s, "
                f"token_reward_to_step_ratio: {ratio:.3f}"
            )

    low = 1024 if 1024 in lengths and max(lengths) > 1024 else min(lengths)
    print(f"# log-log slope of time vs T from {low} to the longest length measured (≤ 16k)")
    slopes: dict[str, float] = {}
    for name, by_length in times.items():
        high = max(t for t in by_length if t <= 16384)
        value = slope(by_length, low, high)
        if value is not None and high > low:
            slopes[name] = value
            flag = "" if linear[name] else "  (inherent / reference / floor, excluded)"
            print(f"{name:42s} {low}->{high}: {value:5.2f}{flag}")
    path = {name: value for name, value in slopes.items() if linear[name]}
    core = [value for name, value in path.items() if name.startswith(("advantages", "alignment"))]
    print(f"# largest slope of advantages + alignment alone: {max(core):.2f}")
    worst = max(path, key=path.get)
    print(f"# largest token-path slope: {worst}")
    print(f"scaling_exponent: {path[worst]:.2f}")


if __name__ == "__main__":
    main()
