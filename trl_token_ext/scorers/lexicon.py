"""LexiconQuality: word -> score lexicons (sentiment, style, banned words) as a token quality scorer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trl_token_ext.choices import Placement
from trl_token_ext.extras import missing_extra
from trl_token_ext.scorers._common import TokenScorer, check_placement, decode_with_spans, spread_scores
from trl_token_ext.text import word_spans


class LexiconQuality(TokenScorer):
    """Q from a word → score lexicon (sentiment, style, banned words), spread over the tokens covering each word.

    Args:
        lexicon: a mapping, or a path to a JSON object or to a ``word<TAB>score`` text file (extra columns ignored,
            as in VADER's ``vader_lexicon.txt``).
        placement: how a word's score reaches its tokens (`trl_token_ext.choices.Placement`): "even" (divided
            equally, default), "sum" (each token gets it), "last", "split" (by shared characters), "mean".
        case_sensitive: match words as written (default: lower-cased).
    """

    default_name = "lexicon_quality"

    def __init__(
        self,
        lexicon: Mapping[str, float] | str | Path,
        *,
        placement: Placement = "even",
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.placement = check_placement(placement, self.__name__)
        self.case_sensitive = case_sensitive
        if isinstance(lexicon, (str, Path)):
            lexicon = self._read(Path(lexicon))
        if not isinstance(lexicon, Mapping) or not lexicon:
            raise ValueError(f"{self.__name__}: lexicon must be a non-empty mapping word -> score or a file path.")
        self.lexicon = {(k if case_sensitive else k.lower()): float(v) for k, v in lexicon.items()}

    def _read(self, path: Path) -> dict[str, float]:
        if not path.exists():
            raise ValueError(f"{self.__name__}: lexicon file {path} does not exist.")
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        lexicon = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0].strip():
                try:
                    lexicon[parts[0].strip()] = float(parts[1])
                except ValueError:
                    continue
        return lexicon

    @classmethod
    def from_vader(cls, **kwargs: Any) -> LexiconQuality:
        """VADER's sentiment lexicon (the ``lexicon`` extra: vaderSentiment; valence in [−4, 4])."""
        import importlib.util

        spec = importlib.util.find_spec("vaderSentiment")
        if spec is None or not spec.submodule_search_locations:
            raise missing_extra("vaderSentiment", "lexicon", "LexiconQuality.from_vader")
        path = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
        return cls(path, **{"name": "vader_lexicon_quality", **kwargs})

    def score(self, prompts, completions, completion_ids, processing_class, **kwargs):
        policy = self.require_tokenizer(processing_class)
        results = []
        for ids in completion_ids:
            text, spans = decode_with_spans(policy, ids)
            items = []
            for word, span in word_spans(text):
                value = self.lexicon.get(word if self.case_sensitive else word.lower())
                if value is not None:
                    items.append((span, value))
            results.append(spread_scores(spans, items, self.placement))
        return results
