"""Classifier training: offline evaluate metrics on hand-made predictions, label checks, LoRA training of a tiny
BERT (adapter + merged model + metrics JSON), early stopping on F1 through the CLI entry point, and (slow) the real
MiniLM sentiment classifier on the human-rated VADER sentences."""

from __future__ import annotations

import json

import pytest

POSITIVE = ["I loved this film.", "The food was good.", "A truly beautiful story.", "The acting was great."]
NEGATIVE = ["The plot was boring.", "What an awful day.", "I hated it.", "The ending was terrible."]


def _dataset(repeat: int = 3):
    from datasets import Dataset

    texts = (POSITIVE + NEGATIVE) * repeat
    labels = (["positive"] * 4 + ["negative"] * 4) * repeat
    return Dataset.from_dict({"text": texts, "label": labels})


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    from trl_token_ext.testing import save_tiny_sequence_classifier

    return str(save_tiny_sequence_classifier(tmp_path_factory.mktemp("tiny-classifier-train")))


def test_metric_loaded_offline_binary_hand_made():
    from trl_token_ext.sentence.metrics import load_classification_metric

    metric = load_classification_metric()
    # TP = 3 (0, 3, 6), FP = 1 (2), FN = 2 (1, 7), TN = 2 (4, 5)
    result = metric.compute(predictions=[1, 0, 1, 1, 0, 0, 1, 0], references=[1, 1, 0, 1, 0, 0, 1, 1])
    assert result == pytest.approx({"accuracy": 5 / 8, "precision": 3 / 4, "recall": 3 / 5, "f1": 2 / 3})


def test_metric_macro_average_hand_made():
    from trl_token_ext.sentence.metrics import ClassificationMetrics

    # per class (P, R, F): 0 → (1/2, 1/2, 1/2), 1 → (1, 1/2, 2/3), 2 → (1/2, 1, 2/3)
    result = ClassificationMetrics().compute(predictions=[0, 0, 1, 2, 2], references=[0, 1, 1, 2, 0], average="macro")
    assert result == pytest.approx({"accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 11 / 18})


def test_encode_labels_checks_one_label_per_example():
    from datasets import Dataset

    from trl_token_ext.sentence.train import encode_labels

    encoded, labels = encode_labels(_dataset(1), "label", None)
    assert labels == ["negative", "positive"] and encoded["labels"][:5] == [1, 1, 1, 1, 0]
    per_token = Dataset.from_dict({"text": ["a b", "c"], "label": [[0, 1], [1]]})
    with pytest.raises(ValueError, match=r"'label', example 0: .*ONE label per example"):
        encode_labels(per_token, "label", None)
    with pytest.raises(ValueError, match=r"example 1: unknown label 'meh'"):
        encode_labels(Dataset.from_dict({"label": ["positive", "meh"]}), "label", ["negative", "positive"])
    with pytest.raises(ValueError, match="'stars' not found"):
        encode_labels(_dataset(1), "stars", None)


def test_text_and_label_checks_name_split_column_and_row():
    from datasets import Dataset

    from trl_token_ext.sentence.train import check_labels, check_texts

    rows = Dataset.from_dict({"text": ["fine", "  ", "ok"], "label": ["a", "b", None]})
    with pytest.raises(
        ValueError, match=r"^train: column 'text', example 1: expected a non-empty string, got str '  '"
    ):
        check_texts(rows, "text", "train")
    with pytest.raises(ValueError, match=r"^train: column 'label', example 2: missing label \(None\)"):
        check_labels(rows, "label", "train")
    with pytest.raises(
        ValueError, match=r"^eval: text column 'sentence' not found; the dataset has \['text', 'label'\]"
    ):
        check_texts(rows, "sentence", "eval")
    with pytest.raises(ValueError, match=r"^eval: label column 'y' not found"):
        check_labels(rows, "y", "eval")
    check_texts(rows.select([0, 2]), "text")
    check_labels(rows.select([0, 1]), "label")


def test_train_tiny_classifier_with_lora_saves_adapter_merged_and_metrics(tiny_classifier_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from trl_token_ext.sentence.reward import SentenceClassifierReward
    from trl_token_ext.sentence.train import train_sentence_classifier

    result = train_sentence_classifier(
        tiny_classifier_dir,
        _dataset(3),
        _dataset(1),
        tmp_path / "out",
        test_dataset=_dataset(1),
        max_length=32,
        training_args={"num_train_epochs": 2, "per_device_train_batch_size": 8, "use_cpu": True, "disable_tqdm": True},
    )
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == json.loads(json.dumps(result.metrics))
    metrics = result.metrics
    for key in ("eval_accuracy", "eval_precision", "eval_recall", "eval_f1", "test_accuracy", "test_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["eval_f1"] == pytest.approx(metrics["best_checkpoint_f1"])  # the best checkpoint was restored
    assert metrics["labels"] == ["negative", "positive"] and metrics["num_train"] == 24
    adapter_config = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_CLS" and "classifier" in adapter_config["modules_to_save"]
    assert not (tmp_path / "out" / "checkpoints").exists()
    merged = load_file(str(tmp_path / "out" / "merged" / "model.safetensors"))
    initial = load_file(f"{tiny_classifier_dir}/model.safetensors")
    assert not torch.equal(merged["classifier.weight"], initial["classifier.weight"])  # the head was trained
    assert not any("lora" in key for key in merged)

    by_merged = SentenceClassifierReward(result.merged_dir, label="positive")
    by_adapter = SentenceClassifierReward(result.adapter_dir, label="positive")
    assert by_merged.label_name == by_adapter.label_name == "positive"
    texts = ["I loved this film.", "I hated it. The plot was boring."]
    assert by_merged.sequence_rewards(texts) == pytest.approx(by_adapter.sequence_rewards(texts), abs=1e-5)
    pytest.importorskip("bitsandbytes")
    quantized_adapter = SentenceClassifierReward(
        result.adapter_dir, label="positive", model_init_kwargs={"load_in_4bit": True}
    )
    assert type(quantized_adapter._model).__name__ == "PeftModelForSequenceClassification"  # not merged in 4-bit
    assert quantized_adapter.sequence_rewards(texts) == pytest.approx(by_merged.sequence_rewards(texts), abs=0.05)


def test_cli_entry_point_stops_early_on_f1(tiny_classifier_dir, tmp_path, capsys):
    from trl_token_ext.sentence.recipes import train_classifier_main

    data = tmp_path / "sentences.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in _dataset(3).to_list()))
    argv = [
        "--model_name_or_path", tiny_classifier_dir, "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"),
        "--num_train_epochs", "6", "--learning_rate", "0", "--early_stopping_patience", "1",
        "--eval_fraction", "0.25", "--test_fraction", "0.25", "--use_cpu", "true", "--max_length", "16",
    ]  # fmt: skip
    result = train_classifier_main(argv)
    # Learning rate 0: F1 never improves after the first evaluation, so patience 1 stops after epoch 2 of 6.
    assert result.metrics["epochs_run"] == pytest.approx(2.0)
    assert result.metrics["num_test"] == 6 and result.metrics["num_eval"] == 6 and result.metrics["num_train"] == 12
    assert "merged classifier:" in capsys.readouterr().out


@pytest.mark.slow
def test_real_sentiment_classifier_heldout_accuracy():
    """MiniLM + LoRA on the human-rated VADER sentences (fetched from the registry, cached): ≥ 85 % held out."""
    from trl_token_ext.demo.classifier import sentiment_classifier_path
    from trl_token_ext.sentence.reward import SentenceClassifierReward

    path = sentiment_classifier_path()
    metrics = json.loads((path.parent / "metrics.json").read_text())
    print(f"held-out accuracy {metrics['test_accuracy']:.4f}, F1 {metrics['test_f1']:.4f} on {metrics['num_test']}")
    assert metrics["num_test"] == 2000
    assert metrics["test_accuracy"] >= 0.85
    reward = SentenceClassifierReward(str(path), label="positive")
    good, bad = reward.sequence_rewards(["What a wonderful, moving film.", "This was a dull and awful mess."])
    assert good > 0.8 and bad < 0.2


# --- classifier training data checked before a model is loaded (issue 13) ----------------------------------------
def _split(texts, labels):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts, "label": labels})


GOOD = _split(["good film", "bad film", "nice", "awful"], ["pos", "neg", "pos", "neg"])


@pytest.mark.parametrize(
    ("train", "evaluation", "message"),
    [
        (_split(["a", "b", "c"], ["pos"] * 3), GOOD, r"train_dataset: column 'label' has a single class \['pos'\]"),
        (_split(["a", "b"], [0, 0]), GOOD, r"train_dataset: column 'label' has a single class \['0'\] in all 2"),
        (_split(["a", "b", "c"], ["pos", None, "neg"]), GOOD, r"train_dataset: column 'label', example 1: missing"),
        (_split(["a", "b", "c"], ["pos", " ", "neg"]), GOOD, r"train_dataset: column 'label', example 1: missing"),
        (_split(["a", None, "c"], ["pos", "neg", "neg"]), GOOD, r"train_dataset: column 'text', example 1: .*None"),
        (GOOD, GOOD.rename_column("text", "sentence"), r"eval_dataset: text column 'text' not found"),
        (GOOD, _split(["a", "b"], ["pos", None]), r"eval_dataset: column 'label', example 1: missing label"),
    ],
    ids=["one-class", "all-zero", "none-label", "blank-label", "none-text", "eval-no-text", "eval-none-label"],
)
def test_classifier_data_is_validated_before_loading_a_model(train, evaluation, message, tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    with pytest.raises(ValueError, match=message):
        train_sentence_classifier("no-such-model", train, evaluation, tmp_path)


def test_single_class_among_given_labels_is_rejected(tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    train = _split(["a", "b", "c"], ["pos"] * 3)
    with pytest.raises(ValueError, match=r"train_dataset: column 'label' holds the single class 'pos' in all 3"):
        train_sentence_classifier("no-such-model", train, GOOD, tmp_path, labels=["neg", "pos"])


def test_test_split_without_text_column_is_named(tmp_path):
    from trl_token_ext.sentence.train import train_sentence_classifier

    with pytest.raises(ValueError, match=r"test_dataset: text column 'text' not found"):
        train_sentence_classifier("no-such-model", GOOD, GOOD, tmp_path, test_dataset=GOOD.remove_columns("text"))
