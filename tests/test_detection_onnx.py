"""Standard detector exports on ONNX Runtime: layouts, letterbox inverse, NMS, errors.

The graphs are tiny but have the real output layouts (Ultralytics ``output0 [1, 4+C, A]`` and
``[1, N, 6]``, mmdeploy ``dets``/``labels``); each output is a constant plus
``0 * ReduceMean(image)`` so ONNX Runtime really consumes the fed image. The constants hold
persons, other classes, overlapping duplicates, low scores and boxes in the padding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hmrt.runtime.detection import PersonDetector, open_detector  # noqa: E402
from hmrt.runtime.detection.letterbox import (  # noqa: E402
    boxes_to_image,
    boxes_to_input,
    letterbox,
)
from hmrt.runtime.detection.nms import nms, weighted_nms  # noqa: E402
from hmrt.runtime.detection.onnx_detector import PREPROCESS, OnnxDetector  # noqa: E402
from hmrt.runtime.errors import BackendUnavailableError, InputError, ModelLoadError  # noqa: E402

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}


def save_graph(path, outputs, input_name="images", input_shape=(1, 3, 640, 640), shapes=None,
               metadata=None, input_type=TensorProto.FLOAT):  # fmt: skip
    """An ONNX file whose outputs are the given constants (+ 0 * mean of the image)."""
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0)]
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["mean"], ["mean_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Mul", [nodes[-1].output[0], "zero"], ["nothing"]))
    nodes.append(helper.make_node("Cast", ["nothing"], ["nothing_i"], to=TensorProto.INT64))
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value, f"{name}_const"))
        zero = "nothing" if value.dtype == np.float32 else "nothing_i"
        nodes.append(helper.make_node("Add", [f"{name}_const", zero], [name]))
        shape = (shapes or {}).get(name, value.shape)
        outs.append(helper.make_tensor_value_info(name, _TYPES[value.dtype], shape))
    graph = helper.make_graph(
        nodes, "detector", [helper.make_tensor_value_info(input_name, input_type, input_shape)],
        outs, initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def xyxy_to_cxcywh(b):
    b = np.asarray(b, np.float32)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                     b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)  # fmt: skip


# --- YOLOv8 / YOLO11: output0 [1, 4 + C, A], classes person, bicycle, car ------------------
# box (input pixels, x0 y0 x1 y1), class scores (person, bicycle, car)
YOLO_ANCHORS = [
    ((100, 200, 200, 400), (0.90, 0.0, 0.0)),  # A0 person, kept
    ((110, 210, 205, 405), (0.80, 0.0, 0.0)),  # A1 duplicate of A0 (IoU 0.80): suppressed
    ((400, 150, 500, 450), (0.70, 0.0, 0.1)),  # A2 person, kept
    ((300, 300, 350, 350), (0.10, 0.0, 0.95)),  # A3 a car
    ((420, 160, 510, 440), (0.60, 0.85, 0.0)),  # A4 best class bicycle: not a person
    ((50, 250, 90, 380), (0.20, 0.0, 0.0)),  # A5 below the 0.25 threshold
    ((10, 20, 60, 100), (0.50, 0.0, 0.0)),  # A6 in the top padding of a wide frame
    ((600, 300, 700, 420), (0.40, 0.0, 0.0)),  # A7 crosses the right edge
]


def yolov8_output(anchors=8400):
    """``(1, 7, anchors)``: the anchors above, then empty ones (a 640 input has 8400)."""
    boxes = xyxy_to_cxcywh([a[0] for a in YOLO_ANCHORS])
    scores = np.asarray([a[1] for a in YOLO_ANCHORS], np.float32)
    out = np.zeros((1, 7, anchors), np.float32)
    out[0, :, : len(YOLO_ANCHORS)] = np.concatenate([boxes, scores], axis=1).T
    return out


@pytest.fixture(scope="module")
def yolov8_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("yolo") / "yolov8n.onnx"
    return save_graph(path, {"output0": yolov8_output()})


@pytest.mark.parametrize(
    ("shape", "expected", "scores"),
    [
        # 720x1280 -> scale 0.5, 140 px of padding above and below: x = 2 x', y = 2 (y' - 140)
        ((720, 1280), [(200, 120, 400, 520), (800, 20, 1000, 620), (1200, 320, 1280, 560)],
         [0.9, 0.7, 0.4]),
        # 480x640 -> scale 1, 80 px above: y = y' - 80; A6 is now inside, clipped at the top
        ((480, 640), [(100, 120, 200, 320), (400, 70, 500, 370), (10, 0, 60, 20),
                      (600, 220, 640, 340)], [0.9, 0.7, 0.5, 0.4]),
    ],
)  # fmt: skip
def test_yolov8_boxes_in_image_pixels(yolov8_onnx, shape, expected, scores):
    det = OnnxDetector(yolov8_onnx, backend="onnxruntime-cpu", threads=1)
    assert det.name == "yolov8[onnxruntime[CPUExecutionProvider]]"
    assert (det.layout, det.preprocess.name, det.input_size) == ("yolov8", "yolov8", (640, 640))
    out = det(frame(*shape))
    assert isinstance(det, PersonDetector)
    assert out.boxes.dtype == np.float32 and out.scores.dtype == np.float32
    np.testing.assert_allclose(out.boxes, np.asarray(expected, np.float32), atol=1e-3)
    np.testing.assert_allclose(out.scores, scores, atol=1e-6)
    det.close()


def test_yolov8_threshold_person_class_and_limit(yolov8_onnx):
    det = OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, score_threshold=0.65)
    np.testing.assert_allclose(det(frame(720, 1280)).scores, [0.9, 0.7], atol=1e-6)
    nobody = OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, score_threshold=0.95)(frame(480, 640))
    assert len(nobody) == 0 and nobody.boxes.shape == (0, 4) and nobody.scores.shape == (0,)
    assert (
        len(OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, max_detections=1)(frame(480, 640))) == 1
    )
    # Class 2 ("car"): only A3 scores above the threshold.
    cars = OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, person_class=2)(frame(480, 640))
    np.testing.assert_allclose(cars.boxes, [(300, 220, 350, 270)], atol=1e-3)
    with pytest.raises(ModelLoadError, match="only 3 classes"):
        OnnxDetector(yolov8_onnx, "onnxruntime-cpu", person_class=3)
    # IoU threshold above A0/A1's overlap (0.80): the duplicate survives.
    loose = OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, iou_threshold=0.85)
    np.testing.assert_allclose(loose(frame(480, 640)).scores, [0.9, 0.8, 0.7, 0.5, 0.4], atol=1e-6)


def test_yolov8_dynamic_input_uses_imgsz_or_640(tmp_path):
    dyn = {"input_shape": ("batch", 3, "height", "width"),
           "shapes": {"output0": ("batch", 7, "anchors")}}  # fmt: skip
    plain = save_graph(tmp_path / "dyn.onnx", {"output0": yolov8_output()}, **dyn)
    det = OnnxDetector(plain, "onnxruntime-cpu", 1)
    assert det.layout == "yolov8" and det.input_size == (640, 640)
    assert any("dynamic" in n for n in det.notes)
    np.testing.assert_allclose(det(frame(480, 640)).boxes[0], (100, 120, 200, 320), atol=1e-3)
    meta = {"author": "Ultralytics", "imgsz": "[320, 480]"}  # Ultralytics writes (h, w)
    sized = save_graph(tmp_path / "sized.onnx", {"output0": yolov8_output()}, metadata=meta, **dyn)
    assert OnnxDetector(sized, "onnxruntime-cpu", 1).input_size == (480, 320)


def test_yolov8_pose_export_counts_classes_from_names(tmp_path):
    # yolov8n-pose: output0 [1, 4 + 1 + 3K, A]; keypoint values (pixels) must not be read as
    # class scores, or every anchor's "best class" would be a keypoint.
    out = yolov8_output()[:, :5]  # boxes + the person score only
    keypoints = np.full((1, 6, out.shape[2]), 300.0, np.float32)  # K = 2 keypoints (x, y, v)
    meta = {
        "author": "Ultralytics",
        "task": "pose",
        "names": "{0: 'person'}",
        "kpt_shape": "[2, 3]",
    }
    path = save_graph(tmp_path / "pose.onnx", {"output0": np.concatenate([out, keypoints], 1)},
                      metadata=meta)  # fmt: skip
    got = OnnxDetector(path, "onnxruntime-cpu", 1)(frame(480, 640))
    # A3 (person 0.1) stays out; A4 is a person here, but overlaps A2 (IoU 0.68): suppressed.
    np.testing.assert_allclose(got.scores, [0.9, 0.7, 0.5, 0.4], atol=1e-6)


def test_float16_input(tmp_path):
    path = save_graph(tmp_path / "half.onnx", {"output0": yolov8_output()},
                      input_type=TensorProto.FLOAT16)  # fmt: skip
    out = OnnxDetector(path, "onnxruntime-cpu", 1)(frame(480, 640))
    np.testing.assert_allclose(out.boxes[0], (100, 120, 200, 320), atol=1e-3)


# --- Ultralytics end-to-end: output0 [1, N, 6] x0 y0 x1 y1 score class, 416x416 input ------


def test_yolo_end2end_with_non_trivial_scale(tmp_path):
    # 480x640 into 416x416: scale 0.65, resized 416x312, 52 px above (centred).
    people = np.array([(100, 100, 300, 400), (350, 50, 600, 470)], np.float32)
    inp = people * 0.65 + np.array([0, 52, 0, 52], np.float32)
    rows = np.array([
        [*inp[0], 0.92, 0],
        [*(inp[0] + 2), 0.91, 0],  # near-duplicate: suppressed again
        [*inp[1], 0.55, 0],
        [10, 60, 80, 200, 0.99, 1],  # another class
        [100, 60, 180, 200, 0.2, 0],  # below 0.25
    ], np.float32)  # fmt: skip
    rows = np.concatenate([rows, np.zeros((300 - len(rows), 6), np.float32)])[None]  # N = 300
    path = save_graph(tmp_path / "yolo26n.onnx", {"output0": rows}, input_shape=(1, 3, 416, 416))
    det = OnnxDetector(path, "onnxruntime-cpu", 1)
    assert det.layout == "yolo-end2end" and det.name.startswith("yolo-end2end[")
    out = det(frame(480, 640))
    np.testing.assert_allclose(out.boxes, people, atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.92, 0.55], atol=1e-6)


# --- mmdeploy / rtmlib end-to-end: dets [1, N, 5] + labels [1, N], top-left letterbox ------

DETS = np.array([[
    [100, 50, 200, 300, 0.95],  # person
    [102, 52, 198, 296, 0.90],  # person, duplicate
    [300, 100, 420, 350, 0.60],  # person
    [50, 50, 150, 150, 0.99],  # label 2
    [500, 100, 600, 300, 0.25],  # person below 0.3
    [400, 400, 500, 500, 0.80],  # person in the bottom padding of a wide frame
]], np.float32)  # fmt: skip
LABELS = np.array([[0, 0, 0, 2, 0, 0]], np.int64)


def mmdet_graph(path, **kw):
    shapes = {"dets": (1, "num_dets", 5), "labels": (1, "num_dets")}
    return save_graph(path, {"dets": DETS, "labels": LABELS}, input_name="input", shapes=shapes,
                      **kw)  # fmt: skip


def test_mmdet_end2end_rtmdet_by_name(tmp_path):
    det = OnnxDetector(mmdet_graph(tmp_path / "rtmdet_m_person.onnx"), "onnxruntime-cpu", 1)
    assert (det.layout, det.name) == ("mmdet", "rtmdet[onnxruntime[CPUExecutionProvider]]")
    assert det.preprocess == PREPROCESS["rtmdet"] and det.score_threshold == 0.3
    # 720x1280 -> scale 0.5 from the top-left, no offset; y' >= 360 is padding.
    out = det(frame(720, 1280))
    np.testing.assert_allclose(out.boxes, [(200, 100, 400, 600), (600, 200, 840, 700)], atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.95, 0.60], atol=1e-6)
    # 480x640 -> scale 1, padding below y = 480 only: the fourth person now counts.
    out = det(frame(480, 640))
    np.testing.assert_allclose(
        out.boxes, [(100, 50, 200, 300), (400, 400, 500, 480), (300, 100, 420, 350)], atol=1e-3
    )


def test_mmdet_preprocess_from_sdk_pipeline_json(tmp_path):
    folder = tmp_path / "yolox_m_8xb8-300e_humanart-c2c7a14a"
    folder.mkdir()
    path = mmdet_graph(folder / "end2end.onnx")
    assert OnnxDetector(path, "onnxruntime-cpu").preprocess == PREPROCESS["yolox"]  # folder name
    norm = {"type": "Normalize", "mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0], "to_rgb": True}
    tasks = [{"type": "Task", "transforms": [{"type": "LoadImageFromFile"}, norm]}]
    (folder / "pipeline.json").write_text(json.dumps({"pipeline": {"tasks": tasks}}))
    pre = OnnxDetector(path, "onnxruntime-cpu").preprocess
    assert (pre.mean, pre.std, pre.rgb, pre.centre) == ((1, 2, 3), (4, 5, 6), True, False)


def test_mmdet_without_hint_asks_for_preprocess(tmp_path):
    path = mmdet_graph(tmp_path / "end2end.onnx")
    with pytest.raises(ModelLoadError, match=r"end2end\.onnx.*preprocess="):
        OnnxDetector(path, "onnxruntime-cpu")
    det = OnnxDetector(path, "onnxruntime-cpu", 1, preprocess="yolox")
    assert det.name.startswith("yolox[") and len(det(frame(480, 640))) == 3
    with pytest.raises(InputError, match="unknown detector preprocess"):
        OnnxDetector(path, "onnxruntime-cpu", preprocess="detr")


@pytest.mark.parametrize("name", ["yolov8", "rtmdet", "yolox"])
def test_normalisation_facts(yolov8_onnx, name):
    det = OnnxDetector(yolov8_onnx, "onnxruntime-cpu", 1, preprocess=name)
    image = frame(640, 640, seed=3)
    blob = det._normalise(image)[0].astype(np.float64)
    bgr = image.astype(np.float64)
    expected = {
        "yolov8": bgr[..., ::-1] / 255.0,
        "rtmdet": (bgr - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395],
        "yolox": bgr,
    }[name].transpose(2, 0, 1)
    np.testing.assert_allclose(blob, expected, rtol=1e-5, atol=1e-4)


# --- letterbox ------------------------------------------------------------------------------


@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize(("shape", "size"), [((720, 1280), (640, 640)), ((480, 640), (416, 416)),
                                             ((333, 217), (640, 480)), ((640, 640), (640, 640))])  # fmt: skip
def test_letterbox_round_trip(shape, size, centre):
    img = np.full((*shape, 3), (10, 20, 30), np.uint8)
    out, tf = letterbox(img, size, centre=centre)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    new_w, new_h = round(shape[1] * tf.scale_x), round(shape[0] * tf.scale_y)
    assert abs(tf.scale_x - tf.scale_y) < 0.01 and (new_w == size[0] or new_h == size[1])
    if centre:
        assert tf.pad_x == (size[0] - new_w) // 2 and tf.pad_y == (size[1] - new_h) // 2
    else:
        assert tf.pad_x == tf.pad_y == 0
    content = np.zeros(out.shape[:2], bool)
    content[tf.pad_y : tf.pad_y + new_h, tf.pad_x : tf.pad_x + new_w] = True
    assert (out[content] == (10, 20, 30)).all() and (out[~content] == 114).all()
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1, (20, 2, 2)) * [shape[1], shape[0]]
    boxes = np.concatenate([xy.min(1), xy.max(1)], axis=1)
    back = boxes_to_image(boxes_to_input(boxes, tf), tf)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_boxes_to_image_clips():
    _, tf = letterbox(np.zeros((720, 1280, 3), np.uint8), (640, 640))
    back = boxes_to_image([[-10, 100, 700, 200], [0, 0, 640, 130]], tf)
    np.testing.assert_allclose(back, [[0, 0, 1280, 120], [0, 0, 1280, 0]])


# --- NMS ------------------------------------------------------------------------------------


def test_nms_hand_cases():
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    assert nms(boxes, [0.9, 0.8, 0.7, 0.3], 0.5).tolist() == [0, 2]
    assert nms(boxes, [0.9, 0.8, 0.7, 0.3], 0.5, max_detections=1).tolist() == [0]
    assert nms(boxes, [0.1, 0.8, 0.7, 0.9], 0.5).tolist() == [3, 2]
    # Greedy: B is suppressed by A, so C (which only B overlaps) survives.
    chain = np.array([[0, 0, 2, 1], [1, 0, 3, 1], [2, 0, 4, 1]], float)
    assert nms(chain, [0.9, 0.8, 0.7], 0.3).tolist() == [0, 2]
    # IoU 1/3 exactly at the threshold is not "above" it: kept.
    assert nms(chain[:2], [0.9, 0.8], 1 / 3).tolist() == [0, 1]
    # Equal scores keep the input order; degenerate boxes overlap nothing.
    assert nms([[0, 0, 0, 0], [0, 0, 0, 0]], [0.5, 0.5]).tolist() == [0, 1]


def test_weighted_nms_blends_clusters():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.5, 0.3], np.float32)
    keypoints = np.array([[1, 1, 2, 2], [7, 7, 8, 8], [5, 5, 6, 6]], np.float32)
    b, s, k = weighted_nms(boxes, scores, 0.5, keypoints)
    # IoU(0, 2) = 81 / 119 > 0.5: blended with weights 0.9 : 0.3.
    np.testing.assert_allclose(b, [[0.25, 0.25, 10.25, 10.25], [50, 50, 60, 60]], atol=1e-6)
    np.testing.assert_allclose(s, [0.9, 0.5], atol=1e-7)
    np.testing.assert_allclose(k, [[2, 2, 3, 3], [7, 7, 8, 8]], atol=1e-6)
    assert b.dtype == s.dtype == k.dtype == np.float32
    _, _, k2 = weighted_nms(boxes, scores, 0.5, keypoints.reshape(3, 2, 2))
    assert k2.shape == (2, 2, 2)
    np.testing.assert_allclose(k2.reshape(2, 4), k, atol=1e-6)
    _, s3, none = weighted_nms(boxes, scores, 0.9)  # IoU 0.68 < 0.9: nothing merges
    assert none is None and s3.tolist() == pytest.approx([0.9, 0.5, 0.3])
    eb, es, ee = weighted_nms(np.zeros((0, 4)), np.zeros(0), 0.3, np.zeros((0, 8)))
    assert eb.shape == (0, 4) and es.shape == (0,) and ee.shape == (0, 8)


# --- errors and dispatch --------------------------------------------------------------------


def test_unknown_layout_names_file_and_layouts(tmp_path):
    # A raw YOLOX/YOLOv5 head [1, anchors, 5 + C] needs grid decoding: not supported.
    path = save_graph(tmp_path / "raw_head.onnx", {"output": np.zeros((1, 20, 9), np.float32)})
    with pytest.raises(ModelLoadError, match=r"raw_head\.onnx.*output \[1, 20, 9\].*Supported"):
        OnnxDetector(path, "onnxruntime-cpu")


def test_not_onnx_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError, match=r"garbage\.onnx.*not an ONNX model"):
        OnnxDetector(garbage, "onnxruntime-cpu")
    with pytest.raises(ModelLoadError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx")


def test_engine_and_backend_errors(yolov8_onnx, tmp_path):
    engine = tmp_path / "yolov8n.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(InputError, match=r"ONNX Runtime.*onnxruntime-trt"):
        OnnxDetector(engine)
    with pytest.raises(InputError, match=r"\.onnx"):
        open_detector(engine)
    with pytest.raises(BackendUnavailableError, match="onnxruntime-trt"):
        OnnxDetector(yolov8_onnx, backend="tensorrt")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
            OnnxDetector(yolov8_onnx, backend="onnxruntime-cuda")
        auto = OnnxDetector(yolov8_onnx, threads=1)  # auto: the fastest that runs, said why
        assert auto.name == "yolov8[onnxruntime[CPUExecutionProvider]]"
        assert any("CUDAExecutionProvider" in n for n in auto.notes)


def test_open_detector_dispatches_onnx(yolov8_onnx):
    det = open_detector(str(yolov8_onnx), backend="onnxruntime-cpu", threads=1, score_threshold=0.8)
    assert isinstance(det, OnnxDetector) and isinstance(det, PersonDetector)
    assert det.score_threshold == 0.8
    np.testing.assert_allclose(det(frame(480, 640)).scores, [0.9], atol=1e-6)
    with pytest.raises(InputError, match="BGR"):
        det(np.zeros((480, 640), np.uint8))
