"""Held-out measures of the demo's samples that no reward of the demo computes.

A rising reward proves nothing by itself: the first demo raised P(positive) 0.80 → 0.95 while its replies stopped
being reviews ("I'm so glad you enjoyed the movie!"). These measures judge the samples on what the rewards do not
see:

* ``title_rate``: share of samples naming the asked movie (case-insensitive match of the title);
* ``perplexity``: exp of the mean negative log-likelihood per completion token under the *starting* model (the
  policy with its LoRA adapter disabled), given the prompt: fluency as the untrained model judges it;
* ``distinct_1`` / ``distinct_2``: distinct uni-/bi-grams over all samples ÷ their count (Li et al. 2016; low =
  the same phrases everywhere);
* ``words``: mean length in words;
* ``template_share``: share of replies whose first 3 words (the asked title replaced by ``<title>``, lower case) are
  the most common such opening: "Avatar is a …" and "Heat is a …" are the same template;
* ``cutoff_share``: share of replies that hit the token limit (no end-of-turn token) without ending a sentence
  (last character not ``.``, ``!``, ``?`` or a closing quote after one);
* ``sentences``: mean number of sentences per reply (pySBD, `trl_token_ext.sentence.split_sentences`); one is asked;
* ``adjacent_repeats``: share of replies with a word repeated right after itself ("immersive, immersive");
* ``p_positive``: the classifier's mean P(positive) (this one *is* the outcome reward: the target).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

WORD = re.compile(r"\w+(?:['’]\w+)*")
MEASURES = (
    "p_positive", "title_rate", "perplexity", "distinct_1", "distinct_2", "words",
    "template_share", "cutoff_share", "sentences", "adjacent_repeats",
)  # fmt: skip
# Which way is better: +1 higher, -1 lower, 0 closer to ``TARGETS`` (None: no direction, e.g. length).
DIRECTIONS = {
    "p_positive": 1, "title_rate": 1, "perplexity": -1, "distinct_1": 1, "distinct_2": 1, "words": None,
    "template_share": -1, "cutoff_share": -1, "sentences": 0, "adjacent_repeats": -1,
}  # fmt: skip
TARGETS = {"sentences": 1.0}  # one sentence is asked
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def mentions(text: str, title: str) -> bool:
    """True when ``title`` occurs in ``text`` as whole words, ignoring case ("Cars" is not in "Oscars")."""
    return re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text, flags=re.IGNORECASE) is not None


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams ÷ all n-grams over ``texts`` (lower-cased words); 0.0 when there is no n-gram."""
    grams = []
    for text in texts:
        words = [w.lower() for w in WORD.findall(text)]
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def opening(text: str, title: str | None = None, words: int = 3) -> tuple[str, ...]:
    """The first ``words`` lower-cased words of ``text``, the words of ``title`` replaced by one ``<title>``."""
    if title:
        text = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", " TITLEPLACEHOLDER ", text, flags=re.IGNORECASE)
    found = [w.lower() for w in WORD.findall(text)][:words]
    return tuple("<title>" if w == "titleplaceholder" else w for w in found)


def template_share(texts: Sequence[str], titles: Sequence[str | None] | None = None, words: int = 3) -> float:
    """Share of ``texts`` whose :func:`opening` is the most common one (0.0 for no text)."""
    if not texts:
        return 0.0
    titles = list(titles) if titles is not None else [None] * len(texts)
    counts = Counter(opening(text, title, words) for text, title in zip(texts, titles))
    return max(counts.values()) / len(texts)


def cut_off(text: str, truncated: bool) -> bool:
    """True when a reply ``truncated`` at the token limit does not end a sentence."""
    return truncated and SENTENCE_END.search(text.rstrip()) is None


def adjacent_repeat(text: str) -> bool:
    """True when some word follows itself (case-insensitive, punctuation between them ignored)."""
    words = [w.lower() for w in WORD.findall(text)]
    return any(a == b for a, b in zip(words, words[1:]))


def sentence_count(text: str) -> int:
    """Sentences of ``text`` (pySBD)."""
    from trl_token_ext.sentence import split_sentences

    return len(split_sentences(text))


def base_perplexity(model: Any, tokenizer: Any, samples: Sequence[dict[str, Any]]) -> float:
    """exp(−mean log p_base(y_t | prompt, y_<t)) over every completion token of ``samples`` (each with ``prompt``
    and ``completion_ids``), with the LoRA adapter of ``model`` disabled (the starting model): the per-token
    log-probs of ``LogProbQuality`` over a ``SharedBaseModel``, the library's own judge path."""
    from trl_token_ext.scorers import LogProbQuality
    from trl_token_ext.shared_base import SharedBaseModel

    judge = LogProbQuality(SharedBaseModel(model), tokenizer, name="perplexity_judge")
    logps = judge(
        prompts=[s["prompt"] for s in samples],
        completion_ids=[s["completion_ids"] for s in samples],
        processing_class=tokenizer,
    )
    values = [value for row in logps for value in row]
    return math.exp(-sum(values) / len(values)) if values else math.nan


def held_out_measures(samples: Sequence[dict[str, Any]], model: Any, tokenizer: Any) -> dict[str, float]:
    """The measures above for ``samples`` (dicts with ``text``, ``title``, ``prompt``, ``completion_ids``,
    ``truncated`` and ``reward`` = P(positive)), in ``MEASURES`` order."""
    texts = [s["text"] for s in samples]
    rewards = [s["reward"] for s in samples if not math.isnan(s["reward"])]
    n = max(1, len(samples))
    return {
        "p_positive": sum(rewards) / max(1, len(rewards)),
        "title_rate": sum(mentions(s["text"], s["title"]) for s in samples) / max(1, len(samples)),
        "perplexity": base_perplexity(model, tokenizer, samples),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "words": sum(len(WORD.findall(t)) for t in texts) / max(1, len(texts)),
        "template_share": template_share(texts, [s["title"] for s in samples]),
        "cutoff_share": sum(cut_off(s["text"], s["truncated"]) for s in samples) / n,
        "sentences": sum(sentence_count(t) for t in texts) / n,
        "adjacent_repeats": sum(adjacent_repeat(t) for t in texts) / n,
    }


def no_worse(before: dict[str, float], after: dict[str, float], keys: Sequence[str]) -> dict[str, bool]:
    """For each of ``keys``: is ``after`` at or better than ``before`` in its ``DIRECTIONS`` (closer to ``TARGETS``
    for direction 0)?"""
    checks = {}
    for key in keys:
        direction, old, new = DIRECTIONS[key], before[key], after[key]
        if direction == 0:
            ok = abs(new - TARGETS[key]) <= abs(old - TARGETS[key]) + 1e-9
        else:
            ok = direction * (new - old) >= -1e-9
        checks[key] = ok
    return checks


FORM_MEASURES = ("template_share", "cutoff_share", "sentences", "adjacent_repeats")


def target_checks(before: dict[str, float], after: dict[str, float]) -> dict[str, bool]:
    """The demo's target: P(positive) up by ≥ 0.1 while the title rate and the perplexity stay within 10 % of
    before (or improve), and the form measures (``FORM_MEASURES``, when present) at or better than before."""
    checks = {
        "p_positive +0.1": after["p_positive"] - before["p_positive"] >= 0.1 - 1e-9,
        "title_rate ≥ 90 % of before": after["title_rate"] >= 0.9 * before["title_rate"] - 1e-9,
        "perplexity ≤ 110 % of before": after["perplexity"] <= 1.1 * before["perplexity"] + 1e-9,
    }
    present = [key for key in FORM_MEASURES if key in before and key in after]
    checks.update({f"{key} no worse": ok for key, ok in no_worse(before, after, present).items()})
    return checks
