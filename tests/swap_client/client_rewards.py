"""The reward module of the test client (tests/swap_client/train_grpo.py), written the way TRL clients write theirs:
plain reward functions that return None where a sample cannot be judged, and factories configured once."""

from __future__ import annotations

import re
from collections.abc import Callable

NUMBER = re.compile(r"-?\d+")


def _text(completion) -> str:
    """A completion's text, conversational (a list of messages) or plain."""
    return completion[0]["content"] if isinstance(completion, list) else completion


def format_reward(completions, **kwargs) -> list[float]:
    """Share of letters and spaces in the completion: well-formed prose scores high."""
    texts = [_text(c) for c in completions]
    return [sum(ch.isalpha() or ch == " " for ch in text) / max(len(text), 1) for text in texts]


def answer_reward(completions, answer, **kwargs) -> list[float | None]:
    """1.0 when the gold answer's number appears in the completion; None when the gold answer has no number."""
    rewards: list[float | None] = []
    for completion, gold in zip(completions, answer):
        match = NUMBER.search(gold or "")
        rewards.append(None if match is None else float(match.group(0) in _text(completion)))
    return rewards


def get_length_reward(target_chars: int, scale: float = 1.0) -> Callable[..., list[float]]:
    """Factory: completions close to ``target_chars`` characters score high."""

    def length_reward(completions, **kwargs) -> list[float]:
        return [-scale * abs(len(_text(c)) - target_chars) / target_chars for c in completions]

    return length_reward


def get_token_id_reward(modulus: int, value: float = 1.0) -> Callable[..., list[list[float]]]:
    """Factory of a synthetic token reward: ``value`` on every token whose id is a multiple of ``modulus``."""

    def token_id_reward(completion_ids, **kwargs) -> list[list[float]]:
        return [[value if token % modulus == 0 else 0.0 for token in ids] for ids in completion_ids]

    return token_id_reward
