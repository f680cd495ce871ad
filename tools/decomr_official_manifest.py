"""Write ``train/models/decomr/official_manifest.json``: key names and shapes of official DecoMR.

The released DecoMR checkpoint (``h36m_up3d.pt``) is ``{"CNet": DPNet.state_dict(), "LNet":
UVNet.state_dict(), "optimizer": ..., counters}`` (official ``utils/saver.py``), built with the
released config (``warp_level 2, uv_res 128, uv_channels 64, uv_type BF, norm_type GN``, the
defaults of the official ``utils/train_options.py``). hmrt never ships those weights, so its
import test needs the *layout*: this script instantiates ``DPNet`` and ``UVNet`` from a user's
checkout of the official repository on CPU and records ``(key, shape, dtype)`` of every
state-dict entry, flattened as ``CNet.<key>`` / ``LNet.<key>`` (what ``hmrt import-checkpoint``
makes of the file). Nothing of the official code is copied; only names and shapes are written.

What the constructors need besides the code is replaced, in a temporary working folder:

* ``data/BF_ref_map_64.npy``: zeros of the official shape ``(1, 64, 64, 3)`` (``UVNet`` reads
  it relative to the working folder; it is a plain attribute, not state);
* the ImageNet download of ``resnet50backbone(pretrained=True)``: the official module's
  ``model_zoo`` is replaced by one that returns a fresh backbone's own state dict (values are
  never recorded, so the download is pointless).

The packages ``models`` and ``utils`` are imported without their ``__init__`` (which pulls in
SMPL, chumpy and the data loaders the two networks do not need).

Usage (the official code needs only torch, numpy and tqdm, all in the project venv)::

    git clone https://github.com/zengwang430521/DecoMR /tmp/decomr_official
    python tools/decomr_official_manifest.py /tmp/decomr_official \\
        --out train/models/decomr/official_manifest.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

REPOSITORY = "https://github.com/zengwang430521/DecoMR"
MODEL_FILES = ("models/dense_cnn.py", "models/layers.py", "models/resnet.py", "models/dmr.py")
CONFIG = dict(warp_level=2, uv_res=128, uv_channels=64, uv_type="BF", norm_type="GN")
REF_MAP = "data/BF_ref_map_64.npy"  # warp_res = 256 // 2**warp_level = 64


def import_official(checkout: Path) -> types.ModuleType:
    """``models.dense_cnn`` of the checkout, its packages loaded without ``__init__``."""
    for name in ("models", "utils"):
        package = types.ModuleType(name)
        package.__path__ = [str(checkout / name)]
        sys.modules[name] = package
    import importlib

    resnet = importlib.import_module("models.resnet")

    class NoDownload:
        """Stands in for ``torch.utils.model_zoo``: a fresh backbone instead of ImageNet."""

        @staticmethod
        def load_url(_url: str, *_args, **_kwargs) -> dict:
            return resnet.resnet50backbone(pretrained=False).state_dict()

    resnet.model_zoo = NoDownload
    return importlib.import_module("models.dense_cnn")


def official_rows(checkout: Path) -> list[list]:
    """``[key, shape, dtype]`` of the flattened official ``CNet`` + ``LNet`` state dicts."""
    dense_cnn = import_official(checkout)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / REF_MAP).parent.mkdir(parents=True)
        np.save(Path(tmp) / REF_MAP, np.zeros((1, 64, 64, 3), np.float32))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            nets = {
                "CNet": dense_cnn.DPNet(warp_lv=CONFIG["warp_level"], norm_type="GN"),
                "LNet": dense_cnn.UVNet(
                    uv_channels=CONFIG["uv_channels"],
                    uv_res=CONFIG["uv_res"],
                    warp_lv=CONFIG["warp_level"],
                    uv_type=CONFIG["uv_type"],
                    norm_type=CONFIG["norm_type"],
                ),
            }
        finally:
            os.chdir(cwd)
    return [
        [f"{part}.{key}", list(value.shape), str(value.dtype).removeprefix("torch.")]
        for part, net in nets.items()
        for key, value in net.state_dict().items()
    ]


def manifest(checkout: Path) -> dict:
    """The manifest dict: provenance header + rows."""
    import torch

    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = official_rows(checkout)
    config = ", ".join(f"{k} {v}" for k, v in CONFIG.items())
    return {
        "format": "hmrt-official-manifest",
        "version": 1,
        "model": "decomr",
        "source": {
            "repository": REPOSITORY,
            "commit": commit or "unknown",
            "files": list(MODEL_FILES),
            "config": f"data/model/h36m_up3d/config.json ({config})",
            "checkpoint": "torch.load(f) of the released h36m_up3d.pt: dict with state_dicts "
            "under 'CNet' and 'LNet' (no 'module.' prefix); flattened here as 'CNet.<key>' / "
            "'LNet.<key>'",
        },
        "generated_by": "tools/decomr_official_manifest.py: DPNet(warp_lv=2, norm_type='GN') "
        f"and UVNet(64, 128, 2, 'BF', 'GN') of the official code on CPU (torch "
        f"{torch.__version__.split('+')[0]}, ResNet not pretrained, placeholder {REF_MAP})",
        "notes": "Names, shapes and dtypes of the official CNet and LNet state dicts of the "
        "released config; no values. UVNet.ref_map is a plain attribute, not in the state dict.",
        "num_entries": len(rows),
        "state_dict": rows,
    }


def write_manifest(data: dict, out: Path) -> None:
    """One row per line (diffable), the header indented like the committed file."""
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
