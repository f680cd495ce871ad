"""Rotation conversions: numpy (runtime) and torch (train) twins, round trips, edge angles, ONNX."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hmrt.runtime import rotations as nr
from hmrt.train import rotations as tr

FUNCS = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
]


def _axis_angles(rng: np.random.Generator) -> np.ndarray:
    """Random rotation vectors plus the hard cases: angles near 0 and near pi."""
    axes = rng.normal(size=(12, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-8, 1e-5, 1e-3, 9.9e-3, 1.01e-2, 0.5])
    near_pi = np.pi - np.array([0.0, 1e-9, 1e-6, 1e-3])
    special = np.concatenate([angles, near_pi])[:, None, None] * axes[None]
    generic = rng.normal(size=(200, 3))
    return np.concatenate([special.reshape(-1, 3), generic])


def _rotations(rng: np.random.Generator) -> np.ndarray:
    return nr.axis_angle_to_matrix(_axis_angles(rng))


def _inputs(name: str, rng: np.random.Generator) -> np.ndarray:
    if name.startswith("matrix"):
        return _rotations(rng)
    if name.startswith("quaternion"):
        return rng.normal(size=(100, 4))
    if name.startswith("rot6d"):
        return rng.normal(size=(100, 6))
    return _axis_angles(rng)


def test_axis_angle_to_matrix_matches_scipy_and_is_orthonormal():
    spatial = pytest.importorskip("scipy.spatial.transform")
    aa = _axis_angles(np.random.default_rng(0))
    rot = nr.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(rot, spatial.Rotation.from_rotvec(aa).as_matrix(), atol=1e-14)
    np.testing.assert_allclose(
        rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-14
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-14)


def test_matrix_to_axis_angle_round_trip_near_zero_and_pi():
    aa = _axis_angles(np.random.default_rng(1))
    back = nr.matrix_to_axis_angle(nr.axis_angle_to_matrix(aa))
    angle = np.linalg.norm(aa, axis=1, keepdims=True)
    # angles above pi come back as the same rotation the short way round: 2 pi - t, -axis
    aa = np.where(angle > np.pi, aa * (1.0 - 2.0 * np.pi / np.maximum(angle, 1e-300)), aa)
    # Below pi the rotation vector is unique; at pi, v and -v are the same rotation.
    below = np.linalg.norm(aa, axis=1) < np.pi - 1e-5
    np.testing.assert_allclose(back[below], aa[below], atol=1e-12)
    err = np.minimum(np.abs(back - aa).max(1), np.abs(back + aa).max(1))
    assert err.max() < 1e-7
    assert np.linalg.norm(back, axis=1).max() <= np.pi + 1e-12


def test_quaternion_and_6d_round_trips():
    rng = np.random.default_rng(2)
    rot = _rotations(rng)
    quat = nr.matrix_to_quaternion(rot)
    assert (quat[:, 0] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(nr.quaternion_to_matrix(quat), rot, atol=1e-14)
    np.testing.assert_allclose(nr.rot6d_to_matrix(nr.matrix_to_rot6d(rot)), rot, atol=1e-14)
    aa = _axis_angles(rng)
    rot_aa = nr.axis_angle_to_matrix(aa)
    q = nr.axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(nr.quaternion_to_matrix(q), rot_aa, atol=1e-14)
    np.testing.assert_allclose(
        nr.quaternion_to_axis_angle(nr.matrix_to_quaternion(rot_aa)),
        nr.matrix_to_axis_angle(rot_aa),
        atol=1e-14,
    )
    # scipy is an independent reference for scalar-first quaternions (it is scalar-last)
    spatial = pytest.importorskip("scipy.spatial.transform")
    ref = spatial.Rotation.from_matrix(rot).as_quat()[:, [3, 0, 1, 2]]
    ref *= np.where(ref[:, :1] < 0, -1.0, 1.0)
    # at w = 0 both q and -q have w >= 0: compare up to sign
    err = np.minimum(np.abs(quat - ref).max(1), np.abs(quat + ref).max(1))
    assert err.max() < 1e-12


def test_6d_layout_is_first_two_columns():
    rot = _rotations(np.random.default_rng(3))[:10]
    six = nr.matrix_to_rot6d(rot)
    np.testing.assert_array_equal(six.reshape(-1, 3, 2), rot[:, :, :2])


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_6d_of_non_orthogonal_input_is_a_proper_rotation(lib):
    x = np.random.default_rng(4).normal(size=(500, 6)) * 3.0
    if lib == "numpy":
        rot = nr.rot6d_to_matrix(x)
    else:
        rot = tr.rot6d_to_matrix(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12
    )
    # the first column keeps the direction of a1
    a1 = x.reshape(-1, 3, 2)[:, :, 0]
    np.testing.assert_allclose(
        rot[:, :, 0], a1 / np.linalg.norm(a1, axis=1, keepdims=True), atol=1e-12
    )


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_and_torch_agree(name, dtype):
    x = _inputs(name, np.random.default_rng(5)).astype(dtype)
    ref = getattr(nr, name)(x)
    out = getattr(tr, name)(torch.from_numpy(x)).numpy()
    assert ref.dtype == dtype and out.dtype == dtype
    atol = 1e-12 if dtype == np.float64 else 2e-6
    if name.endswith("quaternion"):  # at 180 degrees w ~ 0 and q, -q are both canonical
        err = np.minimum(np.abs(out - ref).max(-1), np.abs(out + ref).max(-1))
        assert err.max() < atol
    else:
        np.testing.assert_allclose(out, ref, atol=atol)


def test_geodesic_distance_is_the_relative_angle():
    rng = np.random.default_rng(6)
    aa = _axis_angles(rng)
    a = nr.axis_angle_to_matrix(rng.normal(size=aa.shape))
    b = a @ nr.axis_angle_to_matrix(aa)  # b = a * delta, so the distance is |delta|
    expected = np.linalg.norm(aa, axis=1)
    expected = np.where(expected > np.pi, 2 * np.pi - expected, expected)
    dist = nr.geodesic_distance(a, b)
    np.testing.assert_allclose(dist, expected, atol=1e-6)  # floor of 5e-7 rad near 0
    np.testing.assert_allclose(dist[expected > 1e-3], expected[expected > 1e-3], atol=1e-12)
    tdist = tr.geodesic_distance(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(tdist, dist, atol=1e-12)


def test_torch_gradients_are_finite_at_the_singular_points():
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    rot = tr.axis_angle_to_matrix(zero)
    rot.sum().backward()
    assert torch.isfinite(zero.grad).all()
    # d R / d aa at 0 is the skew-symmetric generator: dR[0,1]/d aa_z = -1
    z = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    tr.axis_angle_to_matrix(z)[0, 1].backward()
    np.testing.assert_allclose(z.grad.numpy(), [0.0, 0.0, -1.0], atol=1e-12)
    for fn in (tr.matrix_to_axis_angle, tr.matrix_to_quaternion, tr.matrix_to_rot6d):
        eye = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
        fn(eye).sum().backward()
        assert torch.isfinite(eye.grad).all(), fn.__name__
    eye = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
    tr.geodesic_distance(eye, torch.eye(3, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(eye.grad).all()
    six = torch.zeros(2, 6, dtype=torch.float64)
    six[:, 0] = 1.0
    six[:, 3] = 1.0
    six.requires_grad_(True)
    tr.rot6d_to_matrix(six).sum().backward()
    assert torch.isfinite(six.grad).all()


class _AllConversions(torch.nn.Module):
    """Every conversion in one graph, so one export covers them all."""

    def forward(self, aa, rot, quat, six):
        return (
            tr.axis_angle_to_matrix(aa),
            tr.axis_angle_to_quaternion(aa),
            tr.matrix_to_axis_angle(rot),
            tr.matrix_to_quaternion(rot),
            tr.matrix_to_rot6d(rot),
            tr.quaternion_to_axis_angle(quat),
            tr.quaternion_to_matrix(quat),
            tr.rot6d_to_matrix(six),
            tr.geodesic_distance(rot, tr.quaternion_to_matrix(quat)),
        )


BANNED_OPS = {
    "Einsum",
    "ScatterND",
    "ScatterElements",
    "Pad",
    "ArgMax",
    "OneHot",
    "NonZero",
    "Loop",
    "If",
}


def _export_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    aa = _axis_angles(rng)[:n].astype(np.float32)
    return {
        "aa": aa,
        "rot": nr.axis_angle_to_matrix(aa[::-1].copy()).astype(np.float32),
        "quat": rng.normal(size=(n, 4)).astype(np.float32),
        "six": rng.normal(size=(n, 6)).astype(np.float32),
    }


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_torch_rotations_export_to_onnx_opset17_plain_ops(tmp_path, dynamo):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    names = ["aa", "rot", "quat", "six"]
    outputs = [f"out{i}" for i in range(9)]
    example = {k: torch.from_numpy(v) for k, v in _export_inputs(8, 7).items()}
    path = tmp_path / "rotations.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                _AllConversions(), tuple(example.values()), path, dynamo=True, opset_version=17,
                input_names=names, output_names=outputs, external_data=False,
                dynamic_shapes={k: {0: batch} for k in names},
            )  # fmt: skip
        else:
            torch.onnx.export(
                _AllConversions(), tuple(example.values()), path, dynamo=False, opset_version=17,
                input_names=names, output_names=outputs,
                dynamic_axes={k: {0: "batch"} for k in names + outputs},
            )  # fmt: skip
    model = onnx.load(path)
    ops = {node.op_type for node in model.graph.node}
    assert not ops & BANNED_OPS, ops & BANNED_OPS
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = _export_inputs(len(_axis_angles(np.random.default_rng(0))), 8)  # another batch size
    got = session.run(None, feeds)
    ref = [
        nr.axis_angle_to_matrix(feeds["aa"]),
        nr.axis_angle_to_quaternion(feeds["aa"]),
        nr.matrix_to_axis_angle(feeds["rot"]),
        nr.matrix_to_quaternion(feeds["rot"]),
        nr.matrix_to_rot6d(feeds["rot"]),
        nr.quaternion_to_axis_angle(feeds["quat"]),
        nr.quaternion_to_matrix(feeds["quat"]),
        nr.rot6d_to_matrix(feeds["six"]),
        nr.geodesic_distance(feeds["rot"], nr.quaternion_to_matrix(feeds["quat"])),
    ]
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape, i
        if i in (1, 2, 3):  # at exactly pi, v and -v (q and -q) are both right
            err = np.minimum(np.abs(g - r).max(-1), np.abs(g + r).max(-1))
            assert err.max() < 1e-5, i
        else:
            np.testing.assert_allclose(g, r, atol=1e-5, err_msg=f"output {i}")
