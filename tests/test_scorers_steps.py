"""Step rewards (`trl_token_ext.scorers.steps`) and the arithmetic task's verifier, by hand."""

import pytest

from trl_token_ext.demo import arithmetic as ar
from trl_token_ext.scorers.steps import Step, StepReward, apply_step_form, split_steps

# tiny BPE: '1' '2' ' ' '+' ' ' '3' ' ' '=' ' ' '1' '5' '\n' | 'A' 'n' 's' 'w' 'er' ':' ' ' '1' '5'
TEXT = "12 + 3 = 15\nAnswer: 15"


def test_split_steps_tiles_the_text_and_skips_blank_pieces():
    assert split_steps("a\nb") == [Step("a", (0, 2)), Step("b", (2, 3))]
    # leading blank line and spaces go to the first step, a blank line between steps to the one before it
    assert split_steps("\n  a \n\n b\n") == [Step("a", (0, 8)), Step("b", (8, 10))]
    assert split_steps("one. two.", separator=". ") == [Step("one", (0, 5)), Step("two.", (5, 9))]
    assert split_steps(" \n ") == [] and split_steps("") == []
    with pytest.raises(ValueError, match="separator"):
        split_steps("a", separator="")


def test_step_forms_by_hand():
    scores = [0.5, 0.9, 0.2, 0.7]
    assert apply_step_form(scores, "raw") == scores
    assert apply_step_form(scores, "min") == [0.5, 0.5, 0.2, 0.2]
    diff = apply_step_form(scores, "diff")
    assert diff == pytest.approx([0.5, 0.4, -0.7, 0.5]) and sum(diff) == pytest.approx(scores[-1])
    with pytest.raises(ValueError, match="form"):
        apply_step_form(scores, "mean")


@pytest.fixture
def ids(tiny_tokenizer):
    return tiny_tokenizer(TEXT, add_special_tokens=False)["input_ids"]


def call(scorer, tokenizer, ids, **columns):
    return scorer(prompts=["p"], completions=[TEXT], completion_ids=[ids], processing_class=tokenizer, **columns)[0]


@pytest.mark.parametrize(
    ("placement", "first", "second"),
    [
        ("last", [0.0] * 11 + [2.0], [0.0] * 8 + [-1.0]),  # the step's last token: '\n' (12th), then the final '5'
        ("sum", [2.0] * 12, [-1.0] * 9),
        ("even", [2.0 / 12] * 12, [-1.0 / 9] * 9),
    ],
)
def test_step_scores_are_placed_on_the_steps_tokens(tiny_tokenizer, ids, placement, first, second):
    assert len(ids) == 21
    scorer = StepReward(lambda prompt, steps: [2.0, -1.0], placement=placement, name="two")
    assert call(scorer, tiny_tokenizer, ids) == pytest.approx(first + second)


def test_step_reward_passes_columns_and_accepts_none(tiny_tokenizer, ids):
    seen = {}

    def score(prompt, steps, target):
        seen.update(prompt=prompt, steps=steps, target=target)
        return None

    scorer = StepReward(score, columns=["target"])
    assert call(scorer, tiny_tokenizer, ids, target=[7]) is None
    assert seen == {"prompt": "p", "steps": ["12 + 3 = 15", "Answer: 15"], "target": 7}


def test_step_reward_errors_name_the_function_and_sample(tiny_tokenizer, ids):
    with pytest.raises(ValueError, match=r"'?three'?.*sample 0 has 2 steps but 3"):
        call(StepReward(lambda p, s: [1, 1, 1], name="three"), tiny_tokenizer, ids)
    with pytest.raises(ValueError, match="nan.*sample 0|sample 0.*non-finite"):
        call(StepReward(lambda p, s: [1, float("nan")], name="nan"), tiny_tokenizer, ids)
    with pytest.raises(ValueError, match="placement"):
        StepReward(lambda p, s: [], placement="middle")


# ------------------------------------------------------------------ the arithmetic task
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


@pytest.mark.parametrize("placement", ["sum", "mean"])
def test_special_tokens_take_their_steps_score_with_per_token_placements(tiny_tokenizer, ids, placement):
    """An EOS token has no characters: with a per-token placement it carries the last step's score, so that
    min-form credit is not always the EOS token's 0."""
    eos = tiny_tokenizer.eos_token_id
    scorer = StepReward(lambda prompt, steps: [2.0, -1.0], placement=placement)
    values = call(scorer, tiny_tokenizer, [eos, *ids, eos])
    assert values == pytest.approx([2.0] * 13 + [-1.0] * 10)
    assert call(StepReward(lambda p, s: [2.0, -1.0], placement="last"), tiny_tokenizer, [*ids, eos])[-1] == 0.0
