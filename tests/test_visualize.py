"""Token heatmaps (HTML structure, colours, headless-browser rendering), the heatmap callback, reward-curve PNGs."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.trainer_helpers import grpo_args, length_reward
from trl_token_ext.visualize import (
    HeatmapRow,
    TokenHeatmapCallback,
    completion_heatmap,
    heatmap_page,
    plot_reward_curves,
    reward_curve_keys,
    token_heatmap_html,
    value_color,
)


class _Spans(HTMLParser):
    """Collects every <span class="tok ..."> with its attributes and text, and the tags seen."""

    def __init__(self):
        super().__init__()
        self.spans: list[dict] = []
        self.tags: set[str] = set()
        self._open = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attributes = dict(attrs)
        if tag == "span" and "tok" in (attributes.get("class") or "").split():
            self._open = {**attributes, "text": ""}

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None


def _spans(markup: str) -> _Spans:
    parser = _Spans()
    parser.feed(markup)
    return parser


def test_value_color_hand_computed():
    assert value_color(1.0, 1.0) == "rgb(46,160,67)"  # full positive colour
    assert value_color(-2.0, 2.0) == "rgb(215,48,39)"  # full negative colour
    assert value_color(0.0, 1.0) == "rgb(255,255,255)"
    # half way to red: 255 + 0.5·(215-255) = 235, 255 + 0.5·(48-255) = 151.5 → 152, 255 + 0.5·(39-255) = 147
    assert value_color(-0.5, 1.0) == "rgb(235,152,147)"
    assert value_color(7.0, 1.0) == value_color(1.0, 1.0)  # clipped
    assert value_color(1.0, 0.0) == "rgb(255,255,255)"  # all-zero scale
    assert value_color(float("nan"), 1.0) == "rgb(255,255,255)"


def test_token_heatmap_html_spans_titles_and_escaping():
    markup = token_heatmap_html(["Hi", " <b>", " &"], [0.5, -1.0, 0.0])
    spans = _spans(markup).spans
    assert [s["text"] for s in spans] == ["Hi", " <b>", " &"]  # escaped in the markup, restored by the parser
    assert "&lt;b&gt;" in markup and "<b>" not in markup
    assert [float(s["data-value"]) for s in spans] == [0.5, -1.0, 0.0]
    assert spans[0]["title"] == "#0 'Hi' = +0.5000"
    assert spans[1]["title"] == "#1 ' <b>' = -1.0000"
    # default vmax = max |value| = 1: token 1 is full red, token 0 half green, token 2 white
    assert spans[1]["style"] == "background-color:rgb(215,48,39)"
    assert spans[0]["style"] == f"background-color:{value_color(0.5, 1.0)}"
    assert spans[2]["style"] == "background-color:rgb(255,255,255)"
    with pytest.raises(ValueError, match="2 tokens but 1 values"):
        token_heatmap_html(["a", "b"], [1.0])


def test_heatmap_page_is_self_contained_with_a_shared_scale():
    rows = [
        HeatmapRow(["good", " film"], [2.0, 0.0], prompt="Review?", caption="first"),
        HeatmapRow(["bad"], [-1.0]),
    ]
    page = heatmap_page(rows, title="T")
    assert page.startswith("<!DOCTYPE html>")
    for forbidden in ("<script", "src=", "http://", "https://", "<link"):
        assert forbidden not in page
    parsed = _spans(page)
    assert len(parsed.spans) == 3
    assert page.count('class="row"') == 2
    # one scale for the page: vmax = 2, so -1 is half red
    assert parsed.spans[2]["style"] == f"background-color:{value_color(-1.0, 2.0)}"
    assert parsed.spans[0]["style"] == "background-color:rgb(46,160,67)"
    assert "Review?" in page and "first" in page


def test_completion_heatmap_tokens_rebuild_the_text(tiny_tokenizer):
    ids = tiny_tokenizer("The movie was wonderful.", add_special_tokens=False)["input_ids"]
    ids = ids + [tiny_tokenizer.eos_token_id]
    row = completion_heatmap(
        tiny_tokenizer, ids, [float(i) for i in range(len(ids))], prompt=[{"role": "user", "content": "Q"}]
    )
    assert "".join(t for t, aux in zip(row.tokens, row.aux) if not aux) == "The movie was wonderful."
    assert row.aux[-1] and row.tokens[-1] == tiny_tokenizer.eos_token  # EOS is shown by its token string
    assert row.prompt == "user: Q"
    with pytest.raises(ValueError, match="values"):
        completion_heatmap(tiny_tokenizer, ids, [0.0])


def test_callback_shows_the_recorded_step_values(tmp_path):
    import torch

    from trl_token_ext.trainers.records import TokenStepRecord

    callback = TokenHeatmapCallback(tmp_path, value="reward")
    assert callback.combined_values() is None  # nothing recorded yet
    funcs = [lambda **kw: None]
    assert callback.watch(funcs) == funcs  # kept for compatibility: the functions, unchanged
    record = TokenStepRecord(
        prompts=["a", "a"],
        completion_ids=[[5, 6, 7], [8]],
        rewards=torch.tensor([[1.0, 3.0, 0.5], [2.0, 0.0, 0.0]]),
        token_advantages=torch.tensor([[0.5, -0.5, 1.0], [4.0, 0.0, 0.0]]),
        advantages=torch.tensor([[1.5, 0.5, 2.0], [-1.0, 0.0, 0.0]]),
        mask=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]),
    )
    callback.on_token_step(None, None, record)
    prompts, ids, values = callback.combined_values()
    assert prompts == ["a", "a"] and ids == [[5, 6, 7], [8]]
    assert values == [[1.0, 3.0, 0.5], [2.0]]  # cut to each completion's length
    callback.value = "advantage"
    assert callback.combined_values()[2] == [[1.5, 0.5, 2.0], [-1.0]]
    callback.value = "token_advantage"
    assert callback.combined_values()[2] == [[0.5, -0.5, 1.0], [4.0]]
    with pytest.raises(ValueError, match="value must be one of"):
        TokenHeatmapCallback(tmp_path, value="logits")


def test_callback_writes_pages_during_training(tmp_path, tiny_model_dir, prompt_dataset):
    from trl_token_ext import TokenGRPOTrainer

    def ones(completion_ids, **kwargs):
        return [[1.0] * len(ids) for ids in completion_ids]

    callback = TokenHeatmapCallback(tmp_path / "maps", every_n_steps=2, num_completions=3)
    trainer = TokenGRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[ones],
        args=grpo_args(tmp_path / "run", token_reward_weights=[0.5]),
        train_dataset=prompt_dataset,
        callbacks=[callback],
    )
    trainer.train()  # 3 steps: pages after step 2 and after the last step
    assert [p.name for p in callback.written] == ["step_00002.html", "step_00003.html"]
    page = callback.written[-1].read_text()
    assert page.count('class="row"') == 3
    values = {float(s["data-value"]) for s in _spans(page).spans}
    assert values == {0.5}
    assert "token_rewards/ones/mean" in trainer.state.log_history[0]


def test_reward_curves_png(tmp_path):
    history = [
        {"step": 1, "reward": 0.1, "rewards/f/mean": 0.2, "loss": 1.0},
        {"step": 2, "reward": 0.3, "rewards/f/mean": 0.1, "token_rewards/g/mean": -0.5},
        {"step": 2, "train_runtime": 3.0},
    ]
    assert reward_curve_keys(history) == ["reward", "rewards/f/mean", "token_rewards/g/mean"]
    pytest.importorskip("matplotlib")
    path = plot_reward_curves(history, tmp_path / "curves.png", keys=["reward", "token_rewards/g/mean"])
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (700, 440)  # figsize (7, 2.2 per key) at 100 dpi
    with pytest.raises(ValueError, match="no reward keys"):
        plot_reward_curves([{"step": 1, "loss": 1.0}], tmp_path / "none.png")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless chromium installed")
def test_heatmap_renders_in_headless_chromium(tmp_path):
    """Screenshot of a heatmap page: the token backgrounds show up with their exact colours."""
    from PIL import Image

    rows = [HeatmapRow(["  great  "] * 4 + ["  awful  "] * 4, [1.0] * 4 + [-1.0] * 4, prompt="Headless check")]
    page = tmp_path / "heatmap.html"
    page.write_text(heatmap_page(rows, title="Screenshot"))
    shot = tmp_path / "shot.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
        "--window-size=900,400", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (900, 400)
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}

    def near(target):
        return any(all(abs(a - b) <= 3 for a, b in zip(colour, target)) for colour in colours)

    assert near((46, 160, 67)) and near((215, 48, 39))
