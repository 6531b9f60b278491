"""The demo's held-out measures: title mentions, distinct-n, perplexity under the adapter-free model, the target."""

from __future__ import annotations

import math

import pytest
import torch

from trl_token_ext.demo.measures import (
    adjacent_repeat,
    base_perplexity,
    cut_off,
    distinct_n,
    held_out_measures,
    mentions,
    no_worse,
    opening,
    sentence_count,
    target_checks,
    template_share,
)


def test_mentions_whole_words_ignoring_case():
    assert mentions("I loved CARS, truly.", "Cars")
    assert mentions('In "Top Gun," a pilot', "Top Gun")
    assert not mentions("It won three Oscars", "Cars")
    assert not mentions("Topgun", "Top Gun")
    assert not mentions("Heated debates", "Heat")


def test_distinct_n_by_hand():
    texts = ["the film is good", "The film is bad"]
    # unigrams: the film is good the film is bad -> 5 distinct of 8
    assert distinct_n(texts, 1) == pytest.approx(5 / 8)
    # bigrams: (the film)(film is)(is good)(the film)(film is)(is bad) -> 4 distinct of 6
    assert distinct_n(texts, 2) == pytest.approx(4 / 6)
    assert distinct_n(["one"], 2) == 0.0 and distinct_n([], 1) == 0.0


def _samples(tokenizer):
    prompt = [{"role": "user", "content": "Write one sentence about the movie Heat."}]
    texts = ["Heat is a great movie", "a film about heat and cold", "ok"]
    return [
        {"prompt": prompt, "text": t, "title": "Heat", "reward": r, "completion_ids": tokenizer(t)["input_ids"],
         "truncated": cut}
        for t, r, cut in zip(texts, [0.9, 0.5, math.nan], [True, True, False])
    ]  # fmt: skip


def test_perplexity_is_the_models_own_loss_with_the_adapter_off(tiny_model_dir, tiny_tokenizer):
    """exp(mean NLL) of the completion tokens, checked against transformers' loss (labels = -100 on the prompt), and
    unchanged by a LoRA adapter with non-zero weights (the starting model judges)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    samples = _samples(tiny_tokenizer)
    nll, count = 0.0, 0
    for sample in samples:
        text = tiny_tokenizer.apply_chat_template(sample["prompt"], tokenize=False, add_generation_prompt=True)
        prompt_ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + sample["completion_ids"]])
        labels = ids.clone()
        labels[0, : len(prompt_ids)] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        nll += float(loss) * len(sample["completion_ids"])
        count += len(sample["completion_ids"])
    expected = math.exp(nll / count)
    assert base_perplexity(model, tiny_tokenizer, samples) == pytest.approx(expected, rel=1e-5)

    probe = torch.tensor([samples[0]["completion_ids"]])
    with torch.no_grad():
        plain = model(input_ids=probe).logits
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        adapted = peft_model(input_ids=probe).logits
    assert not torch.allclose(adapted, plain)  # the adapter does change the model ...
    peft_model.train()
    assert base_perplexity(peft_model, tiny_tokenizer, samples) == pytest.approx(expected, rel=1e-5)  # ... not this
    assert peft_model.training  # the training flag is restored
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=probe).logits, adapted)  # and the adapter is back on


def test_held_out_measures_skip_unscored_rewards(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    measures = held_out_measures(_samples(tiny_tokenizer), model, tiny_tokenizer)
    assert measures["p_positive"] == pytest.approx(0.7)  # the NaN reward is left out
    assert measures["title_rate"] == pytest.approx(2 / 3)
    assert measures["words"] == pytest.approx((5 + 6 + 1) / 3)
    assert math.isfinite(measures["perplexity"]) and measures["perplexity"] > 1.0
    # openings (<title> is a), (a film about), (ok): each once → 1/3; two truncated without a full stop → 2/3
    assert measures["template_share"] == pytest.approx(1 / 3)
    assert measures["cutoff_share"] == pytest.approx(2 / 3)
    assert measures["sentences"] == pytest.approx(1.0) and measures["adjacent_repeats"] == 0.0


def test_opening_masks_the_asked_title():
    assert opening("Top Gun is a thrilling ride.", "Top Gun") == ("<title>", "is", "a")
    assert opening("Avatar is a visual feast", "Avatar") == opening("heat is a classic", "Heat")
    assert opening("Hello", "Coco") == ("hello",)
    assert opening("I think Heated debates", "Heat") == ("i", "think", "heated")  # whole words only


def test_template_share_is_the_most_common_openings_share():
    texts = ["Avatar is a feast.", "Heat is a classic.", "Coco is a gem.", "I loved Cars.", "What a film"]
    titles = ["Avatar", "Heat", "Coco", "Cars", "Psycho"]
    assert template_share(texts, titles) == pytest.approx(3 / 5)
    assert template_share(texts) == pytest.approx(1 / 5)  # without titles each opening differs
    assert template_share([]) == 0.0


def test_cut_off_adjacent_repeats_and_sentences():
    assert cut_off("It was a great film about", True)
    assert not cut_off("It was a great film.", True)  # hit the limit exactly at the full stop
    assert not cut_off('He said "wow!"', True)  # a closing quote after the end mark
    assert not cut_off("It was a great film about", False)  # ended by the model (EOS)
    assert adjacent_repeat("An immersive, immersive ride")
    assert adjacent_repeat("Masterfully masterfully done")
    assert not adjacent_repeat("immersive and immersive")
    assert sentence_count("Avatar is great. It is long! Really") == 3 and sentence_count("") == 0


def test_no_worse_follows_each_measures_direction():
    before = {"template_share": 0.2, "sentences": 1.6, "p_positive": 0.5}
    assert no_worse(before, {"template_share": 0.2, "sentences": 0.4, "p_positive": 0.5}, list(before)) == {
        "template_share": True,  # equal is no worse
        "sentences": True,  # |0.4 - 1| = 0.6 ≤ |1.6 - 1| = 0.6
        "p_positive": True,
    }
    after = {"template_share": 0.21, "sentences": 1.7, "p_positive": 0.49}
    assert not any(no_worse(before, after, list(before)).values())


@pytest.mark.parametrize(
    "after, expected",
    [
        ({"p_positive": 0.70, "title_rate": 0.45, "perplexity": 11.0}, [True, True, True]),
        ({"p_positive": 0.69, "title_rate": 0.45, "perplexity": 11.0}, [False, True, True]),
        ({"p_positive": 0.80, "title_rate": 0.44, "perplexity": 5.0}, [True, False, True]),
        ({"p_positive": 0.80, "title_rate": 0.90, "perplexity": 11.01}, [True, True, False]),
    ],
)
def test_target_checks_at_their_boundaries(after, expected):
    before = {"p_positive": 0.60, "title_rate": 0.50, "perplexity": 10.0}
    assert list(target_checks(before, after).values()) == expected


def test_target_checks_include_the_form_measures_when_measured():
    before = {"p_positive": 0.6, "title_rate": 0.5, "perplexity": 10.0, "cutoff_share": 0.5, "sentences": 1.5}
    after = {**before, "p_positive": 0.7, "cutoff_share": 0.6, "sentences": 1.0}
    checks = target_checks(before, after)
    assert checks["cutoff_share no worse"] is False and checks["sentences no worse"] is True
    assert "template_share no worse" not in checks
