"""Image-to-UV feature transfer (DecoMR's ``warp_feature``, BoBW's UV splat): a scatter-mean.

Every image pixel whose foreground probability exceeds ``mask_threshold`` sends its feature
vector to the one UV texel its predicted ``(u, v)`` falls in; a texel holds the MEAN of the
features it received, and texels that received nothing are 0 (official ``warp_feature``,
shared/research/seed-decomr.md §1.3, §4.1; the author confirms the mean in DecoMR issue #4).

Written for deployment from the start (shared/DESIGN.md, deployment rules):

* fixed shapes: all ``H*W`` pixels take part, masked-out ones with weight 0 (the official
  boolean indexing gives NonZero and data-dependent shapes);
* the mean divides by ``clamp(count, min=1)``, never ``count + 1e-8`` (the exporter may drop the
  epsilon and FP16 rounds it to 0: empty texels would become 0/0 = NaN);
* index math in float32 then int64 (the flat texel index reaches ``S*S - 1``; FP16 holds
  integers exactly only up to 2048), and the module is an FP32 island;
* no gradient through the texel index or the mask threshold (as in the official code); the
  gradient reaches ``features`` only.

UV convention (hmrt's, ``assets/body/README.md``): ``uv[:, 0] = u`` grows to the subject's left
(left side at ``u > 0.5``), ``uv[:, 1] = v`` grows toward the head (OBJ convention, what
``runtime.render.continuous_iuv`` renders). The output UV image has the head on top:
column ``<-> u``, row ``<-> 1 - v``, the layout of ``runtime.render.location_map`` and of the
reference/location maps from :func:`hmrt.train.models.layers.uv_sample.build_uv_tables`.
(The official maps have v growing downward, row ``<-> v``; same picture, other v convention.)

Texel index, ``align_corners``:

* ``False`` (default): the texel that CONTAINS the point, ``floor(u*S)`` clamped to
  ``[0, S-1]``: texel ``c`` is centred at ``(c + 0.5) / S``, hmrt's rasterizer convention, so the
  transferred features line up with the reference map the LNet sees next to them.
* ``True``: the official rule, ``round(u*(S-1))`` (texel ``c`` centred at ``c / (S-1)``, the
  align_corners=True convention of the official rasterizer and ``resample``). ``torch.round``
  and ONNX ``Round`` both round half to even.

The deployment forms are in ``hmrt.export.rewrites.uv_scatter_add`` (ScatterElements with
``reduction="add"``, TensorRT 10+) and ``uv_scatter_matmul`` (one-hot MatMul, any TensorRT).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.train.models.layers.precision import Fp32Module


class UVScatterMean(Fp32Module):
    """``forward(features (N,C,H,W), uv (N,2,H,W), mask (N,1,H,W)) -> (N,C,S,S)`` (mean per texel).

    ``uv`` in ``[0, 1]`` (values outside are clamped to the border texels), ``mask`` a foreground
    probability; pixels with ``mask > mask_threshold`` take part. With ``occupancy=True`` one more
    channel ``count > 0`` is appended (DecoMR's LNet input ends with it; DecoMR's image x/y
    channels are ordinary feature channels: concatenate ``linspace(-1, 1, W)`` / ``(-1, 1, H)``
    grids to ``features`` before the transfer, as the official code does).
    """

    def __init__(
        self,
        uv_size: int = 128,
        mask_threshold: float = 0.5,
        align_corners: bool = False,
        occupancy: bool = False,
    ):
        super().__init__()
        self.uv_size = int(uv_size)
        self.mask_threshold = float(mask_threshold)
        self.align_corners = bool(align_corners)
        self.occupancy = bool(occupancy)

    @classmethod
    def like(cls, other: UVScatterMean) -> UVScatterMean:
        """A module of this class with the same settings as ``other`` (used by the rewrites)."""
        return cls(other.uv_size, other.mask_threshold, other.align_corners, other.occupancy)

    def extra_repr(self) -> str:
        return (
            f"uv_size={self.uv_size}, mask_threshold={self.mask_threshold}, "
            f"align_corners={self.align_corners}, occupancy={self.occupancy}"
        )

    def texel_coords(self, uv: Tensor) -> tuple[Tensor, Tensor]:
        """``uv (N,2,H,W)`` -> texel ``(column, row)``, each ``(N, H*W)`` float32 holding integers."""
        s = self.uv_size
        u = uv[:, 0].reshape(uv.shape[0], -1).detach().float()
        down = 1.0 - uv[:, 1].reshape(uv.shape[0], -1).detach().float()  # head on row 0
        if self.align_corners:
            col, row = torch.round(u * (s - 1)), torch.round(down * (s - 1))
        else:
            col, row = torch.floor(u * s), torch.floor(down * s)
        return col.clamp(0.0, s - 1.0), row.clamp(0.0, s - 1.0)

    def texel_index(self, uv: Tensor) -> Tensor:
        """Flat texel index ``row*S + column`` per pixel, ``(N, H*W)`` int64 (exact in float32)."""
        col, row = self.texel_coords(uv)
        return (row * self.uv_size + col).to(torch.int64)

    def pixel_weight(self, mask: Tensor) -> Tensor:
        """``mask (N,1,H,W)`` -> ``(N, 1, H*W)`` float32: 1 where the pixel takes part, else 0."""
        return (mask.detach().reshape(mask.shape[0], 1, -1) > self.mask_threshold).float()

    def weighted_sources(self, features: Tensor, mask: Tensor) -> Tensor:
        """``(N, C+1, H*W)``: masked features, then the mask weight itself (the count channel)."""
        weight = self.pixel_weight(mask)
        flat = features.reshape(features.shape[0], features.shape[1], -1)
        return torch.cat([flat * weight, weight], dim=1)

    def finish(self, sums: Tensor) -> Tensor:
        """Texel sums ``(N, C+1, S*S)`` (last channel = count) -> mean ``(N, C[+1], S, S)``."""
        s = self.uv_size
        count = sums[:, -1:]
        out = sums[:, :-1] / count.clamp(min=1.0)
        if self.occupancy:
            out = torch.cat([out, (count > 0.0).to(out.dtype)], dim=1)
        return out.reshape(out.shape[0], out.shape[1], s, s)

    def forward(self, features: Tensor, uv: Tensor, mask: Tensor) -> Tensor:
        src = self.weighted_sources(features, mask)  # (N, C+1, HW)
        index = self.texel_index(uv).unsqueeze(1).expand(-1, src.shape[1], -1)
        sums = src.new_zeros(src.shape[0], src.shape[1], self.uv_size * self.uv_size)
        return self.finish(sums.scatter_add(2, index, src))
