"""`trl_token_ext.models`: the one loader of scorer checkpoints (`load_scorer_model`, adapter folders) and its one
loading argument (`ScorerModelArgs`), which every model-backed scorer goes through. (4-bit + LoRA: test_models.py,
which needs bitsandbytes; these tests do not.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import trl_token_ext.models as models
from trl_token_ext.models import ScorerModelArgs
from trl_token_ext.scorers import ImplicitPRMQuality, LogProbQuality, TokenClassifierQuality
from trl_token_ext.sentence import SentenceClassifierReward


@pytest.fixture
def loads(monkeypatch):
    """Every from_pretrained of a scorer checkpoint, as (folder, task, kwargs)."""
    seen = []
    real = models._from_pretrained

    def spy(source, task, kwargs, merge):
        seen.append((source, task, dict(kwargs)))
        return real(source, task, kwargs, merge)

    monkeypatch.setattr(models, "_from_pretrained", spy)
    return seen


def test_every_model_backed_scorer_loads_through_load_scorer_model(loads, tiny_model_dir, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification

    classifier_dir = str(tmp_path / "classifier")
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(classifier_dir)
    tiny_tokenizer.save_pretrained(classifier_dir)
    extra = {"attn_implementation": "eager"}
    LogProbQuality(tiny_model_dir, model_init_kwargs={"model_kwargs": extra, "device": "cpu"})
    prm = ImplicitPRMQuality(
        tiny_model_dir,
        ref_model=tiny_model_dir,
        model_init_kwargs=ScorerModelArgs(dtype=torch.float32, model_kwargs=extra),
    )
    TokenClassifierQuality(tiny_model_dir, "LABEL_1", model_init_kwargs={"model_kwargs": extra})
    SentenceClassifierReward(classifier_dir, label=1, model_init_kwargs={"model_kwargs": extra})
    tasks = [task for _, task, _ in loads]
    assert tasks == ["causal-lm", "causal-lm", "causal-lm", "token-classification", "sequence-classification"]
    assert all(kwargs["attn_implementation"] == "eager" for _, _, kwargs in loads)  # ImplicitPRM's model_kwargs too
    assert loads[1][2]["dtype"] == torch.float32 and loads[0][2]["dtype"] == "float32"  # the default
    assert not any(p.requires_grad for p in prm.model.parameters()) and not prm.model.training


def test_adapter_folder_loads_base_plus_adapter_merged_or_kept(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    peft_model.save_pretrained(tmp_path)
    ids = torch.tensor([[1, 2, 3, 4]])
    expected = peft_model(input_ids=ids).logits
    kept = models.load_scorer_model(str(tmp_path), {"device": "cpu"})
    merged = models.load_scorer_model(str(tmp_path), {"device": "cpu"}, merge_adapter=True)
    assert models.has_adapter(kept) and not models.has_adapter(merged)
    torch.testing.assert_close(kept(input_ids=ids).logits, expected)
    torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    with models.adapters_disabled(kept):
        base = kept(input_ids=ids).logits
    torch.testing.assert_close(base, AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits)
    with pytest.raises(TypeError, match="judge: model must be a model id, a path or a model object"):
        models.load_scorer_model(3, owner="judge")


def test_scorer_model_args_is_the_one_loading_argument():
    """Every model-backed scorer takes `model_init_kwargs` and none keeps a loader keyword of its own."""
    import inspect

    from trl_token_ext import (
        EmbeddingConsistency,
        OnlineImplicitPRM,
        StepPRMReward,
        TeacherDistillReward,
    )

    loader_keywords = {field.name for field in dataclasses.fields(ScorerModelArgs)}
    for cls in (
        LogProbQuality,
        ImplicitPRMQuality,
        TokenClassifierQuality,
        TeacherDistillReward,
        OnlineImplicitPRM,
        EmbeddingConsistency,
        StepPRMReward,
        SentenceClassifierReward,
    ):
        parameters = set(inspect.signature(cls.__init__).parameters)
        assert "model_init_kwargs" in parameters and not loader_keywords & parameters, cls.__name__


def test_scorer_model_args_coerce_and_from_model_config():
    from trl import ModelConfig

    assert ScorerModelArgs.coerce(None) == ScorerModelArgs()
    given = ScorerModelArgs(device="cpu")
    assert ScorerModelArgs.coerce(given) is given
    assert ScorerModelArgs.coerce({"dtype": "bfloat16", "load_in_4bit": True}) == ScorerModelArgs(
        dtype="bfloat16", load_in_4bit=True
    )
    with pytest.raises(ValueError, match=r"^judge: unknown model_init_kwargs \['devices'\]; known: \['dtype'"):
        ScorerModelArgs.coerce({"devices": "cpu"}, "judge")
    with pytest.raises(TypeError, match="judge: model_init_kwargs must be a ScorerModelArgs or a dict, got str"):
        ScorerModelArgs.coerce("cpu", "judge")
    config = ModelConfig(model_name_or_path="unused", dtype="bfloat16", attn_implementation="eager")
    args = ScorerModelArgs.from_model_config(config, device="cpu")
    assert (args.dtype, args.device, args.quantization_config) == ("bfloat16", "cpu", None)
    assert args.model_kwargs == {"attn_implementation": "eager", "revision": "main"}
