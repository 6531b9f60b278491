"""The demo's progress display: step/total, elapsed time and ETA of every arm, readable at 80 columns and in logs.

* :class:`ArmProgress`: a ``TrainerCallback`` that reports each optimizer step (with the latest reward figures) to
  an ``emit`` function — the display itself when the arm runs in this process, a line on stdout when it runs in a
  child process (:func:`emit_line` / :func:`parse_line`).
* :class:`ProgressDisplay`: on a terminal, one ``rich`` bar per arm whose text starts with the step count and the
  ETA (the reward figures come last and are cut with "…" when the line is too long); in a log file, one plain line
  per step and arm, never wrapped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

EVENT_PREFIX = "@@demo-progress "
# Log keys shown in the progress line, with their short names (token reward means are added as they appear).
SHORT_NAMES = {
    "rewards/sentence_positive/mean": "P(pos)",
    "rewards/answer_correct/mean": "answer",
    "reward": "reward",
}


def format_clock(seconds: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on); ``-:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def short_figures(logs: dict[str, Any]) -> str:
    """The reward figures of one log entry, short: ``P(pos)=0.790 reward=1.218 topic=+0.031``."""
    figures = []
    for key, value in logs.items():
        if not isinstance(value, (int, float)):
            continue
        if key in SHORT_NAMES:
            figures.append(f"{SHORT_NAMES[key]}={value:.3f}")
        elif key.startswith("token_rewards/") and key.endswith("/mean"):
            name = key.split("/")[1].removeprefix("consistency_")
            figures.append(f"{name}={value:+.3f}")
    return " ".join(figures)


class ArmProgress(TrainerCallback):
    """Reports ``{"label", "step", "total"}`` to ``emit`` after every optimizer step, and the reward figures with
    each log entry (the Trainer logs a step after its ``on_step_end``)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], label: str):
        self.emit, self.label = emit, label

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.emit({"label": self.label, "step": 0, "total": state.max_steps})

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.emit({"label": self.label, "step": state.global_step, "total": state.max_steps})

    def on_log(self, args, state, control, logs=None, **kwargs):
        figures = short_figures(logs or {})
        if state.is_world_process_zero and figures:
            self.emit({"label": self.label, "step": state.global_step, "total": state.max_steps, "figures": figures})


def emit_line(event: dict[str, Any]) -> None:
    """Write ``event`` as one machine-readable line on stdout (a child process reporting to the parent)."""
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def parse_line(line: str) -> dict[str, Any] | None:
    """The event of a line written by :func:`emit_line`, or None for any other line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    return json.loads(line[len(EVENT_PREFIX) :])


class ProgressDisplay:
    """Progress of every arm: ``rich`` bars on a terminal, plain lines (``label  step/total  elapsed  ETA  figures``)
    otherwise. Feed it events with :meth:`update`; ``status`` events (``{"label", "status"}``) name a phase."""

    def __init__(self, console: Any):
        self.console = console
        self.started: dict[str, float] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.progress = None
        self.tasks: dict[str, Any] = {}

    def line(self, label: str) -> str:
        """The text of ``label``'s progress: step count and ETA first, so they survive any cut."""
        state = self.state[label]
        if "status" in state or "step" not in state:
            return f"{label:<20} {state.get('status', '')}"
        step, total = state["step"], state["total"]
        elapsed = time.perf_counter() - self.started[label]
        eta = elapsed / step * (total - step) if step else None
        text = f"{label:<20} {step:>3}/{total:<3} {format_clock(elapsed)} ETA {format_clock(eta)}"
        figures = state.get("figures", "")
        return f"{text}  {figures}" if figures else text

    def update(self, event: dict[str, Any]) -> None:
        label = event["label"]
        state = self.state.setdefault(label, {})
        if "status" in event:  # a phase outside training: sampling, scoring, ...
            state["status"] = event["status"]
        if "step" in event:
            state.pop("status", None)
            if event["step"] == 0 or label not in self.started:
                self.started[label] = time.perf_counter()
            state.update(step=event["step"], total=event["total"])
            if event.get("figures"):
                state["figures"] = event["figures"]
        if self.console.is_terminal:
            self._bar(label, state)
        elif event.get("figures") or "status" in event:  # a log file: one line per logged step or phase
            self.console.print(self.line(label), soft_wrap=True, highlight=False, markup=False)

    def _bar(self, label: str, state: dict[str, Any]) -> None:
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        if self.progress is None:
            text = TextColumn("{task.fields[line]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
            self.progress = Progress(BarColumn(bar_width=10), text, console=self.console, expand=True)
            self.progress.start()
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=state.get("total") or 1, line="")
        self.progress.update(
            self.tasks[label], completed=state.get("step", 0), total=state.get("total") or 1, line=self.line(label)
        )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress, self.tasks = None, {}
