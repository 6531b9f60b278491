"""OnlineImplicitPRM with 2 CPU processes (gloo): the same adapter on both, equal to the 1-process update."""

import os
import subprocess
import sys
from pathlib import Path

import torch

PRM_SCRIPT = Path(__file__).parent / "distributed" / "online_prm_script.py"


def test_online_prm_update_with_two_processes_equals_one(tiny_model_dir, tmp_path):
    """Same adapter on every process (process 0's initialisation), and the update of the whole batch."""
    results = {}
    for nproc in (1, 2):
        out_dir = tmp_path / str(nproc)
        out_dir.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   str(PRM_SCRIPT), tiny_model_dir, str(out_dir)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        results[nproc] = [torch.load(out_dir / f"rank{r}.pt") for r in range(nproc)]
    (one,), (first, second) = results[1], results[2]
    for name, value in one["adapter"].items():
        assert (value - one["initial"][name]).abs().max() > 1e-5  # the update moved the adapter
        torch.testing.assert_close(first["adapter"][name], value, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(second["adapter"][name], first["adapter"][name], atol=0, rtol=0)


TRAINER_SCRIPT = Path(__file__).parent / "distributed" / "prime_trainer_script.py"


def test_trainer_with_online_prm_and_kl_two_processes_equal_one(tiny_model_dir, tmp_path):
    """Outcome rows seen by token reward functions, the PRM after its update and the advantages: 2 processes = 1."""
    results = {}
    for nproc in (1, 2):
        out_dir = tmp_path / f"trainer{nproc}"
        out_dir.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   str(TRAINER_SCRIPT), tiny_model_dir, str(out_dir)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        results[nproc] = [torch.load(out_dir / f"rank{r}.pt") for r in range(nproc)]
    (one,), two = results[1], results[2]
    assert one["outcome"].shape == (12, 1) and [r["outcome"].shape for r in two] == [(6, 1), (6, 1)]
    torch.testing.assert_close(torch.cat([r["outcome"] for r in two]), one["outcome"])
    torch.testing.assert_close(torch.cat([r["weighted"] for r in two]), one["weighted"])
    assert one["num_updates"] == two[0]["num_updates"] == two[1]["num_updates"] == 1
    for name, value in one["adapter"].items():
        torch.testing.assert_close(two[0]["adapter"][name], value, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(two[1]["adapter"][name], two[0]["adapter"][name], atol=0, rtol=0)
    length = max(r["advantages"].size(1) for r in [one, *two])
    pad = lambda t: torch.nn.functional.pad(t, (0, length - t.size(1)))  # noqa: E731
    torch.testing.assert_close(
        torch.cat([pad(r["advantages"]) for r in two]), pad(one["advantages"]), atol=1e-5, rtol=1e-5
    )
    assert pad(one["advantages"]).ne(0).any()
