"""The demo's task: steer a small chat model toward positive, fluent, non-repetitive one-sentence movie reviews.

Rewards (see docs/demo.md):

* outcome: ``SentenceClassifierReward`` — P(positive) of each sentence from a MiniLM sentiment classifier trained
  on human-rated VADER sentences (mean over the completion's sentences), a stock TRL reward function;
* tokens: the seed formula R(s_t, a_t) = w_quality·Q + w_consistency·C with Q = ``LexiconQuality`` on VADER's
  human-rated word valences (the tokens of "wonderful" earn, those of "boring" lose; ``--quality logprob``: log-prob
  under the frozen starting policy instead) and C = ``RepetitionConsistency`` (-1 on each token that completes a
  repeated 3-gram).

Also here: the prompts (train / held-out), loading the policy, sampling + scoring for the before/after comparison,
and a ``rich`` progress bar callback with live reward figures (the classifier is prepared in ``classifier.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
SYSTEM = "You are a film critic."  # also replaces SmolLM2's longer default system prompt (fewer tokens per step)


def chat(text: str) -> list[dict[str, str]]:
    """A one-turn conversational prompt with a short system message."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def train_prompts() -> list[list[dict[str, str]]]:
    """Training prompts (conversational), 2 templates × 16 movies."""
    return [chat(template.format(movie)) for movie in MOVIES_TRAIN for template in TEMPLATES]


def held_out_titles() -> list[str]:
    """The movie of each held-out prompt (the held-out title-mention measure looks for it)."""
    return list(MOVIES_HELD_OUT)


def held_out_prompts() -> list[list[dict[str, str]]]:
    """Held-out prompts: movies never seen in training."""
    return [chat(HELD_OUT_TEMPLATE.format(movie)) for movie in MOVIES_HELD_OUT]


def vader_valences(scale: float = 0.25) -> dict[str, float]:
    """word → ``scale`` × VADER mean valence (7,500 human-rated words and emoticons; valence in [-4, 4]), read by
    ``LexiconQuality`` from the lexicon file fetched by ``demo.data.vader_lexicon_path``."""
    from trl_token_ext.demo.data import vader_lexicon_path
    from trl_token_ext.scorers import LexiconQuality

    return {word: scale * value for word, value in LexiconQuality(vader_lexicon_path()).lexicon.items()}


# --tiny (tests, no download): a handful of words with their VADER valences / 4.
TINY_LEXICON = {"good": 0.475, "great": 0.775, "wonderful": 0.675, "loved": 0.725, "nice": 0.45, "bad": -0.625,
                "awful": -0.5, "boring": -0.325, "terrible": -0.6, "hated": -0.725, "dull": -0.425}  # fmt: skip


TOPIC_TEMPLATE = "A review of the movie {}."  # the reference of the topic consistency C_topic


def topic(movie: str) -> str:
    """The reference text ``EmbeddingConsistency`` compares each sentence with (the ``topic`` dataset column)."""
    return TOPIC_TEMPLATE.format(movie)


def train_dataset_columns() -> dict[str, list]:
    """Columns of the training dataset: ``prompt`` (as ``train_prompts()``) and ``topic`` (one per prompt)."""
    return {
        "prompt": train_prompts(),
        "topic": [topic(movie) for movie in MOVIES_TRAIN for _ in TEMPLATES],
    }


def build_token_rewards(policy: Any, quality: str = "lexicon", tiny: bool = False, encoder: Any = None) -> list[Any]:
    """[Q, C_topic, C_repetition]: the seed formula R = w_quality·Q + w_consistency·C with C = w_topic·C_topic +
    w_repetition·C_repetition (the weights are the trainer's ``token_reward_weights``).

    Q: ``"lexicon"`` — ``LexiconQuality`` with VADER's human-rated word valences / 4 (in [-1, 1]; each word's value
    split over its tokens; ``TINY_LEXICON`` with ``tiny``), or ``"logprob"`` — ``LogProbQuality`` under the frozen
    starting policy (adapter disabled, clipped at -10; the held-out perplexity is then no longer held out).
    C_topic: ``EmbeddingConsistency`` — cosine similarity (minus 0.3) of each sentence to the ``topic`` column
    ("A review of the movie Avatar.") under the sentence encoder ``encoder`` (all-MiniLM-L6-v2), split over the
    sentence's tokens: the review must stay about the asked movie.
    C_repetition: ``RepetitionConsistency`` (-1 on each token that completes an already generated 3-gram).
    """
    from trl_token_ext.scorers import EmbeddingConsistency, LexiconQuality, LogProbQuality, RepetitionConsistency

    if quality == "lexicon":
        q = LexiconQuality(TINY_LEXICON if tiny else vader_valences(), name="quality_lexicon")
    elif quality == "logprob":
        from trl_token_ext.models import SharedBaseModel

        q = LogProbQuality(SharedBaseModel(policy), clip_min=-10.0, name="quality_logprob")
    else:
        raise ValueError(f"Unknown quality scorer {quality!r}; use 'lexicon' or 'logprob'.")
    if encoder is None:
        from trl_token_ext.demo.data import minilm_dir

        encoder = str(minilm_dir())
    on_topic = EmbeddingConsistency(encoder, column="topic", offset=0.3, name="consistency_topic")
    return [q, on_topic, RepetitionConsistency(n=3, penalty=-1.0, name="consistency_repetition")]


def topic_outcome(on_topic: Any) -> Any:
    """Topicality as an outcome reward (a TRL reward function): ``EmbeddingConsistency(level="sequence")`` of the
    whole completion against the ``topic`` column, minus 0.3, on the encoder of the token scorer ``on_topic`` (no
    second copy) — the guard against off-topic replies, kept in the outcome where token terms cannot outweigh it
    (docs/evidence.md)."""
    from trl_token_ext.scorers import EmbeddingConsistency

    return EmbeddingConsistency(
        on_topic.model, on_topic.tokenizer, column="topic", level="sequence", offset=0.3, name="topic_outcome"
    )


def load_demo_policy(model_path: str, lora_r: int, load_in_4bit: bool) -> tuple[Any, Any, Any]:
    """(policy, LoRA config, tokenizer) through ``trl_token_ext.models.load_policy`` (TRL's ``ModelConfig``)."""
    from transformers import AutoTokenizer
    from trl import ModelConfig

    from trl_token_ext.models import load_policy

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
    policy, peft_config = load_policy(model_args)
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
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
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
    """R = Σ_k w_k·g_k per token of each sample (a (len(completion_ids),) list per sample; a sample's ``topic``, when
    present, is passed as the dataset column of that name), computed as the trainer does
    (``token_rewards.compute_token_rewards`` + ``weighted_token_rewards``)."""
    import torch

    from trl_token_ext.token_rewards import compute_token_rewards, token_reward_func_name, weighted_token_rewards

    completion_ids = [s["completion_ids"] for s in samples]
    columns = {key: [s[key] for s in samples] for key in ("topic",) if samples and key in samples[0]}
    batch = compute_token_rewards(
        token_funcs,
        [token_reward_func_name(func) for func in token_funcs],
        prompts=[s["prompt"] for s in samples],
        completions=[[{"role": "assistant", "content": s["text"]}] for s in samples],
        completion_ids=completion_ids,
        reward_kwargs={"processing_class": tokenizer, **columns},
    )
    weighted, _ = weighted_token_rewards(batch.rewards, batch.present, torch.tensor(weights, dtype=torch.float32))
    return [weighted[b, : len(ids)].tolist() for b, ids in enumerate(completion_ids)]


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
