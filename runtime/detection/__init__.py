"""Person detection: ``frame -> boxes with scores``, for acquisition, re-acquisition and checks.

Implementations (all run on ONNX Runtime here; its CUDA / TensorRT providers on a GPU):

* :class:`~hmrt.runtime.detection.blazepose.BlazePoseDetector`: the embedded default, MediaPipe's
  BlazePose person detector converted to ONNX (``assets/detector/``), used when no detector is
  given. Nothing is downloaded.
* :class:`~hmrt.runtime.detection.onnx_detector.OnnxDetector`: standard person-detector exports
  (YOLOv8/YOLO11 ``[1, 4+C, A]``, end-to-end ``dets``/``labels`` graphs of mmdeploy/rtmlib),
  recognised from their output layout.

:func:`open_detector` turns what a user passes (None/"default", "none", a path, a callable) into
a :class:`PersonDetector`.
"""

from hmrt.runtime.detection.base import Detections, PersonDetector, open_detector

__all__ = ["Detections", "PersonDetector", "open_detector"]
