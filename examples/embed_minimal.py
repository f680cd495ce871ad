"""Minimal embedding of hmrt in your own frame loop: a model file in, a 3D person per frame out.

    python examples/embed_minimal.py danet_edge.onnx video.mp4      # or a camera index: 0

Needs only the lean runtime (``pip install "hmrt[ort]"``): numpy, OpenCV, ONNX Runtime; no torch.
"""

from __future__ import annotations

import argparse

import cv2

from hmrt.runtime import Reconstructor


def main(argv: list[str] | None = None) -> int:
    """Print the camera-space root position and the per-frame latency of each frame."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="hmrt .onnx or .engine file")
    parser.add_argument("source", nargs="?", default="0", help="video file or camera index")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument(
        "--detector", default="default", help="default (embedded), none, or a detector .onnx"
    )
    args = parser.parse_args(argv)

    # One Reconstructor per video stream (it tracks the person and smooths over time).
    rec = Reconstructor(args.model, smoothing="default", detector=args.detector)
    print(f"running on {rec.backend}")
    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    count = 0
    while args.max_frames is None or count < args.max_frames:
        ok, frame = cap.read()  # BGR uint8 (H, W, 3), as the Reconstructor expects
        if not ok:
            break
        result = rec(frame)
        if not result.person_found:  # nobody detected, or the track was lost: re-acquiring
            print(f"frame {count}: no person (score {result.person_score:.2f})")
            count += 1
            continue
        x, y, z = result.translation
        print(
            f"frame {count}: root at ({x:+.2f}, {y:+.2f}, {z:.2f}) m, "
            f"{result.vertices.shape[0]} vertices, {result.timings['total']:.1f} ms"
        )
        count += 1
    cap.release()
    return 0 if count else 1


if __name__ == "__main__":
    raise SystemExit(main())
