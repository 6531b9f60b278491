# /// script
# requires-python = ">=3.10"
# dependencies = ["trl-token-ext[peft,demo]"]
# ///
"""A step-level PRM end to end on the arithmetic task, offline: sample, label, train the PRM, reward the policy.

1. Sample SmolLM2-135M-Instruct's solutions (temperature 0.7) to problems of the ``prm_train`` stream (PRM training,
   and validation on separate problems) and of the held-out ``prm_test`` stream, and label every line with the task's
   verifier (``trl_token_ext.demo.arithmetic.check_lines``): stepwise-supervision rows (prompt, completions, labels).
   ``--synthetic N`` adds N built solutions on fresh ``prm_train`` problems to the training split only
   (``arithmetic.synthetic_rows``: correct ones and ones with the policy's kinds of error — a sum off by 1 or 10 or
   one digit, a wrong operand, a subtraction, a wrong answer — labelled by the same verifier); validation and test
   stay the policy's own solutions, the distribution the PRM meets in step 3.
2. Train a token-classification PRM (all-MiniLM-L6-v2 + LoRA) on them with ``trl-token train-prm`` and report its
   held-out step accuracy, error-class F1 and first-error accuracy next to the majority-class baselines (the
   training set's, and the test set's own: the one to beat when built solutions change the training mix).
3. Train the policy a few GRPO steps with the PRM's step scores as token rewards (``StepPRMReward``: each line's
   P(correct) on its last token) beside the answer reward; the trainer logs ``token_rewards/step_prm/mean``.

Launch (offline):

    python examples/step_prm_arithmetic.py          # SmolLM2 + MiniLM, ~30 min on 2 shared CPU cores
    python examples/step_prm_arithmetic.py --tiny   # tiny random models, about a minute

``--result FILE`` writes every number printed and the command (docs/evidence/step_prm/arithmetic.json: the run in
docs/step_prm.md, "Measured").
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random policy and PRM (a smoke run)")
    parser.add_argument("--output-dir", default="outputs/step_prm_arithmetic")
    parser.add_argument("--result", default=None, help="write the measured numbers to this JSON file")
    parser.add_argument("--train-problems", type=int, default=64, help="prm_train problems (1/5 of them: validation)")
    parser.add_argument("--test-problems", type=int, default=32, help="held-out prm_test problems")
    parser.add_argument("--samples", type=int, default=4, help="solutions sampled per problem")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--synthetic", type=int, default=8000, help="built solutions added to the training split")
    parser.add_argument("--synthetic-step-error", type=float, default=0.55, help="P(a built step line is wrong)")
    parser.add_argument("--synthetic-answer-error", type=float, default=0.06, help="P(a built answer is wrong)")
    parser.add_argument("--prm-epochs", type=float, default=2.0, help="at most (early stopping on validation)")
    parser.add_argument("--prm-learning-rate", type=float, default=1e-3)
    parser.add_argument("--policy-steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples-from", default=None, help="a samples.json to use instead of sampling")
    parser.add_argument("--sample-only", action="store_true", help="stop after sampling (OUTPUT_DIR/samples.json)")
    return parser.parse_args()


def labelled_rows(model, tokenizer, split: str, count: int, args: argparse.Namespace) -> list[dict]:
    """Stepwise-supervision rows of sampled solutions to ``count`` problems of ``split``, labelled by the verifier.
    ``--tiny`` adds each problem's reference solution (a random model writes no correct line)."""
    from trl_token_ext.demo import arithmetic as ar
    from trl_token_ext.demo.task import sample_completions
    from trl_token_ext.scorers.steps import step_texts

    problems = ar.problems(split, count)
    rows = []
    for start in range(0, count, 8):  # 8 problems per generate call
        batch = problems[start : start + 8]
        samples = sample_completions(
            model, tokenizer, [ar.prompt(n) for n in batch], args.samples, args.max_new_tokens, args.temperature,
            seed=args.seed + start,
        )  # fmt: skip
        texts = [(s["text"], batch[i // args.samples]) for i, s in enumerate(samples)]
        if args.tiny:
            texts += [(ar.solution(numbers), numbers) for numbers in batch]
        for text, numbers in texts:
            lines = step_texts(text)
            if lines:
                rows.append(
                    {"prompt": ar.question(numbers), "completions": lines, "labels": ar.check_lines(lines, numbers)}
                )
    return rows


def sampled_rows(policy_path: str, out: Path, args: argparse.Namespace) -> tuple[list, list, dict]:
    """Labelled policy solutions of the ``prm_train`` and ``prm_test`` problems, saved in ``OUTPUT_DIR/samples.json``;
    with ``--samples-from FILE`` read from such a file instead (same sampling settings), to try PRM settings without
    sampling again: sampling is the slow part, and it is not bit-identical from run to run on CPUs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    keys = ("tiny", "train_problems", "test_problems", "samples", "temperature", "max_new_tokens", "seed")
    settings = {key: getattr(args, key) for key in keys}
    if args.samples_from:
        saved = json.loads(Path(args.samples_from).read_text())
        if saved["settings"] != settings:
            raise ValueError(f"--samples-from {args.samples_from}: sampled with {saved['settings']}, not {settings}.")
        print(f"sampled solutions: {args.samples_from}")
        return saved["train"], saved["test"], {"sampling_seconds": saved["seconds"], "samples": args.samples_from}
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(policy_path, padding_side="left")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32)
    train_rows = labelled_rows(model, tokenizer, "prm_train", args.train_problems, args)
    test_rows = labelled_rows(model, tokenizer, "prm_test", args.test_problems, args)
    seconds = round(time.perf_counter() - started, 1)
    saved = {"settings": settings, "train": train_rows, "test": test_rows, "seconds": seconds}
    (out / "samples.json").write_text(json.dumps(saved) + "\n")
    return train_rows, test_rows, {"sampling_seconds": seconds}


def describe(rows: list[dict]) -> dict:
    steps = [label for row in rows for label in row["labels"]]
    return {"rows": len(rows), "steps": len(steps), "share_correct": sum(steps) / max(1, len(steps))}


def main() -> None:
    args = parse_args()
    if args.tiny:
        args.train_problems, args.test_problems, args.samples = 10, 4, 2
        args.max_new_tokens, args.prm_epochs, args.policy_steps = 16, 1.0, 1
        args.synthetic = min(args.synthetic, 20) or 20
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    from datasets import Dataset, DatasetDict

    from trl_token_ext import cli
    from trl_token_ext.demo import arithmetic as ar

    if args.tiny:
        from trl_token_ext.testing import save_tiny_causal_lm, save_tiny_prm

        policy_path = str(save_tiny_causal_lm(out / "tiny_policy"))
        prm_base = str(save_tiny_prm(out / "tiny_prm_base", "token_classification"))
    else:
        from trl_token_ext.demo.data import minilm_dir
        from trl_token_ext.demo.pretrained import resolve_model_name

        policy_path, prm_base = resolve_model_name("smollm2"), str(minilm_dir())
    result: dict = {
        "command": shlex.join(["python", "examples/step_prm_arithmetic.py", *sys.argv[1:]]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output_dir", "result")},
    }

    # 1. sample and label
    train_rows, test_rows, sampling = sampled_rows(policy_path, out, args)
    if args.sample_only:
        return
    per_problem = len(train_rows) / args.train_problems
    cut = round(len(train_rows) - per_problem * max(1, args.train_problems // 5))  # the last problems: validation
    synthetic = ar.synthetic_rows(
        ar.problems("prm_train", args.synthetic, seed=args.seed + 1),  # a stream of their own, not the sampled ones
        args.seed,
        args.synthetic_step_error,
        args.synthetic_answer_error,
    )
    splits = {"train": train_rows[:cut] + synthetic, "validation": train_rows[cut:], "test": test_rows}
    data_dir = out / "prm_data"
    DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()}).save_to_disk(str(data_dir))
    result["data"] = {name: describe(rows) for name, rows in splits.items()}
    result["data"].update(sampling)
    print(json.dumps(result["data"], indent=2))

    # 2. train the PRM with `trl-token train-prm`
    started = time.perf_counter()
    prm_dir = out / "prm"
    command = [
        "train-prm", "--model_name_or_path", prm_base, "--dataset_name", str(data_dir), "--output_dir", str(prm_dir),
        "--use_peft", "--lora_r", "16", "--lora_alpha", "32", "--lora_target_modules", "all-linear",
        "--num_train_epochs", str(args.prm_epochs), "--learning_rate", str(args.prm_learning_rate),
        "--per_device_train_batch_size", "16",
        "--max_length", "128", "--early_stopping_patience", "5", "--use_cpu", "true", "--seed", str(args.seed),
    ]  # fmt: skip
    print("trl-token " + " ".join(command))
    cli.main(command)
    metrics = json.loads((prm_dir / "metrics.json").read_text())
    result["prm_command"] = "trl-token " + " ".join(command)
    result["prm"] = {key: value for key, value in metrics.items() if key.startswith(("test_", "eval_"))}
    result["prm"]["training_seconds"] = round(time.perf_counter() - started, 1)

    # 3. the policy with the PRM's step scores as token rewards
    started = time.perf_counter()
    result["policy"] = train_policy(policy_path, str(prm_dir / "merged"), out, args)
    result["policy"]["seconds"] = round(time.perf_counter() - started, 1)

    for name in ("step_accuracy", "error_f1", "first_error_accuracy"):
        value, baseline, own = (metrics[f"test_{key}{name}"] for key in ("", "baseline_", "split_baseline_"))
        print(f"held-out {name}: {value:.3f} (majority baseline: training set's {baseline:.3f}, test set's {own:.3f})")
    for entry in result["policy"]["logs"]:
        print(f"policy step {entry['step']}: token_rewards/step_prm/mean {entry['token_rewards/step_prm/mean']:.4f}")
    if args.result:
        Path(args.result).parent.mkdir(parents=True, exist_ok=True)
        Path(args.result).write_text(json.dumps(result, indent=2) + "\n")
        print(f"result: {args.result}")


def train_policy(policy_path: str, prm_path: str, out: Path, args: argparse.Namespace) -> dict:
    """A few GRPO steps (LoRA) with the answer reward and `StepPRMReward` as the token reward; the logged values."""
    import transformers
    from datasets import Dataset
    from transformers import TrainerCallback

    from trl_token_ext import StepPRMReward, TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.demo import arithmetic as ar
    from trl_token_ext.demo.task import load_demo_policy

    class Logs(TrainerCallback):
        def __init__(self):
            self.entries = []

        def on_log(self, state_args, state, control, logs=None, **kwargs):
            if logs and "token_rewards/step_prm/mean" in logs:
                keep = ("token_rewards/step_prm/mean", "token_rewards/step_prm/std", "rewards/answer_correct/mean")
                self.entries.append({"step": state.global_step, **{k: logs[k] for k in keep if k in logs}})

    transformers.set_seed(args.seed)
    policy, peft_config, tokenizer = load_demo_policy(policy_path, lora_r=8, load_in_4bit=False)
    prm = StepPRMReward(prm_path, format="token_classification", placement="last", model_init_kwargs={"device": "cpu"})
    logs = Logs()
    config = TokenGRPOConfig(
        output_dir=str(out / "policy"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=args.max_new_tokens,
        temperature=args.temperature,
        max_steps=args.policy_steps,
        learning_rate=1e-4,
        beta=0.0,
        gradient_checkpointing=False,
        bf16=False,  # TRL's bf16 autocast is slow on CPUs without native bf16
        use_cpu=True,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
        token_reward_weights=[1.0],
    )
    trainer = TokenGRPOTrainer(
        model=policy,
        reward_funcs=[ar.AnswerCorrect()],
        token_reward_funcs=[prm],
        args=config,
        train_dataset=Dataset.from_dict(ar.columns(ar.problems("train", 64, seed=args.seed))),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[logs],
    )
    trainer.train()
    return {"logs": logs.entries, "prm_model": prm_path}


if __name__ == "__main__":
    main()
