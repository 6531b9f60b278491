"""The demo's task: steer a small chat model toward positive, fluent, non-repetitive one-sentence movie reviews.

Rewards (see docs/demo.md):

* outcome: ``SentenceClassifierReward`` — P(positive) of each sentence from a MiniLM sentiment classifier trained
  on human-rated VADER sentences (mean over the completion's sentences), a stock TRL reward function;
* tokens: the seed formula R(s_t, a_t) = w_quality·Q + w_consistency·C (`seed_formula`, a recipe of registered
  names and options) with Q = ``LexiconQuality`` on VADER's human-rated word valences (the tokens of "wonderful"
  earn, those of "boring" lose; ``--quality logprob``: log-prob under the frozen starting policy instead) and C =
  ``EmbeddingConsistency`` to the movie plus ``RepetitionConsistency`` (-1 on each token that completes a repeated
  3-gram).

Also here: the prompts (train / validation / held-out), loading the policy, sampling + scoring for the
before/after comparison (the classifier is prepared in ``classifier.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MOVIES_TRAIN = [
    "Titanic", "The Matrix", "Jurassic Park", "Toy Story", "The Godfather", "Finding Nemo", "Jaws", "Frozen",
    "Star Wars", "The Lion King", "Inception", "Shrek", "Rocky", "Up", "Alien", "Casablanca",
]  # fmt: skip
MOVIES_HELD_OUT = ["Avatar", "Gladiator", "Cars", "Psycho", "Ratatouille", "Top Gun", "Heat", "Coco"]
# Settings are chosen on these (with other seeds), never on the reported held-out movies.
MOVIES_VALIDATION = ["Amelie", "Fargo", "Vertigo", "Memento", "Bambi", "Grease", "Jumanji", "Mulan"]
EVAL_SPLITS = {"test": MOVIES_HELD_OUT, "validation": MOVIES_VALIDATION}
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


def held_out_titles(split: str = "test") -> list[str]:
    """The movie of each evaluation prompt of ``split`` (``"test"``: the reported held-out movies,
    ``"validation"``: the ones settings are chosen on); the title-mention measure looks for it."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"held_out_titles: split must be one of {sorted(EVAL_SPLITS)}, got {split!r}.")
    return list(EVAL_SPLITS[split])


def held_out_prompts(split: str = "test") -> list[list[dict[str, str]]]:
    """Evaluation prompts of ``split``: movies never seen in training."""
    return [chat(HELD_OUT_TEMPLATE.format(movie)) for movie in held_out_titles(split)]


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
    """Columns of the training dataset: ``prompt`` (as ``train_prompts()``), ``topic`` and ``title`` (one per
    prompt)."""
    return {
        "prompt": train_prompts(),
        "topic": [topic(movie) for movie in MOVIES_TRAIN for _ in TEMPLATES],
        "title": [movie for movie in MOVIES_TRAIN for _ in TEMPLATES],
    }


def seed_formula(
    policy: Any, quality: str = "lexicon", tiny: bool = False, encoder: Any = None
) -> dict[str, dict[str, Any]]:
    """[Q, C_topic, C_repetition] as a script's recipe chooses them (registered name or import path -> options; built
    by ``TokenRewardScriptArguments``, `demo.tasks.token_arguments`): the seed formula R = w_quality·Q +
    w_consistency·C with C = w_topic·C_topic + w_repetition·C_repetition (the weights are the trainer's
    ``token_reward_weights``).

    Q: ``"lexicon"`` — ``lexicon_quality`` (`LexiconQuality`) with VADER's human-rated word valences / 4 (in [-1, 1];
    each word's value split over its tokens; ``TINY_LEXICON`` with ``tiny``), or ``"logprob"`` — ``logprob_quality``
    (`LogProbQuality`) under the frozen starting policy (adapter disabled, clipped at -10; the held-out perplexity is
    then no longer held out).
    C_topic: `EmbeddingConsistency` — cosine similarity (minus 0.3) of each sentence to the ``topic`` column
    ("A review of the movie Avatar.") under the sentence encoder ``encoder`` (all-MiniLM-L6-v2), split over the
    sentence's tokens: the review must stay about the asked movie.
    C_repetition: ``repetition`` (`RepetitionConsistency`: -1 on each token that completes an already generated
    3-gram).
    """
    if quality == "lexicon":
        q = "lexicon_quality", {"lexicon": TINY_LEXICON if tiny else vader_valences(), "name": "quality_lexicon"}
    elif quality == "logprob":
        from trl_token_ext.models import SharedBaseModel

        q = "logprob_quality", {"model": SharedBaseModel(policy), "clip_min": -10.0, "name": "quality_logprob"}
    else:
        raise ValueError(f"Unknown quality scorer {quality!r}; use 'lexicon' or 'logprob'.")
    if encoder is None:
        from trl_token_ext.demo.data import minilm_dir

        encoder = str(minilm_dir())
    on_topic = {"model": encoder, "column": "topic", "offset": 0.3, "name": "consistency_topic"}
    return dict(
        [
            q,
            ("trl_token_ext.scorers:EmbeddingConsistency", on_topic),
            ("repetition", {"n": 3, "penalty": -1.0, "name": "consistency_repetition"}),
        ]
    )


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
    ``prompt``, ``text``, ``completion_ids`` (cut after the first EOS, which is kept, as in TRL) and ``truncated``
    (no EOS: the reply hit ``max_new_tokens``)."""
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
        truncated = not ids or ids[-1] not in stop
        samples.append(
            {"prompt": prompts[row // num_samples], "text": text, "completion_ids": ids, "truncated": truncated}
        )
    return samples
