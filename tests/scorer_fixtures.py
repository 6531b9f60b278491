"""Small deterministic stand-ins for judge models, so scorer tests can use hand-computed expected values."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
from torch import nn


@functools.cache
def policy_tokenizer():
    """The tiny byte-level BPE tokenizer (vocab 320) used as the policy's processing_class."""
    from trl_token_ext.testing import build_tiny_tokenizer

    return build_tiny_tokenizer()


@functools.cache
def char_tokenizer():
    """Same family with vocab 262 = 256 bytes + 6 specials: no merges, one token per ASCII character."""
    from trl_token_ext.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(vocab_size=262)


@functools.cache
def coarse_tokenizer():
    """Same family with more merges (450 ids): " wonderful" is one token where the policy has five."""
    from trl_token_ext.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(vocab_size=500)


class BigramLM(nn.Module):
    """logits[b, i] = table[input_ids[b, i]]: p(next | prefix) depends only on the last token."""

    def __init__(self, table: torch.Tensor, max_position_embeddings: int | None = None):
        super().__init__()
        self.table = nn.Parameter(table.clone().float())
        self.config = SimpleNamespace(max_position_embeddings=max_position_embeddings)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.table[input_ids])


def successor_bigram(vocab_size: int, boost: float = 3.0) -> BigramLM:
    """p(a+1 | a) = boost / (V − 1 + boost); every other next token 1 / (V − 1 + boost)."""
    table = torch.zeros(vocab_size, vocab_size)
    index = torch.arange(vocab_size - 1)
    table[index, index + 1] = torch.log(torch.tensor(boost))
    return BigramLM(table)


class CharRuleTagger(nn.Module):
    """Token classifier over ``char_tokenizer()``: logit of "VOWEL" is 1.0 on a vowel character, else 0.0."""

    def __init__(self, tokenizer):
        super().__init__()
        vowel = torch.zeros(len(tokenizer))
        for token_id in range(len(tokenizer)):
            if tokenizer.decode([token_id]).lower() in ("a", "e", "i", "o", "u"):
                vowel[token_id] = 1.0
        self.vowel = nn.Parameter(vowel)
        self.config = SimpleNamespace(id2label={0: "OTHER", 1: "VOWEL"}, max_position_embeddings=512)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        tagged = self.vowel[input_ids]
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(tagged), tagged], dim=-1))


def encode(text: str) -> list[int]:
    return policy_tokenizer()(text, add_special_tokens=False)["input_ids"]


def call(scorer, completion_ids, prompts=None, processing_class=None, **kwargs):
    """Call a scorer like the trainer does (string completions decoded from the ids)."""
    tokenizer = processing_class or policy_tokenizer()
    completions = [tokenizer.decode(ids, skip_special_tokens=True) for ids in completion_ids]
    prompts = prompts if prompts is not None else ["Review:"] * len(completion_ids)
    return scorer(
        prompts=prompts, completions=completions, completion_ids=completion_ids, processing_class=tokenizer, **kwargs
    )
