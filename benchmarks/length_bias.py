"""The worked example of docs/token_grpo.md: how much each token path pushes equal-quality completions by length.

Four completions of one group, equal quality: a keyword (token reward 1) on the first and last token, 0 between;
lengths 8, 16, 24, 32 (so every outcome advantage is 0). For every baseline × mode × normalization, the mean token
advantage of each completion and of its first token. The table in docs/token_grpo.md is this script's output.

    python benchmarks/length_bias.py

Last line: ``length_bias_ratio: X`` — the spread (max − min over the four lengths) of the mean token advantage with
the defaults divided by that spread with the pre-0.1.0 defaults (``token_mean`` baseline); 0 means length-neutral.
"""

from __future__ import annotations

import torch

from trl_token_ext.advantages import length_neutral_token_advantages, token_advantages
from trl_token_ext.config import TOKEN_ADVANTAGE_BASELINES, TOKEN_ADVANTAGE_MODES, TOKEN_REWARD_NORMALIZATIONS

LENGTHS = (8, 16, 24, 32)


def worked_example() -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 32) rewards and mask: reward 1 on the first and last token of each completion."""
    rewards, mask = torch.zeros(len(LENGTHS), max(LENGTHS)), torch.zeros(len(LENGTHS), max(LENGTHS))
    for row, length in enumerate(LENGTHS):
        mask[row, :length] = 1.0
        rewards[row, 0] = rewards[row, length - 1] = 1.0
    return rewards, mask


def advantages(baseline: str, mode: str, normalization: str) -> torch.Tensor:
    rewards, mask = worked_example()
    group = len(LENGTHS)
    if baseline == "position":
        present = torch.ones(group, 1, dtype=torch.bool)
        return length_neutral_token_advantages(rewards.unsqueeze(1), present, mask, torch.ones(1), group, mode,
                                               normalization)  # fmt: skip
    return token_advantages(rewards, mask, group, mode, normalization)


def rows() -> list[tuple[str, str, str, list[float], list[float]]]:
    """(baseline, mode, normalization, mean token advantage per completion, first-token advantage per completion)."""
    _, mask = worked_example()
    table = []
    for baseline in TOKEN_ADVANTAGE_BASELINES:
        for mode in TOKEN_ADVANTAGE_MODES:
            for normalization in TOKEN_REWARD_NORMALIZATIONS:
                result = advantages(baseline, mode, normalization)
                means = ((result * mask).sum(1) / mask.sum(1)).tolist()
                table.append((baseline, mode, normalization, means, result[:, 0].tolist()))
    return table


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def main() -> float:
    lines = [
        "| baseline | mode | normalization | mean token advantage (lengths 8 / 16 / 24 / 32) | first token |",
        "| --- | --- | --- | --- | --- |",
    ]
    for baseline, mode, normalization, means, first in rows():
        shown = " / ".join(f"{v:+.3f}" for v in means)
        lines.append(
            f"| `{baseline}` | `{mode}` | `{normalization}` | {shown} | {' / '.join(f'{v:+.3f}' for v in first)} |"
        )
    print("\n".join(lines))
    table = {(b, m, n): means for b, m, n, means, _ in rows()}
    ratio = spread(table["position", "reward_to_go", "group"]) / spread(table["token_mean", "reward_to_go", "group"])
    print(f"length_bias_ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
