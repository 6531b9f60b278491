"""benchmarks/prime.py: the steps-to-threshold rule, the token-credit correlation and the credit diagnostics."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import prime  # noqa: E402


def test_steps_to_threshold_is_the_first_full_window_reaching_it():
    curve = [0.9, 0.0, 0.6, 0.75, 0.8, 0.9]
    # windows: (0.9, 0.0, 0.6) 0.5, (0.0, 0.6, 0.75) 0.45, (0.6, 0.75, 0.8) 0.717 -> step 5
    assert prime.steps_to_threshold(curve, 0.7) == 5
    assert prime.steps_to_threshold(curve, 0.8) == 6  # (0.75, 0.8, 0.9) 0.817
    assert prime.steps_to_threshold(curve, 0.82) is None
    assert prime.steps_to_threshold([1.0, 1.0], 0.5) is None  # no full window yet


def test_credit_correlation_centers_each_group():
    target = {7}
    ids = [[7, 1], [1, 1], [7, 7], [1, 7]]  # two groups of two completions
    perfect = [[float(t in target) for t in row] for row in ids]
    assert prime.credit_correlation(perfect, ids, target, group_size=2) == pytest.approx(1.0)
    flipped = [[-v for v in row] for row in perfect]
    assert prime.credit_correlation(flipped, ids, target, group_size=2) == pytest.approx(-1.0)
    # a per-group offset is removed by the centering: still a perfect credit
    shifted = [[v + 5.0 for v in row] for row in perfect[:2]] + perfect[2:]
    assert prime.credit_correlation(shifted, ids, target, group_size=2) == pytest.approx(1.0)
    # the outcome spread over the tokens: by hand, group 1 hits (1,0,0,0) - 1/4 against rewards (1,1,0,0) - 1/2,
    # group 2 hits (1,1,0,1) - 3/4 against (0,0,1,1) - 1/2
    outcome = [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    hit = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25], dtype=torch.float64)
    reward = torch.tensor([0.5, 0.5, -0.5, -0.5, -0.5, -0.5, 0.5, 0.5], dtype=torch.float64)
    expected = float((hit * reward).sum() / (hit.norm() * reward.norm()))
    assert prime.credit_correlation(outcome, ids, target, group_size=2) == pytest.approx(expected)
    assert math.isnan(prime.credit_correlation([[1.0, 1.0]] * 4, ids, target, group_size=2))


def _credit_args(kind: str) -> argparse.Namespace:
    return argparse.Namespace(credit=kind, num_generations=2)


class _Outcome:
    def __init__(self, values):
        self.weighted = torch.tensor(values)


@pytest.mark.parametrize("kind", ["oracle", "noise"])
def test_diagnostic_credits_record_their_token_credit(kind):
    target = {7}
    ids = [[7, 1, 1], [1, 7, 7], [7, 7, 1], [1, 1, 1]]
    credit, outcome_credit = [], []
    func = prime.token_credit(_credit_args(kind), 0, "unused", target, [], credit, outcome_credit)
    rewards = func(completion_ids=ids, outcome_rewards=_Outcome([0.0, 1.0, 1.0, 0.0]))
    assert [len(row) for row in rewards] == [3, 3, 3, 3]
    if kind == "oracle":
        assert rewards == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
        assert credit == [pytest.approx(1.0)]
    else:
        again = prime.token_credit(_credit_args(kind), 0, "unused", target, [], [], [])
        assert again(completion_ids=ids, outcome_rewards=_Outcome([0.0] * 4)) == rewards  # seeded
        assert len(credit) == 1 and abs(credit[0]) < 1.0
    assert outcome_credit == [pytest.approx(prime.credit_correlation([[0.0] * 3, [1.0] * 3, [1.0] * 3, [0.0] * 3],
                                                                     ids, target, 2))]  # fmt: skip


def test_ratio_interval_brackets_the_ratio_and_collapses_when_every_seed_agrees():
    low, high = prime.ratio_interval([5, 10, 15], [10, 20, 30], draws=500)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)  # every resample has ratio 1/2
    low, high = prime.ratio_interval([5, 30, 10, 12], [20, 20, 20, 20], draws=2000)
    assert low < 57 / 80 < high and 5 / 20 <= low and high <= 30 / 20
