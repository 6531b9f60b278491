"""Text at the bottom of the package: the text of a prompt or completion (plain or chat), its words and sentences.

Every layer above (scorers, sentence rewards, trainers, CLI, demo) reads text through these helpers. Sentence
segmentation uses pySBD (rule-based "Golden Rules" sentence boundary detection: abbreviations, decimals, lists,
quotes, CJK terminators), imported lazily.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from trl_token_ext.alignment import Span
from trl_token_ext.extras import require

WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*")


def message_text(value: Any) -> str:
    """Text of a prompt/completion: a string as is, a list of chat messages as their contents joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return message_text(value.get("content", ""))
    if isinstance(value, (list, tuple)):
        parts = []
        for item in value:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text", "")))
            else:
                parts.append(message_text(item))
        return "".join(parts)
    return str(value)


def completion_text(completion: Any) -> str:
    """`message_text` of a completion, which must be a string or chat messages (a TypeError names anything else)."""
    if not isinstance(completion, (str, dict, list, tuple)):
        raise TypeError(f"A completion must be a str or a list of message dicts, got {type(completion).__name__}.")
    return message_text(completion)


def last_user_message(prompt: Any) -> str:
    """The text of the last ``user`` message of a conversational prompt (the request), or the prompt text."""
    if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[0], dict):
        users = [m for m in prompt if m.get("role") == "user"] or list(prompt)
        return message_text(users[-1])
    return message_text(prompt)


def is_conversational(prompt: Any) -> bool:
    """A list of chat messages (dicts with a "role")."""
    return isinstance(prompt, (list, tuple)) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def prompt_text(prompt: Any, tokenizer: Any) -> str:
    """Prompt text as ``tokenizer`` would see it: chat messages through its chat template (with generation prompt)."""
    if is_conversational(prompt):
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        return "\n".join(message_text(message) for message in prompt)
    return message_text(prompt)


def chat_transcript(prompt: Any) -> str:
    """A prompt as a reader sees it: one ``role: text`` line per chat message (``message_text`` of its content), a
    plain prompt as its text; what heatmaps show above a completion."""
    if is_conversational(prompt):
        return "\n".join(f"{m.get('role', '')}: {message_text(m)}" for m in prompt if isinstance(m, dict))
    return message_text(prompt)


def word_spans(text: str, pattern: re.Pattern = WORD_PATTERN) -> list[tuple[str, Span]]:
    """Words of ``text`` with their character spans."""
    return [(match.group(0), match.span()) for match in pattern.finditer(text)]


@lru_cache(maxsize=8)
def _segmenter(language: str):
    pysbd = require("pysbd", "sentences", "split_sentences (rule-based sentence boundary detection)")
    return pysbd.Segmenter(language=language, clean=False, char_span=False)


def split_sentences(text: str, language: str = "en") -> list[Span]:
    """Character spans ``[start, end)`` of the sentences of ``text``, in order, without surrounding whitespace.

    Handles abbreviations ("Dr.", "e.g."), decimals ("3.50"), newlines and list items (each line of a list is a
    sentence), text without terminal punctuation (the rest is one sentence) and CJK terminators (。！？).
    Whitespace-only text gives no span.

    Args:
        text: the text to split.
        language: a pySBD language code ("en" also splits CJK terminators).

    Returns:
        (S,) list of ``(start, end)`` with ``text[start:end]`` the stripped sentence; ``end > start``.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects a str, got {type(text).__name__}.")
    if not text.strip():
        return []
    spans: list[Span] = []
    cursor = 0
    for piece in _segmenter(language).segment(text):
        stripped = piece.strip()
        if not stripped:
            continue
        # With clean=False the pieces are consecutive slices of the text; find() keeps this robust if one is not.
        start = text.find(stripped, cursor)
        if start < 0:  # pragma: no cover - pySBD altered the text; fall back to the cursor position
            start = cursor
        end = start + len(stripped)
        spans.append((start, end))
        cursor = end
    return spans


def sentence_spans(text: str) -> list[tuple[str, Span]]:
    """Sentences of ``text`` with their character spans (`split_sentences`: abbreviations,
    decimals, lists and CJK terminators handled), whitespace trimmed, empty ones skipped."""
    return [(text[start:end], (start, end)) for start, end in split_sentences(text)]
