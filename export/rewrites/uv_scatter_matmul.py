"""Image-to-UV scatter-mean as one-hot MatMuls: the form for TensorRT 8.x (and any target).

Why: TensorRT 8.x parsers have no ScatterElements/ScatterND reduction (NVIDIA/TensorRT#2396,
#3750; shared/research/seed-decomr.md §4.1), and a scatter without reduction drops duplicates.
A scatter-add is a product with a one-hot matrix: ``sums = src @ onehot`` with
``onehot[p, t] = (texel(p) == t)``. Only Equal, Cast, Mul, MatMul (plus the shared index math:
Floor/Round, Clip) are needed, all parsed by TensorRT 8.2+.

Two fixed-shape factorisations; ``form="auto"`` takes the one with the smaller intermediate:

* ``onehot``: ``(N, C+1, HW) @ (N, HW, S*S)``; intermediate ``HW * S*S`` per image.
* ``separable``: ``sums[c, r, col] = sum_p src[c,p] [row_p == r] [col_p == col]``, i.e. per
  channel ``(S x HW) . diag(src[c]) . (HW x S)``: ``(N, C+1, S, HW) @ (N, 1, HW, S)``;
  intermediate ``(C+1) * S * HW`` per image, smaller when ``C + 1 < S`` (e.g. RGB splats).

Both cost ``(C+1) * HW * S*S`` multiply-adds. DecoMR transfers at 64x64 (official
``warp_res = 256 // 2**2``), not at the 128x128 location-map size: 56x56 pixels, 256+2+1
channels -> one-hot 3136 x 4096 = 12.8 M elements (51 MB FP32 per image; 200 MB at 128x128),
3.3 GMAC per image; separable would be 259 x 64 x 3136 = 52 M elements, so ``auto`` picks the
one-hot. ``blocks > 1`` splits the texels into that many column blocks (one-hot per block
``HW * S*S / blocks``) for targets short of activation memory; the MACs do not change.

Measured on ONNX Runtime CPU (2 threads, one image, 258 channels, 56x56 -> 64x64): one-hot
185 ms, one-hot in 4 blocks 199 ms, separable 229 ms, against 32 ms for ScatterElements-add; so
on CPU and TensorRT 10+ the add form is the default, and this one is for TensorRT 8.x (a GPU
timing is still to be taken).

FP32 island (inherited); the texel ids are float32 integers (exact below 2**24), compared with
Equal against a constant ``arange``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.train.models.layers.uv_scatter import UVScatterMean

MATMUL_FORMS = ("auto", "onehot", "separable")


class MatMulUVScatterMean(UVScatterMean):
    """Drop-in for ``UVScatterMean`` built from Equal + MatMul (no scatter op)."""

    def __init__(
        self,
        uv_size: int = 128,
        mask_threshold: float = 0.5,
        align_corners: bool = False,
        occupancy: bool = False,
        form: str = "auto",
        blocks: int = 1,
    ):
        super().__init__(uv_size, mask_threshold, align_corners, occupancy)
        if form not in MATMUL_FORMS:
            raise ValueError(f"form {form!r}: use one of {', '.join(MATMUL_FORMS)}")
        if (uv_size * uv_size) % blocks:
            raise ValueError(f"blocks={blocks} must divide uv_size**2 = {uv_size * uv_size}")
        self.form = form
        self.blocks = int(blocks)
        self.register_buffer("texels", torch.arange(uv_size * uv_size).float(), persistent=False)
        self.register_buffer("axis", torch.arange(uv_size).float(), persistent=False)

    @classmethod
    def like(cls, other: UVScatterMean, form: str = "auto", blocks: int = 1) -> MatMulUVScatterMean:
        """A MatMul form with the settings of ``other``."""
        return cls(
            other.uv_size, other.mask_threshold, other.align_corners, other.occupancy, form, blocks
        )

    def choose(self, channels: int, pixels: int) -> str:
        """``onehot`` or ``separable`` for ``channels`` (incl. count) and ``pixels`` = H*W."""
        if self.form != "auto":
            return self.form
        return "separable" if channels * self.uv_size < self.uv_size**2 else "onehot"

    def forward(self, features: Tensor, uv: Tensor, mask: Tensor) -> Tensor:
        src = self.weighted_sources(features, mask)  # (N, C+1, HW)
        col, row = self.texel_coords(uv)  # (N, HW) float32 integers
        if self.choose(src.shape[1], src.shape[2]) == "separable":
            s = self.uv_size
            rows = (row.unsqueeze(1) == self.axis.unsqueeze(1)).float()  # (N, S, HW)
            cols = (col.unsqueeze(2) == self.axis).float()  # (N, HW, S)
            spread = src.unsqueeze(2) * rows.unsqueeze(1)  # (N, C+1, S, HW)
            sums = torch.matmul(spread, cols.unsqueeze(1))  # (N, C+1, S, S)
            return self.finish(sums.reshape(src.shape[0], src.shape[1], s * s))
        flat = (row * self.uv_size + col).unsqueeze(2)  # (N, HW, 1)
        parts = [
            torch.matmul(src, (flat == block).float())  # (N, C+1, S*S/blocks)
            for block in self.texels.chunk(self.blocks)
        ]
        return self.finish(parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
