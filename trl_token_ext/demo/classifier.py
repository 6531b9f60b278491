"""The demo's sentiment classifiers: MiniLM + LoRA trained on human-rated VADER sentences, cached per recipe.

* :func:`sentiment_classifier_path`: the full recipe (``SENTIMENT_RECIPE``: 10,000 sentences, 2 epochs; ~50 min on
  2 CPU cores the first time), what ``examples/sentiment_classifier.py`` trains;
* :func:`demo_classifier_path`: the demo's smaller one (``DEMO_CLASSIFIER``: 2,000 sentences, 1 epoch);
* :func:`prepare_classifier`: what ``trl-token demo`` uses (given folder, tiny random BERT, cached full recipe, or
  the demo's own).

Each trains once and is cached under ``cache_dir()/<prefix>-<hash of the recipe>`` (merged folder + metrics).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

MINILM = "all-MiniLM-L6-v2"
VADER = "vader"
# ``TrainClassifierArguments`` fields (plus ``neutral_margin`` of ``vader_sentiment_splits``) of the full recipe.
SENTIMENT_RECIPE: dict[str, Any] = {
    "model_name_or_path": MINILM,
    "dataset_name": VADER,
    "num_train_epochs": 2.0,
    "learning_rate": 1e-3,
    "max_train_samples": 10000,
    "lora_target_modules": ["all-linear"],
    "use_cpu": True,
    "neutral_margin": 0.5,
    "seed": 42,
}
# The demo's own classifier when the full recipe is not cached: one epoch on 2,000 VADER sentences with small
# eval/test sets (~1-2 min on 2 cores instead of the full recipe's ~50).
DEMO_CLASSIFIER = {"train": 2000, "eval": 200, "test": 500, "epochs": 1.0, "max_length": 48, "lr": 1e-3, "seed": 42}


def recipe_folder(prefix: str, recipe: dict[str, Any]) -> Path:
    """``cache_dir()/<prefix>-<first 10 hex digits of the recipe's SHA-256>``."""
    from trl_token_ext.demo.data import cache_dir

    recipe = {key: value for key, value in recipe.items() if key != "output_dir"}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"{prefix}-{digest}"


def cached_classifier(prefix: str, recipe: dict[str, Any]) -> Path | None:
    """The merged folder of an already trained classifier ``recipe`` in the cache, or None (nothing is trained)."""
    folder = recipe_folder(prefix, recipe)
    merged = folder / "merged"
    return merged if (merged / "config.json").is_file() and (folder / "metrics.json").is_file() else None


def sentiment_classifier_path(retrain: bool = False, **overrides: Any) -> Path:
    """Folder of the merged MiniLM sentiment classifier (labels ``negative``/``positive``) of ``SENTIMENT_RECIPE``
    updated by ``overrides`` (a different recipe is a different cache entry), trained on first use.

    Load it with ``SentenceClassifierReward(sentiment_classifier_path(), label="positive")``.
    """
    from trl_token_ext.demo.data import minilm_dir, vader_sentiment_splits
    from trl_token_ext.sentence.recipes import TrainClassifierArguments, run_train_classifier

    recipe = {**SENTIMENT_RECIPE, **overrides}
    folder = recipe_folder("sentiment-minilm", recipe)
    cached = cached_classifier("sentiment-minilm", recipe)
    if cached is not None and not retrain:
        return cached
    names = {f.name for f in fields(TrainClassifierArguments)}
    unknown = sorted(set(recipe) - names - {"neutral_margin"})
    if unknown:
        raise ValueError(f"sentiment_classifier_path: unknown recipe fields {unknown}.")
    options = {key: value for key, value in recipe.items() if key in names}
    options.update(model_name_or_path=str(minilm_dir()), output_dir=str(folder))
    args = TrainClassifierArguments(**options)
    splits = vader_sentiment_splits(neutral_margin=recipe["neutral_margin"], seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.json").write_text(json.dumps(recipe, indent=2))
    run_train_classifier(args, splits=(splits["train"], splits["eval"], splits["test"]))
    return folder / "merged"


def demo_classifier_path() -> Path:
    """The demo's MiniLM sentiment classifier (``DEMO_CLASSIFIER``), trained with ``train_sentence_classifier``
    on first use and cached; prints its held-out accuracy."""
    cached = cached_classifier("sentiment-minilm-demo", DEMO_CLASSIFIER)
    if cached is not None:
        return cached
    from trl_token_ext.demo.data import vader_sentiment_splits

    recipe = DEMO_CLASSIFIER
    print(
        f"Training the demo's sentiment classifier once (MiniLM + LoRA, {recipe['train']} VADER sentences, "
        "~2 min on 2 idle cores)...",
        flush=True,
    )
    splits = vader_sentiment_splits(seed=recipe["seed"])
    train = splits["train"].shuffle(seed=recipe["seed"]).select(range(recipe["train"]))
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer's per-step log dicts: the demo prints a summary
        result = _train_demo_classifier(recipe, train, splits)
    print(f"Demo sentiment classifier: test accuracy {result.metrics.get('test_accuracy', float('nan')):.3f}")
    return Path(result.merged_dir)


def _train_demo_classifier(recipe: dict[str, Any], train: Any, splits: Any) -> Any:
    from trl_token_ext.demo.data import minilm_dir
    from trl_token_ext.sentence.train import train_sentence_classifier

    return train_sentence_classifier(
        str(minilm_dir()),
        train,
        splits["eval"].select(range(recipe["eval"])),
        recipe_folder("sentiment-minilm-demo", recipe),
        test_dataset=splits["test"].select(range(recipe["test"])),
        max_length=recipe["max_length"],
        lora_target_modules="all-linear",
        training_args={
            "num_train_epochs": recipe["epochs"],
            "learning_rate": recipe["lr"],
            "seed": recipe["seed"],
            "use_cpu": True,
        },
    )


def prepare_classifier(tiny: bool, work: Path, classifier: str | None = None) -> str:
    """The sentiment classifier folder: ``classifier`` if given; with ``tiny``, a tiny random BERT saved in
    ``work``; else the full-recipe classifier if it is cached, or the demo's smaller one (trained now on first use,
    cached)."""
    if classifier:
        return classifier
    if tiny:
        from trl_token_ext.testing import save_tiny_sequence_classifier

        return str(save_tiny_sequence_classifier(work / "tiny-classifier"))
    cached = cached_classifier("sentiment-minilm", SENTIMENT_RECIPE)
    return str(cached if cached is not None else demo_classifier_path())
