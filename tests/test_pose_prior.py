"""HKMR's pose prior: the poses are the synthetic engine's, the VAE learns them (its loss drops
and its frozen encoder gives sampled poses a far lower KL than random joint rotations), the
prior file round-trips and loads frozen, and ``hmrt train-prior`` writes its files atomically,
resumes, and refuses a bad ``--out`` with exit code 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hmrt.cli import main as hmrt_main
from hmrt.runtime.errors import InputError
from hmrt.train.prior import (
    PosePriorConfig,
    PosePriorEncoder,
    PosePriorVAE,
    load_pose_prior,
    read_pose_prior,
    save_pose_prior,
)
from hmrt.train.prior.data import engine_body_poses, random_rotation_poses

SMALL = PosePriorConfig(hidden=64, latent=8)


@pytest.fixture(scope="module")
def trained():
    """A small VAE after 150 steps on 448 engine poses; 64 held-out engine poses, 256 noise."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    poses = torch.from_numpy(engine_body_poses(512, seed=0))
    train, val = poses[:448], poses[448:]
    noise = torch.from_numpy(random_rotation_poses(256, seed=0))
    torch.manual_seed(0)
    vae = PosePriorVAE(SMALL)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = train[torch.randint(len(train), (64,), generator=g)]
        out = vae.loss(batch, kl_weight=5e-3)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
    vae.eval()
    yield vae, losses, val, noise
    torch.set_num_threads(old)


def test_engine_poses_are_the_synthetic_engines_body_poses():
    from hmrt.runtime.rotations import matrix_to_axis_angle
    from hmrt.train.data.synth import SyntheticGenerator

    poses = engine_body_poses(4, seed=3)
    assert poses.shape == (4, 23, 3) and poses.dtype == np.float32
    assert np.array_equal(poses, engine_body_poses(4, seed=3))  # deterministic in the seed
    engine = SyntheticGenerator(seed=3)
    rng = np.random.default_rng([3, 0x9051])
    for row in poses:
        _, rotmats, _, _ = engine.sample_body(rng, np.eye(3))
        assert np.allclose(row, matrix_to_axis_angle(rotmats[1:].astype(np.float64)), atol=1e-6)
    # Axis-angle is smooth on them: every joint angle well below pi.
    assert np.linalg.norm(poses, axis=-1).max() < math.radians(170.0)
    noise = random_rotation_poses(100, seed=0)
    assert noise.shape == (100, 23, 3) and np.linalg.norm(noise, axis=-1).max() <= math.pi + 1e-5


def test_vae_loss_drops_on_sampled_poses(trained):
    _, losses, _, _ = trained
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert np.isfinite(losses).all()
    assert last < 0.5 * first, (first, last)


def test_encoder_ranks_sampled_poses_above_random_rotations(trained):
    vae, _, val, noise = trained
    with torch.no_grad():
        kl_val = vae.encoder.kl(val)
        kl_noise = vae.encoder.kl(noise)
    assert float(kl_val.mean()) < 0.5 * float(kl_noise.mean())
    # Most noise poses score above the worst held-out engine pose.
    assert float((kl_noise > kl_val.max()).float().mean()) > 0.9
    # Shapes: any leading dimensions, (..., 23, 3) or (..., 69).
    mu, logvar = vae.encoder(val[:6].reshape(2, 3, 23, 3))
    assert mu.shape == logvar.shape == (2, 3, SMALL.latent)
    mu2, _ = vae.encoder(val[:6].reshape(6, 69))
    assert torch.allclose(mu.reshape(6, -1), mu2, atol=1e-6)
    with pytest.raises(ValueError, match="axis-angle"):
        vae.encoder(val[:2, :22])


def test_prior_file_round_trip_is_frozen_and_checked(trained, tmp_path):
    vae, _, val, _ = trained
    path = save_pose_prior(tmp_path / "p.pt", vae.encoder, {"trained_on": "test"}, {"x": 1.0})
    enc = load_pose_prior(path)
    assert isinstance(enc, PosePriorEncoder) and not enc.training
    assert not any(p.requires_grad for p in enc.parameters())
    assert torch.allclose(enc.kl(val), vae.encoder.kl(val), atol=1e-5)
    data = read_pose_prior(path)
    assert data["provenance"] == {"trained_on": "test"} and "decoder" not in data
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(InputError, match="not an hmrt pose-prior file"):
        load_pose_prior(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        load_pose_prior(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="folder"):
        load_pose_prior(tmp_path)


def test_prior_file_is_written_atomically(tmp_path, monkeypatch):
    """A failing write leaves neither the file nor a temporary behind; the old file survives."""
    enc = PosePriorEncoder(SMALL)
    path = save_pose_prior(tmp_path / "prior.pt", enc)
    before = path.read_bytes()

    def broken(obj, f, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(Exception, match="space"):
        save_pose_prior(path, enc)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior.pt"]


TINY = ["--poses", "64", "--val-poses", "16", "--batch-size", "32", "--hidden", "16",
        "--latent", "4", "--threads", "1", "--no-progress"]  # fmt: skip


def test_cli_trains_resumes_and_refuses_bad_outputs(tmp_path, capsys):
    run = tmp_path / "prior"
    assert hmrt_main(["train-prior", "--out", str(run), "--epochs", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "prior:" in out and "MB" in out
    names = sorted(p.name for p in run.iterdir())
    assert names == ["last.pt", "pose_prior.pt", "poses.npz", "train_log.csv"]  # no .part left
    rows = (run / "train_log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("step,epoch")
    data = read_pose_prior(run / "pose_prior.pt")
    assert data["config"]["hidden"] == 16 and data["metrics"]["epoch"] == 2
    assert "Apache-2.0" in data["provenance"]["license"]
    assert load_pose_prior(run / "pose_prior.pt").config.latent == 4
    poses = (run / "poses.npz").read_bytes()

    # --resume continues the same run (same poses) to the new --epochs.
    assert hmrt_main(["train-prior", "--out", str(run), "--resume", "--epochs", "3", *TINY]) == 0
    assert len((run / "train_log.csv").read_text().splitlines()) == 4
    assert read_pose_prior(run / "pose_prior.pt")["metrics"]["epoch"] == 3
    assert (run / "poses.npz").read_bytes() == poses
    capsys.readouterr()

    # An existing run without --resume, an --out that is a file, a resume of nothing,
    # a batch larger than the pose set: one line on stderr, exit code 2, nothing written.
    assert hmrt_main(["train-prior", "--out", str(run), "--epochs", "1", *TINY]) == 2
    assert "already holds a prior run" in capsys.readouterr().err
    afile = tmp_path / "a_file"
    afile.write_text("x")
    assert hmrt_main(["train-prior", "--out", str(afile), "--epochs", "1", *TINY]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not a folder" in err and afile.read_text() == "x"
    nothing = tmp_path / "nothing"
    assert hmrt_main(["train-prior", "--out", str(nothing), "--resume", *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err and not nothing.exists()
    args = ["train-prior", "--out", str(tmp_path / "big"), *TINY, "--batch-size", "128"]
    assert hmrt_main(args) == 2
    assert "larger than --poses" in capsys.readouterr().err
    assert not (tmp_path / "big").exists()
