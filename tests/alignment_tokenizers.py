"""Offline builders of the three tokenizer kinds people use, for alignment tests and benchmarks.

* byte-level BPE (GPT-2 / Qwen2 / Llama-3 / SmolLM2 style): `trl_token_ext.testing.build_tiny_tokenizer`;
* SentencePiece BPE with byte fallback (Llama-2 / Mistral style): "▁" pieces, <0xXX> byte tokens, leading-space strip;
* WordPiece (BERT style): lower-casing, "##" continuations, [CLS]/[SEP]/[UNK].
"""

from __future__ import annotations

import json

CORPUS = [
    "The movie was wonderful and the acting was great.",
    "I loved this film, a truly beautiful story with good music.",
    "The plot was boring and the ending was terrible.",
    "Dr. Smith paid $3.50 for 2.5 kg of apples, e.g. red ones.",
    "Is this the answer? Yes, it is 42. Don't worry, we're fine.",
    "Café crème, naïve façade.",
]
MIXED_TEXT = "The café was great! 这部电影很好看。 I loved it 😀👍 — naïve, e.g. 3.50 kg. Don't stop."


def byte_level_bpe():
    from trl_token_ext.testing import build_tiny_tokenizer

    return build_tiny_tokenizer()


def sentencepiece_bpe():
    """Llama-2-style fast tokenizer: BPE with byte fallback, Metaspace-like normalizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    draft = Tokenizer(models.BPE(unk_token="<unk>"))
    draft.normalizer = normalizer
    draft.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    state = json.loads(draft.to_str())["model"]
    vocab = dict(specials_vocab := {token: i for i, token in enumerate(specials)})
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token in sorted(state["vocab"], key=state["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizer
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens(list(specials_vocab))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def wordpiece():
    """BERT-style fast tokenizer: lower-cased, accents stripped, "##" continuations."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast

    draft = BertWordPieceTokenizer(lowercase=True)
    draft.train_from_iterator(CORPUS * 3 + ["这部电影很好看。😀"], vocab_size=300)
    return PreTrainedTokenizerFast(
        tokenizer_object=draft._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        cls_token="[CLS]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )


BUILDERS = {"byte_level_bpe": byte_level_bpe, "sentencepiece": sentencepiece_bpe, "wordpiece": wordpiece}
