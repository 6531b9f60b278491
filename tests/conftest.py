"""Shared fixtures: tiny random models and tokenizers built offline (no Hub access exists in CI)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)  # tiny models on 2 shared cores: one thread is several times faster than two


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder with a tiny random Qwen2 causal LM and a byte-level BPE tokenizer (pad != eos, chat template)."""
    from trl_token_ext.testing import save_tiny_causal_lm

    return str(save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm")))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def prompt_dataset():
    from datasets import Dataset

    prompts = ["The movie was", "I loved this", "The food was", "A cat sat", "It is a", "What a bad"]
    return Dataset.from_dict({"prompt": prompts * 4, "reference": ["the movie was good"] * 24})


@pytest.fixture
def conversational_dataset():
    from datasets import Dataset

    prompts = [[{"role": "user", "content": text}] for text in ["Write a review.", "Describe the food.", "Say hi."]]
    return Dataset.from_dict({"prompt": prompts * 4})
