"""``--init-module PREFIX=CKPT[:SRC]``: one module's weights from another run or another model.

Real checkpoints on disk: the bundled DaNet-edge weights seed HKMR's MobileNetV2 encoder (the
recipe of train/configs/hkmr_edge_cpu_danet.yaml); mismatches are one-line InputErrors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hmrt.runtime.errors import InputError
from hmrt.train.checkpoint import load_module_weights_into, split_module_source
from hmrt.train.models.registry import build

DANET = Path(__file__).resolve().parents[1] / "assets" / "weights" / "danet_edge.pt"
SRC = "img2iuv.iuv_est.body"


def _danet_state() -> dict:
    return torch.load(DANET, map_location="cpu", weights_only=False)["state_dict"]


def test_split_module_source(tmp_path):
    assert split_module_source("runs/a/last.pt") == ("runs/a/last.pt", "")
    assert split_module_source("runs/a/last.pt:img2iuv.x") == ("runs/a/last.pt", "img2iuv.x")
    odd = tmp_path / "a:b.pt"  # an existing file whose name holds a colon is a path
    odd.write_bytes(b"")
    assert split_module_source(str(odd)) == (str(odd), "")


def test_hkmr_encoder_from_danet_edge():
    model = build("hkmr", "edge", backbone="mobilenetv2", backbone_width=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("regressor.")}
    n = load_module_weights_into(model, "backbone", f"{DANET}:{SRC}")
    state, src = model.state_dict(), _danet_state()
    mine = [k for k in state if k.startswith("backbone.")]
    assert n == len(mine) > 100
    for k in mine:
        assert torch.equal(state[k], src[SRC + k[len("backbone") :]].float()), k
    assert all(torch.equal(state[k], v) for k, v in before.items())  # nothing else touched


def test_cross_model_mismatches_are_one_line():
    resnet = build("hkmr", "edge", backbone="resnet18")  # the ResNet-18 encoder: other names
    with pytest.raises(InputError, match=r"lacks \d+ tensors under 'img2iuv.iuv_est.body'"):
        load_module_weights_into(resnet, "backbone", f"{DANET}:{SRC}")
    wide = build("hkmr", "edge", backbone="mobilenetv2", backbone_width=1.0)
    with pytest.raises(InputError, match="a different width"):
        load_module_weights_into(wide, "backbone", f"{DANET}:{SRC}")
    narrow = build("hkmr", "edge", backbone="mobilenetv2", backbone_width=0.5)
    with pytest.raises(InputError, match=r"no weights under 'nothing\.here'"):
        load_module_weights_into(narrow, "backbone", f"{DANET}:nothing.here")
    # without SRC the checkpoint must be of the same model config
    with pytest.raises(InputError, match=r"PREFIX=CKPT:SRC_PREFIX"):
        load_module_weights_into(narrow, "backbone", str(DANET))
