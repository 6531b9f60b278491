# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "trl-token-ext[peft,quantization]",
# ]
# ///
"""TRL's GRPO quickstart, with dense token rewards: the only changes are the import and ``token_reward_funcs``.

Launch (one GPU, or several processes):
    python examples/swap_in_grpo.py
    accelerate launch examples/swap_in_grpo.py
Offline smoke run (tiny random model, CPU, a few seconds; each process prints "process i of n"):
    python examples/swap_in_grpo.py --tiny
    accelerate launch --multi_gpu --num_processes 2 examples/swap_in_grpo.py --tiny
(`--multi_gpu` selects DDP, on CPU processes too with --tiny's `use_cpu=True`; `--cpu --num_processes 2` alone
starts a single process.)

The diff against TRL's quickstart (docs/consumer_gpu.md shows it too):

    -from trl import GRPOConfig, GRPOTrainer
    +from trl import GRPOConfig
    +from trl_token_ext import TokenGRPOTrainer as GRPOTrainer
    +from trl_token_ext.scorers import RepetitionConsistency
     ...
         reward_funcs=reward_len,
    +    token_reward_funcs=[RepetitionConsistency(n=3, penalty=-1.0)],

4-bit NF4 + LoRA use TRL's own trainer arguments (``quantization_config``, ``peft_config``), unchanged.
"""

import sys

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import BitsAndBytesConfig
from trl import GRPOConfig

from trl_token_ext import TokenGRPOTrainer as GRPOTrainer  # was: from trl import GRPOConfig, GRPOTrainer
from trl_token_ext.scorers import RepetitionConsistency

TINY = "--tiny" in sys.argv


def reward_len(completions, **kwargs):
    """TRL quickstart reward: completions close to 20 characters."""
    return [-abs(20 - len(completion)) for completion in completions]


if TINY:  # offline: a tiny random Qwen2 and a handful of prompts instead of the Hub model and dataset
    import os
    import tempfile

    from datasets import Dataset

    from trl_token_ext.testing import save_tiny_causal_lm

    torch.set_num_threads(1)
    model = os.path.join(tempfile.gettempdir(), "trl-token-ext-tiny64")
    if not os.path.exists(os.path.join(model, "config.json")):
        save_tiny_causal_lm(model, hidden_size=64)  # each process writes the same files; identical content
    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this", "The food was", "A cat sat"] * 8})
    training_args = GRPOConfig(
        output_dir=os.path.join(tempfile.gettempdir(), "swap-in-grpo-tiny"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
else:
    model = "Qwen/Qwen2-0.5B-Instruct"
    dataset = load_dataset("trl-lib/tldr", split="train")
    training_args = GRPOConfig(output_dir="Qwen2-0.5B-GRPO")

trainer = GRPOTrainer(
    model=model,
    reward_funcs=reward_len,
    token_reward_funcs=[RepetitionConsistency(n=3, penalty=-1.0)],  # the one new argument
    args=training_args,
    train_dataset=dataset,
    # One consumer GPU: 4-bit NF4 base + LoRA (bitsandbytes also runs on CPU, as in the --tiny run)
    quantization_config=BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32 if TINY else torch.bfloat16,
    ),
    peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
)
trainer.train()
if TINY:  # the docs check counts these lines: as many as `--num_processes`
    print(f"swap_in_grpo: process {trainer.accelerator.process_index} of {trainer.accelerator.num_processes}")
