"""DistributedDataParallel through torchrun on CPU (gloo, 2 processes): ranks stay in sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def test_ddp_two_ranks_agree_on_weights(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_toy_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    # Each rank started from different random weights; DDP broadcast rank 0's and then
    # averaged gradients, so after 6 steps every parameter is bit-identical across ranks.
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Rank 0 alone writes logs and checkpoints; 6 steps of 2 x 4 samples = 48 samples seen.
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "eval_log.csv").is_file()
    from hmrt.train.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "last.pt")["position"]["step"] == 6
