"""Benchmark of the embedded BlazePose person detector: latency, and behaviour on real photos.

Run from the repository root::

    python bench/bench_detector.py                       # ONNX Runtime CPU, 1 and 2 threads
    python bench/bench_detector.py --backend onnxruntime-cuda --threads 0   # on a GPU

Prints markdown tables with the machine line:

1. latency per frame, split into preprocess (letterbox warp + RGB + [-1, 1] into the NCHW
   blob), inference (ONNX Runtime), decode (anchors, sigmoid, weighted NMS, ROI) and total;
   median and p90 over ``--runs`` calls after ``--warmup`` calls, on a 640x480 (and 1280x720)
   frame holding one person (scikit-image's astronaut pasted into a black frame, the same
   frame as the tests), else noise when scikit-image is missing;
2. every photo bundled with scikit-image (its ``data`` folder, nothing downloaded): size,
   people found at the default threshold, and the best anchor score (found or not).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.detection.blazepose import BlazePoseDetector
from hmrt.runtime.stats import machine_description, machine_line

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
# What each bundled photo shows (checked by eye), to read the table without opening them.
CONTENT = {
    "astronaut": "person (portrait)",
    "camera": "person (cameraman)",
    "chelsea": "cat",
    "coffee": "coffee cup",
    "rocket": "rocket on launch pad",
    "text": "handwritten text",
    "page": "printed text",
    "horse": "horse silhouette",
    "ihc": "microscopy",
    "hubble_deep_field": "galaxies",
    "retina": "retina (fundus)",
    "motorcycle_left": "motorcycle",
    "motorcycle_right": "motorcycle",
    "brick": "brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "coins": "coins",
    "moon": "moon surface",
    "cell": "cell",
    "color": "colour wheel",
    "logo": "scikit-image logo",
    "microaneurysms": "retina detail",
    "clock_motion": "blurred clock",
    "phantom": "CT phantom",
    "chessboard_RGB": "chessboard",
    "chessboard_GRAY": "chessboard",
}


def person_frame(width: int, height: int) -> np.ndarray:
    """A frame with one person: the astronaut pasted into black, else uniform noise."""
    try:
        from skimage import data as skd
    except ImportError:
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    side = int(min(width, height) * 0.83)
    frame = np.zeros((height, width, 3), np.uint8)
    person = cv2.resize(cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2BGR), (side, side))
    y0, x0 = (height - side) // 2, (width - side) // 3
    frame[y0 : y0 + side, x0 : x0 + side] = person
    return frame


def latency(det: BlazePoseDetector, frame: np.ndarray, runs: int, warmup: int) -> dict:
    """Per-stage ms (median, p90) of ``runs`` calls, after ``warmup`` untimed ones."""
    h, w = frame.shape[:2]
    times = {k: [] for k in ("preprocess", "inference", "decode", "total")}
    found = 0
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        blob, side = det.preprocess(frame)
        t1 = time.perf_counter()
        reg, logits = det.infer(blob)
        t2 = time.perf_counter()
        out = det.decode(reg, logits, w, h, side)
        t3 = time.perf_counter()
        if i >= warmup:
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[key].append(dt * 1e3)
            found = len(out)
    stats = {k: (float(np.median(v)), float(np.percentile(v, 90))) for k, v in times.items()}
    stats["found"] = found
    return stats


def photos() -> list[Path]:
    """The photos in scikit-image's data folder (bundled with the package)."""
    try:
        import skimage
    except ImportError:
        return []
    folder = Path(skimage.__file__).parent / "data"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", default="onnxruntime-cpu")
    p.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="intra-op threads (0: default)"
    )
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()

    machine = machine_description()
    print(f"# Person detector benchmark ({datetime.date.today().isoformat()})\n")
    print(f"machine: {machine_line(machine)}\n")
    print(f"Latency per frame, {args.backend}, {args.runs} runs after {args.warmup} warm-up:\n")
    print("| frame | threads | provider | preprocess | inference | decode | total (p50 / p90 ms) "
          "| people |")  # fmt: skip
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    sizes = [(640, 480)] * len(args.threads) + [(1280, 720)]
    threads = [*args.threads, args.threads[-1]]
    for (w, h), t in zip(sizes, threads):
        det = BlazePoseDetector(backend=args.backend, threads=t or None)
        s = latency(det, person_frame(w, h), args.runs, args.warmup)
        cell = {
            k: f"{s[k][0]:.2f} / {s[k][1]:.2f}"
            for k in ("preprocess", "inference", "decode", "total")
        }
        print(
            f"| {w}x{h} | {t or 'default'} | {det.name} | {cell['preprocess']} | "
            f"{cell['inference']} | {cell['decode']} | **{cell['total']}** | {s['found']} |"
        )
        det.close()

    files = photos()
    if not files:
        print("\nscikit-image is not installed: no photo table.")
        return
    det = BlazePoseDetector(backend=args.backend, threads=args.threads[-1] or None)
    print(f"\nPhotos bundled with scikit-image, threshold {det.score_threshold}:\n")
    print("| photo | shows | size | people found | best score |")
    print("| --- | --- | --- | ---: | ---: |")
    for path in files:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            continue
        h, w = frame.shape[:2]
        found = det(frame)
        blob, _ = det.preprocess(frame)
        _, logits = det.infer(blob)
        best = 1.0 / (1.0 + np.exp(-float(np.clip(logits.max(), -100, 100))))
        shows = CONTENT.get(path.stem, "?")
        print(f"| {path.name} | {shows} | {w}x{h} | {len(found)} | {best:.3f} |")
    det.close()


if __name__ == "__main__":
    main()
