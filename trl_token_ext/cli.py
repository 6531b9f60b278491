"""``trl-token``: TRL's ``trl grpo`` / ``trl rloo`` recipes and flags, plus token reward functions.

    trl-token grpo --config examples/recipes/repetition_qlora.yaml
    trl-token grpo --model_name_or_path Qwen/Qwen2-0.5B-Instruct --dataset_name trl-lib/tldr \\
        --reward_funcs think_format_reward --token_reward_funcs repetition --load_in_4bit --use_peft
    trl-token rloo --config recipe.yaml
    trl-token train-classifier ...      (see docs/sentence_rewards.md)
    trl-token train-prm ...             (see docs/step_prm.md)
    trl-token demo ...

Several processes: ``accelerate launch -m trl_token_ext.cli grpo --config recipe.yaml``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl_token_ext import registry
from trl_token_ext.data import DATA_FILE_BUILDERS, load_data_file
from trl_token_ext.registry import parse_reward_args
from trl_token_ext.script_args import TokenRewardScriptArguments

COMMANDS = {
    "grpo": "Train with TokenGRPOTrainer (TRL's `trl grpo` arguments + token reward options).",
    "rloo": "Train with TokenRLOOTrainer (TRL's `trl rloo` arguments + token reward options).",
    "train-classifier": "Fine-tune a sentence classifier (LoRA) for SentenceClassifierReward.",
    "train-prm": "Fine-tune a token-classification step PRM (LoRA) for StepPRMReward.",
    "demo": "Run the embedded demo.",
}
# Option keys of a scorer that name a model: "policy" (or the policy's own checkpoint) shares the policy's weights.
MODEL_OPTION_KEYS = ("model", "ref_model")


@dataclass
class TokenRewardArguments(TokenRewardScriptArguments):
    """Reward selection for ``trl-token grpo|rloo``: outcome and token reward functions by registered name or import
    path, with options (the token ones are `TokenRewardScriptArguments`, as in any script)."""

    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Outcome (sequence-level) reward functions, as in `trl grpo`: registered names (TRL's "
            "`accuracy_reward`, `think_format_reward`, ..., `sentence_classifier`, ...) or import paths "
            "(`my_pkg.rewards:my_reward` or `my_pkg.rewards.my_reward`)."
        },
    )
    reward_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A sequence-classification reward model (id or folder), as in `trl grpo`."},
    )
    reward_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Options of the outcome reward functions: a mapping {name: {option: value}} (YAML, or JSON on "
            "the command line), or a list of option mappings in the order of `reward_funcs`."
        },
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an `output_dir` that holds another run's `checkpoint-*` folders: remove them first. "
            "Without it (and without `resume_from_checkpoint`) such an `output_dir` is refused."
        },
    )

    def __post_init__(self):
        self.reward_funcs, self.reward_kwargs = parse_reward_args(
            self.reward_funcs, self.reward_kwargs, "reward_kwargs"
        )
        super().__post_init__()


def _trainer_classes(command: str) -> tuple[type, type]:
    # Imported when a command runs, not with the module: torch and TRL take seconds to import, and `trl-token --help`
    # (like the registry this module is built on) stays instant.
    if command == "grpo":
        from trl_token_ext.trainers.grpo import TokenGRPOConfig, TokenGRPOTrainer

        return TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.trainers.rloo import TokenRLOOConfig, TokenRLOOTrainer

    return TokenRLOOConfig, TokenRLOOTrainer


def make_parser(command: str = "grpo"):
    """`trl.TrlParser` on ScriptArguments, TokenRewardArguments, Token<X>Config, ModelConfig, DatasetMixtureConfig."""
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, TrlParser

    config_class, _ = _trainer_classes(command)
    dataclass_types = (ScriptArguments, TokenRewardArguments, config_class, ModelConfig, DatasetMixtureConfig)
    return TrlParser(dataclass_types, prog=f"trl-token {command}")


def load_train_dataset(script_args: Any, dataset_args: Any = None) -> Any:
    """``datasets.load_dataset(dataset_name)`` as TRL's scripts (a single local .json/.jsonl/.csv/.parquet file too),
    or TRL's dataset mixture (``datasets:`` in the recipe)."""
    from datasets import load_dataset

    if dataset_args is not None and getattr(dataset_args, "datasets", None):
        from trl import get_dataset

        return get_dataset(dataset_args)
    name = script_args.dataset_name
    if not name:
        raise ValueError("No dataset: set `dataset_name` (a Hub id, a folder or a data file) or `datasets`.")
    extension = os.path.splitext(name)[1].lower()
    if os.path.isfile(name) and extension in DATA_FILE_BUILDERS:
        return load_data_file(Path(name), split=script_args.dataset_train_split)
    return load_dataset(name, name=script_args.dataset_config, streaming=script_args.dataset_streaming)


def _share_or_quantize(
    name: str, target: Any, options: dict[str, Any], policy: Any, model_args: Any
) -> dict[str, Any]:
    """Replace ``model: policy`` by a frozen view of the policy; load other scorer models in 4-bit when asked.

    A scorer that trains its model (class attribute ``trains_own_model``) always gets its own copy, also when its
    checkpoint is the policy's."""
    import inspect

    from trl_token_ext.models import ScorerModelArgs, SharedBaseModel, quantization_config, same_checkpoint

    options = dict(options)
    trains_own_model = getattr(target, "trains_own_model", False)  # e.g. OnlineImplicitPRM: never the policy itself
    for key in MODEL_OPTION_KEYS:
        value = options.get(key)
        if trains_own_model:  # even on the policy's checkpoint: a separate copy (4-bit when asked, below)
            if value == "policy":
                raise ValueError(
                    f"Token reward function {name!r}: {key}='policy' is not allowed: it trains its own adapter, which "
                    "must not sit on the policy's model. Give the policy's checkpoint instead "
                    f"({key}: {model_args.model_name_or_path}) to load a separate copy."
                )
            continue
        if isinstance(value, str) and (value == "policy" or same_checkpoint(value, model_args.model_name_or_path)):
            if not model_args.use_peft:
                raise ValueError(
                    f"Token reward function {name!r}: {key}={value!r} shares the policy's base model, which needs "
                    "`use_peft` (without LoRA the policy's weights change during training)."
                )
            options[key] = SharedBaseModel(policy)
    model = options.get("model")
    if model_args.load_in_4bit and isinstance(model, str) and inspect.isclass(target):
        given = options.get("model_init_kwargs")
        # The policy's NF4 settings, unless the recipe says how this scorer loads (`load_in_4bit: false` keeps it in
        # full precision; a `quantization_config` or a ScorerModelArgs object is used as given).
        chosen = (
            isinstance(given, ScorerModelArgs)
            or "load_in_4bit" in (given or {})
            or "quantization_config" in (given or {})
        )
        if "model_init_kwargs" in inspect.signature(target).parameters and not chosen:
            init = ScorerModelArgs.coerce(given, name)
            options["model_init_kwargs"] = init.replace(quantization_config=quantization_config(model_args))
    return options


def _policy_prepare(policy: Any, model_args: Any) -> Callable[[str, Any, dict[str, Any]], dict[str, Any]]:
    """`registry.build_reward_funcs`'s ``prepare``: scorer models shared with the policy or loaded in 4-bit."""
    return functools.partial(_share_or_quantize, policy=policy, model_args=model_args)


def build_reward_funcs(
    names: Sequence[str] | None, options: Any, flag: str, policy: Any = None, model_args: Any = None
) -> list[Callable[..., Any]]:
    """Reward functions from names and YAML options (`trl_token_ext.registry.build_reward_funcs`); with
    ``model_args``, models in their options are shared with the policy or loaded in 4-bit (`_share_or_quantize`)."""
    prepare = None if model_args is None else _policy_prepare(policy, model_args)
    return registry.build_reward_funcs(names, options, flag, prepare=prepare)


def check_output_dir(output_dir: str, resume_from_checkpoint: Any, overwrite: bool, is_main_process: bool = True):
    """Refuse an ``output_dir`` holding ``checkpoint-*`` folders of another run unless resuming; with ``overwrite``
    remove them (on the main process) so that the two runs' checkpoints are never mixed."""
    import re
    import shutil

    if resume_from_checkpoint or not os.path.isdir(output_dir):
        return
    pattern = re.compile(r"checkpoint-(\d+)$")
    found = sorted(
        (name for name in os.listdir(output_dir) if pattern.match(name)),
        key=lambda name: int(pattern.match(name).group(1)),
    )
    if not found:
        return
    if overwrite:
        if is_main_process:
            for name in found:
                shutil.rmtree(os.path.join(output_dir, name))
        return
    last = os.path.join(output_dir, found[-1])
    raise ValueError(
        f"output_dir {output_dir!r} already holds checkpoints of another run ({', '.join(found)}); training into "
        "it would mix the two runs' checkpoints. Resume that run with --resume_from_checkpoint "
        f"{last}, choose another --output_dir, or pass --overwrite_output_dir true to delete those checkpoints."
    )


def run_training(command: str, script_args, reward_args, training_args, model_args, dataset_args=None) -> Any:
    """Load data, policy (4-bit + LoRA per `ModelConfig`) and reward functions; train; save. Returns the trainer."""
    from trl_token_ext.models import load_policy  # see _trainer_classes: torch loads when a command runs

    _, trainer_class = _trainer_classes(command)
    if not (reward_args.reward_funcs or reward_args.reward_model_name_or_path or reward_args.token_reward_funcs):
        raise ValueError("Give at least one of `reward_funcs`, `reward_model_name_or_path` or `token_reward_funcs`.")
    check_output_dir(
        training_args.output_dir,
        training_args.resume_from_checkpoint,
        getattr(reward_args, "overwrite_output_dir", False),
        training_args.process_index == 0,
    )
    registry.check_reward_names(reward_args.token_reward_funcs, kind="token")  # before loading anything
    reward_funcs: list[Any] = []
    if reward_args.reward_model_name_or_path:
        reward_funcs.append(reward_args.reward_model_name_or_path)
    reward_funcs += registry.build_reward_funcs(
        reward_args.reward_funcs, reward_args.reward_kwargs, "reward_kwargs", kind="outcome"
    )
    dataset = load_train_dataset(script_args, dataset_args)
    policy, peft_config = load_policy(model_args, training_args)
    training_args.model_init_kwargs = None  # consumed by load_policy
    token_funcs = reward_args.build_token_reward_funcs(training_args, prepare=_policy_prepare(policy, model_args))
    if not reward_funcs:  # token rewards only: a constant outcome reward gives zero outcome advantages
        reward_funcs = [_zero_reward]
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = dataset[script_args.dataset_test_split]
    trainer = trainer_class(
        model=policy,
        reward_funcs=reward_funcs,
        token_reward_funcs=token_funcs,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=eval_dataset,
        peft_config=peft_config,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}.")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer


def _zero_reward(completions, **kwargs) -> list[float]:
    return [0.0] * len(completions)


_zero_reward.__name__ = "zero"


def _train_command(command: str, argv: list[str]) -> int:
    parser = make_parser(command)
    script_args, reward_args, training_args, model_args, dataset_args = parser.parse_args_and_config(argv)
    run_training(command, script_args, reward_args, training_args, model_args, dataset_args)
    return 0


def _delegate(command: str, module: str, function: str, argv: list[str]) -> int:
    import importlib

    try:
        entry = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as error:
        message = f"trl-token {command} is not available: {module}.{function} could not be loaded ({error})."
        raise SystemExit(message) from error
    result = entry(argv)
    return result if isinstance(result, int) else 0


def _print_help() -> None:
    print("usage: trl-token <command> [options]   (trl-token <command> --help for its options)\n\ncommands:")
    for name, text in COMMANDS.items():
        print(f"  {name:18s}{text}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trl-token`` console script; ``argv`` excludes the program name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _print_help()
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("grpo", "rloo"):
        return _train_command(command, rest)
    if command == "train-classifier":
        return _delegate(command, "trl_token_ext.sentence.recipes", "train_classifier_main", rest)
    if command == "train-prm":
        return _delegate(command, "trl_token_ext.step_prm.recipes", "train_prm_main", rest)
    if command == "demo":
        return _delegate(command, "trl_token_ext.demo", "main", rest)
    _print_help()
    print(f"\ntrl-token: unknown command {command!r}; choose one of {list(COMMANDS)}.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
