"""Token advantages with 2 CPU processes (gloo) equal those of 1 process on the same global batch (GRPO and RLOO)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "distributed" / "token_advantages_script.py"


def launch(nproc, model_dir, out_dir, kind):
    out_dir.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(SCRIPT),
        model_dir,
        str(out_dir),
        kind,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(nproc)]


def stack(ranks, key):
    """Concatenate the ranks' (B_r, T_r) rows, right-padding each to the longest T."""
    length = max(r[key]["advantages"].size(1) for r in ranks)
    pad = lambda t: torch.nn.functional.pad(t, (0, length - t.size(1)))  # noqa: E731
    return torch.cat([pad(r[key]["advantages"]) for r in ranks]), torch.cat([pad(r[key]["mask"]) for r in ranks])


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_two_processes_equal_one(tiny_model_dir, tmp_path, kind):
    one = launch(1, tiny_model_dir, tmp_path / "one", kind)
    two = launch(2, tiny_model_dir, tmp_path / "two", kind)
    assert len(one[0]) == 9  # every mode × normalization
    for key in one[0]:
        single, single_mask = stack(one, key)
        double, double_mask = stack(two, key)
        assert two[0][key]["advantages"].size(1) != two[1][key]["advantages"].size(1)  # ranks padded differently
        assert single.shape == double.shape == (12, single.size(1))
        torch.testing.assert_close(double_mask, single_mask)
        torch.testing.assert_close(double, single, atol=1e-5, rtol=1e-5, msg=lambda m, key=key: f"{key}: {m}")
        assert single.abs().sum() > 0
        for name, value in one[0][key]["metrics"].items():  # logged metrics are global: same on every rank
            assert two[0][key]["metrics"][name] == pytest.approx(value, abs=1e-5), (key, name)
            assert two[1][key]["metrics"][name] == pytest.approx(value, abs=1e-5), (key, name)
