"""The two tasks of ``benchmarks/real_ab.py``, the rewards of each arm (outcome / token / shaped) and the statistics.

* ``keywords``: "Write one sentence about {subject} using the words {w1}, {w2} and {w3}." Outcome: the share of
  the required words present (whole word, case-insensitive, simple suffixes allowed). Token version: +1/k on the
  tokens of the first occurrence of each required word, so that its sum is the outcome exactly.
* ``sentiment``: the demo's movie reviews. Outcome: P(positive) from the MiniLM sentiment classifier plus the
  topicality of the completion (``EmbeddingConsistency``, summed to one score); token version: the same classifier
  per sentence and the same topicality per sentence.

Arms: ``outcome`` (stock GRPO, the signals summed as reward functions), ``token`` (the outcome reward kept, the same
signals placed on tokens as ``token_reward_funcs``), ``shaped`` (``token`` + quality Q + repetition C).

Statistics: steps to a held-out threshold (censored when never reached), bootstrap intervals (fixed RNG seed) of a
mean over seeds × samples and of a ratio of means over seeds, and a t band over seeds for the learning curves.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl_token_ext.scorers._common import TokenScorer, decode_with_spans, get_column, spread_scores
from trl_token_ext.text import message_text

TASKS = ("keywords", "sentiment")
ARMS = ("outcome", "token", "shaped")
KEYWORD_SYSTEM = "You are a helpful writer."
KEYWORD_TEMPLATE = "Write one sentence about {subject} using the words {words}."
TRAIN_SUBJECTS = ["a farm", "the beach", "a kitchen", "a park", "a city street", "a garden", "a library", "a train"]
TRAIN_WORDS = [
    "red", "apple", "dog", "river", "sun", "chair", "green", "bread", "cat", "tree", "blue", "ball",
    "window", "cold", "flower", "car", "happy", "book", "rain", "small", "bird", "hat", "milk", "stone",
]  # fmt: skip
HELD_OUT_SUBJECTS = ["a lake", "a bakery", "a mountain", "a zoo", "a rainy day", "a market", "a playground", "a boat"]
HELD_OUT_WORDS = ["yellow", "horse", "cake", "snow", "lamp", "orange", "fish", "door", "warm", "cup", "grass", "shoe"]
SUFFIXES = "(?:s|es|d|ed|ing)?"  # "dogs", "rained", "raining" count for "dog", "rain"


# ---------------------------------------------------------------- keywords: prompts, matching, rewards
def keyword_prompt(subject: str, words: Sequence[str]) -> list[dict[str, str]]:
    """The conversational prompt asking for one sentence about ``subject`` with ``words``."""
    listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else words[0]
    text = KEYWORD_TEMPLATE.format(subject=subject, words=listed)
    return [{"role": "system", "content": KEYWORD_SYSTEM}, {"role": "user", "content": text}]


def _triples(words: Sequence[str], count: int, offsets: tuple[int, int]) -> list[list[str]]:
    n = len(words)
    return [[words[i % n], words[(i + offsets[0]) % n], words[(i + offsets[1]) % n]] for i in range(count)]


def keyword_columns(split: str) -> dict[str, list]:
    """``prompt`` and ``required`` columns: 24 train prompts (8 subjects × 3 word triples, 24 words) or 8 held-out
    ones (unseen subjects and unseen words)."""
    if split == "train":
        triples, subjects = _triples(TRAIN_WORDS, 24, (5, 11)), TRAIN_SUBJECTS
    elif split == "held_out":
        triples, subjects = _triples(HELD_OUT_WORDS, 8, (3, 7)), HELD_OUT_SUBJECTS
    else:
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}.")
    prompts = [keyword_prompt(subjects[i % len(subjects)], words) for i, words in enumerate(triples)]
    return {"prompt": prompts, "required": triples}


def find_word(text: str, word: str) -> tuple[int, int] | None:
    """Character span of the first whole-word, case-insensitive occurrence of ``word`` (or ``word`` + a simple
    suffix) in ``text``; None when absent ("cat" is not in "category", "Cats" counts)."""
    match = re.search(rf"(?<!\w){re.escape(word)}{SUFFIXES}(?!\w)", text, flags=re.IGNORECASE)
    return match.span() if match else None


def coverage(text: str, words: Sequence[str]) -> float:
    """Share of ``words`` found in ``text`` (``find_word``)."""
    if not words:
        raise ValueError("coverage: the list of required words is empty.")
    return sum(find_word(text, word) is not None for word in words) / len(words)


class KeywordCoverage:
    """Outcome reward (a TRL reward function): the share of the ``required`` column's words in each completion."""

    __name__ = "keyword_coverage"

    def __call__(self, completions: list, required: list, **kwargs: Any) -> list[float]:
        return [coverage(message_text(c), words) for c, words in zip(completions, required)]


class KeywordTokens(TokenScorer):
    """+1/k on the policy tokens of the first occurrence of each of the k required words (split evenly over them),
    0 elsewhere: per completion the token rewards sum to ``KeywordCoverage`` exactly."""

    default_name = "keyword_tokens"

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        tokenizer = self.require_tokenizer(processing_class)
        required = get_column(kwargs, "required", self.__name__, len(completion_ids))
        results = []
        for ids, words in zip(completion_ids, required):
            if not words:
                raise ValueError(f"{self.__name__}: a completion has an empty list of required words.")
            text, spans = decode_with_spans(tokenizer, ids)
            items = [(span, 1.0 / len(words)) for span in (find_word(text, w) for w in words) if span is not None]
            results.append(spread_scores(spans, items, "even"))
        return results


# ---------------------------------------------------------------- shared plumbing
@dataclass
class ArmRewards:
    """What one arm trains on: TRL reward functions (+ weights) and token reward functions (+ weights)."""

    reward_funcs: list[Any]
    token_funcs: list[Any] = field(default_factory=list)
    token_weights: list[float] = field(default_factory=list)
    primary: str = ""  # the logged outcome reward compared across arms (rewards/<primary>/mean)


# ---------------------------------------------------------------- the tasks
class Task:
    """One task: datasets, held-out scoring and the rewards of each arm; models load once and are shared by runs."""

    name = ""
    threshold_key = ""

    def __init__(self, tiny: bool, work: Path, device: str, args: Any) -> None:
        self.tiny, self.work, self.device, self.args = tiny, work, device, args
        self.scorer_device = None if device == "cpu" else device

    def train_columns(self) -> dict[str, list]:
        raise NotImplementedError

    def held_out(self) -> tuple[list, list[dict[str, Any]]]:
        """(prompts, per-prompt extras) of the held-out set."""
        raise NotImplementedError

    def score(self, samples: list[dict[str, Any]]) -> dict[str, float]:
        """Set ``sample["score"]`` (and task extras) per sample; return the means (``held_out_score`` first)."""
        raise NotImplementedError

    def arm(self, arm: str, policy: Any, tokenizer: Any) -> ArmRewards:
        raise NotImplementedError

    def evaluate(
        self, model: Any, tokenizer: Any, per_prompt: int, max_new_tokens: int, temperature: float, seed: int
    ) -> dict[str, Any]:
        """Held-out samples (``demo.task.sample_completions``: seeded, ``per_prompt`` per prompt) and their scores
        (``means``, ``samples``); the global RNG state is restored, so evaluating leaves training unchanged."""
        import torch

        from trl_token_ext.demo.task import sample_completions

        prompts, extras = self.held_out()
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            samples = sample_completions(model, tokenizer, prompts, per_prompt, max_new_tokens, temperature, seed)
        for index, sample in enumerate(samples):
            sample.update(extras[index // per_prompt], prompt_index=index // per_prompt)
        return {"means": self.score(samples), "samples": samples}

    def describe(self) -> dict[str, Any]:
        return {}


class KeywordsTask(Task):
    name = "keywords"

    def train_columns(self) -> dict[str, list]:
        return keyword_columns("train")

    def held_out(self) -> tuple[list, list[dict[str, Any]]]:
        columns = keyword_columns("held_out")
        return columns["prompt"], [{"required": words} for words in columns["required"]]

    def score(self, samples: list[dict[str, Any]]) -> dict[str, float]:
        for sample in samples:
            sample["score"] = coverage(sample["text"], sample["required"])
        return {"held_out_score": sum(s["score"] for s in samples) / max(1, len(samples))}

    def arm(self, arm: str, policy: Any, tokenizer: Any) -> ArmRewards:
        rewards = ArmRewards([KeywordCoverage()], primary="keyword_coverage")
        if arm in ("token", "shaped"):
            rewards.token_funcs, rewards.token_weights = [KeywordTokens()], [1.0]
        if arm == "shaped":
            from trl_token_ext.scorers import LogProbQuality, RepetitionConsistency
            from trl_token_ext.shared_base import SharedBaseModel

            quality = LogProbQuality(SharedBaseModel(policy), clip_min=-10.0, name="quality_logprob")
            repetition = RepetitionConsistency(n=3, penalty=-1.0, name="consistency_repetition")
            rewards.token_funcs += [quality, repetition]
            rewards.token_weights += [self.args.w_quality_keywords, 1.0]
        return rewards


class SentimentTask(Task):
    name = "sentiment"

    def __init__(self, tiny: bool, work: Path, device: str, args: Any) -> None:
        super().__init__(tiny, work, device, args)
        from trl_token_ext.demo.classifier import prepare_classifier

        self.classifier = prepare_classifier(tiny, work)
        if tiny:
            self.encoder = self.classifier  # the tiny BERT classifier's encoder embeds sentences (as demo --tiny)
        else:
            from trl_token_ext.demo.data import minilm_dir

            self.encoder = str(minilm_dir())
        self._models: dict[str, Any] = {}

    def _get(self, key: str) -> Any:
        """Classifier / encoder scorers, loaded once and shared by every run of the process (stateless)."""
        if key not in self._models:
            from trl_token_ext.scorers import EmbeddingConsistency
            from trl_token_ext.sentence import SentenceClassifierReward

            common = dict(label="positive", device=self.scorer_device)
            topic = dict(column="topic", offset=0.3, device=self.scorer_device)
            self._models[key] = {
                "p_pos": lambda: SentenceClassifierReward(
                    self.classifier, level="sequence", name="sentence_positive", **common
                ),
                "p_pos_tokens": lambda: SentenceClassifierReward(
                    self.classifier, level="token", placement=self.args.placement, name="positive_tokens", **common
                ),
                "topic_completion": lambda: EmbeddingConsistency(  # a TRL reward function: one float each
                    self.encoder, level="sequence", name="topic_completion", **topic
                ),
                "topic_sentence": lambda: EmbeddingConsistency(
                    self.encoder, level="sentence", name="topic_sentence", **topic
                ),
            }[key]()
        return self._models[key]

    def train_columns(self) -> dict[str, list]:
        from trl_token_ext.demo.task import train_dataset_columns

        return train_dataset_columns()

    def held_out(self) -> tuple[list, list[dict[str, Any]]]:
        from trl_token_ext.demo import task

        return task.held_out_prompts(), [{"title": t, "topic": task.topic(t)} for t in task.held_out_titles()]

    def score(self, samples: list[dict[str, Any]]) -> dict[str, float]:
        from trl_token_ext.demo.measures import mentions

        rewards = self._get("p_pos")(completions=[s["text"] for s in samples])
        for sample, reward in zip(samples, rewards):
            sample["score"] = float(reward) if reward is not None else 0.0
            sample["title_mentioned"] = mentions(sample["text"], sample["title"])
        count = max(1, len(samples))
        return {
            "held_out_score": sum(s["score"] for s in samples) / count,
            "title_rate": sum(s["title_mentioned"] for s in samples) / count,
        }

    def arm(self, arm: str, policy: Any, tokenizer: Any) -> ArmRewards:
        if arm == "outcome":
            return ArmRewards([self._get("p_pos"), self._get("topic_completion")], primary="sentence_positive")
        rewards = ArmRewards(
            [self._get("p_pos")],
            [self._get("p_pos_tokens"), self._get("topic_sentence")],
            [1.0, 1.0],
            primary="sentence_positive",
        )
        if arm == "shaped":
            from trl_token_ext.demo.task import TINY_LEXICON, vader_valences
            from trl_token_ext.scorers import LexiconQuality, RepetitionConsistency

            lexicon = TINY_LEXICON if self.tiny else vader_valences()
            rewards.token_funcs += [
                LexiconQuality(lexicon, name="quality_lexicon"),
                RepetitionConsistency(n=3, penalty=-1.0, name="consistency_repetition"),
            ]
            rewards.token_weights += [1.0, 1.0]
        return rewards

    def describe(self) -> dict[str, Any]:
        return {"classifier": str(self.classifier), "encoder": str(self.encoder)}


def make_task(name: str, tiny: bool, work: Path, device: str, args: Any) -> Task:
    """The task called ``name`` (``TASKS``)."""
    classes = {"keywords": KeywordsTask, "sentiment": SentimentTask}
    if name not in classes:
        raise ValueError(f"Unknown task {name!r}; choose from {TASKS}.")
    return classes[name](tiny, work, device, args)


# ---------------------------------------------------------------- statistics
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def steps_to_threshold(curve: Sequence[dict[str, Any]], threshold: float, censor: int) -> tuple[int, bool]:
    """(first eval step whose ``held_out_score`` ≥ ``threshold``, False), or (``censor``, True) if none is."""
    for point in curve:
        if point["held_out_score"] >= threshold:
            return int(point["step"]), False
    return censor, True


def mean_band(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95 % t interval over ``values`` (seeds); no band for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = T_975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def bootstrap_mean(groups: Sequence[Sequence[float]], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``groups`` (one list of sample scores per seed), resampling the
    seeds and then the samples within each drawn seed (fixed RNG ``seed``)."""
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return math.nan, math.nan
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        values = [v for g in rng.choices(groups, k=len(groups)) for v in rng.choices(g, k=len(g))]
        means.append(statistics.fmean(values))
    return _percentiles(means)


def bootstrap_ratio(
    numerator: Sequence[float], denominator: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of mean(numerator) / mean(denominator), resampling paired seeds (draws with a zero
    denominator are skipped)."""
    if len(numerator) != len(denominator) or not numerator:
        return math.nan, math.nan
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        drawn = rng.choices(range(len(numerator)), k=len(numerator))
        below = sum(denominator[i] for i in drawn)
        if below:
            ratios.append(sum(numerator[i] for i in drawn) / below)
    return _percentiles(ratios)


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    values = sorted(values)
    last = len(values) - 1
    return values[round(0.025 * last)], values[round(0.975 * last)]
