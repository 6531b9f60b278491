"""The demo's task: steer a small chat model toward positive, fluent, non-repetitive one-sentence movie reviews.

Rewards (see docs/demo.md):

* outcome: ``SentenceClassifierReward`` — P(positive) of each sentence from a MiniLM sentiment classifier trained
  on human-rated VADER sentences (mean over the completion's sentences), a stock TRL reward function;
* tokens: the seed formula R(s_t, a_t) = w_quality·Q + w_consistency·C with Q = ``LexiconQuality`` on VADER's
  human-rated word valences (the tokens of "wonderful" earn, those of "boring" lose; ``--quality logprob``: log-prob
  under the frozen starting policy instead) and C = ``RepetitionConsistency`` (-1 on each token that completes a
  repeated 3-gram).

Also here: the prompts (train / held-out), model and classifier preparation, sampling + scoring for the
before/after comparison, and a ``rich`` progress bar callback with live reward figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

MOVIES_TRAIN = [
    "Titanic", "The Matrix", "Jurassic Park", "Toy Story", "The Godfather", "Finding Nemo", "Jaws", "Frozen",
    "Star Wars", "The Lion King", "Inception", "Shrek", "Rocky", "Up", "Alien", "Casablanca",
]  # fmt: skip
MOVIES_HELD_OUT = ["Avatar", "Gladiator", "Cars", "Psycho", "Ratatouille", "Top Gun", "Heat", "Coco"]
TEMPLATES = [
    "Write one sentence about the movie {}.",
    "In one sentence, what did you think of {}?",
]
HELD_OUT_TEMPLATE = "Write one sentence about the movie {}."
# The demo's own classifier when the full cached recipe (``sentiment_classifier_path()``) is absent: MiniLM + LoRA,
# one epoch on 2,000 VADER sentences with small eval/test sets (~1-2 min on 2 cores instead of the full recipe's ~10).
DEMO_CLASSIFIER = {"train": 2000, "eval": 200, "test": 500, "epochs": 1.0, "max_length": 48, "lr": 1e-3, "seed": 42}


SYSTEM = "You are a film critic."  # also replaces SmolLM2's longer default system prompt (fewer tokens per step)


def chat(text: str) -> list[dict[str, str]]:
    """A one-turn conversational prompt with a short system message."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def train_prompts() -> list[list[dict[str, str]]]:
    """Training prompts (conversational), 2 templates × 16 movies."""
    return [chat(template.format(movie)) for movie in MOVIES_TRAIN for template in TEMPLATES]


def held_out_prompts() -> list[list[dict[str, str]]]:
    """Held-out prompts: movies never seen in training."""
    return [chat(HELD_OUT_TEMPLATE.format(movie)) for movie in MOVIES_HELD_OUT]


def prepare_classifier(tiny: bool, work: Path, classifier: str | None = None) -> str:
    """The sentiment classifier folder: ``classifier`` if given; with ``tiny``, a tiny random BERT saved in
    ``work``; else the full-recipe MiniLM classifier if it is cached, or the demo's smaller one (trained now on
    first use, cached)."""
    if classifier:
        return classifier
    if tiny:
        from trl_token_ext.testing import save_tiny_sequence_classifier

        return str(save_tiny_sequence_classifier(work / "tiny-classifier"))
    from dataclasses import asdict

    from trl_token_ext.sentence.recipes import SENTIMENT_RECIPE

    cached = cached_classifier("sentiment-minilm", asdict(SENTIMENT_RECIPE))
    return str(cached if cached is not None else demo_classifier_path())


def _recipe_folder(prefix: str, recipe: dict[str, Any]) -> Path:
    """``cache_dir()/<prefix>-<hash of recipe>`` (the naming of ``sentiment_classifier_path``)."""
    import hashlib
    import json

    from trl_token_ext.sentence.data import cache_dir

    recipe = {key: value for key, value in recipe.items() if key != "output_dir"}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"{prefix}-{digest}"


def cached_classifier(prefix: str, recipe: dict[str, Any]) -> Path | None:
    """The merged folder of an already trained classifier ``recipe`` in the cache, or None (nothing is trained)."""
    folder = _recipe_folder(prefix, recipe)
    merged = folder / "merged"
    return merged if (merged / "config.json").is_file() and (folder / "metrics.json").is_file() else None


def demo_classifier_path() -> Path:
    """The demo's MiniLM sentiment classifier (``DEMO_CLASSIFIER``), trained with
    ``train_sentence_classifier`` on first use and cached; prints its held-out accuracy."""
    cached = cached_classifier("sentiment-minilm-demo", DEMO_CLASSIFIER)
    if cached is not None:
        return cached
    from trl_token_ext.sentence.data import minilm_dir, vader_sentiment_splits
    from trl_token_ext.sentence.train import train_sentence_classifier

    recipe = DEMO_CLASSIFIER
    print(f"Training the demo's sentiment classifier once (MiniLM + LoRA, {recipe['train']} VADER sentences)...")
    splits = vader_sentiment_splits(seed=recipe["seed"])
    train = splits["train"].shuffle(seed=recipe["seed"]).select(range(recipe["train"]))
    result = train_sentence_classifier(
        str(minilm_dir()),
        train,
        splits["eval"].select(range(recipe["eval"])),
        _recipe_folder("sentiment-minilm-demo", recipe),
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
    print(f"Demo sentiment classifier: test accuracy {result.metrics.get('test_accuracy', float('nan')):.3f}")
    return Path(result.merged_dir)


def vader_lexicon_path() -> Path:
    """VADER's ``vader_lexicon.txt`` (word<TAB>valence in [-4, 4]): from an installed ``vaderSentiment`` package, else
    extracted once from its source distribution (the one that also holds the classifier's sentences) into the cache."""
    import importlib.util
    import tarfile
    import tempfile

    from trl_token_ext.sentence.data import VADER_REQUIREMENT, cache_dir, pip_download

    spec = importlib.util.find_spec("vaderSentiment")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
        if installed.is_file():
            return installed
    target = cache_dir() / "vader_lexicon.txt"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        sdist = pip_download(VADER_REQUIREMENT, Path(tmp), source=True)
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("vaderSentiment/vader_lexicon.txt"))
            staging = target.with_suffix(".tmp")
            staging.write_bytes(archive.extractfile(member).read())
            staging.replace(target)
    return target


def vader_valences(scale: float = 0.25) -> dict[str, float]:
    """word → ``scale`` × VADER mean valence (7,500 human-rated words and emoticons; valence in [-4, 4])."""
    valences = {}
    for line in vader_lexicon_path().read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            try:
                valences[parts[0]] = scale * float(parts[1])
            except ValueError:
                continue
    return valences


# --tiny (tests, no download): a handful of words with their VADER valences / 4.
TINY_LEXICON = {"good": 0.475, "great": 0.775, "wonderful": 0.675, "loved": 0.725, "nice": 0.45, "bad": -0.625,
                "awful": -0.5, "boring": -0.325, "terrible": -0.6, "hated": -0.725, "dull": -0.425}  # fmt: skip


def build_token_rewards(policy: Any, quality: str = "lexicon", tiny: bool = False) -> list[Any]:
    """[Q, C] of the seed formula.

    Q: ``"lexicon"`` — ``LexiconQuality`` with VADER's human-rated word valences / 4 (in [-1, 1]; each word's value
    split over its tokens; ``TINY_LEXICON`` with ``tiny``), or ``"logprob"`` — ``LogProbQuality`` under the frozen
    starting policy (adapter disabled, clipped at -10: fluency; one more forward pass per step).
    C: ``RepetitionConsistency`` (-1 on each token that completes an already generated 3-gram).
    """
    from trl_token_ext.scorers import LexiconQuality, LogProbQuality, RepetitionConsistency

    if quality == "lexicon":
        q = LexiconQuality(TINY_LEXICON if tiny else vader_valences(), name="quality_lexicon")
    elif quality == "logprob":
        from trl_token_ext.models import SharedBaseModel

        q = LogProbQuality(SharedBaseModel(policy), clip_min=-10.0, name="quality_logprob")
    else:
        raise ValueError(f"Unknown quality scorer {quality!r}; use 'lexicon' or 'logprob'.")
    return [q, RepetitionConsistency(n=3, penalty=-1.0, name="consistency_repetition")]


def load_policy(model_path: str, lora_r: int, load_in_4bit: bool) -> tuple[Any, Any, Any]:
    """(policy, LoRA config, tokenizer) through ``trl_token_ext.models.load_policy`` (TRL's ``ModelConfig``)."""
    from transformers import AutoTokenizer
    from trl import ModelConfig

    from trl_token_ext.models import load_policy as load

    model_args = ModelConfig(
        model_name_or_path=model_path,
        dtype="float32",
        use_peft=True,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.0,
        lora_target_modules=["all-linear"],
        load_in_4bit=load_in_4bit,
    )
    policy, peft_config = load(model_args)
    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return policy, peft_config, tokenizer


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[dict[str, str]]],
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Sample ``num_samples`` completions per prompt (seeded, batched). One dict per sample, prompt-major:
    ``prompt``, ``text`` and ``completion_ids`` (cut after the first EOS, which is kept, as in TRL)."""
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    stop = _stop_ids(tokenizer, model)
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(stop) or None,
        )
    model.train(was_training)
    samples = []
    for row, sequence in enumerate(output[:, inputs["input_ids"].shape[1] :].tolist()):
        ids = []
        for token in sequence:
            ids.append(token)
            if token in stop:
                break
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        samples.append({"prompt": prompts[row // num_samples], "text": text, "completion_ids": ids})
    return samples


def score_samples(samples: list[dict[str, Any]], sentence_reward: Any) -> float:
    """Store each sample's sentence reward under ``"reward"``; return their mean."""
    rewards = sentence_reward(completions=[s["text"] for s in samples])
    for sample, reward in zip(samples, rewards):
        sample["reward"] = float(reward) if reward is not None else math.nan
    values = [s["reward"] for s in samples if not math.isnan(s["reward"])]
    return sum(values) / max(1, len(values))


def token_reward_values(
    samples: list[dict[str, Any]], token_funcs: Sequence[Any], weights: Sequence[float], tokenizer: Any
) -> list[list[float]]:
    """R = Σ_k w_k·g_k per token of each sample (a (len(completion_ids),) list per sample)."""
    kwargs = {
        "prompts": [s["prompt"] for s in samples],
        "completions": [[{"role": "assistant", "content": s["text"]}] for s in samples],
        "completion_ids": [s["completion_ids"] for s in samples],
        "processing_class": tokenizer,
    }
    totals = [[0.0] * len(s["completion_ids"]) for s in samples]
    for func, weight in zip(token_funcs, weights):
        for total, values in zip(totals, func(**kwargs)):
            if values is not None:
                for t, value in enumerate(list(values)):
                    total[t] += float(weight) * float(value)
    return totals


SHORT_NAMES = {"reward": "reward", "rewards/sentence_positive/mean": "P(pos)"}


class RichRewardProgress(TrainerCallback):
    """A ``rich`` progress bar over the optimizer steps, showing the latest logged reward figures."""

    def __init__(self, console: Any = None, description: str = "GRPO"):
        self.console, self.description = console, description
        self.progress = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[figures]}"),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=state.max_steps, figures="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        figures = []
        for key, value in logs.items():
            if not isinstance(value, (int, float)):
                continue
            if key in SHORT_NAMES:
                figures.append(f"{SHORT_NAMES[key]}={value:.3f}")
            elif key.startswith("token_rewards/") and key.endswith("/mean"):
                figures.append(f"{key.split('/')[1]}={value:+.3f}")
        if figures:
            self.progress.update(self.task, figures=" ".join(figures))

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
