"""Run under `torch.distributed.run --nproc_per_node N`: one OnlineImplicitPRM update on a global batch of 6.

Each process seeds its adapter differently (binding must make them equal: process 0's), takes its rank-major rows of
the global batch (one row has no label), runs one SGD update and saves its adapter to `<out>/rank<r>.pt`.
"""

import sys
from types import SimpleNamespace

import torch
from accelerate import Accelerator
from peft import LoraConfig
from transformers import AutoTokenizer

from trl_token_ext.scorers import OnlineImplicitPRM
from trl_token_ext.trainers.records import OutcomeRewards

torch.set_num_threads(1)
model_dir, out_dir = sys.argv[1:3]
PROMPTS = ["The movie was", "A cat sat", "It is a", "What a bad", "I loved this", "The food was"]
COMPLETIONS = [" good.", " on the mat and the dog ran in the park!", " nice day.", " film", " great", " bad."]
OUTCOMES = [1.0, 0.0, float("nan"), 1.0, 0.0, 1.0]


def main():
    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(rank)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    prm = OnlineImplicitPRM(
        model_dir, peft_config=lora, beta=0.5, model_init_kwargs={"device": "cpu"}, batch_size=2,
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.5), max_grad_norm=None,
    )  # fmt: skip
    prm.bind_trainer(SimpleNamespace(accelerator=accelerator, model=SimpleNamespace(training=True)))
    rows = slice(rank * 6 // world, (rank + 1) * 6 // world)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in COMPLETIONS[rows]]
    per_func = torch.tensor(OUTCOMES[rows]).unsqueeze(1)
    outcome = OutcomeRewards(per_func=per_func, weighted=per_func[:, 0], names=["correct"])
    initial = {n: p.detach().clone() for n, p in prm.trainable_parameters()}
    prm(prompts=PROMPTS[rows], completions=COMPLETIONS[rows], completion_ids=ids, processing_class=tokenizer,
        outcome_rewards=outcome)  # fmt: skip
    adapter = {n: p.detach().clone() for n, p in prm.trainable_parameters()}
    torch.save({"initial": initial, "adapter": adapter}, f"{out_dir}/rank{rank}.pt")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
