"""Optional dependencies: each extra's feature, its package missing, raises one ImportError that names the extra
(`trl_token_ext.extras`); the wheel check (slow) proves it on a real core-only install."""

import subprocess
import sys
from pathlib import Path

import pytest

from trl_token_ext import extras


def _missing(monkeypatch, *modules):
    for module in modules:  # a None entry makes `import module` raise ImportError
        monkeypatch.setitem(sys.modules, module, None)


def test_require_and_hint_name_the_extra(monkeypatch):
    assert extras.install_hint("metrics") == "pip install 'trl-token-ext[metrics]'"
    with pytest.raises(ValueError, match=r"unknown extra 'peft'; the extras are \['classifier', 'demo'"):
        extras.install_hint("peft")
    assert extras.require("json", "metrics", "x").dumps([]) == "[]"
    _missing(monkeypatch, "sacrebleu")
    with pytest.raises(
        ImportError,
        match=r"^BLEU needs the sacrebleu package, which is not installed: pip install 'trl-token-ext\[metrics\]'$",
    ):
        extras.require("sacrebleu", "metrics", "BLEU")


def test_extras_match_pyproject():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    assert set(extras.EXTRAS) == set(optional) - {"test", "dev"}
    core = {spec.split(">")[0].split("=")[0].split("<")[0] for spec in project["dependencies"]}
    assert core == {"torch", "trl", "transformers", "accelerate", "peft", "datasets", "evaluate"}


@pytest.mark.parametrize(
    ("extra", "modules", "feature"),
    [
        ("sentences", ("pysbd",), lambda: _split_uncached("One. Two.")),
        ("classifier", ("sklearn",), lambda: _classification_metric()),
        ("quantization", ("bitsandbytes",), lambda: _nf4()),
        ("metrics", ("sacrebleu", "sacrebleu.metrics"), lambda: _metric_reward()),
    ],
    ids=["sentences", "classifier", "quantization", "metrics"],
)
def test_each_extras_feature_names_its_extra(monkeypatch, extra, modules, feature):
    _missing(monkeypatch, *modules)
    with pytest.raises(ImportError, match=rf"pip install 'trl-token-ext\[{extra}\]'"):
        feature()


def test_vader_lexicon_names_the_lexicon_extra(monkeypatch):
    import importlib.util

    from trl_token_ext import LexiconQuality

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vaderSentiment" else real(name))
    with pytest.raises(ImportError, match=r"LexiconQuality.from_vader needs .*pip install 'trl-token-ext\[lexicon\]'"):
        LexiconQuality.from_vader()


def _split_uncached(value):
    from trl_token_ext import text

    text._segmenter.cache_clear()
    try:
        return text.split_sentences(value)
    finally:
        text._segmenter.cache_clear()


def _classification_metric():
    from trl_token_ext.sentence.metrics import load_classification_metric

    return load_classification_metric()


def _nf4():
    from trl_token_ext.models import nf4_config

    return nf4_config()


def _metric_reward():
    from trl_token_ext import MetricReward

    return MetricReward(metric="sacrebleu")(completions=["a cat"], reference=["a cat"])


@pytest.mark.slow
def test_wheel_installs_with_core_dependencies_trains_and_names_extras():
    """scripts/check_wheel.sh: a wheel built from the tree, a fresh venv, core dependencies only (minutes)."""
    root = Path(__file__).parents[1]
    result = subprocess.run(
        ["bash", "scripts/check_wheel.sh"], cwd=root, capture_output=True, text=True, timeout=1800,
        env={**__import__("os").environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "wheel_check: ok" in result.stdout
    for extra in ("sentences", "classifier", "quantization", "lexicon", "metrics"):
        assert f"pip install 'trl-token-ext[{extra}]'" in result.stdout
