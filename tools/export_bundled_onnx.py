"""Export the bundled DaNet-edge weights to the ONNX file the package ships.

``assets/weights/danet_edge.pt`` -> ``assets/weights/danet_edge.onnx``, through the demo's own
export (``hmrt.commands.demo.export_demo_model``: fp32, dynamic batch, RoI pooling as MatMuls,
opset 17, TorchScript exporter), with ``hmrt.weights_sha256`` = the sha256 of the ``.pt`` in the
metadata. The lean install (``pip install "hmrt[ort]"``, no torch) runs ``hmrt demo`` on this
file; ``tests/test_bundled_onnx.py`` fails when it no longer matches the ``.pt`` (hash, outputs,
or the contract's output list), and the fix is to re-run this command.

Run from the repository root in the full install (torch, the ``export`` extra); about a minute
on 2 CPU cores::

    python tools/export_bundled_onnx.py                 # DaNet-edge
    python tools/export_bundled_onnx.py --model decomr  # DecoMR-edge
    python tools/export_bundled_onnx.py --model bobw    # BoBW-edge
    python tools/export_bundled_onnx.py --model hkmr    # HKMR-edge

Two runs with the same torch/onnx versions write byte-identical files (the metadata also
records the exporter's torch version and hmrt's version).
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Export, then print the file's size, sha256 and the weights hash it records."""
    from hmrt.commands.demo import WEIGHTS_SHA_KEY, export_demo_model
    from hmrt.runtime.cache import file_sha256

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="danet",
        help="bundled model whose edge weights to export (danet, decomr, bobw, hkmr, hemlets)",
    )
    parser.add_argument("--weights", type=Path, default=None, help="default: the bundled .pt")
    parser.add_argument("--out", type=Path, default=None, help="default: next to the .pt")
    args = parser.parse_args(argv)
    stem = REPO / "assets" / "weights" / f"{args.model}_edge"
    args.weights = args.weights or stem.with_suffix(".pt")
    args.out = args.out or stem.with_suffix(".onnx")
    meta = export_demo_model(args.weights, args.out)
    size = args.out.stat().st_size / 2**20
    print(
        f"wrote {args.out} ({size:.1f} MiB, sha256 {file_sha256(args.out)[:16]}); "
        f"{WEIGHTS_SHA_KEY} {meta[WEIGHTS_SHA_KEY][:16]} ({args.weights.name}), opset "
        f"{meta['hmrt.opset']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
