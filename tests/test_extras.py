"""Optional dependencies: each extra's feature, its package missing, raises one ImportError that names the extra
(`trl_token_ext.extras`); the wheel check (slow) proves it on a real core-only install."""

import subprocess
import sys
from pathlib import Path

import pytest

import trl_token_ext
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
    included = {  # demo = ["trl-token-ext[sentences,classifier]", ...]
        extra: tuple(spec.split("[")[1].rstrip("]").split(","))
        for extra in extras.EXTRAS
        for spec in optional[extra]
        if spec.startswith("trl-token-ext[")
    }
    assert included == extras.INCLUDES
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


def test_extra_modules_and_missing_packages_name_the_extra(monkeypatch):
    assert extras.extra_modules("demo") == ("pysbd", "sklearn", "gguf", "matplotlib", "rich")  # includes first
    assert extras.extra_modules("metrics") == ("sacrebleu", "rouge_score")
    with pytest.raises(ValueError, match="unknown extra 'plots'"):
        extras.extra_modules("plots")
    extras.require_extra("demo", "Demo")  # the test environment has every extra: nothing raised
    _missing(monkeypatch, "gguf", "rich")
    with pytest.raises(
        ImportError,
        match=r"^Demo needs the gguf, rich packages, which are not installed: pip install 'trl-token-ext\[demo\]'$",
    ):
        extras.require_extra("demo", "Demo")
    _missing(monkeypatch, "sklearn")  # a package of an included extra is named too
    with pytest.raises(ImportError, match=r"needs the sklearn, gguf, rich packages, .*\[demo\]"):
        extras.require_extra("demo", "Demo")


def _forget_demo(monkeypatch):
    """Unload the demo package for this test (restored after it), so that importing it runs its check again."""
    for name in [name for name in sys.modules if name.startswith("trl_token_ext.demo")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(trl_token_ext, "demo", raising=False)


@pytest.mark.parametrize("absent", [("gguf",), ("matplotlib", "rich"), ("pysbd",)])
def test_the_demo_without_its_extra_fails_at_once_naming_it(monkeypatch, absent):
    """`import trl_token_ext.demo` and `trl-token demo` on an install without the [demo] extra: one ImportError that
    names the extra and every missing package, before any demo module (download, model load) runs."""
    import importlib

    from trl_token_ext import cli

    _forget_demo(monkeypatch)
    _missing(monkeypatch, *absent)
    hint = (
        rf"needs the {', '.join(absent)} packages?, which (is|are) not installed: pip install 'trl-token-ext\[demo\]'"
    )
    with pytest.raises(ImportError, match=hint):
        importlib.import_module("trl_token_ext.demo")
    with pytest.raises(SystemExit, match=rf"trl-token demo is not available: .*{hint}"):
        cli.main(["demo", "--tiny"])
    with pytest.raises(ImportError, match=hint):
        importlib.import_module("trl_token_ext.demo.run")  # `python -m trl_token_ext.demo.run`: the package first
    assert not [name for name in sys.modules if name.startswith("trl_token_ext.demo")]


def test_the_demo_imports_with_its_extra(monkeypatch):
    import importlib

    _forget_demo(monkeypatch)
    assert importlib.import_module("trl_token_ext.demo").__all__ == ["main"]


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
    for extra in ("sentences", "classifier", "quantization", "lexicon", "metrics", "demo"):
        assert f"pip install 'trl-token-ext[{extra}]'" in result.stdout
    assert "core import: TokenGRPOTrainer" in result.stdout  # the library without the demo's packages
    assert "[demo]: trl-token demo is not available: " in result.stdout
