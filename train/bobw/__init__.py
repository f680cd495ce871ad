"""BoBW's separately trained stages (seed-bobw.md §2.2).

:mod:`.ik_data` the IK stage's samples (hmrt's pose sampler standing in for mocap, with noise and
random joint zeroing), :mod:`.ik_fit` its training loop and metrics (:func:`run_ik_stage`). The
IK networks themselves are :mod:`hmrt.train.models.bobw.ik`.
"""

from hmrt.train.bobw.ik_data import IKBatch, IKSampleSource, PosePool, load_pose_pool
from hmrt.train.bobw.ik_fit import IKStageConfig, evaluate_ik, run_ik_stage

__all__ = [
    "IKBatch",
    "IKSampleSource",
    "IKStageConfig",
    "PosePool",
    "evaluate_ik",
    "load_pose_pool",
    "run_ik_stage",
]
