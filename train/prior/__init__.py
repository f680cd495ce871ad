"""HKMR's pose prior: a VAE of body poses whose frozen encoder gives the KL term of HKMR's loss.

:mod:`.vae` the network, :mod:`.file` the shipped prior (encoder only), :mod:`.data` the poses
(the synthetic engine's sampler), :mod:`.fit` and :mod:`.cli` the training
(``hmrt train-prior``). Only the light modules are imported here, so the loss can load a prior
without pulling in the training loop.
"""

from hmrt.train.prior.file import load_pose_prior, read_pose_prior, save_pose_prior
from hmrt.train.prior.vae import (
    PosePriorConfig,
    PosePriorDecoder,
    PosePriorEncoder,
    PosePriorVAE,
    kl_to_standard_normal,
)

__all__ = [
    "PosePriorConfig",
    "PosePriorDecoder",
    "PosePriorEncoder",
    "PosePriorVAE",
    "kl_to_standard_normal",
    "load_pose_prior",
    "read_pose_prior",
    "save_pose_prior",
]
