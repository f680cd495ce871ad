"""Draw a Result onto its frame: shaded mesh (when faces are known), 2D skeleton, crop box, and
an FPS / latency line. Uses ``hmrt.runtime.render`` (numba rasterizer); drawing happens on the
pipeline's render thread, never on the inference path.
"""

from __future__ import annotations

import cv2
import numpy as np

from hmrt.runtime.result import Result


def default_faces(num_vertices: int | None) -> np.ndarray | None:
    """Triangles of the bundled body model if it has ``num_vertices`` vertices, else None.

    A model's vertices only index the body model it was trained with; other vertex counts
    (a real SMPL file, a test fixture) get joints and box only.
    """
    from hmrt.runtime.body import BodyModel, default_body_path
    from hmrt.runtime.errors import HmrtError

    if num_vertices is None or not default_body_path().is_file():
        return None
    try:
        body = BodyModel()
    except (HmrtError, OSError, KeyError, ValueError):
        return None
    if body.n_verts != num_vertices:
        return None
    return np.ascontiguousarray(body.faces, dtype=np.int32)


class Annotator:
    """Draws results; ``faces`` (F, 3) enables the mesh overlay."""

    def __init__(self, faces: np.ndarray | None = None, draw_box: bool = True):
        self.faces = faces
        self.draw_box = draw_box

    def warmup(self) -> None:
        """Compile (or load from numba's cache) the mesh renderer before timing starts.

        Without it a fresh install compiles on the first drawn frame, inside the timed loop
        (the first demo ran at a third to a fifth of its steady frame rate); see
        :func:`hmrt.runtime.render.warmup`.
        """
        if self.faces is None:
            return
        from hmrt.runtime.render import warmup

        warmup()

    def __call__(self, frame: np.ndarray, result: Result | None, text: str = "") -> np.ndarray:
        """Annotated copy of ``frame`` (BGR); ``result`` None draws only the text."""
        from hmrt.runtime.render.overlay import draw_skeleton, render_overlay

        out = frame.copy()
        if result is not None and not getattr(result, "person_found", True):
            # No evidence of a person: draw no mesh or skeleton, only where hmrt looked.
            if self.draw_box and result.roi_source != "none":
                x0, y0, x1, y1 = (round(float(v)) for v in result.bbox)
                cv2.rectangle(out, (x0, y0), (x1, y1), (0, 0, 255), 1, cv2.LINE_AA)
            text = f"{text}  no person" if text else "no person"
            result = None
        if result is not None:
            if self.faces is not None and result.vertices.shape[0] > 0:
                render_overlay(out, result.vertices, self.faces, result.intrinsics, out=out)
            draw_skeleton(out, result.joints2d)
            if self.draw_box:
                x0, y0, x1, y1 = (round(float(v)) for v in result.bbox)
                color = (0, 200, 255) if result.confidence >= 0.5 else (0, 0, 255)
                cv2.rectangle(out, (x0, y0), (x1, y1), color, 1, cv2.LINE_AA)
        if text:
            put_text(out, text)
        return out


def put_text(frame: np.ndarray, text: str, origin: tuple[int, int] = (8, 8)) -> None:
    """Readable text (white on a dark band) at the top-left corner, in place."""
    scale = max(0.4, min(frame.shape[1], 1920) / 1600)
    thickness = 1
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    cv2.rectangle(frame, (x - 4, y - 4), (x + w + 4, y + h + base + 4), (0, 0, 0), -1)
    cv2.putText(frame, text, (x, y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)  # fmt: skip
