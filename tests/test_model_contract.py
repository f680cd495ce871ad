"""The model contract (one input ``image``, output names and shapes, ``hmrt.*`` metadata) is
checked when a model loads and before ``hmrt calibrate`` / ``hmrt build-engine`` do any work:
real ONNX files in ONNX Runtime, the CLI in this process, no mocks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import blob_frame, default_metadata, make_blob_model

from hmrt.cli import main
from hmrt.runtime import Reconstructor
from hmrt.runtime.errors import ModelLoadError
from hmrt.runtime.model_info import OUTPUT_SHAPES, check_output_shapes, onnx_contract

GOOD = {"vertices": [200, 3], "joints3d": [24, 3], "joints2d": [24, 2], "cam": [3],
        "rotmats": [24, 3, 3], "betas": [10]}  # fmt: skip


def constant_model(
    path: Path,
    shapes: dict[str, list[int]],
    input_name: str = "image",
    declare: bool = True,
    data_dependent: str | None = None,
    res: int = 224,
) -> Path:
    """An ONNX file with the contract's metadata whose outputs are zeros of ``[N, *shape]``.

    ``declare=False`` declares every output dim but the batch as a symbol. ``data_dependent``
    names one output whose second dim comes from the image values (always its ``shapes``
    entry at run time), so no shape inference can know it before running.
    """
    nodes = [helper.make_node("Shape", [input_name], ["ishape"]),
             helper.make_node("Slice", ["ishape", "start0", "end1"], ["nb"])]  # fmt: skip
    inits = {"start0": np.array([0], np.int64), "end1": np.array([1], np.int64)}
    outputs = []
    for name, tail in shapes.items():
        # Expand never shrinks a dim: a data-dependent one starts at 1 so nothing can infer it.
        first = 1 if name == data_dependent else tail[0]
        inits[f"c_{name}"] = np.zeros([1, first, *tail[1:]], np.float32)
        inits[f"t_{name}"] = np.array(tail, np.int64)
        if name == data_dependent:
            # tail[0] computed from the data: ReduceMin(image * 0) + tail[0] -> int64 [1].
            inits["k_add"] = np.array([float(tail[0])], np.float32)
            inits[f"rest_{name}"] = np.array(tail[1:], np.int64)
            nodes += [
                helper.make_node("ReduceMin", [input_name], ["mn"], keepdims=0),
                helper.make_node("Mul", ["mn", "zero"], ["mn0"]),
                helper.make_node("Add", ["mn0", "k_add"], ["kf"]),
                helper.make_node("Cast", ["kf"], ["k"], to=TensorProto.INT64),
                helper.make_node("Concat", ["k", f"rest_{name}"], [f"d_{name}"], axis=0),
                helper.make_node("Concat", ["nb", f"d_{name}"], [f"s_{name}"], axis=0),
            ]
            inits["zero"] = np.array(0.0, np.float32)
        else:
            nodes.append(helper.make_node("Concat", ["nb", f"t_{name}"], [f"s_{name}"], axis=0))
        nodes.append(helper.make_node("Expand", [f"c_{name}", f"s_{name}"], [name]))
        dims = ["N", *tail] if declare else ["N", *[f"{name}_{i}" for i in range(len(tail))]]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    image = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, res, res])
    graph = helper.make_graph(
        nodes, "contract_test", [image], outputs,
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, default_metadata(res))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def add_graph(path: Path, input_name: str = "x", metadata: bool = False) -> Path:
    """A plain ``Add`` graph: nothing like an hmrt model."""
    graph = helper.make_graph(
        [helper.make_node("Add", [input_name, input_name], ["y"])], "add",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 224, 224])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, default_metadata())
    onnx.save(model, str(path))
    return path


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hmrt: error:"), err
    assert "internal error" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- defect 5: wrong output shapes are refused at load time -------------------------------
@pytest.mark.parametrize(
    "name, shape, needle",
    [
        ("cam", [4], "output cam has shape [?,4]"),
        ("joints2d", [24, 3], "output joints2d has shape [?,24,3]"),
        ("joints2d", [17, 2], "(with J=24)"),  # J must agree with joints3d
        ("rotmats", [24, 9], "output rotmats has shape [?,24,9]"),
        ("betas", [16], "[N,10]"),
        ("vertices", [200, 3, 1], "output vertices"),
    ],
)
def test_wrong_output_shapes_fail_at_load(tmp_path, capsys, name, shape, needle):
    path = constant_model(tmp_path / "wrong.onnx", {**GOOD, name: shape})
    with pytest.raises(ModelLoadError, match=r"wrong\.onnx") as info:
        Reconstructor(path, backend="onnxruntime-cpu")
    assert needle in str(info.value) and "hmrt export" in str(info.value)
    image = tmp_path / "p.png"
    cv2.imwrite(str(image), blob_frame())
    code, err = _cli(capsys, "run", "--model", str(path), "--source", str(image))
    _assert_one_line(code, err, "wrong.onnx", needle)


def test_shapes_known_only_at_run_time_are_checked_on_the_first_frame(tmp_path):
    path = constant_model(
        tmp_path / "late.onnx", {**GOOD, "cam": [4]}, declare=False, data_dependent="cam"
    )
    rec = Reconstructor(path, backend="onnxruntime-cpu")  # cam is [N,?] before running
    with pytest.raises(ModelLoadError, match=r"late\.onnx: output cam has shape \[1,4\]"):
        rec(blob_frame(), bbox=(100, 40, 220, 200))


def test_dynamic_dims_and_good_shapes_are_accepted(tmp_path):
    rec = Reconstructor(constant_model(tmp_path / "dyn.onnx", GOOD, declare=False),
                        backend="onnxruntime-cpu")  # fmt: skip
    res = rec(blob_frame(), bbox=(100, 40, 220, 200))
    assert res.vertices.shape == (200, 3) and res.rotmats.shape == (24, 3, 3)
    Reconstructor(make_blob_model(tmp_path / "blob.onnx"), backend="onnxruntime-cpu")


def test_shape_table_rules():
    """The table the backends share: static dims must match, symbols must agree, dynamic
    dims (None, -1 from TensorRT, a name from ONNX Runtime) pass; person_score is optional."""
    good = {k: ["N", *v] for k, v in GOOD.items()}
    check_output_shapes("m", good)
    check_output_shapes("m", {k: [-1, *v] for k, v in GOOD.items()})  # TensorRT style
    check_output_shapes("m", {"cam": None, "vertices": []})  # unknown rank: checked later
    for score in (["N"], ["N", 1], [-1], [4, 1]):
        check_output_shapes("m", {**good, "person_score": score})
    with pytest.raises(ModelLoadError, match="person_score"):
        check_output_shapes("m", {**good, "person_score": ["N", 2]})
    with pytest.raises(ModelLoadError, match=r"cam has shape \[2,3\].*N=1"):
        check_output_shapes("m", {**good, "cam": [2, 3]}, batch=1)
    with pytest.raises(ModelLoadError, match="vertices"):
        check_output_shapes("m", {"vertices": []}, unknown_rank_ok=False)
    assert set(OUTPUT_SHAPES) >= {"vertices", "person_score"}


def test_input_shape_must_match_the_metadata(tmp_path):
    path = constant_model(tmp_path / "res.onnx", GOOD, res=256)  # metadata says 256: fine
    onnx_contract(str(path), onnx.load(str(path)))
    model = onnx.load(str(path))
    for p in model.metadata_props:
        if p.key == "hmrt.input_size":
            p.value = "224,224"
    with pytest.raises(ModelLoadError, match=r"input image has shape \[\?,3,256,256\]"):
        onnx_contract(str(path), model)


# -- defect 10: calibrate and build-engine check the contract before any work ------------
def test_calibrate_refuses_a_renamed_input_before_calibrating(tmp_path, capsys):
    src = constant_model(tmp_path / "renamed.onnx", GOOD, input_name="input")
    out = tmp_path / "renamed.int8.onnx"
    code, err = _cli(capsys, "calibrate", "--onnx", str(src), "--data", "synth", "--out",
                     str(out), "--calib-n", "2", "--no-progress")  # fmt: skip
    _assert_one_line(code, err, "renamed.onnx", "one input named 'image'", "['input']")
    assert not out.exists()


def test_calibrate_refuses_a_plain_add_graph(tmp_path, capsys):
    src = add_graph(tmp_path / "add.onnx", input_name="image", metadata=True)
    out = tmp_path / "add.int8.onnx"
    code, err = _cli(capsys, "calibrate", "--onnx", str(src), "--data", "synth", "--out",
                     str(out), "--no-progress")  # fmt: skip
    _assert_one_line(code, err, "add.onnx", "vertices, joints3d, joints2d, cam")
    assert not out.exists()


@pytest.mark.parametrize(
    "make, needles",
    [
        (lambda d: add_graph(d / "add.onnx"), ("add.onnx", "one input named 'image'")),
        (lambda d: add_graph(d / "add2.onnx", "image"), ("add2.onnx", "lacks the output")),
        (lambda d: constant_model(d / "renamed.onnx", GOOD, "input"), ("renamed.onnx", "'input'")),
        (lambda d: constant_model(d / "shape.onnx", {**GOOD, "cam": [4]}), ("output cam",)),
    ],
    ids=["add", "add-image", "renamed", "shape"],
)
def test_build_engine_refuses_non_contract_onnx_before_writing(tmp_path, capsys, make, needles):
    src = make(tmp_path)
    out = tmp_path / "engines"
    for extra in ((), ("--int8", "--calib-data", "synth", "--calib-n", "2")):
        code, err = _cli(capsys, "build-engine", "--onnx", str(src), "--out", str(out), *extra)
        _assert_one_line(code, err, *needles)
        assert "TensorRT is not installed" not in err and "written and audited" not in err
    assert not out.exists()


def _with_pose_joints(path: Path, joints: int, tail: int = 3, **meta: str) -> Path:
    """A constant model with the optional ``pose_joints [N, joints, tail]`` output, labelled by
    ``meta`` (``hmrt.*`` keys with ``_`` for ``.``: ``hmrt_pose_joints_units=...``)."""
    constant_model(path, {**GOOD, "pose_joints": [joints, tail]})
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({k.replace("_", ".", 1): v for k, v in meta.items()})
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def test_pose_joints_are_optional_and_mapped_to_the_full_image(tmp_path):
    """A model with ``pose_joints`` (x, y crop pixels, z metres) loads, and the Result carries
    them in full-image pixels; a model without them gives None, as before."""
    names = ",".join(f"j{i}" for i in range(18))
    path = _with_pose_joints(
        tmp_path / "pose.onnx", 18, hmrt_pose_joints="hemlets18", hmrt_pose_joint_names=names,
        hmrt_pose_joints_units="crop_px,crop_px,m_root_relative",
    )  # fmt: skip
    rec = Reconstructor(path, backend="onnxruntime-cpu", detector="none")
    res = rec(blob_frame(), bbox=(100, 40, 220, 200))
    assert rec.info.pose_joint_set == "hemlets18" and len(rec.info.pose_joint_names) == 18
    assert res.pose_joints.shape == (18, 3) and res.pose_joint_names[17] == "j17"
    # The crop's pixel (0, 0) is the box's corner; z (0 m) stays as it is.
    x0, y0 = res.bbox[:2]
    assert np.allclose(res.pose_joints, [x0, y0, 0.0], atol=1e-3), (res.pose_joints[0], res.bbox)
    rec.close()
    plain = Reconstructor(constant_model(tmp_path / "plain.onnx", GOOD), backend="onnxruntime-cpu",
                          detector="none")  # fmt: skip
    res = plain(blob_frame(), bbox=(100, 40, 220, 200))
    assert res.pose_joints is None and "pose_joints" not in res.to_json()
    plain.close()


def test_pose_joints_contract_is_checked(tmp_path):
    """Wrong units, a joint count that disagrees with the names, or 2D joints are refused."""
    bad_units = _with_pose_joints(tmp_path / "u.onnx", 18, hmrt_pose_joints_units="normalised")
    with pytest.raises(ModelLoadError, match="pose_joints_units"):
        Reconstructor(bad_units, backend="onnxruntime-cpu", detector="none")
    few = _with_pose_joints(tmp_path / "n.onnx", 18, hmrt_pose_joint_names="a,b,c")
    with pytest.raises(ModelLoadError, match="pose_joints has 18 joints"):
        Reconstructor(few, backend="onnxruntime-cpu", detector="none")
    with pytest.raises(ModelLoadError, match=r"pose_joints has shape"):
        check_output_shapes("m", {"pose_joints": ["N", 18, 2]})
    check_output_shapes("m", {"joints3d": ["N", 24, 3], "pose_joints": ["N", 18, 3]})  # own P
