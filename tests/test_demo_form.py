"""The sentiment demo's form token rewards: the penalty sits on the token that breaks the asked form, nowhere else."""

from __future__ import annotations

import pytest

from trl_token_ext.demo.form import ExtraSentence, RepeatedWord
from trl_token_ext.scorers._common import decode_with_spans


def _score(scorer, tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    values = scorer(completion_ids=[ids], processing_class=tokenizer)[0]
    decoded, spans = decode_with_spans(tokenizer, ids)
    assert decoded == text
    return {decoded[start:end].strip(): value for (start, end), value in zip(spans, values) if value}, values


def test_extra_sentence_marks_the_first_token_of_each_later_sentence(tiny_tokenizer):
    marked, values = _score(ExtraSentence(penalty=-2.0), tiny_tokenizer, "The movie was good. It was great. A cat sat")
    assert marked == {"It": -2.0, "A": -2.0}
    assert sum(values) == -4.0
    assert _score(ExtraSentence(), tiny_tokenizer, "The movie was good.")[0] == {}


def test_repeated_word_marks_the_repeat_only(tiny_tokenizer):
    marked, _ = _score(RepeatedWord(), tiny_tokenizer, "The movie was good, good and the movie was")
    assert marked == {"good": -1.0}  # the second "good" (after the comma); "the movie" later is not adjacent
    assert _score(RepeatedWord(), tiny_tokenizer, "The the movie")[0] == {"the": -1.0}  # case-insensitive


def test_form_penalties_need_the_tokenizer():
    with pytest.raises(TypeError, match="processing_class"):
        ExtraSentence()(completion_ids=[[1, 2]])


def test_shared_opening_marks_openings_shared_in_the_batch_with_the_title_masked(tiny_tokenizer):
    from trl_token_ext.demo.form import SharedOpening

    texts = ["The movie was good", "the movie was bad", "A cat sat", "The food was good", "Food was bad"]
    titles = ["x", "x", "x", "food", "y"]  # "The food was" with the title masked: ("the", "<title>", "was")
    ids = [tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    scorer = SharedOpening(penalty=-0.5)
    values = scorer(completion_ids=ids, processing_class=tiny_tokenizer, title=titles)
    for index in (0, 1):
        text, spans = decode_with_spans(tiny_tokenizer, ids[index])
        marked = "".join(text[s:e] for (s, e), v in zip(spans, values[index]) if v == -0.5)
        assert marked.strip().lower() == "the movie was"  # case-insensitive; " good" / " bad" untouched
        assert set(values[index]) == {-0.5, 0.0}
    assert all(set(values[i]) == {0.0} for i in (2, 3, 4))  # "the <title> was" is unique; "food was bad" too
    titles[1] = "movie"  # now: ("the", "movie", "was") and ("the", "<title>", "was") x 2
    values = scorer(completion_ids=ids, processing_class=tiny_tokenizer, title=titles)
    assert set(values[0]) == {0.0} and -0.5 in values[1] and -0.5 in values[3]
    short = scorer(completion_ids=[ids[2][:1]] * 2, processing_class=tiny_tokenizer, title=["x", "x"])
    assert all(v == 0.0 for row in short for v in row)  # fewer than 3 words: no opening to share
    with pytest.raises(ValueError, match="words must be"):
        SharedOpening(words=0)
    with pytest.raises(ValueError, match="column 'title' is missing"):
        scorer(completion_ids=ids, processing_class=tiny_tokenizer)


def test_unfinished_marks_the_last_token_of_a_reply_cut_in_mid_sentence(tiny_tokenizer):
    from trl_token_ext.demo.form import Unfinished

    cut = tiny_tokenizer("The movie was good and", add_special_tokens=False)["input_ids"]
    done = tiny_tokenizer("The movie was good.", add_special_tokens=False)["input_ids"]
    ended = [*cut, tiny_tokenizer.eos_token_id]  # stopped by the model: not cut off
    values = Unfinished(penalty=-2.0)(completion_ids=[cut, done, ended], processing_class=tiny_tokenizer)
    assert values[0] == [0.0] * (len(cut) - 1) + [-2.0]
    assert values[1] == [0.0] * len(done) and values[2] == [0.0] * len(ended)
