"""UV location map -> vertices as Gather + Mul + ReduceSum over the constant sampling table.

Why: the official ``resample`` is GridSample (TensorRT 8.5+ only, a known slowdown in 10.2) plus
an ``index_add_`` over the vt -> vertex map (a scatter). Bilinear weights and the seam average
are constants, so :func:`hmrt.train.models.layers.uv_sample.build_uv_sampling_table` folds them
into one ``(V, K)`` table and the read-out is a single Gather of ``V*K`` texels, a Mul by the
weights and a ReduceSum over K: ops every TensorRT parser from 8.2 accepts, no scatter, no
GridSample (shared/research/seed-decomr.md §4.2, option 2). This is the same table the training
form (``UVToVertices``) uses, so the two agree by construction. Layout: the Gather runs along the
flattened texel axis of the channel-first ``(N, 3, S*S)`` map with the ``(V, K)`` index, then one
Transpose of the small ``(N, 3, V)`` result; measured on ONNX Runtime CPU (2 threads, S=128,
V=13348, K=8) this takes 4.0 ms against 8.2 ms for a channels-last gather of ``(N, S*S, 3)``
rows, and 6.6 ms for the GridSample form.

``--uv-sample grid`` instead keeps GridSample (``UVToVerticesGrid``), equal to float32 rounding.
FP32 island (inherited): weighted sums of positions in metres.
"""

from __future__ import annotations

from torch import Tensor

from hmrt.train.models.layers.uv_sample import UVToVertices


class GatherUVToVertices(UVToVertices):
    """Drop-in for ``UVToVertices``: ``loc_map (N,3,S,S) -> (N,V,3)``, Gather + Mul + ReduceSum."""

    @classmethod
    def like(cls, other: UVToVertices) -> GatherUVToVertices:
        """The same table as ``other`` (and its :class:`UVTables`, if it has them)."""
        new = cls((other.index.cpu().numpy(), other.weight.cpu().numpy()))
        new.tables = other.tables
        return new.to(other.index.device)

    def forward(self, loc_map: Tensor) -> Tensor:
        n, c = loc_map.shape[0], loc_map.shape[1]
        flat = loc_map.reshape(n, c, -1)  # (N, C, S*S)
        picked = flat.index_select(2, self.index.reshape(-1)).reshape(n, c, *self.index.shape)
        return (picked * self.weight).sum(dim=-1).transpose(1, 2)  # (N, V, C)
