"""OnlineImplicitPRM: implicit rewards, PRIME loss and one update step by hand; labels; trainer, checkpoint, resume."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig
from prime_helpers import logps_by_hand
from trainer_helpers import grpo_args, length_reward

from trl_token_ext import TokenGRPOTrainer
from trl_token_ext.scorers import OnlineImplicitPRM
from trl_token_ext.testing import build_tiny_causal_lm
from trl_token_ext.trainers.records import OutcomeRewards

PROMPTS = ["The movie was", "A cat sat", "It is a"]
COMPLETIONS = [" good and the music was great.", " on the mat!", " nice day."]
BETA = 0.5


def make_prm(tokenizer, **kwargs):
    torch.manual_seed(0)
    model = build_tiny_causal_lm(tokenizer, seed=1)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return OnlineImplicitPRM(
        model, tokenizer=tokenizer, peft_config=lora, beta=BETA, model_init_kwargs={"device": "cpu"}, **kwargs
    )


def ids_of(tokenizer):
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in COMPLETIONS]


def log_ratios_by_hand(prm, tokenizer, grad=False):
    """Per completion: (T,) log π_φ − log π_ref by hand (adapter on / off)."""
    rows = []
    for prompt, ids in zip(PROMPTS, ids_of(tokenizer)):
        policy = logps_by_hand(prm.model, tokenizer, prompt, ids, grad=grad)
        with prm.model.disable_adapter():
            reference = logps_by_hand(prm.model, tokenizer, prompt, ids)
        rows.append(policy - reference)
    return rows


def test_implicit_rewards_by_hand(tiny_tokenizer):
    prm = make_prm(tiny_tokenizer, update="none")
    got = prm(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=ids_of(tiny_tokenizer))
    for values, ratio in zip(got, log_ratios_by_hand(prm, tiny_tokenizer)):
        assert ratio.abs().max() > 1e-3  # the adapter is not the identity
        torch.testing.assert_close(torch.tensor(values), BETA * ratio, atol=1e-6, rtol=1e-5)


def test_prime_loss_and_one_sgd_step_by_hand(tiny_tokenizer):
    prm = make_prm(
        tiny_tokenizer, optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.5), max_grad_norm=None
    )
    labels = torch.tensor([1.0, 0.0, 1.0])
    params = [p for _, p in prm.trainable_parameters()]
    before = [p.detach().clone() for p in params]
    z = torch.stack([BETA * ratio.sum() for ratio in log_ratios_by_hand(prm, tiny_tokenizer, grad=True)])
    loss = -(labels * torch.log(torch.sigmoid(z)) + (1 - labels) * torch.log(1 - torch.sigmoid(z))).mean()
    grads = torch.autograd.grad(loss, params)
    samples, _ = prm.batcher.prepare(PROMPTS, ids_of(tiny_tokenizer), tiny_tokenizer)
    stats = prm.update(samples, labels, prm._pad_id(tiny_tokenizer))
    assert stats["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert stats["accuracy"] == pytest.approx(((z > 0).float() == labels).float().mean().item())
    assert max(g.abs().max() for g in grads) > 1e-4
    for param, old, grad in zip(params, before, grads):
        torch.testing.assert_close(param.detach(), old - 0.5 * grad, atol=1e-6, rtol=1e-5)
    assert prm.num_updates == 1
    frozen = [p for n, p in prm.model.named_parameters() if "lora_" not in n]
    assert frozen and not any(p.requires_grad for p in frozen)


def test_default_optimizer_is_adamw_with_its_own_learning_rate(tiny_tokenizer):
    prm = make_prm(tiny_tokenizer, learning_rate=3e-4, weight_decay=0.1)
    optimizer = prm._get_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == 3e-4 and optimizer.param_groups[0]["weight_decay"] == 0.1


def test_updates_push_the_sequence_reward_towards_the_labels(tiny_tokenizer):
    prm = make_prm(tiny_tokenizer, learning_rate=1e-2)
    samples, _ = prm.batcher.prepare(PROMPTS, ids_of(tiny_tokenizer), tiny_tokenizer)
    labels = torch.tensor([1.0, 0.0, 1.0])
    losses = [prm.update(samples, labels, prm._pad_id(tiny_tokenizer))["loss"] for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0]


def outcome(values, names=("correct",)):
    per_func = torch.tensor(values, dtype=torch.float32).reshape(len(values), -1)
    weighted = per_func.nansum(1).masked_fill(per_func.isnan().all(1), math.nan)
    return OutcomeRewards(per_func=per_func, weighted=weighted, names=list(names))


def test_labels_threshold_continuous_and_errors(tiny_tokenizer):
    prm = make_prm(tiny_tokenizer, label_threshold=0.5)
    labels = prm.labels(outcome([0.2, 0.9, math.nan]))
    torch.testing.assert_close(labels, torch.tensor([0.0, 1.0, math.nan]), equal_nan=True)
    prm.label_threshold = None
    torch.testing.assert_close(prm.labels(outcome([0.25, 1.0])), torch.tensor([0.25, 1.0]))
    with pytest.raises(ValueError, match="completion 1 has outcome 2.0"):
        prm.labels(outcome([0.5, 2.0]))
    prm.label_reward = "missing"
    with pytest.raises(ValueError, match="label_reward='missing'"):
        prm.labels(outcome([0.5]))
    with pytest.raises(ValueError, match="update must be one of"):
        make_prm(tiny_tokenizer, update="sometimes")


def test_score_updates_before_scoring_and_logs(tiny_tokenizer):
    prm = make_prm(tiny_tokenizer, learning_rate=1e-2)
    logged = {}
    ids = ids_of(tiny_tokenizer)
    static = prm.implicit_rewards(*prm.batcher.prepare(PROMPTS, ids, tiny_tokenizer)[:1], 0, [len(i) for i in ids])
    got = prm(
        prompts=PROMPTS,
        completions=COMPLETIONS,
        completion_ids=ids,
        processing_class=tiny_tokenizer,
        outcome_rewards=outcome([1.0, 0.0, 1.0]),
        log_metric=lambda name, value: logged.setdefault(name, value),
    )
    assert prm.num_updates == 1
    assert set(logged) >= {"online_implicit_prm/loss", "online_implicit_prm/accuracy"}
    assert got != static  # scored with the updated adapter
    assert pickle.loads(pickle.dumps(prm))._trainer is None


def prm_state(prm):
    adapter = {n: p.detach().clone() for n, p in prm.trainable_parameters()}
    optimizer = prm._get_optimizer().state_dict()["state"]
    return adapter, {k: v["exp_avg"].clone() for k, v in optimizer.items()}


def test_trainer_updates_checkpoints_and_resumes_the_prm(tiny_model_dir, prompt_dataset, tmp_path, tiny_tokenizer):
    settings = dict(save_strategy="steps", save_steps=2, max_steps=2)

    def run(max_steps, resume=None):
        prm = make_prm(tiny_tokenizer, learning_rate=1e-2, label_threshold=20.0)
        trainer = TokenGRPOTrainer(
            model=tiny_model_dir,
            reward_funcs=length_reward,
            token_reward_funcs=[prm],
            args=grpo_args(tmp_path / "run", **{**settings, "max_steps": max_steps}),
            train_dataset=prompt_dataset,
        )
        return prm, trainer

    prm, trainer = run(2)
    initial = {n: p.detach().clone() for n, p in prm.trainable_parameters()}
    trainer.train()
    assert prm.num_updates == 2
    saved_adapter, saved_optimizer = prm_state(prm)
    assert max((saved_adapter[n] - initial[n]).abs().max() for n in initial) > 1e-4
    folder = tmp_path / "run" / "checkpoint-2" / "token_reward_funcs" / "0"
    assert (folder / "prm_state.pt").is_file() and (folder / "adapter_config.json").is_file()
    assert "online_implicit_prm/loss" in trainer.state.log_history[0]

    resumed, trainer = run(3)
    seen = {}
    original = resumed.update

    def record(*args, **kwargs):
        seen.setdefault("state", prm_state(resumed))
        return original(*args, **kwargs)

    resumed.update = record
    trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    adapter, optimizer = seen["state"]
    for name, value in saved_adapter.items():
        torch.testing.assert_close(adapter[name], value, atol=0, rtol=0)
    for key, value in saved_optimizer.items():
        torch.testing.assert_close(optimizer[key], value, atol=0, rtol=0)
    assert resumed.num_updates == 3


def test_modules_to_save_are_trained_with_the_adapter(tiny_tokenizer):
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"])
    prm = OnlineImplicitPRM(build_tiny_causal_lm(tiny_tokenizer, seed=1), tokenizer=tiny_tokenizer, peft_config=lora)
    names = [name for name, _ in prm.trainable_parameters()]
    assert any("modules_to_save" in name for name in names) and any("lora_" in name for name in names)
    assert all("lora_" in name or "modules_to_save" in name for name in names)


def test_reference_turns_off_modules_to_save_copies(tiny_tokenizer):
    """π_ref is the model before the adapter: a trained copy of the output layer must not be part of it."""
    import copy

    torch.manual_seed(0)
    model = build_tiny_causal_lm(tiny_tokenizer, seed=1)
    original = copy.deepcopy(model)  # π_ref by hand
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"])
    prm = OnlineImplicitPRM(model, tokenizer=tiny_tokenizer, peft_config=lora, beta=BETA, update="none")
    head = dict(prm.trainable_parameters())
    name = next(n for n in head if "modules_to_save" in n)
    with torch.no_grad():  # as if trained: only the output-layer copy differs from π_ref (LoRA B is 0)
        head[name].add_(0.5 * torch.randn_like(head[name]))
    got = prm(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=ids_of(tiny_tokenizer))
    for values, prompt, ids in zip(got, PROMPTS, ids_of(tiny_tokenizer)):
        ratio = logps_by_hand(prm.model, tiny_tokenizer, prompt, ids) - logps_by_hand(
            original, tiny_tokenizer, prompt, ids
        )
        assert ratio.abs().max() > 1e-2  # the copy moved the log-probs (0 if the reference used it too)
        torch.testing.assert_close(torch.tensor(values), BETA * ratio, atol=1e-5, rtol=1e-5)
    assert head[name].requires_grad  # restored after the reference pass
    assert not any(m.disable_adapters for m in prm.model.modules() if type(m).__name__ == "ModulesToSaveWrapper")


def sgd_prm(tiny_tokenizer, **kwargs):
    return make_prm(
        tiny_tokenizer,
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.5),
        max_grad_norm=None,
        **kwargs,
    )


def test_update_epochs_take_several_sgd_steps_on_the_batch(tiny_tokenizer):
    prm = sgd_prm(tiny_tokenizer, update_epochs=2)
    labels = torch.tensor([1.0, 0.0, 1.0])
    params = [p for _, p in prm.trainable_parameters()]
    expected = [p.detach().clone() for p in params]
    losses = []
    reference = make_prm(tiny_tokenizer)  # same initial adapter (seeded), stepped by hand
    ref_params = [p for _, p in reference.trainable_parameters()]
    for _ in range(2):
        z = torch.stack([BETA * r.sum() for r in log_ratios_by_hand(reference, tiny_tokenizer, grad=True)])
        loss = F.binary_cross_entropy_with_logits(z, labels)
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, ref_params)
        with torch.no_grad():
            for param, grad in zip(ref_params, grads):
                param.sub_(0.5 * grad)
    expected = [p.detach() for p in ref_params]
    samples, _ = prm.batcher.prepare(PROMPTS, ids_of(tiny_tokenizer), tiny_tokenizer)
    stats = prm.update(samples, labels, prm._pad_id(tiny_tokenizer))
    assert losses[1] < losses[0]
    assert stats["loss"] == pytest.approx(losses[0], rel=1e-5)  # stats: the first (pre-update) pass
    for param, value in zip(params, expected):
        torch.testing.assert_close(param.detach(), value, atol=1e-6, rtol=1e-5)
    assert prm.num_updates == 2
    with pytest.raises(ValueError, match="update_epochs"):
        make_prm(tiny_tokenizer, update_epochs=0)


def test_logit_bias_is_learned_and_not_part_of_the_token_reward(tiny_tokenizer, tmp_path):
    prm = sgd_prm(tiny_tokenizer, logit_bias=True)
    labels = torch.tensor([1.0, 0.0, 0.0])
    z = torch.stack([BETA * r.sum() for r in log_ratios_by_hand(prm, tiny_tokenizer)])  # b = 0 at first
    samples, _ = prm.batcher.prepare(PROMPTS, ids_of(tiny_tokenizer), tiny_tokenizer)
    prm.update(samples, labels, prm._pad_id(tiny_tokenizer))
    # dL/db = mean_i (σ(z_i) − l_i), one SGD step of lr 0.5 from b = 0
    expected = -0.5 * (torch.sigmoid(z) - labels).mean()
    assert abs(expected.item()) > 0.05
    torch.testing.assert_close(prm.logit_bias.detach(), expected, atol=1e-6, rtol=1e-5)
    assert [n for n, _ in prm.trainable_parameters()][-1] == "logit_bias"
    got = prm.implicit_rewards(samples, prm._pad_id(tiny_tokenizer), [len(i) for i in ids_of(tiny_tokenizer)])
    for values, ratio in zip(got, log_ratios_by_hand(prm, tiny_tokenizer)):  # r_t = β·log-ratio, without b
        torch.testing.assert_close(torch.tensor(values), BETA * ratio, atol=1e-6, rtol=1e-5)
    prm.save_checkpoint(str(tmp_path))
    restored = sgd_prm(tiny_tokenizer, logit_bias=True)
    restored.load_checkpoint(str(tmp_path))
    torch.testing.assert_close(restored.logit_bias.detach(), prm.logit_bias.detach(), atol=0, rtol=0)
