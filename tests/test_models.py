"""4-bit + LoRA loading (trl_token_ext.models) and TokenGRPOTrainer on a 4-bit tiny model (bitsandbytes on CPU)."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("bitsandbytes")

from trl import ModelConfig  # noqa: E402

from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu  # noqa: E402
from trl_token_ext.models import (  # noqa: E402
    ScorerModelArgs,
    SharedBaseModel,
    adapters_disabled,
    linear_module_names,
    load_policy,
    load_scorer_model,
    quantization_config,
)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tiny64_dir(tmp_path_factory):
    """Tiny Qwen2 with hidden size 64 (bnb quantizes its linear layers in 64-value blocks)."""
    from trl_token_ext.testing import save_tiny_causal_lm

    return str(save_tiny_causal_lm(tmp_path_factory.mktemp("tiny64"), hidden_size=64))


def qlora_args(path: str, **overrides) -> ModelConfig:
    values = dict(
        model_name_or_path=path,
        load_in_4bit=True,
        use_bnb_nested_quant=True,
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_target_modules=TARGETS,
    )
    values.update(overrides)
    return ModelConfig(**values)


def four_bit_weights(model) -> dict[str, torch.Tensor]:
    import bitsandbytes as bnb

    return {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if isinstance(module, bnb.nn.Linear4bit)
    }


def test_quantization_config_is_nf4_double_quant_with_compute_dtype():
    config = quantization_config(qlora_args("unused", dtype="float32"))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.float32
    assert quantization_config(ModelConfig(model_name_or_path="unused")) is None


def test_4bit_lora_grpo_trains_adapter_only_and_reference_is_adapter_disabled(tiny64_dir, prompt_dataset, tmp_path):
    import bitsandbytes as bnb
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer
    from trainer_helpers import grpo_args
    from trl.trainer.utils import add_fused_lm_head

    from trl_token_ext import TokenGRPOTrainer

    args = grpo_args(tmp_path, max_steps=2, beta=0.1, learning_rate=5e-2, gradient_checkpointing=True)
    model, peft_config = load_policy(qlora_args(tiny64_dir), args)
    assert model.is_loaded_in_4bit
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit) and layer.weight.dtype == torch.uint8
    assert layer.weight.quant_state.quant_type == "nf4" and layer.weight.quant_state.nested
    assert model.is_gradient_checkpointing
    base_before = four_bit_weights(model)
    assert len(base_before) == 2 * len(TARGETS)

    def length_reward(completions, **kwargs):
        return [float(len(c)) for c in completions]

    def first_half(completion_ids, **kwargs):
        return [[1.0 if t < len(ids) / 2 else -1.0 for t in range(len(ids))] for ids in completion_ids]

    trainer = TokenGRPOTrainer(
        model=model,
        reward_funcs=length_reward,
        token_reward_funcs=[first_half],
        args=args,
        train_dataset=prompt_dataset,
        peft_config=peft_config,
    )
    assert trainer.ref_model is None and isinstance(trainer.model, PeftModel)
    assert "ref" not in trainer.model.peft_config  # no adapter copy: the reference is the adapter-disabled base
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora_before and all("lora_" in n for n in lora_before)

    calls = []
    original = trainer._get_per_token_logps_and_entropies

    def spy(model, input_ids, attention_mask, logits_to_keep, *rest, **kwargs):
        out = original(model, input_ids, attention_mask, logits_to_keep, *rest, **kwargs)
        tuners = [m for m in trainer.model.modules() if isinstance(m, BaseTunerLayer)]
        disabled = all(m.disable_adapters for m in tuners)
        calls.append((disabled, input_ids, attention_mask, logits_to_keep, out[0].detach().clone()))
        return out

    trainer._get_per_token_logps_and_entropies = spy
    trainer.train()

    lora_after = dict(trainer.model.named_parameters())
    changed = [n for n, before in lora_before.items() if not torch.equal(before, lora_after[n].detach())]
    assert any(".lora_B." in n for n in changed) and any(".lora_A." in n for n in changed)
    base_after = four_bit_weights(trainer.model)
    assert base_after.keys() == {f"base_model.model.{n}.base_layer" for n in base_before}
    for name, before in base_before.items():
        after = base_after[f"base_model.model.{name}.base_layer"]
        assert after.dtype == torch.uint8 and torch.equal(before, after), name

    # TRL computed the reference log-probs with every adapter off: they equal a fresh, adapter-free 4-bit copy's.
    ref_calls = [c for c in calls if c[0]]
    assert ref_calls, "no reference log-prob call ran with the adapter disabled"
    fresh, _ = load_policy(qlora_args(tiny64_dir))
    keep_bnb_4bit_trainable_on_cpu(fresh)  # the trainers' 4-bit kernel on CPU (not bitsandbytes' bf16 inference one)
    add_fused_lm_head(fresh, temperature=trainer.temperature, cast_lm_head_to_fp32=args.cast_lm_head_to_fp32)
    _, ids, mask, keep, ref_logps = ref_calls[-1]
    with torch.no_grad():
        expected, _, _ = original(fresh, ids, mask, keep)
    torch.testing.assert_close(ref_logps, expected, atol=1e-4, rtol=1e-4)
    # ... and after a step the adapter-enabled policy differs from that reference.
    with torch.no_grad():
        policy_logps, _, _ = original(trainer.model, ids, mask, keep)
    assert (policy_logps - ref_logps).abs().max() > 1e-3
    kl = [log["kl"] for log in trainer.state.log_history if "kl" in log]
    assert kl and kl[-1] > 0


def test_4bit_without_lora_is_an_error(tiny64_dir):
    with pytest.raises(ValueError, match=r"load_in_4bit=True needs use_peft=True.*can't be trained"):
        load_policy(qlora_args(tiny64_dir, use_peft=False))


def test_4bit_without_bitsandbytes_gives_install_hint(tiny64_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` raise ImportError
    with pytest.raises(ImportError, match=r"needs the bitsandbytes package.*pip install"):
        load_policy(qlora_args(tiny64_dir))


def test_lora_targets_matching_nothing_lists_linear_layers(tiny64_dir):
    with pytest.raises(ValueError, match=r"match no module") as error:
        load_policy(qlora_args(tiny64_dir, load_in_4bit=False, lora_target_modules=["query", "value"]))
    expected = ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert str(expected) in str(error.value)


def test_linear_module_names_see_through_lora(tiny64_dir):
    from peft import LoraConfig, get_peft_model

    model, _ = load_policy(ModelConfig(model_name_or_path=tiny64_dir))
    expected = ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert linear_module_names(model) == expected
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert linear_module_names(peft_model) == expected


def test_shared_base_model_scores_with_the_adapter_disabled(tiny64_dir):
    from peft import LoraConfig, get_peft_model

    base, _ = load_policy(ModelConfig(model_name_or_path=tiny64_dir))
    reference, _ = load_policy(ModelConfig(model_name_or_path=tiny64_dir))
    judge = SharedBaseModel(base)  # what `trl-token grpo` builds for a scorer on the policy's checkpoint
    assert load_scorer_model(judge) is judge  # a model object passes the loader as it is: no second copy
    policy = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    policy.train()
    ids = torch.tensor([[5, 9, 30, 41, 7]])
    with torch.no_grad():
        adapted = policy(input_ids=ids).logits
        expected = reference(input_ids=ids).logits
    scored = judge(input_ids=ids).logits  # the base model object now carries the injected adapter layers
    torch.testing.assert_close(scored, expected)
    assert (adapted - expected).abs().max() > 1e-4
    assert policy.training and not scored.requires_grad
    with torch.no_grad():  # the adapter is back on after scoring
        torch.testing.assert_close(policy(input_ids=ids).logits, adapted)
    with adapters_disabled(policy):
        torch.testing.assert_close(policy(input_ids=ids).logits, expected)


def test_adapters_disabled_turns_off_modules_to_save_copies_and_restores_them(tiny64_dir):
    """A trained copy of the output layer (``modules_to_save``) is part of the adapter: off in the base view,
    back on (with its ``requires_grad``) after it."""
    from peft import LoraConfig, get_peft_model

    base, _ = load_policy(ModelConfig(model_name_or_path=tiny64_dir))
    ids = torch.tensor([[5, 9, 30, 41, 7]])
    with torch.no_grad():
        expected = base(input_ids=ids).logits
    config = LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"])  # LoRA B = 0: only the copy
    policy = get_peft_model(base, config)
    copy = policy.base_model.model.lm_head.modules_to_save["default"]
    with torch.no_grad():
        copy.weight.add_(0.5)
    policy.train()
    with torch.no_grad():
        adapted = policy(input_ids=ids).logits
    assert (adapted - expected).abs().max() > 1e-3
    with adapters_disabled(policy):
        torch.testing.assert_close(policy(input_ids=ids).logits, expected)
    assert policy.training and copy.weight.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(policy(input_ids=ids).logits, adapted)


def test_scorer_model_loads_frozen_in_4bit(tiny64_dir):
    import bitsandbytes as bnb

    scorer = load_scorer_model(
        tiny64_dir,
        ScorerModelArgs.from_model_config(qlora_args(tiny64_dir, use_peft=False)),
        task="sequence-classification",
        num_labels=2,
    )
    assert not isinstance(scorer, SharedBaseModel)
    assert isinstance(scorer.model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    assert scorer.config.num_labels == 2 and not scorer.training
    assert not any(p.requires_grad for p in scorer.parameters())
    with pytest.raises(ValueError, match="task='ranking'"):
        load_scorer_model(tiny64_dir, task="ranking")


def test_scorer_freezing_a_shared_base_leaves_the_policy_trainable(tiny64_dir):
    from peft import LoraConfig, get_peft_model

    base, _ = load_policy(ModelConfig(model_name_or_path=tiny64_dir))
    policy = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"]))
    policy.train()
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    judge = load_scorer_model(SharedBaseModel(base))
    assert isinstance(judge, SharedBaseModel)
    judge.eval()  # what a scorer may do to "its" model: must not reach the policy
    judge.requires_grad_(False)
    for parameter in judge.parameters():
        parameter.requires_grad_(False)
    assert [n for n, p in policy.named_parameters() if p.requires_grad] == trainable and len(trainable) == 4
    assert policy.training and next(judge.parameters()).device.type == "cpu"
