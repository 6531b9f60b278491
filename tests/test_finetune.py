"""`trl_token_ext.finetune.run_recipe`: what a fine-tuning recipe hands to its training function."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from datasets import Dataset

from trl_token_ext.finetune import run_recipe
from trl_token_ext.sentence.recipes import TrainClassifierArguments
from trl_token_ext.step_prm.recipes import TrainPRMArguments


def _recorder(calls):
    def train_fn(model_name_or_path, train, evaluation, output_dir, **kwargs):
        calls.append((model_name_or_path, len(train), len(evaluation), output_dir, kwargs))
        return "result"

    return train_fn


def _splits():
    return Dataset.from_dict({"x": list(range(10))}), Dataset.from_dict({"x": [0, 1]}), None


def test_classifier_recipe_passes_its_fields_and_cuts_the_training_split():
    calls = []
    args = TrainClassifierArguments(
        model_name_or_path="enc",
        dataset_name="d.csv",
        output_dir="out",
        labels=["a", "b"],
        text_column="s",
        label_column="y",
        max_train_samples=4,
        max_length=32,
        use_lora=False,
        lora_r=4,
        lora_target_modules=["q"],
        early_stopping_patience=5,
        num_train_epochs=2.0,
        learning_rate=0.1,
        seed=3,
        use_cpu=True,
    )
    assert run_recipe(_recorder(calls), args, args, _splits(), lambda a: 1 / 0) == "result"
    ((model, num_train, num_eval, output_dir, kwargs),) = calls
    assert (model, num_train, num_eval, output_dir) == ("enc", 4, 2, "out")
    assert kwargs == {
        "test_dataset": None,
        "training_args": {
            "num_train_epochs": 2.0,
            "learning_rate": 0.1,
            "per_device_train_batch_size": 32,
            "seed": 3,
            "use_cpu": True,
        },
        "lora_r": 4,
        "lora_alpha": 32,
        "lora_dropout": 0.1,
        "lora_target_modules": ["q"],
        "max_length": 32,
        "early_stopping_patience": 5,
        "labels": ["a", "b"],
        "text_column": "s",
        "label_column": "y",
        "use_lora": False,
    }


def test_prm_recipe_takes_model_and_lora_from_the_model_config_and_loads_when_no_splits():
    calls, loaded = [], []
    args = TrainPRMArguments(dataset_name="steps.jsonl", output_dir="prm", step_separator=" ;", max_length=99)
    model = SimpleNamespace(
        model_name_or_path="lm", lora_r=2, lora_alpha=8, lora_dropout=0.0, lora_target_modules=None, use_peft=True
    )

    def load(recipe):
        loaded.append(recipe)
        return _splits()

    run_recipe(_recorder(calls), args, model, None, load, use_lora=model.use_peft, load_in_4bit=True)
    ((name, num_train, _, output_dir, kwargs),) = calls
    assert loaded == [args] and (name, num_train, output_dir) == ("lm", 10, "prm")
    assert {k: kwargs[k] for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")} == {
        "lora_r": 2,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "lora_target_modules": None,
    }
    assert (kwargs["step_separator"], kwargs["metric_for_best_model"], kwargs["max_length"]) == (" ;", "error_f1", 99)
    assert (kwargs["use_lora"], kwargs["load_in_4bit"]) == (True, True)


def test_check_splits_names_the_empty_split_and_checks_each_given_one():
    from trl_token_ext.finetune import check_splits

    seen = []
    train, evaluation, _ = _splits()
    splits = check_splits("fit", train, evaluation, None, lambda dataset, name: seen.append((name, len(dataset))))
    assert list(splits) == ["train_dataset", "eval_dataset"] and splits["train_dataset"] is train
    assert seen == [("train_dataset", 10), ("eval_dataset", 2)]
    empty = Dataset.from_dict({"x": []})
    for args, culprit in [((train, None, None), "eval_dataset"), ((train, evaluation, empty), "test_dataset")]:
        with pytest.raises(ValueError, match=f"^fit: {culprit} is empty\\.$"):
            check_splits("fit", *args, lambda dataset, name: None)
