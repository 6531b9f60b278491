"""Multi-step addition with a verifier per line: a task where the credit for an error sits on one identifiable line.

"Add 4, 9 and 3." → the model writes one line ``a + b = c`` per step, then ``Answer: N``::

    4 + 9 = 13
    13 + 3 = 16
    Answer: 16

* Outcome (`AnswerCorrect`, a TRL reward function): 1.0 when ``N`` is the true sum, else 0.0.
* Step verifier (`LineVerifier`, a token reward function): every line is a step, checked in Python *locally*: step k
  is right when it reads ``a + b = c`` with ``a`` the previous step's result (the first number for the first step),
  ``b`` the next number and ``c = a + b``; the ``Answer: N`` line is right when ``N`` is the last step's result. So
  an error is charged to the line that makes it, and a line that correctly continues from a wrong value is right.
  Any other line (chatter, a missing or extra step) is wrong.
* Problems come from seeded, separate random streams (`problems`): training draws fresh ones every step; the test
  and out-of-distribution sets are fixed and never trained on.
* Built solutions for PRM training data (`corrupt_solution`, `synthetic_rows`): the reference solution with the
  policy's kinds of error made on chosen lines (`STEP_ERRORS`, `ANSWER_ERRORS`), labelled by `check_lines`.

The prompt is a system line plus a worked example as chat turns (SmolLM2-135M-Instruct otherwise chats instead of
computing; a second example changes little and costs 35 more prompt tokens per completion).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from trl_token_ext.scorers.steps import StepReward, split_steps
from trl_token_ext.text import message_text

SYSTEM = (
    "You are a careful calculator. Add the numbers one at a time: write one line 'a + b = c' per step, "
    "then 'Answer: N'."
)
WORKED_EXAMPLES = ((17, 25, 12),)
STEP_PATTERN = re.compile(r"^\s*(-?\d+)\s*\+\s*(-?\d+)\s*=\s*(-?\d+)\s*\.?\s*$")
ANSWER_PATTERN = re.compile(r"^\s*Answer\s*:\s*(-?\d+)\s*\.?\s*$", re.IGNORECASE)
# Random streams (the seed of ``random.Random``) of each split: disjoint, so no test problem is trained on by design.
# "val" is what learning rates are chosen on; "pilot" what the difficulty was calibrated on.
STREAMS = {
    "train": 1_000,
    "test": 2_000,
    "ood": 3_000,
    "prm_train": 4_000,
    "prm_test": 5_000,
    "val": 6_000,
    "pilot": 7_000,
}


@dataclass(frozen=True)
class Difficulty:
    """How many numbers a problem has and their range (inclusive)."""

    count: int = 3
    low: int = 1
    high: int = 9


# Calibrated on SmolLM2-135M-Instruct (64 problems of the pilot stream, one worked example): at temperature 0.7,
# 59 % correct lines and 12 % correct answers (greedy: 68 % / 27 %). The out-of-distribution set has larger numbers.
IN_DISTRIBUTION = Difficulty(3, 10, 30)
OUT_OF_DISTRIBUTION = Difficulty(3, 31, 99)


def question(numbers: Sequence[int]) -> str:
    listed = ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"
    return f"Add {listed}."


def solution(numbers: Sequence[int]) -> str:
    """The reference solution text (one line per step, then the answer)."""
    lines, total = [], numbers[0]
    for number in numbers[1:]:
        lines.append(f"{total} + {number} = {total + number}")
        total += number
    return "\n".join([*lines, f"Answer: {total}"])


def prompt(numbers: Sequence[int]) -> list[dict[str, str]]:
    """The conversational prompt: system line, the worked example(s) as chat turns, then the question."""
    messages = [{"role": "system", "content": SYSTEM}]
    for example in WORKED_EXAMPLES:
        messages += [
            {"role": "user", "content": question(example)},
            {"role": "assistant", "content": solution(example)},
        ]
    return [*messages, {"role": "user", "content": question(numbers)}]


def problems(split: str, count: int, difficulty: Difficulty = IN_DISTRIBUTION, seed: int = 0) -> list[list[int]]:
    """``count`` problems of ``split`` (a key of ``STREAMS``), from the stream ``STREAMS[split] + seed``."""
    if split not in STREAMS:
        raise ValueError(f"split must be one of {sorted(STREAMS)}, got {split!r}.")
    rng = random.Random(STREAMS[split] + seed)
    return [[rng.randint(difficulty.low, difficulty.high) for _ in range(difficulty.count)] for _ in range(count)]


def columns(numbers: Sequence[Sequence[int]]) -> dict[str, list]:
    """Dataset columns: ``prompt`` (chat messages) and ``numbers``."""
    return {"prompt": [prompt(n) for n in numbers], "numbers": [list(n) for n in numbers]}


def check_lines(lines: Sequence[str], numbers: Sequence[int]) -> list[bool]:
    """Local correctness of each line of a solution of ``numbers`` (see the module docstring)."""
    expected_steps = len(numbers) - 1
    results, previous = [], numbers[0]
    for index, line in enumerate(lines):
        step = STEP_PATTERN.match(line)
        if index < expected_steps and step is not None:
            a, b, c = (int(g) for g in step.groups())
            results.append(a == previous and b == numbers[index + 1] and c == a + b)
            previous = c
            continue
        answer = ANSWER_PATTERN.match(line)
        results.append(index == expected_steps and answer is not None and int(answer.group(1)) == previous)
    return results


def final_answer(text: str) -> int | None:
    """The N of the first ``Answer: N`` line, or None."""
    for step in split_steps(text):
        match = ANSWER_PATTERN.match(step.text)
        if match:
            return int(match.group(1))
    return None


def well_formed(text: str, numbers: Sequence[int]) -> bool:
    """Exactly the expected shape: ``len(numbers) - 1`` step lines then one answer line (values not checked)."""
    lines = [step.text for step in split_steps(text)]
    return (
        len(lines) == len(numbers)
        and all(STEP_PATTERN.match(line) for line in lines[:-1])
        and ANSWER_PATTERN.match(lines[-1]) is not None
    )


class AnswerCorrect:
    """Outcome reward (a TRL reward function): 1.0 when the completion's ``Answer: N`` is the sum of ``numbers``."""

    __name__ = "answer_correct"

    def __call__(self, completions: list, numbers: list, **kwargs: Any) -> list[float]:
        return [float(final_answer(message_text(c)) == sum(n)) for c, n in zip(completions, numbers)]


class LineAccuracy:
    """A sequence-level reward (TRL reward function): the share of correct lines (0 for an empty completion)."""

    __name__ = "line_accuracy"

    def __call__(self, completions: list, numbers: list, **kwargs: Any) -> list[float]:
        scores = []
        for completion, values in zip(completions, numbers):
            checks = check_lines([s.text for s in split_steps(message_text(completion))], values)
            scores.append(sum(checks) / len(checks) if checks else 0.0)
        return scores


class LineVerifier(StepReward):
    """Token reward: each line's verifier score (``correct`` / ``wrong``) placed on its tokens.

    ``shuffle=True`` is the study's control: each completion's line scores are permuted among its lines (same sum,
    wrong place), with a generator seeded per call so that runs repeat.
    """

    default_name = "line_verifier"

    def __init__(
        self,
        placement: str = "last",
        form: str = "raw",
        correct: float = 1.0,
        wrong: float = 0.0,
        shuffle: bool = False,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(placement=placement, form=form, name=name)
        self.correct, self.wrong, self.shuffle = float(correct), float(wrong), shuffle
        self._rng = random.Random(seed)

    def step_scores(self, prompts, steps, kwargs):
        from trl_token_ext.scorers._common import get_column

        numbers = get_column(kwargs, "numbers", self.__name__, len(prompts))
        results = []
        for lines, values in zip(steps, numbers):
            scores = [self.correct if ok else self.wrong for ok in check_lines(lines, values)]
            if self.shuffle:
                self._rng.shuffle(scores)
            results.append(scores)
        return results


def evaluate_texts(texts: Sequence[str], numbers: Sequence[Sequence[int]]) -> dict[str, float]:
    """Held-out measures of completions: answer accuracy, line accuracy, format validity, lines per completion."""
    answers, lines_right, lines_total, formed, counts = 0, 0, 0, 0, 0
    for text, values in zip(texts, numbers):
        lines = [step.text for step in split_steps(text)]
        checks = check_lines(lines, values)
        answers += final_answer(text) == sum(values)
        lines_right += sum(checks)
        lines_total += len(checks)
        formed += well_formed(text, values)
        counts += len(lines)
    n = max(1, len(texts))
    return {
        "answer_accuracy": answers / n,
        "line_accuracy": lines_right / max(1, lines_total),
        "format_valid": formed / n,
        "lines": counts / n,
    }


def stream(difficulty: Difficulty = IN_DISTRIBUTION, seed: int = 0, split: str = "train") -> Iterator[list[int]]:
    """An endless stream of fresh problems (training draws a new one for every prompt)."""
    rng = random.Random(STREAMS[split] + seed)
    while True:
        yield [rng.randint(difficulty.low, difficulty.high) for _ in range(difficulty.count)]


# Error kinds of `corrupt_solution`, after SmolLM2-135M-Instruct's own mistakes on this task (docs/step_prm.md).
STEP_ERRORS = (
    "sum_off_by_one",  # 23 + 23 = 47
    "sum_off_by_ten",  # 23 + 23 = 36
    "sum_digit",  # one digit of the sum changed: 46 -> 43
    "sum_far",  # a sum far off: 11 + 20 = 220
    "first_operand",  # the first operand is not the running total: 22 + 22 = 44 for "Add 20, 22 and 13"
    "second_operand",  # the second operand is not the next number: 46 + 23 = 69 for "Add 23, 23 and 24"
    "not_addition",  # 42 - 22 = 20
)
ANSWER_ERRORS = ("wrong_answer",)  # Answer: N with N not the last line's result


def corrupt_solution(
    numbers: Sequence[int], errors: dict[int, str], rng: random.Random, carry_written: bool = True
) -> list[str]:
    """The lines of `solution` with ``errors`` made: ``{line: kind}``, line 0-based (``len(numbers) - 1`` is the
    answer line, whose only kind is ``"wrong_answer"``; step lines take the kinds of ``STEP_ERRORS``). After a wrong
    line the next step starts from the value written (``carry_written``, so by the verifier it can be right again) or
    from the true running total (then its first operand is wrong too). Labels: ``check_lines(lines, numbers)``."""
    for line, kind in errors.items():
        allowed = ANSWER_ERRORS if line == len(numbers) - 1 else STEP_ERRORS
        if not 0 <= line < len(numbers) or kind not in allowed:
            raise ValueError(f"corrupt_solution: line {line} of a {len(numbers)}-line solution cannot take {kind!r}.")
    lines, written, total = [], numbers[0], numbers[0]
    for index, b in enumerate(numbers[1:]):
        a = written if carry_written else total
        text, written = _step_line(errors.get(index), a, b, numbers, rng)
        lines.append(text)
        total += b
    answer = written if carry_written else total
    if errors.get(len(numbers) - 1) == "wrong_answer":
        answer = _off(answer, rng)
    return [*lines, f"Answer: {answer}"]


def _step_line(kind: str | None, a: int, b: int, numbers: Sequence[int], rng: random.Random) -> tuple[str, int]:
    """One ``a + b = c`` line with ``kind``'s error (None: none) and the value it carries on."""
    c = a + b
    if kind == "sum_off_by_one":
        c += rng.choice((-1, 1))
    elif kind == "sum_off_by_ten":
        c += 10 if c < 20 else rng.choice((-10, 10))
    elif kind == "sum_digit":
        digits = list(str(c))
        position = rng.randrange(len(digits))
        digits[position] = rng.choice([d for d in "0123456789" if d != digits[position] and (position or d != "0")])
        c = int("".join(digits))
    elif kind == "sum_far":
        c = rng.choice([n for n in range(10, 400) if abs(n - c) > 10])
    elif kind == "first_operand":
        a = rng.choice([n for n in (*numbers, a - 10, a + 10, a + 1) if n != a and n > 0])
        c = a + b
    elif kind == "second_operand":
        b = rng.choice([n for n in (*numbers, c, b + 10, b - 10) if n != b and n > 0])
        c = a + b
    elif kind == "not_addition":
        return f"{a} - {b} = {a - b}", a - b
    elif kind is not None:
        raise ValueError(f"corrupt_solution: unknown error kind {kind!r} (one of {STEP_ERRORS + ANSWER_ERRORS}).")
    return f"{a} + {b} = {c}", c


def _off(value: int, rng: random.Random) -> int:
    return value + rng.choice((-10, -1, 1, 10))


def synthetic_rows(
    numbers: Sequence[Sequence[int]], seed: int = 0, step_error: float = 0.5, answer_error: float = 0.1
) -> list[dict]:
    """Stepwise-supervision rows (``prompt`` = the question, ``completions`` = lines, ``labels`` =
    `check_lines`) of built solutions, one per problem: each step line is made wrong with probability
    ``step_error`` (a kind of ``STEP_ERRORS``, uniform), the answer line with ``answer_error``; after a wrong line the
    next one starts from the value written (9 in 10) or from the true total."""
    rng = random.Random(seed)
    rows = []
    for values in numbers:
        answer_line = len(values) - 1
        errors = {line: rng.choice(STEP_ERRORS) for line in range(answer_line) if rng.random() < step_error}
        if rng.random() < answer_error:
            errors[answer_line] = ANSWER_ERRORS[0]
        lines = corrupt_solution(values, errors, rng, carry_written=rng.random() < 0.9)
        rows.append({"prompt": question(values), "completions": lines, "labels": check_lines(lines, values)})
    return rows
