"""The input formats of step-level process reward models (PRMs): PRM token ids and where each step is scored.

A PRM reads a question and a list of steps written in its own format, and scores step k at one token of its input.
Each builder returns the ids and that position for every step (`PRMInput`):

* ``"token_classification"``, the format TRL's former ``PRMTrainer`` trained (``tokenize_row``): ``[BOS] +
  ids(question) + ids(step_1) + ids(tag) + ids(step_2) + ids(tag) ...``, every piece tokenized on its own without
  special tokens (BOS only when the tokenizer has one); step k is labelled at the last token of ``ids(step_k) +
  ids(tag)``. Tag: TRL's ``step_separator``, ``"\\n"`` by default.
* ``"math_shepherd"``, a causal LM with a step tag and good/bad label tokens (Math-Shepherd's usage code):
  ``f"{question} {step_1} ки\\n{step_2} ки..."`` tokenized whole, with the tokenizer's special tokens (BOS); step k
  is read at the last token of its tag.
* ``"qwen_prm"``, Qwen2.5-Math-PRM: the chat template over ``[system, user: question, assistant: step_1<extra_0>
  step_2<extra_0>...]`` (no generation prompt); step k is read at its ``<extra_0>``.

Tags are located by character offsets (the token holding a tag's last character), so a fast tokenizer is needed for
the two formats tokenized whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Qwen2.5-Math-PRM's usage code: the system prompt its steps are scored under.
QWEN_PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
STEP_TAGS = {"token_classification": "\n", "math_shepherd": " ки", "qwen_prm": "<extra_0>"}


class StepEncodingError(ValueError):
    """A step the PRM's tokenizer cannot place a score on; ``step`` is its index."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class PRMInput:
    """One completion in a PRM's format: ``ids`` (L,) and ``positions`` (S,), the index in ``ids`` of the token
    that scores each step."""

    ids: list[int]
    positions: list[int]

    def truncate_left(self, max_length: int | None) -> tuple[PRMInput, int]:
        """The last ``max_length`` ids (positions shifted; positions cut away dropped) and how many ids were cut."""
        cut = len(self.ids) - max_length if max_length is not None else 0
        if cut <= 0:
            return self, 0
        return PRMInput(self.ids[cut:], [p - cut for p in self.positions if p >= cut]), cut


def token_classification_input(tokenizer: Any, question: str, steps: Sequence[str], step_tag: str = "\n") -> PRMInput:
    """TRL's ``PRMTrainer`` format (see the module docstring); the label of step k sits at ``positions[k]``.

    Raises:
        StepEncodingError: a step that, with its tag, encodes to no token.
    """
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids += tokenizer(question, add_special_tokens=False)["input_ids"] if question else []
    tag_ids = tokenizer(step_tag, add_special_tokens=False)["input_ids"] if step_tag else []
    positions = []
    for index, step in enumerate(steps):
        piece = list(tokenizer(step, add_special_tokens=False)["input_ids"]) + list(tag_ids)
        if not piece:
            raise StepEncodingError(f"step {index} ({step!r}) and the tag {step_tag!r} encode to no token.", index)
        ids += piece
        positions.append(len(ids) - 1)
    return PRMInput(ids, positions)


def math_shepherd_input(tokenizer: Any, question: str, steps: Sequence[str], step_tag: str = " ки") -> PRMInput:
    """Math-Shepherd's format: ``f"{question} "`` then the steps, each followed by ``step_tag``, joined by newlines."""
    text = f"{question} " if question else ""
    ends = []
    for index, step in enumerate(steps):
        text += ("\n" if index else "") + step + step_tag
        ends.append(len(text))
    return _tokenize_marked(tokenizer, text, ends, add_special_tokens=True)


def qwen_prm_input(
    tokenizer: Any,
    question: str,
    steps: Sequence[str],
    step_tag: str = "<extra_0>",
    system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT,
) -> PRMInput:
    """Qwen2.5-Math-PRM's format: the PRM's chat template with the steps as the assistant turn, a tag after each.

    Raises:
        ValueError: the tokenizer has no chat template, or its template does not write the assistant turn verbatim.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the qwen_prm format needs the PRM tokenizer's chat template; this tokenizer has none.")
    content = "".join(step + step_tag for step in steps)
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": content}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    start = text.rfind(content)
    if start < 0:
        raise ValueError("the PRM's chat template changed the assistant turn; the step tags cannot be located.")
    ends, cursor = [], start
    for step in steps:
        cursor += len(step) + len(step_tag)
        ends.append(cursor)
    return _tokenize_marked(tokenizer, text, ends, add_special_tokens=False)  # the template writes its own specials


def _tokenize_marked(tokenizer: Any, text: str, ends: Sequence[int], add_special_tokens: bool) -> PRMInput:
    """Tokenize ``text`` whole; ``positions[k]``: the last token holding character ``ends[k] - 1``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("this PRM format locates its step tags by character offsets: pass a fast tokenizer.")
    encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    owner: dict[int, int] = {}
    for index, (start, end) in enumerate(encoded["offset_mapping"]):
        for char in range(start, end):
            owner[char] = index
    positions = []
    for step, end in enumerate(ends):
        if end - 1 not in owner:
            raise StepEncodingError(f"the tag after step {step} falls on no token (character {end - 1}).", step)
        positions.append(owner[end - 1])
    return PRMInput(list(encoded["input_ids"]), positions)


def label_token_ids(tokenizer: Any, good: str = "+", bad: str = "-") -> tuple[int, int]:
    """The ids of the good and bad label tokens as Math-Shepherd's usage code finds them: the two ids of
    ``f"{good} {bad}"`` encoded without special tokens.

    Raises:
        ValueError: the encoding is not two ids (pass the ids themselves instead).
    """
    ids = tokenizer(f"{good} {bad}", add_special_tokens=False)["input_ids"]
    if len(ids) != 2:
        raise ValueError(
            f"{good!r} {bad!r} encode to {len(ids)} ids {ids}, not one each; pass label_tokens as two token ids."
        )
    return int(ids[0]), int(ids[1])


BUILDERS = {
    "token_classification": token_classification_input,
    "math_shepherd": math_shepherd_input,
    "qwen_prm": qwen_prm_input,
}
