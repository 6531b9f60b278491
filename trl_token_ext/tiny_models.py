"""Tiny, randomly initialised causal LMs and tokenizers built offline.

Used by the tests, the benchmarks and the embedded demo: no Hub access is needed. The tokenizer is a real
byte-level BPE (``tokenizers``) trained on a small embedded corpus, so character offsets, chat templates and
decoding behave as with a real checkpoint. The real ``from_pretrained(model_id)`` path stays the default everywhere
else in the package; these builders only produce folders that ``from_pretrained`` then loads.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The movie was wonderful and the acting was great.",
    "I loved this film, a truly beautiful story with good music.",
    "The plot was boring and the ending was terrible.",
    "What a bad, awful and dull experience; I hated it.",
    "The food was good, the service was friendly and fast.",
    "It is a nice day. The sun is bright and the sky is blue.",
    "Dr. Smith paid $3.50 for 2.5 kg of apples, e.g. red ones.",
    "A cat sat on the mat. The dog ran in the park!",
    "Is this the answer? Yes, it is 42.",
    "Write a short review of the movie.",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def build_tiny_tokenizer(vocab_size: int = 320, corpus: list[str] | None = None):
    """Train a byte-level BPE tokenizer on ``corpus`` and wrap it as a ``PreTrainedTokenizerFast``.

    The tokenizer has a pad token distinct from EOS, a chat template and offsets mapping support.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus or CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        additional_special_tokens=["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_causal_lm(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """A randomly initialised Qwen2-style causal LM sized for ``tokenizer`` (a few hundred thousand parameters)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id, eos_token_id=config.eos_token_id, bos_token_id=tokenizer.bos_token_id
    )
    return model


def save_tiny_causal_lm(path: str | Path, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """Build a tiny tokenizer + causal LM and save both to ``path`` (loadable with ``from_pretrained(path)``)."""
    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_causal_lm(tokenizer, hidden_size=hidden_size, num_layers=num_layers, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
