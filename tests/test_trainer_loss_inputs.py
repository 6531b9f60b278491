"""What `_compute_loss` consumes (advantages, old log-probs, masks), compared with the math written out in Python.

The trainers are subclassed in the test (a super()-calling `_compute_loss` that records its inputs); nothing in TRL is
patched. TRL shuffles the generation batch before the loss sees it, so recorded rows are matched back to the
generation order by their (prompt, completion) token ids. The reference below loops over tokens in plain Python,
independently of `trl_token_ext.advantages`.
"""

from __future__ import annotations

import math

import pytest
import torch
from trainer_helpers import grpo_args

from trl_token_ext import TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer

WEIGHTS = [1.0, -2.0]  # two weighted functions, one weight negative
COEF = 0.5


def mod_reward(completion_ids, **kwargs):
    """Token reward 1: token id mod 5."""
    return [[float(t % 5) for t in ids] for ids in completion_ids]


def target_reward(completion_ids, **kwargs):
    """Token reward 2: 1.0 on ids 100-139; None (not scored) for completions containing id 7."""
    return [None if 7 in ids else [float(100 <= t < 140) for t in ids] for ids in completion_ids]


def outcome_length(completion_ids, **kwargs):
    """Outcome reward: number of completion tokens."""
    return [float(len(ids)) for ids in completion_ids]


class Recorder:
    """Records the loss inputs; mixed in front of a token trainer (its `_compute_loss` calls super())."""

    def _compute_loss(self, model, inputs):
        record = {key: value.detach().clone() for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        self.__dict__.setdefault("loss_inputs", []).append(record)
        return super()._compute_loss(model, inputs)


class RecordingGRPO(Recorder, TokenGRPOTrainer):
    pass


class RecordingRLOO(Recorder, TokenRLOOTrainer):
    pass


def std(values: list[float]) -> float:
    """Unbiased std, 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def accumulate(r, v, mode, gamma):
    """Per-token credit of one row's rewards ``r`` over its valid positions ``v``, by ``mode``."""
    length = len(r)
    if mode == "reward_to_go":
        return [sum(gamma ** (j - t) * r[j] for j in range(t, length) if v[j]) if v[t] else 0.0 for t in range(length)]
    if mode == "min":
        return [min(r[j] for j in range(t, length) if v[j]) if v[t] else 0.0 for t in range(length)]
    return [r[t] if v[t] else 0.0 for t in range(length)]


def reference_position_advantages(rows, group_size, *, mode, normalization, gamma, eps, scale, leave_one_out):
    """The length-neutral path: per function, accumulate raw rewards, centre on the group's mean at each position
    (× n/(n−1) with leave-one-out; 0 when alone), divide by the group/batch std, weight, sum; then A_out + λ·A_tok."""
    funcs = [mod_reward, target_reward]
    total = [[0.0] * len(row["ids"]) for row in rows]
    any_scored = [False] * len(rows)
    for func, weight in zip(funcs, WEIGHTS):
        outputs = [func([row["ids"]])[0] for row in rows]
        valid = [[bool(m) and out is not None for m in row["loss_mask"]] for row, out in zip(rows, outputs)]
        credit = [
            accumulate(out or [0.0] * len(row["ids"]), v, mode, gamma) for row, out, v in zip(rows, outputs, valid)
        ]
        centred = [[0.0] * len(c) for c in credit]
        for i in range(len(rows)):
            group = range(i // group_size * group_size, i // group_size * group_size + group_size)
            for t in range(len(credit[i])):
                members = [k for k in group if t < len(credit[k]) and valid[k][t]]
                if valid[i][t] and len(members) > 1:
                    mean = sum(credit[k][t] for k in members) / len(members)
                    factor = len(members) / (len(members) - 1) if leave_one_out else 1.0
                    centred[i][t] = (credit[i][t] - mean) * factor
        if normalization != "none":
            pools = (
                [range(len(rows))]
                if normalization == "batch"
                else [range(g, g + group_size) for g in range(0, len(rows), group_size)]
            )
            for members in pools:
                spread = std([centred[i][t] for i in members for t in range(len(centred[i])) if valid[i][t]])
                for i in members:
                    centred[i] = [c / (spread + eps) for c in centred[i]]
        for i in range(len(rows)):
            any_scored[i] |= outputs[i] is not None
            total[i] = [a + weight * c for a, c in zip(total[i], centred[i])]
    valid = [[bool(m) and any_scored[i] for m in row["loss_mask"]] for i, row in enumerate(rows)]
    total = [[a if ok else 0.0 for a, ok in zip(ta, va)] for ta, va in zip(total, valid)]
    if scale:
        spread = std([a for ta, va in zip(total, valid) for a, ok in zip(ta, va) if ok])
        if spread > 0:
            total = [[a / (spread + eps) for a in ta] for ta in total]
    return [[(row["outcome"] + COEF * a) * m for a, m in zip(ta, row["loss_mask"])] for row, ta in zip(rows, total)]


def reference_advantages(rows, group_size, *, baseline="position", **settings):
    """A_out + λ·A_tok per token for rows {"ids", "loss_mask", "outcome"} in generation order (lists of floats)."""
    if baseline == "position":
        return reference_position_advantages(rows, group_size, **settings)
    return reference_token_mean_advantages(rows, group_size, **settings)


def reference_token_mean_advantages(rows, group_size, *, mode, normalization, gamma, eps, scale, leave_one_out):
    """The pre-0.1.0 path: Σ_k w_k·g_k standardized over the pooled tokens of the group, accumulated, then RLOO's
    position-wise leave-one-out baseline and the optional batch-std scale."""
    funcs = [mod_reward, target_reward]
    rewards, valid = [], []
    for row in rows:
        outputs = [func([row["ids"]])[0] for func in funcs]
        scored = [w for w, out in zip(WEIGHTS, outputs) if out is not None]
        per_token = [
            sum(w * out[t] for w, out in zip(WEIGHTS, outputs) if out is not None) for t in range(len(row["ids"]))
        ]
        rewards.append(per_token)
        valid.append([bool(m) and bool(scored) for m in row["loss_mask"]])
    batches = (
        [range(len(rows))]
        if normalization == "batch"
        else [range(g, g + group_size) for g in range(0, len(rows), group_size)]
    )
    normalized = [[0.0] * len(r) for r in rewards]
    for members in batches:
        values = [rewards[i][t] for i in members for t in range(len(rewards[i])) if valid[i][t]]
        mean, spread = (sum(values) / len(values), std(values)) if values else (0.0, 0.0)
        for i in members:
            for t in range(len(rewards[i])):
                if valid[i][t]:
                    normalized[i][t] = (
                        (rewards[i][t] - mean) / (spread + eps) if normalization != "none" else rewards[i][t]
                    )
    token = [accumulate(r, v, mode, gamma) for r, v in zip(normalized, valid)]
    if leave_one_out:
        baselines = []
        for i in range(len(rows)):
            group = range(i // group_size * group_size, i // group_size * group_size + group_size)
            row_baseline = []
            for t in range(len(token[i])):
                others = [token[k][t] for k in group if k != i and t < len(token[k]) and valid[k][t]]
                row_baseline.append(sum(others) / len(others) if others and valid[i][t] else 0.0)
            baselines.append(row_baseline)
        token = [[a - b for a, b in zip(ta, tb)] for ta, tb in zip(token, baselines)]
    if scale:
        spread = std([a for ta, va in zip(token, valid) for a, ok in zip(ta, va) if ok])
        if spread > 0:
            token = [[a / (spread + eps) for a in ta] for ta in token]
    return [[(row["outcome"] + COEF * a) * m for a, m in zip(ta, row["loss_mask"])] for row, ta in zip(rows, token)]


def match_rows(record, generated):
    """Index into ``generated`` (generation order) of each recorded loss row, by its (prompt, completion) ids."""
    index = {(tuple(g["prompt_ids"]), tuple(g["ids"])): i for i, g in enumerate(generated)}
    assert len(index) == len(generated), "completions must be distinguishable to undo TRL's shuffle"
    order = []
    for b in range(record["completion_ids"].size(0)):
        prompt = record["prompt_ids"][b][record["prompt_mask"][b].bool()].tolist()
        length = int(record["completion_mask"][b].sum())
        order.append(index[(tuple(prompt), tuple(record["completion_ids"][b, :length].tolist()))])
    return order


def initial_policy_logps(model_dir, record):
    """log π_θ0(y_t | x, y_<t) of the recorded completion tokens under the untrained model, (B, T)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.cat([record["prompt_ids"], record["completion_ids"]], dim=1)
    attention = torch.cat([record["prompt_mask"], record["completion_mask"]], dim=1)
    length = record["completion_ids"].size(1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, -length - 1 : -1]
    return logits.log_softmax(-1).gather(-1, record["completion_ids"].unsqueeze(-1)).squeeze(-1)


# Completions of group member j (after a prompt-specific first token): the middle one holds a tool call whose
# result (positions 2-3) is masked out of the loss by `env_mask`.
COMPLETIONS = [[100, 101, 9, 103, 104], [120, 7, 130, 131], [140, 141, 142, 13, 144, 145]]
ENV_MASKS = [[1] * 6, [1, 1, 0, 0, 1], [1] * 7]


def scripted_rollout(prompts, trainer):
    """Deterministic completions with a tool mask (TRL's `rollout_func` with `env_mask`), recorded in order."""
    tokenizer = trainer.processing_class
    output = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": []}
    for i, prompt in enumerate(prompts):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = [200 + len(prompt)] + COMPLETIONS[i % 3]
        output["prompt_ids"].append(prompt_ids)
        output["completion_ids"].append(ids)
        output["logprobs"].append([0.0] * len(ids))
        output["env_mask"].append(ENV_MASKS[i % 3])
        trainer.generated.append({"prompt_ids": prompt_ids, "ids": ids, "loss_mask": ENV_MASKS[i % 3]})
    return output


@pytest.mark.parametrize(
    "settings",
    [
        dict(token_advantage_mode="reward_to_go", token_reward_normalization="group", token_reward_gamma=0.9,
             token_advantage_scale=True),
        dict(token_advantage_mode="min", token_reward_normalization="batch", token_reward_epsilon=0.5),
        dict(token_advantage_mode="immediate", token_reward_normalization="none"),
        dict(token_advantage_baseline="token_mean", token_advantage_mode="reward_to_go",
             token_reward_normalization="group", token_reward_gamma=0.9, token_advantage_scale=True),
        dict(token_advantage_baseline="token_mean", token_advantage_mode="min", token_reward_normalization="batch",
             token_reward_epsilon=0.5),
    ],
)  # fmt: skip
def test_grpo_loss_consumes_the_token_advantages_of_the_math(tiny_model_dir, prompt_dataset, tmp_path, settings):
    trainer = RecordingGRPO(
        model=tiny_model_dir,
        reward_funcs=outcome_length,
        token_reward_funcs=[mod_reward, target_reward],
        args=grpo_args(
            tmp_path,
            max_steps=1,
            num_iterations=2,
            token_reward_weights=WEIGHTS,
            token_advantage_coef=COEF,
            **settings,
        ),
        train_dataset=prompt_dataset,
        rollout_func=scripted_rollout,
    )
    trainer.generated = []
    trainer.train()
    (record,) = trainer.loss_inputs  # one optimizer step, one loss call
    generated = trainer.generated
    assert len(generated) == 6
    for g in generated:  # stock GRPO outcome advantage: lengths [6, 5, 7] → (r − 6) / (1 + 1e-4)
        g["outcome"] = (len(g["ids"]) - 6) / (1 + 1e-4)
    expected = reference_advantages(
        generated,
        3,
        baseline=settings.get("token_advantage_baseline", "position"),
        mode=settings["token_advantage_mode"],
        normalization=settings["token_reward_normalization"],
        gamma=settings.get("token_reward_gamma", 1.0),
        eps=settings.get("token_reward_epsilon", 1e-4),
        scale=settings.get("token_advantage_scale", False),
        leave_one_out=False,
    )
    order = match_rows(record, generated)
    assert sorted(order) == list(range(6))
    advantages = record["advantages"]
    assert advantages.shape == record["completion_ids"].shape
    for b, i in enumerate(order):
        length = len(generated[i]["ids"])
        torch.testing.assert_close(advantages[b, :length], torch.tensor(expected[i]), atol=1e-5, rtol=1e-5)
        assert (advantages[b, length:] == 0).all()
        assert record["tool_mask"][b, :length].tolist() == generated[i]["loss_mask"]
        assert record["completion_mask"][b].tolist() == [1] * length + [0] * (advantages.size(1) - length)
    # the tool result tokens get no advantage at all (not even the outcome part)
    tool_rows = [b for b, i in enumerate(order) if 0 in generated[i]["loss_mask"]]
    assert tool_rows and all((advantages[b, 2:4] == 0).all() for b in tool_rows)
    # num_iterations = 2: old log-probs are computed at generation, by the policy before any update
    mask = record["completion_mask"].bool()
    reference = initial_policy_logps(tiny_model_dir, record)
    torch.testing.assert_close(record["old_per_token_logps"][mask], reference[mask], atol=1e-4, rtol=1e-4)


class RecordingTokenReward:
    """`mod_reward` that also records what it scored (generation order), for trainers that sample completions."""

    __name__ = "mod_reward"

    def __init__(self):
        self.generated = []

    def __call__(self, completion_ids, **kwargs):
        self.generated.extend({"ids": list(ids), "loss_mask": [1] * len(ids)} for ids in completion_ids)
        return mod_reward(completion_ids)


@pytest.mark.parametrize("baseline", ["position", "token_mean"])
def test_rloo_loss_consumes_normalized_reward_to_go_leave_one_out_advantages(
    tiny_model_dir, prompt_dataset, tmp_path, baseline
):
    """Group normalization + reward-to-go + leave-one-out + scale, two weighted functions.

    TRL's RLOOTrainer has no tools and no `rollout_func`, so no tool mask can reach it; completions are sampled.
    """
    recorder = RecordingTokenReward()
    trainer = RecordingRLOO(
        model=tiny_model_dir,
        reward_funcs=outcome_length,
        token_reward_funcs=[recorder, target_reward],
        args=grpo_args(
            tmp_path,
            TokenRLOOConfig,
            max_steps=1,
            beta=0.0,
            token_reward_weights=WEIGHTS,
            token_advantage_coef=COEF,
            token_reward_gamma=0.8,
            token_advantage_scale=True,
            token_advantage_baseline=baseline,
        ),  # fmt: skip
        train_dataset=prompt_dataset,
    )
    trainer.train()
    (record,) = trainer.loss_inputs
    generated = recorder.generated
    assert len(generated) == 6
    for start in (0, 3):  # stock RLOO outcome advantage: r_i − mean of the other two rewards of the group
        lengths = [len(g["ids"]) for g in generated[start : start + 3]]
        for k, g in enumerate(generated[start : start + 3]):
            g["outcome"] = lengths[k] - (sum(lengths) - lengths[k]) / 2
    # recorded rows carry their prompt ids: take them from the record itself (prompts are not recorded by the reward)
    for b in range(6):
        length = int(record["completion_mask"][b].sum())
        ids = record["completion_ids"][b, :length].tolist()
        (i,) = [i for i, g in enumerate(generated) if g["ids"] == ids]
        generated[i]["prompt_ids"] = record["prompt_ids"][b][record["prompt_mask"][b].bool()].tolist()
    expected = reference_advantages(
        generated, 3, baseline=baseline, mode="reward_to_go", normalization="group", gamma=0.8, eps=1e-4, scale=True,
        leave_one_out=True,
    )  # fmt: skip
    order = match_rows(record, generated)
    advantages = record["advantages"]
    assert advantages.dim() == 2 and any(expected[i] for i in order)
    for b, i in enumerate(order):
        length = len(generated[i]["ids"])
        torch.testing.assert_close(advantages[b, :length], torch.tensor(expected[i]), atol=1e-5, rtol=1e-5)
        assert (advantages[b, length:] == 0).all()
    # π_old: the log-probs TRL computed at generation, kept per token (RLOO itself keeps only their masked sum)
    summed = (record["old_per_token_logps"] * record["completion_mask"]).sum(1)
    torch.testing.assert_close(summed, record["old_logps"], rtol=0, atol=0)
