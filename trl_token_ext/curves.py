"""Reward curves from a trainer's ``state.log_history``: which keys are rewards, their panel titles, and a PNG.

The plot is drawn on a ``matplotlib.figure.Figure`` (Agg canvas): no pyplot state and no global backend switch, so
it can be called from a notebook or a script that uses another backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trl_token_ext.extras import require


def reward_curve_keys(log_history: Sequence[dict]) -> list[str]:
    """Reward keys found in a log history: ``reward``, ``rewards/<f>/mean``, ``token_rewards/<f>/mean``."""
    keys: list[str] = []
    for entry in log_history:
        for key in entry:
            wanted = key == "reward" or (key.startswith(("rewards/", "token_rewards/")) and key.endswith("/mean"))
            if wanted and key not in keys:
                keys.append(key)
    return keys


def curve_title(key: str) -> str:
    """A readable panel title for a log key: ``rewards/f/mean`` → ``outcome reward f``, ``token_rewards/g/mean`` →
    ``token reward g (mean per token)``, ``reward`` → ``outcome reward (weighted sum)``; others unchanged."""
    if key == "reward":
        return "outcome reward (weighted sum)"
    parts = key.split("/")
    if len(parts) == 3 and parts[2] == "mean" and parts[0] in ("rewards", "token_rewards"):
        return f"outcome reward {parts[1]}" if parts[0] == "rewards" else f"token reward {parts[1]} (mean per token)"
    return key


def plot_reward_curves(
    log_history: Sequence[dict] | dict[str, Sequence[dict]],
    path: str | Path,
    keys: Sequence[str] | None = None,
    title: str = "Rewards",
) -> Path:
    """Plot each key of ``log_history`` (a trainer's ``state.log_history``, or a mapping label → log history to
    draw several runs on the same axes) against ``step``, one panel per key titled by :func:`curve_title`, and save
    a PNG at ``path`` (7 × 2.2·len(keys) inches at 100 dpi). Default keys: :func:`reward_curve_keys` of every
    history. Needs matplotlib (the ``demo`` extra)."""
    histories = dict(log_history) if isinstance(log_history, dict) else {"": log_history}
    if keys is None:
        keys = [k for history in histories.values() for k in reward_curve_keys(history)]
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise ValueError("plot_reward_curves: the log history has no reward keys to plot.")
    figure_module = require("matplotlib.figure", "demo", "plot_reward_curves")
    figure = figure_module.Figure(figsize=(7, 2.2 * len(keys)))
    axes = figure.subplots(len(keys), 1, sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], keys):
        for label, history in histories.items():
            points = [(e["step"], e[key]) for e in history if key in e and "step" in e]
            if points:
                axis.plot(
                    [p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label or None
                )
        axis.set_title(curve_title(key), fontsize=9, loc="left")
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if len(histories) > 1:
            axis.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("step")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
