"""`trl_token_ext.text`: the text of prompts and completions, words and sentences, by hand."""

from types import SimpleNamespace

import pytest
from scorer_fixtures import policy_tokenizer

from trl_token_ext.text import (
    chat_transcript,
    completion_text,
    is_conversational,
    last_user_message,
    message_text,
    prompt_text,
    sentence_spans,
    split_sentences,
)

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "First question?"},
    {"role": "assistant", "content": "An answer."},
    {
        "role": "user",
        "content": [{"type": "text", "text": "Second "}, {"type": "image"}, {"type": "text", "text": "one?"}],
    },
]


def test_message_text_of_strings_dicts_lists_and_content_parts():
    assert message_text(None) == ""
    assert message_text("plain") == "plain"
    assert message_text({"role": "user"}) == ""  # no content
    assert message_text(CHAT[3]) == "Second one?"  # text parts joined, other parts empty
    assert message_text(CHAT[:2]) == "Be brief.First question?"
    assert message_text(7) == "7"


def test_completion_text_accepts_text_and_messages_only():
    assert completion_text("done") == "done"
    assert completion_text([{"role": "assistant", "content": "A"}, {"role": "assistant", "content": "B"}]) == "AB"
    assert completion_text({"role": "assistant", "content": "C"}) == "C"
    with pytest.raises(TypeError, match=r"^A completion must be a str or a list of message dicts, got int\.$"):
        completion_text(3)


def test_last_user_message_is_the_request():
    assert last_user_message(CHAT) == "Second one?"
    assert last_user_message(CHAT[:3]) == "First question?"
    assert last_user_message([{"role": "system", "content": "only"}]) == "only"  # no user turn: the last message
    assert last_user_message("a plain prompt") == "a plain prompt"
    assert last_user_message([]) == ""
    assert last_user_message(["a list ", "of strings"]) == "a list of strings"  # not chat messages: joined


def test_chat_transcript_has_one_role_line_per_message():
    assert chat_transcript(CHAT[:2]) == "system: Be brief.\nuser: First question?"
    assert chat_transcript(CHAT[3:]) == "user: Second one?"  # content parts: their text
    assert chat_transcript([{"role": "user"}]) == "user: "
    assert chat_transcript("a plain prompt") == "a plain prompt"
    assert chat_transcript(["a list ", "of strings"]) == "a list of strings"  # not chat messages: joined


def test_split_sentences_spans_and_errors():
    text = "Dr. Smith paid 3.50 dollars.  Then he left!\nA list item"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["Dr. Smith paid 3.50 dollars.", "Then he left!", "A list item"]
    assert split_sentences("   \n ") == []
    assert sentence_spans("Hi. Bye.") == [("Hi.", (0, 3)), ("Bye.", (4, 8))]
    with pytest.raises(TypeError, match=r"^split_sentences expects a str, got int\.$"):
        split_sentences(3)


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


def test_is_conversational_needs_role_dicts():
    assert is_conversational([{"role": "user", "content": "a"}])
    assert not is_conversational(["a", "b"]) and not is_conversational([]) and not is_conversational("a")
    assert not is_conversational([{"content": "a"}])


def test_prompt_text_of_an_object_without_chat_template():
    messages = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "there"}]
    assert prompt_text(messages, object()) == "Hi\nthere"
