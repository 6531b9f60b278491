"""Run under `torch.distributed.run --nproc_per_node N`: one TokenGRPOTrainer generation batch of 3 prompts × 4
completions with an OnlineImplicitPRM token reward and the KL in the reward.

Completions are a deterministic function of each completion's global index (TRL's `rollout_func`), so 1 and 2
processes see the same global batch. Each process seeds the PRM's adapter differently (the trainer's binding must
broadcast process 0's). Each rank saves the outcome rewards its token reward functions saw, the PRM adapter after the
update, and its rows' advantages to `<out>/rank<r>.pt`.
"""

import os
import sys

import torch
from datasets import Dataset
from peft import LoraConfig

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
from trl_token_ext.scorers import OnlineImplicitPRM

torch.set_num_threads(1)
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
model_dir, out_dir = sys.argv[1:3]
GLOBAL_BATCH, GROUP = 12, 4
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
RANK = int(os.environ.get("RANK", "0"))


def completion_ids_for(index):
    length = 1 + (index * 7) % 9
    return [20 + (index * 13 + 5 * t) % 200 for t in range(length)]


def main():
    def rollout(prompts, trainer):
        start = trainer.accelerator.process_index * len(prompts)
        prompt_ids = [trainer.processing_class(p, add_special_tokens=False)["input_ids"] for p in prompts]
        completions = [completion_ids_for(start + i) for i in range(len(prompts))]
        return {"prompt_ids": prompt_ids, "completion_ids": completions, "logprobs": None}

    def outcome(completion_ids, **kwargs):
        return [float(len(ids) % 2) for ids in completion_ids]

    seen = []

    def spy(completion_ids, outcome_rewards, **kwargs):
        seen.append(outcome_rewards)
        return [[0.0] * len(ids) for ids in completion_ids]

    torch.manual_seed(RANK)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    prm = OnlineImplicitPRM(
        model_dir, peft_config=lora, beta=0.5, learning_rate=1e-2, model_init_kwargs={"device": "cpu"}, batch_size=4
    )
    trainer = TokenGRPOTrainer(
        model=model_dir,
        reward_funcs=outcome,
        token_reward_funcs=[prm, spy],
        args=TokenGRPOConfig(
            output_dir=out_dir,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            bf16=False,
            max_completion_length=16,
            per_device_train_batch_size=GLOBAL_BATCH // WORLD_SIZE,
            num_generations=GROUP,
            token_kl_coef=0.1,
            seed=0,
        ),
        train_dataset=Dataset.from_dict({"prompt": ["The movie was", "A cat sat", "It is a"] * 4}),
        rollout_func=rollout,
    )
    trainer.model.train()
    output = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    torch.save(
        {
            "outcome": seen[0].per_func,
            "weighted": seen[0].weighted,
            "adapter": {n: p.detach().clone() for n, p in prm.trainable_parameters()},
            "num_updates": prm.num_updates,
            "advantages": output["advantages"].cpu(),
            "mask": output["completion_mask"].cpu(),
        },
        f"{out_dir}/rank{trainer.accelerator.process_index}.pt",
    )


if __name__ == "__main__":
    main()
