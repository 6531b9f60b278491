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
* ``p_positive``: the classifier's mean P(positive) (this one *is* the outcome reward: the target).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

WORD = re.compile(r"\w+(?:['’]\w+)*")
MEASURES = ("p_positive", "title_rate", "perplexity", "distinct_1", "distinct_2", "words")


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
    """The measures above for ``samples`` (dicts with ``text``, ``title``, ``prompt``, ``completion_ids`` and
    ``reward`` = P(positive)), in ``MEASURES`` order."""
    texts = [s["text"] for s in samples]
    rewards = [s["reward"] for s in samples if not math.isnan(s["reward"])]
    return {
        "p_positive": sum(rewards) / max(1, len(rewards)),
        "title_rate": sum(mentions(s["text"], s["title"]) for s in samples) / max(1, len(samples)),
        "perplexity": base_perplexity(model, tokenizer, samples),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "words": sum(len(WORD.findall(t)) for t in texts) / max(1, len(texts)),
    }


def target_checks(before: dict[str, float], after: dict[str, float]) -> dict[str, bool]:
    """The demo's target: P(positive) up by ≥ 0.1 while the title rate and the perplexity stay within 10 % of
    before (or improve)."""
    return {
        "p_positive +0.1": after["p_positive"] - before["p_positive"] >= 0.1 - 1e-9,
        "title_rate ≥ 90 % of before": after["title_rate"] >= 0.9 * before["title_rate"] - 1e-9,
        "perplexity ≤ 110 % of before": after["perplexity"] <= 1.1 * before["perplexity"] + 1e-9,
    }
