"""`StepPRMReward` on the three PRM input formats, against each format's reference usage code, by hand.

The expected step scores are computed in this file the way each PRM's own usage code computes them, from the input
string written out literally (TRL's ``PRMTrainer.tokenize_row``; Math-Shepherd's and Qwen2.5-Math-PRM's model-card
snippets), on tiny random models whose tokenizers have the real special tokens. The expected token vectors place
those scores on policy tokens listed by hand.
"""

from __future__ import annotations

import functools

import pytest
import torch

from trl_token_ext.scorers.step_prm import StepPRMReward
from trl_token_ext.step_prm.inputs import (
    PRMInput,
    StepEncodingError,
    label_token_ids,
    math_shepherd_input,
    qwen_prm_input,
    token_classification_input,
)
from trl_token_ext.testing import (
    build_math_shepherd_tokenizer,
    build_qwen_prm_tokenizer,
    build_tiny_prm,
    build_tiny_tokenizer,
    build_wordpiece_tokenizer,
    save_tiny_prm,
)

QUESTION = "Add 12, 3 and 4."
PROMPT = [{"role": "system", "content": "Be careful."}, {"role": "user", "content": QUESTION}]
FORMATS = ("token_classification", "math_shepherd", "qwen_prm")

# Policy completions (tiny byte-level BPE) and their tokens, by hand:
# '1' '2' ' ' '+' ' ' '3' ' ' '=' ' ' '1' '5' '\n' | 'A' 'n' 's' 'w' 'er' ':' ' ' '1' '5'
TWO_STEPS = "12 + 3 = 15\nAnswer: 15"
EMPTY_STEP = "12 + 3 = 15\n\nAnswer: 15"  # the same with a second '\n' (index 12): the blank line joins step 1
ONE_STEP = "Answer: 19"  # 'A' 'n' 's' 'w' 'er' ':' ' ' '1' '9'
TRUNCATED = "12 + 3 = 15\nAnsw"  # cut inside the answer line: 'A' 'n' 's' 'w'
STEPS = {
    TWO_STEPS: ["12 + 3 = 15", "Answer: 15"],
    EMPTY_STEP: ["12 + 3 = 15", "Answer: 15"],
    ONE_STEP: ["Answer: 19"],
    TRUNCATED: ["12 + 3 = 15", "Answ"],
}
LAST_TOKENS = {TWO_STEPS: [11, 20], EMPTY_STEP: [12, 21], ONE_STEP: [8], TRUNCATED: [11, 15]}
LENGTHS = {TWO_STEPS: 21, EMPTY_STEP: 22, ONE_STEP: 9, TRUNCATED: 16}


# ------------------------------------------------------------------ each format's reference, written from its source
def trl_reference(model, tokenizer, prompt: str, steps: list[str], separator: str = "\n") -> list[float]:
    """TRL's PRMTrainer.tokenize_row (label at the last token of step + separator), then P(label 1) there."""
    ids = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    positions = []
    for step in steps:
        ids += tokenizer(step, add_special_tokens=False)["input_ids"] + tokenizer.encode(
            separator, add_special_tokens=False
        )
        positions.append(len(ids) - 1)
    logits = model(input_ids=torch.tensor([ids])).logits[0]
    return logits.softmax(-1)[positions, 1].tolist()


def shepherd_reference(model, tokenizer, question: str, output: str) -> list[float]:
    """Math-Shepherd's model card: f"{question} {output}", P("+") among ("+", "-") at every step tag id."""
    candidate_tokens = tokenizer.encode("+ -")[1:]
    step_tag_id = tokenizer.encode("ки")[-1]
    input_id = torch.tensor([tokenizer.encode(f"{question} {output}")])
    logits = model(input_id).logits[:, :, candidate_tokens]
    return logits.softmax(dim=-1)[:, :, 0][input_id == step_tag_id].tolist()


def qwen_reference(model, tokenizer, question: str, steps: list[str]) -> list[float]:
    """Qwen2.5-Math-PRM's model card: steps joined by <extra_0> (one after the last), P(class 1) at each."""
    messages = [
        {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tokenizer.encode(text, return_tensors="pt")
    logits = model(input_ids=input_ids)[0]
    mask = input_ids == tokenizer.encode("<extra_0>")[0]
    return logits.softmax(-1)[mask][:, 1].tolist()


@functools.cache
def prm(format: str):
    tokenizer = {
        "token_classification": build_tiny_tokenizer,
        "math_shepherd": build_math_shepherd_tokenizer,
        "qwen_prm": build_qwen_prm_tokenizer,
    }[format]()
    return build_tiny_prm(tokenizer, format, seed=3).eval(), tokenizer


def reference_scores(format: str, steps: list[str], model=None, tokenizer=None) -> list[float]:
    if model is None:
        model, tokenizer = prm(format)
    with torch.no_grad():
        if format == "token_classification":
            return trl_reference(model, tokenizer, QUESTION, steps)
        if format == "math_shepherd":
            return shepherd_reference(model, tokenizer, QUESTION, "\n".join(f"{step} ки" for step in steps))
        return qwen_reference(model, tokenizer, QUESTION, steps)


def scorer(format: str, **options) -> StepPRMReward:
    model, tokenizer = prm(format)
    return StepPRMReward(model, format, tokenizer, model_init_kwargs={"device": "cpu"}, **options)


def call(reward, texts, policy, prompts=None, **columns):
    ids = [policy(text, add_special_tokens=False)["input_ids"] for text in texts]
    prompts = prompts or [PROMPT] * len(texts)
    return reward(prompts=prompts, completions=texts, completion_ids=ids, processing_class=policy, **columns)


def placed(text: str, scores: list[float]) -> list[float]:
    expected = [0.0] * LENGTHS[text]
    for index, score in zip(LAST_TOKENS[text], scores):
        expected[index] = score
    return expected


# ------------------------------------------------------------------ the formats' inputs, literally
def test_token_classification_input_is_trls_tokenize_row(tiny_tokenizer):
    encode = functools.partial(tiny_tokenizer.encode, add_special_tokens=False)
    built = token_classification_input(tiny_tokenizer, "Hi", ["a b", "c"], "\n")
    first = [tiny_tokenizer.bos_token_id, *encode("Hi"), *encode("a b"), *encode("\n")]
    assert built.ids == [*first, *encode("c"), *encode("\n")]
    assert built.positions == [len(first) - 1, len(built.ids) - 1]
    wordpiece = build_wordpiece_tokenizer()  # no BOS; "\n" encodes to nothing: the label sits on the step's last token
    built = token_classification_input(wordpiece, "is", ["the movie", "was"], "\n")
    assert wordpiece.convert_ids_to_tokens(built.ids) == ["is", "the", "movie", "was"]
    assert built.positions == [2, 3]
    with pytest.raises(StepEncodingError, match="step 1 .* encode to no token") as caught:
        token_classification_input(wordpiece, "is", ["the", "\x00"], "\n")
    assert caught.value.step == 1


def test_math_shepherd_and_qwen_inputs_read_the_tags():
    _, shepherd = prm("math_shepherd")
    built = math_shepherd_input(shepherd, QUESTION, ["12 + 3 = 15", "Answer: 15"])
    assert built.ids == shepherd.encode(f"{QUESTION} 12 + 3 = 15 ки\nAnswer: 15 ки")
    tag = shepherd.encode("ки")[-1]
    assert built.positions == [i for i, t in enumerate(built.ids) if t == tag]
    assert label_token_ids(shepherd) == tuple(shepherd.encode("+ -")[1:])
    _, qwen = prm("qwen_prm")
    built = qwen_prm_input(qwen, QUESTION, ["12 + 3 = 15", "Answer: 15"])
    separator = qwen.convert_tokens_to_ids("<extra_0>")
    assert built.positions == [i for i, t in enumerate(built.ids) if t == separator]
    assert qwen.decode(built.ids).endswith("Answer: 15<extra_0><|im_end|>\n")


def test_truncate_left_shifts_positions_and_drops_cut_ones():
    sample = PRMInput(list(range(10)), [3, 9])
    assert sample.truncate_left(None) == (sample, 0)
    assert sample.truncate_left(8) == (PRMInput(list(range(2, 10)), [1, 7]), 2)
    assert sample.truncate_left(5) == (PRMInput(list(range(5, 10)), [4]), 5)


# ------------------------------------------------------------------ scores and placement, per format
@pytest.mark.parametrize("format", FORMATS)
def test_step_scores_match_the_reference_and_land_on_each_steps_last_token(format, tiny_tokenizer):
    texts = [TWO_STEPS, ONE_STEP, EMPTY_STEP, TRUNCATED]  # one batch: padded to the longest, sorted by length
    results = call(scorer(format), texts, tiny_tokenizer)
    for text, result in zip(texts, results):
        expected = reference_scores(format, STEPS[text])
        assert len(expected) == len(STEPS[text])
        assert result == pytest.approx(placed(text, expected), abs=1e-5), (format, text)
    two, _, empty, truncated = (reference_scores(format, STEPS[t]) for t in texts)
    assert empty == pytest.approx(two)  # a blank line is not a step: the PRM sees the same two steps
    assert truncated[0] == pytest.approx(two[0]) and truncated[1] != pytest.approx(two[1], abs=1e-6)
    assert len(set(round(v, 6) for v in two)) == 2  # the two steps' scores differ: a swap would show


@pytest.mark.parametrize("format", FORMATS)
def test_a_token_spanning_the_separator_carries_both_steps(format):
    policy = build_tiny_tokenizer()
    policy.add_tokens(["15\nAn"])  # '1' '2' ' ' '+' ' ' '3' ' ' '=' ' ' '15\nAn' 's' 'w' 'er' ':' ' ' '1' '5'
    first, second = reference_scores(format, STEPS[TWO_STEPS])
    last = call(scorer(format), [TWO_STEPS], policy)[0]
    assert last == pytest.approx([0.0] * 9 + [first] + [0.0] * 6 + [second], abs=1e-5)
    even = call(scorer(format, placement="even"), [TWO_STEPS], policy)[0]
    expected = [first / 10] * 9 + [first / 10 + second / 8] + [second / 8] * 7  # 10 tokens meet step 1, 8 step 2
    assert even == pytest.approx(expected, abs=1e-5)


def test_forms_apply_to_the_prm_scores(tiny_tokenizer):
    first, second = reference_scores("qwen_prm", STEPS[TWO_STEPS])
    diff = call(scorer("qwen_prm", form="diff"), [TWO_STEPS], tiny_tokenizer)[0]
    assert diff == pytest.approx(placed(TWO_STEPS, [first, second - first]), abs=1e-5)
    low = call(scorer("qwen_prm", form="min"), [TWO_STEPS], tiny_tokenizer)[0]
    assert low == pytest.approx(placed(TWO_STEPS, [first, min(first, second)]), abs=1e-5)


def test_question_column_and_string_prompts(tiny_tokenizer):
    expected = placed(TWO_STEPS, reference_scores("token_classification", STEPS[TWO_STEPS]))
    reward = scorer("token_classification", question_column="problem")
    by_column = call(reward, [TWO_STEPS], tiny_tokenizer, prompts=["ignored"], problem=[QUESTION])[0]
    assert by_column == pytest.approx(expected, abs=1e-5)
    by_string = call(scorer("token_classification"), [TWO_STEPS], tiny_tokenizer, prompts=[QUESTION])[0]
    assert by_string == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="step_prm.*'problem' is missing"):
        call(reward, [TWO_STEPS], tiny_tokenizer)


def test_empty_completion_gets_zeros_and_too_long_inputs(tiny_tokenizer):
    results = call(scorer("math_shepherd"), ["", TWO_STEPS], tiny_tokenizer)
    assert results[0] == [] and len(results[1]) == 21
    _, shepherd = prm("math_shepherd")
    full = math_shepherd_input(shepherd, QUESTION, STEPS[TWO_STEPS])
    steps_only = len(full.ids) - full.positions[0]  # enough for both tags, not for the question
    with pytest.warns(UserWarning, match="earliest .* tokens"):
        cut = call(scorer("math_shepherd", max_length=steps_only), [TWO_STEPS], tiny_tokenizer)[0]
    assert cut[11] != 0.0 and cut[20] != 0.0
    with pytest.warns(UserWarning, match="sample 0 .* not scored"):
        assert call(scorer("math_shepherd", max_length=steps_only - 1), [TWO_STEPS], tiny_tokenizer) == [None]


def test_errors_name_the_scorer(tiny_tokenizer):
    model, tokenizer = prm("token_classification")
    with pytest.raises(ValueError, match="step_prm: format must be one of"):
        StepPRMReward(model, "orm", tokenizer)
    with pytest.raises(ValueError, match="judge: unknown label 'good'; the classifier's labels are"):
        StepPRMReward(model, tokenizer=tokenizer, correct_label="good", name="judge")
    lm, shepherd = prm("math_shepherd")
    wrong = StepPRMReward(lm, "token_classification", shepherd, name="wrong")
    with pytest.raises(
        ValueError, match=r"wrong: format 'token_classification' reads per-token class logits \(B, L, 2\)"
    ):
        call(wrong, [TWO_STEPS], tiny_tokenizer)
    no_template = StepPRMReward(lm, "qwen_prm", shepherd, name="qwen")
    with pytest.raises(ValueError, match="qwen \\(format 'qwen_prm'\\): .* needs the PRM tokenizer's chat template"):
        call(no_template, [TWO_STEPS], tiny_tokenizer)
    with pytest.raises(ValueError, match="not one each; pass label_tokens as two token ids"):
        label_token_ids(tokenizer, "Answer", "-")


@pytest.mark.parametrize("format", FORMATS)
def test_prm_folders_load_like_the_real_checkpoints(format, tmp_path, tiny_tokenizer):
    """By path: the format's Auto class; Qwen2.5-Math-PRM through AutoModel + trust_remote_code."""
    path = save_tiny_prm(tmp_path / format, format, seed=3)
    init = {"device": "cpu", "trust_remote_code": format == "qwen_prm"}
    loaded = StepPRMReward(str(path), format, model_init_kwargs=init)
    if format == "qwen_prm":
        assert type(loaded.model).__name__ == "TinyProcessRewardModel"
    # AutoTokenizer rebuilds a tokenizer for the model type (Qwen2's splits digits): the reference uses the loaded one
    reference = reference_scores(format, STEPS[TWO_STEPS], loaded.model, loaded.tokenizer)
    expected = placed(TWO_STEPS, reference)
    assert call(loaded, [TWO_STEPS], tiny_tokenizer)[0] == pytest.approx(expected, abs=1e-5)


def test_a_tag_split_into_byte_tokens_is_read_at_its_last_token(tiny_tokenizer):
    """Math-Shepherd's code reads the tag at ``encode(tag)[-1]``: with a byte-level BPE that does not know Cyrillic,
    "и" is two byte tokens sharing one character; the score is read at the second."""
    built = math_shepherd_input(tiny_tokenizer, "q", ["a", "b"])
    tag = tiny_tokenizer.encode(" ки", add_special_tokens=False)
    assert len(tag) > 2 and built.ids[-len(tag) :] == tag
    assert built.positions[-1] == len(built.ids) - 1
    first = built.ids.index(tag[0])
    assert built.positions[0] == first + len(tag) - 1


def test_padding_is_masked_for_a_bidirectional_prm(tiny_tokenizer):
    """A BERT-style PRM attends both ways: a batch padded to its longest member scores each row as it scores alone."""
    from transformers import BertConfig, BertForTokenClassification

    wordpiece = build_wordpiece_tokenizer()
    config = BertConfig(
        vocab_size=len(wordpiece), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=wordpiece.pad_token_id, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    reward = StepPRMReward(
        BertForTokenClassification(config).eval(), tokenizer=wordpiece, model_init_kwargs={"device": "cpu"}
    )
    texts = ["the movie was great\nthe food was good\nwhat a bad day", "it is"]
    together = call(reward, texts, tiny_tokenizer)
    alone = [call(reward, [text], tiny_tokenizer)[0] for text in texts]
    assert together == [pytest.approx(row, abs=1e-5) for row in alone]
