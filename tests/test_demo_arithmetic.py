"""`trl_token_ext.demo.arithmetic`: the multi-step addition task's per-line verifier (`check_lines`, `LineVerifier`,
`AnswerCorrect`, `LineAccuracy`, `evaluate_texts`), its seeded problem streams and its prompt, by hand. (Built
solutions for PRM training data: test_demo_arithmetic_synthetic.py.)"""

import pytest

from trl_token_ext.demo import arithmetic as ar

NUMBERS = [12, 3, 4]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["12 + 3 = 15", "15 + 4 = 19", "Answer: 19"], [True, True, True]),
        (["12 + 3 = 16", "16 + 4 = 20", "Answer: 20"], [False, True, True]),  # the error is charged to its own line
        (["12 + 3 = 15", "15 + 5 = 20", "Answer: 20"], [True, False, True]),  # wrong number added
        (["12 + 3 + 4 = 19", "Answer: 19"], [False, False]),  # three at once; answer too early
        (["12 + 3 = 15", "15 + 4 = 19", "19 + 0 = 19", "Answer: 19"], [True, True, False, False]),  # extra step
        (["Sure! Let me add.", "12 + 3 = 15"], [False, False]),
        (["12 + 3 = 15.", " 15+4=19 ", "answer: 19."], [True, True, True]),  # tolerant of spacing, case, full stop
    ],
)
def test_check_lines_is_local(lines, expected):
    assert ar.check_lines(lines, NUMBERS) == expected


def test_outcome_and_line_accuracy_rewards():
    completions = [
        [{"role": "assistant", "content": "12 + 3 = 15\n15 + 4 = 19\nAnswer: 19"}],
        "12 + 3 = 16\n16 + 4 = 20\nAnswer: 20",
        "",
    ]
    numbers = [NUMBERS] * 3
    assert ar.AnswerCorrect()(completions, numbers) == [1.0, 0.0, 0.0]
    assert ar.LineAccuracy()(completions, numbers) == pytest.approx([1.0, 2 / 3, 0.0])
    measures = ar.evaluate_texts([ar.solution(NUMBERS), "12 + 3 = 15\nAnswer: 15"], numbers[:2])
    assert measures == {"answer_accuracy": 0.5, "line_accuracy": 0.8, "format_valid": 0.5, "lines": 2.5}


def test_line_verifier_scores_each_line_and_shuffle_keeps_the_sum(tiny_tokenizer):
    text = "12 + 3 = 16\n16 + 4 = 20\nAnswer: 20"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    kwargs = dict(prompts=["p"], completions=[text], completion_ids=[ids], processing_class=tiny_tokenizer)
    placed = ar.LineVerifier(placement="last", correct=1.0, wrong=-1.0)(numbers=[NUMBERS], **kwargs)[0]
    assert sorted(v for v in placed if v) == [-1.0, 1.0, 1.0]
    assert placed[-1] == 1.0 and placed[text.index("\n")] == -1.0  # one char per token up to the first newline
    shuffled = [ar.LineVerifier(shuffle=True, seed=s)(numbers=[NUMBERS], **kwargs)[0] for s in range(8)]
    assert all(sum(values) == 2.0 for values in shuffled)
    assert any(values != ar.LineVerifier()(numbers=[NUMBERS], **kwargs)[0] for values in shuffled)


def test_problem_streams_are_seeded_and_disjoint_by_split():
    assert ar.problems("test", 5) == ar.problems("test", 5)
    assert ar.problems("test", 5) != ar.problems("train", 5)
    assert ar.problems("train", 3, seed=1) != ar.problems("train", 3, seed=2)
    assert all(len(p) == 3 and all(10 <= n <= 30 for n in p) for p in ar.problems("test", 20))
    assert all(all(31 <= n <= 99 for n in p) for p in ar.problems("ood", 20, ar.OUT_OF_DISTRIBUTION))
    with pytest.raises(ValueError, match="split"):
        ar.problems("dev", 1)
    messages = ar.prompt([4, 9, 3])
    assert messages[-1] == {"role": "user", "content": "Add 4, 9 and 3."}
    assert messages[1:3] == [
        {"role": "user", "content": "Add 17, 25 and 12."},
        {"role": "assistant", "content": "17 + 25 = 42\n42 + 12 = 54\nAnswer: 54"},
    ]
