"""Consistency scorers C(s_t, a_t): repetition, support by a reference column, agreement within the group."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from trl_token_ext.choices import Placement
from trl_token_ext.scorers._common import (
    TokenScorer,
    check_placement,
    decode_with_spans,
    get_column,
    group_indices,
    spread_scores,
)
from trl_token_ext.text import message_text, prompt_text, sentence_spans, word_spans


class RepetitionConsistency(TokenScorer):
    """C(s_t, a_t) = ``penalty`` when token t completes an n-gram of token ids already generated, else 0.

    An n-gram "already generated" ends before token t in the same completion (occurrences may overlap), or anywhere
    in the prompt when ``include_prompt`` (the prompt re-tokenized with the policy tokenizer). N-grams containing a
    special token (EOS, padding) are ignored when ``ignore_special_tokens``.
    """

    default_name = "repetition_consistency"

    def __init__(
        self,
        n: int = 3,
        penalty: float = -1.0,
        *,
        include_prompt: bool = False,
        ignore_special_tokens: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{self.__name__}: n must be a positive int, got {n!r}.")
        self.n, self.penalty = n, float(penalty)
        self.include_prompt, self.ignore_special_tokens = include_prompt, ignore_special_tokens

    def _ngrams(self, ids: list[int], special: set[int]) -> Iterable[tuple[int, tuple[int, ...]]]:
        """(index of the last token, n-gram) for every n-gram of ``ids`` without special tokens."""
        for end in range(self.n - 1, len(ids)):
            gram = tuple(ids[end - self.n + 1 : end + 1])
            if not special or not special.intersection(gram):
                yield end, gram

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        tokenizer = getattr(processing_class, "tokenizer", processing_class)
        special = set(getattr(tokenizer, "all_special_ids", []) or []) if self.ignore_special_tokens else set()
        if self.include_prompt:
            tokenizer = self.require_tokenizer(processing_class)
        results = []
        for prompt, ids in zip(prompts, completion_ids):
            seen: set[tuple[int, ...]] = set()
            if self.include_prompt and prompt:
                prompt_ids = tokenizer(prompt_text(prompt, tokenizer), add_special_tokens=False)["input_ids"]
                seen.update(gram for _, gram in self._ngrams(list(prompt_ids), special))
            values = [0.0] * len(ids)
            for end, gram in self._ngrams(ids, special):
                if gram in seen:
                    values[end] = self.penalty
                seen.add(gram)
            results.append(values)
        return results


def _normalize(word: str, case_sensitive: bool) -> str:
    return word if case_sensitive else word.lower()


class ReferenceConsistency(TokenScorer):
    """C(s_t, a_t) from word support: each completion word found in the dataset column ``column`` (a reference
    answer, a source document) scores ``supported``, any other word ``unsupported``, placed on its tokens by
    ``placement`` (`trl_token_ext.choices.Placement`; default "even": divided equally).

    Words in ``ignore_words`` (e.g. stop words) score 0. A None reference gives None (that completion unscored).
    """

    default_name = "reference_consistency"

    def __init__(
        self,
        column: str = "reference",
        *,
        supported: float = 1.0,
        unsupported: float = 0.0,
        placement: Placement = "even",
        ignore_words: Iterable[str] = (),
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.column, self.supported, self.unsupported = column, float(supported), float(unsupported)
        self.placement = check_placement(placement, self.__name__)
        self.case_sensitive = case_sensitive
        self.ignore_words = {_normalize(w, case_sensitive) for w in ignore_words}

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        references = get_column(kwargs, self.column, self.__name__, len(completion_ids))
        policy = self.require_tokenizer(processing_class)
        results: list[list[float] | None] = []
        for reference, ids in zip(references, completion_ids):
            if reference is None:
                results.append(None)
                continue
            if isinstance(reference, (list, tuple)) and not (reference and isinstance(reference[0], dict)):
                reference = " ".join(message_text(r) for r in reference)
            vocabulary = {_normalize(w, self.case_sensitive) for w, _ in word_spans(message_text(reference))}
            text, spans = decode_with_spans(policy, ids)
            items = []
            for word, span in word_spans(text):
                key = _normalize(word, self.case_sensitive)
                if key not in self.ignore_words:
                    items.append((span, self.supported if key in vocabulary else self.unsupported))
            results.append(spread_scores(spans, items, self.placement))
        return results


@functools.lru_cache(maxsize=65536)
def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of ``text`` (cached: a sentence is compared with many others)."""
    return frozenset(w.lower() for w, _ in word_spans(text))


def jaccard(a: str, b: str) -> float:
    """|W(a) ∩ W(b)| / |W(a) ∪ W(b)| over lower-cased word sets (0 when both are empty)."""
    wa, wb = word_set(a), word_set(b)
    union = len(wa | wb)
    return len(wa & wb) / union if union else 0.0


class SelfConsistency(TokenScorer):
    """C(s_t, a_t) = agreement of token t's sentence with the other completions of the same prompt's group.

    For sentence s of completion i in group G: C(s) = mean_{j ∈ G, j ≠ i} max_{s' ∈ sentences(y_j)} sim(s, s'),
    with ``similarity`` a callable (str, str) → float (default: word-set Jaccard). Every token of the sentence gets
    C(s) (``placement="sum"``; or "even", "last", ...). Groups: ``num_generations`` consecutive completions, or
    (None) runs of consecutive equal prompts, as TRL's sampler lays them out.
    A completion alone in its group gets None.

    Cost: every sentence is compared with every sentence of the other completions, O(G·S²) similarity calls for S
    sentences per completion, so quadratic in the completion length T by definition (measured, 2 completions, default
    Jaccard, whose word sets are cached per sentence: see docs/benchmarks.md). For long completions prefer a
    linear consistency signal: `ReferenceConsistency` against the prompt or a reference column.
    """

    default_name = "self_consistency"

    def __init__(
        self,
        num_generations: int | None = None,
        *,
        similarity: Callable[[str, str], float] = jaccard,
        placement: Placement = "sum",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.num_generations, self.similarity = num_generations, similarity
        self.placement = check_placement(placement, self.__name__)

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        policy = self.require_tokenizer(processing_class)
        decoded = [decode_with_spans(policy, ids) for ids in completion_ids]
        sentences = [sentence_spans(text) for text, _ in decoded]
        results: list[list[float] | None] = [None] * len(completion_ids)
        for group in group_indices(prompts, self.num_generations, self.__name__):
            for i in group:
                others = [j for j in group if j != i]
                if not others:
                    continue
                items = []
                for sentence, span in sentences[i]:
                    agreement = [
                        max((self.similarity(sentence, other) for other, _ in sentences[j]), default=0.0)
                        for j in others
                    ]
                    items.append((span, sum(agreement) / len(agreement)))
                results[i] = spread_scores(decoded[i][1], items, self.placement)
        return results
