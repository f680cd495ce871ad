"""Write ``train/models/danet/official_manifest.json``: key names and shapes of official DaNet.

The released DaNet checkpoints (``torch.load(f)["model"]``) are ``model.state_dict()`` of the
official network built from ``configs/danet_default.yaml``, as the official ``demo.py`` and
``eval.py`` build it. hmrt never ships those weights, so its import test needs the *layout*:
this script instantiates the official network on CPU from a user's checkout of the official
repository and records ``(key, shape, dtype)`` of every state-dict entry. Nothing of the official
code is copied; only names and shapes are written (data, not code).

What the official constructor needs besides the code is replaced by zero-filled placeholders of
the right shapes in a temporary folder (no SMPL or SPIN data is used or written):

* ``data/smpl/SMPL_NEUTRAL.pkl``: SMPL-shaped zeros (6890 vertices, 13776 faces, 10 betas,
  207 pose correctives), read by the installed ``smplx``;
* ``data/J_regressor_extra.npy`` (9, 6890) and ``data/smpl_mean_params.npz`` (pose 144,
  shape 10, cam 3): float32 zeros (the dtype of ``mean_pose``/``mean_cam_shape`` follows the
  user's npz; import converts every floating tensor to the model's float32 anyway);
* ``data/pretrained_model/learned_ratio.pkl``: the official file from the checkout.

Rendering (``utils.renderer``: neural_renderer, torchvision) is replaced by an inert stand-in:
the official ``IUV_Renderer`` is a plain object, not a module, so it holds no state. The
packages ``models`` and ``utils`` are imported without their ``__init__`` (which pulls in
torchvision and data loaders the network does not need).

The official ``CheckpointSaver`` (``utils/saver.py``) deletes the SMPL buffers
(``iuv2smpl.smpl.*``, whose set depends on the smplx version) before saving, so they are left out
here too; hmrt drops them on import should a file carry them.

The released checkpoints date from the evaluation code of 2020 (commit ``429a37d``, config
``configs/danet_h36m_itw.yaml``); ``--config configs/danet_h36m_itw.yaml`` on that commit gives
the same entries, in the same order, as the latest commit with ``configs/danet_default.yaml``
(checked when the committed manifest was written).

Usage (the official code needs ``six``, ``easydict`` and an smplx old enough to have
``smplx.body_models.ModelOutput``; kept out of the project venv; checked with torch 2.13)::

    git clone https://github.com/HongwenZhang/DaNet-DensePose2SMPL /tmp/danet_official
    pip install --target /tmp/pydeps six easydict
    pip install --target /tmp/pydeps --no-deps smplx==0.1.13
    PYTHONPATH=/tmp/pydeps python tools/danet_official_manifest.py /tmp/danet_official \
        --out train/models/danet/official_manifest.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

REPOSITORY = "https://github.com/HongwenZhang/DaNet-DensePose2SMPL"
CONFIG = "configs/danet_default.yaml"
MODEL_FILES = (
    "models/danet/danet.py",
    "models/danet/iuv_estimator.py",
    "models/danet/smpl_regressor.py",
    "models/module/hr_module.py",
    "models/module/res_module.py",
    "models/module/GCN.py",
    "models/smpl.py",
    "utils/saver.py",
)
MEAN_PARAMS = "data/smpl_mean_params.npz"
SAVER_DROPS = "iuv2smpl.smpl."  # prefix the official CheckpointSaver deletes before saving
# SMPL's public dimensions (the placeholder's shapes; values are zeros).
SMPL_VERTS, SMPL_FACES, SMPL_JOINTS, SMPL_BETAS, SMPL_POSEDIRS = 6890, 13776, 24, 10, 207


def write_placeholders(data: Path, official: Path) -> None:
    """Zero-filled stand-ins, with the official shapes, for the files the constructor reads."""
    (data / "smpl").mkdir(parents=True)
    (data / "pretrained_model").mkdir()
    smpl = {
        "v_template": np.zeros((SMPL_VERTS, 3)),
        "shapedirs": np.zeros((SMPL_VERTS, 3, SMPL_BETAS)),
        "posedirs": np.zeros((SMPL_VERTS, 3, SMPL_POSEDIRS)),
        "J_regressor": np.zeros((SMPL_JOINTS, SMPL_VERTS)),
        "weights": np.zeros((SMPL_VERTS, SMPL_JOINTS)),
        "kintree_table": np.zeros((2, SMPL_JOINTS), dtype=np.int64),
        "f": np.zeros((SMPL_FACES, 3), dtype=np.int64),
    }
    with open(data / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as f:
        pickle.dump(smpl, f)
    np.save(data / "J_regressor_extra.npy", np.zeros((9, SMPL_VERTS), dtype=np.float32))
    np.savez(
        data / "smpl_mean_params.npz",
        pose=np.zeros(SMPL_JOINTS * 6, dtype=np.float32),
        shape=np.zeros(SMPL_BETAS, dtype=np.float32),
        cam=np.zeros(3, dtype=np.float32),
    )
    ratio = official / "data" / "pretrained_model" / "learned_ratio.pkl"
    shutil.copy(ratio, data / "pretrained_model" / "learned_ratio.pkl")


class InertObject:
    """Stands in for a stateless helper object: accepts any arguments, holds nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass


def install_import_stand_ins(official: Path) -> None:
    """Make the official packages importable without their heavy, stateless extras.

    * ``utils.renderer.IUV_Renderer`` (HEAD): a plain object in the official code.
    * ``neural_renderer.Renderer`` (2020 release): an ``nn.Module`` that registers no
      parameters or buffers (its camera and lights are plain attributes), so a stateless module
      stands in; ``neural_renderer.projection.projection`` is only called in ``forward``.
    * ``utils.densepose_methods.DensePoseMethods`` (2020 release): reads DensePose's UV data to
      build rendering textures kept as plain attributes; a one-triangle-per-part mesh stands in.
    """
    sys.path.insert(0, str(official))
    for package in ("models", "utils"):
        module = types.ModuleType(package)
        module.__path__ = [str(official / package)]  # a package, minus its __init__
        sys.modules[package] = module
    renderer = types.ModuleType("utils.renderer")
    renderer.IUV_Renderer = InertObject
    sys.modules["utils.renderer"] = renderer

    import torch

    class StatelessRenderer(torch.nn.Module):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__()

    nr = types.ModuleType("neural_renderer")
    nr.Renderer = StatelessRenderer
    nr_projection = types.ModuleType("neural_renderer.projection")
    nr_projection.projection = None
    nr.projection = nr_projection
    sys.modules["neural_renderer"] = nr
    sys.modules["neural_renderer.projection"] = nr_projection

    class TinyDensePose:
        """24 parts, one triangle each: the attributes the 2020 constructor reads."""

        def __init__(self) -> None:
            n = SMPL_JOINTS * 3
            self.All_vertices = np.arange(1, n + 1)
            self.FacesDensePose = np.arange(n).reshape(-1, 3)
            self.FaceIndices = np.arange(1, SMPL_JOINTS + 1)
            self.U_norm = np.zeros(n)
            self.V_norm = np.zeros(n)

    densepose = types.ModuleType("utils.densepose_methods")
    densepose.DensePoseMethods = TinyDensePose
    sys.modules["utils.densepose_methods"] = densepose


def official_state_dict(official: Path, work: Path, config: str) -> dict:
    """Build the official DaNet (``config``, as demo.py does) and return its state dict."""
    install_import_stand_ins(official)
    write_placeholders(work / "data", official)
    os.chdir(work)  # the official code reads ./data/... relative to the working directory
    import yaml
    from easydict import EasyDict
    from models.core.config import cfg, merge_cfg_from_cfg
    from models.danet import DaNet
    from utils.collections import AttrDict

    # The official cfg_from_file uses the removed yaml.load(f) API: load safely, merge the same.
    with open(official / config, encoding="utf-8") as f:
        merge_cfg_from_cfg(AttrDict(yaml.safe_load(f)))
    cfg.DANET.REFINEMENT = EasyDict(cfg.DANET.REFINEMENT)
    cfg.MSRES_MODEL.EXTRA = EasyDict(cfg.MSRES_MODEL.EXTRA)
    if "pretrained" in inspect.signature(DaNet.__init__).parameters:  # since "support training"
        model = DaNet(types.SimpleNamespace(batch_size=1), MEAN_PARAMS, pretrained=False)
    else:  # the 2020 evaluation release: the config is the options, as in its demo.py
        cfg.batch_size = 1
        model = DaNet(cfg, MEAN_PARAMS)
    return model.state_dict()


def git_commit(repo: Path) -> str:
    """HEAD commit of the official checkout ("unknown" if it is not a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def manifest(official: Path, config: str = CONFIG) -> dict:
    """The manifest dict: provenance header + ``[key, shape, dtype]`` entries in state order."""
    commit = git_commit(official)
    with tempfile.TemporaryDirectory(prefix="danet_manifest_") as tmp:
        cwd = Path.cwd()
        try:
            state = official_state_dict(official, Path(tmp), config)
        finally:
            os.chdir(cwd)
    entries = [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
        for key, value in state.items()
        if not key.startswith(SAVER_DROPS)
    ]
    return {
        "format": "hmrt-official-manifest",
        "version": 1,
        "model": "danet",
        "source": {
            "repository": REPOSITORY,
            "commit": commit,
            "files": list(MODEL_FILES),
            "config": config,
            "checkpoint": "torch.load(f)['model'] of the released danet_model_*.pt "
            "(e.g. danet_model_h36m_itw.pt), loaded by the official demo.py/eval.py",
        },
        "generated_by": "tools/danet_official_manifest.py",
        "notes": "Names, shapes and dtypes of DaNet(options, mean_params).state_dict() for the "
        "default config, as the official CheckpointSaver writes it (without the SMPL buffers "
        "iuv2smpl.smpl.*); no values.",
        "num_entries": len(entries),
        "state_dict": entries,
    }


def write_json(data: dict, path: Path) -> None:
    """One state-dict entry per line: small diffs, easy to read."""
    head = {k: v for k, v in data.items() if k != "state_dict"}
    lines = json.dumps(head, indent=2)[:-2]  # drop the closing "\n}"
    rows = ",\n".join("    " + json.dumps(e) for e in data["state_dict"])
    path.write_text(f'{lines},\n  "state_dict": [\n{rows}\n  ]\n}}\n', encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the official network, write the manifest."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("official", type=Path, help="checkout of the official DaNet repository")
    ap.add_argument("--out", type=Path, default=Path("train/models/danet/official_manifest.json"))
    ap.add_argument("--config", default=CONFIG, help=f"official config (default: {CONFIG})")
    args = ap.parse_args(argv)
    official = args.official.resolve()
    out = args.out.resolve()
    data = manifest(official, args.config)
    write_json(data, out)
    print(f"wrote {out} ({data['num_entries']} entries, commit {data['source']['commit'][:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
