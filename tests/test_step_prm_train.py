"""Training a token-classification step PRM: data checks naming row and field, TRL's labels by hand, step metrics by
hand, LoRA training of a tiny PRM that `StepPRMReward` then loads, and the `trl-token train-prm` command."""

from __future__ import annotations

import json

import pytest

from trl_token_ext.step_prm.data import IGNORE_INDEX, check_stepwise_dataset, encode_stepwise
from trl_token_ext.step_prm.metrics import NO_ERROR, first_error, majority_baseline, step_metrics, step_rows


def stepwise(rows):
    from datasets import Dataset

    return Dataset.from_list(rows)


def arithmetic_rows(count: int, seed: int = 0) -> list[dict]:
    """Solutions of "Add a, b and c." whose wrong steps carry an easy cue (" wrong") a tiny PRM can learn."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        labels = [rng.random() < 0.6 for _ in range(3)]
        steps = [f"{a} + {b} = {a + b}", f"{a + b} + {c} = {a + b + c}", f"Answer: {a + b + c}"]
        steps = [step if ok else step + " wrong" for step, ok in zip(steps, labels)]
        rows.append({"prompt": f"Add {a}, {b} and {c}.", "completions": steps, "labels": labels})
    return rows


# ------------------------------------------------------------------ data
GOOD = {"prompt": "Add 1 and 2.", "completions": ["1 + 2 = 3", "Answer: 3"], "labels": [True, False]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": " "}, r"train: row 1, field 'prompt': expected a non-empty string, got str ' '"),
        ({"completions": []}, r"train: row 1, field 'completions': expected a non-empty list of steps"),
        ({"completions": ["1 + 2 = 3", ""]}, r"train: row 1, field 'completions', step 1: expected text"),
        ({"labels": [1]}, r"train: row 1, field 'labels': expected one label per step \(2\), got 1"),
        ({"labels": [2, 1]}, r"train: row 1, field 'labels', step 0: expected a bool, got int 2"),
    ],
)
def test_stepwise_rows_are_checked_naming_row_field_and_step(change, message):
    with pytest.raises(ValueError, match=message):
        ints = {**GOOD, "labels": [1, 0]}  # one column type for both rows (0/1 are labels too)
        check_stepwise_dataset(stepwise([ints, {**ints, **change}]), "train")
    words = stepwise([{**GOOD, "labels": ["yes", "no"]}])  # e.g. a JSON file with words for labels
    with pytest.raises(ValueError, match=r"words: row 0, field 'labels', step 0: expected a bool, got str 'yes'"):
        check_stepwise_dataset(words, "words")


def test_stepwise_columns_are_required():
    with pytest.raises(ValueError, match=r"eval: stepwise-supervision columns \['labels'\] not found"):
        check_stepwise_dataset(stepwise([{"prompt": "p", "completions": ["a"]}]), "eval")
    check_stepwise_dataset(stepwise([GOOD, GOOD]), "bools")


def test_encode_puts_trls_labels_on_the_last_token_of_each_step(tiny_tokenizer):
    encoded = encode_stepwise(stepwise([GOOD]), tiny_tokenizer, "\n", max_length=None)
    ids, labels = encoded[0]["input_ids"], encoded[0]["labels"]
    encode = tiny_tokenizer.encode
    step_one = [tiny_tokenizer.bos_token_id, *encode("Add 1 and 2."), *encode("1 + 2 = 3"), *encode("\n")]
    assert ids == [*step_one, *encode("Answer: 3"), *encode("\n")]
    expected = [IGNORE_INDEX] * len(ids)
    expected[len(step_one) - 1], expected[-1] = 1, 0
    assert labels == expected
    cut = encode_stepwise(stepwise([GOOD]), tiny_tokenizer, "\n", max_length=len(step_one))[0]
    assert cut["input_ids"] == step_one and cut["labels"] == expected[: len(step_one)]  # cut at the end, as TRL


# ------------------------------------------------------------------ metrics
def test_step_metrics_by_hand():
    true = [[1, 1, 0], [1, 1], [0, 1, 1]]
    predicted = [[1, 0, 0], [1, 1], [1, 1, 1]]
    assert [first_error(row) for row in true] == [2, NO_ERROR, 0]
    assert majority_baseline(true) == (1, 2)  # 6 of 8 steps correct; first errors 2, none, 0 (a tie: first seen)
    metrics = step_metrics(predicted, true, baseline=(1, NO_ERROR))
    # steps: 6 of 8 right; error class: TP 1 (row 0 step 2), FP 1 (row 0 step 1), FN 1 (row 2 step 0)
    # first errors: predicted 1, none, none vs 2, none, 0 -> 1 of 3; baseline "all correct": 6/8, F1 0, 1/3
    assert metrics == pytest.approx(
        {
            "step_accuracy": 6 / 8,
            "error_precision": 1 / 2,
            "error_recall": 1 / 2,
            "error_f1": 1 / 2,
            "first_error_accuracy": 1 / 3,
            "baseline_step_accuracy": 6 / 8,
            "baseline_error_f1": 0.0,
            "baseline_first_error_accuracy": 1 / 3,
            "split_baseline_step_accuracy": 6 / 8,  # the split's own majority (1, 2)
            "split_baseline_error_f1": 0.0,
            "split_baseline_first_error_accuracy": 1 / 3,
            "num_steps": 8.0,
        }
    )
    base = step_metrics(predicted, true, baseline=(0, 2))  # "every step wrong": P 2/8, R 1, F1 = 2·(1/4)/(5/4)
    assert base["baseline_error_f1"] == pytest.approx(2 / 5) and base["baseline_first_error_accuracy"] == 1 / 3
    assert base["baseline_step_accuracy"] == 2 / 8 and base["split_baseline_step_accuracy"] == 6 / 8


def test_split_baseline_is_the_evaluated_splits_majority_whatever_the_training_baseline():
    true = [[0, 1], [0, 1], [1, 1]]  # majority: step "correct" (4 of 6), first error at step 0 (2 of 3)
    metrics = step_metrics(true, true, baseline=(1, NO_ERROR))
    assert metrics["baseline_first_error_accuracy"] == 1 / 3  # "none" is right for row 2 only
    assert metrics["split_baseline_first_error_accuracy"] == 2 / 3
    assert metrics["split_baseline_step_accuracy"] == 4 / 6 and metrics["first_error_accuracy"] == 1.0


def test_step_rows_read_the_labelled_positions():
    import numpy as np

    predictions = np.array([[1, 0, 1, 1], [0, 0, 1, 1]])
    labels = np.array([[-100, 1, -100, 0], [1, -100, -100, -100]])
    assert step_rows(predictions, labels) == ([[0, 1], [0]], [[1, 0], [1]])


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def tiny_prm_dir(tmp_path_factory):
    from trl_token_ext.testing import save_tiny_prm

    return str(save_tiny_prm(tmp_path_factory.mktemp("tiny-prm-base"), "token_classification"))


def test_train_tiny_prm_with_lora_then_score_with_it(tiny_prm_dir, tmp_path, tiny_tokenizer):
    from safetensors.torch import load_file

    from trl_token_ext.scorers import StepPRMReward
    from trl_token_ext.step_prm.train import train_step_prm

    result = train_step_prm(
        tiny_prm_dir,
        stepwise(arithmetic_rows(64, seed=0)),
        stepwise(arithmetic_rows(16, seed=1)),
        tmp_path / "prm",
        test_dataset=stepwise(arithmetic_rows(16, seed=2)),
        step_separator="\n\n",
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lora_target_modules="all-linear",
        training_args={
            "num_train_epochs": 8,
            "learning_rate": 1e-2,
            "per_device_train_batch_size": 8,
            "use_cpu": True,
            "disable_tqdm": True,
        },
    )
    metrics = result.metrics
    assert json.loads((tmp_path / "prm" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["test_num_steps"] == 48 and metrics["labels"] == ["error", "correct"]
    assert metrics["eval_error_f1"] == pytest.approx(metrics["best_checkpoint_error_f1"])
    # the cue is learnable: well above the majority class ("correct") on held-out steps
    assert metrics["test_step_accuracy"] >= metrics["test_baseline_step_accuracy"] + 0.2
    assert metrics["test_first_error_accuracy"] > metrics["test_baseline_first_error_accuracy"]
    adapter = load_file(tmp_path / "prm" / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in key and value.abs().sum() > 0 for key, value in adapter.items())
    assert any("score" in key for key in adapter)  # the head trains fully (modules_to_save)

    reward = StepPRMReward(result.merged_dir, model_init_kwargs={"device": "cpu"})
    assert reward.step_tag == "\n\n" and reward.model.config.id2label == {0: "error", 1: "correct"}
    text = "3 + 4 = 7\n7 + 2 = 9 wrong\nAnswer: 9"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    placed = reward(prompts=["Add 3, 4 and 2."], completion_ids=[ids], processing_class=tiny_tokenizer)[0]
    scores = [value for value in placed if value]
    assert len(scores) == 3 and scores[1] < 0.5 < min(scores[0], scores[2])  # the wrong step is found
    from_adapter = StepPRMReward(
        result.adapter_dir, model_init_kwargs={"device": "cpu"}
    )  # base + LoRA adapter, labels from its config
    again = from_adapter(prompts=["Add 3, 4 and 2."], completion_ids=[ids], processing_class=tiny_tokenizer)[0]
    assert from_adapter.step_tag == "\n\n" and again == pytest.approx(placed, abs=1e-5)


def test_train_step_prm_refuses_bad_input_before_loading(tmp_path):
    from trl_token_ext.step_prm.train import train_step_prm

    rows = arithmetic_rows(4)
    with pytest.raises(ValueError, match="train_step_prm: eval_dataset is empty"):
        train_step_prm("unused", stepwise(rows), stepwise(rows).select([]), tmp_path)
    same = [{**row, "labels": [True] * 3} for row in rows]
    with pytest.raises(ValueError, match="every step of its 4 rows has the same label"):
        train_step_prm("unused", stepwise(same), stepwise(rows), tmp_path)
    with pytest.raises(ValueError, match="load_in_4bit=True needs use_lora=True"):
        train_step_prm("unused", stepwise(rows), stepwise(rows), tmp_path, load_in_4bit=True, use_lora=False)
    with pytest.raises(ValueError, match=r"eval_dataset: row 2, field 'labels', step 0"):
        bad = [*rows[:2], {**rows[2], "labels": [None, True, True]}]
        train_step_prm("unused", stepwise(rows), stepwise(bad), tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_train_prm_command(tiny_prm_dir, tmp_path, capsys):
    from trl_token_ext import cli

    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in arithmetic_rows(40)))
    argv = ["--model_name_or_path", tiny_prm_dir, "--dataset_name", str(data), "--output_dir", str(tmp_path / "o")]
    assert cli.main(["train-prm", *argv, "--use_peft", "--num_train_epochs", "1", "--use_cpu", "true"]) == 0
    output = capsys.readouterr().out
    assert '"test_first_error_accuracy"' in output and "step PRM: " in output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert (metrics["num_train"], metrics["num_eval"], metrics["num_test"]) == (32, 4, 4) and metrics["use_lora"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completions": "one step", "labels": [True]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl \(train\): row 0, field 'completions'"):
        cli.main(["train-prm", "--model_name_or_path", tiny_prm_dir, "--dataset_name", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train-prm", "--help"])
    assert exit_info.value.code == 0 and "--step_separator" in capsys.readouterr().out


def test_train_step_prm_in_4bit(tmp_path):
    """NF4 base (hidden 64: whole bitsandbytes blocks), LoRA on top, head in full precision; no merged model."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    from transformers import Qwen2Config, Qwen2ForTokenClassification

    from trl_token_ext.step_prm.train import _load_token_classifier, train_step_prm
    from trl_token_ext.testing import build_tiny_prm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(**{**build_tiny_prm(tokenizer, "token_classification").config.to_dict(), "hidden_size": 64})
    Qwen2ForTokenClassification(config).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    loaded = _load_token_classifier(Qwen2ForTokenClassification, str(tmp_path / "base"), load_in_4bit=True)
    assert isinstance(loaded.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert not isinstance(loaded.score, bnb.nn.Linear4bit)
    result = train_step_prm(
        str(tmp_path / "base"),
        stepwise(arithmetic_rows(16)),
        stepwise(arithmetic_rows(8, seed=1)),
        tmp_path / "prm4",
        load_in_4bit=True,
        lora_r=4,
        lora_target_modules=["q_proj", "v_proj"],
        training_args={"num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True},
    )
    assert result.merged_dir == "" and (tmp_path / "prm4" / "adapter" / "adapter_config.json").is_file()
    assert 0.0 <= result.metrics["eval_step_accuracy"] <= 1.0


# ------------------------------------------------------------------ the measured run in the docs
def measured_rows(result: dict) -> list[str]:
    """The table rows docs/step_prm.md shows for docs/evidence/step_prm/arithmetic.json, formatted from the file."""
    names = {"step_accuracy": "step accuracy", "error_f1": "error F1", "first_error_accuracy": "first-error accuracy"}
    prm = result["prm"]
    rows = [
        f"| {split_name} {label} | {prm[f'{split}_{key}']:.3f} | {prm[f'{split}_baseline_{key}']:.3f} | "
        f"{prm[f'{split}_split_baseline_{key}']:.3f} |"
        for split, split_name in (("eval", "validation"), ("test", "test"))
        for key, label in names.items()
    ]
    for entry in result["policy"]["logs"]:
        token, answer = entry["token_rewards/step_prm/mean"], entry["rewards/answer_correct/mean"]
        rows.append(f"| {entry['step']} | {token:.4f} | {answer:.3f} |")
    return rows


def test_the_docs_figures_are_the_measured_runs():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "docs/evidence/step_prm/arithmetic.json").read_text())
    docs = (root / "docs/step_prm.md").read_text()
    missing = [row for row in measured_rows(result) if row not in docs]
    assert not missing, f"docs/step_prm.md lacks these rows of docs/evidence/step_prm/arithmetic.json: {missing}"
    assert result["command"] in " ".join(docs.replace("\\\n", " ").split())  # the command that wrote the file
