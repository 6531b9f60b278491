"""The demo's two tasks, as the arms (`demo.arms`) need them: settings, rewards, training data, evaluation.

* ``sentiment``: positive one-sentence reviews of the asked movie (`demo.task`): outcome = P(positive) + topicality,
  tokens = the seed formula's terms (topic per sentence, repeated 3-grams, ...): a signal spread over the reply.
* ``arithmetic``: multi-step addition (`demo.arithmetic`): outcome = the answer is right, tokens = each line's
  verifier verdict on the line (`LineVerifier`): a local signal, the arm (c) of ``benchmarks/verifier_study.py``.

Both arms of a task get the same outcome reward functions and weights, training prompts, budget, seed and learning
rate; only the token arm adds ``token_funcs`` (``TokenGRPOTrainer``; the control is TRL's ``GRPOTrainer``). The token
arm chooses them as a TRL user's script does (README, "Swap it into an existing TRL script"): registered names,
import paths and the demo's own names (`own_rewards`, a script's ``registry=``) with their options, in a
`TokenRewardScriptArguments` (`token_arguments`) that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl_token_ext.script_args import TokenRewardScriptArguments

# Per task: the settings of the real run and of --tiny (a command-line value overrides them for every task).
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "sentiment": {
        "real": dict(steps=20, num_generations=4, batch_size=8, max_completion_length=32, learning_rate=7e-4,
                     temperature=0.8, token_advantage_coef=0.5, eval_samples=4, eval_prompts=8, lora_r=16),
        "tiny": dict(steps=12, num_generations=4, batch_size=8, max_completion_length=12, learning_rate=2e-2,
                     temperature=0.8, token_advantage_coef=0.5, eval_samples=2, eval_prompts=8, lora_r=8),
    },
    "arithmetic": {
        "real": dict(steps=16, num_generations=4, batch_size=8, max_completion_length=40, learning_rate=3e-4,
                     temperature=0.7, token_advantage_coef=1.0, eval_samples=4, eval_prompts=16, lora_r=16),
        "tiny": dict(steps=6, num_generations=4, batch_size=8, max_completion_length=12, learning_rate=2e-2,
                     temperature=0.7, token_advantage_coef=1.0, eval_samples=2, eval_prompts=4, lora_r=8),
    },
}  # fmt: skip
TASKS = tuple(DEFAULTS)
# The sentiment token terms, in order: each has a weight option ``--w_<name>`` (0 leaves the term out).
SENTIMENT_TERMS = ("quality", "topic", "repetition", "extra_sentence", "repeated_word", "shared_opening", "unfinished")
OUTCOME_NAMES = {"sentiment": "P(positive)", "arithmetic": "answer correct"}  # the reported outcome of a sample
# Printed labels of the held-out measures, in table order (the first is the outcome the table leads with).
LABELS = {
    "sentiment": {
        "p_positive": "P(positive) (outcome reward)",
        "title_rate": "names the movie",
        "perplexity": "perplexity under the starting model",
        "distinct_1": "distinct-1",
        "distinct_2": "distinct-2",
        "words": "words per reply",
        "template_share": "template share (same 3 opening words)",
        "cutoff_share": "cut-off share (token limit mid-sentence)",
        "sentences": "sentences per reply (1 asked)",
        "adjacent_repeats": "replies with a word repeated next to itself",
    },
    "arithmetic": {
        "answer_accuracy": "answer correct (outcome reward)",
        "line_accuracy": "lines correct (verifier)",
        "format_valid": "well-formed (2 steps + answer)",
        "lines": "lines per completion",
        "cutoff_share": "cut-off share (token limit)",
    },
}


@dataclass
class ArmSetup:
    """What one arm trains with. ``token_funcs`` (built from `token_arguments`) / ``token_weights`` /
    ``token_config`` are trained on by the token arm only (both arms' heatmaps show them); the control arm uses the
    rest, so both share the outcome and the data."""

    outcome_funcs: list
    outcome_weights: list[float]
    token_funcs: list
    token_weights: list[float]
    train_columns: dict[str, list]
    token_config: dict[str, Any] = field(default_factory=dict)


def own_rewards() -> dict[str, Any]:
    """The demo's own token reward functions by name: the ``registry=`` a script passes to
    `TokenRewardScriptArguments.build_token_reward_funcs`, looked up before the registered names."""
    from trl_token_ext.demo.arithmetic import LineVerifier
    from trl_token_ext.demo.form import ExtraSentence, RepeatedWord, SharedOpening, Unfinished

    return {
        "line_verifier": LineVerifier,
        "extra_sentence": ExtraSentence,
        "repeated_word": RepeatedWord,
        "shared_opening": SharedOpening,
        "unfinished": Unfinished,
    }


def token_arguments(
    task: str, options: dict[str, Any], assets: dict[str, str], policy: Any
) -> TokenRewardScriptArguments:
    """Every token reward function of ``task`` (weight 0 included) with its options, as a script's YAML recipe or
    command line gives them (``token_reward_funcs`` / ``token_reward_kwargs``)."""
    if task == "sentiment":
        from trl_token_ext.demo import task as sentiment

        encoder = assets["classifier"] if options["tiny"] else None  # --tiny: the tiny classifier's encoder
        recipe = sentiment.seed_formula(policy, options["quality"], tiny=options["tiny"], encoder=encoder)
        recipe.update({name: {} for name in SENTIMENT_TERMS[3:]})  # the form penalties, by their own names
    else:
        recipe = {"line_verifier": {"placement": "last"}}
    return TokenRewardScriptArguments(token_reward_funcs=list(recipe), token_reward_kwargs=recipe)


def eval_set(task: str, options: dict[str, Any]) -> tuple[list, dict[str, list]]:
    """(prompts, per-prompt columns) of the evaluation split ``options["split"]`` (``"test"``: the reported held-out
    set; ``"validation"``: the set settings are chosen on)."""
    if task == "sentiment":
        from trl_token_ext.demo import task as sentiment

        titles = sentiment.held_out_titles(options["split"])[: options["eval_prompts"]]
        prompts = [sentiment.chat(sentiment.HELD_OUT_TEMPLATE.format(title)) for title in titles]
        return prompts, {"title": titles, "topic": [sentiment.topic(title) for title in titles]}
    from trl_token_ext.demo import arithmetic

    split = {"test": "test", "validation": "val"}[options["split"]]
    numbers = arithmetic.problems(split, options["eval_prompts"])
    return [arithmetic.prompt(n) for n in numbers], {"numbers": numbers}


def setup(task: str, options: dict[str, Any], assets: dict[str, str], policy: Any) -> ArmSetup:
    """The rewards and training data of ``task`` (``assets``: prepared folders, e.g. the classifier)."""
    if task == "sentiment":
        return _sentiment_setup(options, assets, policy)
    from trl_token_ext.demo import arithmetic

    train = arithmetic.problems("train", options["steps"] * options["batch_size"], seed=options["seed"])
    return ArmSetup(
        outcome_funcs=[arithmetic.AnswerCorrect()],
        outcome_weights=[1.0],
        token_funcs=token_arguments(task, options, assets, policy).build_token_reward_funcs(registry=own_rewards()),
        token_weights=[1.0],
        train_columns=arithmetic.columns(train),
        token_config={"token_advantage_coef": options["token_advantage_coef"]},
    )


def _sentiment_setup(options: dict[str, Any], assets: dict[str, str], policy: Any) -> ArmSetup:
    from trl_token_ext.demo import task as sentiment
    from trl_token_ext.sentence import SentenceClassifierReward

    token_args = token_arguments("sentiment", options, assets, policy)
    funcs = token_args.build_token_reward_funcs(registry=own_rewards())  # in SENTIMENT_TERMS order
    weights = [options[f"w_{name}"] for name in SENTIMENT_TERMS]
    classifier = SentenceClassifierReward(
        assets["classifier"], label="positive", level="sequence", name="sentence_positive"
    )
    outcome = [classifier] + ([sentiment.topic_outcome(funcs[1])] if options["w_topic_outcome"] else [])
    kept = [(func, weight) for func, weight in zip(funcs, weights) if weight != 0]  # a weight-0 term is left out
    return ArmSetup(
        outcome_funcs=outcome,
        outcome_weights=[1.0, options["w_topic_outcome"]][: len(outcome)],
        token_funcs=[func for func, _ in kept],
        token_weights=[weight for _, weight in kept],
        train_columns=sentiment.train_dataset_columns(),
        token_config={
            "token_advantage_coef": options["token_advantage_coef"],
            "token_advantage_scale": True,
            "token_kl_coef": options["token_kl_coef"],
        },
    )


def score(task: str, samples: list[dict[str, Any]], arm: ArmSetup) -> None:
    """Store each sample's reported outcome under ``"reward"``: P(positive) (sentiment), answer right (arithmetic)."""
    import math

    first = arm.outcome_funcs[0]
    values = first(
        prompts=[s["prompt"] for s in samples],
        completions=[[{"role": "assistant", "content": s["text"]}] for s in samples],
        **{key: [s[key] for s in samples] for key in ("numbers",) if samples and key in samples[0]},
    )
    for sample, value in zip(samples, values):
        sample["reward"] = float(value) if value is not None else math.nan


def measure(task: str, samples: list[dict[str, Any]], model: Any, tokenizer: Any) -> dict[str, float]:
    """The held-out measures of ``samples`` (``LABELS[task]`` order)."""
    if task == "sentiment":
        from trl_token_ext.demo.measures import held_out_measures

        return held_out_measures(samples, model, tokenizer)
    from trl_token_ext.demo.arithmetic import evaluate_texts

    result = evaluate_texts([s["text"] for s in samples], [s["numbers"] for s in samples])
    result["cutoff_share"] = sum(s["truncated"] for s in samples) / max(1, len(samples))
    return result


def display_views(task: str) -> list[Any]:
    """Extra token functions shown on the heatmap only (not trained on): arithmetic — each line's verdict on every
    token of the line (+1 right, -1 wrong), so the wrong line stands out whatever the trained placement."""
    if task != "arithmetic":
        return []
    from trl_token_ext.demo.arithmetic import LineVerifier

    return [LineVerifier(placement="sum", correct=1.0, wrong=-1.0, name="line verdict (display)")]
