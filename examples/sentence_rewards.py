# /// script
# requires-python = ">=3.10"
# dependencies = ["trl-token-ext[peft]", "pysbd>=0.3.4,<0.4", "scikit-learn>=1.3"]
# ///
"""A sentence sentiment classifier as a GRPO reward: sequence-level in a stock ``trl.GRPOTrainer``, or
sentence-placed token rewards in ``TokenGRPOTrainer``.

    python examples/sentence_rewards.py --classifier tiny                      # seconds: tiny random models
    python examples/sentence_rewards.py --potential --max_steps 20   # the cached MiniLM sentiment model
    python examples/sentence_rewards.py --trainer stock --policy <causal LM id or folder>

``--classifier sentiment`` (default) uses ``sentiment_classifier_path()`` (trained on first use, see
examples/sentiment_classifier.py); any folder or Hub id of an ``AutoModelForSequenceClassification`` works too.
The default policy is a tiny random Qwen2 built offline; pass ``--policy`` for a real one.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Sentence classifier rewards in GRPO.")
    parser.add_argument("--classifier", default="sentiment", help="'sentiment', 'tiny', or a model id / folder")
    parser.add_argument("--label", default="positive")
    parser.add_argument("--policy", default=None, help="causal LM id or folder (default: tiny random model)")
    parser.add_argument("--trainer", choices=["token", "stock"], default="token")
    parser.add_argument("--placement", choices=["last", "even", "sum"], default="last")
    parser.add_argument("--potential", action="store_true", help="score prefixes, place Φ_k − Φ_{k−1}")
    parser.add_argument("--max_steps", type=int, default=5)
    parser.add_argument("--output_dir", default=None)
    args = parser.parse_args()

    from datasets import Dataset

    from trl_token_ext.sentence import SentenceClassifierReward

    work = tempfile.mkdtemp(prefix="sentence-rewards-")
    if args.classifier == "sentiment":
        from trl_token_ext.demo.classifier import sentiment_classifier_path

        classifier = str(sentiment_classifier_path())
    elif args.classifier == "tiny":
        from trl_token_ext.testing import save_tiny_sequence_classifier

        classifier = str(save_tiny_sequence_classifier(f"{work}/classifier"))
    else:
        classifier = args.classifier
    if args.policy is None:
        from trl_token_ext.testing import save_tiny_causal_lm

        args.policy = str(save_tiny_causal_lm(f"{work}/policy"))

    sentiment = SentenceClassifierReward(
        classifier, label=args.label, placement=args.placement, potential=args.potential, aggregate="mean"
    )
    prompts = ["Write one sentence about the movie.", "Describe the food.", "Review the hotel.", "How was the show?"]
    dataset = Dataset.from_dict({"prompt": prompts * 8})
    common = dict(
        output_dir=args.output_dir or f"{work}/out",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=32,
        max_steps=args.max_steps,
        learning_rate=1e-5 if args.classifier != "tiny" else 1e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    if args.trainer == "stock":
        from trl import GRPOConfig, GRPOTrainer

        trainer = GRPOTrainer(
            model=args.policy, reward_funcs=sentiment, args=GRPOConfig(**common), train_dataset=dataset
        )
    else:
        from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer

        trainer = TokenGRPOTrainer(
            model=args.policy,
            reward_funcs=sentiment,  # the same object: the completion's mean sentence score as the outcome reward
            token_reward_funcs=[sentiment],  # ... and each sentence's score placed on its tokens
            args=TokenGRPOConfig(**common, token_advantage_mode="immediate"),
            train_dataset=dataset,
        )
    trainer.train()
    name = sentiment.__name__
    for row in trainer.state.log_history:
        if f"rewards/{name}/mean" in row:
            token = row.get(f"token_rewards/{name}/mean")
            extra = f", token reward mean {token:.4f}" if token is not None else ""
            print(f"step {row['step']}: sequence reward mean {row[f'rewards/{name}/mean']:.4f}{extra}")


if __name__ == "__main__":
    main()
