"""Where the arithmetic PRM is right and wrong: its held-out accuracy by line, and what the first-line errors are.

    python docs/evidence/step_prm/by_line.py outputs/step_prm_arithmetic [--out by_line.json]

Reads what `examples/step_prm_arithmetic.py` wrote in its output folder (``prm_data/``, ``prm/merged/``) and scores the
test split's steps with `StepPRMReward`'s token-classification input (P(correct) >= 0.5 counts as "correct").
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import torch

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from datasets import load_from_disk
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from trl_token_ext.demo import arithmetic as ar
    from trl_token_ext.step_prm.inputs import token_classification_input

    root = Path(args.output_dir)
    test = load_from_disk(str(root / "prm_data"))["test"]
    tokenizer = AutoTokenizer.from_pretrained(root / "prm" / "merged")
    model = AutoModelForTokenClassification.from_pretrained(root / "prm" / "merged").eval()
    separator = model.config.prm_step_separator
    right, total, first_line = Counter(), Counter(), Counter()
    for row in test:
        built = token_classification_input(tokenizer, row["prompt"], row["completions"], separator)
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([built.ids])).logits[0].softmax(-1)[built.positions, 1]
        for index, (line, label, p) in enumerate(zip(row["completions"], row["labels"], probs.tolist())):
            kind = "answer line" if ar.ANSWER_PATTERN.match(line) else f"line {index + 1}"
            total[kind] += 1
            right[kind] += (p >= 0.5) == label
        first_line[_first_line_kind(row, ar)] += 1
    report = {
        "prm_accuracy_by_line": {kind: round(right[kind] / total[kind], 3) for kind in sorted(total)},
        "steps_by_line": dict(sorted(total.items())),
        "first_line_of_test_solutions": dict(first_line.most_common()),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def _first_line_kind(row: dict, ar) -> str:
    """correct / wrong sum / wrong operands / not an addition line, for the first line of a solution."""
    if row["labels"][0]:
        return "correct"
    numbers = [int(n) for n in re.findall(r"\d+", row["prompt"])]
    step = ar.STEP_PATTERN.match(row["completions"][0])
    if step is None:
        return "not an addition line"
    a, b, _ = (int(g) for g in step.groups())
    return "wrong operands" if (a, b) != tuple(numbers[:2]) else "wrong sum"


if __name__ == "__main__":
    main()
