"""``hmrt body``: inspect a body model file, or import an official SMPL file.

``hmrt body info [PATH]`` prints counts, licence, hash and UV chart of PATH (default: the bundled
open model); ``hmrt body import-smpl FILE [--out OUT.npz] [--uv-chart CHART]`` converts a user's
SMPL .pkl/.npz into hmrt's layout without chumpy, optionally with DecoMR's continuous UV chart
(``uv_chart.py``), and prints the same summary of the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``info`` and ``import-smpl`` actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info", help="counts, licence and hash of a body model (default: the bundled model)"
    )
    info.add_argument("path", nargs="?", help="body model .npz (default: the bundled model)")
    imp = actions.add_parser(
        "import-smpl",
        help="convert an official SMPL .pkl/.npz (1.0 or 1.1) to hmrt's body npz",
        description="Convert an official SMPL .pkl/.npz (1.0 or 1.1) to hmrt's body npz. "
        "chumpy is not needed; the pickle is read with an allow-list of array types only. "
        "SMPL files carry no UV chart: for DecoMR (official weights) add DecoMR's "
        "boundary-free chart with --uv-chart (docs/DEPLOY.md, 'Official DecoMR weights').",
    )
    imp.add_argument("file", help="SMPL model file, e.g. SMPL_NEUTRAL.pkl")
    imp.add_argument("--out", help="output .npz (default: FILE's name with .hmrt.npz)")
    imp.add_argument("--betas", type=int, default=10, help="shape components to keep (default: 10)")
    imp.add_argument(
        "--uv-chart",
        metavar="CHART",
        help="continuous UV chart of SMPL's mesh to store for DecoMR: the official "
        "data/uv_sampler/smpl_boundry_free_template.obj (OBJ vt/f lines; an npz with vt/ft or "
        "an hmrt body npz with cont_vt/cont_ft also work); its v (downward) is stored as 1 - v",
    )


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.1f} kB"


def describe(body) -> str:
    """A human-readable multi-line summary of a :class:`BodyModel`."""
    correctives = "yes" if body.posedirs is not None else "no (absent or all zero)"
    surface = ", ".join(body.surface_keys) if body.surface_keys else "none"
    if body.cont_vt is None or body.cont_ft is None:
        chart = "none (DecoMR needs one: hmrt body import-smpl FILE --uv-chart CHART.obj)"
    else:
        chart = body.cont_provenance or (
            f"{len(body.cont_vt)} texture coordinates, built with the body model (see provenance)"
        )
    lines = [
        f"file:             {body.path} ({_size(body.file_size)})",
        f"vertices:         {body.n_verts}",
        f"faces:            {body.n_faces}",
        f"joints:           {body.n_joints}",
        f"betas:            {body.n_betas}",
        f"pose correctives: {correctives}",
        f"surface data:     {surface}",
        f"UV chart:         {chart}",
        f"licence:          {body.licence}",
    ]
    if body.provenance:
        lines.append(f"provenance:       {body.provenance}")
    lines.append(f"hash:             {body.hash}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``hmrt body ACTION``; errors surface as HmrtError (exit code 2)."""
    from hmrt.runtime.body.model import BodyModel

    if args.action == "info":
        print(describe(BodyModel(args.path)))
        return 0
    from hmrt.runtime.atomic import check_writable
    from hmrt.runtime.body.smpl_import import default_output, import_smpl
    from hmrt.runtime.errors import InputError

    check_writable(args.out or default_output(Path(args.file)), "file", "--out")
    if args.betas < 1:
        raise InputError(f"--betas must be at least 1, got {args.betas}")
    out = import_smpl(args.file, args.out, n_betas=args.betas, uv_chart=args.uv_chart)
    print(f"wrote {out}", file=sys.stderr)
    print(describe(BodyModel(out)))
    return 0
