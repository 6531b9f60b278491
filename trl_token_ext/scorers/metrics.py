"""MetricReward: a text-similarity metric (BLEU, chrF, ROUGE) against a dataset column, one batch per call.

The built-in metrics are computed by their own libraries (``sacrebleu``, ``rouge-score``), per sample, for the whole
batch at once. Usable as a stock TRL (sequence-level) reward function, and as a token reward through
``PotentialShaping(MetricReward(...))`` or :meth:`MetricReward.as_token_reward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trl_token_ext.extras import require
from trl_token_ext.scorers._common import get_column
from trl_token_ext.scorers.shaping import PotentialShaping
from trl_token_ext.text import message_text

# metric -> (default output key, divisor) giving a per-sample reward in [0, 1].
DEFAULT_KEYS: dict[str, tuple[str, float]] = {
    "bleu": ("bleu", 1.0),
    "sacrebleu": ("score", 100.0),
    "chrf": ("score", 100.0),
    "rouge": ("rougeL", 1.0),
    "meteor": ("meteor", 1.0),
    "google_bleu": ("google_bleu", 1.0),
}


def _library(module: str) -> Any:
    """Import the metric library ``module``, with the install command when it is missing."""
    return require(module, "metrics", "MetricReward's built-in metrics")


class BatchMetric:
    """A built-in metric scoring every (prediction, references) pair of a batch with its own library.

    ``name``: "sacrebleu" (BLEU 0-100; options smooth_method, smooth_value, lowercase, tokenize,
    use_effective_order), "bleu" (BLEU 0-1 with 13a tokens; max_order, smooth), "chrf" (0-100; char_order,
    word_order, beta, lowercase, whitespace, eps_smoothing) or "rouge" (F-measures 0-1; rouge_types, use_stemmer,
    tokenizer). The options are those of the ``evaluate`` modules of the same names, with the same values.
    """

    def __init__(self, name: str, **options: Any) -> None:
        if name not in BUILTIN_METRICS:
            raise ValueError(
                f"No built-in implementation for metric {name!r} (built-in: {sorted(BUILTIN_METRICS)}); pass a loaded "
                "metric object with a .compute(predictions=..., references=...) method, e.g. evaluate.load(name), "
                "and key=..."
            )
        self.name = name
        self._score = BUILTIN_METRICS[name](**options)

    def __repr__(self) -> str:
        return f"BatchMetric({self.name!r})"

    def score_batch(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, float]]:
        """(N,) predictions and (N,) lists of references → (N,) dicts of output key → value."""
        return [self._score(prediction, list(refs)) for prediction, refs in zip(predictions, references)]


def _sacrebleu(smooth_method="exp", smooth_value=None, lowercase=False, tokenize=None, use_effective_order=False):
    BLEU = _library("sacrebleu.metrics").BLEU  # noqa: N806

    kwargs = {} if tokenize is None else {"tokenize": tokenize}
    bleu = BLEU(
        smooth_method=smooth_method,
        smooth_value=smooth_value,
        lowercase=lowercase,
        effective_order=use_effective_order,
        **kwargs,
    )

    def score(prediction: str, refs: list[str]) -> dict[str, float]:
        output = bleu.corpus_score([prediction], [[ref] for ref in refs])
        return {"score": output.score, "bp": output.bp, "sys_len": output.sys_len, "ref_len": output.ref_len}

    return score


def _bleu(max_order=4, smooth=False):
    bleu = _library("sacrebleu.metrics").BLEU(
        max_ngram_order=max_order,
        smooth_method="add-k" if smooth else "none",
        smooth_value=1 if smooth else None,
        tokenize="13a",
    )

    def score(prediction: str, refs: list[str]) -> dict[str, float]:
        output = bleu.corpus_score([prediction], [[ref] for ref in refs])
        ratio = output.sys_len / max(output.ref_len, 1)
        return {"bleu": output.score / 100.0, "brevity_penalty": output.bp, "length_ratio": ratio}

    return score


def _chrf(char_order=6, word_order=0, beta=2, lowercase=False, whitespace=False, eps_smoothing=False):
    chrf = _library("sacrebleu.metrics").CHRF(char_order, word_order, beta, lowercase, whitespace, eps_smoothing)

    def score(prediction: str, refs: list[str]) -> dict[str, float]:
        return {"score": chrf.corpus_score([prediction], [[ref] for ref in refs]).score}

    return score


def _rouge(rouge_types=None, use_stemmer=False, tokenizer=None, use_aggregator=None):
    rouge_scorer = _library("rouge_score.rouge_scorer")
    rouge_types = list(rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"])
    scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)

    def score(prediction: str, refs: list[str]) -> dict[str, float]:
        result = scorer.score(refs[0], prediction) if len(refs) == 1 else scorer.score_multi(refs, prediction)
        return {key: value.fmeasure for key, value in result.items()}

    return score


BUILTIN_METRICS = {"sacrebleu": _sacrebleu, "bleu": _bleu, "chrf": _chrf, "rouge": _rouge}


def load_metric(name: str, source: str = "auto", **options: Any) -> BatchMetric:
    """The built-in metric ``name`` ("sacrebleu", "bleu", "chrf", "rouge"), computed offline by its library.

    ``source`` is accepted for compatibility ("auto", "hub", "local": all give the built-in metric; for a Hub
    metric, pass ``evaluate.load(name)`` to `MetricReward` yourself). ``options`` configure the metric (see
    :class:`BatchMetric`).
    """
    if source not in ("auto", "hub", "local"):
        raise ValueError(f"source must be 'auto', 'hub' or 'local', got {source!r}.")
    return BatchMetric(name, **options)


class MetricReward:
    """r(x, y) = metric(y, reference) / scale, per completion, with ``reference`` the dataset column.

    Args:
        metric: a built-in metric name ("sacrebleu", "bleu", "chrf", "rouge"; see :func:`load_metric`), a
            :class:`BatchMetric`, or any object with ``.compute(predictions=[...], references=[[...]])`` (e.g. a
            loaded ``evaluate`` module; then called once per distinct completion).
        reference_column: dataset column with the reference (a string, or a list of strings for several).
        key: output field used as the score (default per metric: bleu→"bleu", sacrebleu/chrf→"score"/100,
            rouge→"rougeL"); ``scale`` divides it (default 100 for sacrebleu/chrf, else 1).
        compute_kwargs: the metric's options (e.g. ``{"smooth": True}`` for bleu), as for ``evaluate``'s ``compute``.
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
        self.compute_kwargs = dict(compute_kwargs or {})
        if isinstance(metric, str):
            metric = load_metric(metric, source=source, **self.compute_kwargs)
        self.metric_name = getattr(metric, "name", type(metric).__name__)
        self.__name__ = name or f"{self.metric_name}_reward"
        self.metric = metric
        default_key, default_scale = DEFAULT_KEYS.get(str(self.metric_name).lower(), (None, 1.0))
        self.key = key or default_key
        if self.key is None:
            raise ValueError(f"{self.__name__}: pass key=... (the output field of metric {self.metric_name!r}).")
        self.scale = float(scale if scale is not None else default_scale)
        self.reference_column = reference_column

    def __repr__(self) -> str:
        return f"MetricReward({self.metric_name!r}, reference_column={self.reference_column!r}, key={self.key!r})"

    def _outputs(self, predictions: list[str], references: list[list[str]]) -> list[dict[str, Any]]:
        if isinstance(self.metric, BatchMetric):
            return self.metric.score_batch(predictions, references)
        return [
            self.metric.compute(predictions=[prediction], references=[refs], **self.compute_kwargs)
            for prediction, refs in zip(predictions, references)
        ]

    def _value(self, output: dict[str, Any]) -> float:
        if self.key not in output:
            raise ValueError(f"{self.__name__}: metric output has no key {self.key!r}; keys: {sorted(output)}.")
        value = output[self.key]
        value = value[0] if isinstance(value, list) else value
        return float(value) / self.scale

    def __call__(self, prompts=None, completions=None, **kwargs: Any) -> list[float | None]:
        """One score per completion (None where the reference is None): a TRL reward function.

        The distinct (completion, references) pairs of the batch are scored in one call of the metric.
        """
        completions = list(completions or [])
        references = get_column(kwargs, self.reference_column, self.__name__, len(completions))
        keys: list[tuple[str, tuple[str, ...]] | None] = []
        for index, (completion, reference) in enumerate(zip(completions, references)):
            if reference is None:
                keys.append(None)
                continue
            refs = [reference] if isinstance(reference, str) else [message_text(r) for r in reference]
            if not refs:
                raise ValueError(f"{self.__name__}: sample {index} has an empty '{self.reference_column}' list.")
            keys.append((message_text(completion), tuple(refs)))
        unique = list(dict.fromkeys(key for key in keys if key is not None))
        outputs = self._outputs([text for text, _ in unique], [list(refs) for _, refs in unique])
        scores = {key: self._value(output) for key, output in zip(unique, outputs)}
        return [None if key is None else scores[key] for key in keys]

    def as_token_reward(self, gamma: float = 1.0, name: str | None = None):
        """A token reward: potential-based shaping of this metric on completion prefixes (see PotentialShaping)."""
        return PotentialShaping(self, gamma=gamma, name=name or f"{self.__name__}_shaping")
