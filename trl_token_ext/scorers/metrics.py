"""MetricReward: a text-similarity metric from `evaluate` (BLEU, ROUGE, chrF, ...) against a dataset column.

Usable as a stock TRL (sequence-level) reward function, and as a token reward through
``PotentialShaping(MetricReward(...))`` or :meth:`MetricReward.as_token_reward`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from trl_token_ext.scorers._common import get_column, message_text

logger = logging.getLogger("trl_token_ext.scorers")

LOCAL_METRICS_DIR = Path(__file__).parent / "evaluate_metrics"
LOCAL_METRICS = ("bleu", "chrf", "rouge", "sacrebleu")
# metric -> (output key, divisor) giving a per-sample reward in [0, 1].
DEFAULT_KEYS: dict[str, tuple[str, float]] = {
    "bleu": ("bleu", 1.0),
    "sacrebleu": ("score", 100.0),
    "chrf": ("score", 100.0),
    "rouge": ("rougeL", 1.0),
    "meteor": ("meteor", 1.0),
    "google_bleu": ("google_bleu", 1.0),
}


def _hub_offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")
    return any(os.environ.get(flag, "").lower() in ("1", "true", "yes") for flag in flags)


def load_metric(name: str, source: str = "auto", **load_kwargs: Any):
    """An ``evaluate`` module by name or path.

    ``source="hub"``: ``evaluate.load(name)``; ``"local"``: the offline module shipped here (bleu, sacrebleu, chrf,
    rouge; backed by the sacrebleu / rouge-score packages); ``"auto"``: the Hub path unless the Hub is marked offline
    (``HF_HUB_OFFLINE=1``) or unreachable, then the local module.
    """
    import evaluate

    if source not in ("auto", "hub", "local"):
        raise ValueError(f"source must be 'auto', 'hub' or 'local', got {source!r}.")
    if Path(name).exists():
        return evaluate.load(str(name), **load_kwargs)
    local = name in LOCAL_METRICS
    if source == "local" or (source == "auto" and local and _hub_offline()):
        if not local:
            raise ValueError(f"No offline module for metric {name!r}; offline metrics are {list(LOCAL_METRICS)}.")
        return evaluate.load(str(LOCAL_METRICS_DIR / f"{name}.py"), **load_kwargs)
    try:
        return evaluate.load(name, **load_kwargs)
    except Exception as error:  # no Hub access: FileNotFoundError, ConnectionError, ...
        if source == "hub" or not local:
            raise
        logger.info("evaluate.load(%r) failed (%s); using the offline module.", name, error)
        return evaluate.load(str(LOCAL_METRICS_DIR / f"{name}.py"), **load_kwargs)


class MetricReward:
    """r(x, y) = metric(y, reference) / scale, per completion, with ``reference`` the dataset column.

    Args:
        metric: an ``evaluate`` module name/path (see :func:`load_metric`) or a loaded ``EvaluationModule``.
        reference_column: dataset column with the reference (a string, or a list of strings for several).
        key: output field used as the score (default per metric: bleu→"bleu", sacrebleu/chrf→"score"/100,
            rouge→"rougeL"); ``scale`` divides it (default 100 for sacrebleu/chrf, else 1).
        compute_kwargs: passed to ``metric.compute`` (e.g. ``{"smooth": True}`` for bleu).
    """

    def __init__(
        self,
        metric: Any = "sacrebleu",
        reference_column: str = "reference",
        *,
        key: str | None = None,
        scale: float | None = None,
        compute_kwargs: dict[str, Any] | None = None,
        source: str = "auto",
        name: str | None = None,
    ) -> None:
        self.metric_name = metric if isinstance(metric, str) else getattr(metric, "name", type(metric).__name__)
        self.__name__ = name or f"{Path(self.metric_name).stem}_reward"
        self.metric = load_metric(metric, source=source) if isinstance(metric, str) else metric
        default_key, default_scale = DEFAULT_KEYS.get(Path(self.metric_name).stem.lower(), (None, 1.0))
        self.key = key or default_key
        if self.key is None:
            raise ValueError(f"{self.__name__}: pass key=... (the output field of metric {self.metric_name!r}).")
        self.scale = float(scale if scale is not None else default_scale)
        self.reference_column = reference_column
        self.compute_kwargs = dict(compute_kwargs or {})

    def __repr__(self) -> str:
        return f"MetricReward({self.metric_name!r}, reference_column={self.reference_column!r}, key={self.key!r})"

    def _score_one(self, prediction: str, references: list[str]) -> float:
        output = self.metric.compute(predictions=[prediction], references=[references], **self.compute_kwargs)
        if self.key not in output:
            raise ValueError(f"{self.__name__}: metric output has no key {self.key!r}; keys: {sorted(output)}.")
        value = output[self.key]
        value = value[0] if isinstance(value, list) else value
        return float(value) / self.scale

    def __call__(self, prompts=None, completions=None, **kwargs: Any) -> list[float | None]:
        """One score per completion (None where the reference is None): a TRL reward function."""
        completions = list(completions or [])
        references = get_column(kwargs, self.reference_column, self.__name__, len(completions))
        scores: list[float | None] = []
        cache: dict[tuple[str, tuple[str, ...]], float] = {}
        for index, (completion, reference) in enumerate(zip(completions, references)):
            if reference is None:
                scores.append(None)
                continue
            refs = [reference] if isinstance(reference, str) else [message_text(r) for r in reference]
            if not refs:
                raise ValueError(f"{self.__name__}: sample {index} has an empty '{self.reference_column}' list.")
            text = message_text(completion)
            key = (text, tuple(refs))
            if key not in cache:
                cache[key] = self._score_one(text, refs)
            scores.append(cache[key])
        return scores

    def as_token_reward(self, gamma: float = 1.0, name: str | None = None):
        """A token reward: potential-based shaping of this metric on completion prefixes (see PotentialShaping)."""
        from trl_token_ext.scorers.shaping import PotentialShaping

        return PotentialShaping(self, gamma=gamma, name=name or f"{self.__name__}_shaping")
