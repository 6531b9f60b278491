"""Step rewards (`trl_token_ext.scorers.steps`), by hand. (The arithmetic task's verifier: test_demo_arithmetic.py.)"""

import pytest

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


@pytest.mark.parametrize("placement", ["sum", "mean"])
def test_special_tokens_take_their_steps_score_with_per_token_placements(tiny_tokenizer, ids, placement):
    """An EOS token has no characters: with a per-token placement it carries the last step's score, so that
    min-form credit is not always the EOS token's 0."""
    eos = tiny_tokenizer.eos_token_id
    scorer = StepReward(lambda prompt, steps: [2.0, -1.0], placement=placement)
    values = call(scorer, tiny_tokenizer, [eos, *ids, eos])
    assert values == pytest.approx([2.0] * 13 + [-1.0] * 10)
    assert call(StepReward(lambda p, s: [2.0, -1.0], placement="last"), tiny_tokenizer, [*ids, eos])[-1] == 0.0
