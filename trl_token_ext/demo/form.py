"""Token rewards for the form the sentiment prompt asks — one sentence, no stutter — each on the token that breaks it.

* `ExtraSentence`: ``penalty`` on the first token of every sentence after the first (the token where the reply
  should have ended; pySBD sentences, `trl_token_ext.sentence.split_sentences`);
* `RepeatedWord`: ``penalty`` on every token of a word that repeats the word right before it, case-insensitive,
  punctuation between them ignored ("immersive, immersive"; `RepetitionConsistency` only sees repeated 3-grams);
* `SharedOpening`: ``penalty`` on the tokens of the first ``words`` words of a reply when another reply to the same
  prompt opens with the same words (case-insensitive): a push away from one template for every reply.

All are local: the rest of the reply gets 0, so with reward-to-go credit (the default) the penalty reaches the
tokens up to the break and nothing after it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from trl_token_ext.alignment import spread_span_scores
from trl_token_ext.scorers._common import TokenScorer, decode_with_spans, group_indices, word_spans


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
    """``penalty`` on each token of the first ``words`` words of a reply whose opening another reply of its group
    shares (groups: runs of equal consecutive prompts, as TRL orders them; replies shorter than ``words`` words are
    never penalized)."""

    default_name = "shared_opening"

    def __init__(self, penalty: float = -1.0, words: int = 3, name: str | None = None) -> None:
        super().__init__(name)
        if words < 1:
            raise ValueError(f"{self.__name__}: words must be >= 1, got {words}.")
        self.penalty, self.words = float(penalty), words

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs: Any) -> list[list[float]]:
        tokenizer = self.require_tokenizer(processing_class)
        decoded = [decode_with_spans(tokenizer, ids) for ids in completion_ids]
        firsts = [word_spans(text)[: self.words] for text, _ in decoded]
        openings = [tuple(word.lower() for word, _ in first) for first in firsts]
        results = [[0.0] * len(ids) for ids in completion_ids]
        for group in group_indices(prompts, None, self.__name__):
            counts = Counter(openings[i] for i in group)
            for i in group:
                if len(openings[i]) == self.words and counts[openings[i]] > 1:
                    span = (firsts[i][0][1][0], firsts[i][-1][1][1])
                    results[i] = spread_span_scores(decoded[i][1], [span], [self.penalty], "sum")
        return results
