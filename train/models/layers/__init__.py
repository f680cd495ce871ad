"""Reusable model layers: FP32 islands, soft-argmax, RoI pooling, graph convolutions, UV
scatter-mean, UV-to-vertex sampling, mesh-to-UV maps and UV part averaging/distribution."""

from hmrt.train.models.layers.graph_conv import GCN, GraphConv
from hmrt.train.models.layers.mesh_to_uv import MeshToUV, MeshToUVTable, mesh_to_uv_table
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands
from hmrt.train.models.layers.roi_pool import AffineGrid, GridRoIPool
from hmrt.train.models.layers.soft_argmax import SoftArgmax2d, SoftArgmax3d
from hmrt.train.models.layers.uv_parts import PartAverage, PartDistribute, uv_part_assignment
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
    "MeshToUV",
    "MeshToUVTable",
    "PartAverage",
    "PartDistribute",
    "SoftArgmax2d",
    "SoftArgmax3d",
    "UVScatterMean",
    "UVTables",
    "UVToVertices",
    "UVToVerticesGrid",
    "build_uv_tables",
    "fp32_islands",
    "mesh_to_uv_table",
    "uv_part_assignment",
]
