"""Calling, validating, padding and weighting token reward functions."""

import math

import numpy as np
import pytest
import torch

from trl_token_ext.token_rewards import (
    check_token_reward_funcs,
    compute_token_rewards,
    masked_stats,
    token_reward_func_name,
    validate_token_rewards,
    weighted_token_rewards,
)

IDS = [[5, 6, 7], [8], [9, 10]]


def test_valid_entries_are_converted_and_none_kept():
    output = [[1, 2, 3], None, torch.tensor([0.5, -0.5], dtype=torch.float64)]
    values = validate_token_rewards(output, "f", IDS)
    torch.testing.assert_close(values[0], torch.tensor([1.0, 2.0, 3.0]))
    assert values[1] is None
    assert values[2].dtype == torch.float32
    torch.testing.assert_close(values[2], torch.tensor([0.5, -0.5]))
    assert validate_token_rewards([np.array([1.0, 2, 3]), [0.0], (1, 2)], "f", IDS)[0].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ([[1, 2, 3], [1]], r"'quality' returned 2 entries, but 3 were expected"),
        ([[1, 2, 3], [1], [1, 2, 3]], r"'quality' returned 3 token rewards for sample 2, whose completion has 2"),
        (
            [[1, 2, 3], [float("nan")], [1, 2]],
            r"'quality' returned a non-finite value \(nan\) for sample 1 at token 0",
        ),
        ([[1, 2, 3], [1], [1, float("inf")]], r"non-finite value \(inf\) for sample 2 at token 1"),
        ([[1, 2, 3], 0.5, [1, 2]], r"'quality' returned float for sample 1"),
        ([[1, 2, 3], "good", [1, 2]], r"'quality' returned str for sample 1"),
        ([[1, 2, 3], [1], [[1, 2]]], r"'quality' returned a 2-D value of shape \(1, 2\) for sample 2"),
        ([[1, 2, 3], [1], ["a", "b"]], r"'quality' returned a non-numeric value for sample 2"),
        (3.0, r"'quality' returned float; expected a list"),
        ({"a": 1}, r"'quality' returned dict"),
    ],
)
def test_bad_outputs_name_function_and_sample(output, message):
    with pytest.raises(ValueError, match=message):
        validate_token_rewards(output, "quality", IDS)


def test_compute_token_rewards_pads_and_passes_kwargs():
    seen = {}

    def first(prompts, completions, completion_ids, processing_class, reference, **kwargs):
        seen.update(prompts=prompts, completions=completions, processing_class=processing_class, reference=reference)
        return [[1.0] * len(ids) for ids in completion_ids]

    def second(completion_ids, **kwargs):
        return [None, [2.0], [3.0, 4.0]]

    batch = compute_token_rewards(
        [first, second],
        ["first", "second"],
        ["p"] * 3,
        ["a", "b", "c"],
        IDS,
        {"processing_class": "tok", "reference": ["r"] * 3},
    )
    assert seen == {
        "prompts": ["p"] * 3,
        "completions": ["a", "b", "c"],
        "processing_class": "tok",
        "reference": ["r"] * 3,
    }
    expected = torch.tensor([[[1.0, 1, 1], [0, 0, 0]], [[1, 0, 0], [2, 0, 0]], [[1, 1, 0], [3, 4, 0]]])  # (B, K, T)
    torch.testing.assert_close(batch.rewards, expected)
    assert batch.present.tolist() == [[True, False], [True, True], [True, True]]


def test_weighted_sum_skips_missing_functions():
    rewards = torch.tensor([[[1.0, 2], [10, 20]], [[3, 4], [99, 99]], [[0, 0], [0, 0]]])
    present = torch.tensor([[True, True], [True, False], [False, False]])
    weighted, has_reward = weighted_token_rewards(rewards, present, torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(weighted, torch.tensor([[6.0, 12], [3, 4], [0, 0]]))
    assert has_reward.tolist() == [True, True, False]


def test_check_token_reward_funcs():
    def f(**kwargs):
        return []

    assert check_token_reward_funcs(None, None) == []
    assert check_token_reward_funcs(f, None) == [f]
    with pytest.raises(ValueError, match=r"token_reward_weights has 2 values but 1 token reward functions.*\['f'\]"):
        check_token_reward_funcs([f], [1.0, 2.0])
    with pytest.raises(TypeError, match=r"token_reward_funcs\[1\].*is not callable"):
        check_token_reward_funcs([f, "repetition"], None)

    async def g(**kwargs):
        return []

    with pytest.raises(TypeError, match="'?g'? is async|\\(g\\) is async"):
        check_token_reward_funcs([g], None)


def test_names_fall_back_to_class_name():
    class Scorer:
        def __call__(self, **kwargs):
            return []

    def plain(**kwargs):
        return []

    assert token_reward_func_name(plain) == "plain"
    assert token_reward_func_name(Scorer()) == "Scorer"


def test_masked_stats():
    mean, std = masked_stats(torch.tensor([[1.0, 3, 100]]), torch.tensor([[1, 1, 0]]))
    assert (mean, std) == pytest.approx((2.0, math.sqrt(2)))
    assert math.isnan(masked_stats(torch.tensor([1.0]), torch.tensor([0]))[0])
