"""TokenHeatmapCallback logs its pages to the trackers that `report_to` names, offline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from trl_token_ext.visualize import TokenHeatmapCallback


def _page(tmp_path: Path) -> Path:
    path = tmp_path / "step_00003.html"
    path.write_text("<html><body><span title='0.5'>tok</span></body></html>", encoding="utf-8")
    return path


def test_tensorboard_gets_a_text_entry_at_the_step(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    callback = TokenHeatmapCallback(tmp_path / "pages")
    args = SimpleNamespace(report_to=["tensorboard"], output_dir=str(tmp_path))
    callback._report(args, 3, _page(tmp_path))
    events = EventAccumulator(str(tmp_path / "runs" / "token_heatmaps"), size_guidance={"tensors": 0}).Reload()
    (entry,) = events.Tensors("token_heatmap/text_summary")
    text = entry.tensor_proto.string_val[0].decode()
    assert entry.step == 3 and "step_00003.html" in text and "<span title='0.5'>tok</span>" in text


def test_nothing_is_logged_to_trackers_not_named(tmp_path):
    callback = TokenHeatmapCallback(tmp_path / "pages")
    callback._report(SimpleNamespace(report_to="none", output_dir=str(tmp_path)), 3, _page(tmp_path))
    assert not (tmp_path / "runs").exists() and getattr(callback, "_tb_writer", None) is None


def test_wandb_offline_run_gets_the_page_as_html_media(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="trl-token-ext-test", dir=str(tmp_path))
    try:
        callback = TokenHeatmapCallback(tmp_path / "pages")
        callback._report(SimpleNamespace(report_to=["wandb"], output_dir=str(tmp_path)), 3, _page(tmp_path))
        run_dir = Path(run.dir)
    finally:
        run.finish()
    media = list(run_dir.glob("media/html/token_heatmap_*.html"))
    assert len(media) == 1 and "<span title='0.5'>tok</span>" in media[0].read_text(encoding="utf-8")
