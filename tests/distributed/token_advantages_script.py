"""Run under `torch.distributed.run --nproc_per_node N`: one generation batch of 3 prompts × 4 completions.

Completions are a deterministic function of each completion's global index (GRPO: TRL's `rollout_func`; RLOO, which has
no `rollout_func`: this trainer instance's `_generate_single_turn` is replaced), so 1 and 2
processes see the same global batch while each process pads its completions to its own length; with 2 processes the
second prompt's group spans both. For every (mode, normalization) each rank saves its rows' advantages to
`<out>/rank<r>.pt`.
"""

import os
import sys
from dataclasses import replace

import torch
from datasets import Dataset

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer

torch.set_num_threads(1)
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
model_dir, out_dir, kind = sys.argv[1:4]
TRAINERS = {"grpo": (TokenGRPOTrainer, TokenGRPOConfig), "rloo": (TokenRLOOTrainer, TokenRLOOConfig)}
GLOBAL_BATCH, GROUP = 12, 4
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
COMBINATIONS = [(m, n) for m in ("reward_to_go", "immediate", "min") for n in ("group", "batch", "none")]


def completion_ids_for(index):
    length = 1 + (index * 7) % 9  # lengths vary per completion, so each process pads to a different T
    return [20 + (index * 13 + 5 * t) % 200 for t in range(length)]


def main():
    def fixed_completions(trainer, count):
        start = trainer.accelerator.process_index * count
        return [completion_ids_for(start + i) for i in range(count)]

    def rollout(prompts, trainer):
        prompt_ids = [trainer.processing_class(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return {"prompt_ids": prompt_ids, "completion_ids": fixed_completions(trainer, len(prompts)), "logprobs": None}

    def outcome(completion_ids, **kwargs):
        return [float(len(ids) % 4) for ids in completion_ids]

    def token_reward(completion_ids, **kwargs):
        return [[float((t * 3) % 5) for t in ids] for ids in completion_ids]

    def sparse_reward(completion_ids, **kwargs):
        return [None if len(ids) % 3 == 0 else [1.0] * len(ids) for ids in completion_ids]

    dataset = Dataset.from_dict({"prompt": ["The movie was", "A cat sat"] * 4})
    trainer_class, config_class = TRAINERS[kind]
    trainer = trainer_class(
        model=model_dir,
        reward_funcs=outcome,
        token_reward_funcs=[token_reward, sparse_reward],
        args=config_class(
            output_dir=out_dir,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            max_completion_length=16,
            per_device_train_batch_size=GLOBAL_BATCH // WORLD_SIZE,
            num_generations=GROUP,
            token_reward_weights=[1.0, 0.5],
            token_advantage_coef=0.7,
            token_reward_gamma=0.9,
            seed=0,
        ),
        train_dataset=dataset,
        **({"rollout_func": rollout} if kind == "grpo" else {}),
    )
    if kind == "rloo":
        trainer._generate_single_turn = lambda prompt_ids, *args: fixed_completions(trainer, len(prompt_ids))
    batch = next(iter(trainer.get_train_dataloader()))
    results = {}
    for mode, normalization in COMBINATIONS:
        trainer.token_settings = replace(
            trainer.token_settings, token_advantage_mode=mode, token_reward_normalization=normalization
        )
        output = trainer._generate_and_score_completions(batch)
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("token_")}
        results[mode, normalization] = {
            "advantages": output["advantages"].cpu(),
            "mask": output["completion_mask"].cpu(),
            "metrics": metrics,
        }
    torch.save(results, f"{out_dir}/rank{trainer.accelerator.process_index}.pt")


if __name__ == "__main__":
    main()
