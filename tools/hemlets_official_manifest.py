"""Write ``train/models/hemlets/official_manifest.json``: key names and shapes of official HEMlets.

The released HEMlets pose network (``hemlets_h36m_lastest.pth``) is a bare
``Network(config).state_dict()`` of the official inference code (``inference/model_opr.py``
loads it with ``model.load_state_dict(torch.load(path), strict=True)``: no container, no
``module.`` prefix). hmrt never ships those weights (research-only notice, no licence), so its
import test needs the *layout*: this script instantiates the official ``Network`` from a user's
checkout of the official repository on CPU and records ``(key, shape, dtype)`` of every
state-dict entry. Nothing of the official code is copied; only names and shapes are written.

The official code targets torch 1.1 / torchvision 0.2.2; what it imports is replaced at run time,
in ``sys.modules`` only (the checkout is not modified):

* ``torchvision.models.resnet``: ``network.py`` imports ``model_urls`` from it, which modern
  torchvision removed, and ``resnet.py`` its ``BasicBlock``/``Bottleneck``. An installed
  torchvision is used with an empty ``model_urls`` added; without torchvision, a stand-in module
  provides hmrt's own blocks (``hmrt.train.models.backbones.resnet``: torchvision's parameter
  names, shapes and constructor arguments), so the recorded names and shapes are torchvision's.
  ``model_urls`` is only read by ``Network.init_backbone`` (the ImageNet download), never called.
* ``easydict`` (``config.py``): the installed package if any, else ``types.SimpleNamespace``
  (the config only sets and reads attributes).

The config is the checkout's ``inference/config.py`` as released (ResNet-50, ``N_JOINT 18``,
``fb_nfeat 14*3+18``, ``DIMS 64``): the one ``validate_evl.py`` builds the network from.

Usage (needs only torch; run from the repository root with hmrt installed)::

    git clone https://github.com/redrock303/HEMlets /tmp/hemlets_official
    python tools/hemlets_official_manifest.py /tmp/hemlets_official \\
        --out train/models/hemlets/official_manifest.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/redrock303/HEMlets"
MODEL_FILES = ("inference/network.py", "inference/resnet.py", "inference/config.py")
CHECKPOINT = "ckpt/hemlets_h36m_lastest.pth"


def _stand_in_torchvision() -> str:
    """Make ``torchvision.models.resnet`` importable with ``model_urls``; says which was used."""
    try:
        resnet = importlib.import_module("torchvision.models.resnet")
    except ImportError:
        from hmrt.train.models.backbones import resnet as hmrt_resnet

        resnet = types.ModuleType("torchvision.models.resnet")
        resnet.BasicBlock = hmrt_resnet.BasicBlock
        resnet.Bottleneck = hmrt_resnet.Bottleneck
        models = types.ModuleType("torchvision.models")
        models.resnet = resnet
        package = types.ModuleType("torchvision")
        package.models = models
        sys.modules.update(
            {
                "torchvision": package,
                "torchvision.models": models,
                "torchvision.models.resnet": resnet,
            }
        )
        found = "no torchvision: hmrt's torchvision-layout BasicBlock/Bottleneck stood in"
    else:
        found = f"torchvision {importlib.import_module('torchvision').__version__}"
    if not hasattr(resnet, "model_urls"):
        resnet.model_urls = {}  # removed from torchvision; only init_backbone() reads it
    return found


def _stand_in_easydict() -> str:
    """Make ``easydict`` importable; says which was used."""
    try:
        importlib.import_module("easydict")
    except ImportError:
        module = types.ModuleType("easydict")
        module.EasyDict = types.SimpleNamespace
        sys.modules["easydict"] = module
        return "easydict stand-in (types.SimpleNamespace)"
    return "easydict installed"


def official_network(checkout: Path) -> tuple[Any, str]:
    """``(Network(config), how)`` of the checkout's ``inference/`` code, built on CPU.

    ``how`` says which stand-ins were used. The official modules are imported under their own
    top-level names (``network``, ``resnet``, ``config``), as ``validate_evl.py`` does.
    """
    inference = checkout / "inference"
    if not (inference / "network.py").is_file():
        raise SystemExit(f"{checkout}: no inference/network.py; pass a clone of {REPOSITORY}")
    how = f"{_stand_in_torchvision()}; {_stand_in_easydict()}"
    sys.path.insert(0, str(inference))
    try:
        network = importlib.import_module("network")
        config = importlib.import_module("config").config
    finally:
        sys.path.remove(str(inference))
    return network.Network(config), how


def official_rows(net: Any) -> list[list]:
    """``[key, shape, dtype]`` of every entry of ``net.state_dict()``, in its order."""
    return [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
        for key, value in net.state_dict().items()
    ]


def manifest(checkout: Path) -> dict:
    """The manifest dict: provenance header + rows."""
    import torch

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    code_commit = git("log", "-1", "--format=%H", "--", "inference")  # later commits: readme
    net, how = official_network(checkout)
    rows = official_rows(net)
    return {
        "format": "hmrt-official-manifest",
        "version": 1,
        "model": "hemlets",
        "source": {
            "repository": REPOSITORY,
            "commit": commit or "unknown",
            "code_commit": code_commit or "unknown",
            "files": list(MODEL_FILES),
            "config": "inference/config.py as released (num_layers 50, res_nfeat 2048, "
            "bra_nfeat 256, high_nfeat 1024, N_JOINT 18, fb_nfeat 60, DIMS 64)",
            "checkpoint": f"torch.load(f) of the released {CHECKPOINT}: a bare state dict "
            "(inference/model_opr.py loads it strictly; no 'module.' prefix)",
        },
        "generated_by": "tools/hemlets_official_manifest.py: Network(config) of the official "
        f"code on CPU (torch {torch.__version__.split('+')[0]}; {how})",
        "notes": "Names, shapes and dtypes of the official pose network's state dict; no values. "
        "volume_reg.dis_map is the soft-argmax grid i/(DIMS-1) (a buffer); the official code "
        "has no PoSh/SMPL module and no weights for it are released.",
        "num_entries": len(rows),
        "state_dict": rows,
    }


def write_manifest(data: dict, out: Path) -> None:
    """One row per line (diffable), the header indented like the other committed manifests."""
    rows = data.pop("state_dict")
    head = json.dumps(data, indent=2)[:-2]
    body = ",\n".join(f"    {json.dumps(row)}" for row in rows)
    out.write_text(f'{head},\n  "state_dict": [\n{body}\n  ]\n}}\n', encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the manifest, write it (or print the entry count)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a clone of " + REPOSITORY)
    parser.add_argument("--out", type=Path, default=None, help="manifest JSON to write")
    args = parser.parse_args(argv)
    data = manifest(args.checkout.resolve())
    print(f"{data['num_entries']} entries from {args.checkout} @ {data['source']['commit'][:7]}")
    if args.out is not None:
        write_manifest(data, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
