"""Tiny, randomly initialised models and real tokenizers built offline, for tests, examples and benchmarks.

Like ``transformers.testing_utils``, this module is never imported by the library itself. Nothing here touches the
Hub: the builders return objects, and the ``save_*`` helpers write folders that ``from_pretrained(folder)`` loads.

* Causal LMs: a Qwen2-style model sized for a byte-level BPE tokenizer (trained on :data:`CORPUS`) with a pad token
  distinct from EOS, a chat template and offsets.
* Sequence classifiers: a 2-layer BERT with an uncased WordPiece tokenizer whose vocabulary is built directly from
  :data:`CORPUS` + :data:`CJK_CORPUS` (every corpus word is one token; other words fall back to characters).
* A SentencePiece-style (Unigram + Metaspace ``▁``) tokenizer, for the third tokenizer family.

Everything is deterministic: the BPE trainer is (checked by the tests), the WordPiece vocabulary is built by hand
rather than trained (``tokenizers``' WordPiece and Unigram trainers give different vocabularies in different
processes), so is the Unigram one, and model weights are initialised under ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

from pathlib import Path

# The one corpus of the tiny tokenizers (English sentences with abbreviations, decimals and sentence marks).
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
# Added to the WordPiece vocabulary only (the byte-level BPE needs no extra alphabet and its merges stay unchanged).
CJK_CORPUS = ["今天天气很好。我们去公园吧！你来吗？"]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
WORDPIECE_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---------------------------------------------------------------- byte-level BPE + causal LM
def build_tiny_tokenizer(vocab_size: int = 320, corpus: list[str] | None = None):
    """Train a byte-level BPE tokenizer on ``corpus`` and wrap it as a ``PreTrainedTokenizerFast``.

    The tokenizer has a pad token distinct from EOS, a chat template and offsets mapping support.
    """
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(corpus or CORPUS, vocab_size, SPECIAL_TOKENS),
        pad_token="<|pad|>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        additional_special_tokens=["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _train_bpe(corpus: list[str], vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``corpus`` (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


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


# ---------------------------------------------------------------- WordPiece + sequence classifier
def wordpiece_vocab(corpus: list[str]) -> dict[str, int]:
    """Specials, then every character and its ``##`` continuation, then every longer word of ``corpus`` (uncased,
    BERT pre-tokenization), each group sorted: the same ids in every process."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    words = {word for text in corpus for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = sorted({char for word in words for char in word})
    tokens = [*WORDPIECE_SPECIAL_TOKENS, *chars, *(f"##{char}" for char in chars)]
    tokens += sorted(word for word in words if len(word) > 1)
    return {token: index for index, token in enumerate(tokens)}


def build_wordpiece_tokenizer(corpus: list[str] | None = None):
    """An uncased BERT-style WordPiece tokenizer over ``corpus`` (default :data:`CORPUS` + :data:`CJK_CORPUS`);
    a ``PreTrainedTokenizerFast`` with offsets and ``[CLS] ... [SEP]`` post-processing."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = wordpiece_vocab(corpus or CORPUS + CJK_CORPUS)
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def build_unigram_tokenizer(corpus: list[str] | None = None):
    """A SentencePiece-style tokenizer (Unigram model, Metaspace ``▁`` word marks, case kept) over ``corpus``
    (default :data:`CORPUS`): every word and punctuation mark of the corpus is one piece (``▁The``, ``▁movie``,
    ``.``), anything else falls back to single characters. Built by hand, so identical in every process."""
    import re

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces: set[str] = set()
    for text in corpus or CORPUS:
        for word in text.split():
            parts = re.findall(r"\w+|[^\w\s]", word)
            pieces.update(["\u2581" + parts[0], *parts[1:]] if parts else [])
    chars = sorted({char for piece in pieces for char in piece} | {"\u2581"})
    vocab = [("<unk>", 0.0)] + [(char, -10.0) for char in chars]
    vocab += [(piece, -1.0) for piece in sorted(pieces - set(chars))]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=0))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


def build_tiny_sequence_classifier(
    tokenizer, labels: tuple[str, ...] = ("negative", "positive"), hidden_size: int = 32, seed: int = 0
):
    """A randomly initialised 2-layer ``BertForSequenceClassification`` sized for ``tokenizer``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def save_tiny_sequence_classifier(
    path: str | Path, labels: tuple[str, ...] = ("negative", "positive"), seed: int = 0
) -> Path:
    """Build a tiny WordPiece tokenizer + BERT classifier and save both to ``path``."""
    path = Path(path)
    tokenizer = build_wordpiece_tokenizer()
    build_tiny_sequence_classifier(tokenizer, labels=labels, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------- step-level PRMs (the three input formats)
PRM_CORPUS = [*CORPUS, "Add 12, 3 and 4.", "12 + 3 = 15", "15 + 4 = 19", "Answer: 19", "Step 1: ки + -"]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2.5-Math-PRM loads with AutoModel + trust_remote_code; this stand-in module plays its model class.
_REMOTE_PRM_MODULE = (
    "from transformers import Qwen2ForTokenClassification\n\n\n"
    "class TinyProcessRewardModel(Qwen2ForTokenClassification):\n"
    '    """Stand-in for Qwen2ForProcessRewardModel: per-token logits (B, L, 2) first in its output."""\n'
)


def build_math_shepherd_tokenizer():
    """A Llama/Mistral-style SentencePiece tokenizer (Unigram + Metaspace, ``<s>`` prepended) with Math-Shepherd's
    step tag and label pieces (``▁ки``, ``▁+``, ``▁-``)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = build_unigram_tokenizer(PRM_CORPUS).backend_tokenizer
    backend.add_special_tokens(["<s>", "</s>"])
    backend.add_tokens(["\n"])  # SentencePiece's <0x0A> byte piece
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_qwen_prm_tokenizer():
    """A Qwen2-style byte-level BPE (no BOS, ChatML template) with Qwen2.5-Math-PRM's ``<extra_0>`` step token."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = _train_bpe(PRM_CORPUS, 400, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<extra_0>"],
    )
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast


def build_tiny_prm(tokenizer, format: str, seed: int = 0):
    """A random tiny PRM for ``format``: a Qwen2 token classifier with 2 labels (``token_classification``,
    ``qwen_prm``) or, as Math-Shepherd's, a Mistral causal LM (``math_shepherd``; its model type also keeps
    ``AutoTokenizer`` on the SentencePiece-style tokenizer saved beside it)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForTokenClassification

    config_class = MistralConfig if format == "math_shepherd" else Qwen2Config
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
    )
    torch.manual_seed(seed)
    return MistralForCausalLM(config) if format == "math_shepherd" else Qwen2ForTokenClassification(config)


def save_tiny_prm(path: str | Path, format: str, seed: int = 0) -> Path:
    """Save a tiny PRM of ``format`` with its tokenizer (``token_classification``: the tiny BPE; ``math_shepherd``
    and ``qwen_prm``: tokenizers with their real special tokens). The ``qwen_prm`` folder loads as Qwen2.5-Math-PRM
    does, with ``AutoModel.from_pretrained(path, trust_remote_code=True)``."""
    import json

    path = Path(path)
    tokenizer = {
        "token_classification": build_tiny_tokenizer,
        "math_shepherd": build_math_shepherd_tokenizer,
        "qwen_prm": build_qwen_prm_tokenizer,
    }[format]()
    build_tiny_prm(tokenizer, format, seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    if format == "qwen_prm":
        (path / "modeling_tiny_prm.py").write_text(_REMOTE_PRM_MODULE)
        config = json.loads((path / "config.json").read_text())
        config["auto_map"] = {"AutoModel": "modeling_tiny_prm.TinyProcessRewardModel"}
        (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
