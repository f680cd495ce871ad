"""``hmrt run --save`` and the other writing commands under faults, on real files and real
subprocesses: an unwritable or full output is one line naming the user's path (exit code 2);
SIGTERM/SIGHUP clean up like Ctrl-C; a failed run leaves no new folder; a truncated photo is
an error naming it; a single image gives a picture and a folder of photos one picture each, at
its own size."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model, write_blob_video

from hmrt.cli import main
from hmrt.runtime.errors import InputError, SourceError
from hmrt.runtime.sources import open_source, truncation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    return {
        "model": make_blob_model(d / "blob.onnx"),
        "video": write_blob_video(d / "walk.avi", frames=24, width=320, height=240),
        "dir": d,
    }


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, *needles: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hmrt: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert ".part" not in lines[0], lines[0]
    return lines[0]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def _run_args(files, source, save) -> list[str]:
    return ["run", "--model", str(files["model"]), "--source", str(source), "--save", str(save),
            "--backend", "onnxruntime-cpu", "--threads", "1"]  # fmt: skip


# -- 1: unwritable outputs --------------------------------------------------------------------
def test_save_into_proc_or_under_a_file_is_one_line(files, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    for save, needle in [
        ("/proc/hmrt_out", "/proc"),  # a virtual file system: root cannot write there either
        (str(a_file / "out"), "is a file, not a folder"),
        (str(a_file), "not a folder"),
    ]:
        code, err = _run(_run_args(files, files["video"], save), capsys)
        _one_line(code, err, f"--save {save}", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_save_into_read_only_folder(files, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; /proc and file-as-folder cover the check")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _run(_run_args(files, files["video"], ro / "out"), capsys)
        _one_line(code, err, str(ro / "out"), "no permission")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    "argv",
    [
        ["body", "import-smpl", "SMPL_NEUTRAL.pkl", "--out", "/proc/hmrt/body.npz"],
        ["calibrate", "--onnx", "m.onnx", "--data", "synth", "--out", "/proc/hmrt/m.int8.onnx"],
        ["export", "--model", "danet", "--out", "/proc/hmrt/danet.onnx"],
        ["build-engine", "--onnx", "m.onnx", "--out", "/proc/hmrt/m.engine"],
    ],
    ids=["body-import-smpl", "calibrate", "export", "build-engine"],
)
def test_writing_commands_check_the_output_first(argv, capsys):
    """Before any work (the input files here do not even exist): one line naming --out."""
    code, err = _run(argv, capsys)
    _one_line(code, err, f"--out {argv[-1]}", "cannot write")


def test_full_disk_is_one_line_and_leaves_nothing(files, tmp_path):
    """A real full disk: a 96 KiB tmpfs in a private mount namespace (needs unshare and the
    right to mount; skipped elsewhere)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = (
        f"mount -t tmpfs -o size=96k tmpfs {mnt} || exit 99; "
        f"{sys.executable} -m hmrt {' '.join(_run_args(files, files['video'], mnt / 'out'))}; "
        f"echo rc=$?; ls -A {mnt}"
    )
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    if proc.returncode == 99 or "rc=" not in proc.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    out = proc.stdout.split("rc=", 1)[1].split()
    assert out[0] == "2", proc.stderr
    _one_line(2, proc.stderr, f"{mnt / 'out'}", "no space left")
    assert out[1:] == [], f"left in the full disk: {out[1:]}"


# -- 3 and 8: signals and a failed run leave nothing -----------------------------------------
@pytest.fixture(scope="module")
def long_video(files):
    return write_blob_video(files["dir"] / "long.avi", frames=3000, width=160, height=120)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])  # fmt: skip
def test_signal_mid_run_leaves_no_part_files(files, long_video, tmp_path, sig):
    parent = tmp_path / "parent"
    parent.mkdir()
    save = parent / "new" / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hmrt", *_run_args(files, long_video, save)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (save.is_dir() and _hidden(save)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        assert _hidden(save), "the run never started writing"
        time.sleep(0.5)  # well inside the run: frames are being written
        assert proc.poll() is None, "the run ended before the signal: make the video longer"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert list(parent.iterdir()) == [], list(parent.rglob("*"))  # no .part, no new folders


def test_signal_handlers_respect_nohup_and_are_restored():
    from hmrt.cli import _terminate_like_ctrl_c

    before_term = signal.getsignal(signal.SIGTERM)
    before_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with _terminate_like_ctrl_c():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before_term
        assert signal.getsignal(signal.SIGTERM) is before_term
    finally:
        signal.signal(signal.SIGHUP, before_hup)


def test_failed_run_removes_only_the_folders_it_created(files, tmp_path, capsys):
    cut = tmp_path / "cut.avi"
    data = files["video"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, err = _run(_run_args(files, cut, tmp_path / "a" / "b" / "out"), capsys)
    _one_line(code, err, "truncated")
    assert not (tmp_path / "a").exists()
    mine = tmp_path / "mine"
    mine.mkdir()  # the user's folder: kept, and left as it was
    code, err = _run(_run_args(files, cut, mine), capsys)
    _one_line(code, err, "truncated")
    assert mine.is_dir() and list(mine.iterdir()) == []


# -- 9: truncated photos ---------------------------------------------------------------------
def _jpeg(progressive: bool = False) -> bytes:
    flags = [cv2.IMWRITE_JPEG_QUALITY, 90]
    if progressive:
        flags += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    ok, buf = cv2.imencode(".jpg", blob_frame(), flags)
    assert ok
    return buf.tobytes()


def test_truncation_detection_on_real_files(tmp_path):
    cases = {
        "base.jpg": (_jpeg(), None),
        "prog.jpg": (_jpeg(progressive=True), None),
        "padded.jpg": (_jpeg() + b"\x00" * 64 + b"trailing data", None),  # after the EOI: fine
        "cut.jpg": (_jpeg()[:-600], "JPEG"),
        "cut_prog.jpg": (_jpeg(progressive=True)[:-300], "JPEG"),
        "no_eoi.jpg": (_jpeg()[:-2], "JPEG"),
        "ok.png": (cv2.imencode(".png", blob_frame())[1].tobytes(), None),
        "cut.png": (cv2.imencode(".png", blob_frame())[1].tobytes()[:-20], "PNG"),
    }
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        reason = truncation(tmp_path / name)
        assert (reason is None) == (kind is None), (name, reason)
        if kind:
            assert kind in reason
            with pytest.raises(SourceError, match=f"{name}: the image is truncated"):
                list(open_source(str(tmp_path / name)))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_photo_in_folder_is_an_error(files, tmp_path, capsys, ext):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}{ext}"), blob_frame(320, 240, (100 + 40 * i, 120)))
    data = (folder / f"001{ext}").read_bytes()
    (folder / f"001{ext}").write_bytes(data[: len(data) * 2 // 3])
    save = tmp_path / "out"
    code, err = _run(_run_args(files, folder, save), capsys)
    _one_line(code, err, f"001{ext}", "truncated", "copy it again or remove it")
    assert not save.exists()


# -- 12: pictures in, pictures out -----------------------------------------------------------
def test_single_image_gives_a_picture_without_fps(files, tmp_path, capsys):
    from hmrt.runtime import Reconstructor
    from hmrt.runtime.video_job import process_source

    image = blob_frame(320, 240, (200, 130))
    for ext in (".png", ".jpg"):
        src = tmp_path / f"photo{ext}"
        cv2.imwrite(str(src), image)
        save = tmp_path / f"cli{ext}"
        code, err = _run(_run_args(files, src, save), capsys)
        assert code == 0, err
        names = sorted(p.name for p in save.iterdir())
        assert names == [f"annotated{ext}", "results.jsonl", "results.npz"], names
        assert cv2.imread(str(save / f"annotated{ext}")).shape == image.shape
        # With the person pinned by a box (found: no "no person" label either), the top-left
        # corner, where the FPS line of a video goes, is the photo itself.
        save = tmp_path / f"job{ext}"
        with Reconstructor(files["model"], "onnxruntime-cpu") as rec:
            job = process_source(rec, open_source(str(src)), save=save, progress=False,
                                 bbox=(170, 70, 230, 190))  # fmt: skip
        assert job.files[0] == save / f"annotated{ext}"
        out = cv2.imread(str(job.files[0]))
        corner = np.abs(out[:40, :120].astype(int) - image[:40, :120].astype(int))
        assert corner.mean() < (0.5 if ext == ".png" else 3.0), corner.mean()


def test_folder_of_photos_keeps_each_size(files, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = {"a.png": (320, 240), "b.jpg": (200, 400), "c.png": (640, 360)}
    for name, (w, h) in sizes.items():
        cv2.imwrite(str(folder / name), blob_frame(w, h, (w / 2, h / 2), (w / 8, h / 2)))
    save = tmp_path / "out"
    code, err = _run([*_run_args(files, folder, save), "--independent"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in save.iterdir()) == ["annotated", "results.jsonl", "results.npz"]
    assert sorted(p.name for p in (save / "annotated").iterdir()) == sorted(sizes)
    for name, (w, h) in sizes.items():
        assert cv2.imread(str(save / "annotated" / name)).shape == (h, w, 3), name


def test_pictures_of_a_folder_carry_no_fps_line(files, tmp_path):
    from hmrt.runtime import Reconstructor
    from hmrt.runtime.video_job import process_source

    folder = tmp_path / "photos"
    folder.mkdir()
    image = blob_frame(320, 240, (200, 130))
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(folder / name), image)
    save = tmp_path / "out"
    with Reconstructor(files["model"], "onnxruntime-cpu") as rec:
        process_source(rec, open_source(str(folder)), save=save, progress=False,
                       bbox=(170, 70, 230, 190), independent=True)  # fmt: skip
    for name in ("a.png", "b.png", "c.png"):  # the top-left corner is the photo itself
        out = cv2.imread(str(save / "annotated" / name))
        corner = np.abs(out[:40, :120].astype(int) - image[:40, :120].astype(int))
        assert corner.mean() < 0.5, (name, corner.mean())


# -- process_source(bbox=...) ----------------------------------------------------------------
def test_process_source_with_a_fixed_box(files, tmp_path):
    from hmrt.runtime import Reconstructor
    from hmrt.runtime.video_job import process_source

    box = (100.0, 40.0, 220.0, 200.0)
    with Reconstructor(files["model"], "onnxruntime-cpu") as rec:
        job = process_source(rec, open_source(str(files["video"])), save=tmp_path / "o",
                             progress=False, bbox=box, max_frames=5)  # fmt: skip
        with pytest.raises(InputError, match="x0,y0,x1,y1"):
            process_source(rec, open_source(str(files["video"])), bbox=(5, 5, 1, 1))
    assert job.report.frames == 5
    rows = [json.loads(r) for r in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert {r["roi_source"] for r in rows} == {"bbox"}
    with np.load(tmp_path / "o" / "results.npz") as npz:
        assert np.allclose(npz["bbox"], npz["bbox"][0])  # the same crop on every frame
