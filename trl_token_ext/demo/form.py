"""Token rewards for the form the sentiment prompt asks — one sentence, no stutter — each on the token that breaks it.

* `ExtraSentence`: ``penalty`` on the first token of every sentence after the first (the token where the reply
  should have ended; pySBD sentences, `trl_token_ext.sentence.split_sentences`);
* `RepeatedWord`: ``penalty`` on every token of a word that repeats the word right before it, case-insensitive,
  punctuation between them ignored ("immersive, immersive"; `RepetitionConsistency` only sees repeated 3-grams);
* `SharedOpening`: ``penalty`` on the tokens of the first 3 words of a reply when another reply of the batch opens
  with the same words, the asked title masked ("Avatar is a" = "Heat is a"): a push away from one template for
  every reply;
* `Unfinished`: ``penalty`` on the last token of a reply cut off by the token limit in mid-sentence.

All are local: the rest of the reply gets 0, so with reward-to-go credit (the default) the penalty reaches the
tokens up to the break and nothing after it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from trl_token_ext.alignment import spread_span_scores
from trl_token_ext.scorers._common import TokenScorer, decode_with_spans, get_column
from trl_token_ext.text import word_spans


class _SpanPenalty(TokenScorer):
    """``penalty`` on the tokens overlapping the character spans returned by :meth:`spans` (one list per text)."""

    def __init__(self, penalty: float = -1.0, name: str | None = None) -> None:
        super().__init__(name)
        self.penalty = float(penalty)

    def spans(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs: Any) -> list[list[float]]:
        tokenizer = self.require_tokenizer(processing_class)
        results = []
        for ids in completion_ids:
            text, token_spans = decode_with_spans(tokenizer, ids)
            spans = self.spans(text)
            results.append(spread_span_scores(token_spans, spans, [self.penalty] * len(spans), "sum"))
        return results


class ExtraSentence(_SpanPenalty):
    """``penalty`` on the token that starts each sentence after the first."""

    default_name = "extra_sentence"

    def spans(self, text: str) -> list[tuple[int, int]]:
        from trl_token_ext.sentence import split_sentences

        return [(start, start + 1) for start, _ in split_sentences(text)[1:]]


class RepeatedWord(_SpanPenalty):
    """``penalty`` on each token of a word equal to the word before it (case-insensitive)."""

    default_name = "repeated_word"

    def spans(self, text: str) -> list[tuple[int, int]]:
        words = word_spans(text)
        return [span for (previous, _), (word, span) in zip(words, words[1:]) if word.lower() == previous.lower()]


class SharedOpening(TokenScorer):
    """``penalty`` on each token of the first ``words`` words of a reply whose opening another reply of the same
    batch shares — the opening as the template-share measure defines it (`demo.measures.opening`: lower case, the
    dataset column ``column``'s title replaced by ``<title>``, so "Avatar is a" and "Heat is a" are shared). Replies
    shorter than ``words`` words are never penalized."""

    default_name = "shared_opening"

    def __init__(self, penalty: float = -1.0, words: int = 3, column: str = "title", name: str | None = None) -> None:
        super().__init__(name)
        if words < 1:
            raise ValueError(f"{self.__name__}: words must be >= 1, got {words}.")
        self.penalty, self.words, self.column = float(penalty), words, column

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs: Any) -> list[list[float]]:
        from trl_token_ext.demo.measures import opening

        tokenizer = self.require_tokenizer(processing_class)
        titles = get_column(kwargs, self.column, self.__name__, len(completion_ids))
        decoded = [decode_with_spans(tokenizer, ids) for ids in completion_ids]
        openings = [opening(text, title, self.words) for (text, _), title in zip(decoded, titles)]
        counts = Counter(openings)
        results = []
        for (text, token_spans), shared in zip(decoded, openings):
            first = word_spans(text)[: self.words]
            if len(shared) < self.words or counts[shared] < 2 or len(first) < self.words:
                results.append([0.0] * len(token_spans))
                continue
            span = (first[0][1][0], first[-1][1][1])
            results.append(spread_span_scores(token_spans, [span], [self.penalty], "sum"))
        return results


class Unfinished(TokenScorer):
    """``penalty`` on the last token of a reply that stopped at the token limit (no special end token last) in the
    middle of a sentence (`demo.measures.cut_off`): the reply ran past what the limit allows."""

    default_name = "unfinished"

    def __init__(self, penalty: float = -1.0, name: str | None = None) -> None:
        super().__init__(name)
        self.penalty = float(penalty)

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs: Any) -> list[list[float]]:
        from trl_token_ext.demo.measures import cut_off

        tokenizer = self.require_tokenizer(processing_class)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        results = []
        for ids in completion_ids:
            values = [0.0] * len(ids)
            text, _ = decode_with_spans(tokenizer, ids)
            if ids and cut_off(text, truncated=ids[-1] not in special):
                values[-1] = self.penalty
            results.append(values)
        return results
