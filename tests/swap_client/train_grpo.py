"""A stock TRL GRPO training script in the shape clients write theirs (open-r1's grpo.py and the like): its own
config subclass with extra fields and a ``__post_init__``, its own script arguments and reward registry, one
`trl.TrlParser`. tests/test_swap_in.py applies README.md's swap diff to this file, literally.

    python train_grpo.py --config recipe.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trl
from client_rewards import answer_reward, format_reward, get_length_reward
from datasets import load_dataset
from transformers import AutoTokenizer, set_seed
from trl import GRPOTrainer, ModelConfig, ScriptArguments, TrlParser, get_peft_config


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """`trl.GRPOConfig` plus this script's fields."""

    system_prompt: str | None = field(default=None, metadata={"help": "System message put before every problem."})
    chat_template: str | None = field(default=None, metadata={"help": "A Jinja chat template for the tokenizer."})
    run_tags: list[str] = field(default_factory=list, metadata={"help": "Tags of the run."})

    def __post_init__(self):
        super().__post_init__()
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise ValueError("system_prompt is empty; leave it out instead.")
        self.run_tags = [*self.run_tags, f"G{self.num_generations}"]


@dataclass
class GRPOScriptArguments(ScriptArguments):
    """`trl.ScriptArguments` plus the reward functions of this script, by name."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "answer", "length"],
        metadata={"help": "Reward functions: 'format', 'answer', 'length'."},
    )
    length_target: int = field(default=24, metadata={"help": "Target length of the 'length' reward, in characters."})


def get_reward_funcs(script_args: GRPOScriptArguments) -> list:
    registry = {
        "format": format_reward,
        "answer": answer_reward,
        "length": get_length_reward(target_chars=script_args.length_target),
    }
    return [registry[name] for name in script_args.reward_funcs]


def main(script_args, training_args, model_args):
    set_seed(training_args.seed)
    dataset = load_dataset("json", data_files={script_args.dataset_train_split: script_args.dataset_name})

    def make_conversation(example):
        system = [{"role": "system", "content": training_args.system_prompt}] if training_args.system_prompt else []
        return {"prompt": system + [{"role": "user", "content": example["problem"]}]}

    dataset = dataset.map(make_conversation)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if training_args.chat_template is not None:
        tokenizer.chat_template = training_args.chat_template
    training_args.model_init_kwargs = {"dtype": model_args.dtype}
    reward_funcs = get_reward_funcs(script_args)

    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    return trainer


if __name__ == "__main__":
    parser = TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
