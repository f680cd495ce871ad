"""Reusable model layers: FP32 islands, soft-argmax, RoI pooling, graph convolutions."""

from hmrt.train.models.layers.graph_conv import GCN, GraphConv
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands
from hmrt.train.models.layers.roi_pool import AffineGrid, GridRoIPool
from hmrt.train.models.layers.soft_argmax import SoftArgmax2d

__all__ = [
    "GCN",
    "AffineGrid",
    "Fp32Module",
    "GraphConv",
    "GridRoIPool",
    "SoftArgmax2d",
    "fp32_islands",
]
