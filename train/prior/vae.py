"""The pose-prior VAE of HKMR (research seed-hkmr.md §1.7): a variational auto-encoder of body
poses whose frozen encoder scores how plausible a predicted pose is.

HKMR trains the VAE once (the paper: on MoSh; hmrt: on the synthetic engine's poses, see
:mod:`hmrt.train.prior.data`), discards the decoder, and during HKMR training adds
``KL(q(z | theta_hat) || N(0, I))`` of every outer step's predicted body pose to the loss.

**Representation: 23 body joints as axis-angle, 69 numbers** (root excluded). It is what the
paper encodes ("the 69-D pose"), and what HKMR predicts, so the KL term needs no conversion
between the regressor and the encoder (a conversion would add its own gradient pathologies).
Axis-angle is discontinuous only at angles of pi, and no body joint of hmrt's pose sampler gets
near it (the largest joint angle in 20,000 draws is 150 degrees; the shoulders, elbows and knees
peak there): on the training distribution the encoding is smooth. The global orientation is left
out because it is the camera's and the scene's, not a property of a plausible body.

The **decoder** outputs a 6D rotation per joint (Gram-Schmidt to a matrix), and the
reconstruction error is the squared Frobenius distance of rotation matrices: both continuous
everywhere, so the VAE objective itself has no branch cut. The decoder only shapes the latent
space during training; the shipped prior is the encoder alone (:mod:`hmrt.train.prior.file`).

Architecture (our own, after the description of VPoser v1 in the research notes; no code from
it): encoder ``BN(69) -> FC(69, H) -> LeakyReLU(0.2) -> BN(H) -> Dropout -> FC(H, H) ->
LeakyReLU(0.2) -> (mu: FC(H, L), log sigma^2: FC(H, L))``, decoder ``FC(L, H) -> LeakyReLU ->
Dropout -> FC(H, H) -> LeakyReLU -> FC(H, 23 * 6)``; L = 32 as VPoser, H = 256 by default
(VPoser: 512, for the millions of AMASS poses; hmrt's sampler is a mixture around ~35 key
poses, which H = 256 reconstructs well, at a quarter of the cost and a ~0.4 MB encoder file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from hmrt.runtime.errors import InputError
from hmrt.train.rotations import axis_angle_to_matrix, rot6d_to_matrix

LOGVAR_RANGE = (-20.0, 10.0)
"""Clamp of the encoder's log-variance: keeps ``exp`` and the KL finite for any input (a
never-seen pose from an untrained regressor can drive the linear head anywhere)."""


@dataclass
class PosePriorConfig:
    """Shape of the VAE: ``joints`` body joints (axis-angle each), ``hidden`` units per layer,
    ``latent`` dimensions, ``dropout`` after the second normalisation / first decoder layer,
    ``leaky`` the LeakyReLU slope."""

    joints: int = 23
    hidden: int = 256
    latent: int = 32
    dropout: float = 0.1
    leaky: float = 0.2

    def __post_init__(self) -> None:
        for name in ("joints", "hidden", "latent"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"pose prior: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"pose prior: dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in the prior file)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PosePriorConfig:
        """Build from a (partial) dict; unknown keys are errors."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise InputError(
                f"unknown key(s) {bad} in the pose-prior config; known: {sorted(known)}"
            )
        return cls(**data)


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` summed over the last dimension (closed form
    ``0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)``), in nats, shape ``mu.shape[:-1]``."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class PosePriorEncoder(nn.Module):
    """``forward(pose) -> (mu, logvar)``: the posterior ``q(z | pose)`` of body poses.

    ``pose``: ``(..., joints, 3)`` or ``(..., joints * 3)`` axis-angle of the body joints (SMPL
    joints 1..23, parent-relative); any leading dimensions (HKMR's ``(N, T)``). Outputs
    ``(..., latent)`` each. Always float32 (autocast is
    switched off inside): the KL of HKMR's loss takes ``log`` and ``exp`` of its output.
    """

    def __init__(self, config: PosePriorConfig | None = None):
        super().__init__()
        c = self.config = config or PosePriorConfig()
        n_in = 3 * c.joints
        self.body = nn.Sequential(
            nn.BatchNorm1d(n_in),
            nn.Linear(n_in, c.hidden),
            nn.LeakyReLU(c.leaky),
            nn.BatchNorm1d(c.hidden),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.hidden),
            nn.LeakyReLU(c.leaky),
        )
        self.mu = nn.Linear(c.hidden, c.latent)
        self.logvar = nn.Linear(c.hidden, c.latent)

    def forward(self, pose: Tensor) -> tuple[Tensor, Tensor]:
        joints, latent = self.config.joints, self.config.latent
        if pose.shape[-2:] == (joints, 3):
            lead = pose.shape[:-2]
        elif pose.shape[-1] == 3 * joints:
            lead = pose.shape[:-1]
        else:
            raise ValueError(
                f"pose prior: expected (..., {joints}, 3) or (..., {3 * joints}) axis-angle, "
                f"got {tuple(pose.shape)}"
            )
        with torch.autocast(device_type=pose.device.type, enabled=False):
            h = self.body(pose.reshape(-1, 3 * joints).float())
            mu = self.mu(h).reshape(*lead, latent)
            logvar = self.logvar(h).clamp(*LOGVAR_RANGE).reshape(*lead, latent)
        return mu, logvar

    def kl(self, pose: Tensor) -> Tensor:
        """``KL(q(z | pose) || N(0, I))`` per pose ``(...)``, summed over the latent dimensions."""
        mu, logvar = self(pose)
        return kl_to_standard_normal(mu, logvar)


class PosePriorDecoder(nn.Module):
    """``forward(z) -> rotmats (N, joints, 3, 3)``: a latent code back to body-joint rotations."""

    def __init__(self, config: PosePriorConfig | None = None):
        super().__init__()
        c = self.config = config or PosePriorConfig()
        self.net = nn.Sequential(
            nn.Linear(c.latent, c.hidden),
            nn.LeakyReLU(c.leaky),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.hidden),
            nn.LeakyReLU(c.leaky),
            nn.Linear(c.hidden, 6 * c.joints),
        )

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z).reshape(z.shape[0], self.config.joints, 6)
        return rot6d_to_matrix(out)


@dataclass
class VaeLoss:
    """One batch of the VAE objective: ``total = mean(recon + kl_weight * kl)``; ``recon`` and
    ``kl`` are batch means of the per-pose sums (detached floats are for logging only)."""

    total: Tensor
    recon: Tensor
    kl: Tensor


class PosePriorVAE(nn.Module):
    """Encoder + decoder; :meth:`loss` is the (beta-weighted) negative ELBO of a batch of poses."""

    def __init__(self, config: PosePriorConfig | None = None):
        super().__init__()
        self.config = config or PosePriorConfig()
        self.encoder = PosePriorEncoder(self.config)
        self.decoder = PosePriorDecoder(self.config)

    def forward(self, pose: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(decoded rotmats, mu, logvar)``; the code is sampled (reparameterised) in training
        mode and is the mean in eval mode."""
        mu, logvar = self.encoder(pose)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z), mu, logvar

    def loss(self, pose: Tensor, kl_weight: float) -> VaeLoss:
        """``mean_n(||R_dec - R(pose)||_F^2 summed over joints + kl_weight * KL_n)``.

        The reconstruction is a per-pose sum over the joints' squared matrix differences (a
        Gaussian likelihood on the rotation matrices); ``kl_weight`` is beta of a beta-VAE.
        """
        target = axis_angle_to_matrix(pose.reshape(pose.shape[0], -1, 3).float())
        decoded, mu, logvar = self(pose)
        recon = (decoded - target).square().flatten(1).sum(dim=1)
        kl = kl_to_standard_normal(mu, logvar)
        total = (recon + kl_weight * kl).mean()
        return VaeLoss(total, recon.mean(), kl.mean())
