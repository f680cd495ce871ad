"""Convert MediaPipe's BlazePose person detector (TFLite) to ``assets/detector/blazepose_detector.onnx``.

hmrt's embedded default detector (DESIGN.md, "Person detection") is MediaPipe's
``pose_detection.tflite`` (Apache-2.0, see ``assets/detector/README.md``), taken from the
``mediapipe==0.10.21`` wheel and converted once by this script; the ONNX file is committed, so
nothing is downloaded or converted at run time and the runtime needs neither TensorFlow nor
MediaPipe.

Why a small converter of our own: the model uses only ten TFLite builtins (CONV_2D,
DEPTHWISE_CONV_2D, ADD, PAD, RESHAPE, CONCATENATION, DEPTH_TO_SPACE, RESIZE_BILINEAR and the
weight ops DEQUANTIZE / DENSIFY: its weights are stored as *sparse* float16 tensors). Reading the
flatbuffer with the pure-python ``tflite`` schema package and emitting those ops directly gives an
exact, dependency-light, deterministic conversion. The weights are densified here and stored
as the float16 values they are, each widened by a ``Cast`` to float32 (lossless) that ONNX
Runtime and TensorRT fold at load time: the graph computes in float32 and the file is ~6 MB
instead of ~12 MB.

The ONNX graph (opset 17, IR 8, static batch 1):

* input ``image``: ``[1, 3, 224, 224]`` float32, **NCHW**, RGB in [-1, 1] (MediaPipe's
  ImageToTensorCalculator range), the frame letterboxed to 224x224 with zero (= -1.0) borders.
  NCHW like hmrt's other models; the NHWC -> NCHW change is made once here, on the weights.
* outputs ``regressors`` ``[1, 2254, 12]`` (raw box + 4 keypoints per anchor, in 224-pixel
  units relative to the anchor) and ``classificators`` ``[1, 2254, 1]`` (raw score logits),
  exactly the TFLite outputs ``Identity`` and ``Identity_1``; decoding lives in
  ``hmrt.runtime.detection.blazepose``.

Install (a separate venv: the project venv stays lean; ``ai-edge-litert`` is only for
``--check``)::

    python3 -m venv /work/scratch/tfenv
    /work/scratch/tfenv/bin/pip install tflite==2.18.0 onnx==1.23.2 numpy \
        ai-edge-litert onnxruntime opencv-python-headless scikit-image

Run from the repository root (the wheel is ``pip download mediapipe==0.10.21 --no-deps``)::

    /work/scratch/tfenv/bin/python tools/convert_blazepose_detector.py \
        --wheel mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl \
        --out assets/detector/blazepose_detector.onnx --check

``--check`` runs the TFLite interpreter (its reference kernels, and its default XNNPACK kernels
as the float32 noise floor) and ONNX Runtime on photos bundled with scikit-image and on noise,
prints the differences of the raw outputs and of the sigmoid scores (table in
``assets/detector/README.md``), and fails above 1e-4 in score, 1e-2 in box offsets (224-pixel
units) or 3x TFLite's own kernel-to-kernel difference. The output file is byte-identical from
run to run (no timestamps, fixed names).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL_MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"
# sha256 of pose_detection.tflite inside mediapipe-0.10.21 (all platform wheels of 0.10.21
# carry the same file; the wheel's RECORD lists it as m6ndPULv...).
TFLITE_SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
SOURCE = "mediapipe==0.10.21 wheel, " + WHEEL_MEMBER
SIZE = 224
OPSET, IR_VERSION = 17, 8  # IR 8 / opset 17: loadable by onnxruntime >= 1.17 (hmrt[ort])

# TFLite enums (schema.fbs): Padding, ActivationFunctionType, DimensionType, SparseIndexVector.
SAME, VALID = 0, 1
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3
DIM_DENSE = 0
INDEX_VECTOR = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}


# --------------------------------------------------------------------------------------------
# Reading the flatbuffer
# --------------------------------------------------------------------------------------------


def read_tflite(wheel: Path | None, tflite_path: Path | None, allow_other: bool) -> bytes:
    """The model bytes, from the wheel (preferred, checks the pinned sha256) or a loose file."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(WHEEL_MEMBER)
    elif tflite_path is not None:
        data = tflite_path.read_bytes()
    else:
        raise SystemExit("give --wheel or --tflite")
    digest = hashlib.sha256(data).hexdigest()
    if digest != TFLITE_SHA256 and not allow_other:
        raise SystemExit(
            f"pose_detection.tflite has sha256 {digest}, expected {TFLITE_SHA256} "
            "(mediapipe 0.10.21); pass --allow-other-model to convert it anyway"
        )
    return data


def _index_vector(table, kind: int) -> np.ndarray:
    """Values of a SparseIndexVector union member (Int32/Uint16/Uint8 vector)."""
    import tflite

    vec = getattr(tflite, INDEX_VECTOR[kind])()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """Dense tensor from TFLite's sparse storage (DENSE / SPARSE_CSR levels, schema.fbs
    ``SparsityParameters``), for the case this model uses: identity traversal, no block map.

    Walks the levels like TFLite's FormatConverter: a dense level of size n expands each
    position p into p * n + i; a CSR level expands p into segments[p] .. segments[p + 1] with
    coordinates indices[...]; at the leaves the position indexes ``values``.
    """
    order = list(sparsity.TraversalOrderAsNumpy())
    if order != list(range(len(shape))) or sparsity.BlockMapLength() != 0:
        raise NotImplementedError("sparse tensor with block map or permuted traversal")
    coords = np.zeros((1, 0), np.int64)
    pos = np.zeros(1, np.int64)
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == DIM_DENSE:
            n = meta.DenseSize()
            coords = np.concatenate(
                [np.repeat(coords, n, axis=0), np.tile(np.arange(n), len(pos))[:, None]], axis=1
            )
            pos = (pos[:, None] * n + np.arange(n)[None, :]).reshape(-1)
        else:
            seg = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
            idx = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
            counts = seg[pos + 1] - seg[pos]
            new_pos = np.concatenate(
                [np.arange(seg[p], seg[p + 1]) for p in pos] or [np.zeros(0, np.int64)]
            )
            coords = np.concatenate([np.repeat(coords, counts, axis=0), idx[new_pos, None]], 1)
            pos = new_pos
    dense = np.zeros(shape, values.dtype)
    dense[tuple(coords.T)] = values[pos]
    return dense


class TfliteGraph:
    """The single subgraph of a TFLite model: tensors, constant buffers and operators."""

    def __init__(self, data: bytes):
        import tflite

        self.tfl = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise NotImplementedError("expected one subgraph")
        self.graph = self.model.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.opcodes = []
        for i in range(self.model.OperatorCodesLength()):
            code = self.model.OperatorCodes(i)
            self.opcodes.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
        self.dtypes = {
            tflite.TensorType.FLOAT32: np.float32,
            tflite.TensorType.FLOAT16: np.float16,
            tflite.TensorType.INT32: np.int32,
        }

    def tensor(self, index: int):
        return self.graph.Tensors(index)

    def name(self, index: int) -> str:
        return self.tensor(index).Name().decode()

    def shape(self, index: int) -> list[int]:
        return self.tensor(index).ShapeAsNumpy().tolist()

    def buffer(self, index: int) -> np.ndarray | None:
        """The constant stored with tensor ``index`` (densified when sparse), or None."""
        t = self.tensor(index)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        values = np.frombuffer(raw.tobytes(), self.dtypes[t.Type()])
        if t.Sparsity() is not None:
            return densify(values, self.shape(index), t.Sparsity())
        return values.reshape(self.shape(index))

    def operators(self):
        """``(opcode name, inputs, outputs, builtin options table)`` in execution order."""
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            yield (
                self.opcodes[op.OpcodeIndex()],
                [int(j) for j in op.InputsAsNumpy()],
                [int(j) for j in op.OutputsAsNumpy()],
                op.BuiltinOptions(),
            )

    def options(self, kind: str, table):
        opts = getattr(self.tfl, kind)()
        opts.Init(table.Bytes, table.Pos)
        return opts


# --------------------------------------------------------------------------------------------
# Emitting ONNX
# --------------------------------------------------------------------------------------------


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (extra pixel at the end), as explicit begin/end pads."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class OnnxBuilder:
    """Collects ONNX nodes/initializers with deterministic names (t<index>, w<counter>)."""

    def __init__(self, tfl: TfliteGraph):
        from onnx import helper

        self.helper = helper
        self.tfl = tfl
        self.nodes: list = []
        self.inits: list = []
        self.const: dict[int, np.ndarray] = {}  # TFLite tensor index -> folded constant
        self.names: dict[int, str] = {}  # TFLite tensor index -> ONNX value name
        self._counter = 0

    def _fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def initializer(self, array: np.ndarray, stem: str) -> str:
        from onnx import numpy_helper

        name = self._fresh(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, array: np.ndarray, stem: str) -> str:
        """A float32 weight value. The model's weights are float16 (DEQUANTIZE inputs): they are
        stored float16 and widened by a Cast, which is exact and halves the file (12 -> 6 MB);
        ONNX Runtime and TensorRT fold the Cast at load time, so inference is float32."""
        if array.dtype == np.float16:
            return self.node("Cast", [self.initializer(array, stem)], stem + "32", to=1)
        return self.initializer(array.astype(np.float32), stem)

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        out = self._fresh(stem)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def activation(self, value: str, act: int) -> str:
        if act == ACT_NONE:
            return value
        if act == ACT_RELU:
            return self.node("Relu", [value], "relu")
        if act == ACT_RELU6:
            lo = self.initializer(np.array(0.0, np.float32), "zero")
            hi = self.initializer(np.array(6.0, np.float32), "six")
            return self.node("Clip", [value, lo, hi], "relu6")
        raise NotImplementedError(f"fused activation {act}")

    def value(self, index: int) -> str:
        if index not in self.names:
            raise KeyError(f"tensor {self.tfl.name(index)} used before it is produced")
        return self.names[index]

    def constant(self, index: int) -> np.ndarray:
        if index in self.const:
            return self.const[index]
        array = self.tfl.buffer(index)
        if array is None:
            raise KeyError(f"tensor {self.tfl.name(index)} is not constant")
        self.const[index] = array
        return array

    def emit(self, kind: str, ins: list[int], outs: list[int], table) -> None:
        t = self.tfl
        out = outs[0]
        if kind in ("DENSIFY", "DEQUANTIZE"):
            # Weight ops are folded: DENSIFY's input is densified by TfliteGraph.buffer, and
            # DEQUANTIZE's float16 values stay float16 (widened by a Cast in OnnxBuilder.weight).
            self.const[out] = self.constant(ins[0])
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            opts = t.options("DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", table)
            w = self.constant(ins[1])  # OHWI, depthwise: [1, H, W, C*M]
            if depthwise:
                if opts.DepthMultiplier() not in (0, 1):
                    raise NotImplementedError("depth multiplier != 1")
                w = w.transpose(3, 0, 1, 2)  # -> [C, 1, kh, kw]
            else:
                w = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
            _, _, kh, kw = w.shape
            _, ih, iw, cin = t.shape(ins[0])
            sh, sw = opts.StrideH(), opts.StrideW()
            dh, dw = opts.DilationHFactor(), opts.DilationWFactor()
            if opts.Padding() == SAME:
                (pt, pb), (pl, pr) = _same_pads(ih, kh, sh, dh), _same_pads(iw, kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            inputs = [self.value(ins[0]), self.weight(w, "w")]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(self.weight(self.constant(ins[2]), "b"))
            y = self.node(
                "Conv",
                inputs,
                "conv",
                kernel_shape=[kh, kw],
                strides=[sh, sw],
                dilations=[dh, dw],
                pads=[pt, pl, pb, pr],
                group=cin if depthwise else 1,
            )
            self.names[out] = self.activation(y, opts.FusedActivationFunction())
        elif kind == "ADD":
            opts = t.options("AddOptions", table)
            y = self.node("Add", [self.value(ins[0]), self.value(ins[1])], "add")
            self.names[out] = self.activation(y, opts.FusedActivationFunction())
        elif kind == "PAD":
            pads = self.constant(ins[1]).astype(np.int64)  # NHWC [[b, e], ...]
            nchw = pads[[0, 3, 1, 2]]
            onnx_pads = np.concatenate([nchw[:, 0], nchw[:, 1]])
            self.names[out] = self.node(
                "Pad", [self.value(ins[0]), self.initializer(onnx_pads, "pads")], "pad"
            )
        elif kind == "DEPTH_TO_SPACE":
            opts = t.options("DepthToSpaceOptions", table)
            # TF's depth_to_space takes channel (i * bs + j) * C + c: ONNX's DCR mode.
            self.names[out] = self.node(
                "DepthToSpace",
                [self.value(ins[0])],
                "d2s",
                blocksize=opts.BlockSize(),
                mode="DCR",
            )
        elif kind == "RESIZE_BILINEAR":
            opts = t.options("ResizeBilinearOptions", table)
            if opts.AlignCorners() or not opts.HalfPixelCenters():
                raise NotImplementedError("only half_pixel_centers bilinear resize")
            n, oh, ow, c = t.shape(out)
            sizes = self.initializer(np.array([n, c, oh, ow], np.int64), "sizes")
            self.names[out] = self.node(
                "Resize",
                [self.value(ins[0]), "", "", sizes],
                "resize",
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
        elif kind == "RESHAPE":
            # The only reshapes flatten NHWC head maps to [1, anchors, k]: back to NHWC first.
            x = self.value(ins[0])
            if len(t.shape(ins[0])) == 4:
                x = self.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1])
            shape = np.array(t.shape(out), np.int64)
            self.names[out] = self.node("Reshape", [x, self.initializer(shape, "shape")], "flat")
        elif kind == "CONCATENATION":
            opts = t.options("ConcatenationOptions", table)
            if len(t.shape(outs[0])) == 4:
                raise NotImplementedError("4-D concatenation (would need an NCHW axis map)")
            y = self.node("Concat", [self.value(i) for i in ins], "concat", axis=opts.Axis())
            self.names[out] = self.activation(y, opts.FusedActivationFunction())
        else:
            raise NotImplementedError(f"TFLite op {kind}")


def convert(data: bytes):
    """The ONNX ``ModelProto`` for the TFLite model bytes."""
    import onnx
    from onnx import TensorProto, helper

    tfl = TfliteGraph(data)
    g = tfl.graph
    (inp,) = [int(i) for i in g.InputsAsNumpy()]
    outs = [int(i) for i in g.OutputsAsNumpy()]
    if tfl.shape(inp) != [1, SIZE, SIZE, 3]:
        raise NotImplementedError(f"unexpected input shape {tfl.shape(inp)}")
    b = OnnxBuilder(tfl)
    b.names[inp] = "image"
    for kind, ins, op_outs, table in tfl.operators():
        b.emit(kind, ins, op_outs, table)
    # Name the outputs like MediaPipe's graph does (regressors, classificators).
    by_width = {tfl.shape(o)[-1]: o for o in outs}
    final = {"regressors": by_width[12], "classificators": by_width[1]}
    for name, index in final.items():
        b.nodes.append(helper.make_node("Identity", [b.value(index)], [name], name=name))
    graph = helper.make_graph(
        b.nodes,
        "blazepose_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, tfl.shape(i))
            for n, i in final.items()
        ],
        b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="hmrt tools/convert_blazepose_detector.py",
        producer_version="1",
        doc_string=(
            "MediaPipe BlazePose person detector (pose_detection.tflite, Apache-2.0, "
            "Copyright The MediaPipe Authors / Google LLC), converted to ONNX by hmrt. "
            "See assets/detector/README.md."
        ),
    )
    model.ir_version = IR_VERSION
    meta = {
        "hmrt.detector": "blazepose",
        "source": SOURCE,
        "source_sha256": TFLITE_SHA256,
        "license": "Apache-2.0",
        "input": "image [1,3,224,224] float32 NCHW RGB in [-1,1], letterboxed, zero border",
        "outputs": "regressors [1,2254,12], classificators [1,2254,1] (raw)",
    }
    for key, val in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, val
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------------------------
# Parity check against the TFLite interpreter
# --------------------------------------------------------------------------------------------


def letterbox_rgb(rgb: np.ndarray) -> np.ndarray:
    """``[224, 224, 3]`` float32 in [-1, 1]: aspect-keeping fit with zero borders, as
    MediaPipe's ImageToTensorCalculator (keep_aspect_ratio, BORDER_ZERO, range [-1, 1])."""
    import cv2

    h, w = rgb.shape[:2]
    side = max(h, w)
    s = SIZE / side
    m = np.array([[s, 0, (SIZE - s * w) / 2], [0, s, (SIZE - s * h) / 2]], np.float32)
    out = cv2.warpAffine(rgb, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
    return out.astype(np.float32) * (2.0 / 255.0) - 1.0


def check(data: bytes, onnx_path: Path) -> dict[str, float]:
    """Parity of the ONNX file with the TFLite interpreter on real photos and noise.

    Prints one markdown row per image: max abs difference of both raw outputs, the largest
    difference relative to the value (``|d| / max(1, |ref|)``: the raw outputs reach several
    hundred, where float32 rounding alone is ~1e-4 absolute) and of the sigmoid scores, for the
    reference kernels (``BUILTIN_REF``); and, as the noise floor, the same numbers between TFLite's
    own reference kernels and its default XNNPACK kernels.
    """
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from skimage import data as skd

    images = {}
    for name in ("astronaut", "camera", "coffee", "chelsea", "rocket"):
        img = getattr(skd, name)()
        images[name] = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
    rng = np.random.default_rng(0)
    images["noise 640x480"] = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def tflite_run(resolver: str):
        interp = Interpreter(
            model_content=data, experimental_op_resolver_type=getattr(OpResolverType, resolver)
        )
        interp.allocate_tensors()
        (ind,) = interp.get_input_details()
        outd = {tuple(d["shape"])[-1]: d["index"] for d in interp.get_output_details()}

        def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            interp.set_tensor(ind["index"], x[None])
            interp.invoke()
            return interp.get_tensor(outd[12]).copy(), interp.get_tensor(outd[1]).copy()

        return run

    ref, xnn = tflite_run("BUILTIN_REF"), tflite_run("BUILTIN")

    def diffs(a, b) -> tuple[float, float, float, float]:
        (reg, cls), (rreg, rcls) = a, b
        sig = lambda v: 1.0 / (1.0 + np.exp(-np.clip(v.astype(np.float64), -100, 100)))  # noqa: E731
        return (
            float(np.abs(reg - rreg).max()),
            float(np.abs(cls - rcls).max()),
            float(max((np.abs(o - r) / np.maximum(1, np.abs(r))).max() for o, r in zip(a, b))),
            float(np.abs(sig(cls) - sig(rcls)).max()),
        )

    worst = dict.fromkeys(("reg", "cls", "rel", "score", "xnn_rel", "xnn_score"), 0.0)
    print("| image | regressors abs | classificators abs | max rel | score | TFLite ref vs "
          "XNNPACK: rel / score |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, rgb in images.items():
        x = letterbox_rgb(rgb)
        r = ref(x)
        o = tuple(sess.run(["regressors", "classificators"], {"image": x.transpose(2, 0, 1)[None]}))
        d, dx = diffs(o, r), diffs(xnn(x), r)
        for key, val in zip(("reg", "cls", "rel", "score", "xnn_rel", "xnn_score"), d + dx[2:]):
            worst[key] = max(worst[key], val)
        print(f"| {name} | {d[0]:.1e} | {d[1]:.1e} | {d[2]:.1e} | {d[3]:.1e} | "
              f"{dx[2]:.1e} / {dx[3]:.1e} |")  # fmt: skip
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheel", type=Path, help="mediapipe-0.10.21-*.whl")
    src.add_argument("--tflite", type=Path, help="pose_detection.tflite extracted from it")
    p.add_argument("--out", type=Path, default=Path("assets/detector/blazepose_detector.onnx"))
    p.add_argument("--allow-other-model", action="store_true", help="skip the sha256 pin")
    p.add_argument("--check", action="store_true", help="parity vs the TFLite interpreter")
    args = p.parse_args(argv)

    import onnx

    data = read_tflite(args.wheel, args.tflite, args.allow_other_model)
    model = convert(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    blob = args.out.read_bytes()
    print(
        f"wrote {args.out}: {len(blob) / 1e6:.2f} MB, sha256 {hashlib.sha256(blob).hexdigest()}, "
        f"{len(model.graph.node)} nodes, "
        f"{sum(int(np.prod(t.dims)) for t in model.graph.initializer):,} parameters"
    )
    if args.check:
        worst = check(data, args.out)
        print("worst: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
        # The raw outputs reach ~750 and some are differences of such sums, so float32 rounding
        # alone gives ~3e-3 (TFLite's two kernel sets differ as much); what decoding uses are
        # scores (sigmoid) and box offsets in 224-pixel units: both must agree to 1e-4 / 1e-2 px.
        if worst["score"] > 1e-4 or worst["reg"] > 1e-2 or worst["rel"] > 3 * worst["xnn_rel"]:
            print("parity check FAILED", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
