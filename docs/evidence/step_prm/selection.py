"""The validation-only runs that chose the arithmetic PRM's settings (no test split is loaded).

    python docs/evidence/step_prm/selection.py --synthetic 8000 --epochs 2 --lr 1e-3 --out DIR

Training rows: the policy's sampled solutions of samples_64x4.json's training problems (the first 52 of 64; the last
12 are the validation split, exactly as `examples/step_prm_arithmetic.py --samples-from` cuts them) plus
``--synthetic`` built solutions (`arithmetic.synthetic_rows` on ``prm_train`` problems of seed 1, as the example).
Prints and writes ``DIR.json``: the validation metrics of the best epoch, with both majority baselines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
SAMPLES = Path(__file__).with_name("samples_64x4.json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", type=int, default=2000)
    parser.add_argument("--step-error", type=float, default=0.55)
    parser.add_argument("--answer-error", type=float, default=0.06)
    parser.add_argument("--backbone", choices=("minilm", "smollm2"), default="minilm")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from datasets import Dataset
    from trl import ModelConfig

    from trl_token_ext.demo import arithmetic as ar
    from trl_token_ext.step_prm.recipes import TrainPRMArguments, run_train_prm

    sampled = json.loads(SAMPLES.read_text())["train"]
    cut = len(sampled) - 4 * (64 // 5)  # 4 solutions per problem, the last 12 problems: validation
    built = ar.synthetic_rows(ar.problems("prm_train", args.synthetic, seed=1), 0, args.step_error, args.answer_error)
    train = sampled[:cut] + built
    if args.backbone == "minilm":
        from trl_token_ext.demo.data import minilm_dir

        base = str(minilm_dir())
    else:
        from trl_token_ext.demo.pretrained import resolve_model_name

        base = resolve_model_name("smollm2")
    training = TrainPRMArguments(
        dataset_name="-", output_dir=args.out, max_length=128, num_train_epochs=args.epochs, learning_rate=args.lr,
        per_device_train_batch_size=16, early_stopping_patience=2, seed=0, use_cpu=True,
    )  # fmt: skip
    model = ModelConfig(
        model_name_or_path=base, use_peft=not args.full, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        lora_target_modules="all-linear",
    )  # fmt: skip
    started = time.perf_counter()
    splits = (Dataset.from_list(train).shuffle(seed=0), Dataset.from_list(sampled[cut:]), None)
    result = run_train_prm(training, model, splits=splits)
    report = {key: value for key, value in result.metrics.items() if key.startswith("eval_") or key == "epochs_run"}
    report.update(vars(args), train_rows=len(train), seconds=round(time.perf_counter() - started))
    print(json.dumps(report, indent=1))
    Path(args.out + ".json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
