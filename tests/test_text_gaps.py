"""Gaps found by mutation testing (issue 17, docs/testing.md) in config validation, alignment and scorer plumbing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scorer_fixtures import policy_tokenizer

from trl_token_ext import TokenGRPOConfig, alignment
from trl_token_ext.alignment import overlapping_tokens, spread_span_scores, token_char_spans
from trl_token_ext.scorers._common import (
    TokenScorer,
    check_placement,
    decode_with_spans,
    get_column,
    group_indices,
    same_tokenizer,
    spread_scores,
)
from trl_token_ext.text import is_conversational, message_text, prompt_text


def make_config(tmp_path, **kwargs):
    return TokenGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


# --- config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 1.0, 0.5])
def test_gamma_bounds_are_inclusive(tmp_path, gamma):
    assert make_config(tmp_path, token_reward_gamma=gamma).token_reward_gamma == gamma


@pytest.mark.parametrize("gamma", [-0.1, 1.0001])
def test_gamma_outside_the_unit_interval_is_rejected(tmp_path, gamma):
    with pytest.raises(ValueError, match=rf"token_reward_gamma must be in \[0, 1\], got {gamma}"):
        make_config(tmp_path, token_reward_gamma=gamma)


def test_token_field_defaults(tmp_path):
    config = make_config(tmp_path)
    assert config.token_reward_weights is None
    assert config.token_advantage_coef == 1.0
    assert config.token_reward_gamma == 1.0
    assert config.token_advantage_mode == "reward_to_go"
    assert config.token_reward_normalization == "group"
    assert config.token_advantage_scale is False
    assert config.token_reward_epsilon == 1e-4


def test_negative_epsilon_and_infinite_coef_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"token_reward_epsilon must be a finite number > 0, got -0.0001"):
        make_config(tmp_path, token_reward_epsilon=-1e-4)
    with pytest.raises(ValueError, match="token_advantage_coef must be a finite number, got inf"):
        make_config(tmp_path, token_advantage_coef=float("inf"))
    config = make_config(tmp_path, token_advantage_coef=-0.5, token_reward_weights=[-1.0, 2])
    assert (config.token_advantage_coef, config.token_reward_weights) == (-0.5, [-1.0, 2])


# --- alignment ---------------------------------------------------------------------------------------------------


class SlowTokenizer:
    """A view of a tokenizer without ``is_fast``: forces `token_char_spans`'s decode-prefix fallback."""

    is_fast = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


def test_empty_span_tokens_overlap_nothing():
    # token 1 is a special token / byte fragment at position 3; a span covering position 3 must skip it
    spans = [(0, 3), (3, 3), (3, 6)]
    assert overlapping_tokens(spans, (2, 5)) == [0, 2]
    assert overlapping_tokens(spans, (3, 3)) == []
    assert overlapping_tokens(spans, (6, 9)) == []
    assert overlapping_tokens(spans, (5, 6)) == [2]


def test_fallback_credits_a_multi_byte_character_to_the_token_completing_it():
    tokenizer = policy_tokenizer()
    ids = tokenizer("café ok", add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in ids] == ["c", "a", "f", "\ufffd", "\ufffd", " o", "k"]  # é is 2 bytes
    text, spans = token_char_spans(SlowTokenizer(tokenizer), ids)
    assert text == "café ok"
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 3), (3, 4), (4, 6), (6, 7)]


def test_fallback_and_fast_path_agree_on_whole_characters():
    tokenizer = policy_tokenizer()
    ids = tokenizer("The movie was great, e.g. 3.50!", add_special_tokens=False)["input_ids"]
    fast = token_char_spans(tokenizer, ids)
    assert fast == token_char_spans(SlowTokenizer(tokenizer), ids)
    assert fast[1][0] == (0, 3) and fast[1][-1] == (30, 31)


def test_special_tokens_get_empty_spans_in_the_fallback():
    tokenizer = policy_tokenizer()
    ids = tokenizer("good", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "good"
    assert spans[-1] == (4, 4) and all(e > s for s, e in spans[:-1])


def test_fallback_keeps_special_tokens_and_spacing_in_the_middle():
    tokenizer = policy_tokenizer()
    good = tokenizer("good", add_special_tokens=False)["input_ids"]
    comma = tokenizer(" , ok .", add_special_tokens=False)["input_ids"]
    ids = good + [tokenizer.eos_token_id] + comma  # not re-encodable: the decode-prefix fallback runs
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "good , ok ."  # no clean-up of " ," / " ."
    assert spans[len(good)] == (4, 4)  # the special token in the middle gets an empty span
    assert spans[-1][1] == len(text) and [s for s, _ in spans[len(good) + 1 :]][0] == 4


def test_fallback_credits_a_truncated_multi_byte_character_to_the_last_token():
    tokenizer = policy_tokenizer()
    ids = tokenizer("café", add_special_tokens=False)["input_ids"][:-1]  # cut inside é
    text, spans = token_char_spans(SlowTokenizer(tokenizer), ids)
    assert text == "caf\ufffd" and spans[-1] == (3, 4)


def test_a_decode_only_tokenizer_uses_the_fallback():
    tokenizer = policy_tokenizer()

    class DecodeOnly:  # no is_fast attribute, not callable
        def decode(self, *args, **kwargs):
            return tokenizer.decode(*args, **kwargs)

    ids = tokenizer("a cat", add_special_tokens=False)["input_ids"]
    assert token_char_spans(DecodeOnly(), ids) == token_char_spans(tokenizer, ids)


def wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer that, like BERT checkpoints, cleans up tokenization spaces by default."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", ",", "it", "is", ".", "ok"]
    tokenizer = Tokenizer(models.WordPiece({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", sep_token="[SEP]", clean_up_tokenization_spaces=True
    )


def test_wordpiece_spaces_before_punctuation_are_kept():
    """WordPiece decoding would "clean up" " ," into ","; spans must index the text as the tokens produce it."""
    tokenizer = wordpiece_tokenizer()
    ids = tokenizer("yes , it is . ok", add_special_tokens=False)["input_ids"]
    text, spans = token_char_spans(tokenizer, ids)
    assert text == "yes , it is . ok"
    assert spans == [(0, 3), (3, 5), (5, 8), (8, 11), (11, 13), (13, 16)]  # a token's span holds its leading space
    sep = ids[:2] + [tokenizer.sep_token_id] + ids[2:]  # a special token in the middle: an empty span, same others
    text, spans = token_char_spans(tokenizer, sep)
    assert text == "yes , it is . ok"
    assert spans == [(0, 3), (3, 5), (5, 5), (5, 8), (8, 11), (11, 13), (13, 16)]


def test_last_token_of_span_is_gone():
    assert not hasattr(alignment, "last_token_of_span")


# --- scorer plumbing ---------------------------------------------------------------------------------------------


def word_level_tokenizer(vocab: dict[str, int]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


def test_same_tokenizer_compares_vocabularies_not_sizes():
    """Like Llama-2 and Mistral (both 32,000 ids): same size, different ids."""
    first = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2})
    swapped = word_level_tokenizer({"[UNK]": 0, "good": 2, "bad": 1})
    copy = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2})
    bigger = word_level_tokenizer({"[UNK]": 0, "good": 1, "bad": 2, "ok": 3})
    assert len(first) == len(swapped)
    assert not same_tokenizer(first, swapped)
    assert same_tokenizer(first, copy)
    assert not same_tokenizer(first, bigger)
    assert same_tokenizer(first, None) and same_tokenizer(None, first)
    assert not same_tokenizer(first, object())  # no vocabulary: cannot be the same


class ConstantScorer(TokenScorer):
    default_name = "constant"

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        return [[1.0] * len(ids) for ids in completion_ids]


@pytest.mark.parametrize(
    ("prompts", "completions", "message"),
    [
        (["a"], ["x", "y"], "got 1 prompts, 2 completions and 2 completion_ids"),
        (["a", "b"], ["x"], "got 2 prompts, 1 completions and 2 completion_ids"),
        (["a", "b", "c"], None, "got 3 prompts, 2 completions and 2 completion_ids"),
    ],
)
def test_scorer_rejects_length_mismatches(prompts, completions, message):
    with pytest.raises(ValueError, match=f"constant: {message}"):
        ConstantScorer()(prompts=prompts, completions=completions, completion_ids=[[1], [2, 3]])


def test_scorer_defaults_and_empty_batch():
    assert repr(ConstantScorer(name="mine")) == "ConstantScorer(name='mine')"
    assert ConstantScorer()(completion_ids=[[1], [2, 3]]) == [[1.0], [1.0, 1.0]]
    assert ConstantScorer(name="mine")(completion_ids=[]) == []
    with pytest.raises(TypeError, match="mine: completion_ids is required"):
        ConstantScorer(name="mine")(prompts=["a"])


def test_get_column_rejects_a_column_of_the_wrong_length():
    with pytest.raises(ValueError, match="judge: column 'reference' has 1 values for 2 completions"):
        get_column({"reference": ["r"]}, "reference", "judge", 2)
    with pytest.raises(ValueError, match=r"available columns: \['answer'\]"):
        get_column({"answer": [1, 2], "trainer_state": None}, "reference", "judge", 2)
    assert get_column({"reference": ("r", "s")}, "reference", "judge", 2) == ["r", "s"]


def test_message_text_joins_multi_part_messages():
    parts = [{"type": "text", "text": "Hello "}, {"type": "image"}, {"type": "text", "text": "world"}]
    assert message_text([{"role": "user", "content": parts}]) == "Hello world"
    assert message_text([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"
    assert message_text(None) == "" and message_text(3) == "3"
    assert message_text([{"type": "text"}, {"role": "user"}]) == ""  # missing text / content


def test_prompt_text_without_chat_template_joins_messages_by_line():
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert prompt_text(messages, SimpleNamespace(chat_template=None)) == "Be kind.\nHi"
    assert prompt_text("plain", SimpleNamespace(chat_template=None)) == "plain"
    assert prompt_text(messages, policy_tokenizer()) == "<|system|>Be kind.<|end|><|user|>Hi<|end|><|assistant|>"


def test_require_tokenizer_unwraps_processors_and_rejects_none():
    tokenizer = policy_tokenizer()
    assert ConstantScorer().require_tokenizer(SimpleNamespace(tokenizer=tokenizer)) is tokenizer
    assert ConstantScorer().require_tokenizer(tokenizer) is tokenizer
    with pytest.raises(TypeError, match="constant: processing_class .* TokenGRPOTrainer passes it, pass it yourself"):
        ConstantScorer().require_tokenizer(None)


class PromptLengthScorer(TokenScorer):
    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        return [[float(len(p)), float(c is None)] for p, c in zip(prompts, completions)]


def test_scorer_fills_missing_prompts_with_empty_strings_and_completions_with_none():
    assert PromptLengthScorer()(completion_ids=[[1, 2]]) == [[0.0, 1.0]]
    assert PromptLengthScorer()(prompts=["abc"], completions=["x"], completion_ids=[(1, 2)]) == [[3.0, 0.0]]


def test_is_conversational_needs_role_dicts():
    assert is_conversational([{"role": "user", "content": "a"}])
    assert not is_conversational(["a", "b"]) and not is_conversational([]) and not is_conversational("a")
    assert not is_conversational([{"content": "a"}])


def test_prompt_text_of_an_object_without_chat_template():
    messages = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "there"}]
    assert prompt_text(messages, object()) == "Hi\nthere"


def test_decode_with_spans_of_no_tokens():
    assert decode_with_spans(policy_tokenizer(), []) == ("", [])


def test_get_column_lists_only_dataset_columns():
    kwargs = {"answer": [1], "trainer_state": 0, "log_extra": 0, "log_metric": 0, "environments": 0}
    with pytest.raises(ValueError, match=r"\(available columns: \['answer'\]\); add it to the dataset"):
        get_column(kwargs, "reference", "judge", 1)


def test_spread_scores_modes_accumulate_overlapping_spans():
    spans = [(0, 2), (2, 4), (4, 6)]
    items = [((0, 0), 9.0), ((0, 4), 2.0), ((7, 9), 5.0), ((2, 6), 1.0)]  # (7, 9) and (0, 0) overlap no token
    assert spread_scores(spans, items, "sum") == [2.0, 3.0, 1.0]
    assert spread_scores(spans, items, "last") == [0.0, 2.0, 1.0]
    assert spread_scores(spans, items, "even") == [1.0, 1.5, 0.5]
    assert spread_scores(spans, [((0, 2), 0.0), ((0, 2), 3.0)], "last") == [3.0, 0.0, 0.0]
    assert spread_scores(spans, [((0, 4), 2.0), ((2, 4), 3.0)], "last") == [0.0, 5.0, 0.0]
    with pytest.raises(ValueError, match="q: placement must be one of .*got 'first'"):
        check_placement("first", "q")
    with pytest.raises(ValueError, match="q: placement must be one of"):
        check_placement("all", "q")  # the old `spread` vocabulary is gone


def test_split_placement_ignores_spans_that_only_touch_a_token():
    assert spread_span_scores([(0, 3), (3, 3)], [(3, 5)], [1.0], placement="split") == [0.0, 0.0]
    assert spread_span_scores([(0, 3), (3, 4)], [(1, 4)], [3.0], placement="split") == [2.0, 1.0]


def test_spread_span_scores_default_sum_and_mean():
    spans = [(0, 2), (2, 4), (4, 6)]
    assert spread_span_scores(spans, [(0, 4), (2, 4)], [1.0, 3.0]) == [1.0, 4.0, 0.0]
    assert spread_span_scores(spans, [(0, 4), (2, 4)], [1.0, 3.0], placement="mean") == [1.0, 2.0, 0.0]
    with pytest.raises(ValueError, match=r"placement must be one of \[.*\], got 'max'"):
        spread_span_scores(spans, [], [], placement="max")


def test_group_indices_with_groups_of_one_and_of_two():
    assert group_indices(["a", "a", "b", "b"], 2, "s") == [[0, 1], [2, 3]]
    assert group_indices(["a", "b"], 1, "s") == [[0], [1]]
    assert group_indices(["a", "a", "b", "a"], None, "s") == [[0, 1], [2], [3]]
    with pytest.raises(ValueError, match="s: 3 completions cannot be split into groups of num_generations=2"):
        group_indices(["a"] * 3, 2, "s")
