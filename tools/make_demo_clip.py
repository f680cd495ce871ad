"""Make the demo clip the package ships: ``assets/demo/demo_clip.mp4`` and its ground truth.

The clip is ``hmrt synth --video`` with the demo's defaults (120 frames, 640x480, 30 FPS,
seed 0): one synthetic person from the bundled body model, moving smoothly in front of a CC0
scikit-image background (assets/demo/README.md). ``hmrt demo`` reads it on the lean install,
where the data engine (torch) that renders it is absent.

The ground truth ``demo_clip.gt.npz`` keeps what ``hmrt demo`` scores against, compactly:
``joints3d`` (T, 24, 3), ``K``, ``bbox``, and the SMPL parameters ``rotmats`` (T, 24, 3, 3),
``betas`` (T, 10), ``transl`` (T, 3) instead of the (T, 13348, 3) vertices (7 MB): the demo
rebuilds the vertices with the runtime's body model (numpy), exactly as the data engine posed
them, when ``body_hash`` matches the installed body model.

Run from the repository root in the full install, which has scikit-image (the background is
its CC0 sample ``brick.png``; without scikit-image the engine would paint a procedural one and
the clip would differ, so the tool refuses); about 30 s on 2 CPU cores::

    python tools/make_demo_clip.py

Deterministic for a given seed and OpenCV build (mp4v encoder).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEEP = ("joints3d", "joints2d", "joints_visible", "rotmats", "betas", "transl", "K", "bbox",
        "key", "fps", "size", "seed")  # fmt: skip
"""Ground-truth arrays the packaged clip keeps (``vertices`` and ``pose`` are derived)."""


def main(argv: list[str] | None = None) -> int:
    """Render the clip into a temporary folder, then copy it and the compact ground truth."""
    from hmrt.runtime.atomic import atomic_path
    from hmrt.runtime.body import BodyModel
    from hmrt.train.data.backgrounds import skimage_data_dir
    from hmrt.train.data.video import gt_path, write_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets/demo/demo_clip.mp4")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if skimage_data_dir() is None:
        raise SystemExit("scikit-image is not installed: pip install -e '.[train]' first")
    body = BodyModel()
    with tempfile.TemporaryDirectory() as tmp:
        video, gt_file = write_clip(Path(tmp) / args.out.name, args.frames, args.seed)
        with np.load(gt_file) as data:
            gt = {k: data[k] for k in KEEP}
            stored = data["vertices"].astype(np.float32)
        verts, _ = body.forward(gt["rotmats"], gt["betas"])
        err = np.abs(verts + gt["transl"][:, None] - stored).max()
        # float16 storage rounds metres to ~1e-3 at 2-4 m depth; anything larger is a bug.
        if err > 5e-3:
            raise SystemExit(f"rebuilt vertices differ from the data engine's by {err:.4f} m")
        with atomic_path(args.out) as tmp_video:
            shutil.copyfile(video, tmp_video)
        out_gt = gt_path(args.out)
        with atomic_path(out_gt) as tmp_gt:
            np.savez_compressed(tmp_gt, **gt, body_hash=np.array(body.hash))
    sizes = [p.stat().st_size / 2**20 for p in (args.out, out_gt)]
    print(
        f"wrote {args.out} ({sizes[0]:.2f} MiB) and {out_gt} ({sizes[1]:.2f} MiB); rebuilt "
        f"vertices within {err * 1000:.2f} mm of the data engine's float16 ones"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
