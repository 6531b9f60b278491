"""Calling, validating, padding and weighting token reward functions."""

import math

import numpy as np
import pytest
import torch
from trainer_helpers import LOWEST

from trl_token_ext.token_rewards import (
    check_token_advantages,
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


def test_too_short_token_reward_list_is_rejected():
    with pytest.raises(ValueError, match="'short' returned 2 token rewards for sample 1, whose completion has 3"):
        validate_token_rewards([[1.0], [1.0, 2.0]], "short", [[5], [5, 6, 7]])


def test_masked_stats_of_one_valid_token_has_nan_std():
    mean, std = masked_stats(torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 0]]))
    assert mean == 2.0 and math.isnan(std)
    mean, std = masked_stats(torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 1]]))
    assert (mean, std) == (3.5, pytest.approx(math.sqrt(4.5)))


def test_negative_weights_are_applied_with_their_sign():
    rewards = torch.tensor(
        [[[1.0, 2], [10, 20]], [[3, 4], [30, 40]], [[5, 6], [50, 60]]]  # (B=3, K=2, T=2)
    )
    present = torch.tensor([[True, True], [False, True], [False, False]])
    weighted, has_reward = weighted_token_rewards(rewards, present, torch.tensor([-1.0, 0.5]))
    torch.testing.assert_close(weighted, torch.tensor([[-1 + 5.0, -2 + 10.0], [15.0, 20], [0, 0]]))
    assert has_reward.tolist() == [True, True, False]


def test_entries_without_a_length_are_rejected_even_if_iterable():
    entries = (x for x in [1.0, 2.0])
    with pytest.raises(ValueError, match="'gen' returned generator for sample 0; expected a per-token list of 2"):
        validate_token_rewards([entries], "gen", [[5, 6]])


def test_compute_token_rewards_of_no_completions_and_errors_name_the_function():
    def none_reward(completion_ids, **kwargs):
        return [None] * len(completion_ids)

    batch = compute_token_rewards([none_reward], ["none_reward"], [], [], [], {})
    assert batch.rewards.shape == (0, 1, 0) and batch.present.dtype == torch.bool
    batch = compute_token_rewards([none_reward], ["none_reward"], ["p"], ["c"], [[7, 8]], {})
    assert batch.present.dtype == torch.bool and batch.present.tolist() == [[False]]
    with pytest.raises(ValueError, match="Token reward function 'bad' returned 1 token rewards for sample 0"):
        compute_token_rewards([lambda **kwargs: [[1.0]]], ["bad"], ["p"], ["c"], [[7, 8]], {})


def test_weights_of_another_dtype_are_cast_to_the_rewards():
    weighted, _ = weighted_token_rewards(
        torch.ones(1, 2, 2), torch.ones(1, 2, dtype=torch.bool), torch.tensor([0.5, 2.0], dtype=torch.float64)
    )
    assert weighted.dtype == torch.float32 and weighted.tolist() == [[2.5, 2.5]]


def test_check_token_reward_funcs_accepts_any_iterable_and_rejects_async_callables():
    def f(**kwargs):
        return []

    assert check_token_reward_funcs(iter([f]), None) == [f]

    class AsyncScorer:
        async def __call__(self, **kwargs):
            return []

    with pytest.raises(TypeError, match=r"token_reward_funcs\[1\] \(AsyncScorer\) is async; .* must be synchronous\."):
        check_token_reward_funcs([f, AsyncScorer()], None)
    with pytest.raises(TypeError, match="is called like a TRL reward function and returns one per-token list per"):
        check_token_reward_funcs([3], None)


def test_logged_stats_of_float32_extremes_are_finite():
    mean, std = masked_stats(torch.tensor([LOWEST, 0.0, 0.0, 0.0]), torch.ones(4))
    assert mean == pytest.approx(float(LOWEST) / 4) and std == pytest.approx(-float(LOWEST) / 2)  # sqrt(3/4·L²/3)


def test_advantage_check_names_function_sample_and_token():
    rewards = torch.zeros(4, 2, 3)
    rewards[2, 1, 1] = LOWEST
    rewards[0, 0, 0] = 5.0
    present = torch.ones(4, 2, dtype=torch.bool)
    valid = torch.ones(4, 3)
    weights = torch.tensor([1.0, 0.5])
    advantages = torch.zeros(4, 3)
    check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)  # fine
    advantages[2, 1] = LOWEST / 2
    with pytest.raises(
        ValueError, match=r"sample\(s\) \[2\].*'masked' \(sample 2, token 1: -3\.403e\+38, weight 0\.5"
    ):
        check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)
    advantages[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"not finite or too large .*sample\(s\) \[2\]"):
        check_token_advantages(advantages, valid, rewards, present, weights, ["quality", "masked"], 1.0)
    check_token_advantages(advantages, valid * 0, rewards, present, weights, ["quality", "masked"], 1.0)  # masked


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8, torch.int32, torch.int64])
def test_integer_token_rewards_are_accepted(dtype):
    (values,) = validate_token_rewards([torch.tensor([1, 0, 2], dtype=dtype)], "f", [[5, 6, 7]])
    assert values.dtype == torch.float32 and values.tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    "entry", [torch.tensor([True, False]), [True, False], torch.tensor([1j, 2j])], ids=["bool", "bools", "complex"]
)
def test_bool_or_complex_token_rewards_name_the_dtype(entry):
    with pytest.raises(ValueError, match=r"'f' returned dtype torch\.(bool|complex64) for sample 1; .*real numbers"):
        validate_token_rewards([[0.0, 1.0], entry], "f", [[5, 6], [7, 8]])


def test_weighted_sum_overflowing_float32_names_both_functions():
    from trl_token_ext.advantages import token_advantages
    from trl_token_ext.token_rewards import weighted_token_rewards

    rewards = torch.zeros(2, 2, 3)
    rewards[1, :, 0] = LOWEST  # each value is finite; their sum is not
    present, weights, mask = torch.ones(2, 2, dtype=torch.bool), torch.tensor([1.0, 1.0]), torch.ones(2, 3)
    weighted, _ = weighted_token_rewards(rewards, present, weights)
    advantages = token_advantages(weighted, mask, group_size=2)
    with pytest.raises(
        ValueError, match=r"'f' \(sample 1, token 0: -3\.403e\+38, weight 1\), 'g' \(sample 1, token 0"
    ):
        check_token_advantages(advantages, mask, rewards, present, weights, ["f", "g"], 1.0)
