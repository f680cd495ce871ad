"""The bundled DaNet-edge weights: size, provenance fields, and that they load and run."""

from __future__ import annotations

import numpy as np
import pytest

from hmrt.assets import asset_path

WEIGHTS = asset_path("weights/danet_edge.pt")
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason="bundled weights not present")


def test_size_and_checkpoint_fields():
    from hmrt.train.checkpoint import read_checkpoint

    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    ckpt = read_checkpoint(WEIGHTS)
    assert ckpt["model"]["name"] == "danet" and ckpt["model"]["variant"] == "edge"
    assert "optimizer" not in ckpt  # a slim copy: weights + configs only
    assert ckpt["train_config"]["data"] == ["synth"]  # trained on the synthetic engine only


def test_loads_on_the_bundled_body_and_runs():
    import torch

    from hmrt.export.model_source import load_model
    from hmrt.runtime.body import BodyModel
    from hmrt.train.checkpoint import body_hash_of

    src = load_model("danet", "edge")  # refuses a checkpoint trained on another body model
    assert src.weights == "bundled"
    assert body_hash_of(src.model) == BodyModel().hash
    h, w = src.model.config.input_size
    with torch.no_grad():
        out = src.model(torch.zeros(1, 3, h, w))
    assert out["vertices"].shape == (1, 13348, 3)
    assert all(np.isfinite(v.numpy()).all() for v in out.values())
