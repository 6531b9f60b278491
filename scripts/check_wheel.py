"""Run inside a fresh venv holding the built wheel and its core dependencies only (scripts/check_wheel.sh).

1. The package imports from site-packages, and `TokenGRPOTrainer` trains a tiny random model one step with a token
   reward function: the LoRA-free policy's parameters change.
2. Each extra's feature, its package absent, raises an ImportError naming ``pip install 'trl-token-ext[<extra>]'``.
Prints one line per check and ``wheel_check: ok`` last.
"""

from __future__ import annotations

import importlib.util
import tempfile

import torch

import trl_token_ext

OPTIONAL = ("pysbd", "sklearn", "bitsandbytes", "math_verify", "sacrebleu", "vaderSentiment", "gguf", "matplotlib")


def check_core_only() -> None:
    assert "site-packages" in trl_token_ext.__file__, trl_token_ext.__file__
    present = [name for name in OPTIONAL if importlib.util.find_spec(name) is not None]
    assert not present, f"the core install pulled optional packages: {present}"
    print(f"core only: none of {list(OPTIONAL)} installed")


def check_training() -> None:
    from datasets import Dataset

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.scorers import RepetitionConsistency
    from trl_token_ext.testing import save_tiny_causal_lm

    torch.manual_seed(0)
    work = tempfile.mkdtemp(prefix="wheel-check-")
    policy = str(save_tiny_causal_lm(f"{work}/policy"))
    args = TokenGRPOConfig(
        output_dir=f"{work}/out",
        use_cpu=True,
        bf16=False,
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )

    def length(completions, **kwargs):
        return [float(len(c)) for c in completions]

    trainer = TokenGRPOTrainer(
        model=policy,
        reward_funcs=length,
        token_reward_funcs=[RepetitionConsistency(n=1, penalty=-1.0)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["The movie was", "I loved this"] * 4}),
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    changed = sum(int(not torch.equal(before[name], p.detach())) for name, p in trainer.model.named_parameters())
    logs = [row for row in trainer.state.log_history if "token_advantages/mean" in row]
    assert changed > 0 and logs, (changed, trainer.state.log_history)
    print(f"TokenGRPOTrainer: one step trained, {changed} parameter tensors changed")


def expect_extra(extra: str, feature) -> None:
    try:
        feature()
    except ImportError as error:
        assert f"pip install 'trl-token-ext[{extra}]'" in str(error), error
        print(f"[{extra}]: {error}")
        return
    raise AssertionError(f"[{extra}]: the feature ran without its extra")


def check_extras() -> None:
    from trl_token_ext import LexiconQuality, MetricReward, split_sentences
    from trl_token_ext.models import nf4_config
    from trl_token_ext.sentence.metrics import load_classification_metric

    expect_extra("sentences", lambda: split_sentences("One. Two."))
    expect_extra("classifier", load_classification_metric)
    expect_extra("quantization", nf4_config)
    expect_extra("lexicon", LexiconQuality.from_vader)
    expect_extra("metrics", lambda: MetricReward(metric="sacrebleu")(completions=["a"], reference=["a"]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    check_core_only()
    check_training()
    check_extras()
    print("wheel_check: ok")
