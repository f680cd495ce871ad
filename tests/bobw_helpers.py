"""Shared by the BoBW tests: a BoBW whose outputs depend on the image at random init."""

from __future__ import annotations

import copy

import numpy as np
import torch
from model_helpers import measure_batchnorm
from splat_helpers import person_sized_mask


def stressed(model, images: np.ndarray):
    """A copy whose mesh depends on the image: the layers that start at zero (or N(0, 1e-3))
    get small random weights, BatchNorm statistics are measured on ``images`` and the mask covers a
    person-sized share of each crop (tests/splat_helpers.py)."""
    m = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for head in m.dmp.dense_heads.values():
            torch.nn.init.normal_(head[1].weight, std=0.05)  # dense maps of decimetres
        for layer in (m.ik.inpaint.mlp.out, m.ik.gik.mlp.out, m.uvi.uv_end[1]):
            torch.nn.init.normal_(layer.weight, std=0.01)
    m = measure_batchnorm(m, images, batch=len(images))
    return person_sized_mask(m, m.dmp, images)
