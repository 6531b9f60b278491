"""``trl-token demo``: a short, offline, end-to-end token-reward GRPO run on an embedded tiny model.

The policy is a tiny random causal LM built locally (no Hub). The outcome reward gives no signal (a constant), and
a token reward pays +1 for every generated token in a target set (the tokens of a few "positive" words). After a few
dozen steps the policy puts visibly more probability on those tokens than before; the demo prints both numbers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

TARGET_WORDS = ["wonderful", "great", "good", "beautiful", "loved", "nice", "friendly"]
PROMPTS = ["The movie was", "I loved this", "The food was", "A cat sat", "It is a", "What a bad"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trl-token demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=40, help="GRPO training steps.")
    parser.add_argument("--output_dir", default=None, help="Where to write the run (default: a temporary folder).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def target_token_ids(tokenizer) -> set[int]:
    """Ids of every token of the target words (with and without a leading space)."""
    ids: set[int] = set()
    for word in TARGET_WORDS:
        for text in (word, " " + word):
            ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids


def target_probability(model, tokenizer, target: set[int]) -> float:
    """Mean probability the policy gives to the target tokens as the next token after each prompt."""
    import torch

    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        probs = model(**inputs).logits[:, -1].softmax(-1)
    return probs[:, sorted(target)].sum(-1).mean().item()


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _parse(argv)
    import torch
    from datasets import Dataset
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.tiny_models import save_tiny_causal_lm

    torch.set_num_threads(1)
    console = Console()
    work = Path(args.output_dir or tempfile.mkdtemp(prefix="trl-token-demo-"))
    model_dir = save_tiny_causal_lm(work / "tiny-policy", seed=args.seed)
    console.print(f"[bold]trl-token demo[/bold]: tiny random policy in {model_dir}, {args.steps} GRPO steps on CPU")

    trainer_holder = {}

    def no_outcome_signal(completions, **kwargs):
        return [0.0] * len(completions)

    def target_token_reward(completion_ids, processing_class, **kwargs):
        target = trainer_holder.setdefault("target", target_token_ids(processing_class))
        return [[1.0 if t in target else 0.0 for t in ids] for ids in completion_ids]

    trainer = TokenGRPOTrainer(
        model=str(model_dir),
        reward_funcs=no_outcome_signal,
        token_reward_funcs=[target_token_reward],
        args=TokenGRPOConfig(
            output_dir=str(work / "run"),
            per_device_train_batch_size=6,
            num_generations=3,
            max_completion_length=8,
            max_steps=args.steps,
            learning_rate=3e-2,
            token_advantage_mode="immediate",
            logging_steps=5,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            seed=args.seed,
        ),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 8}),
    )
    tokenizer = trainer.processing_class
    target = target_token_ids(tokenizer)
    before = target_probability(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, target)
    trainer.train()
    after = target_probability(trainer.model, tokenizer, target)
    console.print(f"Probability of the rewarded tokens after each prompt: {before:.4f} before, {after:.4f} after")
    console.print("[green]improved[/green]" if after > before else "[red]did not improve[/red]")
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
