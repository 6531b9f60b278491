"""TeacherDistillReward against log-probs computed by hand; another tokenizer; bound to a trainer's policy."""

from __future__ import annotations

import pickle

import pytest
import torch
from prime_helpers import logps_by_hand
from trainer_helpers import grpo_args, length_reward, max_param_diff, snapshot

from trl_token_ext import TokenGRPOTrainer
from trl_token_ext.scorers import TeacherDistillReward
from trl_token_ext.testing import build_tiny_causal_lm, build_tiny_tokenizer

PROMPTS = ["The movie was", "A cat sat"]
COMPLETIONS = [" good and the music was great.", " on the mat!"]


@pytest.fixture(scope="module")
def teacher(tiny_tokenizer):
    return build_tiny_causal_lm(tiny_tokenizer, seed=1).eval()


@pytest.fixture(scope="module")
def student(tiny_tokenizer):
    return build_tiny_causal_lm(tiny_tokenizer, seed=2).eval()


def completion_ids(tokenizer):
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in COMPLETIONS]


def test_teacher_logprob_per_token_by_hand(teacher, tiny_tokenizer):
    ids = completion_ids(tiny_tokenizer)
    reward = TeacherDistillReward(teacher, tokenizer=tiny_tokenizer)
    got = reward(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=ids, processing_class=tiny_tokenizer)
    for prompt, row, values in zip(PROMPTS, ids, got):
        torch.testing.assert_close(torch.tensor(values), logps_by_hand(teacher, tiny_tokenizer, prompt, row))


def test_teacher_minus_student_by_hand_and_clip(teacher, student, tiny_tokenizer):
    ids = completion_ids(tiny_tokenizer)
    reward = TeacherDistillReward(
        teacher, tokenizer=tiny_tokenizer, subtract_student=True, student=student, clip_min=-6
    )
    got = reward(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=ids, processing_class=tiny_tokenizer)
    for prompt, row, values in zip(PROMPTS, ids, got):
        teacher_logps = logps_by_hand(teacher, tiny_tokenizer, prompt, row).clamp(min=-6)
        expected = teacher_logps - logps_by_hand(student, tiny_tokenizer, prompt, row)
        torch.testing.assert_close(torch.tensor(values), expected)


def test_teacher_with_another_tokenizer_conserves_the_completion_log_likelihood(tiny_tokenizer):
    teacher_tokenizer = build_tiny_tokenizer(vocab_size=270)
    assert teacher_tokenizer.get_vocab() != tiny_tokenizer.get_vocab()
    teacher = build_tiny_causal_lm(teacher_tokenizer, seed=3).eval()
    ids = completion_ids(tiny_tokenizer)
    reward = TeacherDistillReward(teacher, tokenizer=teacher_tokenizer)
    got = reward(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=ids, processing_class=tiny_tokenizer)
    for prompt, text, row, values in zip(PROMPTS, COMPLETIONS, ids, got):
        assert len(values) == len(row)
        teacher_ids = teacher_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(teacher_ids) != len(row)  # really another segmentation
        total = logps_by_hand(teacher, teacher_tokenizer, prompt, teacher_ids).sum()
        assert sum(values) == pytest.approx(total.item(), abs=1e-4)


def test_subtract_student_without_student_or_trainer_names_the_fix(teacher, tiny_tokenizer):
    reward = TeacherDistillReward(teacher, tokenizer=tiny_tokenizer, subtract_student=True)
    with pytest.raises(ValueError, match="teacher_distill.*student"):
        reward(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=completion_ids(tiny_tokenizer))


def test_trainer_binds_its_policy_as_the_student(tiny_model_dir, prompt_dataset, tmp_path, tiny_tokenizer, teacher):
    reward = TeacherDistillReward(teacher, tokenizer=tiny_tokenizer, subtract_student=True)
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[reward],
        args=grpo_args(tmp_path, max_steps=2),
        train_dataset=prompt_dataset,
    )
    assert reward._trainer_model is trainer.accelerator.unwrap_model(trainer.model)
    before = snapshot(trainer.model)
    trainer.train()
    assert max_param_diff(before, snapshot(trainer.model)) > 1e-4
    assert (
        trainer.state.log_history[0]["token_rewards/teacher_distill/mean"] < 0.0
    )  # the policy sampled these tokens: log π_θ > log π_T
    assert pickle.loads(pickle.dumps(reward))._trainer_model is None
