"""The synthetic generator: determinism, sample contract, and labels consistent with each other."""

from __future__ import annotations

import numpy as np
import pytest
from body_helpers import write_synthetic_body
from data_helpers import real_body_path, write_parts_body

from hmrt.runtime import camera
from hmrt.runtime.body import BodyModel
from hmrt.runtime.errors import InputError
from hmrt.runtime.rotations import axis_angle_to_matrix
from hmrt.train.data.synth import SynthConfig, SyntheticGenerator

EXPECTED = {
    "image": ((224, 224, 3), np.uint8),
    "mask": ((224, 224), np.uint8),
    "parts": ((224, 224), np.uint8),
    "uv": ((224, 224, 2), np.float32),
    "cont_uv": ((224, 224, 2), np.float32),
    "occluder_mask": ((224, 224), np.uint8),
    "joints2d": ((24, 3), np.float32),
    "joints_visible": ((24,), np.uint8),
    "joints3d": ((24, 3), np.float32),
    "rotmats": ((24, 3, 3), np.float32),
    "pose": ((72,), np.float32),
    "betas": ((10,), np.float32),
    "transl": ((3,), np.float32),
    "K": ((3, 3), np.float32),
    "bbox": ((4,), np.float32),
    "center": ((2,), np.float32),
    "scale": ((), np.float32),
}


@pytest.fixture(scope="module")
def body_path(tmp_path_factory):
    return str(write_parts_body(tmp_path_factory.mktemp("body") / "tiny.npz"))


@pytest.fixture(scope="module")
def gen(body_path):
    return SyntheticGenerator(SynthConfig(body_path=body_path), seed=7)


@pytest.fixture(scope="module")
def samples(gen):
    return [gen.sample(i) for i in range(12)]


def test_deterministic_per_seed_and_index(gen, body_path, samples):
    again = SyntheticGenerator(SynthConfig(body_path=body_path), seed=7).sample(3)
    for key, value in samples[3].items():
        np.testing.assert_array_equal(value, again[key], err_msg=key)
    assert not np.array_equal(samples[3]["image"], samples[4]["image"])
    other_seed = SyntheticGenerator(SynthConfig(body_path=body_path), seed=8).sample(3)
    assert not np.array_equal(samples[3]["pose"], other_seed["pose"])


def test_keys_shapes_dtypes(gen, samples):
    n_verts = gen.body.n_verts
    for s in samples[:3]:
        for key, (shape, dtype) in EXPECTED.items():
            assert np.shape(s[key]) == shape, key
            assert np.asarray(s[key]).dtype == dtype, key
        assert s["vertices"].shape == (n_verts, 3) and s["vertices"].dtype == np.float32


def test_labels_are_consistent(gen, samples):
    for s in samples:
        # 2D joints are the projection of the 3D joints; the flag says "inside the image".
        uv = camera.project(s["joints3d"], s["K"])
        np.testing.assert_allclose(s["joints2d"][:, :2], uv, atol=1e-3)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < 224) & (uv[:, 1] >= 0) & (uv[:, 1] < 224)
        np.testing.assert_array_equal(s["joints2d"][:, 2] > 0, inside)
        assert np.all(s["joints_visible"] <= s["joints2d"][:, 2])
        # Dense maps agree with each other.
        np.testing.assert_array_equal(s["mask"] > 0, s["parts"] > 0)
        assert s["parts"].max() <= 24
        assert np.all(s["uv"][s["mask"] == 0] == 0) and np.all(s["cont_uv"][s["mask"] == 0] == 0)
        assert s["uv"].min() >= 0.0 and s["uv"].max() <= 1.0
        assert not np.any(s["mask"][s["occluder_mask"] > 0])
        # All vertices project inside the box, which is tight around them.
        p = camera.project(s["vertices"], s["K"])
        x0, y0, x1, y1 = s["bbox"]
        assert np.all((p[:, 0] >= x0 - 1e-3) & (p[:, 0] <= x1 + 1e-3))
        assert np.all((p[:, 1] >= y0 - 1e-3) & (p[:, 1] <= y1 + 1e-3))
        np.testing.assert_allclose(s["center"], [(x0 + x1) / 2, (y0 + y1) / 2], rtol=1e-6)
        assert s["scale"] == pytest.approx(1.2 * max(x1 - x0, y1 - y0) / 200, rel=1e-5)
        # The rendered person lies in the box.
        ys, xs = np.nonzero(s["mask"])
        if len(xs):
            assert xs.min() + 0.5 >= x0 - 1 and xs.max() + 0.5 <= x1 + 1
            assert ys.min() + 0.5 >= y0 - 1 and ys.max() + 0.5 <= y1 + 1
        # Vertices and joints are the body model posed by rotmats/betas, plus transl.
        verts, joints = gen.body.forward(s["rotmats"][None], s["betas"][None])
        np.testing.assert_allclose(verts[0] + s["transl"], s["vertices"], atol=1e-5)
        np.testing.assert_allclose(joints[0] + s["transl"], s["joints3d"], atol=1e-5)
        np.testing.assert_allclose(
            axis_angle_to_matrix(s["pose"].reshape(24, 3).astype(np.float64)),
            s["rotmats"],
            atol=1e-5,
        )
        # In front of the camera, upright-ish: head above the pelvis in the image for most.
        assert np.all(s["vertices"][:, 2] > 0.3)


def test_people_are_in_view_and_varied(samples):
    sizes, visible = [], []
    for s in samples:
        x0, y0, x1, y1 = s["bbox"]
        sizes.append(max(x1 - x0, y1 - y0) / 224)
        visible.append(s["mask"].mean())
        assert x1 > 0 and y1 > 0 and x0 < 224 and y0 < 224
    assert 0.3 < np.median(sizes) < 1.0
    assert min(visible) > 0.005
    assert np.std([s["image"].mean() for s in samples]) > 2.0  # appearance/background vary


@pytest.mark.skipif(real_body_path() is None, reason="bundled body model not built yet")
def test_real_body_sample():
    s = SyntheticGenerator(SynthConfig(), seed=0).sample(0)
    np.testing.assert_array_equal(s["mask"] > 0, s["parts"] > 0)
    assert set(np.unique(s["parts"])) - {0}
    np.testing.assert_allclose(
        s["joints2d"][:, :2], camera.project(s["joints3d"], s["K"]), atol=1e-3
    )


def test_surface_data_required(tmp_path):
    path = write_synthetic_body(tmp_path / "bare.npz", surface=False)
    with pytest.raises(InputError, match="surface"):
        SyntheticGenerator(SynthConfig(), body=BodyModel(path))
