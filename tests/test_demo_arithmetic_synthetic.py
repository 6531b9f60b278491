"""Built arithmetic solutions for PRM training data: each error kind makes the intended mistake on the intended line,
and the rows carry the verifier's labels."""

from __future__ import annotations

import random

import pytest

from trl_token_ext.demo import arithmetic as ar

NUMBERS = [23, 23, 24]  # 23 + 23 = 46, 46 + 24 = 70, Answer: 70


def parsed(line: str) -> tuple[int, int, int]:
    a, b, c = (int(g) for g in ar.STEP_PATTERN.match(line).groups())
    return a, b, c


def test_no_error_is_the_reference_solution():
    assert ar.corrupt_solution(NUMBERS, {}, random.Random(0)) == ar.solution(NUMBERS).split("\n")


@pytest.mark.parametrize("kind", ar.STEP_ERRORS)
@pytest.mark.parametrize("line", [0, 1])
@pytest.mark.parametrize("seed", range(5))
def test_each_step_error_is_wrong_on_its_line_only_before(kind, line, seed):
    lines = ar.corrupt_solution(NUMBERS, {line: kind}, random.Random(seed))
    labels = ar.check_lines(lines, NUMBERS)
    assert len(lines) == 3 and labels[:line] == [True] * line and labels[line] is False
    previous = 23 if line == 0 else 46
    if kind == "not_addition":  # the verifier's running total stays: the next line, from the difference, is wrong
        assert lines[line] == f"{previous} - {NUMBERS[line + 1]} = {previous - NUMBERS[line + 1]}"
        assert labels[line + 1] is False
        return
    assert labels[line + 1 :] == [True] * (2 - line)  # the later lines carry on from the written value
    a, b, c = parsed(lines[line])
    expected_b = NUMBERS[line + 1]
    if kind.startswith("sum_"):
        assert (a, b) == (previous, expected_b)
        gap = abs(c - (a + b))
        if kind == "sum_off_by_one":
            assert gap == 1
        elif kind == "sum_off_by_ten":
            assert gap == 10
        elif kind == "sum_digit":
            assert len(str(c)) == len(str(a + b))
            assert sum(x != y for x, y in zip(str(c), str(a + b))) == 1
        else:
            assert gap > 10
    elif kind == "first_operand":
        assert a != previous and b == expected_b and c == a + b
    else:
        assert a == previous and b != expected_b and c == a + b


def test_a_wrong_total_carried_on_is_right_by_the_verifier_unless_the_true_total_is_used():
    written = ar.corrupt_solution(NUMBERS, {0: "sum_off_by_ten"}, random.Random(0), carry_written=True)
    true_total = ar.corrupt_solution(NUMBERS, {0: "sum_off_by_ten"}, random.Random(0), carry_written=False)
    first = parsed(written[0])[2]
    assert parsed(written[1])[0] == first and ar.check_lines(written, NUMBERS) == [False, True, True]
    assert parsed(true_total[1])[0] == 46 and true_total[2] == "Answer: 70"
    assert ar.check_lines(true_total, NUMBERS) == [False, False, True]


def test_wrong_answer_and_bad_requests():
    lines = ar.corrupt_solution(NUMBERS, {2: "wrong_answer"}, random.Random(0))
    assert lines[:2] == ["23 + 23 = 46", "46 + 24 = 70"] and lines[2] != "Answer: 70"
    assert ar.check_lines(lines, NUMBERS) == [True, True, False]
    with pytest.raises(ValueError, match="line 2 of a 3-line solution cannot take 'sum_far'"):
        ar.corrupt_solution(NUMBERS, {2: "sum_far"}, random.Random(0))
    with pytest.raises(ValueError, match="line 0 .* cannot take 'wrong_answer'"):
        ar.corrupt_solution(NUMBERS, {0: "wrong_answer"}, random.Random(0))


def test_synthetic_rows_are_labelled_by_the_verifier_and_seeded():
    problems = ar.problems("prm_train", 400, seed=1)
    rows = ar.synthetic_rows(problems, seed=3, step_error=0.6, answer_error=0.1)
    assert rows == ar.synthetic_rows(problems, seed=3, step_error=0.6, answer_error=0.1)
    assert rows != ar.synthetic_rows(problems, seed=4, step_error=0.6, answer_error=0.1)
    assert [row["prompt"] for row in rows] == [ar.question(n) for n in problems]
    for row, numbers in zip(rows, problems):
        assert row["labels"] == ar.check_lines(row["completions"], numbers)
        assert len(row["completions"]) == len(numbers)
    first_line_wrong = sum(not row["labels"][0] for row in rows) / len(rows)
    assert 0.53 < first_line_wrong < 0.67  # step_error 0.6 of 400 (sd 0.025); line 1 is wrong only by its own error
    # the answer line is wrong by its own error (0.1) or after a wrong step 2 carried on from the true total (0.06)
    answer_wrong = sum(not row["labels"][-1] for row in rows) / len(rows)
    assert 0.09 < answer_wrong < 0.23
    assert all(all(row["labels"]) for row in ar.synthetic_rows(problems[:50], step_error=0.0, answer_error=0.0))
    assert all(row["labels"][-1] is False for row in ar.synthetic_rows(problems[:50], step_error=0, answer_error=1))
