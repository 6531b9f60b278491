"""Build offline stand-ins for the Hub assets used by TRL's GRPO/RLOO tests.

    python scripts/trl_dropin/build_standins.py /tmp/trl-dropin-run

creates ``<dir>/trl-internal-testing/<name>/`` folders (tiny random text-only models + tokenizers) and the
``<dir>/trl-internal-testing/zen/`` dataset (parquet files + README.md ``configs:``). Run pytest from ``<dir>``
with HF_HUB_OFFLINE=1 so that ``from_pretrained("trl-internal-testing/...")`` and
``load_dataset("trl-internal-testing/zen", ...)`` resolve to these local folders.

Only text-only LMs are covered; VLM / remote-code / exotic architectures are left out on purpose (their tests
fail for the stock and the substituted trainer alike). Tokens are a small byte-level BPE, so tests that hard-code
real Qwen token ids (tool-calling tests) cannot pass with these stand-ins.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The Zen of Python, split into prompt / completion like TRL's `trl-internal-testing/zen`.
ZEN = [
    ("Beautiful is better than", " ugly."),
    ("Explicit is better than", " implicit."),
    ("Simple is better than", " complex."),
    ("Complex is better than", " complicated."),
    ("Flat is better than", " nested."),
    ("Sparse is better than", " dense."),
    ("Readability", " counts."),
    ("Special cases aren't special enough to", " break the rules."),
    ("Although practicality", " beats purity."),
    ("Errors should never", " pass silently."),
    ("Unless explicitly", " silenced."),
    ("In the face of ambiguity, refuse the", " temptation to guess."),
    ("There should be one-- and preferably only one --obvious", " way to do it."),
    ("Although that way may not be obvious at first unless you're", " Dutch."),
    ("Now is better than", " never."),
    ("Although never is often better than", " *right* now."),
    ("If the implementation is hard to explain, it's a", " bad idea."),
    ("If the implementation is easy to explain, it may be a", " good idea."),
    ("Namespaces are one honking great idea -- let's do", " more of those!"),
]
N_TRAIN = 17  # as the Hub dataset: 17 train rows, 2 test rows

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]


def _tokenizer(chat_template: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [p + c for p, c in ZEN] + ["user assistant system tool multiply_tool arguments name"]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=SPECIAL[1:],
    )
    fast.chat_template = chat_template
    return fast


def _template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def _save_model(root: Path, name: str, config_cls: str, model_cls: str, template: str, **extra):
    import torch
    import transformers
    from transformers import GenerationConfig

    tok = _tokenizer(_template(template))
    common = dict(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    common.update(extra)
    config = getattr(transformers, config_cls)(**common)
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    if hasattr(model, "generation_config") and model.can_generate():
        model.generation_config = GenerationConfig(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    out = root / "trl-internal-testing" / name
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _save_zen(root: Path):
    from datasets import Dataset

    out = root / "trl-internal-testing" / "zen"
    configs = {
        "standard_prompt_only": lambda p, c: {"prompt": p},
        "conversational_prompt_only": lambda p, c: {"prompt": [{"role": "user", "content": p}]},
        "standard_prompt_completion": lambda p, c: {"prompt": p, "completion": c},
        "conversational_prompt_completion": lambda p, c: {
            "prompt": [{"role": "user", "content": p}],
            "completion": [{"role": "assistant", "content": c.strip()}],
        },
        "standard_language_modeling": lambda p, c: {"text": p + c},
        "conversational_language_modeling": lambda p, c: {
            "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": c.strip()}]
        },
    }
    yaml = ["---", "configs:"]
    for cfg, make in configs.items():
        yaml += [f"- config_name: {cfg}", "  data_files:"]
        for split, rows in (("train", ZEN[:N_TRAIN]), ("test", ZEN[N_TRAIN:])):
            path = out / cfg / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            Dataset.from_list([make(p, c) for p, c in rows]).to_parquet(str(path))
            yaml += [f"  - split: {split}", f"    path: {cfg}/{split}.parquet"]
    (out / "README.md").write_text("\n".join(yaml + ["---", "", "Local stand-in for trl-internal-testing/zen.", ""]))


MODELS = [
    ("tiny-Qwen2ForCausalLM-2.5", "Qwen2Config", "Qwen2ForCausalLM", "qwen2_5", {}),
    (
        "tiny-Qwen2ForSequenceClassification-2.5",
        "Qwen2Config",
        "Qwen2ForSequenceClassification",
        "qwen2_5",
        {"num_labels": 1},
    ),
    ("tiny-Qwen3ForCausalLM", "Qwen3Config", "Qwen3ForCausalLM", "qwen3", {"head_dim": 8}),
    (
        "tiny-Qwen3ForSequenceClassification",
        "Qwen3Config",
        "Qwen3ForSequenceClassification",
        "qwen3",
        {"head_dim": 8, "num_labels": 1},
    ),
    (
        "tiny-Qwen3MoeForCausalLM",
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        "qwen3",
        {
            "head_dim": 8,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "output_router_logits": True,
        },
    ),
    (
        "tiny-LlamaForSequenceClassification-3.2",
        "LlamaConfig",
        "LlamaForSequenceClassification",
        "llama3_2",
        {"num_labels": 1},
    ),
]


def main(root: str) -> None:
    root_path = Path(root)
    for name, cfg, cls, template, extra in MODELS:
        _save_model(root_path, name, cfg, cls, template, **extra)
    _save_zen(root_path)
    print(f"stand-ins written under {root_path / 'trl-internal-testing'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/trl-dropin-run")
