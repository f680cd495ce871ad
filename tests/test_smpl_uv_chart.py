"""``hmrt body import-smpl FILE --uv-chart CHART``: a continuous UV chart (DecoMR's BF chart of
SMPL, which users bring) stored in the converted body in hmrt's UV convention, refused when its
topology is not the imported mesh's, and used by DecoMR for its UV tables.

No SMPL file or DecoMR data exists here, so the SMPL file is the synthetic SMPL-layout body of
``body_helpers`` (504 vertices, 672 faces: tubes along the skeleton) and the chart is procedural:
every tube unrolled into its own rectangle, cut along one line (seam vertices get two texture
coordinates), written as DecoMR's OBJ is (``v``, ``vt u v`` with ``v`` growing downward,
``f v/vt`` triangles).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from body_helpers import RING, STATIONS, synthetic_body_arrays

from hmrt.cli import main
from hmrt.runtime.body import BodyModel

SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "weights", "f", "J_regressor", "kintree_table")
TUBE_VERTS = RING * len(STATIONS)
GRID = (6, 5)  # tube rectangles per row, rows


def procedural_chart(faces: np.ndarray, n_verts: int) -> tuple[np.ndarray, np.ndarray]:
    """A chart of the synthetic body in DecoMR's convention: ``vt (T,2)`` (``v`` down), ``ft``.

    Tube ``t`` fills cell ``(t % 6, t // 6)`` of a 6 x 5 grid; ring position ``k`` -> ``u``,
    station ``s`` -> ``v``. The cut runs along ``k = 0``, whose vertices get a second copy at
    ``k = RING`` for the faces that close the ring.
    """
    n_tubes = n_verts // TUBE_VERTS
    cols, rows = GRID
    width, height = 0.8 / cols, 0.8 / rows
    vt = []
    for t in range(n_tubes):
        u0, v0 = (t % cols + 0.1) / cols, (t // cols + 0.1) / rows
        for s in range(len(STATIONS)):
            for k in range(RING + 1):
                vt.append((u0 + width * k / RING, v0 + height * s / (len(STATIONS) - 1)))
    ft = np.empty_like(faces)
    for i, face in enumerate(faces):
        ring_pos = [(int(v) % TUBE_VERTS) % RING for v in face]
        for c, vertex in enumerate(face):
            tube, rest = divmod(int(vertex), TUBE_VERTS)
            s, k = divmod(rest, RING)
            if k == 0 and max(ring_pos) == RING - 1:  # the face that closes the ring
                k = RING
            ft[i, c] = tube * len(STATIONS) * (RING + 1) + s * (RING + 1) + k
    return np.array(vt), ft


def write_obj(
    path: Path,
    verts: np.ndarray,
    faces: np.ndarray,
    vt: np.ndarray,
    ft: np.ndarray,
    relative: bool = False,
) -> Path:
    """DecoMR's chart file layout: ``v`` lines, a blank line, ``vt`` lines, ``f v/vt`` lines
    (``relative``: negative OBJ indices, counted back from the last ``v`` / ``vt`` line)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts] + [""]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in vt]
    if relative:
        faces, ft = np.asarray(faces) - len(verts) - 1, np.asarray(ft) - len(vt) - 1
    lines += [
        "f " + " ".join(f"{a + 1}/{b + 1}" for a, b in zip(fv, fvt)) for fv, fvt in zip(faces, ft)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def smpl(tmp_path_factory) -> dict:
    """A synthetic SMPL pickle, its arrays and the procedural chart (``vt`` rounded as written)."""
    folder = tmp_path_factory.mktemp("smpl")
    arrays = synthetic_body_arrays(posedirs=True, surface=False)
    src = folder / "SMPL_NEUTRAL.pkl"
    src.write_bytes(pickle.dumps({k: arrays[k] for k in SMPL_KEYS}, protocol=2))
    vt, ft = procedural_chart(arrays["f"], len(arrays["v_template"]))
    chart = write_obj(folder / "chart.obj", arrays["v_template"], arrays["f"], vt, ft)
    return {"src": src, "arrays": arrays, "vt": np.round(vt, 6), "ft": ft, "chart": chart}


@pytest.fixture(scope="module")
def imported(smpl, tmp_path_factory) -> Path:
    """The synthetic SMPL imported with the OBJ chart (through the CLI)."""
    out = tmp_path_factory.mktemp("body") / "smpl.hmrt.npz"
    args = ["body", "import-smpl", str(smpl["src"]), "--uv-chart", str(smpl["chart"])]
    assert main([*args, "--out", str(out)]) == 0
    return out


def _expected_corners(smpl: dict) -> np.ndarray:
    """hmrt's UV of every face corner, ``(F,3,2)``: the OBJ's ``(u, 1 - v)``."""
    corners = smpl["vt"][smpl["ft"]]
    return np.stack([corners[..., 0], 1.0 - corners[..., 1]], axis=-1)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_chart_lands_in_hmrt_convention_with_provenance(smpl, imported, capsys):
    body = BodyModel(imported)
    got = body.cont_vt[body.cont_ft]
    np.testing.assert_allclose(got, _expected_corners(smpl), atol=1e-6)
    assert body.cont_vt.shape == (len(smpl["vt"]), 2) and body.cont_ft.shape == (672, 3)
    # cont_v2vt names one of each vertex's own texture coordinates
    corner_vt = {(int(v), int(t)) for v, t in zip(body.faces.ravel(), body.cont_ft.ravel())}
    assert all((v, int(t)) in corner_vt for v, t in enumerate(body.cont_v2vt))
    assert body.hash == BodyModel(imported).hash  # geometry untouched by the chart
    text = body.cont_provenance
    assert "chart.obj" in text and "sha256" in text and "(u, 1 - v)" in text
    assert "do not redistribute" in body.licence and "UV chart" in body.licence
    code, out, _ = _run(capsys, "body", "info", str(imported))
    assert code == 0 and "UV chart:         UV chart from chart.obj (sha256" in out
    assert "surface data:     cont_vt, cont_ft, cont_v2vt" in out


def test_import_without_chart_says_none(smpl, tmp_path, capsys):
    out = tmp_path / "plain.npz"
    code, stdout, _ = _run(capsys, "body", "import-smpl", str(smpl["src"]), "--out", str(out))
    assert code == 0 and "UV chart:         none (DecoMR needs one" in stdout
    assert BodyModel(out).cont_provenance is None


def test_texel_and_vertex_round_trip(smpl, imported):
    """A face's UV centroid in the OBJ's picture (row = v down) is that face in hmrt's UV raster,
    and the template's location map read back through DecoMR's table gives the vertices."""
    torch = pytest.importorskip("torch")
    from hmrt.runtime.render import uv_raster
    from hmrt.train.models.layers.uv_sample import UVToVertices, build_uv_tables

    body = BodyModel(imported)
    size = 256
    raster = uv_raster(body.cont_vt, body.cont_ft, size)
    centroid = smpl["vt"][smpl["ft"]].mean(axis=1)  # OBJ convention: v grows downward
    col = np.floor(centroid[:, 0] * size).astype(int)
    row = np.floor(centroid[:, 1] * size).astype(int)
    assert np.array_equal(raster.face_id[row, col], np.arange(len(body.faces)))

    tables = build_uv_tables(body, 128)
    verts = UVToVertices(tables)(torch.tensor(tables.ref_map)[None])[0].numpy()
    err = np.linalg.norm(verts - body.v_template, axis=1)
    assert err.mean() < 0.006 and err.max() < 0.02, (err.mean(), err.max())  # 3.6 / 13 mm


def _shuffled_chart(smpl: dict, folder: Path) -> Path:
    """The same chart with faces in another order and every face's corners rotated."""
    rng = np.random.default_rng(3)
    order = rng.permutation(len(smpl["ft"]))
    shift = rng.integers(0, 3, len(order))
    faces = np.stack([np.roll(smpl["arrays"]["f"][i], s) for i, s in zip(order, shift)])
    ft = np.stack([np.roll(smpl["ft"][i], s) for i, s in zip(order, shift)])
    return write_obj(folder / "shuffled.obj", smpl["arrays"]["v_template"], faces, smpl["vt"], ft)


def test_reordered_faces_and_npz_charts_give_the_same_arrays(smpl, imported, tmp_path, capsys):
    want = BodyModel(imported)
    raw = tmp_path / "raw_chart.npz"
    np.savez(raw, vt=smpl["vt"], ft=smpl["ft"], f=smpl["arrays"]["f"])
    obj_args = (smpl["arrays"]["v_template"], smpl["arrays"]["f"], smpl["vt"], smpl["ft"])
    for chart, note in (
        (_shuffled_chart(smpl, tmp_path), "faces reordered to SMPL's order"),
        (raw, "npz vt/ft"),
        (write_obj(tmp_path / "relative.obj", *obj_args, relative=True), "OBJ vt/f lines"),
        (imported, "there: UV chart from chart.obj"),  # another import's chart (male/female)
    ):
        out = tmp_path / f"{chart.stem}.hmrt.npz"
        args = ["body", "import-smpl", str(smpl["src"]), "--uv-chart", str(chart)]
        code, _, err = _run(capsys, *args, "--out", str(out))
        assert code == 0, err
        got = BodyModel(out)
        np.testing.assert_allclose(got.cont_vt[got.cont_ft], want.cont_vt[want.cont_ft], atol=1e-6)
        assert note in got.cont_provenance, got.cont_provenance


def _bad_chart(kind: str, smpl: dict, folder: Path) -> tuple[Path, str]:
    """A chart file with one defect and a word its one-line refusal must contain."""
    verts, faces, vt, ft = smpl["arrays"]["v_template"], smpl["arrays"]["f"], smpl["vt"], smpl["ft"]
    path = folder / f"{kind}.obj"
    if kind == "vertices":  # a chart of another mesh: one vertex more
        write_obj(path, np.concatenate([verts, verts[:1]]), faces, vt, ft)
        return path, "its mesh has 505 vertices"
    if kind == "faces":
        write_obj(path, verts, faces[:-1], vt, ft[:-1])
        return path, "it has 671 faces"
    if kind == "triangle":  # same counts, one face joins other vertices
        bad = faces.copy()
        bad[10, 0] = (bad[10, 0] + 100) % len(verts)
        write_obj(path, verts, bad, vt, ft)
        return path, "1 of SMPL's 672 faces are not in it (first: face 10"
    if kind == "no_vt":
        path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        return path, "no texture index"
    if kind == "outside":
        write_obj(path, verts, faces, vt * 1.5, ft)
        return path, "outside the unit square"
    path = folder / "paras_h0128_w0128_BF.npz"  # DecoMR's cached sampler tables
    np.savez(path, texcoords=vt, vt2v=np.zeros(len(vt), np.int64), vt_count=np.ones(len(verts)))
    return path, "smpl_boundry_free_template.obj in the same folder"


@pytest.mark.parametrize("kind", ["vertices", "faces", "triangle", "no_vt", "outside", "paras"])
def test_bad_chart_exits_2_with_one_line_and_writes_nothing(kind, smpl, tmp_path, capsys):
    chart, words = _bad_chart(kind, smpl, tmp_path)
    out = tmp_path / "out" / "smpl.hmrt.npz"
    args = ["body", "import-smpl", str(smpl["src"]), "--uv-chart", str(chart)]
    code, stdout, stderr = _run(capsys, *args, "--out", str(out))
    err = stderr.strip()
    assert code == 2 and "\n" not in err and not stdout, stderr
    assert err.startswith(f"hmrt: error: {chart}: ") and words in err, err
    if kind in ("vertices", "faces", "triangle"):
        assert "does not match the SMPL mesh being imported" in err
        assert "504 vertices and 672 faces" in err and "smpl_boundry_free_template.obj" in err
    assert not out.exists() and not list(tmp_path.rglob("*.part*"))


def test_missing_chart_file(smpl, tmp_path, capsys):
    args = ["body", "import-smpl", str(smpl["src"]), "--uv-chart", str(tmp_path / "nope.obj")]
    code, _, stderr = _run(capsys, *args, "--out", str(tmp_path / "o.npz"))
    assert code == 2 and "UV chart file not found" in stderr and not (tmp_path / "o.npz").exists()


def test_decomr_builds_its_uv_tables_from_the_imported_body(imported):
    torch = pytest.importorskip("torch")
    from hmrt.train.models import build
    from hmrt.train.models.decomr.model import reference_map
    from hmrt.train.models.layers.uv_sample import build_uv_tables

    body = BodyModel(imported)
    paper = build("decomr", "paper", body=imported, uv_convention="official")
    tables = build_uv_tables(body, paper.config.uv_res)
    assert torch.equal(paper.sampler.index, torch.tensor(tables.index))
    assert torch.equal(paper.sampler.weight, torch.tensor(tables.weight))
    ref = reference_map(body, paper.config.warp_res)
    assert torch.equal(paper.lnet.ref_map[0], torch.tensor(ref)) and np.abs(ref).max() > 0.1

    model = build("decomr", "edge", body=imported, uv_convention="official").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert out["vertices"].shape == (2, 504, 3) and torch.isfinite(out["vertices"]).all()


def test_official_transfer_lands_where_the_chart_holds_the_point(smpl, imported):
    """End to end in DecoMR's convention: pixels that predict a face's UV as the official CNet
    does (``V`` downward, the OBJ's numbers) and carry its 3D centroid are transferred by the
    ``uv_convention="official"`` warp onto texels whose reference map (built from the imported
    chart) holds that point; reading the same IUV in hmrt's convention lands a body away."""
    torch = pytest.importorskip("torch")
    from hmrt.train.models.decomr.lnet import FeatureWarp
    from hmrt.train.models.decomr.model import reference_map

    body = BodyModel(imported)
    uv = smpl["vt"][smpl["ft"]].mean(axis=1)  # the OBJ's numbers, as the released CNet predicts
    root = body.J_regressor[0] @ body.v_template
    centroid = body.v_template[body.faces].mean(axis=1) - root
    h, w = 24, 28  # one pixel per face
    iuv = torch.zeros(1, 3, h * w)
    iuv[0, 0, : len(uv)] = 1.0
    iuv[0, 1:, : len(uv)] = torch.tensor(uv.T, dtype=torch.float32)
    feature = torch.zeros(1, 3, h * w)
    feature[0, :, : len(uv)] = torch.tensor(centroid.T, dtype=torch.float32)
    ref = reference_map(body, 64)
    errors = {}
    for official in (True, False):
        warp = FeatureWarp((h, w), 64, 0.5, official=official)
        out = warp(iuv.reshape(1, 3, h, w), feature.reshape(1, 3, h, w))[0].numpy()
        hit = out[-1] > 0
        errors[official] = np.linalg.norm(out[:3][:, hit] - ref[:, hit], axis=0)
    assert errors[True].mean() < 0.02 and errors[True].max() < 0.05, errors[True].max()
    assert errors[False].mean() > 0.3  # the flip is what makes it right


def test_import_checkpoint_runs_on_the_imported_body(imported):
    """The official layout imported onto SMPL with the chart: the model builds with
    ``uv_convention="official"`` and the checkpoint points at that body file."""
    torch = pytest.importorskip("torch")
    import import_helpers

    from hmrt.export.import_checkpoint import import_official

    path = imported.parent / "h36m_up3d.pt"
    torch.save(import_helpers.cheap_state("decomr"), path)
    payload = import_official("decomr", path, body=imported)
    assert payload["model"]["config"]["uv_convention"] == "official"
    assert payload["train_config"]["body"] == str(imported.resolve())
