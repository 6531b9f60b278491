"""See where the credit goes: token heatmaps (self-contained HTML), a heatmap TrainerCallback, reward-curve plots.

* :func:`token_heatmap_html` / :func:`heatmap_page`: each token's background colour is its value (green positive,
  red negative, white 0, scaled by ``vmax``); hovering a token shows its text and value (``title`` attribute).
  No scripts, no external files: the page opens anywhere and can be attached to a report or a tracker.
* :class:`TokenHeatmapCallback`: every ``every_n_steps`` writes a heatmap page of a few of the latest completions with
  the values the trainer recorded for them (weighted token reward, the advantage the loss used, or A_tok) and logs it
  to Weights & Biases / MLflow when those report.
* :func:`plot_reward_curves`: a PNG of reward curves from ``trainer.state.log_history`` (matplotlib).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

POSITIVE_RGB = (46, 160, 67)
NEGATIVE_RGB = (215, 48, 39)
VALUES = ("reward", "advantage", "token_advantage")

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
.row { margin: 14px 0; padding: 10px 12px; border: 1px solid #ddd; border-radius: 6px; }
.prompt { color: #666; font-size: 0.9em; margin-bottom: 6px; white-space: pre-wrap; }
.caption { color: #444; font-size: 0.85em; margin-top: 6px; }
.heatmap { font-family: ui-monospace, monospace; line-height: 1.9; white-space: pre-wrap; }
.tok { border-radius: 3px; padding: 1px 0; }
.tok.aux { color: #888; font-size: 0.8em; }
.legend span { display: inline-block; padding: 2px 8px; font-family: ui-monospace, monospace; }
"""


def value_color(value: float, vmax: float) -> str:
    """CSS colour of ``value``: white at 0, ``POSITIVE_RGB`` at +vmax, ``NEGATIVE_RGB`` at -vmax (clipped)."""
    if not math.isfinite(value) or vmax <= 0:
        return "rgb(255,255,255)"
    strength = min(abs(value) / vmax, 1.0)
    target = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    r, g, b = (round(255 + strength * (c - 255)) for c in target)
    return f"rgb({r},{g},{b})"


def token_pieces(tokenizer: Any, completion_ids: Sequence[int]) -> tuple[list[str], list[bool]]:
    """Each token's text in the decoded completion, and whether it is auxiliary (a special token or a byte
    fragment with no characters of its own, shown by its token string)."""
    from trl_token_ext.alignment import token_char_spans

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    ids = [int(t) for t in completion_ids]
    text, spans = token_char_spans(tokenizer, ids)
    pieces, aux = [], []
    for token_id, (start, end) in zip(ids, spans):
        if end > start:
            pieces.append(text[start:end])
            aux.append(False)
        else:
            pieces.append(str(tokenizer.convert_ids_to_tokens(token_id)))
            aux.append(True)
    return pieces, aux


def token_heatmap_html(
    tokens: Sequence[str], values: Sequence[float], vmax: float | None = None, aux: Sequence[bool] | None = None
) -> str:
    """One ``<div class="heatmap">`` of ``<span class="tok">`` per token (N tokens, N values).

    ``vmax`` (default: max |value|) is the value of full colour. Text is HTML-escaped; the hover title reads
    ``#<index> <token repr> = <value>``.
    """
    if len(tokens) != len(values):
        raise ValueError(f"token_heatmap_html: {len(tokens)} tokens but {len(values)} values.")
    values = [float(v) for v in values]
    if vmax is None:
        vmax = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    aux = list(aux) if aux is not None else [False] * len(tokens)
    spans = []
    for index, (token, value, is_aux) in enumerate(zip(tokens, values, aux)):
        title = html.escape(f"#{index} {token!r} = {value:+.4f}", quote=True)
        css = "tok aux" if is_aux else "tok"
        spans.append(
            f'<span class="{css}" style="background-color:{value_color(value, vmax)}" title="{title}" '
            f'data-value="{value:.6g}">{html.escape(token)}</span>'
        )
    return f'<div class="heatmap">{"".join(spans)}</div>'


@dataclass
class HeatmapRow:
    """One completion of a heatmap page: its tokens (N), their values (N), and optional prompt and caption."""

    tokens: list[str]
    values: list[float]
    prompt: str | None = None
    caption: str | None = None
    aux: list[bool] = field(default_factory=list)


def completion_heatmap(
    tokenizer: Any,
    completion_ids: Sequence[int],
    values: Sequence[float],
    prompt: Any = None,
    caption: str | None = None,
) -> HeatmapRow:
    """A :class:`HeatmapRow` for one completion: token texts from ``tokenizer``, one value per completion id."""
    if len(values) != len(completion_ids):
        raise ValueError(f"completion_heatmap: {len(completion_ids)} completion ids but {len(values)} values.")
    tokens, aux = token_pieces(tokenizer, completion_ids)
    return HeatmapRow(tokens, [float(v) for v in values], _prompt_text(prompt), caption, aux)


def _prompt_text(prompt: Any) -> str | None:
    if prompt is None or isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):  # conversational
        return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt if isinstance(m, dict))
    return str(prompt)


def heatmap_page(rows: Sequence[HeatmapRow], title: str = "Token rewards", vmax: float | None = None) -> str:
    """A complete, self-contained HTML page with one heatmap per row and a colour legend.

    All rows share one colour scale: ``vmax`` (default: max |value| over every row).
    """
    if vmax is None:
        vmax = max((abs(v) for row in rows for v in row.values if math.isfinite(v)), default=0.0)
    legend = "".join(
        f'<span style="background-color:{value_color(v, vmax)}">{v:+.3g}</span>'
        for v in (-vmax, -vmax / 2, 0.0, vmax / 2, vmax)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h2>{html.escape(title)}</h2>",
        f'<div class="legend">colour scale: {legend} (hover a token for its value)</div>',
    ]
    for row in rows:
        parts.append('<div class="row">')
        if row.prompt:
            parts.append(f'<div class="prompt">{html.escape(row.prompt)}</div>')
        parts.append(token_heatmap_html(row.tokens, row.values, vmax, row.aux or None))
        if row.caption:
            parts.append(f'<div class="caption">{html.escape(row.caption)}</div>')
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_heatmap_page(path: str | Path, rows: Sequence[HeatmapRow], title: str = "Token rewards", **kwargs) -> Path:
    """Write :func:`heatmap_page` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(heatmap_page(rows, title, **kwargs), encoding="utf-8")
    return path


class TokenHeatmapCallback(TrainerCallback):
    """Writes ``<output_dir>/step_<N>.html`` heatmaps of a few of the latest training completions.

    The values are the ones the trainer used: `TokenGRPOTrainer` and `TokenRLOOTrainer` record each generation
    batch's weighted token rewards and advantages (`TokenStepRecord`, also kept as ``trainer.token_step_record``)
    and hand it to :meth:`on_token_step`; nothing is recomputed here.

    Args:
        output_dir: folder of the pages.
        every_n_steps: write after every N optimizer steps (and after the last one).
        num_completions: completions per page (this process's first rows of the latest batch, whole groups first).
        value: ``"reward"`` (Σ_k w_k·g_k per token), ``"advantage"`` (the per-token advantage the loss used:
            A_out + λ·A_tok on the loss mask, RLOO's leave-one-out baseline, None rewards, tool and truncation masks
            included) or ``"token_advantage"`` (A_tok alone).

    Use ``callbacks=[callback]``.
    """

    def __init__(
        self, output_dir: str | Path, every_n_steps: int = 10, num_completions: int = 4, value: str = "reward"
    ):
        if value not in VALUES:
            raise ValueError(f"TokenHeatmapCallback: value must be one of {VALUES}, got {value!r}.")
        if every_n_steps < 1 or num_completions < 1:
            raise ValueError("TokenHeatmapCallback: every_n_steps and num_completions must be >= 1.")
        self.output_dir = Path(output_dir)
        self.every_n_steps, self.num_completions, self.value = every_n_steps, num_completions, value
        self.written: list[Path] = []
        self.latest: Any = None

    def watch(self, funcs: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """The token reward functions, unchanged (kept for compatibility: the trainer now reports what it used)."""
        return list(funcs)

    def on_token_step(self, args: Any, state: Any, record: Any) -> None:
        """Called by the token trainers with the `TokenStepRecord` of each generation batch; keeps the latest."""
        self.latest = record

    def combined_values(self, args: Any = None) -> tuple[list, list, list[list[float]]] | None:
        """(prompts, completion_ids, per-token values) of the latest recorded batch, each value list as long as its
        completion (``value`` picks rewards, advantages or token advantages); None before any batch."""
        record = self.latest
        if record is None:
            return None
        table = {"reward": record.rewards, "advantage": record.advantages, "token_advantage": record.token_advantages}
        values = table[self.value]
        rows = [values[b, : len(ids)].tolist() for b, ids in enumerate(record.completion_ids)]
        return record.prompts, record.completion_ids, rows

    def write(self, args: Any, step: int, tokenizer: Any) -> Path | None:
        """Write the page of the latest batch for ``step``; returns its path (None before any complete batch)."""
        combined = self.combined_values(args)
        if combined is None or tokenizer is None:
            return None
        prompts, completion_ids, values = combined
        rows = []
        for b in range(min(self.num_completions, len(completion_ids))):
            total = sum(values[b])
            caption = f"completion {b}: {len(completion_ids[b])} tokens, sum of token {self.value}s {total:+.3f}"
            prompt = prompts[b] if b < len(prompts) else None
            rows.append(completion_heatmap(tokenizer, completion_ids[b], values[b], prompt, caption))
        title = f"Token {self.value}s at step {step}"
        path = write_heatmap_page(self.output_dir / f"step_{step:05d}.html", rows, title)
        self.written.append(path)
        self._report(args, step, path)
        return path

    def _report(self, args: Any, step: int, path: Path) -> None:
        """Log the page to the trackers named in ``args.report_to`` ("all": every installed one).

        TensorBoard: a text entry ``token_heatmap`` (the page's path and its HTML, shown as text) in
        ``$TENSORBOARD_LOGGING_DIR`` or ``<output_dir>/runs/token_heatmaps``, beside the Trainer's own runs. W&B:
        ``wandb.Html`` in the active run. MLflow: the file as an artifact. trackio has no HTML media type: the page
        stays a file. A tracker that is named but not installed is skipped.
        """
        import os

        report_to = getattr(args, "report_to", None) or []
        report_to = [report_to] if isinstance(report_to, str) else list(report_to)
        html = path.read_text(encoding="utf-8")
        if "tensorboard" in report_to or "all" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                SummaryWriter = None
            if SummaryWriter is not None:
                if getattr(self, "_tb_writer", None) is None:
                    logging_dir = os.getenv("TENSORBOARD_LOGGING_DIR") or os.path.join(
                        getattr(args, "output_dir", None) or ".", "runs", "token_heatmaps"
                    )
                    self._tb_writer = SummaryWriter(log_dir=logging_dir)
                self._tb_writer.add_text("token_heatmap", f"`{path}`\n\n{html}", global_step=step)
                self._tb_writer.flush()
        if "wandb" in report_to or "all" in report_to:
            try:
                import wandb

                if wandb.run is not None:
                    wandb.log({"token_heatmap": wandb.Html(html)}, step=step)
            except ImportError:
                pass
        if "mlflow" in report_to or "all" in report_to:
            try:
                import mlflow

                if mlflow.active_run() is not None:
                    mlflow.log_artifact(str(path), artifact_path="token_heatmaps")
            except ImportError:
                pass

    def on_step_end(self, args, state, control, processing_class=None, **kwargs):
        step = state.global_step
        if state.is_world_process_zero and (step % self.every_n_steps == 0 or step == state.max_steps):
            self.write(args, step, processing_class)
        return control


def reward_curve_keys(log_history: Sequence[dict]) -> list[str]:
    """Reward keys found in a log history: ``reward``, ``rewards/<f>/mean``, ``token_rewards/<f>/mean``."""
    keys: list[str] = []
    for entry in log_history:
        for key in entry:
            wanted = key == "reward" or (key.startswith(("rewards/", "token_rewards/")) and key.endswith("/mean"))
            if wanted and key not in keys:
                keys.append(key)
    return keys


def plot_reward_curves(
    log_history: Sequence[dict], path: str | Path, keys: Sequence[str] | None = None, title: str = "Rewards"
) -> Path:
    """Plot each key of ``log_history`` (a trainer's ``state.log_history``) against ``step`` in its own panel and
    save a PNG at ``path``. Default keys: :func:`reward_curve_keys`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(keys) if keys is not None else reward_curve_keys(log_history)
    if not keys:
        raise ValueError("plot_reward_curves: the log history has no reward keys to plot.")
    figure, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], keys):
        points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        axis.set_ylabel(key, fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
