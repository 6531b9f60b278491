"""Token heatmaps (HTML structure, colours, headless-browser rendering), the heatmap callback, reward-curve PNGs."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.trainer_helpers import grpo_args, length_reward
from trl_token_ext.curves import curve_title, plot_reward_curves, reward_curve_keys
from trl_token_ext.visualize import (
    MIN_TINT,
    HeatmapRow,
    TokenHeatmapCallback,
    color_scale,
    completion_heatmap,
    heatmap_page,
    page_scales,
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


def test_a_credited_line_break_is_drawn_visibly():
    # a line's last token is often its "\n", which has no visible background: a non-zero one gets a "↵" before it
    spans = _spans(token_heatmap_html(["35", "\n", "\n", "Answer"], [0.0, 1.0, 0.0, -0.5])).spans
    assert [s["text"] for s in spans] == ["35", "↵\n", "\n", "Answer"]


def test_value_color_gives_small_values_a_visible_tint():
    # strength max(0.01 / 1, 0.15) = 0.15: 255 + 0.15·(46-255) = 223.65 → 224, 255 - 14.25 → 241, 255 - 28.2 → 227
    assert value_color(0.01, 1.0, min_tint=0.15) == "rgb(224,241,227)"
    assert value_color(-0.01, 1.0, min_tint=0.15) == "rgb(249,224,223)"  # 255 - 6, 255 - 31.05, 255 - 32.4
    assert value_color(0.5, 1.0, min_tint=0.15) == value_color(0.5, 1.0)  # above the tint: unchanged
    assert value_color(0.0, 1.0, min_tint=0.15) == "rgb(255,255,255)"  # zero stays white


def test_color_scale_max_and_robust_by_hand():
    values = [0.01, 0.02, 0.03, -1.0, 0.0, float("nan")]
    assert color_scale(values, "max") == 1.0
    # robust: 0.9 quantile of |non-zero| = [0.01, 0.02, 0.03, 1]: position 0.9·3 = 2.7 → 0.03 + 0.7·(1 - 0.03) = 0.709
    assert color_scale(values) == pytest.approx(0.709)
    assert color_scale([0.0, 0.0]) == 0.0 and color_scale([-0.4]) == 0.4
    with pytest.raises(ValueError, match="scale must be one of"):
        color_scale(values, "median")


def test_heatmap_page_is_self_contained_with_a_shared_scale():
    rows = [
        HeatmapRow(["good", " film"], [2.0, 0.0], prompt="Review?", caption="first"),
        HeatmapRow(["bad"], [-1.0]),
    ]
    page = heatmap_page(rows, title="T", scale="max", min_tint=0.0)
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
    # the default robust scale over the page's non-zero |values| [1, 2]: 1 + 0.9·(2 - 1) = 1.9
    default = _spans(heatmap_page(rows)).spans
    assert default[2]["style"] == f"background-color:{value_color(-1.0, 1.9, MIN_TINT)}"


def test_views_get_one_scale_each_over_the_page():
    rows = [
        HeatmapRow(["a", "b"], [], views={"topic": [0.02, 0.04], "repetition": [0.0, -1.0]}),
        HeatmapRow(["c"], [], views={"topic": [0.01], "repetition": [0.0]}),
    ]
    assert page_scales(rows, "max") == {"topic": 0.04, "repetition": 1.0}
    page = heatmap_page(rows, scale="max")
    spans = _spans(page).spans  # row 1: topic a b, repetition a b; row 2: topic c, repetition c
    assert [float(s["data-value"]) for s in spans] == [0.02, 0.04, 0.0, -1.0, 0.01, 0.0]
    assert spans[1]["style"] == "background-color:rgb(46,160,67)"  # 0.04 is the topic view's full colour
    assert spans[0]["style"] == f"background-color:{value_color(0.02, 0.04)}"  # half, not 2 % of the -1's scale
    assert spans[4]["style"] == f"background-color:{value_color(0.01, 0.04, MIN_TINT)}"
    assert page.count('<span class="label">topic</span>') == 2 and page.count('class="legend"') == 2
    with pytest.raises(ValueError, match="view 'topic' has 1 values for 2 tokens"):
        heatmap_page([HeatmapRow(["a", "b"], [], views={"topic": [1.0]})])


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
    assert not hasattr(callback, "watch")  # removed: the trainer reports what it used
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
    callback.value = "all"
    assert callback.combined_values()[2][1] == {"reward": [2.0], "token_advantage": [4.0], "advantage": [-1.0]}
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
    # two runs on the same axes: the union of their keys, one panel each
    two = plot_reward_curves({"token": history, "control": history[:1]}, tmp_path / "two.png")
    with Image.open(two) as image:
        assert image.size == (700, 660)  # 3 keys
    assert curve_title("rewards/f/mean") == "outcome reward f"
    assert curve_title("token_rewards/g/mean") == "token reward g (mean per token)"
    assert curve_title("reward") == "outcome reward (weighted sum)" and curve_title("loss") == "loss"


def test_reward_curves_leave_matplotlib_global_state_alone(tmp_path):
    """The plot is drawn on a Figure of its own: a script's backend (svg here) is kept; no pyplot figure."""
    matplotlib = pytest.importorskip("matplotlib")
    original = matplotlib.get_backend()
    matplotlib.use("svg", force=True)
    try:
        plot_reward_curves([{"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.7}], tmp_path / "one.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(original, force=True)
    import sys

    if "matplotlib.pyplot" in sys.modules:  # pyplot imported elsewhere: no figure of ours left open in it
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _screenshot(page: str, tmp_path, size=(900, 400)) -> set[tuple[int, int, int]]:
    """The colours of a headless Chromium screenshot of ``page``."""
    from PIL import Image

    path = tmp_path / "heatmap.html"
    path.write_text(page)
    shot = tmp_path / "shot.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
        f"--window-size={size[0]},{size[1]}", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", path.as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == size
        return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def _near(colours, target, tolerance=3):
    return any(all(abs(a - b) <= tolerance for a, b in zip(colour, target)) for colour in colours)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless chromium installed")
def test_heatmap_renders_in_headless_chromium(tmp_path):
    """Screenshot of a heatmap page: the token backgrounds show up with their exact colours."""
    rows = [HeatmapRow(["  great  "] * 4 + ["  awful  "] * 4, [1.0] * 4 + [-1.0] * 4, prompt="Headless check")]
    colours = _screenshot(heatmap_page(rows, title="Screenshot"), tmp_path)
    assert _near(colours, (46, 160, 67)) and _near(colours, (215, 48, 39))


def _rgb(style: str) -> tuple[int, int, int]:
    return tuple(int(c) for c in style.removeprefix("background-color:rgb(").removesuffix(")").split(","))


@pytest.mark.skipif(CHROMIUM is None, reason="no headless chromium installed")
def test_every_token_with_a_nonzero_reward_is_visibly_coloured_in_chromium(tmp_path):
    """The demo's old failure: a sentence-level topic reward of +0.01..+0.04 per token beside a -1 repetition
    penalty was drawn white (scale ±1). With the page's defaults (robust scale per view, minimum tint) every token
    whose value is non-zero gets a background at least 30 RGB units from white, and that colour is on screen."""
    topic = [0.012, 0.018, 0.025, 0.031, 0.04, 0.015, 0.022, 0.0]
    repetition = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    weighted = [t + r for t, r in zip(topic, repetition)]  # what the old single-view page showed
    tokens = [f"  word{i}  " for i in range(len(topic))]
    rows = [
        HeatmapRow(tokens, weighted, prompt="one view, the weighted sum"),
        HeatmapRow(tokens, [], views={"C_topic": topic, "C_repetition": repetition, "R": weighted}),
    ]
    page = heatmap_page(rows, title="Readable credit")
    spans = _spans(page).spans
    assert len(spans) == 4 * len(tokens)
    expected = set()
    for span in spans:
        colour = _rgb(span["style"])
        if float(span["data-value"]) == 0.0:
            assert colour == (255, 255, 255)
            continue
        assert max(255 - c for c in colour) >= 30, (span["text"], span["data-value"], colour)
        expected.add(colour)
    colours = _screenshot(page, tmp_path, size=(1000, 700))
    missing = [colour for colour in expected if not _near(colours, colour)]
    assert not missing, missing
