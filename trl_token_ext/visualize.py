"""See where the credit goes: token heatmaps (self-contained HTML), a heatmap TrainerCallback, reward-curve plots.

* :func:`token_heatmap_html` / :func:`heatmap_page`: each token's background colour is its value (green positive,
  red negative, white 0, scaled by ``vmax``); hovering a token shows its text and value (``title`` attribute).
  A row may carry several named views of the same tokens (per-term rewards, the token advantage, the advantage):
  each view name gets its own colour scale (robust: a quantile of the page's non-zero |values|, so one outlier does
  not wash out the rest), and every non-zero value gets at least a visible tint.
  No scripts, no external files: the page opens anywhere and can be attached to a report or a tracker.
* :class:`TokenHeatmapCallback`: every ``every_n_steps`` writes a heatmap page of a few of the latest completions with
  the values the trainer recorded for them (weighted token reward, the advantage the loss used, or A_tok) and logs it
  to Weights & Biases / MLflow when those report.

Reward-curve plots are in :mod:`trl_token_ext.curves`.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trl_token_ext.text import chat_transcript

POSITIVE_RGB = (46, 160, 67)
NEGATIVE_RGB = (215, 48, 39)
VALUES = ("reward", "advantage", "token_advantage")
CALLBACK_VALUES = (*VALUES, "all")  # "all": one view per value
SCALES = ("robust", "max")
ROBUST_QUANTILE = 0.9  # the robust scale: this quantile of the non-zero |values| of a view gets full colour
MIN_TINT = 0.15  # least colour strength of a non-zero value on a page (0 would be white, 1 full colour)

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
.row { margin: 14px 0; padding: 10px 12px; border: 1px solid #ddd; border-radius: 6px; }
.prompt { color: #666; font-size: 0.9em; margin-bottom: 6px; white-space: pre-wrap; }
.caption { color: #444; font-size: 0.85em; margin-top: 6px; }
.heatmap { font-family: ui-monospace, monospace; line-height: 1.9; white-space: pre-wrap; }
.tok { border-radius: 3px; padding: 1px 0; }
.tok.aux { color: #888; font-size: 0.8em; }
.view { display: grid; grid-template-columns: 11em 1fr; align-items: baseline; column-gap: 8px; }
.view .label { color: #555; font-size: 0.8em; text-align: right; }
.legend { margin: 2px 0; }
.legend span { display: inline-block; padding: 2px 8px; font-family: ui-monospace, monospace; }
.legend .name { font-family: system-ui, sans-serif; color: #444; min-width: 11em; }
"""


def value_color(value: float, vmax: float, min_tint: float = 0.0) -> str:
    """CSS colour of ``value``: white at 0, ``POSITIVE_RGB`` at +vmax, ``NEGATIVE_RGB`` at -vmax (clipped); a non-zero
    value gets at least ``min_tint`` of the full colour (so a small value stays visible beside a large one)."""
    if not math.isfinite(value) or vmax <= 0 or value == 0:
        return "rgb(255,255,255)"
    strength = max(min(abs(value) / vmax, 1.0), min_tint)
    target = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    r, g, b = (round(255 + strength * (c - 255)) for c in target)
    return f"rgb({r},{g},{b})"


def color_scale(values: Sequence[float], scale: str = "robust", q: float = ROBUST_QUANTILE) -> float:
    """The value of full colour for ``values``: ``"max"`` — the largest finite |value|; ``"robust"`` — the ``q``
    quantile (in hundredths) of the finite non-zero |values|, interpolated linearly between order statistics as
    numpy's default (larger values are clipped to full colour). 0.0 when all are 0."""
    if scale not in SCALES:
        raise ValueError(f"color_scale: scale must be one of {SCALES}, got {scale!r}.")
    magnitudes = [abs(float(v)) for v in values if math.isfinite(v) and v != 0]
    if scale == "max" or len(magnitudes) < 2:
        return max(magnitudes, default=0.0)
    return statistics.quantiles(magnitudes, n=100, method="inclusive")[round(100 * q) - 1]  # linear interpolation


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
    tokens: Sequence[str],
    values: Sequence[float],
    vmax: float | None = None,
    aux: Sequence[bool] | None = None,
    min_tint: float = 0.0,
) -> str:
    """One ``<div class="heatmap">`` of ``<span class="tok">`` per token (N tokens, N values).

    ``vmax`` (default: max |value|) is the value of full colour; ``min_tint``: see :func:`value_color`. Text is
    HTML-escaped; the hover title reads ``#<index> <token repr> = <value>``. A line break in a token with a non-zero
    value is drawn as ``↵`` before the break, so its colour shows (a bare line break has no visible background).
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
            f'<span class="{css}" style="background-color:{value_color(value, vmax, min_tint)}" title="{title}" '
            f'data-value="{value:.6g}">{_visible_breaks(html.escape(token), value)}</span>'
        )
    return f'<div class="heatmap">{"".join(spans)}</div>'


def _visible_breaks(text: str, value: float) -> str:
    """``text`` with ``↵`` before each line break when ``value`` is non-zero (else unchanged)."""
    return text.replace("\n", "↵\n") if value != 0 and math.isfinite(value) else text


@dataclass
class HeatmapRow:
    """One completion of a heatmap page: its tokens (N), their values (N), and optional prompt and caption.

    ``views``: named value lists (N each) shown as one line each, in order, instead of ``values`` (e.g. each token
    reward term, the token advantage, the advantage); a page gives each view name its own colour scale.
    """

    tokens: list[str]
    values: list[float]
    prompt: str | None = None
    caption: str | None = None
    aux: list[bool] = field(default_factory=list)
    views: dict[str, list[float]] = field(default_factory=dict)

    def lines(self, default_name: str = "value") -> dict[str, list[float]]:
        """The named value lines of the row: ``views``, or ``{default_name: values}`` without views."""
        for name, values in self.views.items():
            if len(values) != len(self.tokens):
                raise ValueError(f"HeatmapRow: view {name!r} has {len(values)} values for {len(self.tokens)} tokens.")
        return dict(self.views) if self.views else {default_name: list(self.values)}


def completion_heatmap(
    tokenizer: Any,
    completion_ids: Sequence[int],
    values: Sequence[float] | dict[str, Sequence[float]],
    prompt: Any = None,
    caption: str | None = None,
) -> HeatmapRow:
    """A :class:`HeatmapRow` for one completion: token texts from ``tokenizer``, one value per completion id — or a
    mapping view name → values (one per completion id) for a row of several views."""
    views = dict(values) if isinstance(values, dict) else {}
    for name, line in (views or {"values": values}).items():
        if len(line) != len(completion_ids):
            raise ValueError(
                f"completion_heatmap: {len(completion_ids)} completion ids but {len(line)} values ({name})."
            )
    tokens, aux = token_pieces(tokenizer, completion_ids)
    views = {name: [float(v) for v in line] for name, line in views.items()}
    first = next(iter(views.values())) if views else [float(v) for v in values]
    return HeatmapRow(tokens, first, None if prompt is None else chat_transcript(prompt), caption, aux, views)


def page_scales(
    rows: Sequence[HeatmapRow], scale: str = "robust", vmax: float | None = None, default_name: str = "value"
) -> dict[str, float]:
    """View name → value of full colour over every row of a page: ``vmax`` for all views when given, else
    :func:`color_scale` of each view's values on the page (so a ±1 penalty term does not wash out a +0.02 one)."""
    lines: dict[str, list[float]] = {}
    for row in rows:
        for name, values in row.lines(default_name).items():
            lines.setdefault(name, []).extend(values)
    return {name: float(vmax) if vmax is not None else color_scale(values, scale) for name, values in lines.items()}


def _legend(name: str, vmax: float, clipped: bool) -> str:
    if vmax <= 0:
        return f'<div class="legend"><span class="name">{html.escape(name)}</span>every value is 0</div>'
    swatches = "".join(
        f'<span style="background-color:{value_color(v, vmax)}">{v:+.3g}</span>'
        for v in (-vmax, -vmax / 2, 0.0, vmax / 2, vmax)
    )
    note = " (larger |values| clipped to full colour)" if clipped else ""
    return f'<div class="legend"><span class="name">{html.escape(name)}</span>{swatches}{note}</div>'


def heatmap_page(
    rows: Sequence[HeatmapRow],
    title: str = "Token rewards",
    vmax: float | None = None,
    scale: str = "robust",
    min_tint: float = MIN_TINT,
    default_name: str = "value",
    intro: str | None = None,
) -> str:
    """A complete, self-contained HTML page with one heatmap per row (one line per view) and a colour legend per
    view.

    Args:
        rows: the completions (:class:`HeatmapRow`; ``views`` for several named lines each).
        vmax: one fixed value of full colour for every view; default: per view name, :func:`color_scale` of its
            values over all rows with ``scale`` (``"robust"``: the 0.9 quantile of the non-zero |values|;
            ``"max"``: the largest |value|), so colours compare across completions within a view.
        min_tint: the least colour strength of a non-zero value (:func:`value_color`).
        default_name: the view name of rows without ``views``.
        intro: a paragraph under the title (HTML-escaped).
    """
    scales = page_scales(rows, scale, vmax, default_name)
    largest: dict[str, float] = {}
    for row in rows:
        for name, values in row.lines(default_name).items():
            largest[name] = max([largest.get(name, 0.0), *(abs(v) for v in values if math.isfinite(v))])
    legends = "".join(_legend(name, vmax_, largest[name] > vmax_) for name, vmax_ in scales.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h2>{html.escape(title)}</h2>",
    ]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    tint = f"any non-zero value at least {min_tint:.0%} colour; " if min_tint > 0 else ""
    parts.append(f'<div class="legends">colour scale per view ({tint}hover a token for its value):{legends}</div>')
    for row in rows:
        parts.append('<div class="row">')
        if row.prompt:
            parts.append(f'<div class="prompt">{html.escape(row.prompt)}</div>')
        lines = row.lines(default_name)
        for name, values in lines.items():
            heatmap = token_heatmap_html(row.tokens, values, scales[name], row.aux or None, min_tint)
            if len(lines) == 1 and not row.views:
                parts.append(heatmap)
            else:
                parts.append(f'<div class="view"><span class="label">{html.escape(name)}</span>{heatmap}</div>')
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
            included), ``"token_advantage"`` (A_tok alone) or ``"all"`` (the three as views of each completion, each
            with its own colour scale).

    Use ``callbacks=[callback]``.
    """

    def __init__(
        self, output_dir: str | Path, every_n_steps: int = 10, num_completions: int = 4, value: str = "reward"
    ):
        if value not in CALLBACK_VALUES:
            raise ValueError(f"TokenHeatmapCallback: value must be one of {CALLBACK_VALUES}, got {value!r}.")
        if every_n_steps < 1 or num_completions < 1:
            raise ValueError("TokenHeatmapCallback: every_n_steps and num_completions must be >= 1.")
        self.output_dir = Path(output_dir)
        self.every_n_steps, self.num_completions, self.value = every_n_steps, num_completions, value
        self.written: list[Path] = []
        self.latest: Any = None

    def on_token_step(self, args: Any, state: Any, record: Any) -> None:
        """Called by the token trainers with the `TokenStepRecord` of each generation batch; keeps the latest."""
        self.latest = record

    def combined_values(self) -> tuple[list, list, list[list[float]]] | None:
        """(prompts, completion_ids, per-token values) of the latest recorded batch, each value list as long as its
        completion (``value`` picks rewards, advantages or token advantages; ``"all"``: a mapping of the three per
        completion); None before any batch."""
        record = self.latest
        if record is None:
            return None
        table = {"reward": record.rewards, "advantage": record.advantages, "token_advantage": record.token_advantages}
        if self.value == "all":
            rows = [
                {name: table[name][b, : len(ids)].tolist() for name in ("reward", "token_advantage", "advantage")}
                for b, ids in enumerate(record.completion_ids)
            ]
            return record.prompts, record.completion_ids, rows
        values = table[self.value]
        rows = [values[b, : len(ids)].tolist() for b, ids in enumerate(record.completion_ids)]
        return record.prompts, record.completion_ids, rows

    def write(self, args: Any, step: int, tokenizer: Any) -> Path | None:
        """Write the page of the latest batch for ``step``; returns its path (None before any complete batch)."""
        combined = self.combined_values()
        if combined is None or tokenizer is None:
            return None
        prompts, completion_ids, values = combined
        rows = []
        for b in range(min(self.num_completions, len(completion_ids))):
            if isinstance(values[b], dict):
                total = sum(values[b]["reward"])
                caption = f"completion {b}: {len(completion_ids[b])} tokens, sum of token rewards {total:+.3f}"
            else:
                total = sum(values[b])
                caption = f"completion {b}: {len(completion_ids[b])} tokens, sum of token {self.value}s {total:+.3f}"
            prompt = prompts[b] if b < len(prompts) else None
            rows.append(completion_heatmap(tokenizer, completion_ids[b], values[b], prompt, caption))
        title = f"Token {'values' if self.value == 'all' else self.value + 's'} at step {step}"
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
