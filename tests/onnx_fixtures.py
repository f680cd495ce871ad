"""Contract-conforming ONNX models built with ``onnx.helper``, for runtime tests without torch.

:func:`make_blob_model` writes a tiny model with the hmrt ONNX contract (input ``image``
``[N,3,S,S]``, outputs ``vertices joints3d joints2d cam rotmats betas``, the ``hmrt.*``
metadata). It is not a neural network but a "bright blob follower": the 2D joints are a fixed
skeleton placed at the centroid of the bright pixels of the crop and scaled by their spread,
and the weak-perspective camera is consistent with them. So a video of a white shape moving on
a dark background exercises cropping, tracking, camera maths and smoothing with real numbers
coming out of ONNX Runtime.

Reusable by any test: ``make_blob_model(tmp_path / "m.onnx")``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_NAMES = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas")

# A standing skeleton in SMPL joint order, in units of the blob's radial standard deviation
# (x right, y down, origin at the blob centroid). Roughly a person 3.4 units tall.
SKELETON_2D = np.array(
    [
        [0.0, 0.2],  # 0 pelvis
        [0.25, 0.3],  # 1 left hip (subject's left is image right for a person facing us)
        [-0.25, 0.3],  # 2 right hip
        [0.0, -0.2],  # 3 spine1
        [0.25, 0.9],  # 4 left knee
        [-0.25, 0.9],  # 5 right knee
        [0.0, -0.5],  # 6 spine2
        [0.25, 1.5],  # 7 left ankle
        [-0.25, 1.5],  # 8 right ankle
        [0.0, -0.7],  # 9 spine3
        [0.3, 1.6],  # 10 left foot
        [-0.3, 1.6],  # 11 right foot
        [0.0, -1.0],  # 12 neck
        [0.2, -0.9],  # 13 left collar
        [-0.2, -0.9],  # 14 right collar
        [0.0, -1.3],  # 15 head
        [0.4, -0.9],  # 16 left shoulder
        [-0.4, -0.9],  # 17 right shoulder
        [0.5, -0.4],  # 18 left elbow
        [-0.5, -0.4],  # 19 right elbow
        [0.55, 0.05],  # 20 left wrist
        [-0.55, 0.05],  # 21 right wrist
        [0.6, 0.15],  # 22 left hand
        [-0.6, 0.15],  # 23 right hand
    ],
    dtype=np.float32,
)
BODY_HEIGHT_M = 1.7
SKELETON_HEIGHT_UNITS = float(SKELETON_2D[:, 1].max() - SKELETON_2D[:, 1].min())


def constant_body(num_vertices: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The constant 3D outputs of the blob model: joints, vertices, rotations, betas."""
    rng = np.random.default_rng(seed)
    metres = BODY_HEIGHT_M / SKELETON_HEIGHT_UNITS
    # 3D joints: the 2D skeleton stood up in the camera frame (y down), root-relative.
    j3 = np.zeros((24, 3), np.float32)
    j3[:, :2] = (SKELETON_2D - SKELETON_2D[0]) * metres
    j3[:, 2] = rng.normal(0.0, 0.02, 24).astype(np.float32)
    j3[0] = 0.0
    owner = rng.integers(0, 24, num_vertices)
    verts = (j3[owner] + rng.normal(0.0, 0.03, (num_vertices, 3))).astype(np.float32)
    axis = rng.normal(size=(24, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(0.0, 0.6, 24)
    rot = np.stack([_rodrigues(a * t) for a, t in zip(axis, angle)]).astype(np.float32)
    betas = rng.normal(0.0, 0.5, 10).astype(np.float32)
    return {"joints3d": j3, "vertices": verts, "rotmats": rot, "betas": betas}


def _rodrigues(r: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def default_metadata(res: int = 224, **overrides: str) -> dict[str, str]:
    """The ``hmrt.*`` metadata_props of the ONNX contract (DEVELOPING.md), as strings."""
    meta = {
        "hmrt.model": "blob",
        "hmrt.variant": "test",
        "hmrt.input_size": f"{res},{res}",
        "hmrt.mean": ",".join(str(v) for v in IMAGENET_MEAN),
        "hmrt.std": ",".join(str(v) for v in IMAGENET_STD),
        "hmrt.body_hash": "0" * 16,
        "hmrt.precision": "fp32",
        "hmrt.opset": "17",
        "hmrt.version": "0.1.0",
        "hmrt.roi_pool": "grid",
        "hmrt.crop_focal": "5000",
    }
    meta.update(overrides)
    return meta


def make_blob_model(
    path: str | Path,
    res: int = 224,
    num_vertices: int = 200,
    metadata: dict[str, str] | None = None,
    threshold: float = 0.0,
    outputs: tuple[str, ...] = OUTPUT_NAMES,
    seed: int = 0,
    work: int = 0,
) -> Path:
    """Write the blob-follower ONNX model to ``path`` and return the path.

    ``threshold`` is on the channel mean of the *normalised* image (0 ~ grey 0.45): pixels
    above it count as the person. ``metadata`` replaces the default props (pass ``{}`` for
    none); ``outputs`` may drop outputs to test contract checks. ``work`` > 0 adds that many
    3x3 convolutions on the input (results unchanged) to make inference cost measurable.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    body = constant_body(num_vertices, seed)
    xs = ((np.arange(res, dtype=np.float32) + 0.5)[None, :]).repeat(res, 0)
    ys = xs.T.copy()
    inits = {
        "thr": np.array(threshold, np.float32),
        "eps": np.array(1e-6, np.float32),
        "xs": xs[None, None],
        "ys": ys[None, None],
        "skel": SKELETON_2D[None],
        "half": np.array(res / 2.0, np.float32),
        "one": np.array(1.0, np.float32),
        "s_gain": np.array(2.0 * SKELETON_HEIGHT_UNITS / (BODY_HEIGHT_M * res), np.float32),
        "s_min": np.array(1e-3, np.float32),
        "c_joints3d": body["joints3d"][None],
        "c_vertices": body["vertices"][None],
        "c_rotmats": body["rotmats"][None],
        "c_betas": body["betas"][None],
        "ax_sum": np.array([1, 2, 3], np.int64),
        "ax_ch": np.array([1], np.int64),
        "ax_last": np.array([2], np.int64),
        "start0": np.array([0], np.int64),
        "end1": np.array([1], np.int64),
        "tail_v": np.array([num_vertices, 3], np.int64),
        "tail_j": np.array([24, 3], np.int64),
        "tail_r": np.array([24, 3, 3], np.int64),
        "tail_b": np.array([10], np.int64),
    }
    n = []
    x_in = "image"
    if work > 0:
        rng = np.random.default_rng(seed)
        inits["conv_w"] = (rng.normal(0, 0.05, (3, 3, 3, 3))).astype(np.float32)
        inits["zero"] = np.array(0.0, np.float32)
        cur = "image"
        for i in range(work):
            n.append(helper.make_node("Conv", [cur, "conv_w"], [f"conv{i}"], pads=[1, 1, 1, 1]))
            cur = f"conv{i}"
        # Multiply the conv chain by zero and add it: same numbers, real compute.
        n.append(helper.make_node("Mul", [cur, "zero"], ["conv_zero"]))
        n.append(helper.make_node("Add", ["image", "conv_zero"], ["image_w"]))
        x_in = "image_w"
    n += [
        helper.make_node("ReduceMean", [x_in], ["gray"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["gray", "thr"], ["g0"]),
        helper.make_node("Relu", ["g0"], ["w"]),
        helper.make_node("ReduceSum", ["w", "ax_sum"], ["wsum0"], keepdims=0),
        helper.make_node("Max", ["wsum0", "eps"], ["wsum"]),
        helper.make_node("Mul", ["w", "xs"], ["wx"]),
        helper.make_node("Mul", ["w", "ys"], ["wy"]),
        helper.make_node("ReduceSum", ["wx", "ax_sum"], ["sx"], keepdims=0),
        helper.make_node("ReduceSum", ["wy", "ax_sum"], ["sy"], keepdims=0),
        helper.make_node("Div", ["sx", "wsum"], ["cx"]),  # [N]
        helper.make_node("Div", ["sy", "wsum"], ["cy"]),
        helper.make_node("Unsqueeze", ["cx", "ax_sum"], ["cx4"]),  # [N,1,1,1]
        helper.make_node("Unsqueeze", ["cy", "ax_sum"], ["cy4"]),
        helper.make_node("Sub", ["xs", "cx4"], ["dx"]),
        helper.make_node("Sub", ["ys", "cy4"], ["dy"]),
        helper.make_node("Mul", ["dx", "dx"], ["dx2"]),
        helper.make_node("Mul", ["dy", "dy"], ["dy2"]),
        helper.make_node("Add", ["dx2", "dy2"], ["r2"]),
        helper.make_node("Mul", ["w", "r2"], ["wr2"]),
        helper.make_node("ReduceSum", ["wr2", "ax_sum"], ["sr2"], keepdims=0),
        helper.make_node("Div", ["sr2", "wsum"], ["var"]),
        helper.make_node("Sqrt", ["var"], ["spread"]),  # [N]
        # joints2d = centroid + skeleton * spread  -> [N,24,2]
        helper.make_node("Unsqueeze", ["cx", "ax_ch"], ["cx1"]),  # [N,1]
        helper.make_node("Unsqueeze", ["cy", "ax_ch"], ["cy1"]),
        helper.make_node("Concat", ["cx1", "cy1"], ["c2"], axis=1),  # [N,2]
        helper.make_node("Unsqueeze", ["c2", "ax_ch"], ["c3"]),  # [N,1,2]
        helper.make_node("Unsqueeze", ["spread", "ax_ch"], ["sp1"]),  # [N,1]
        helper.make_node("Unsqueeze", ["sp1", "ax_last"], ["sp3"]),  # [N,1,1]
        helper.make_node("Mul", ["skel", "sp3"], ["off"]),
        helper.make_node("Add", ["c3", "off"], ["joints2d"]),
        # Weak perspective consistent with the 2D skeleton: s from its height in the crop,
        # (tx, ty) putting the root at the centroid (+ the pelvis offset).
        helper.make_node("Mul", ["spread", "s_gain"], ["s0"]),
        helper.make_node("Max", ["s0", "s_min"], ["s"]),
        helper.make_node("Gather", ["joints2d", "start0"], ["root_pair"], axis=1),  # [N,1,2]
        helper.make_node("Squeeze", ["root_pair", "ax_ch"], ["root2"]),  # [N,2]
        helper.make_node("Div", ["root2", "half"], ["root_n0"]),
        helper.make_node("Sub", ["root_n0", "one"], ["root_n"]),
        helper.make_node("Unsqueeze", ["s", "ax_ch"], ["s1"]),
        helper.make_node("Div", ["root_n", "s1"], ["txy"]),
        helper.make_node("Concat", ["s1", "txy"], ["cam"], axis=1),
        # Constant 3D outputs expanded to the batch.
        helper.make_node("Shape", ["image"], ["ishape"]),
        helper.make_node("Slice", ["ishape", "start0", "end1"], ["nb"]),
        helper.make_node("Concat", ["nb", "tail_v"], ["shape_v"], axis=0),
        helper.make_node("Concat", ["nb", "tail_j"], ["shape_j"], axis=0),
        helper.make_node("Concat", ["nb", "tail_r"], ["shape_r"], axis=0),
        helper.make_node("Concat", ["nb", "tail_b"], ["shape_b"], axis=0),
        helper.make_node("Expand", ["c_vertices", "shape_v"], ["vertices"]),
        helper.make_node("Expand", ["c_joints3d", "shape_j"], ["joints3d"]),
        helper.make_node("Expand", ["c_rotmats", "shape_r"], ["rotmats"]),
        helper.make_node("Expand", ["c_betas", "shape_b"], ["betas"]),
    ]
    shapes = {
        "vertices": ["N", num_vertices, 3],
        "joints3d": ["N", 24, 3],
        "joints2d": ["N", 24, 2],
        "cam": ["N", 3],
        "rotmats": ["N", 24, 3, 3],
        "betas": ["N", 10],
    }
    graph = helper.make_graph(
        n,
        "hmrt_blob_fixture",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, res, res])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hmrt-tests"
    )
    model.ir_version = 8
    meta = default_metadata(res) if metadata is None else metadata
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def blob_frame(
    width: int = 320,
    height: int = 240,
    center: tuple[float, float] = (160.0, 120.0),
    size: tuple[float, float] = (40.0, 110.0),
) -> np.ndarray:
    """A BGR frame: a white upright rectangle (the "person") on a dark background."""
    import cv2

    frame = np.full((height, width, 3), 20, np.uint8)
    cx, cy = center
    w, h = size
    p0 = (round(cx - w / 2), round(cy - h / 2))
    p1 = (round(cx + w / 2), round(cy + h / 2))
    cv2.rectangle(frame, p0, p1, (255, 255, 255), thickness=-1)
    return frame


def write_blob_video(
    path: str | Path,
    frames: int = 30,
    width: int = 320,
    height: int = 240,
    fps: float = 30.0,
    fourcc: str = "MJPG",
) -> Path:
    """Write a video of a rectangle moving left to right and return its path."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for i in range(frames):
        cx = width * (0.3 + 0.4 * i / max(frames - 1, 1))
        writer.write(blob_frame(width, height, (cx, height / 2)))
    writer.release()
    return path
