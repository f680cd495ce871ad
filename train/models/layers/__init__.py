"""Reusable model layers: FP32 islands, soft-argmax, RoI pooling, graph convolutions, UV
scatter-mean and UV-to-vertex sampling."""

from hmrt.train.models.layers.graph_conv import GCN, GraphConv
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands
from hmrt.train.models.layers.roi_pool import AffineGrid, GridRoIPool
from hmrt.train.models.layers.soft_argmax import SoftArgmax2d, SoftArgmax3d
from hmrt.train.models.layers.uv_sample import (
    UVTables,
    UVToVertices,
    UVToVerticesGrid,
    build_uv_tables,
)
from hmrt.train.models.layers.uv_scatter import UVScatterMean

__all__ = [
    "GCN",
    "AffineGrid",
    "Fp32Module",
    "GraphConv",
    "GridRoIPool",
    "SoftArgmax2d",
    "SoftArgmax3d",
    "UVScatterMean",
    "UVTables",
    "UVToVertices",
    "UVToVerticesGrid",
    "build_uv_tables",
    "fp32_islands",
]
