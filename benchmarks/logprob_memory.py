"""Peak memory of the model-backed scorers' log-probs at realistic lengths: chunked vs one-pass log-softmax.

Every model-backed token reward (`LogProbQuality`, `ImplicitPRMQuality`, `OnlineImplicitPRM`'s scoring,
`TeacherDistillReward`) turns the judge's logits (T, V) into one log-prob per completion token. In one pass that
needs 2–3 more (T, V) buffers next to the logits (the gathered rows, their float32 copy for bf16 logits, the
log-softmax). `selected_logprobs` does it ``LOGPROB_CHUNK`` positions at a time.

The judge is a random model with SmolLM2-135M's vocabulary and width (V 49,152, hidden 576) and 2 layers (the
logits' size does not depend on depth), float32 on CPU, one thread; one completion of T tokens. Peak memory is the
growth of the process's peak RSS during the call (forked child, `scaling.peak_rss_mib`); both variants are measured
side by side at each T.

    python benchmarks/logprob_memory.py [--lengths 1024 4096 16384] [--vocab 49152]

A second table measures the PRM update's log-probs with gradient (`target_logprobs` vs the one-pass
``log_softmax().gather()`` and TRL's ``selective_log_softmax`` on its torch path) on random (1, T, V) float32 logits.

Last line: ``logprob_memory_ratio: <peak chunked / peak one-pass of the scorers' log-probs at the longest T>``.
"""

from __future__ import annotations

import argparse
import time

import torch

torch.set_num_threads(1)


def build_judge(vocab: int, hidden: int, layers: int, max_positions: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def score_once(judge, ids: list[int], prompt_length: int, chunk: int) -> torch.Tensor:
    """Per-token log-probs of ``ids[prompt_length:]`` through `completion_logprobs` with the given chunk."""
    import trl_token_ext.scorers._lm as lm

    lm.LOGPROB_CHUNK = chunk
    batcher = lm.JudgeBatcher("judge", None, None, batch_size=1, max_batch_tokens=len(ids))
    sample = lm.JudgeSample(ids=ids, start=prompt_length, num_completion=len(ids) - prompt_length, dropped=0)
    (logps,), _ = lm.completion_logprobs(judge, batcher, [sample], pad_id=0)
    return logps


def logprob_gradient(logits: torch.Tensor, targets: torch.Tensor, variant: str) -> None:
    """Forward and backward of Σ_t log p(y_t) from (1, T, V) logits, as the PRM update does (its log-prob part)."""
    from trl.trainer.utils import selective_log_softmax

    from trl_token_ext.scorers._lm import target_logprobs

    leaf = logits.detach().requires_grad_(True)
    if variant == "chunked":
        log_p = target_logprobs(leaf, targets)
    elif variant == "trl":  # TRL's helper (its Triton kernel runs on CUDA/XPU only; this is its torch path)
        log_p = selective_log_softmax(leaf, targets)
    else:  # the one-pass expression OnlineImplicitPRM used before
        log_p = leaf.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    log_p.sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens before the completion")
    args = parser.parse_args()

    from scaling import peak_rss_mib

    from trl_token_ext.scorers._lm import LOGPROB_CHUNK

    judge = build_judge(args.vocab, args.hidden, args.layers, args.prompt + max(args.lengths) + 1)
    generator = torch.Generator().manual_seed(0)
    print(f"judge: random Llama, V {args.vocab}, hidden {args.hidden}, {args.layers} layers, float32, CPU, 1 thread")
    print(f"{'T':>6} | {'logits MiB':>10} | {'one pass MiB':>12} | {'chunked MiB':>11} | {'one pass s':>10} | "
          f"{'chunked s':>9} | max |Δ log p|")  # fmt: skip
    ratio = float("nan")
    for length in args.lengths:
        ids = torch.randint(1, args.vocab, (args.prompt + length,), generator=generator).tolist()
        variants = {"one pass": args.prompt + length, "chunked": LOGPROB_CHUNK}
        peaks, seconds, values = {}, {}, {}
        for name, chunk in variants.items():
            with torch.no_grad():
                peaks[name] = peak_rss_mib(lambda c=chunk, i=ids: score_once(judge, i, args.prompt, c))
                start = time.perf_counter()
                values[name] = score_once(judge, ids, args.prompt, chunk)
                seconds[name] = time.perf_counter() - start
        logits_mib = (length + 1) * args.vocab * 4 / 2**20
        delta = float((values["one pass"] - values["chunked"]).abs().max())
        print(f"{length:>6} | {logits_mib:>10.0f} | {peaks['one pass']:>12.0f} | {peaks['chunked']:>11.0f} | "
              f"{seconds['one pass']:>10.2f} | {seconds['chunked']:>9.2f} | {delta:.1e}", flush=True)  # fmt: skip
        ratio = peaks["chunked"] / peaks["one pass"] if peaks["one pass"] > 0 else float("nan")  # tiny runs: no growth
    print("with gradient (the PRM update's log-probs): (1, T, V) float32 logits, forward + backward")
    variants = ("one pass", "trl", "chunked")
    print(f"{'T':>6} | {'logits MiB':>10} | " + " | ".join(f"{name + ' MiB':>12}" for name in variants) + " | "
          + " | ".join(f"{name + ' s':>10}" for name in variants))  # fmt: skip
    for length in args.lengths:
        logits = torch.randn(1, length, args.vocab, generator=generator)
        targets = torch.randint(0, args.vocab, (1, length), generator=generator)
        peaks, seconds = {}, {}
        for name in variants:
            peaks[name] = peak_rss_mib(lambda v=name, z=logits, y=targets: logprob_gradient(z, y, v))
            start = time.perf_counter()
            logprob_gradient(logits, targets, name)
            seconds[name] = time.perf_counter() - start
        logits_mib = length * args.vocab * 4 / 2**20
        print(f"{length:>6} | {logits_mib:>10.0f} | " + " | ".join(f"{peaks[n]:>12.0f}" for n in variants) + " | "
              + " | ".join(f"{seconds[n]:>10.2f}" for n in variants), flush=True)  # fmt: skip
        del logits
    print(f"logprob_memory_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
