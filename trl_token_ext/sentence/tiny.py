"""Tiny, randomly initialised BERT sequence classifiers with a real WordPiece tokenizer, built offline.

For tests, examples and benchmarks without Hub access; ``from_pretrained(folder)`` loads what these save.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The movie was wonderful and the acting was great.",
    "I loved this film, a truly beautiful story with good music.",
    "The plot was boring and the ending was terrible.",
    "What a bad, awful and dull experience; I hated it.",
    "The food was good, the service was friendly and fast.",
    "Dr. Smith paid $3.50 for 2.5 kg of apples, e.g. red ones.",
    "A cat sat on the mat. The dog ran in the park! Is this the answer? Yes, it is 42.",
    "今天天气很好。我们去公园吧！你来吗？",
]


def build_wordpiece_tokenizer(corpus: list[str] | None = None, vocab_size: int = 400):
    """Train an uncased BERT-style WordPiece tokenizer on ``corpus``; a ``PreTrainedTokenizerFast`` with offsets."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    tokenizer.train_from_iterator(corpus or CORPUS, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
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


def save_tiny_sequence_classifier(path: str | Path, labels: tuple[str, ...] = ("negative", "positive")) -> Path:
    """Build a tiny WordPiece tokenizer + BERT classifier and save both to ``path``."""
    path = Path(path)
    tokenizer = build_wordpiece_tokenizer()
    build_tiny_sequence_classifier(tokenizer, labels=labels).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
